// `/sessions/{id}`: one page that follows the session's state from the status stream (SSE).
//   created/provisioning → the real provisioning steps, step n of m, elapsed time (never a made-up percentage)
//   ready/active         → tasks, terminal, countdown, Submit
//   terminating          → ending; grading
//   terminated           → the reason, then the result ("grading…" while pending, then the score)
//   failed               → message, guidance, reference, Try again
// A 404 anywhere shows "no such session".

import { api, ApiError, isLive } from './api.js';
import { backoff, MAX_ATTEMPTS, setChannel, clearBanner } from './banner.js';
import { announce, formatDuration, h, show } from './dom.js';
import { renderMarkdown } from './markdown.js';
import { ExamTerminal } from './terminal.js';

const END_REASONS = {
  submitted: 'You submitted your exam.',
  expired: 'Your time ran out, and the exam was submitted as it stood.',
  terminated_by_proctor: 'A proctor ended your exam.',
  not_started: 'The exam was not started in time, so it was closed.',
};

const FAILURE_TITLES = {
  provisioning_failed: 'Your exam could not start',
  provisioning_timeout: 'Your exam could not start in time',
  backend_unavailable: 'The exam service is unavailable',
  environment_lost: 'Your exam environment was lost',
  internal: 'Something went wrong on our side',
};

export function notFoundPage() {
  document.title = 'No such session · examroom';
  show(
    h(
      'section',
      { class: 'card narrow', 'data-page': 'not-found' },
      h('h1', {}, 'No such session'),
      h('p', {}, 'There is no exam session at this address for you. The link may be mistyped, or it belongs to someone else.'),
      h('p', {}, h('a', { href: '/', 'data-link': '' }, 'Go to your exams')),
    ),
  );
}

export function errorPage(err, title = 'Something went wrong') {
  if (err instanceof ApiError && err.status === 401) return signedOutPage();
  show(
    h(
      'section',
      { class: 'card narrow', 'data-page': 'error' },
      h('h1', {}, title),
      h('p', {}, err.message),
      err.guidance ? h('p', {}, err.guidance) : null,
      err.incident ? h('p', {}, 'Incident id for support: ', h('code', {}, err.incident)) : null,
      h('p', {}, h('button', { type: 'button', onclick: () => location.reload() }, 'Try again')),
    ),
  );
}

export function signedOutPage() {
  document.title = 'Sign in · examroom';
  show(
    h(
      'section',
      { class: 'card narrow', 'data-page': 'signed-out' },
      h('h1', {}, 'You are not signed in'),
      h('p', {}, 'Open the sign-in link you were given. If it has expired, ask your proctor or organiser for a new one.'),
    ),
  );
}

export class SessionPage {
  constructor(id, navigate) {
    this.id = id;
    this.navigate = navigate;
    this.view = null;
    this.mode = null; // which layout is on screen: 'provisioning' | 'exam' | 'ending' | 'ended' | 'failed'
    this.es = null;
    this.sseAttempt = 0;
    this.sseTimer = null;
    this.tick = null;
    this.deadlineAt = null; // performance.now() at which the clock reaches zero (re-synced from the server)
    this.terminal = null;
    this.desktop = null;
    this.resultTimer = null;
    this.steps = []; // provisioning messages seen so far
    this.disposed = false;
    this.warned = new Set();
  }

  async start() {
    show(h('section', { class: 'card narrow' }, h('h1', {}, 'Loading your exam…')));
    let view;
    try {
      view = await api(`/api/v1/sessions/${encodeURIComponent(this.id)}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return notFoundPage();
      return errorPage(e, 'Your exam could not be loaded');
    }
    this.exam = await api(`/api/v1/exams/${encodeURIComponent(view.exam_id)}`).catch(() => null);
    this.update(view);
    if (isLive(view.state)) this.openStream();
  }

  dispose() {
    this.disposed = true;
    this.es?.close();
    clearTimeout(this.sseTimer);
    clearInterval(this.tick);
    clearTimeout(this.resultTimer);
    this.terminal?.dispose();
    this.terminal = null;
    this.desktop?.dispose();
    this.desktop = null;
    clearBanner();
    document.getElementById('clock').hidden = true;
  }

  // ---- the status stream ----

  openStream() {
    if (this.disposed) return;
    const es = new EventSource(`/api/v1/sessions/${encodeURIComponent(this.id)}/status`);
    this.es = es;
    es.addEventListener('status', (ev) => {
      this.streamOk();
      try {
        this.update(JSON.parse(ev.data));
      } catch {
        /* ignore a malformed event */
      }
    });
    es.addEventListener('heartbeat', (ev) => {
      this.streamOk();
      try {
        const hb = JSON.parse(ev.data);
        this.syncClock(hb.remaining_seconds, hb.state);
        if (this.view && hb.state !== this.view.state) this.refresh();
      } catch {
        /* ignore */
      }
    });
    es.onerror = () => {
      // The server ends the stream after the final state; that is not an outage.
      es.close();
      if (this.es !== es || this.disposed) return;
      this.es = null;
      if (this.view && !isLive(this.view.state)) return;
      this.retryStream();
    };
  }

  streamOk() {
    if (this.sseAttempt > 0) {
      this.sseAttempt = 0;
      setChannel('status', 'ok');
    }
  }

  async retryStream() {
    this.sseAttempt += 1;
    if (this.sseAttempt > MAX_ATTEMPTS) {
      setChannel('status', 'failed', this.sseAttempt);
      return;
    }
    setChannel('status', 'retrying', this.sseAttempt);
    this.sseTimer = setTimeout(async () => {
      if (this.disposed) return;
      // EventSource hides the HTTP status, so ask once by plain GET: a 404 or 401 is not a network problem.
      try {
        const v = await api(`/api/v1/sessions/${encodeURIComponent(this.id)}`);
        this.update(v);
        if (!isLive(v.state)) {
          this.sseAttempt = 0;
          setChannel('status', 'ok');
          return;
        }
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) {
          setChannel('status', 'ok');
          this.dispose();
          return notFoundPage();
        }
        if (e instanceof ApiError && e.status === 401) {
          setChannel('status', 'ok');
          this.dispose();
          return signedOutPage();
        }
        if (!(e instanceof ApiError) || e.status === 0 || e.status >= 500) return this.retryStream();
      }
      this.openStream();
    }, backoff(this.sseAttempt));
  }

  async refresh() {
    try {
      this.update(await api(`/api/v1/sessions/${encodeURIComponent(this.id)}`));
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        this.dispose();
        notFoundPage();
      }
    }
  }

  // ---- state → page ----

  update(view) {
    if (this.disposed || !view || !view.state) return;
    this.view = view;
    const s = view.state;
    const mode =
      s === 'created' || s === 'provisioning'
        ? 'provisioning'
        : s === 'ready' || s === 'active'
          ? 'exam'
          : s === 'terminating'
            ? 'ending'
            : s === 'terminated'
              ? 'ended'
              : 'failed';
    if (mode !== this.mode) {
      this.leave(this.mode);
      this.mode = mode;
      this[`render_${mode}`]();
    }
    this[`update_${mode}`]?.();
    this.syncClock(view.remaining_seconds, view.state);
  }

  leave(mode) {
    if (mode === 'exam') {
      this.terminal?.dispose();
      this.terminal = null;
      this.desktop?.dispose();
      this.desktop = null;
    }
  }

  // provisioning

  render_provisioning() {
    const title = this.exam?.title || 'your exam';
    document.title = `Preparing ${title} · examroom`;
    this.stepList = h('ol', { class: 'steps', 'aria-label': 'Steps' });
    this.stepNow = h('p', { class: 'step-now', 'aria-live': 'polite' });
    this.elapsed = h('p', { class: 'muted elapsed' });
    show(
      h(
        'section',
        { class: 'card narrow', 'data-page': 'provisioning' },
        h('h1', {}, `Preparing ${title}`),
        h('p', {}, 'Your exam environment is being set up. Your exam time has not started yet.'),
        this.stepNow,
        this.stepList,
        this.elapsed,
      ),
    );
    this.provStartedAt = Date.parse(this.view.created_at);
    const localStart = performance.now();
    const serverAge = Number.isFinite(this.provStartedAt) ? Math.max(0, (Date.now() - this.provStartedAt) / 1000) : 0;
    const draw = () => {
      if (this.mode !== 'provisioning') return;
      const secs = Math.floor(serverAge + (performance.now() - localStart) / 1000);
      this.elapsed.textContent = `Elapsed: ${secs} s`;
    };
    draw();
    this.tick = setInterval(draw, 250);
  }

  update_provisioning() {
    const p = this.view.progress;
    if (p && p.message) {
      if (!this.steps.length || this.steps[this.steps.length - 1].message !== p.message) {
        this.steps.push({ step: p.step, total: p.total, message: p.message });
      }
      this.stepNow.textContent = `Step ${p.step} of ${p.total}: ${p.message}`;
    } else {
      this.stepNow.textContent = this.view.state === 'created' ? 'Waiting to start…' : 'Starting…';
    }
    this.stepList.replaceChildren(
      ...this.steps.map((s, i) =>
        h(
          'li',
          { class: i === this.steps.length - 1 ? 'current' : 'done' },
          h('span', { class: 'mark', 'aria-hidden': 'true' }, i === this.steps.length - 1 ? '▸' : '✓'),
          ` ${s.message}`,
        ),
      ),
    );
  }

  // exam

  render_exam() {
    clearInterval(this.tick);
    const title = this.exam?.title || 'Exam';
    document.title = `${title} · examroom`;
    this.taskNav = h('nav', { class: 'task-nav', 'aria-label': 'Tasks' });
    this.taskBody = h('article', { class: 'task-body', tabindex: '0', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading tasks…'));
    this.noticeEl = h('p', { class: 'notice', role: 'status', hidden: true });
    const termBox = h('div', { class: 'term-box', 'data-testid': 'terminal' });
    this.submitBtn = h('button', { type: 'button', class: 'primary', onclick: () => this.confirmSubmit() }, 'Submit exam');
    this.dialog = this.makeDialog();
    show(
      h(
        'section',
        { class: 'exam', 'data-page': 'exam' },
        h(
          'aside',
          { class: 'tasks' },
          h('h1', {}, title),
          this.taskNav,
          this.taskBody,
          this.portLinks(),
          h('div', { class: 'submit-row' }, this.submitBtn),
        ),
        h(
          'div',
          { class: 'term-col' },
          this.viewTabs(),
          h('h2', { class: 'sr-only' }, 'Terminal'),
          this.noticeEl,
          this.termPane = h(
            'div',
            { class: 'pane', id: 'pane-terminal', role: this.exam?.desktop ? 'tabpanel' : null },
            termBox,
            h('p', { class: 'muted hint' }, 'Terminal: Tab moves into the terminal; press Ctrl+Shift+F6 or click a task to leave it.'),
          ),
          this.desktopPane(),
        ),
        this.dialog,
      ),
    );
    // Leaving the terminal with the keyboard: xterm takes Tab itself, so offer a chord that moves focus out.
    termBox.addEventListener(
      'keydown',
      (e) => {
        if (e.key === 'F6' && e.ctrlKey && e.shiftKey) {
          e.preventDefault();
          e.stopPropagation();
          this.submitBtn.focus();
        }
      },
      true,
    );
    this.loadTasks();
    this.terminal = new ExamTerminal(termBox, this.id, {
      onStatus: (f) => this.syncClock(f.remaining_seconds, f.state),
      onNotice: (m) => this.notice(m),
      onEnded: (f) => {
        this.notice(f.message || 'The exam has ended.');
        this.refresh();
      },
      onClosed: (why, reason) => {
        if (why === 'ended') this.refresh();
        else if (why === 'not_found') {
          this.dispose();
          notFoundPage();
        } else if (why === 'unauthenticated') {
          this.dispose();
          signedOutPage();
        } else if (why === 'replaced') {
          this.notice(
            'This terminal was opened in another window or tab, so it is closed here.',
            h('button', { type: 'button', onclick: () => this.terminal?.reconnect() }, 'Use the terminal here'),
          );
        } else if (why === 'forbidden') {
          this.notice(reason || 'The terminal refused this connection.');
        }
      },
    });
    if (this.exam?.desktop) this.showView('desktop');
    else setTimeout(() => this.terminal?.focus(), 0);
  }

  /** Tabs between the terminal and the desktop, for exams with a desktop. */
  viewTabs() {
    if (!this.exam?.desktop) return null;
    const tab = (name, label) =>
      h(
        'button',
        {
          type: 'button',
          role: 'tab',
          id: `tab-${name}`,
          'aria-controls': `pane-${name}`,
          'data-view': name,
          onclick: () => this.showView(name),
        },
        label,
      );
    this.tabs = [tab('desktop', 'Desktop'), tab('terminal', 'Terminal')];
    return h('div', { class: 'view-tabs', role: 'tablist', 'aria-label': 'Views' }, ...this.tabs);
  }

  /** The desktop's pane: the screen, and a way to paste text into it. */
  desktopPane() {
    if (!this.exam?.desktop) return null;
    const { width, height } = this.exam.desktop;
    this.desktopBox = h('div', { class: 'desktop-box', 'data-testid': 'desktop', style: `aspect-ratio: ${width} / ${height}` });
    const text = h('textarea', { id: 'desktop-paste', rows: 2, placeholder: 'Text to paste into the desktop' });
    const said = h('span', { class: 'muted', role: 'status' });
    const send = h(
      'button',
      {
        type: 'button',
        onclick: () => {
          const ok = this.desktop?.paste(text.value);
          said.textContent = ok
            ? ' On the desktop clipboard: paste it there with a middle-click, or Shift+Insert in a terminal.'
            : ' The desktop is not connected yet.';
        },
      },
      'Send to the desktop clipboard',
    );
    this.deskPane = h(
      'div',
      { class: 'pane', id: 'pane-desktop', role: 'tabpanel', hidden: true },
      h('h2', { class: 'sr-only' }, 'Desktop'),
      this.desktopBox,
      h('div', { class: 'desktop-paste' }, h('label', { for: 'desktop-paste', class: 'sr-only' }, 'Text to paste into the desktop'), text, send, said),
    );
    return this.deskPane;
  }

  showView(name) {
    if (!this.tabs) return;
    for (const t of this.tabs) t.setAttribute('aria-selected', String(t.dataset.view === name));
    this.termPane.hidden = name !== 'terminal';
    this.deskPane.hidden = name !== 'desktop';
    if (name === 'desktop') {
      if (!this.desktop && !this.desktopLoading) {
        // noVNC is loaded only by exams with a desktop.
        this.desktopLoading = import('./desktop.js')
          .then(({ ExamDesktop }) => {
            if (this.disposed || this.mode !== 'exam' || this.desktop) return;
            this.desktop = new ExamDesktop(this.desktopBox, this.id, {
              onClosed: (why) => {
                if (why === 'ended') this.refresh();
              },
            });
          })
          .catch((e) => {
            this.desktopBox.replaceChildren(h('p', { class: 'desktop-status' }, `The desktop could not be loaded: ${e.message}. Reload the page.`));
          })
          .finally(() => {
            this.desktopLoading = null;
          });
      }
      setTimeout(() => this.desktop?.focus(), 0);
    } else {
      this.terminal?.refit();
      setTimeout(() => this.terminal?.focus(), 0);
    }
  }

  update_exam() {
    document.getElementById('clock').hidden = false;
  }

  /** Links that open the exam's ports (a web server the candidate runs inside) in a new tab. */
  portLinks() {
    const ports = this.exam?.ports || [];
    if (!ports.length) return null;
    return h(
      'section',
      { class: 'ports', 'aria-label': 'Your web ports' },
      h('h2', {}, 'Your web ports'),
      h(
        'ul',
        {},
        ports.map((p) =>
          h(
            'li',
            {},
            h(
              'a',
              {
                href: `/api/v1/sessions/${encodeURIComponent(this.id)}/ports/${p}/`,
                target: '_blank',
                rel: 'noopener noreferrer',
                'data-port': p,
              },
              `Open port ${p}`,
            ),
            h('span', { class: 'muted' }, ' (a new tab; start your server on this port first)'),
          ),
        ),
      ),
    );
  }

  notice(message, ...extra) {
    if (!this.noticeEl) return;
    this.noticeEl.hidden = false;
    this.noticeEl.replaceChildren(message, ' ', ...extra);
  }

  async loadTasks() {
    let tasks = [];
    try {
      tasks = (await api(`/api/v1/sessions/${encodeURIComponent(this.id)}/tasks`)).tasks || [];
    } catch (e) {
      this.taskBody.replaceChildren(h('p', {}, `The tasks could not be loaded: ${e.message}`));
      return;
    }
    this.tasks = tasks;
    if (!tasks.length) {
      this.taskBody.replaceChildren(h('p', {}, 'This exam has no written tasks.'));
      return;
    }
    this.taskNav.replaceChildren(
      h(
        'ol',
        {},
        tasks.map((t, i) =>
          h(
            'li',
            {},
            h(
              'button',
              { type: 'button', class: 'task-link', 'data-task': i, onclick: () => this.showTask(i) },
              `${i + 1}. ${t.title}`,
            ),
          ),
        ),
      ),
    );
    this.showTask(0);
  }

  showTask(i) {
    const t = this.tasks[i];
    for (const b of this.taskNav.querySelectorAll('button.task-link')) {
      if (Number(b.dataset.task) === i) b.setAttribute('aria-current', 'step');
      else b.removeAttribute('aria-current');
    }
    this.taskBody.replaceChildren(
      h('h2', {}, `Task ${i + 1}: ${t.title}`),
      t.points ? h('p', { class: 'muted' }, `${t.points} point${t.points === 1 ? '' : 's'}`) : null,
      h('div', { class: 'prompt', html: renderMarkdown(t.prompt) }),
      h(
        'div',
        { class: 'task-steps' },
        i > 0 ? h('button', { type: 'button', onclick: () => this.showTask(i - 1) }, '← Previous task') : null,
        i < this.tasks.length - 1 ? h('button', { type: 'button', onclick: () => this.showTask(i + 1) }, 'Next task →') : null,
      ),
    );
  }

  makeDialog() {
    const d = h(
      'dialog',
      { class: 'confirm', 'aria-labelledby': 'confirm-title' },
      h('h2', { id: 'confirm-title' }, 'Submit your exam?'),
      h('p', {}, 'Your work is graded as it stands now, and the terminal closes. You cannot change anything afterwards.'),
      h('p', { class: 'error', role: 'alert', hidden: true }),
      h(
        'div',
        { class: 'dialog-buttons' },
        h('button', { type: 'button', class: 'cancel', onclick: () => d.close() }, 'Keep working'),
        h('button', { type: 'button', class: 'primary danger', onclick: () => this.submit() }, 'Submit now'),
      ),
    );
    return d;
  }

  confirmSubmit() {
    this.dialog.querySelector('.error').hidden = true;
    this.dialog.showModal();
    this.dialog.querySelector('.cancel').focus();
  }

  async submit() {
    const btn = this.dialog.querySelector('.primary');
    btn.disabled = true;
    try {
      const v = await api(`/api/v1/sessions/${encodeURIComponent(this.id)}/submit`, { method: 'POST' });
      this.dialog.close();
      this.update(v);
    } catch (e) {
      const err = this.dialog.querySelector('.error');
      err.hidden = false;
      err.textContent = `${e.message} ${e.guidance || ''}`;
      btn.disabled = false;
      // The session may have ended by itself meanwhile.
      this.refresh();
    }
  }

  // the clock

  syncClock(remaining, state) {
    const clock = document.getElementById('clock');
    if (state !== 'active' && state !== 'ready') {
      clock.hidden = true;
      this.deadlineAt = null;
      clearInterval(this.clockTimer);
      this.clockTimer = null;
      return;
    }
    if (typeof remaining !== 'number') return;
    this.clockState = state;
    // Before the clock starts (ready), the server's figure is the full duration and does not run down.
    this.readyRemaining = remaining;
    this.deadlineAt = performance.now() + remaining * 1000;
    clock.hidden = false;
    this.drawClock();
    if (!this.clockTimer) this.clockTimer = setInterval(() => this.drawClock(), 250);
  }

  drawClock() {
    const clock = document.getElementById('clock');
    if (this.deadlineAt === null) return;
    const left = Math.max(0, Math.ceil((this.deadlineAt - performance.now()) / 1000));
    if (this.clockState === 'ready') {
      clock.textContent = `Time: ${formatDuration(this.readyRemaining)} (starts when the terminal opens)`;
      clock.className = 'clock';
      return;
    }
    clock.textContent = `Time left: ${formatDuration(left)}`;
    clock.className = left <= 60 ? 'clock clock-critical' : left <= 600 ? 'clock clock-warning' : 'clock';
    if (left <= 600 && left > 60 && !this.warned.has(600)) {
      this.warned.add(600);
      announce(`${Math.ceil(left / 60)} minutes left.`);
    }
    if (left <= 60 && left > 0 && !this.warned.has(60)) {
      this.warned.add(60);
      announce('1 minute left.');
    }
  }

  // ending

  render_ending() {
    this.renderEnd('ending');
  }

  update_ending() {
    const p = this.view.progress;
    this.endStatus.textContent = p && p.message ? `Step ${p.step} of ${p.total}: ${p.message}` : 'Closing your environment…';
  }

  render_ended() {
    this.renderEnd('ended');
  }

  update_ended() {
    this.endStatus.textContent = 'Your environment is closed.';
  }

  renderEnd(kind) {
    clearInterval(this.tick);
    document.title = 'Exam ended · examroom';
    const reason = END_REASONS[this.view.end_reason] || 'Your exam has ended.';
    this.endStatus = h('p', { class: 'muted' });
    this.resultEl = h('div', { class: 'result', 'aria-live': 'polite', 'data-testid': 'result' }, h('p', {}, 'Grading…'));
    show(
      h(
        'section',
        { class: 'card narrow', 'data-page': 'ended' },
        h('h1', {}, 'Your exam has ended'),
        h('p', { class: 'reason', 'data-reason': this.view.end_reason || '' }, reason),
        this.endStatus,
        h('h2', {}, 'Result'),
        this.resultEl,
        h('p', {}, h('a', { href: '/', 'data-link': '' }, 'Back to your exams')),
      ),
    );
    if (kind === 'ended' || kind === 'ending') this.pollResult();
  }

  async pollResult() {
    clearTimeout(this.resultTimer);
    if (this.disposed) return;
    let r = null;
    try {
      r = await api(`/api/v1/sessions/${encodeURIComponent(this.id)}/result`);
    } catch (e) {
      // Not available yet (the session is still ending): keep showing "grading…".
      if (e instanceof ApiError && e.status === 404) {
        this.dispose();
        return notFoundPage();
      }
    }
    if (this.disposed) return;
    if (r && r.status === 'graded') return this.showResult(r);
    if (r && r.status === 'not_graded') {
      this.resultEl.replaceChildren(h('p', {}, 'This exam was not graded.', r.reason ? ` ${r.reason}` : ''));
      return;
    }
    this.resultEl.replaceChildren(h('p', { class: 'grading' }, 'Grading…'));
    this.resultTimer = setTimeout(() => this.pollResult(), 1000);
  }

  showResult(r) {
    const checks = r.checks || [];
    this.resultEl.replaceChildren(
      h('p', { class: 'score' }, 'Score: ', h('strong', { 'data-testid': 'score' }, `${r.score} / ${r.max_score}`)),
      checks.length
        ? h(
            'ul',
            { class: 'checks' },
            checks.map((c) =>
              h(
                'li',
                { class: c.passed ? 'pass' : 'fail' },
                h('span', { 'aria-hidden': 'true' }, c.passed ? '✓ ' : '✗ '),
                h('span', { class: 'sr-only' }, c.passed ? 'Passed: ' : 'Not passed: '),
                c.description,
                c.error ? h('span', { class: 'muted' }, ` (${c.error})`) : null,
              ),
            ),
          )
        : null,
    );
    announce(`Your score is ${r.score} out of ${r.max_score}.`);
  }

  // failed

  render_failed() {
    clearInterval(this.tick);
    const f = this.view.failure || {};
    document.title = 'Exam could not continue · examroom';
    const incident = f.incident || /\binc-[0-9a-f]{16}\b/.exec(`${f.message || ''} ${f.guidance || ''}`)?.[0];
    this.retryError = h('p', { class: 'error', role: 'alert', hidden: true });
    show(
      h(
        'section',
        { class: 'card narrow failure', 'data-page': 'failed' },
        h('h1', {}, FAILURE_TITLES[f.code] || 'Your exam could not continue'),
        h('p', { class: 'message' }, f.message || 'The session failed.'),
        f.guidance ? h('p', { class: 'guidance' }, f.guidance) : null,
        h(
          'p',
          { class: 'muted' },
          incident ? ['Incident id for support: ', h('code', {}, incident), '. '] : null,
          'Session reference: ',
          h('code', {}, this.view.id),
        ),
        h(
          'p',
          {},
          h('button', { type: 'button', class: 'primary', onclick: () => this.tryAgain() }, 'Try again'),
          ' ',
          h('a', { href: '/', 'data-link': '' }, 'Back to your exams'),
        ),
        this.retryError,
      ),
    );
  }

  async tryAgain() {
    try {
      const v = await api('/api/v1/sessions', { method: 'POST', body: { exam_id: this.view.exam_id } });
      this.navigate(`/sessions/${v.id}`);
    } catch (e) {
      if (e instanceof ApiError && e.code === 'active_session_exists' && e.sessionId) {
        return this.navigate(`/sessions/${e.sessionId}`);
      }
      this.retryError.hidden = false;
      this.retryError.textContent = `${e.message} ${e.guidance || ''}`;
    }
  }
}
