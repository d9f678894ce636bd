// Several terminals: open a second one, run a command in each (each its own shell), reload, both resume with their
// own scrollback; a third one is closed and stays closed after a reload.
import { assert, signIn, startExam, waitForLineIn } from './assert.mjs';

export const name = 'several terminals: each its own shell, both resume after a reload, a closed one stays closed';

export default async function ({ page, consoleErrors, base, signInUrl, shot }) {
  await signIn(page, signInUrl().url);
  await startExam(page, base, 'quick-check');
  await page.locator('[data-page="exam"]').waitFor({ timeout: 30000 });
  await page.locator('[data-testid="terminal"] .xterm-rows').waitFor();

  await page.getByTestId('terminal').click();
  await page.keyboard.type('export WHO=first; echo one-$((40+2)) $WHO\n');
  await waitForLineIn(page, 'terminal', (l) => l.trim() === 'one-42 first');

  await page.getByTestId('new-terminal').click();
  const second = page.locator('[role="tab"][data-terminal="t1"]');
  await second.waitFor();
  assert((await second.getAttribute('aria-selected')) === 'true', 'the new terminal is selected');
  await page.locator('[data-testid="terminal-t1"] .xterm-rows').waitFor();
  await page.getByTestId('terminal-t1').click();
  await page.keyboard.type('echo two-$((40+3)) "[$WHO]"\n');
  await waitForLineIn(page, 'terminal-t1', (l) => l.trim() === 'two-43 []');
  await shot('two-terminals');

  await page.reload();
  await page.locator('[data-page="exam"]').waitFor({ timeout: 15000 });
  await page.locator('[role="tab"][data-terminal="t1"]').waitFor({ timeout: 15000 });
  await waitForLineIn(page, 'terminal', (l) => l.trim() === 'one-42 first');
  // The second one, selected with the keyboard: focus the tab of the first, then the arrow key.
  await page.locator('[role="tab"][data-terminal="main"]').focus();
  await page.keyboard.press('ArrowRight');
  assert((await page.locator('[role="tab"][data-terminal="t1"]').getAttribute('aria-selected')) === 'true', 'ArrowRight selects the next tab');
  await waitForLineIn(page, 'terminal-t1', (l) => l.trim() === 'two-43 []');
  const second2 = await page.$$eval('[data-testid="terminal-t1"] .xterm-rows > div', (r) => r.map((x) => x.textContent).join('\n'));
  assert(!second2.includes('one-42'), 'the second terminal shows only its own output');
  await page.getByTestId('terminal-t1').click();
  await page.keyboard.type('echo again-$((40+4))\n');
  await waitForLineIn(page, 'terminal-t1', (l) => l.trim() === 'again-44');

  // A third, closed: its tab goes, and it is not back after a reload.
  await page.getByTestId('new-terminal').click();
  await page.locator('[role="tab"][data-terminal="t2"]').waitFor();
  await page.getByRole('button', { name: 'Close Terminal 3' }).click();
  await page.locator('[role="tab"][data-terminal="t2"]').waitFor({ state: 'detached' });
  await page.reload();
  await page.locator('[role="tab"][data-terminal="t1"]').waitFor({ timeout: 15000 });
  assert((await page.locator('[role="tab"][data-terminal="t2"]').count()) === 0, 'the closed terminal stays closed');
  await shot('after-reload');
  assert(consoleErrors.length === 0, `no browser errors: ${consoleErrors.join('; ')}`);
}
