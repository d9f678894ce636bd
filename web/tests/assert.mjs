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

/** The visible lines of one terminal (by its test id: "terminal" for main, "terminal-t1", …). */
export async function linesOf(page, testId) {
  return page.$$eval(`[data-testid="${testId}"] .xterm-rows > div`, (rows) => rows.map((r) => r.textContent.replace(/\s+$/, '')));
}

/** Waits until a line of one terminal satisfies `pred`. */
export async function waitForLineIn(page, testId, pred, timeout = 20000) {
  const until = Date.now() + timeout;
  let lines = [];
  while (Date.now() < until) {
    lines = await linesOf(page, testId);
    if (lines.some(pred)) return lines;
    await page.waitForTimeout(100);
  }
  throw new Error(`no line of ${testId} matched within ${timeout} ms; the screen:\n${lines.join('\n')}`);
}

const AXE = new URL('../node_modules/axe-core/axe.min.js', import.meta.url);
let axeSource = null;

/**
 * Runs axe-core (WCAG 2.1 A and AA rules) on the page as it is and fails on any serious or critical violation,
 * naming each with the elements it found.
 */
export async function axeCheck(page, label) {
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) {
    // Evaluated through the DevTools protocol: the page's Content-Security-Policy (script-src 'self') refuses
    // inline script tags, and rightly so.
    axeSource ??= (await import('node:fs')).readFileSync(AXE, 'utf8');
    await page.evaluate(`${axeSource}\n;void 0`);
  }
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }),
  );
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const report = bad
    .map((v) => `${v.impact} ${v.id}: ${v.help}\n      ${v.nodes.slice(0, 5).map((n) => `${n.target.join(' ')} — ${n.failureSummary?.split('\n').slice(1, 2).join('')}`).join('\n      ')}`)
    .join('\n    ');
  assert(bad.length === 0, `axe-core on the ${label} page: ${bad.length} serious or critical violation(s):\n    ${report}`);
  return result;
}
