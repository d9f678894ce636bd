// The server stays away: after 8 attempts the banner stops counting and says plainly what to do.
import { assert, signIn, startExam } from './assert.mjs';

export const name = 'connection lost for good: after 8 attempts an explicit failure';

export default async function ({ page, base, signInUrl, shot, server }) {
  await signIn(page, signInUrl().url);
  await startExam(page, base, 'quick-check');
  await page.locator('[data-page="exam"]').waitFor({ timeout: 30000 });
  await page.locator('.xterm-rows').waitFor();
  await server.stop();
  try {
    const banner = page.locator('#banner');
    await page.waitForFunction(
      () => /reconnecting \(attempt 8\)/.test(document.getElementById('banner').textContent),
      null,
      { timeout: 60000 },
    );
    await page.waitForFunction(() => /We tried 8 times/.test(document.getElementById('banner').textContent), null, {
      timeout: 30000,
    });
    const text = await banner.textContent();
    assert(/Check your network connection, then reload this page/.test(text), `says what to do (${text})`);
    assert(await page.getByRole('button', { name: 'Reload the page' }).isVisible(), 'offers a reload');
    await shot('gave-up');
  } finally {
    await server.start();
  }
  // Reloading once the server is back brings the exam back.
  await page.getByRole('button', { name: 'Reload the page' }).click();
  await page.locator('[data-page="exam"]').waitFor({ timeout: 15000 });
  await page.locator('#banner').waitFor({ state: 'hidden' });
}
