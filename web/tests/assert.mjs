// Tiny helpers shared by the browser tests.
export function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

/** The terminal's visible lines (xterm's DOM renderer), trailing spaces trimmed. */
export async function terminalLines(page) {
  return page.$$eval('.xterm-rows > div', (rows) => rows.map((r) => r.textContent.replace(/\s+$/, '')));
}

/** Waits until some terminal line satisfies `pred`. */
export async function waitForTerminalLine(page, pred, timeout = 20000) {
  const until = Date.now() + timeout;
  let lines = [];
  while (Date.now() < until) {
    lines = await terminalLines(page);
    if (lines.some(pred)) return lines;
    await page.waitForTimeout(100);
  }
  throw new Error(`no terminal line matched within ${timeout} ms; the screen:\n${lines.join('\n')}`);
}

/** Signs in through /signin#token=… and waits for the catalog. */
export async function signIn(page, url) {
  await page.goto(url);
  await page.waitForURL((u) => u.pathname === '/', { timeout: 15000 });
  await page.locator('[data-page="catalog"]').waitFor({ timeout: 15000 });
  assert(!page.url().includes('token='), 'the token left the address bar');
}

/** Starts an exam from the catalog (the page must be signed in) and waits for the session page. */
export async function startExam(page, base, examId) {
  if (new URL(page.url()).pathname !== '/') await page.goto(base + '/');
  await page.locator(`[data-exam="${examId}"] button`).click();
  await page.waitForURL(/\/sessions\/[^/]+$/);
  return new URL(page.url()).pathname.split('/').pop();
}

/** Calls the API as a programmatic client with a Bearer token. */
export async function apiAs(base, token, method, path, body) {
  const r = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}
