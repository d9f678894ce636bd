// Browser tests for the web UI: `node web/tests/run.mjs [name-filter]` (or `make test-web`).
//
// Starts `target/debug/examroom serve` on a free port with a fresh data directory and the sample exams, mints sign-in
// URLs with `examroom token --url`, and drives Debian's Chromium through playwright-core (Playwright's own browser
// download does not work here). Each `*.test.mjs` file exports `name` and a default `async (t) => {}`.
// Screenshots go to web/test-output/. Needs: the server built (`cargo build`), the UI built (`npm run build` in web/,
// which debug builds read from disk), /usr/bin/chromium, and root (the environments use namespaces and cgroups).

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const BIN = process.env.EXAMROOM_BIN || path.join(repo, 'target', 'debug', 'examroom');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = path.join(repo, 'web', 'test-output');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitUp(base, child, ms = 30000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}`);
    try {
      const r = await fetch(`${base}/healthz`);
      if (r.ok) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the server did not answer ${base}/healthz within ${ms} ms`);
}

/** Ends every live session as a proctor (without grading) and waits until all are final; '' when all are. */
async function endAllSessions(base, dataDir, ms = 90000) {
  const token = execFileSync(BIN, ['token', '--data-dir', dataDir, '--user', 'web-tests-cleanup', '--role', 'proctor'], {
    cwd: repo,
    encoding: 'utf8',
  }).trim();
  const call = async (method, p, body) => {
    const r = await fetch(base + p, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return r.ok ? r.json() : null;
  };
  const until = Date.now() + ms;
  let live = [];
  while (Date.now() < until) {
    const list = await call('GET', '/api/v1/sessions');
    live = (list?.sessions || []).filter((x) => x.state !== 'terminated' && x.state !== 'failed');
    if (!live.length) return '';
    for (const x of live) {
      if (x.state === 'ready' || x.state === 'active') {
        await call('POST', `/api/v1/sessions/${x.id}/terminate`, { reason: 'the browser tests are over', grade: false });
      }
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  return `${live.length} session(s) still live after ${ms / 1000} s: ${live.map((x) => `${x.id} (${x.state})`).join(', ')}`;
}

async function main() {
  for (const [what, p] of [
    ['the server (cargo build)', BIN],
    ['Chromium (apt-get install chromium)', CHROMIUM],
    ['the web UI (make web)', path.join(repo, 'web', 'dist', 'index.html')],
  ]) {
    if (!fs.existsSync(p)) {
      console.error(`missing ${what}: ${p}`);
      process.exit(2);
    }
  }
  fs.mkdirSync(OUT, { recursive: true });
  for (const f of fs.readdirSync(OUT)) if (f.endsWith('.png')) fs.rmSync(path.join(OUT, f));
  const filter = process.argv[2] || '';
  const files = fs
    .readdirSync(here)
    .filter((f) => f.endsWith('.test.mjs') && f.includes(filter))
    .sort();

  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'examroom-web-'));
  // The catalog: the sample exams plus the tests' own fixtures (a setup that fails, a 20-second exam), copied
  // together into one temporary directory.
  const examsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'examroom-web-exams-'));
  for (const src of [path.join(repo, 'exams'), path.join(here, 'exams')]) {
    for (const d of fs.readdirSync(src, { withFileTypes: true })) {
      if (d.isDirectory()) fs.cpSync(path.join(src, d.name), path.join(examsDir, d.name), { recursive: true });
    }
  }
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // The ports origin (what candidates serve inside, for their own browser): `http://p<port>-<session>.localhost:P`,
  // which Chromium resolves to the loopback itself.
  const portsPort = await freePort();
  const log = fs.openSync(path.join(OUT, 'server.log'), 'w');
  const startServer = () =>
    spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--exams', examsDir], {
      cwd: repo,
      stdio: ['ignore', log, log],
      env: { ...process.env, EXAMROOM_PORTS_LISTEN: `127.0.0.1:${portsPort}` },
    });
  const stopServer = (s) =>
    new Promise((resolve) => {
      if (s.exitCode !== null || s.signalCode !== null) return resolve();
      const t = setTimeout(() => s.kill('SIGKILL'), 10000);
      s.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      s.kill('SIGTERM');
    });
  let server = startServer();
  // For tests of the connection banner: the server goes away (SIGTERM; environments keep running) and comes back on
  // the same port and data directory.
  const serverControl = {
    stop: () => stopServer(server),
    start: async () => {
      server = startServer();
      await waitUp(base, server);
    },
  };
  let browser;
  let failed = 0;
  let n = 0;
  try {
    await waitUp(base, server);
    // launch() gives Chromium a fresh, empty profile of its own (Playwright refuses --user-data-dir here).
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    let users = 0;
    const signInUrl = (role = 'candidate') => {
      const user = `web-${role}-${++users}-${process.pid}`;
      const args = ['token', '--data-dir', dataDir, '--user', user, '--url', '--base-url', base];
      if (role === 'proctor') args.push('--role', 'proctor');
      const url = execFileSync(BIN, args, { cwd: repo, encoding: 'utf8' }).trim();
      return { user, url, token: decodeURIComponent(/#token=(.+)$/.exec(url)[1]) };
    };
    for (const f of files) {
      const mod = await import(pathToFileURL(path.join(here, f)).href);
      const name = mod.name || f;
      n++;
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await context.newPage();
      const consoleErrors = [];
      page.on('console', (m) => {
        if (m.type() !== 'error') return;
        const where = m.location()?.url || '';
        // Chromium asks for /favicon.ico by itself on the server's /signin page; that 404 is not the UI's.
        if (where.endsWith('/favicon.ico')) return;
        consoleErrors.push(`${m.text()}${where ? ` (${where})` : ''}`);
      });
      page.on('pageerror', (e) => consoleErrors.push(String(e)));
      page.on('response', (r) => r.status() >= 400 && consoleErrors.push(`${r.status()} ${r.request().method()} ${r.url()}`));
      const slug = f.replace(/\.test\.mjs$/, '');
      const shot = (label) => page.screenshot({ path: path.join(OUT, `${slug}-${label}.png`) });
      const started = Date.now();
      try {
        await mod.default({ page, context, browser, base, signInUrl, shot, consoleErrors, server: serverControl, newContext: () => browser.newContext({ viewport: { width: 1280, height: 800 } }) });
        console.log(`ok   ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
      } catch (e) {
        failed++;
        console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
        if (consoleErrors.length) console.log(`     browser console errors:\n       ${consoleErrors.join('\n       ')}`);
        await shot('failure').catch(() => {});
      } finally {
        await context.close().catch(() => {});
      }
    }
  } finally {
    await browser?.close().catch(() => {});
    // The server's SIGTERM never touches environments (by design), so end every session first: otherwise each run
    // would leave its environments running after the data directory is gone.
    if (server.exitCode === null && server.signalCode === null) {
      const left = await endAllSessions(base, dataDir).catch((e) => `could not end the sessions: ${e}`);
      if (left) {
        console.log(`WARNING: ${left}`);
        failed++;
      }
    }
    await stopServer(server);
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(examsDir, { recursive: true, force: true });
  }
  console.log(`screenshots and server.log in ${path.relative(repo, OUT)}/`);
  console.log(`web: ${n - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
