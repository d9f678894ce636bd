// The exam's terminals as tabs: "main" and the ones the candidate opened (GET/POST …/terminals), each its own
// ExamTerminal (its own WebSocket, `?terminal=NAME`, shell and scrollback, each resuming after a reload). Tabs follow
// the WAI-ARIA tabs pattern: arrow keys move between them, Enter or Space selects; each opened terminal has a close
// button (DELETE …/terminals/{name}); "New terminal" opens another up to the exam's limit.

import { api } from './api.js';
import { h } from './dom.js';
import { M } from './messages.js';
import { getPrefs, terminalFontSize } from './prefs.js';
import { ExamTerminal } from './terminal.js';

export class TerminalTabs {
  /**
   * @param {HTMLElement} root where the tab bar and the terminals go
   * @param {string} sessionId
   * @param {(name: string) => object} hooksFor the ExamTerminal hooks for one terminal
   * @param {{notice: Function}} page
   */
  constructor(root, sessionId, hooksFor, page) {
    this.sessionId = sessionId;
    this.hooksFor = hooksFor;
    this.page = page;
    this.terms = new Map(); // name -> { term, tab, panel }
    this.current = 'main';
    this.limit = 1;
    this.tabBar = h('div', { class: 'term-tabs', role: 'tablist', 'aria-label': M.terminals });
    this.newBtn = h('button', { type: 'button', class: 'term-new', 'data-testid': 'new-terminal', onclick: () => this.open() }, h('span', { 'aria-hidden': 'true' }, '+ '), M.newTerminal);
    this.boxes = h('div', { class: 'term-boxes' });
    root.append(h('div', { class: 'term-bar' }, this.tabBar, this.newBtn), this.boxes);
    this.add('main');
    this.select('main', false);
    this.load();
  }

  base() {
    return `/api/v1/sessions/${encodeURIComponent(this.sessionId)}/terminals`;
  }

  async load() {
    try {
      const r = await api(this.base());
      this.limit = r.limit || 1;
      for (const t of r.terminals || []) if (!this.terms.has(t.name)) this.add(t.name);
      this.updateNew();
    } catch {
      /* the main terminal works without the list */
    }
  }

  updateNew() {
    const full = this.terms.size >= this.limit;
    this.newBtn.disabled = full;
    this.newBtn.title = M.newTerminalLimit(this.limit);
  }

  add(name) {
    const label = M.terminalTab(name);
    const tab = h(
      'button',
      {
        type: 'button',
        role: 'tab',
        id: `term-tab-${name}`,
        'aria-controls': `term-panel-${name}`,
        'data-terminal': name,
        tabindex: '-1',
        onclick: () => this.select(name),
        onkeydown: (e) => this.tabKey(e, name),
      },
      label,
    );
    const wrap = h('span', { class: 'term-tab', role: 'presentation' }, tab);
    if (name !== 'main') {
      wrap.append(
        h(
          'button',
          { type: 'button', class: 'term-close', title: M.closeTerminal(label), onclick: () => this.close(name) },
          h('span', { 'aria-hidden': 'true' }, '×'),
          h('span', { class: 'sr-only' }, M.closeTerminal(label)),
        ),
      );
    }
    this.tabBar.append(wrap);
    const box = h('div', { class: 'term-box', 'data-testid': name === 'main' ? 'terminal' : `terminal-${name}` });
    const panel = h('div', { class: 'term-panel', id: `term-panel-${name}`, role: 'tabpanel', 'aria-labelledby': `term-tab-${name}`, hidden: true }, box);
    this.boxes.append(panel);
    const p = getPrefs();
    const term = new ExamTerminal(box, this.sessionId, this.hooksFor(name), {
      name,
      fontSize: terminalFontSize(),
      theme: p.theme,
      screenReader: p.screenReader,
    });
    this.terms.set(name, { term, tab, wrap, panel });
    this.updateNew();
  }

  tabKey(e, name) {
    const names = [...this.terms.keys()];
    const i = names.indexOf(name);
    let next = null;
    if (e.key === 'ArrowRight') next = names[(i + 1) % names.length];
    else if (e.key === 'ArrowLeft') next = names[(i - 1 + names.length) % names.length];
    else if (e.key === 'Home') next = names[0];
    else if (e.key === 'End') next = names[names.length - 1];
    else if (e.key === 'Delete' && name !== 'main') {
      e.preventDefault();
      return this.close(name);
    }
    if (next) {
      e.preventDefault();
      this.select(next, false);
      this.terms.get(next).tab.focus();
    }
  }

  select(name, focus = true) {
    if (!this.terms.has(name)) name = 'main';
    this.current = name;
    for (const [n, t] of this.terms) {
      const on = n === name;
      t.tab.setAttribute('aria-selected', String(on));
      t.tab.tabIndex = on ? 0 : -1;
      t.panel.hidden = !on;
    }
    const t = this.terms.get(name).term;
    t.refit();
    if (focus) setTimeout(() => t.focus(), 0);
  }

  async open() {
    this.newBtn.disabled = true;
    try {
      const r = await api(this.base(), { method: 'POST' });
      this.limit = r.limit || this.limit;
      if (!this.terms.has(r.name)) this.add(r.name);
      this.select(r.name);
    } catch (e) {
      this.page.notice(M.terminalOpenFailed(e.message));
    } finally {
      this.updateNew();
    }
  }

  async close(name) {
    try {
      await api(`${this.base()}/${encodeURIComponent(name)}`, { method: 'DELETE' });
    } catch (e) {
      if (e.code !== 'terminal_not_found') return this.page.notice(e.message);
    }
    this.drop(name);
  }

  /** Removes a terminal's tab (closed here, or found closed). */
  drop(name) {
    const t = this.terms.get(name);
    if (!t || name === 'main') return;
    t.term.dispose();
    t.wrap.remove();
    t.panel.remove();
    this.terms.delete(name);
    if (this.current === name) this.select('main');
    this.updateNew();
  }

  get main() {
    return this.terms.get('main')?.term;
  }

  active() {
    return this.terms.get(this.current)?.term;
  }

  focus() {
    this.active()?.focus();
  }

  refit() {
    this.active()?.refit();
  }

  setOptions(o) {
    for (const t of this.terms.values()) t.term.setOptions(o);
  }

  paste(text) {
    this.active()?.paste(text);
  }

  dispose() {
    for (const t of this.terms.values()) t.term.dispose();
    this.terms.clear();
  }
}
