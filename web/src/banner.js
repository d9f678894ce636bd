// The connection banner. Each channel (the status stream, the terminal) reports its own state; the banner shows the
// worst: "Connection lost, reconnecting (attempt n)" while retrying, and after MAX_ATTEMPTS an explicit failure that
// says what to do. There is never a silent stall.

import { h } from './dom.js';
import { B } from './messages.js';

export const MAX_ATTEMPTS = 8;

/** The delay before attempt n (1-based): 0.5 s doubling to at most 8 s, with a little jitter. */
export function backoff(n) {
  const base = Math.min(500 * 2 ** (n - 1), 8000);
  return base + Math.floor(Math.random() * 250);
}

const channels = new Map(); // name -> { state: 'ok' | 'retrying' | 'failed', attempt }

function render() {
  const el = document.getElementById('banner');
  let worst = null;
  for (const c of channels.values()) {
    if (c.state === 'failed') worst = c;
    else if (c.state === 'retrying' && (!worst || worst.state !== 'failed')) {
      if (!worst || c.attempt > worst.attempt) worst = c;
    }
  }
  if (!worst) {
    el.hidden = true;
    el.replaceChildren();
    el.className = 'banner';
    return;
  }
  el.hidden = false;
  if (worst.state === 'failed') {
    el.className = 'banner banner-failed';
    el.setAttribute('role', 'alert');
    el.replaceChildren(
      h('strong', {}, B.lost),
      B.gaveUp(MAX_ATTEMPTS),
      h('button', { type: 'button', onclick: () => location.reload() }, B.reload),
    );
  } else {
    el.className = 'banner banner-retrying';
    el.setAttribute('role', 'status');
    el.replaceChildren(B.retrying(worst.attempt));
  }
}

export function setChannel(name, state, attempt = 0) {
  if (state === 'ok') channels.delete(name);
  else channels.set(name, { state, attempt });
  render();
}

export function clearBanner() {
  channels.clear();
  render();
}
