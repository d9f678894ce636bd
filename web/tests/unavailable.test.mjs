// An exam whose image is not on the server is shown as not available, with the reason, and offers no Start.
import { assert, signIn } from './assert.mjs';

export const name = 'an exam that cannot start here says why and offers no Start';

export default async function ({ page, signInUrl, shot }) {
  await signIn(page, signInUrl().url);
  // The samples' tools-image runs on an image that this test server never imported.
  const card = page.locator('[data-exam="tools-image"]');
  await card.waitFor({ timeout: 10000 });
  const button = card.locator('button');
  assert((await button.textContent()) === 'Not available', 'the button says Not available');
  assert(await button.isDisabled(), 'the button is disabled');
  const reason = (await card.locator('.unavailable').textContent()) || '';
  assert(reason.length > 10, `a reason is shown: ${reason}`);
  assert(!reason.includes('examroom image import'), `the candidate is not handed the operator's command: ${reason}`);
  // The other exams still offer Start.
  assert(await page.locator('[data-exam="quick-check"] button.primary').isEnabled(), 'quick-check offers Start');
  await card.scrollIntoViewIfNeeded();
  await shot('unavailable');
}
