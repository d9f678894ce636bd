// Accessibility: axe-core (WCAG 2.1 A and AA rules) on the catalog, provisioning, exam (light and dark, larger
// text), end and proctor pages finds no serious or critical violation; the exam page works from the keyboard (the
// text-size and theme controls, the task list, the flag, and the documented way out of the terminal).
import { assert, axeCheck, signIn, startExam } from './assert.mjs';

export const name = 'axe-core: no serious or critical violations on the catalog, provisioning, exam, end and proctor pages';

export default async function ({ page, base, signInUrl, shot, newContext }) {
  await signIn(page, signInUrl().url);
  await axeCheck(page, 'catalog');

  // The provisioning page as the candidate sees it: the session read answers "provisioning" with a step (the
  // server's own answer, rewritten) and the status stream is held, so the page stays on it long enough to check.
  await page.route(/\/api\/v1\/sessions\/[^/]+$/, async (route) => {
    const r = await route.fetch();
    const v = await r.json();
    v.state = 'provisioning';
    v.progress = { step: 2, total: 3, message: 'Creating the environment' };
    await route.fulfill({ response: r, json: v });
  });
  await page.route(/\/api\/v1\/sessions\/[^/]+\/status$/, () => {
    /* held: never answered */
  });
  const id = await startExam(page, base, 'quick-check');
  await page.locator('[data-page="provisioning"]').waitFor({ timeout: 15000 });
  await page.locator('.step-now', { hasText: 'Step 2 of 3' }).waitFor();
  await axeCheck(page, 'provisioning');
  await shot('provisioning');
  await page.unrouteAll({ behavior: 'ignoreErrors' });

  // The exam page, light and dark, at a larger text size.
  await page.goto(`${base}/sessions/${id}`);
  await page.locator('[data-page="exam"]').waitFor({ timeout: 30000 });
  await page.locator('[data-testid="terminal"] .xterm-rows').waitFor();
  await page.locator('.task-body .prompt').waitFor();
  await page.waitForFunction(() => /Time left/.test(document.getElementById('clock').textContent), null, { timeout: 15000 });
  const theme = () => page.evaluate(() => document.documentElement.dataset.theme);
  if ((await theme()) !== 'light') await page.locator('#pref-theme').click();
  assert((await theme()) === 'light', 'the light theme');
  await axeCheck(page, 'exam (light theme)');
  await page.locator('#pref-theme').click();
  assert((await theme()) === 'dark', 'the dark theme');
  await page.locator('[data-testid="notepad"] summary').click();
  await axeCheck(page, 'exam (dark theme)');
  await shot('exam-dark');

  // The text size: larger text for the page and the terminal, kept across a reload.
  const size = () => page.evaluate(() => parseFloat(getComputedStyle(document.documentElement).fontSize));
  const before = await size();
  await page.locator('#pref-larger').focus();
  await page.keyboard.press('Enter');
  await page.keyboard.press('Enter');
  const after = await size();
  assert(after > before, `the text grows (${before}px → ${after}px)`);
  await page.reload();
  await page.locator('[data-page="exam"]').waitFor({ timeout: 15000 });
  assert((await size()) === after && (await theme()) === 'dark', 'the text size and theme are kept');
  await page.locator('[data-testid="terminal"] .xterm-rows').waitFor();
  await axeCheck(page, 'exam (dark theme, larger text)');

  // xterm.js's screen-reader mode: the terminal's rows become a live region screen readers read.
  await page.locator('#pref-screen-reader').check();
  await page.locator('[data-testid="terminal"] .xterm-accessibility').waitFor({ state: 'attached', timeout: 5000 });
  await axeCheck(page, 'exam (screen-reader mode)');
  await page.locator('#pref-screen-reader').uncheck();

  // Keyboard: from the terminal, Ctrl+Shift+F6 leaves it (to Submit); Shift+Tab reaches the task list; the flag
  // toggles with Enter.
  await page.getByTestId('terminal').click();
  await page.keyboard.press('Control+Shift+F6');
  assert(await page.evaluate(() => document.activeElement?.textContent === 'Submit exam'), 'Ctrl+Shift+F6 leaves the terminal');
  await page.getByTestId('flag').focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('[data-testid="flag"]')?.getAttribute('aria-pressed') === 'true');
  const focusVisible = await page.evaluate(() => {
    const el = document.activeElement;
    const s = getComputedStyle(el);
    return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
  });
  assert(focusVisible, 'the focused control shows a visible outline');
  // The clock's tooltip: the deadline in local time with the server's (UTC) time.
  const title = await page.locator('#clock').getAttribute('title');
  assert(/^Ends at .+; server time \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(title || ''), `the clock's tooltip: ${title}`);

  // The end page.
  await page.getByRole('button', { name: 'Submit exam' }).click();
  await page.getByRole('button', { name: 'Submit now' }).click();
  await page.locator('[data-page="ended"]').waitFor({ timeout: 15000 });
  await page.locator('[data-testid="score"], .result p').first().waitFor({ timeout: 60000 });
  await axeCheck(page, 'end');
  await shot('end');

  // The proctor page, with a session's detail open.
  const proc = await newContext();
  try {
    const pp = await proc.newPage();
    await pp.goto(signInUrl('proctor').url);
    await pp.locator('[data-page="proctor"]').waitFor({ timeout: 15000 });
    await pp.locator('button.row-link').first().waitFor({ timeout: 15000 });
    await axeCheck(pp, 'proctor');
    await pp.locator('button.row-link').first().click();
    await pp.getByTestId('workspace').waitFor();
    await pp.locator('.proctor-workspace h4, .proctor-workspace .error').first().waitFor({ timeout: 10000 });
    await axeCheck(pp, 'proctor (a session selected)');
  } finally {
    await proc.close();
  }
}
