// The server answers the UI's pages with index.html, assets with their types and long caching, and /signin as before.
import { assert } from './assert.mjs';

export const name = 'serving: pages, assets, content types, caching';

export default async function ({ base }) {
  for (const p of ['/', '/sessions/abc', '/proctor']) {
    const r = await fetch(base + p);
    assert(r.status === 200, `${p} answers 200 (${r.status})`);
    assert(r.headers.get('content-type').startsWith('text/html'), `${p} is HTML`);
    assert(r.headers.get('cache-control') === 'no-cache', `${p} is revalidated`);
    const body = await r.text();
    assert(body.includes('/assets/'), `${p} is the built index.html`);
  }
  const html = await (await fetch(base + '/')).text();
  const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
  assert(assets.some((a) => a.endsWith('.js')) && assets.some((a) => a.endsWith('.css')), 'index names a script and a style');
  for (const a of assets) {
    const r = await fetch(base + a);
    assert(r.status === 200, `${a} answers 200`);
    const want = a.endsWith('.js') ? 'text/javascript' : 'text/css';
    assert(r.headers.get('content-type').startsWith(want), `${a} is ${want}`);
    assert(r.headers.get('cache-control').includes('immutable'), `${a} is cached`);
  }
  const missing = await fetch(base + '/assets/nope.js');
  assert(missing.status === 404, 'a missing asset is 404');
  const signin = await fetch(base + '/signin');
  assert((await signin.text()).includes('Signing you in'), '/signin is the sign-in page');
}
