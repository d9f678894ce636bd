// A proctor terminates a session (through the API), and the candidate's page shows the end by itself.
import { apiAs, assert, signIn, startExam } from './assert.mjs';

export const name = "a proctor's terminate shows the end on the candidate's page";

export default async function ({ page, base, signInUrl, shot }) {
  await signIn(page, signInUrl().url);
  const id = await startExam(page, base, 'quick-check');
  await page.locator('[data-page="exam"]').waitFor({ timeout: 30000 });
  await page.locator('.xterm-rows').waitFor();
  // With a live session, the catalog offers "Resume your exam" instead of Start.
  await page.goto(base + '/');
  const resume = page.getByRole('link', { name: 'Resume your exam' });
  await resume.waitFor();
  assert((await page.locator('[data-exam] button').count()) === 0, 'no Start buttons while a session is live');
  await shot('resume');
  await resume.click();
  await page.waitForURL((u) => u.pathname === `/sessions/${id}`);
  await page.locator('[data-page="exam"]').waitFor({ timeout: 15000 });
  await page.locator('.xterm-rows').waitFor();
  const proctor = signInUrl('proctor');
  const r = await apiAs(base, proctor.token, 'POST', `/api/v1/sessions/${id}/terminate`, {
    reason: 'browser test',
    grade: true,
  });
  assert(r.status === 200, `terminate answered ${r.status} ${JSON.stringify(r.body)}`);
  await page.locator('[data-page="ended"]').waitFor({ timeout: 15000 });
  assert((await page.locator('.reason').getAttribute('data-reason')) === 'terminated_by_proctor', 'the reason');
  await page.locator('[data-testid="score"]').waitFor({ timeout: 60000 });
  await shot('ended');
}
