// `/proctor`: every session in a live table, polled every 2 s (failures show the connection banner). Each row's
// remaining time counts down locally and is re-synced from the server on every refresh. Selecting a row (a button)
// shows its event trail and a Terminate form (reason required, "grade this end" checked by default), confirmed in a
// dialog before anything is sent.

import { api, ApiError, isLive } from './api.js';
import { backoff, MAX_ATTEMPTS, setChannel, clearBanner } from './banner.js';
import { announce, formatDuration, h, show } from './dom.js';
import { signedOutPage } from './session.js';
import { M, P } from './messages.js';

const POLL_MS = 2000;

export function proctorsOnlyPage() {
  document.title = `${P.proctorsOnlyTitle} · examroom`;
  show(
    h(
      'section',
      { class: 'card narrow', 'data-page': 'proctors-only' },
      h('h1', {}, P.proctorsOnly),
      h('p', {}, P.proctorsOnlyHelp),
      h('p', {}, h('a', { href: '/', 'data-link': '' }, M.goToExams)),
    ),
  );
}

function describeEvent(e) {
  if (!e) return '';
  const what = e.from || e.to ? `${e.from || '–'} → ${e.to || '–'}` : e.kind;
  return e.reason ? `${what}: ${e.reason}` : what;
}

function timeOf(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso || '' : d.toLocaleTimeString();
}

export class ProctorPage {
  constructor() {
    this.sessions = [];
    this.lastEvents = new Map(); // id -> last event (fetched for live sessions and when the state changes)
    this.lastStates = new Map();
    this.syncedAt = 0; // performance.now() of the last successful list
    this.selected = null;
    this.pollTimer = null;
    this.tickTimer = null;
    this.failures = 0;
    this.disposed = false;
    this.titles = new Map();
  }

  async start() {
    document.title = `${P.proctor} · examroom`;
    this.tbody = h('tbody', {});
    this.statusEl = h('p', { class: 'muted', 'aria-live': 'polite' }, P.loadingSessions);
    this.detail = h('section', { class: 'proctor-detail', 'aria-label': P.selectedSession, hidden: true });
    show(
      h(
        'section',
        { class: 'card', 'data-page': 'proctor' },
        h('h1', {}, P.proctor),
        this.statusEl,
        h(
          'table',
          { class: 'sessions' },
          h('caption', { class: 'sr-only' }, P.allSessions),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              P.columns.map((c) => h('th', { scope: 'col' }, c)),
            ),
          ),
          this.tbody,
        ),
        this.detail,
      ),
    );
    try {
      const exams = await api('/api/v1/exams');
      for (const e of exams.exams || []) this.titles.set(e.id, e.title);
    } catch {
      /* titles are a nicety: the ids show instead */
    }
    await this.poll();
    this.tickTimer = setInterval(() => this.drawRemaining(), 250);
  }

  dispose() {
    this.disposed = true;
    clearTimeout(this.pollTimer);
    clearInterval(this.tickTimer);
    clearBanner();
  }

  async poll() {
    clearTimeout(this.pollTimer);
    if (this.disposed) return;
    if (this.polling) {
      this.pollAgain = true;
      return;
    }
    this.polling = true;
    try {
      await this.pollOnce();
    } finally {
      this.polling = false;
    }
    if (this.pollAgain && !this.disposed) {
      this.pollAgain = false;
      this.poll();
    }
  }

  async pollOnce() {
    let list;
    try {
      list = await api('/api/v1/sessions');
    } catch (e) {
      if (this.disposed) return;
      if (e instanceof ApiError && e.status === 401) {
        this.dispose();
        return signedOutPage();
      }
      this.failures += 1;
      setChannel('proctor', this.failures > MAX_ATTEMPTS ? 'failed' : 'retrying', this.failures);
      if (this.failures <= MAX_ATTEMPTS) this.pollTimer = setTimeout(() => this.poll(), backoff(this.failures));
      return;
    }
    if (this.disposed) return;
    if (this.failures) {
      this.failures = 0;
      setChannel('proctor', 'ok');
    }
    this.sessions = (list.sessions || []).slice().sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    this.syncedAt = performance.now();
    await this.loadLastEvents();
    if (this.disposed) return;
    this.render();
    if (this.selected) {
      const s = this.sessions.find((x) => x.id === this.selected);
      if (s) this.updateDetail(s);
    }
    this.pollTimer = setTimeout(() => this.poll(), POLL_MS);
  }

  // The last event of each live session (and of any whose state changed since the last poll).
  async loadLastEvents() {
    const wanted = this.sessions.filter(
      (s) => isLive(s.state) || this.lastStates.get(s.id) !== s.state || !this.lastEvents.has(s.id),
    );
    await Promise.all(
      wanted.map(async (s) => {
        try {
          const ev = (await api(`/api/v1/sessions/${encodeURIComponent(s.id)}/events`)).events || [];
          this.lastEvents.set(s.id, ev);
          this.lastStates.set(s.id, s.state);
        } catch {
          /* keep what we had */
        }
      }),
    );
  }

  remainingText(s) {
    if (s.state === 'active') {
      const left = Math.max(0, s.remaining_seconds - (performance.now() - this.syncedAt) / 1000);
      return formatDuration(Math.ceil(left));
    }
    if (isLive(s.state) && s.state !== 'terminating') return P.notStarted(formatDuration(s.remaining_seconds));
    return '—';
  }

  render() {
    const focused = document.activeElement?.dataset?.session;
    if (!this.sessions.length) {
      this.statusEl.textContent = P.noSessions;
    } else {
      const live = this.sessions.filter((s) => isLive(s.state)).length;
      this.statusEl.textContent = P.summary(this.sessions.length, live, new Date().toLocaleTimeString());
    }
    this.tbody.replaceChildren(
      ...this.sessions.map((s) => {
        const evs = this.lastEvents.get(s.id) || [];
        const last = evs[evs.length - 1];
        return h(
          'tr',
          { 'data-session': s.id, 'data-state': s.state, class: s.id === this.selected ? 'selected' : null },
          h(
            'td',
            {},
            h(
              'button',
              {
                type: 'button',
                class: 'row-link',
                'data-session': s.id,
                'aria-pressed': s.id === this.selected ? 'true' : 'false',
                'aria-label': P.rowLabel(s.user_id, this.titles.get(s.exam_id) || s.exam_id, s.state),
                onclick: () => this.select(s.id),
              },
              s.user_id,
            ),
          ),
          h('td', {}, this.titles.get(s.exam_id) || s.exam_id),
          h('td', { class: 'state' }, h('span', { class: `state-badge state-${s.state}` }, s.state)),
          h('td', { class: 'remaining', 'data-remaining': s.id }, this.remainingText(s)),
          h('td', { class: 'last-event' }, last ? `${timeOf(last.at)} ${describeEvent(last)}` : '—'),
        );
      }),
    );
    if (focused) this.tbody.querySelector(`button[data-session="${CSS.escape(focused)}"]`)?.focus();
  }

  drawRemaining() {
    for (const s of this.sessions) {
      if (s.state !== 'active') continue;
      const cell = this.tbody.querySelector(`td[data-remaining="${CSS.escape(s.id)}"]`);
      if (cell) cell.textContent = this.remainingText(s);
    }
  }

  select(id) {
    this.selected = id;
    for (const tr of this.tbody.querySelectorAll('tr')) {
      const on = tr.dataset.session === id;
      tr.classList.toggle('selected', on);
      tr.querySelector('button.row-link')?.setAttribute('aria-pressed', on ? 'true' : 'false');
    }
    const s = this.sessions.find((x) => x.id === id);
    if (!s) return;
    this.renderDetail(s);
    this.detail.querySelector('h2')?.focus();
  }

  renderDetail(s) {
    this.detail.hidden = false;
    this.detailState = h('p', { class: 'detail-state' });
    this.trail = h('ol', { class: 'event-trail', 'aria-label': P.eventTrail });
    this.reasonInput = h('input', { id: 'terminate-reason', name: 'reason', type: 'text', required: true, maxlength: '500', autocomplete: 'off' });
    this.gradeInput = h('input', { id: 'terminate-grade', name: 'grade', type: 'checkbox', checked: true });
    this.formError = h('p', { class: 'error', role: 'alert', hidden: true });
    this.form = h(
      'form',
      { class: 'terminate-form', 'aria-labelledby': 'terminate-title', onsubmit: (e) => this.askTerminate(e) },
      h('h3', { id: 'terminate-title' }, P.terminateTitle),
      h('p', {}, h('label', { for: 'terminate-reason' }, P.reasonRequired), h('br'), this.reasonInput),
      h('p', {}, this.gradeInput, ' ', h('label', { for: 'terminate-grade' }, P.gradeThisEnd)),
      this.formError,
      h('p', {}, h('button', { type: 'submit', class: 'danger primary' }, P.terminate)),
    );
    this.confirm = h(
      'dialog',
      { class: 'confirm', 'aria-labelledby': 'confirm-terminate-title' },
      h('h2', { id: 'confirm-terminate-title' }, P.terminateConfirm),
      h('p', { class: 'confirm-text' }),
      h(
        'div',
        { class: 'dialog-buttons' },
        h('button', { type: 'button', class: 'cancel', onclick: () => this.confirm.close() }, P.cancel),
        h('button', { type: 'button', class: 'primary danger confirm-terminate', onclick: () => this.terminate() }, P.terminateNow),
      ),
    );
    this.detail.replaceChildren(
      h('h2', { tabindex: '-1' }, `${s.user_id} · ${this.titles.get(s.exam_id) || s.exam_id}`),
      h(
        'p',
        { class: 'muted' },
        P.session,
        h('code', {}, s.id),
        // The version of the exam definition this session runs on (it keeps it when the catalog is reloaded).
        P.examVersion,
        s.exam_version
          ? h('code', { class: 'exam-version', title: s.exam_version }, s.exam_version.slice(0, 12))
          : h('span', { class: 'exam-version' }, P.notRecorded),
      ),
      this.detailState,
      (this.workspaceEl = h('section', { class: 'proctor-workspace', 'aria-labelledby': 'workspace-title', 'data-testid': 'workspace' },
        h('h3', { id: 'workspace-title' }, P.workspace),
        h('p', { class: 'muted' }, P.loading))),
      h('h3', {}, P.eventTrail),
      this.trail,
      this.form,
      this.confirm,
    );
    this.updateDetail(s);
    this.loadWorkspace(s);
  }

  /** The candidate's flags, visited tasks and notepad, as kept on the server (readable also after the end). */
  async loadWorkspace(s) {
    const el = this.workspaceEl;
    let w;
    try {
      w = await api(`/api/v1/sessions/${encodeURIComponent(s.id)}/workspace`);
    } catch (e) {
      el.replaceChildren(h('h3', { id: 'workspace-title' }, P.workspace), h('p', { class: 'error' }, e.message));
      return;
    }
    if (this.workspaceEl !== el) return;
    el.replaceChildren(
      h('h3', { id: 'workspace-title' }, P.workspace),
      h('p', {}, P.flagged, w.flagged.length ? w.flagged.map((t) => h('code', {}, t)).flatMap((c, i) => (i ? [', ', c] : [c])) : P.none),
      h('p', {}, P.visited, w.visited.length ? w.visited.join(', ') : P.none),
      h('h4', {}, P.notepad),
      w.notepad ? h('pre', { class: 'proctor-notepad', 'data-testid': 'proctor-notepad' }, w.notepad) : h('p', { class: 'muted' }, P.emptyNotepad),
    );
  }

  updateDetail(s) {
    if (!this.detailState) return;
    this.detailState.textContent = P.state(s.state, s.end_reason);
    const evs = this.lastEvents.get(s.id) || [];
    this.trail.replaceChildren(
      ...(evs.length
        ? evs.map((e) =>
            h(
              'li',
              { 'data-kind': e.kind },
              h('time', { datetime: e.at }, timeOf(e.at)),
              ' ',
              describeEvent(e),
              e.actor ? h('span', { class: 'muted' }, P.by(e.actor)) : null,
            ),
          )
        : [h('li', { class: 'muted' }, P.noEvents)]),
    );
    // Only ready and active sessions can be terminated.
    const canEnd = s.state === 'ready' || s.state === 'active';
    this.form.hidden = !canEnd;
  }

  askTerminate(e) {
    e.preventDefault();
    this.formError.hidden = true;
    const reason = this.reasonInput.value.trim();
    if (!reason) {
      this.formError.hidden = false;
      this.formError.textContent = P.giveReason;
      this.reasonInput.focus();
      return;
    }
    const s = this.sessions.find((x) => x.id === this.selected);
    this.confirm.querySelector('.confirm-text').textContent =
      P.confirmText(s ? s.user_id : null, this.gradeInput.checked, reason);
    this.confirm.querySelector('.confirm-terminate').disabled = false;
    this.confirm.showModal();
    this.confirm.querySelector('.cancel').focus();
  }

  async terminate() {
    const id = this.selected;
    const btn = this.confirm.querySelector('.confirm-terminate');
    btn.disabled = true;
    try {
      await api(`/api/v1/sessions/${encodeURIComponent(id)}/terminate`, {
        method: 'POST',
        body: { reason: this.reasonInput.value.trim(), grade: this.gradeInput.checked },
      });
      this.confirm.close();
      this.reasonInput.value = '';
      announce(P.beingTerminated);
    } catch (e) {
      this.confirm.close();
      this.formError.hidden = false;
      this.formError.textContent = `${e.message} ${e.guidance || ''}`;
    }
    this.poll();
  }
}
