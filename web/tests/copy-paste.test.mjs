// Copy and paste: a code span of a prompt copies with a click and pastes into the terminal with Ctrl+Shift+V; a
// large paste (100 KB) arrives whole, and the page stays responsive.
import { assert, signIn, startExam, waitForLineIn } from './assert.mjs';

export const name = 'copy a code span from a prompt, paste it into the terminal; a large paste arrives whole';

export default async function ({ page, consoleErrors, context, base, signInUrl, shot }) {
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  await signIn(page, signInUrl().url);
  await startExam(page, base, 'quick-check');
  await page.locator('[data-page="exam"]').waitFor({ timeout: 30000 });
  await page.locator('[data-testid="terminal"] .xterm-rows').waitFor();
  await page.getByTestId('terminal').click();
  await page.keyboard.type('echo ready-$((1+1))\n');
  await waitForLineIn(page, 'terminal', (l) => l.trim() === 'ready-2');

  // The prompt names /root/hello.txt in a code span: click it, then paste after `ls -d `.
  const code = page.locator('.task-body .prompt code.copyable', { hasText: '/root/hello.txt' }).first();
  await code.click();
  await page.waitForFunction(() => document.getElementById('announce').textContent.includes('Copied'));
  assert((await page.evaluate(() => navigator.clipboard.readText())) === '/root/hello.txt', 'the clipboard holds the code span');
  await page.getByTestId('terminal').click();
  await page.keyboard.type('touch /root/hello.txt; echo pasted: ');
  await page.keyboard.press('Control+Shift+V');
  await page.keyboard.press('Enter');
  await waitForLineIn(page, 'terminal', (l) => l.trim() === 'pasted: /root/hello.txt');

  // Ctrl+Shift+C copies the terminal's selection.
  await page.keyboard.type('echo sel-$((3*3))\n');
  await waitForLineIn(page, 'terminal', (l) => l.trim() === 'sel-9');
  await page.evaluate(() => navigator.clipboard.writeText(''));
  const row = page.locator('[data-testid="terminal"] .xterm-rows > div', { hasText: /^sel-9\s*$/ }).last();
  const rb = await row.boundingBox();
  await page.mouse.click(rb.x + 10, rb.y + rb.height / 2, { clickCount: 3 });
  await page.keyboard.press('Control+Shift+C');
  await page.waitForFunction(async () => (await navigator.clipboard.readText()).includes('sel-9'), null, { timeout: 5000 });

  // A large paste: 2000 lines of 50 characters into `cat`, then its size.
  const big = Array.from({ length: 2000 }, (_, i) => `${String(i).padStart(6, '0')}${'x'.repeat(44)}`).join('\n') + '\n';
  await page.evaluate((t) => navigator.clipboard.writeText(t), big);
  await page.getByTestId('terminal').click();
  await page.keyboard.type('stty -echo; cat > /tmp/pasted; stty echo\n');
  await page.waitForTimeout(300);
  const t0 = Date.now();
  await page.keyboard.press('Control+Shift+V');
  // The page keeps answering while the paste goes out.
  const answered = await page.evaluate(() => new Promise((r) => setTimeout(() => r(true), 0)));
  assert(answered, 'the page answers during a large paste');
  await page.waitForTimeout(500);
  await page.keyboard.press('Control+D');
  await page.keyboard.type('wc -lc < /tmp/pasted | tr -s " " | sed "s/^/size:/"\n');
  await waitForLineIn(page, 'terminal', (l) => /^size: ?2000 102000$/.test(l.trim()), 30000);
  console.log(`     (a 102000-byte paste took ${Date.now() - t0} ms to arrive)`);
  await shot('pasted');
  assert(consoleErrors.length === 0, `no browser errors: ${consoleErrors.join('; ')}`);
}
