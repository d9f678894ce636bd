// Display preferences, kept in this browser (localStorage): the theme (light or dark; the system's by default), the
// text size (for the prompts and the terminal) and the terminal's screen-reader mode. Controls live in the header.

import { h } from './dom.js';
import { M } from './messages.js';

const KEY = 'examroom.prefs';
const SIZES = [87.5, 100, 112.5, 125, 150, 175];
const listeners = new Set();

function load() {
  let p = {};
  try {
    p = JSON.parse(localStorage.getItem(KEY) || '{}') || {};
  } catch {
    p = {};
  }
  const dark = typeof matchMedia === 'function' && matchMedia('(prefers-color-scheme: dark)').matches;
  return {
    theme: p.theme === 'dark' || p.theme === 'light' ? p.theme : dark ? 'dark' : 'light',
    size: SIZES.includes(p.size) ? p.size : 100,
    screenReader: p.screenReader === true,
  };
}

let prefs = load();

export function getPrefs() {
  return { ...prefs };
}

/** The terminal's font size in pixels for the current text size. */
export function terminalFontSize() {
  return Math.round((14 * prefs.size) / 100);
}

export function onPrefsChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function apply() {
  document.documentElement.dataset.theme = prefs.theme;
  document.documentElement.style.fontSize = `${prefs.size}%`;
}

function set(change) {
  prefs = { ...prefs, ...change };
  try {
    localStorage.setItem(KEY, JSON.stringify(prefs));
  } catch {
    /* private mode: the choice lasts for this page */
  }
  apply();
  render();
  for (const fn of listeners) fn(getPrefs());
}

let box = null;

function render() {
  if (!box) return;
  const other = prefs.theme === 'dark' ? 'light' : 'dark';
  const i = SIZES.indexOf(prefs.size);
  box.replaceChildren(
    h(
      'button',
      { type: 'button', class: 'pref', id: 'pref-theme', title: M.switchTheme(other), onclick: () => set({ theme: other }) },
      h('span', { 'aria-hidden': 'true' }, prefs.theme === 'dark' ? '☾' : '☀'),
      h('span', { class: 'sr-only' }, M.switchTheme(other)),
    ),
    h(
      'button',
      { type: 'button', class: 'pref', id: 'pref-smaller', title: M.textSmaller, disabled: i <= 0, onclick: () => set({ size: SIZES[i - 1] }) },
      h('span', { 'aria-hidden': 'true' }, 'A−'),
      h('span', { class: 'sr-only' }, M.textSmaller),
    ),
    h('span', { class: 'pref-size', 'aria-live': 'polite' }, h('span', { class: 'sr-only' }, M.textSize(prefs.size)), h('span', { 'aria-hidden': 'true' }, `${prefs.size}%`)),
    h(
      'button',
      { type: 'button', class: 'pref', id: 'pref-larger', title: M.textLarger, disabled: i >= SIZES.length - 1, onclick: () => set({ size: SIZES[i + 1] }) },
      h('span', { 'aria-hidden': 'true' }, 'A+'),
      h('span', { class: 'sr-only' }, M.textLarger),
    ),
    h(
      'label',
      { class: 'pref-sr' },
      h('input', { type: 'checkbox', id: 'pref-screen-reader', checked: prefs.screenReader, onchange: (e) => set({ screenReader: e.target.checked }) }),
      h('span', { class: 'sr-only' }, M.screenReader),
      h('span', { 'aria-hidden': 'true' }, ' SR'),
    ),
  );
}

/** Applies the stored preferences and draws the controls into `container`. */
export function installPrefs(container) {
  box = container;
  box.setAttribute('role', 'group');
  box.setAttribute('aria-label', M.settings);
  apply();
  render();
}
