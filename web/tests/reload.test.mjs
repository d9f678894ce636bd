// Reloading mid-exam shows the earlier output in the terminal, which still works.
import { signIn, startExam, waitForTerminalLine } from './assert.mjs';

export const name = 'reload mid-exam keeps the terminal output, and the terminal still works';

export default async function ({ page, base, signInUrl, shot }) {
  await signIn(page, signInUrl().url);
  await startExam(page, base, 'quick-check');
  await page.locator('[data-page="exam"]').waitFor({ timeout: 30000 });
  await page.locator('.xterm-rows').waitFor();
  await page.getByTestId('terminal').click();
  await page.keyboard.type('echo before-$((6*7))\n');
  await waitForTerminalLine(page, (l) => l.trim() === 'before-42');
  await page.reload();
  await page.locator('[data-page="exam"]').waitFor({ timeout: 15000 });
  await waitForTerminalLine(page, (l) => l.trim() === 'before-42');
  await page.getByTestId('terminal').click();
  await page.keyboard.type('echo after-$((6*7))\n');
  await waitForTerminalLine(page, (l) => l.trim() === 'after-42');
  await shot('after-reload');
}
