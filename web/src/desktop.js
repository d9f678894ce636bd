// The exam desktop: noVNC over the desktop WebSocket (`/api/v1/sessions/{id}/desktop`), which carries RFB to the VNC
// server inside the candidate's own environment. The server lets only the session's owner through, so the VNC
// server needs no password. A dropped connection is retried with the terminal's backoff (banner.js), at most
// MAX_ATTEMPTS times; the page says what happens at every step: starting, connected, lost and reconnecting, ended.

import RFB from '@novnc/novnc/lib/rfb.js';
import { backoff, MAX_ATTEMPTS, setChannel } from './banner.js';
import { h } from './dom.js';
import { D } from './messages.js';

export class ExamDesktop {
  /**
   * @param {HTMLElement} container where the desktop is drawn
   * @param {string} sessionId
   * @param {{onClosed?: Function}} hooks onClosed('ended' | 'gave_up')
   */
  constructor(container, sessionId, hooks = {}) {
    this.container = container;
    this.sessionId = sessionId;
    this.hooks = hooks;
    this.attempt = 0;
    this.stopped = false;
    this.rfb = null;
    this.timer = null;
    this.status = h('p', { class: 'desktop-status', role: 'status', 'aria-live': 'polite' }, D.starting);
    this.screen = h('div', { class: 'desktop-screen', 'data-testid': 'desktop-screen' });
    container.replaceChildren(this.status, this.screen);
    this.connect();
  }

  url() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${location.host}/api/v1/sessions/${encodeURIComponent(this.sessionId)}/desktop`;
  }

  connect() {
    if (this.stopped) return;
    this.screen.replaceChildren();
    let rfb;
    try {
      rfb = new RFB(this.screen, this.url(), { shared: true });
    } catch (e) {
      this.say(D.couldNotOpen(e.message));
      return this.retry();
    }
    rfb.scaleViewport = true;
    rfb.resizeSession = false;
    rfb.focusOnClick = true;
    this.rfb = rfb;
    rfb.addEventListener('connect', () => {
      if (this.rfb !== rfb) return;
      this.attempt = 0;
      setChannel('desktop', 'ok');
      this.say('');
      this.status.hidden = true;
    });
    rfb.addEventListener('disconnect', () => {
      if (this.rfb !== rfb || this.stopped) return;
      this.rfb = null;
      this.status.hidden = false;
      this.afterDrop();
    });
  }

  /** After a drop: an ended session stops here; anything else is retried (bounded). */
  async afterDrop() {
    try {
      const r = await fetch(`/api/v1/sessions/${encodeURIComponent(this.sessionId)}`, { credentials: 'same-origin' });
      if (r.ok) {
        const v = await r.json();
        if (v.state !== 'ready' && v.state !== 'active') {
          this.stop();
          this.say(D.ended);
          this.hooks.onClosed?.('ended');
          return;
        }
      }
    } catch {
      /* the network is down: retry below */
    }
    this.retry();
  }

  retry() {
    if (this.stopped) return;
    this.attempt += 1;
    if (this.attempt > MAX_ATTEMPTS) {
      setChannel('desktop', 'failed', this.attempt);
      this.say(D.unreachable);
      this.hooks.onClosed?.('gave_up');
      return;
    }
    setChannel('desktop', 'retrying', this.attempt);
    this.say(D.retrying(this.attempt, MAX_ATTEMPTS));
    this.timer = setTimeout(() => this.connect(), backoff(this.attempt));
  }

  say(text) {
    this.status.textContent = text;
  }

  /** Puts text on the desktop's clipboard (then paste it there: middle-click, or Shift+Insert in a terminal). */
  paste(text) {
    if (!this.rfb) return false;
    this.rfb.clipboardPasteFrom(text);
    return true;
  }

  focus() {
    this.rfb?.focus();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    setChannel('desktop', 'ok');
    const rfb = this.rfb;
    this.rfb = null;
    try {
      rfb?.disconnect();
    } catch {
      /* already closed */
    }
  }

  dispose() {
    this.stop();
    this.container.replaceChildren();
  }
}
