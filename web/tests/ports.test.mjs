// A port inside, in the candidate's browser: the candidate serves a page on port 8000 from their terminal and opens it
// from the exam page. The page is hostile: it tries to read and overwrite examroom's sign-in cookie and to register a
// service worker. It is served from an origin of its own, so it can do none of it.
import { assert, signIn, waitForTerminalLine } from './assert.mjs';

export const name = 'ports: a page served inside opens in its own origin and cannot touch examroom';

const PAGE = `<!doctype html><title>loading</title><h1>examroom</h1><script>
const before = document.cookie;
document.cookie = 'examroom_session=planted; path=/';
document.cookie = 'examroom_session=planted2; path=/; domain=127.0.0.1';
document.cookie = 'examroom_session=planted3; path=/; domain=localhost';
navigator.serviceWorker.register('/sw.js').then(() => 'registered', (e) => 'refused').then((sw) => {
  document.title = 'done cookies=[' + before + '] sw=' + sw + ' origin=' + location.origin;
});
</script>`;

export default async function ({ page, context, signInUrl, shot, consoleErrors }) {
  const { url } = signInUrl();
  await signIn(page, url);
  const base = new URL(page.url()).origin;
  const cookieBefore = (await context.cookies(base)).find((c) => c.name === 'examroom_session');
  assert(cookieBefore, 'signed in with the session cookie');
  await page.getByRole('button', { name: 'Start Desktop and web basics' }).click();
  await page.locator('[data-page="exam"]').waitFor({ timeout: 60000 });

  // In the terminal: the page, then a server on port 8000.
  await page.locator('#tab-terminal').click();
  await page.getByTestId('terminal').click();
  await page.keyboard.type("mkdir -p /srv/www && cd /srv/www && cat > index.html <<'EOF'\n");
  for (const line of PAGE.split('\n')) await page.keyboard.type(`${line}\n`);
  await page.keyboard.type('EOF\n');
  await page.keyboard.type('(python3 -m http.server 8000 >/dev/null 2>&1 &) ; sleep 1; echo served-$((6*7))\n');
  await waitForTerminalLine(page, (l) => l.includes('served-42'), 20000);

  // Open port 8000: a new tab, on the port's own origin.
  const [tab] = await Promise.all([context.waitForEvent('page'), page.locator('a[data-port="8000"]').click()]);
  await tab.waitForFunction(() => document.title.startsWith('done'), null, { timeout: 30000 });
  const title = await tab.title();
  await tab.screenshot({ path: undefined }).catch(() => {});
  const origin = new URL(tab.url()).origin;
  assert(/^http:\/\/p8000-[0-9a-f-]{36}\.localhost:\d+$/.test(origin), `served from the port's own origin (${origin})`);
  assert(!title.includes(cookieBefore.value) && !title.includes('examroom_port='), `the page reads no cookie of ours: ${title}`);
  assert(title.includes('sw=refused'), `no service worker can be registered: ${title}`);
  assert((await tab.locator('h1').textContent()) === 'examroom', 'the page itself is served');
  await shot('1-exam');

  // examroom's cookie is untouched, and examroom still knows who we are.
  const cookieAfter = (await context.cookies(base)).filter((c) => c.name === 'examroom_session');
  assert(cookieAfter.length === 1 && cookieAfter[0].value === cookieBefore.value, 'the sign-in cookie is unchanged');
  const who = await page.evaluate(async () => (await fetch('/api/v1/auth/session')).status);
  assert(who === 200, `still signed in (${who})`);
  await tab.close();
  // The service worker's script was refused on purpose (403) and the favicon is the candidate server's 404: the only
  // errors allowed, both on the port's origin.
  const ours = consoleErrors.filter((e) => !e.includes('.localhost:'));
  assert(ours.length === 0, `no browser errors on examroom's pages: ${ours.join('; ')}`);
}
