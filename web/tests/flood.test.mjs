// The terminal under a flood, as a candidate meets it: `yes` for 2 s, Ctrl-C, and the next command's output must be
// on the screen within 1 s (the target is 200 ms; 1 s is the floor with margin). Repeated, because the failure this
// guards against was intermittent (without flow control, 4 of 7 tries lost the terminal for over 90 s). The page
// must keep its one WebSocket throughout: no "Connection lost" banner, no reconnect. Then `cat` of a 20 MB file: it
// all reaches the screen, on the same connection. The figures are printed (not asserted beyond the floor).
// FLOOD_ROUNDS=N sets the number of rounds (the figure in docs/PERFORMANCE.md used 30).
import { assert, signIn, startExam, waitForTerminalLine } from './assert.mjs';

export const name = 'flood: after 2 s of yes, Ctrl-C and the next command answer within 1 s, on the same connection';

const ROUNDS = Number(process.env.FLOOD_ROUNDS || 6);
const LIMIT_MS = 1000;

/** Waits (in the page, every animation frame) until a terminal row reads exactly `text`; false after `ms`. */
function visible(page, text, ms) {
  return page
    .waitForFunction(
      (t) => [...document.querySelectorAll('.xterm-rows > div')].some((r) => r.textContent.trim() === t),
      text,
      { timeout: ms, polling: 'raf' },
    )
    .then(
      () => true,
      () => false,
    );
}

export default async function ({ page, base, signInUrl, shot, consoleErrors }) {
  const sockets = [];
  // Bytes of terminal output delivered to the page.
  let delivered = 0;
  page.on('websocket', (ws) => {
    if (!ws.url().endsWith('/terminal')) return;
    sockets.push(ws);
    ws.on('framereceived', (f) => {
      if (typeof f.payload !== 'string') delivered += f.payload.length;
    });
  });
  await signIn(page, signInUrl().url);
  await startExam(page, base, 'quick-check');
  await page.locator('[data-page="exam"]').waitFor({ timeout: 30000 });
  await page.locator('.xterm-rows').waitFor();
  await page.getByTestId('terminal').click();
  await page.keyboard.type('echo warm-$((6*7))\n');
  await waitForTerminalLine(page, (l) => l.trim() === 'warm-42');
  assert(sockets.length === 1, `one terminal WebSocket before the flood (${sockets.length})`);

  const times = [];
  const rates = [];
  for (let round = 1; round <= ROUNDS; round++) {
    await page.keyboard.type('yes\n');
    const before = delivered;
    await page.waitForTimeout(2000);
    rates.push((delivered - before) / 2e6);
    // The flood is on the screen.
    assert(await visible(page, 'y', 2000), `round ${round}: yes prints y lines`);
    const marker = `FLOOD-${round}-${1000 + round * 7}`;
    const t0 = Date.now();
    await page.keyboard.press('Control+C');
    // The command goes in as one input event (typing it key by key would add the keyboard's own round trips).
    await page.keyboard.insertText(`echo FLOOD-${round}-$((1000+${round}*7))`);
    await page.keyboard.press('Enter');
    const ok = await visible(page, marker, 30000);
    const ms = Date.now() - t0;
    times.push(ms);
    if (!ok || ms > LIMIT_MS) await shot(`round-${round}`);
    assert(ok, `round ${round}: ${marker} never appeared within 30 s`);
    assert(ms <= LIMIT_MS, `round ${round}: ${marker} appeared ${ms} ms after Ctrl-C (limit ${LIMIT_MS} ms)`);
    assert(!(await page.locator('#banner').isVisible()), `round ${round}: no connection banner`);
  }
  times.sort((a, b) => a - b);
  const mean = (rates.reduce((a, b) => a + b, 0) / rates.length).toFixed(1);
  console.log(`     Ctrl-C → next command's output on screen (ms, n=${times.length}): ${times.join(' ')}`);
  console.log(`     yes reached the page at ${mean} MB/s (flow control paced it to what xterm.js processed)`);
  assert(sockets.length === 1, `the page kept its one terminal WebSocket (${sockets.length} were opened)`);
  assert(!sockets[0].isClosed(), 'the terminal WebSocket is still open');

  // A candidate cats a large log: all of it reaches the screen, on the same connection.
  await page.keyboard.type('head -c 15000000 /dev/zero | base64 -w 99 > /tmp/big; echo made-$((6*7))\n');
  await waitForTerminalLine(page, (l) => l.trim() === 'made-42');
  const before = delivered;
  const t0 = Date.now();
  await page.keyboard.type('cat /tmp/big; echo after-$((6*7))\n');
  await waitForTerminalLine(page, (l) => l.trim() === 'after-42', 120000);
  const secs = (Date.now() - t0) / 1000;
  console.log(`     cat of 20 MB on screen in ${secs.toFixed(1)} s (${((delivered - before) / 1e6 / secs).toFixed(1)} MB/s)`);
  assert(delivered - before >= 20e6, `the whole file reached the page (${delivered - before} bytes)`);
  assert(sockets.length === 1 && !sockets[0].isClosed(), 'still the one terminal WebSocket after the cat');
  await shot('after-flood');
  assert(consoleErrors.length === 0, `no browser errors: ${consoleErrors.join('; ')}`);
}
