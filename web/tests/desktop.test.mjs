// The desktop in the browser: start the desktop exam, see a real frame from the environment's X server in noVNC's
// canvas, type into the desktop's terminal, and find the file it made in the graded result.
import { assert, signIn } from './assert.mjs';

export const name = 'desktop: a frame from the environment, typing into its terminal, graded';

/** Distinct colours among a grid of samples of the desktop's canvas (a blank screen has one). */
async function colours(page) {
  return page.evaluate(() => {
    const c = document.querySelector('[data-testid="desktop-screen"] canvas');
    if (!c || !c.width) return 0;
    const ctx = c.getContext('2d');
    const seen = new Set();
    for (let y = 0; y < c.height; y += 16) {
      for (let x = 0; x < c.width; x += 16) {
        const [r, g, b] = ctx.getImageData(x, y, 1, 1).data;
        seen.add(`${r},${g},${b}`);
      }
    }
    return seen.size;
  });
}

export default async function ({ page, signInUrl, shot, consoleErrors }) {
  const { url } = signInUrl();
  await signIn(page, url);
  await page.getByRole('button', { name: 'Start Desktop and web basics' }).click();
  await page.waitForURL(/\/sessions\/[^/]+$/);
  // The desktop's start is a step of its own.
  await page.locator('[data-page="provisioning"], [data-page="exam"]').first().waitFor({ timeout: 15000 });
  await page.locator('[data-page="exam"]').waitFor({ timeout: 60000 });
  assert((await page.locator('#tab-desktop').getAttribute('aria-selected')) === 'true', 'the desktop is shown first');
  assert((await page.locator('a[data-port="8000"]').textContent()).includes('Open port 8000'), 'the port link is there');

  // A real frame: the window manager's decorations and the terminal, not a black (or empty) canvas.
  await page.locator('[data-testid="desktop-screen"] canvas').waitFor({ timeout: 30000 });
  let n = 0;
  const until = Date.now() + 30000;
  while (Date.now() < until && (n = await colours(page)) < 3) await page.waitForTimeout(250);
  await shot('1-desktop');
  assert(n >= 3, `the desktop shows a frame that is not blank (${n} colours)`);
  // Attaching started the clock.
  await page.waitForFunction(() => /Time left: \d\d:\d\d/.test(document.getElementById('clock').textContent), null, {
    timeout: 15000,
  });

  // Type into the desktop's terminal (xterm at the top left): click it to focus, then type.
  const box = await page.locator('[data-testid="desktop-screen"] canvas').boundingBox();
  await page.mouse.click(box.x + box.width * 0.2, box.y + box.height * 0.2);
  await page.waitForTimeout(300);
  await page.keyboard.type('echo written on the desktop > /root/Desktop/note.txt\n', { delay: 15 });
  await page.waitForTimeout(1000);
  await shot('2-typed');

  await page.getByRole('button', { name: 'Submit exam' }).click();
  await page.getByRole('button', { name: 'Submit now' }).click();
  await page.locator('[data-page="ended"]').waitFor({ timeout: 15000 });
  await page.locator('[data-testid="score"]').waitFor({ timeout: 90000 });
  const score = (await page.locator('[data-testid="score"]').textContent()).trim();
  await shot('3-result');
  assert(score === '1 / 5', `the note typed on the desktop is found by its check, and nothing else (got ${score})`);
  assert(consoleErrors.length === 0, `no browser errors: ${consoleErrors.join('; ')}`);
}
