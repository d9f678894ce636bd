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
import { localTime, localZone, M, serverTime } from './messages.js';
import { onPrefsChange, terminalFontSize } from './prefs.js';
import { copyText } from './terminal.js';
import { TerminalTabs } from './terminal-tabs.js';

/** The notepad's limit on the server, in bytes. */
const NOTEPAD_MAX = 32 * 1024;

export function notFoundPage() {
  document.title = `${M.noSuchSessionTitle} · examroom`;
  show(
    h(
      'section',
      { class: 'card narrow', 'data-page': 'not-found' },
      h('h1', {}, M.noSuchSessionTitle),
      h('p', {}, M.noSuchSession),
      h('p', {}, h('a', { href: '/', 'data-link': '' }, M.goToExams)),
    ),
  );
}

export function errorPage(err, title = M.somethingWrong) {
  if (err instanceof ApiError && err.status === 401) return signedOutPage();
  show(
    h(
      'section',
      { class: 'card narrow', 'data-page': 'error' },
      h('h1', {}, title),
      h('p', {}, err.message),
      err.guidance ? h('p', {}, err.guidance) : null,
      err.incident ? h('p', {}, M.incidentForSupport, h('code', {}, err.incident)) : null,
      h('p', {}, h('button', { type: 'button', onclick: () => location.reload() }, M.tryAgain)),
    ),
  );
}

export function signedOutPage() {
  document.title = `${M.signInTitle} · examroom`;
  show(
    h(
      'section',
      { class: 'card narrow', 'data-page': 'signed-out' },
      h('h1', {}, M.signInTitle),
      h('p', {}, M.signInHelp),
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
    this.terminals = null;
    this.desktop = null;
    this.resultTimer = null;
    this.steps = []; // provisioning messages seen so far
    this.disposed = false;
    this.warned = new Set();
  }

  async start() {
    show(h('section', { class: 'card narrow' }, h('h1', {}, M.loadingExam)));
    let view;
    try {
      view = await api(`/api/v1/sessions/${encodeURIComponent(this.id)}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return notFoundPage();
      return errorPage(e, M.examNotLoaded);
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
    this.leave('exam');
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
      this.saveNote?.();
      clearTimeout(this.noteTimer);
      this.unsubscribePrefs?.();
      this.unsubscribePrefs = null;
      this.terminals?.dispose();
      this.terminals = null;
      this.desktop?.dispose();
      this.desktop = null;
    }
  }

  // provisioning

  render_provisioning() {
    const title = this.exam?.title || M.yourExam;
    document.title = `${M.preparing(title)} · examroom`;
    this.stepList = h('ol', { class: 'steps', 'aria-label': M.steps });
    this.stepNow = h('p', { class: 'step-now', 'aria-live': 'polite' });
    this.elapsed = h('p', { class: 'muted elapsed' });
    show(
      h(
        'section',
        { class: 'card narrow', 'data-page': 'provisioning' },
        h('h1', {}, M.preparing(title)),
        h('p', {}, M.preparingHelp),
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
      this.elapsed.textContent = M.elapsed(secs);
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
      this.stepNow.textContent = M.step(p.step, p.total, p.message);
    } else {
      this.stepNow.textContent = this.view.state === 'created' ? M.waitingToStart : M.starting;
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
    const title = this.exam?.title || M.exam;
    document.title = `${title} · examroom`;
    this.taskNav = h('nav', { class: 'task-nav', 'aria-label': M.tasks });
    this.taskBody = h('article', { class: 'task-body', tabindex: '0', 'aria-live': 'polite' }, h('p', { class: 'muted' }, M.loadingTasks));
    this.noticeEl = h('p', { class: 'notice', role: 'status', hidden: true });
    this.submitBtn = h('button', { type: 'button', class: 'primary', onclick: () => this.confirmSubmit() }, M.submitExam);
    this.dialog = this.makeDialog();
    const termRoot = h('div', { class: 'term-root' });
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
          this.resourcesPanel(),
          this.notepadPanel(),
          this.portLinks(),
          h('div', { class: 'submit-row' }, this.submitBtn),
        ),
        h(
          'div',
          { class: 'term-col' },
          this.viewTabs(),
          h('h2', { class: 'sr-only' }, M.terminalHeading),
          this.noticeEl,
          (this.termPane = h(
            'div',
            { class: 'pane', id: 'pane-terminal', role: this.exam?.desktop ? 'tabpanel' : null },
            termRoot,
            h('p', { class: 'muted hint' }, M.terminalHint),
          )),
          this.desktopPane(),
        ),
        this.dialog,
      ),
    );
    // Leaving the terminal with the keyboard: xterm takes Tab itself, so offer a chord that moves focus out.
    termRoot.addEventListener(
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
    this.terminals = new TerminalTabs(termRoot, this.id, (name) => this.terminalHooks(name), this);
    this.unsubscribePrefs = onPrefsChange((p) =>
      this.terminals?.setOptions({ fontSize: terminalFontSize(), theme: p.theme, screenReader: p.screenReader }),
    );
    if (this.exam?.desktop) this.showView('desktop');
    else setTimeout(() => this.terminals?.focus(), 0);
  }

  terminalHooks(name) {
    return {
      onStatus: (f) => this.syncClock(f.remaining_seconds, f.state),
      onNotice: (m) => this.notice(m),
      onCopied: () => announce(M.copied),
      pasteRefused: M.pasteRefused,
      onEnded: (f) => {
        this.notice(f.message || M.examEnded);
        this.refresh();
      },
      onClosed: (why, reason) => {
        if (why === 'ended') this.refresh();
        else if (why === 'not_found' && name !== 'main') {
          // Closed in another window or tab.
          this.terminals?.drop(name);
        } else if (why === 'not_found') {
          this.dispose();
          notFoundPage();
        } else if (why === 'unauthenticated') {
          this.dispose();
          signedOutPage();
        } else if (why === 'replaced') {
          this.notice(
            M.terminalReplaced,
            h('button', { type: 'button', onclick: () => this.terminals?.terms.get(name)?.term.reconnect() }, M.useTerminalHere),
          );
        } else if (why === 'forbidden') {
          this.notice(reason || M.terminalRefused);
        }
      },
    };
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
    this.tabs = [tab('desktop', M.desktop), tab('terminal', M.terminal)];
    return h('div', { class: 'view-tabs', role: 'tablist', 'aria-label': M.views }, ...this.tabs);
  }

  /** The desktop's pane: the screen, and a way to paste text into it. */
  desktopPane() {
    if (!this.exam?.desktop) return null;
    const { width, height } = this.exam.desktop;
    this.desktopBox = h('div', { class: 'desktop-box', 'data-testid': 'desktop', style: `aspect-ratio: ${width} / ${height}` });
    const text = h('textarea', { id: 'desktop-paste', rows: 2, placeholder: M.desktopPastePlaceholder });
    const said = h('span', { class: 'muted', role: 'status' });
    const send = h(
      'button',
      {
        type: 'button',
        onclick: () => {
          const ok = this.desktop?.paste(text.value);
          said.textContent = ok ? M.desktopPasteDone : M.desktopNotConnected;
        },
      },
      M.desktopPasteSend,
    );
    this.deskPane = h(
      'div',
      { class: 'pane', id: 'pane-desktop', role: 'tabpanel', hidden: true },
      h('h2', { class: 'sr-only' }, M.desktop),
      this.desktopBox,
      h('div', { class: 'desktop-paste' }, h('label', { for: 'desktop-paste', class: 'sr-only' }, M.desktopPastePlaceholder), text, send, said),
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
            this.desktopBox.replaceChildren(h('p', { class: 'desktop-status' }, M.desktopLoadFailed(e.message)));
          })
          .finally(() => {
            this.desktopLoading = null;
          });
      }
      setTimeout(() => this.desktop?.focus(), 0);
    } else {
      this.terminals?.refit();
      setTimeout(() => this.terminals?.focus(), 0);
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
      { class: 'ports', 'aria-label': M.yourPorts },
      h('h2', {}, M.yourPorts),
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
              M.openPort(p),
            ),
            h('span', { class: 'muted' }, M.openPortHint),
          ),
        ),
      ),
    );
  }

  /** The exam's documentation links, opened in a new tab without a referrer or an opener. */
  resourcesPanel() {
    const list = this.exam?.resources || [];
    if (!list.length) return null;
    return h(
      'details',
      { class: 'side-panel resources', 'data-testid': 'resources' },
      h('summary', {}, M.resources),
      h('p', { class: 'muted' }, M.resourcesHelp),
      h(
        'ul',
        {},
        list.map((r) =>
          h(
            'li',
            {},
            h('a', { href: r.url, target: '_blank', rel: 'noopener noreferrer' }, r.title, h('span', { class: 'sr-only' }, M.opensNewTab)),
          ),
        ),
      ),
    );
  }

  /** The notepad: saved on the server as the candidate types (debounced), and when they leave the field. */
  notepadPanel() {
    this.noteArea = h('textarea', {
      id: 'notepad',
      rows: 6,
      maxlength: String(NOTEPAD_MAX),
      'aria-describedby': 'notepad-help notepad-status',
      oninput: () => this.noteChanged(),
      onblur: () => this.saveNote(),
    });
    this.noteStatus = h('span', { id: 'notepad-status', class: 'muted', role: 'status' });
    return h(
      'details',
      { class: 'side-panel notepad', 'data-testid': 'notepad' },
      h('summary', {}, M.notepad),
      h('label', { for: 'notepad', class: 'sr-only' }, M.notepad),
      h('p', { id: 'notepad-help', class: 'muted' }, M.notepadHelp),
      this.noteArea,
      this.noteStatus,
    );
  }

  noteChanged() {
    this.noteStatus.textContent = '';
    clearTimeout(this.noteTimer);
    this.noteTimer = setTimeout(() => this.saveNote(), 600);
  }

  async saveNote() {
    clearTimeout(this.noteTimer);
    if (!this.noteArea || this.workspace?.notepad === this.noteArea.value) return;
    const text = this.noteArea.value;
    if (new TextEncoder().encode(text).length > NOTEPAD_MAX) {
      this.noteStatus.textContent = M.notepadTooLong(NOTEPAD_MAX / 1024);
      return;
    }
    this.noteStatus.textContent = M.notepadSaving;
    const w = await this.changeWorkspace({ notepad: text });
    if (w && this.noteArea) this.noteStatus.textContent = w.notepad === this.noteArea.value ? M.notepadSaved : '';
  }

  /** Sends a change of the workspace; answers the stored workspace, or null (the reason shown). */
  async changeWorkspace(change) {
    try {
      const w = await api(`/api/v1/sessions/${encodeURIComponent(this.id)}/workspace`, { method: 'PATCH', body: change });
      this.workspace = w;
      return w;
    } catch (e) {
      if (this.noteStatus && 'notepad' in change) this.noteStatus.textContent = M.notepadNotSaved(e.message);
      else this.notice(e.message);
      return null;
    }
  }

  notice(message, ...extra) {
    if (!this.noticeEl) return;
    this.noticeEl.hidden = false;
    this.noticeEl.replaceChildren(message, ' ', ...extra);
  }

  async loadTasks() {
    let tasks = [];
    const base = `/api/v1/sessions/${encodeURIComponent(this.id)}`;
    try {
      const [t, w] = await Promise.all([api(`${base}/tasks`), api(`${base}/workspace`).catch(() => null)]);
      tasks = t.tasks || [];
      this.workspace = w || { flagged: [], visited: [], notepad: '' };
    } catch (e) {
      this.taskBody.replaceChildren(h('p', {}, M.tasksNotLoaded(e.message)));
      return;
    }
    if (this.noteArea && !this.noteArea.value) this.noteArea.value = this.workspace.notepad || '';
    this.tasks = tasks;
    if (!tasks.length) {
      this.taskBody.replaceChildren(h('p', {}, M.noTasks));
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
              { type: 'button', class: 'task-link', 'data-task': i, 'data-task-id': t.id, onclick: () => this.showTask(i) },
              h('span', { class: 'task-mark', 'aria-hidden': 'true' }),
              `${i + 1}. ${t.title}`,
              h('span', { class: 'sr-only task-state' }),
            ),
          ),
        ),
      ),
      h('p', { class: 'legend muted', 'aria-hidden': 'true' }, M.legend),
    );
    this.showTask(0);
  }

  /** Marks each task in the list: flagged, visited or not opened yet (a symbol, and words for screen readers). */
  drawTaskStates() {
    const w = this.workspace || { flagged: [], visited: [] };
    for (const b of this.taskNav.querySelectorAll('button.task-link')) {
      const id = b.dataset.taskId;
      const state = w.flagged.includes(id) ? 'flagged' : w.visited.includes(id) ? 'visited' : 'untouched';
      b.dataset.state = state;
      b.querySelector('.task-mark').textContent = { flagged: '⚑ ', visited: '✓ ', untouched: '○ ' }[state];
      b.querySelector('.task-state').textContent = ` (${M.taskState[state]})`;
    }
  }

  showTask(i) {
    const t = this.tasks[i];
    this.taskIndex = i;
    for (const b of this.taskNav.querySelectorAll('button.task-link')) {
      if (Number(b.dataset.task) === i) b.setAttribute('aria-current', 'step');
      else b.removeAttribute('aria-current');
    }
    const flagged = this.workspace?.flagged.includes(t.id);
    const flagBtn = h(
      'button',
      { type: 'button', class: 'flag', 'aria-pressed': String(!!flagged), 'data-testid': 'flag', onclick: () => this.toggleFlag(t.id, flagBtn) },
      flagged ? `⚑ ${M.flagged}` : `⚐ ${M.flag}`,
    );
    const prompt = h('div', { class: 'prompt', html: renderMarkdown(t.prompt) });
    this.addCopyButtons(prompt);
    this.taskBody.replaceChildren(
      h('h2', {}, M.taskHeading(i + 1, t.title)),
      h('div', { class: 'task-meta' }, t.points ? h('span', { class: 'muted' }, M.points(t.points)) : null, flagBtn),
      prompt,
      h(
        'div',
        { class: 'task-steps' },
        i > 0 ? h('button', { type: 'button', onclick: () => this.showTask(i - 1) }, M.previousTask) : null,
        i < this.tasks.length - 1 ? h('button', { type: 'button', onclick: () => this.showTask(i + 1) }, M.nextTask) : null,
      ),
    );
    if (this.workspace && !this.workspace.visited.includes(t.id)) {
      this.workspace.visited = [...this.workspace.visited, t.id];
      this.changeWorkspace({ visited: this.workspace.visited }).then(() => this.drawTaskStates());
    }
    this.drawTaskStates();
  }

  async toggleFlag(id, btn) {
    const w = this.workspace || { flagged: [], visited: [] };
    const on = !w.flagged.includes(id);
    const flagged = on ? [...w.flagged, id] : w.flagged.filter((f) => f !== id);
    // Busy, not disabled: a disabled button would lose the keyboard focus.
    if (btn.getAttribute('aria-busy') === 'true') return;
    btn.setAttribute('aria-busy', 'true');
    const stored = await this.changeWorkspace({ flagged });
    btn.removeAttribute('aria-busy');
    const now = (stored || w).flagged.includes(id);
    btn.setAttribute('aria-pressed', String(now));
    btn.textContent = now ? `⚑ ${M.flagged}` : `⚐ ${M.flag}`;
    this.drawTaskStates();
  }

  /** Code in a prompt copies with a click: a Copy button on each block, and inline code itself is a button. */
  addCopyButtons(prompt) {
    const copy = async (text) => announce((await copyText(text)) ? M.copied : M.copyFailed);
    for (const pre of prompt.querySelectorAll('pre')) {
      const text = pre.textContent.replace(/\n$/, '');
      const wrap = h('div', { class: 'code-block' });
      pre.replaceWith(wrap);
      wrap.append(pre, h('button', { type: 'button', class: 'copy', 'aria-label': M.copyCode, onclick: () => copy(text) }, M.copy));
    }
    for (const code of prompt.querySelectorAll('code')) {
      if (code.closest('pre')) continue;
      code.classList.add('copyable');
      code.setAttribute('role', 'button');
      code.setAttribute('tabindex', '0');
      code.setAttribute('title', M.clickToCopy);
      code.setAttribute('aria-description', M.clickToCopy);
      code.addEventListener('click', () => copy(code.textContent));
      code.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          copy(code.textContent);
        }
      });
    }
  }

  makeDialog() {
    const d = h(
      'dialog',
      { class: 'confirm', 'aria-labelledby': 'confirm-title' },
      h('h2', { id: 'confirm-title' }, M.submitTitle),
      h('p', {}, M.submitHelp),
      h('p', { class: 'error', role: 'alert', hidden: true }),
      h(
        'div',
        { class: 'dialog-buttons' },
        h('button', { type: 'button', class: 'cancel', onclick: () => d.close() }, M.keepWorking),
        h('button', { type: 'button', class: 'primary danger', onclick: () => this.submit() }, M.submitNow),
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
    await this.saveNote();
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

  // the clock: re-synced from the server on every heartbeat (2 s) and terminal status, so it never drifts more
  // than that from the server's own count; between syncs it runs on the monotonic clock (performance.now).

  syncClock(remaining, state) {
    const clock = document.getElementById('clock');
    if (state !== 'active' && state !== 'ready') {
      clock.hidden = true;
      clock.removeAttribute('title');
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
    const deadline = this.view?.deadline ? new Date(this.view.deadline) : null;
    if (state === 'active' && deadline && !Number.isNaN(deadline.getTime())) {
      clock.title = M.endsAt(localTime(deadline), localZone(), serverTime(deadline));
    } else clock.removeAttribute('title');
    this.drawClock();
    if (!this.clockTimer) this.clockTimer = setInterval(() => this.drawClock(), 250);
  }

  drawClock() {
    const clock = document.getElementById('clock');
    if (this.deadlineAt === null) return;
    const left = Math.max(0, Math.ceil((this.deadlineAt - performance.now()) / 1000));
    if (this.clockState === 'ready') {
      clock.textContent = M.timeBeforeStart(formatDuration(this.readyRemaining));
      clock.className = 'clock';
      return;
    }
    clock.textContent = M.timeLeft(formatDuration(left));
    const warnings = (this.exam?.warnings_seconds || [600, 60]).slice().sort((a, b) => b - a);
    const last = warnings[warnings.length - 1];
    const first = warnings[0];
    clock.className =
      last !== undefined && left <= last ? 'clock clock-critical' : first !== undefined && left <= first ? 'clock clock-warning' : 'clock';
    // Each warning once, when its time comes (not for those already past when the page opened).
    if (this.warnedFrom === undefined) this.warnedFrom = left;
    for (const w of warnings) {
      if (left <= w && left > 0 && !this.warned.has(w) && this.warnedFrom > w - 5) {
        this.warned.add(w);
        const text = w >= 60 && w % 60 === 0 ? M.minutesLeft(Math.max(1, Math.round(left / 60))) : M.secondsLeft(left);
        announce(text);
        this.notice(text);
      } else if (left <= w) this.warned.add(w);
    }
  }

  // ending

  render_ending() {
    this.renderEnd('ending');
  }

  update_ending() {
    const p = this.view.progress;
    this.endStatus.textContent = p && p.message ? M.step(p.step, p.total, p.message) : M.ending;
  }

  render_ended() {
    this.renderEnd('ended');
  }

  update_ended() {
    this.endStatus.textContent = M.closed;
  }

  renderEnd(kind) {
    clearInterval(this.tick);
    document.title = `${M.examEndedTitle} · examroom`;
    const reason = M.endReasons[this.view.end_reason] || M.examEnded;
    this.endStatus = h('p', { class: 'muted' });
    this.resultEl = h('div', { class: 'result', 'aria-live': 'polite', 'data-testid': 'result' }, h('p', {}, M.grading));
    show(
      h(
        'section',
        { class: 'card narrow', 'data-page': 'ended' },
        h('h1', {}, M.yourExamEnded),
        h('p', { class: 'reason', 'data-reason': this.view.end_reason || '' }, reason),
        this.endStatus,
        h('h2', {}, M.result),
        this.resultEl,
        h('p', {}, h('a', { href: '/', 'data-link': '' }, M.backToExams)),
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
      this.resultEl.replaceChildren(h('p', {}, M.notGraded, r.reason ? ` ${r.reason}` : ''));
      return;
    }
    this.resultEl.replaceChildren(h('p', { class: 'grading' }, M.grading));
    this.resultTimer = setTimeout(() => this.pollResult(), 1000);
  }

  showResult(r) {
    const checks = r.checks || [];
    this.resultEl.replaceChildren(
      h('p', { class: 'score' }, M.score, h('strong', { 'data-testid': 'score' }, `${r.score} / ${r.max_score}`)),
      checks.length
        ? h(
            'ul',
            { class: 'checks' },
            checks.map((c) =>
              h(
                'li',
                { class: c.passed ? 'pass' : 'fail' },
                h('span', { 'aria-hidden': 'true' }, c.passed ? '✓ ' : '✗ '),
                h('span', { class: 'sr-only' }, c.passed ? M.passed : M.notPassed),
                c.description,
                c.error ? h('span', { class: 'muted' }, ` (${c.error})`) : null,
              ),
            ),
          )
        : null,
    );
    announce(M.scoreIs(r.score, r.max_score));
  }

  // failed

  render_failed() {
    clearInterval(this.tick);
    const f = this.view.failure || {};
    document.title = `${M.examCouldNotContinue} · examroom`;
    const incident = f.incident || /\binc-[0-9a-f]{16}\b/.exec(`${f.message || ''} ${f.guidance || ''}`)?.[0];
    this.retryError = h('p', { class: 'error', role: 'alert', hidden: true });
    show(
      h(
        'section',
        { class: 'card narrow failure', 'data-page': 'failed' },
        h('h1', {}, M.failureTitles[f.code] || M.couldNotContinue),
        h('p', { class: 'message' }, f.message || M.sessionFailed),
        f.guidance ? h('p', { class: 'guidance' }, f.guidance) : null,
        h(
          'p',
          { class: 'muted' },
          incident ? [M.incidentForSupport, h('code', {}, incident), '. '] : null,
          M.sessionReference,
          h('code', {}, this.view.id),
        ),
        h(
          'p',
          {},
          h('button', { type: 'button', class: 'primary', onclick: () => this.tryAgain() }, M.tryAgain),
          ' ',
          h('a', { href: '/', 'data-link': '' }, M.backToExams),
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
