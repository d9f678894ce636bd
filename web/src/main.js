// examroom's browser UI. Client-side routing on location.pathname:
//   /               the catalog (or "Resume your exam" when a session is live)
//   /sessions/{id}  one session, by state (see session.js)
//   /proctor        the proctor's page (see proctor.js); a proctor going to / is sent here
// On load the page asks who is signed in (GET /api/v1/auth/session) once and routes by role.
// Sign-in is the server's own page, /signin#token=…, which sets the cookie and comes back to /.

import './style.css';
import { api, ApiError, isLive } from './api.js';
import { h, humanDuration, show } from './dom.js';
import { SessionPage, errorPage, notFoundPage, signedOutPage } from './session.js';
import { clearBanner } from './banner.js';
import { ProctorPage, proctorsOnlyPage } from './proctor.js';
import { installPrefs } from './prefs.js';
import { C, M } from './messages.js';

let current = null; // the page object that owns timers and connections
let me; // the answer of GET /api/v1/auth/session: { user_id, role }, null when signed out; undefined before asking

async function whoAmI() {
  if (me !== undefined) return me;
  try {
    me = await api('/api/v1/auth/session');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) me = null;
    else throw e;
  }
  return me;
}

function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  route();
}

async function route() {
  current?.dispose?.();
  current = null;
  clearBanner();
  document.getElementById('clock').hidden = true;
  const path = location.pathname;
  const m = /^\/sessions\/([^/]+)\/?$/.exec(path);
  if (path === '/' || path === '' || path === '/proctor') {
    let who;
    try {
      who = await whoAmI();
    } catch (e) {
      return errorPage(e, C.serverUnreachable);
    }
    if (!who) return signedOutPage();
    if (who.role === 'proctor' && path !== '/proctor') return navigate('/proctor', { replace: true });
    if (path === '/proctor') {
      if (who.role !== 'proctor') return proctorsOnlyPage();
      current = new ProctorPage();
      return current.start();
    }
  }
  if (path === '/' || path === '') return catalog();
  if (m) {
    current = new SessionPage(decodeURIComponent(m[1]), navigate);
    return current.start();
  }
  return notFoundPage();
}

async function catalog() {
  document.title = `${C.yourExams} · examroom`;
  show(h('section', { class: 'card' }, h('h1', {}, C.yourExams), h('p', { class: 'muted' }, C.loading)));
  let exams;
  let sessions;
  try {
    [exams, sessions] = await Promise.all([api('/api/v1/exams'), api('/api/v1/sessions')]);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return signedOutPage();
    return errorPage(e, C.listNotLoaded);
  }
  const live = (sessions.sessions || []).find((s) => isLive(s.state));
  const list = exams.exams || [];
  const errorEl = h('div', { class: 'error', role: 'alert', hidden: true });
  const titleOf = (id) => list.find((e) => e.id === id)?.title || id;

  async function startExam(examId, btn) {
    btn.disabled = true;
    errorEl.hidden = true;
    try {
      const v = await api('/api/v1/sessions', { method: 'POST', body: { exam_id: examId } });
      navigate(`/sessions/${v.id}`);
    } catch (e) {
      btn.disabled = false;
      if (e instanceof ApiError && e.code === 'active_session_exists' && e.sessionId) {
        return navigate(`/sessions/${e.sessionId}`);
      }
      errorEl.hidden = false;
      errorEl.replaceChildren(
        h('p', {}, e.message),
        e.guidance ? h('p', {}, e.guidance) : null,
        e.incident ? h('p', {}, M.incidentForSupport, h('code', {}, e.incident)) : null,
      );
      errorEl.focus?.();
    }
  }

  show(
    h(
      'section',
      { class: 'card', 'data-page': 'catalog' },
      h('h1', {}, C.yourExams),
      live
        ? h(
            'div',
            { class: 'resume', role: 'region', 'aria-label': C.inProgressLabel },
            h('p', {}, C.inProgress(titleOf(live.exam_id))),
            h('a', { class: 'button primary', href: `/sessions/${live.id}`, 'data-link': '' }, C.resume),
          )
        : null,
      errorEl,
      list.length
        ? h(
            'ul',
            { class: 'exams' },
            list.map((e) =>
              h(
                'li',
                { class: 'exam-card', 'data-exam': e.id },
                h('h2', {}, e.title),
                h('p', { class: 'muted' }, C.duration(humanDuration(e.duration_seconds))),
                h('p', {}, e.description),
                // An exam that cannot start here now (its image is not on this server) says so, rather than
                // offering a Start that can only fail.
                e.available === false
                  ? h(
                      'p',
                      { class: 'unavailable', id: `unavailable-${e.id}` },
                      e.unavailable_reason || C.unavailable,
                    )
                  : null,
                live
                  ? null
                  : e.available === false
                    ? h(
                        'button',
                        { type: 'button', disabled: true, 'aria-describedby': `unavailable-${e.id}` },
                        C.notAvailable,
                      )
                    : h(
                        'button',
                        {
                          type: 'button',
                          class: 'primary',
                          'aria-label': C.startLabel(e.title),
                          onclick: (ev) => startExam(e.id, ev.currentTarget),
                        },
                        C.start,
                      ),
              ),
            ),
          )
        : h('p', {}, C.noExams),
    ),
  );
}

// In-app links: same-origin anchors marked data-link navigate without a reload.
document.addEventListener('click', (e) => {
  const a = e.target.closest?.('a[data-link]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  e.preventDefault();
  navigate(url.pathname);
});
document.getElementById('signout').addEventListener('click', async () => {
  try {
    await api('/api/v1/auth/session', { method: 'DELETE' });
  } catch {
    /* signed out already, or the server is away: the page says what to do either way */
  }
  current?.dispose?.();
  current = null;
  me = null;
  history.replaceState(null, '', '/');
  signedOutPage();
});
window.addEventListener('popstate', route);
// The page's own frame says its words from the catalog too (index.html holds the same English for a page without
// script).
document.querySelector('.skip').textContent = C.skip;
document.getElementById('signout').textContent = C.signOut;
installPrefs(document.getElementById('prefs'));
route();
