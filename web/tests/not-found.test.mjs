// Someone else's session URL, and a random one, show the plain "no such session" page.
import { assert, signIn } from './assert.mjs';

export const name = "someone else's session URL shows the not-found page";

export default async function ({ page, base, signInUrl, shot, newContext }) {
  // Candidate A starts a session (through the API with A's cookie).
  const a = await newContext();
  const pa = await a.newPage();
  await signIn(pa, signInUrl().url);
  const created = await pa.evaluate(async () => {
    const r = await fetch('/api/v1/sessions', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Examroom': '1' },
      body: JSON.stringify({ exam_id: 'quick-check' }),
    });
    return { status: r.status, body: await r.json() };
  });
  assert(created.status === 201, `A's session was created (${created.status})`);
  const id = created.body.id;

  // Candidate B opens A's session URL.
  await signIn(page, signInUrl().url);
  await page.goto(`${base}/sessions/${id}`);
  await page.locator('[data-page="not-found"]').waitFor({ timeout: 10000 });
  assert((await page.locator('h1').textContent()) === 'No such session', 'the heading says no such session');
  const text = await page.locator('main').textContent();
  assert(!text.includes(id.slice(0, 8)) || text.indexOf(id) === -1, 'nothing about A leaks');
  await shot('other-candidate');

  // A random id and a malformed one look the same.
  await page.goto(`${base}/sessions/00000000-0000-4000-8000-000000000000`);
  await page.locator('[data-page="not-found"]').waitFor({ timeout: 10000 });
  await page.goto(`${base}/sessions/not-an-id`);
  await page.locator('[data-page="not-found"]').waitFor({ timeout: 10000 });

  // A still sees their own session.
  await pa.goto(`${base}/sessions/${id}`);
  await pa.locator('[data-page="provisioning"], [data-page="exam"]').first().waitFor({ timeout: 15000 });
  await a.close();
}
