// The UI's entry: who is signed in, the hash router (#/jobs, #/jobs/NAME,
// #/runs/ID, #/maintenance, #/audit, #/audit/JOB), the one events socket
// shared by every page, and the global maintenance banner, which every
// page carries because an operator on any page must know that nothing
// new will start.

import { APIError, call, get, post } from './api.js';
import { auditPage } from './audit.js';
import { clear, h, refresher } from './dom.js';
import { connectLive } from './live.js';
import { jobsPage, jobPage } from './jobs.js';
import { maintenancePage } from './maintenance.js';
import { runPage } from './run.js';

const main = document.getElementById('main');
let session = null;
let live = null;
let page = null;
const banner = document.getElementById('maint-banner');
const signOutBtn = document.getElementById('sign-out');

const app = {
  // operate is the role that may act; a read token sees no action
  // buttons at all rather than buttons that fail.
  get canOperate() { return !!session && session.role === 'operate'; },
  go(hash) { location.hash = hash; },
  fail(err) {
    if (err instanceof APIError && err.status === 401) {
      // The session ended under the page (it expired, or the core's
      // secret changed): sign in again, and the hash, which is kept,
      // brings the reader back to the page.
      signIn('Your session has ended. Sign in again to go back to the page you were on.');
      return;
    }
    if (err && err.name === 'AbortError') return;
    const box = document.getElementById('page-error');
    if (box) box.textContent = String(err.message || err);
  },
  // maintenanceShown takes every maintenance state the UI reads, so the
  // maintenance page's own save updates the banner without waiting for
  // the event.
  maintenanceShown(m) { drawBanner(m); },
};

function drawBanner(m) {
  banner.hidden = !(m && m.global);
  if (banner.hidden) { clear(banner); return; }
  clear(banner, h('strong', {}, 'Global maintenance is on:'), ' no new runs start; running ones finish. ',
    m.source === 'api' ? `Set by ${m.set_by || '?'}. ` : 'Set in the configuration. ',
    h('a', { href: '#/maintenance' }, 'Maintenance'));
}

const bannerRefresh = refresher(async () => {
  // A failed read leaves the banner as it was; the page shows the error
  // when it fails the same way, but a refused session is everyone's.
  try { drawBanner(await get('/api/v1/maintenance')); } catch (err) {
    if (err instanceof APIError && err.status === 401) app.fail(err);
  }
});

// checkSession asks whether the cookie still holds when the events socket
// closes: a refused upgrade looks like any other close, and without this
// an idle page would only ever say "reconnecting".
function checkSession() {
  get('/api/v1/session').catch((err) => {
    if (err instanceof APIError && err.status === 401) app.fail(err);
  });
}

// tokensOn tells whether this core wants tokens at all: with tokens off
// every caller is "local" and there is no session to end, so no sign-out.
async function tokensOn() {
  try {
    return (await fetch('/api/v1/session', { credentials: 'omit' })).status === 401;
  } catch {
    return true;
  }
}

async function signOut() {
  try {
    await call('DELETE', '/api/v1/session');
  } catch (err) {
    // The cookie is HttpOnly: only the core can drop it, so a failure
    // leaves the reader signed in and says so.
    app.fail(err);
    return;
  }
  signIn('Signed out.');
}
signOutBtn.addEventListener('click', signOut);

async function boot() {
  try {
    session = await get('/api/v1/session');
  } catch (err) {
    if (err instanceof APIError && err.status === 401) {
      signIn();
      return;
    }
    clear(main, h('p', { class: 'error' }, `The core did not answer: ${err.message}`));
    return;
  }
  signOutBtn.hidden = !(await tokensOn());
  started();
}

function started() {
  clear(document.getElementById('who'), `${session.name} (${session.role})`);
  if (!live) {
    live = connectLive({
      // An open after a gap re-reads the banner too: its event may have
      // been missed.
      onOpen: () => { bannerRefresh.now(); if (page) page.refresh(); },
      onClose: checkSession,
      onEvent: (e) => {
        if (e.kind === 'maintenance_updated') bannerRefresh.soon();
        if (page && e.kind !== 'hello' && e.kind !== 'reply') page.onEvent(e);
      },
    });
  }
  bannerRefresh.now();
  route();
}

// signIn shows the sign-in form in place of the page, without a reload:
// the hash stays, so signing in returns to the page. Several calls that
// fail at once each land here; the form drawn by the first stays, with
// what the operator typed.
function signIn(why) {
  if (live) { live.stop(); live = null; }
  if (page) { page.dispose(); page = null; }
  session = null;
  bannerRefresh.stop();
  drawBanner(null);
  clear(document.getElementById('who'));
  // Only a core with tokens sends anyone here.
  signOutBtn.hidden = true;
  const shown = document.getElementById('signin-note');
  if (shown) {
    shown.textContent = why || '';
    return;
  }
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'current-password', required: true, placeholder: 'API token' });
  const msg = h('p', { class: 'error', id: 'signin-error' });
  const form = h('form', {
    id: 'signin',
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        session = await post('/api/v1/session', { token: input.value });
        signOutBtn.hidden = false;
        started();
      } catch (err) {
        msg.textContent = err.message;
      }
    },
  }, h('label', { for: 'token' }, 'This core needs an API token.'), input,
  h('button', { type: 'submit', class: 'primary' }, 'Sign in'), msg);
  clear(main, h('section', { class: 'signin' }, h('h1', {}, 'Sign in'),
    h('p', { id: 'signin-note', class: 'muted' }, why || ''), form));
  input.focus();
}

function route() {
  if (!session) return;
  if (page) page.dispose();
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (parts[0] === 'jobs' && parts[1]) page = jobPage(app, parts[1]);
  else if (parts[0] === 'runs' && parts[1]) page = runPage(app, parts[1]);
  else if (parts[0] === 'maintenance') page = maintenancePage(app);
  else if (parts[0] === 'audit') page = auditPage(app, { job: parts[1] });
  else page = jobsPage(app);
  clear(main, h('p', { id: 'page-error', class: 'error' }), page.el);
  page.refresh();
}

window.addEventListener('hashchange', route);
boot();
