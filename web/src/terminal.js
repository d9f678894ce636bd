// The exam terminal: xterm.js over the terminal WebSocket. Binary frames carry raw bytes both ways; the client sends
// `{"type":"resize","cols","rows"}`; the server sends `status`, `notice` and `ended` text frames. On every connect the
// server replays the scrollback, so the screen is reset first. Drops are retried with backoff (see banner.js).
//
// Flow control: on connect the page asks for it (`{"type":"flow_control","window":WINDOW}`) and acknowledges output
// once xterm.js has processed it (the write callback), `{"type":"ack","bytes":N}` every ACK_EVERY bytes. The server
// stops reading the candidate's PTY while WINDOW bytes are unacknowledged, so a flood (`yes`, `cat` of a big file)
// never piles more than that up in front of the prompt: Ctrl-C is answered at once, and the page never falls behind.
// WINDOW is what xterm.js gets through in well under 200 ms even at its slowest (a flood of short lines), and still
// a few round trips' worth for a candidate far from the server.

import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';
import { backoff, MAX_ATTEMPTS, setChannel } from './banner.js';

/** At most this much output is unacknowledged (sent by the server, not yet processed by xterm.js). */
const WINDOW = 128 * 1024;
/** Output is acknowledged in batches of this many processed bytes. */
const ACK_EVERY = 32 * 1024;

const CLOSE = { UNAUTH: 4401, FORBIDDEN: 4403, NOT_FOUND: 4404, NOT_READY: 4409, ENDED: 4410, REPLACED: 4412 };

/** Input goes out in frames of at most this many bytes (the server takes frames up to 64 KiB). */
const INPUT_FRAME = 4 * 1024;
/**
 * Input is paced: at most INPUT_FRAME bytes per INPUT_TICK ms (80 KB/s), far above typing, and slow enough for the
 * environment's terminal to take a large paste as it comes: the shim holds at most 64 KiB of input a program has
 * not read yet, and drops what comes beyond that.
 */
const INPUT_TICK = 50;
/** Input waits while this much is queued in the socket, so a large paste never floods it or freezes the page. */
const INPUT_HIGH_WATER = 256 * 1024;

/** The terminal's colours, light and dark; both keep text at AA contrast or better. */
export const TERMINAL_THEMES = {
  dark: { background: '#111418', foreground: '#e6e6e6', cursor: '#e6e6e6', selectionBackground: '#3a5a80' },
  light: { background: '#fbfbfb', foreground: '#1b1f24', cursor: '#1b1f24', selectionBackground: '#b6d0ee' },
};

/** Copies text to the clipboard (the Clipboard API, or a hidden textarea where it is refused). */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.style.position = 'fixed';
    ta.style.opacity = '0';
    document.body.append(ta);
    ta.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    ta.remove();
    return ok;
  }
}

export class ExamTerminal {
  /**
   * @param {HTMLElement} container
   * @param {string} sessionId
   * @param {{onStatus?: Function, onNotice?: Function, onEnded?: Function, onClosed?: Function}} hooks
   */
  constructor(container, sessionId, hooks = {}, options = {}) {
    this.container = container;
    this.sessionId = sessionId;
    this.hooks = hooks;
    this.name = options.name || 'main';
    this.channel = this.name === 'main' ? 'terminal' : `terminal:${this.name}`;
    this.queue = []; // input not yet sent: Uint8Array chunks of at most INPUT_FRAME bytes
    this.pumpTimer = null;
    this.attempt = 0;
    this.stopped = false;
    this.ws = null;
    this.timer = null;
    this.term = new Terminal({
      cursorBlink: true,
      convertEol: false,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: options.fontSize || 14,
      scrollback: 5000,
      screenReaderMode: !!options.screenReader,
      theme: TERMINAL_THEMES[options.theme] || TERMINAL_THEMES.dark,
    });
    this.fit = new FitAddon();
    this.term.loadAddon(this.fit);
    this.term.open(container);
    // Ctrl+Shift+C copies the selection and Ctrl+Shift+V pastes (bracketed when the program asked for it), as in
    // desktop terminals; plain Ctrl+C stays the interrupt.
    this.term.attachCustomKeyEventHandler((e) => {
      if (e.type !== 'keydown' || !e.ctrlKey || !e.shiftKey || e.altKey || e.metaKey) return true;
      const k = e.key.toLowerCase();
      if (k === 'c') {
        e.preventDefault();
        if (this.term.hasSelection()) copyText(this.term.getSelection()).then((ok) => ok && this.hooks.onCopied?.());
        return false;
      }
      if (k === 'v') {
        e.preventDefault();
        this.pasteFromClipboard();
        return false;
      }
      return true;
    });
    this.encoder = new TextEncoder();
    // Keys typed while a paste is read from the clipboard wait for it, so they never overtake it.
    this.held = null;
    this.term.onData((d) => {
      if (this.held) this.held.push(d);
      else this.sendBytes(this.encoder.encode(d));
    });
    this.term.onBinary((d) => {
      const b = new Uint8Array(d.length);
      for (let i = 0; i < d.length; i++) b[i] = d.charCodeAt(i) & 0xff;
      this.sendBytes(b);
    });
    this.term.onResize(({ cols, rows }) => this.sendResize(cols, rows));
    this.onWindowResize = () => this.refit();
    window.addEventListener('resize', this.onWindowResize);
    if (typeof ResizeObserver !== 'undefined') {
      this.observer = new ResizeObserver(() => this.refit());
      this.observer.observe(container);
    }
    this.refit();
    this.connect();
  }

  refit() {
    if (this.stopped) return;
    try {
      this.fit.fit();
    } catch {
      /* not laid out yet */
    }
  }

  focus() {
    this.term.focus();
  }

  /** Pastes text as typed input (xterm.js adds bracketed-paste markers when the program turned that mode on). */
  paste(text) {
    if (text) this.term.paste(text);
  }

  async pasteFromClipboard() {
    if (this.held) return;
    this.held = [];
    let text = '';
    let refused = false;
    try {
      text = await navigator.clipboard.readText();
    } catch {
      refused = true;
    }
    const held = this.held;
    this.held = null;
    if (refused) this.hooks.onNotice?.(this.hooks.pasteRefused);
    else this.paste(text);
    for (const d of held) this.sendBytes(this.encoder.encode(d));
  }

  setOptions({ fontSize, theme, screenReader } = {}) {
    if (fontSize) this.term.options.fontSize = fontSize;
    if (theme) this.term.options.theme = TERMINAL_THEMES[theme] || TERMINAL_THEMES.dark;
    if (screenReader !== undefined) this.term.options.screenReaderMode = !!screenReader;
    this.refit();
  }

  /** Input is queued in frames and sent as the socket drains: a large paste is never lost nor sent all at once. */
  sendBytes(bytes) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    for (let at = 0; at < bytes.length; at += INPUT_FRAME) this.queue.push(bytes.subarray(at, at + INPUT_FRAME));
    this.pump();
  }

  pump() {
    if (this.pumpTimer) return;
    const ws = this.ws;
    if (!this.queue.length || !ws || ws.readyState !== WebSocket.OPEN) return;
    const later = (ms) => {
      this.pumpTimer = setTimeout(() => {
        this.pumpTimer = null;
        this.pump();
      }, ms);
    };
    if (ws.bufferedAmount > INPUT_HIGH_WATER) return later(INPUT_TICK);
    // A window of INPUT_TICK ms carries at most INPUT_FRAME bytes: typing goes at once, a paste at the pace.
    const now = performance.now();
    if (!this.window || now - this.window.start >= INPUT_TICK) this.window = { start: now, bytes: 0 };
    while (this.queue.length && this.window.bytes < INPUT_FRAME) {
      const room = INPUT_FRAME - this.window.bytes;
      const next = this.queue[0];
      const part = next.length > room ? next.subarray(0, room) : next;
      if (next.length > room) this.queue[0] = next.subarray(room);
      else this.queue.shift();
      ws.send(part);
      this.window.bytes += part.length;
    }
    if (this.queue.length) later(Math.max(1, INPUT_TICK - (performance.now() - this.window.start)));
  }

  sendResize(cols, rows) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: 'resize', cols, rows }));
  }

  connect() {
    if (this.stopped) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const which = this.name === 'main' ? '' : `?terminal=${encodeURIComponent(this.name)}`;
    const ws = new WebSocket(
      `${proto}//${location.host}/api/v1/sessions/${encodeURIComponent(this.sessionId)}/terminal${which}`,
    );
    this.queue = []; // input typed into a connection that dropped is not replayed into the next one
    clearTimeout(this.pumpTimer);
    this.pumpTimer = null;
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    let opened = false;
    let firstOutput = true;
    // Bytes of output processed by xterm.js on this connection, and not yet acknowledged.
    let unacked = 0;
    const processed = (n) => {
      unacked += n;
      if (unacked >= ACK_EVERY && this.ws === ws && ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ type: 'ack', bytes: unacked }));
        unacked = 0;
      }
    };
    ws.onopen = () => {
      opened = true;
      ws.send(JSON.stringify({ type: 'flow_control', window: WINDOW }));
      this.refit();
      this.sendResize(this.term.cols, this.term.rows);
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') {
        let f;
        try {
          f = JSON.parse(ev.data);
        } catch {
          return;
        }
        if (f.type === 'status') {
          // The connection works: the attempt counter starts over.
          this.attempt = 0;
          setChannel(this.channel, 'ok');
          this.hooks.onStatus?.(f);
        } else if (f.type === 'notice') this.hooks.onNotice?.(f.message);
        else if (f.type === 'ended') this.hooks.onEnded?.(f);
        return;
      }
      if (firstOutput) {
        // The server replays the scrollback on every connect: start from a clean screen.
        firstOutput = false;
        this.term.reset();
      }
      const data = new Uint8Array(ev.data);
      this.term.write(data, () => processed(data.length));
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws || this.stopped) return;
      this.ws = null;
      switch (ev.code) {
        case CLOSE.ENDED:
          this.stop();
          this.hooks.onClosed?.('ended', ev.reason);
          return;
        case CLOSE.NOT_FOUND:
        case CLOSE.UNAUTH:
        case CLOSE.FORBIDDEN:
        case CLOSE.REPLACED:
          setChannel(this.channel, 'ok');
          this.stopped = true;
          this.hooks.onClosed?.(
            { 4404: 'not_found', 4401: 'unauthenticated', 4403: 'forbidden', 4412: 'replaced' }[ev.code],
            ev.reason,
          );
          return;
        case CLOSE.NOT_READY:
          // Not an outage: the environment is not ready yet. Try again shortly without alarming anyone.
          this.timer = setTimeout(() => this.connect(), 1000);
          return;
        default:
          this.retry(opened);
      }
    };
  }

  retry() {
    if (this.stopped) return;
    this.attempt += 1;
    if (this.attempt > MAX_ATTEMPTS) {
      setChannel(this.channel, 'failed', this.attempt);
      this.hooks.onClosed?.('gave_up');
      return;
    }
    setChannel(this.channel, 'retrying', this.attempt);
    this.timer = setTimeout(() => this.connect(), backoff(this.attempt));
  }

  /** Reconnects now (after a takeover, or when the user asks), starting the attempt count over. */
  reconnect() {
    this.stopped = false;
    this.attempt = 0;
    clearTimeout(this.timer);
    if (this.ws) {
      const old = this.ws;
      this.ws = null;
      old.close();
    }
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.pumpTimer);
    setChannel(this.channel, 'ok');
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try {
        ws.close();
      } catch {
        /* already closed */
      }
    }
  }

  dispose() {
    this.stop();
    window.removeEventListener('resize', this.onWindowResize);
    this.observer?.disconnect();
    this.term.dispose();
  }
}
