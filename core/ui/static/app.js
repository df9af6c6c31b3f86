// The UI's entry: who is signed in, the hash router (#/jobs, #/jobs/NAME,
// #/runs/ID), and the one events socket shared by every page.

import { APIError, get, post } from './api.js';
import { clear, h } from './dom.js';
import { connectLive } from './live.js';
import { jobsPage, jobPage } from './jobs.js';
import { runPage } from './run.js';

const main = document.getElementById('main');
let session = null;
let live = null;
let page = null;

const app = {
  // operate is the role that may act; a read token sees no action
  // buttons at all rather than buttons that fail.
  get canOperate() { return !!session && session.role === 'operate'; },
  go(hash) { location.hash = hash; },
  fail(err) {
    if (err instanceof APIError && err.status === 401) {
      signIn(err.message);
      return;
    }
    if (err && err.name === 'AbortError') return;
    const box = document.getElementById('page-error');
    if (box) box.textContent = String(err.message || err);
  },
};

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
  started();
}

function started() {
  clear(document.getElementById('who'), `${session.name} (${session.role})`);
  if (!live) {
    live = connectLive({
      onOpen: () => page && page.refresh(),
      onEvent: (e) => page && e.kind !== 'hello' && e.kind !== 'reply' && page.onEvent(e),
    });
  }
  route();
}

function signIn(why) {
  if (live) { live.stop(); live = null; }
  if (page) { page.dispose(); page = null; }
  session = null;
  clear(document.getElementById('who'));
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'current-password', required: true, placeholder: 'API token' });
  const msg = h('p', { class: 'error', id: 'signin-error' }, why || '');
  const form = h('form', {
    id: 'signin',
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        session = await post('/api/v1/session', { token: input.value });
        started();
      } catch (err) {
        msg.textContent = err.message;
      }
    },
  }, h('label', { for: 'token' }, 'This core needs an API token.'), input,
  h('button', { type: 'submit', class: 'primary' }, 'Sign in'), msg);
  clear(main, h('section', { class: 'signin' }, h('h1', {}, 'Sign in'), form));
  input.focus();
}

function route() {
  if (!session) return;
  if (page) page.dispose();
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (parts[0] === 'jobs' && parts[1]) page = jobPage(app, parts[1]);
  else if (parts[0] === 'runs' && parts[1]) page = runPage(app, parts[1]);
  else page = jobsPage(app);
  clear(main, h('p', { id: 'page-error', class: 'error' }), page.el);
  page.refresh();
}

window.addEventListener('hashchange', route);
boot();
