// The server goes away mid-exam: the page says "Connection lost, reconnecting (attempt n)" and retries; when the
// server is back, the banner goes, and the terminal (with its earlier output) works again.
import { assert, signIn, startExam, waitForTerminalLine } from './assert.mjs';

export const name = 'connection lost: the banner shows the attempts, and the page recovers';

export default async function ({ page, base, signInUrl, shot, server }) {
  await signIn(page, signInUrl().url);
  await startExam(page, base, 'quick-check');
  await page.locator('[data-page="exam"]').waitFor({ timeout: 30000 });
  await page.locator('.xterm-rows').waitFor();
  await page.getByTestId('terminal').click();
  await page.keyboard.type('echo one-$((1+1))\n');
  await waitForTerminalLine(page, (l) => l.trim() === 'one-2');

  await server.stop();
  const banner = page.locator('#banner');
  await banner.waitFor({ state: 'visible', timeout: 10000 });
  await page.waitForFunction(
    () => /Connection lost, reconnecting \(attempt [2-9]\)/.test(document.getElementById('banner').textContent),
    null,
    { timeout: 15000 },
  );
  await shot('banner');

  await server.start();
  await banner.waitFor({ state: 'hidden', timeout: 30000 });
  await page.locator('[data-page="exam"]').waitFor();
  await waitForTerminalLine(page, (l) => l.trim() === 'one-2');
  await page.getByTestId('terminal').click();
  await page.keyboard.type('echo two-$((1+1))\n');
  await waitForTerminalLine(page, (l) => l.trim() === 'two-2');
  assert(!(await banner.isVisible()), 'no banner once reconnected');
  await shot('recovered');
}
