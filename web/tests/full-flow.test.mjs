// Full flow: sign in by URL, start quick-check, watch the real provisioning steps, type in the terminal and see the
// output, solve the task, submit (with the confirmation), and see the graded result.
import { assert, signIn, waitForTerminalLine } from './assert.mjs';

export const name = 'full flow: sign in, start, terminal, submit, result';

export default async function ({ page, signInUrl, shot, consoleErrors }) {
  const { url } = signInUrl();
  await signIn(page, url);
  const card = page.locator('[data-exam="quick-check"]');
  await card.waitFor();
  assert((await card.textContent()).includes('Quick check'), 'the catalog shows the title');
  assert((await card.textContent()).includes('Duration: 5 min'), 'the catalog shows the duration');
  await shot('1-catalog');

  // Start with the keyboard: focus the button and press Enter.
  await page.getByRole('button', { name: 'Start Quick check' }).focus();
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/sessions\/[^/]+$/);
  const sessionPath = new URL(page.url()).pathname;

  // Provisioning may be quick; either we see a step, or we are already in the exam.
  await page.locator('[data-page="provisioning"], [data-page="exam"]').first().waitFor({ timeout: 15000 });
  const prov = await page.evaluate(() => document.querySelector('[data-page="provisioning"]')?.textContent ?? null);
  if (prov !== null) {
    await shot('2-provisioning');
    assert(!/%/.test(prov), 'no percentage on the provisioning page');
  }

  await page.locator('[data-page="exam"]').waitFor({ timeout: 30000 });
  await page.locator('.task-body .prompt code').first().waitFor();
  assert((await page.locator('.task-body').textContent()).includes('/root/hello.txt'), 'the task prompt is rendered');
  await page.locator('.xterm-rows').waitFor();
  // The clock runs once the terminal has attached.
  await page.waitForFunction(() => /Time left: \d\d:\d\d/.test(document.getElementById('clock').textContent), null, {
    timeout: 15000,
  });

  await page.getByTestId('terminal').click();
  await page.keyboard.type('echo ok\n');
  await waitForTerminalLine(page, (l) => l.trim() === 'ok');
  await page.keyboard.type('echo hello > /root/hello.txt\n');
  await page.waitForTimeout(300);
  await shot('3-exam');

  // Resizing the window re-fits the terminal (and sends the resize frame).
  const colsBefore = await page.$$eval('.xterm-rows > div', (r) => r.length);
  await page.setViewportSize({ width: 1280, height: 640 });
  await page.waitForTimeout(400);
  const colsAfter = await page.$$eval('.xterm-rows > div', (r) => r.length);
  assert(colsAfter < colsBefore, `the terminal re-fits on resize (${colsBefore} rows → ${colsAfter})`);
  await page.setViewportSize({ width: 1280, height: 800 });

  // Submit: a confirmation first; "Keep working" keeps the exam going.
  await page.getByRole('button', { name: 'Submit exam' }).click();
  const dialog = page.locator('dialog.confirm');
  await dialog.waitFor({ state: 'visible' });
  await shot('4-confirm');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  assert((await page.locator('[data-page="exam"]').count()) === 1, 'cancel keeps the exam');
  await page.getByRole('button', { name: 'Submit exam' }).click();
  await page.getByRole('button', { name: 'Submit now' }).click();

  await page.locator('[data-page="ended"]').waitFor({ timeout: 15000 });
  assert((await page.locator('.reason').textContent()).includes('You submitted your exam'), 'the reason is shown');
  await page.locator('[data-testid="score"]').waitFor({ timeout: 60000 });
  const score = await page.locator('[data-testid="score"]').textContent();
  assert(score.trim() === '1 / 1', `full marks for the solved task (got ${score})`);
  await shot('5-result');

  // The catalog offers Start again (no live session), and the session page still shows the end after a reload.
  await page.goto(new URL(sessionPath, page.url()).href);
  await page.locator('[data-testid="score"]').waitFor({ timeout: 15000 });
  assert(consoleErrors.length === 0, `no browser errors: ${consoleErrors.join('; ')}`);

  // Sign out: the cookie is gone, and the pages say how to sign in again.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.locator('[data-page="signed-out"]').waitFor();
  await page.goto(new URL('/', page.url()).href);
  await page.locator('[data-page="signed-out"]').waitFor();
}
