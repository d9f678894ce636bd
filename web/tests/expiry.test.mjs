// A 20-second exam reaches the ended page by itself, with the reason and the result.
import { assert, signIn, startExam } from './assert.mjs';

export const name = 'expiry: a 20 s exam ends by itself';

export default async function ({ page, base, signInUrl, shot }) {
  await signIn(page, signInUrl().url);
  await startExam(page, base, 'expires-fast');
  await page.locator('[data-page="exam"]').waitFor({ timeout: 30000 });
  await page.waitForFunction(() => /Time left: 00:[01]\d/.test(document.getElementById('clock').textContent), null, {
    timeout: 15000,
  });
  assert(await page.locator('#clock.clock-critical').count(), 'the clock is red in the last minute');
  await shot('running');
  await page.locator('[data-page="ended"]').waitFor({ timeout: 40000 });
  assert((await page.locator('.reason').getAttribute('data-reason')) === 'expired', 'the reason is "expired"');
  await page.locator('[data-testid="score"]').waitFor({ timeout: 60000 });
  await shot('ended');
}
