// An exam whose setup fails shows its error within 10 s, with guidance, a reference and "Try again"; no spinner.
import { assert, signIn, startExam } from './assert.mjs';

export const name = 'failure: a failing setup shows its error within 10 s and offers Try again';

export default async function ({ page, base, signInUrl, shot }) {
  await signIn(page, signInUrl().url);
  const t0 = Date.now();
  const id = await startExam(page, base, 'setup-fails');
  await page.locator('[data-page="failed"]').waitFor({ timeout: 10000 });
  assert(Date.now() - t0 < 10000, 'the failure shows within 10 s');
  const text = await page.locator('[data-page="failed"]').textContent();
  assert(/could not start/.test(text), `a failure heading (${text})`);
  assert(/could not be prepared/.test(text), `the failure's message (${text})`);
  assert(text.includes(id), 'the session reference is shown');
  assert((await page.locator('[data-page="failed"] .guidance').count()) === 1, 'guidance is shown');
  assert(!(await page.locator('[data-page="provisioning"]').count()), 'no provisioning view remains');
  assert(!(await page.locator('#banner').isVisible()), 'no connection banner');
  await shot('failed');

  // Try again starts a new session (which fails the same way, on a new id).
  await page.getByRole('button', { name: 'Try again' }).click();
  await page.waitForURL((u) => u.pathname.startsWith('/sessions/') && !u.pathname.endsWith(id), { timeout: 10000 });
  await page.locator('[data-page="failed"]').waitFor({ timeout: 10000 });
}
