// Flags, visited tasks and the notepad live on the server: flag a task, reload, still flagged; write in the notepad,
// sign in from a second browser, the note is there; the resources open in a new tab without an opener or referrer;
// the proctor reads the workspace.
import { assert, signIn, startExam } from './assert.mjs';

export const name = 'flags and the notepad survive a reload and a second browser; resources; the proctor reads them';

export default async function ({ page, consoleErrors, base, signInUrl, shot, newContext }) {
  const cand = signInUrl();
  await signIn(page, cand.url);
  await startExam(page, base, 'linux-basics');
  await page.locator('[data-page="exam"]').waitFor({ timeout: 60000 });
  const links = page.locator('button.task-link');
  await links.nth(1).waitFor();
  assert((await links.nth(0).getAttribute('data-state')) === 'visited', 'the first task, shown, is visited');
  assert((await links.nth(2).getAttribute('data-state')) === 'untouched', 'the third is untouched');

  // The second task: visit it, flag it.
  await links.nth(1).click();
  const flag = page.getByTestId('flag');
  assert((await flag.getAttribute('aria-pressed')) === 'false', 'not flagged yet');
  await flag.click();
  await page.waitForFunction(() => document.querySelector('[data-testid="flag"]')?.getAttribute('aria-pressed') === 'true');
  assert((await links.nth(1).getAttribute('data-state')) === 'flagged', 'the list shows the flag');
  assert((await links.nth(1).textContent()).includes('flagged'), 'the flag is in words for screen readers');

  // The notepad.
  await page.locator('[data-testid="notepad"] summary').click();
  const note = 'remember: check /srv/project mode — ünïcode';
  await page.locator('#notepad').fill(note);
  await page.locator('#notepad-status', { hasText: 'Saved' }).waitFor({ timeout: 10000 });

  // The resources.
  await page.locator('[data-testid="resources"] summary').click();
  const res = page.locator('[data-testid="resources"] a');
  assert((await res.count()) === 2, 'two resources');
  assert((await res.first().getAttribute('rel')) === 'noopener noreferrer', 'opened without an opener or a referrer');
  assert((await res.first().getAttribute('target')) === '_blank', 'opened in a new tab');
  assert((await res.first().getAttribute('href')).startsWith('https://'), 'the URL as the exam lists it');
  await shot('flagged-and-note');

  await page.reload();
  await page.locator('[data-page="exam"]').waitFor({ timeout: 15000 });
  await page.locator('button.task-link[data-state="flagged"]').waitFor({ timeout: 10000 });
  assert((await page.locator('button.task-link').nth(1).getAttribute('data-state')) === 'flagged', 'still flagged after a reload');
  assert((await page.locator('button.task-link').nth(2).getAttribute('data-state')) === 'untouched', 'still untouched');
  assert((await page.locator('#notepad').inputValue()) === note, 'the note is back after a reload');

  // A second browser (a fresh profile), the same candidate.
  const other = await newContext();
  try {
    const p2 = await other.newPage();
    await signIn(p2, cand.url);
    await p2.locator('a', { hasText: 'Resume your exam' }).click();
    await p2.locator('[data-page="exam"]').waitFor({ timeout: 15000 });
    await p2.waitForFunction((n) => document.getElementById('notepad')?.value === n, note, { timeout: 10000 });
    await p2.locator('button.task-link[data-state="flagged"]').waitFor({ timeout: 10000 });
  } finally {
    await other.close();
  }

  // The proctor reads it.
  const proc = await newContext();
  try {
    const pp = await proc.newPage();
    await pp.goto(signInUrl('proctor').url);
    await pp.locator('[data-page="proctor"]').waitFor({ timeout: 15000 });
    await pp.locator(`tr:has-text("${cand.user}") button.row-link`).first().click();
    await pp.getByTestId('proctor-notepad').waitFor({ timeout: 10000 });
    assert((await pp.getByTestId('proctor-notepad').textContent()) === note, 'the proctor sees the note');
    assert((await pp.getByTestId('workspace').textContent()).includes('sort-inbox'), 'the proctor sees the flag');
  } finally {
    await proc.close();
  }
  assert(consoleErrors.length === 0, `no browser errors: ${consoleErrors.join('; ')}`);
}
