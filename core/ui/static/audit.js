// The audit page: every operator action the core recorded, newest first,
// with who asked, what it touched and how it ended. The log pages by
// entry id (next_before), which orders it even where the clocks of
// several cores disagree.

import { APIError, get } from './api.js';
import { choice, clear, enc, h, refresher, when } from './dom.js';

const actions = ['run', 'kill', 'signal', 'enable', 'disable', 'reset',
  'maintenance_set', 'maintenance_reset', 'reload', 'sign_in', 'sign_out'];

// pageSize is how many entries one read asks for.
const pageSize = 50;

export function auditPage(app, preset) {
  // entries is what is shown, newest first; next is the id to page from.
  let entries = [];
  let next = null;
  const job = h('input', { type: 'text', id: 'audit-job', placeholder: 'Job', 'aria-label': 'Job', autocomplete: 'off', value: (preset && preset.job) || '' });
  const by = h('input', { type: 'text', id: 'audit-by', placeholder: 'Who', 'aria-label': 'Who', autocomplete: 'off' });
  const action = choice({ id: 'audit-action', 'aria-label': 'Action' }, [['', 'Any action'], ...actions], '');
  const body = h('tbody', { id: 'audit' });
  const older = h('button', { id: 'audit-older', onclick: () => loadOlder() }, 'Older');
  // The button is in the page only while there is an older page.
  const olderBox = h('div', { class: 'actions' });
  const note = h('p', { id: 'audit-note', class: 'muted' });
  const el = h('section', {}, h('h1', {}, 'Audit log'),
    h('form', {
      id: 'audit-filter', class: 'inline',
      onsubmit: (ev) => { ev.preventDefault(); entries = []; r.now(); },
    }, job, by, action,
    h('button', { type: 'submit', id: 'audit-apply' }, 'Filter'),
    h('button', { type: 'button', id: 'audit-refresh', onclick: () => r.now() }, 'Refresh')),
    note,
    h('div', { class: 'scroll' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Time'), h('th', {}, 'Who'), h('th', {}, 'Action'),
        h('th', {}, 'What'), h('th', { class: 'hide-narrow' }, 'Detail'), h('th', {}, 'Outcome'))),
      body)),
    olderBox);
  action.addEventListener('change', () => { entries = []; r.now(); });

  function query(before, limit) {
    const q = new URLSearchParams();
    for (const [k, input] of [['job', job], ['by', by], ['action', action]]) {
      const v = input.value.trim();
      if (v) q.set(k, v);
    }
    if (before) q.set('before', String(before));
    q.set('limit', String(limit));
    return `/api/v1/audit?${q}`;
  }

  function what(e) {
    const parts = [];
    if (e.job) parts.push(h('a', { href: `#/jobs/${enc(e.job)}` }, e.job));
    if (e.run_id) parts.push(h('a', { href: `#/runs/${enc(e.run_id)}` }, h('code', {}, e.run_id)));
    if (e.machine) parts.push(h('span', { class: 'machine' }, e.machine));
    return parts.flatMap((p, i) => (i ? [' ', p] : [p]));
  }

  function draw() {
    clear(body, entries.map((e) => h('tr', {
      'data-id': String(e.id), 'data-action': e.action, 'data-outcome': e.outcome,
      class: e.outcome !== 'ok' ? `audit-${e.outcome}` : '',
    },
    h('td', {}, when(e.at)),
    h('td', { class: 'by', title: [e.via && `via ${e.via}`, e.remote && `from ${e.remote}`].filter(Boolean).join(' ') }, e.by),
    h('td', { class: 'action' }, e.action.replace(/_/g, ' ')),
    h('td', { class: 'what' }, what(e)),
    h('td', { class: 'hide-narrow detail' }, e.detail || ''),
    h('td', { class: 'outcome' }, h('span', { class: `outcome-${e.outcome}` }, e.outcome),
      e.error ? [': ', h('span', { class: 'audit-error' }, e.error)] : ''))));
    if (!entries.length) body.append(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No action recorded.')));
    clear(olderBox, next !== null && next !== undefined && older);
  }

  // A refresh re-reads the newest entries, as many as are shown (the
  // core may cut that to its own limit), so an event does not fold the
  // older pages the reader opened.
  const r = refresher(async () => {
    try {
      const res = await get(query(null, Math.max(pageSize, entries.length)));
      const fresh = res.entries || [];
      const cut = res.next_before !== null && res.next_before !== undefined;
      // Entries shown before that newer ones pushed past a cut read stay
      // behind the last one it got, whose place among them says where the
      // two join; paging then goes on from where it went before. With no
      // such place (more new entries than shown), the read starts over.
      const at = cut ? entries.findIndex((e) => e.id === fresh[fresh.length - 1].id) : -1;
      if (at < 0) {
        entries = fresh;
        next = res.next_before;
      } else {
        entries = fresh.concat(entries.slice(at + 1));
      }
      note.textContent = '';
      draw();
    } catch (err) {
      if (err instanceof APIError && err.status === 404) {
        note.textContent = 'This core keeps no audit log.';
        return;
      }
      app.fail(err);
    }
  });

  async function loadOlder() {
    if (next === null || next === undefined) return;
    older.disabled = true;
    try {
      const res = await get(query(next, pageSize));
      const seen = new Set(entries.map((e) => e.id));
      entries = entries.concat((res.entries || []).filter((e) => !seen.has(e.id)));
      next = res.next_before;
      draw();
    } catch (err) { app.fail(err); } finally { older.disabled = false; }
  }

  return {
    el,
    refresh: r.now,
    onEvent: (e) => { if (e.kind !== 'output') r.soon(); },
    dispose: r.stop,
  };
}
