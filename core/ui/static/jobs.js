// The jobs list and one job's page.

import { get, post } from './api.js';
import { clear, enc, h, refresher, status, when } from './dom.js';

export function jobsPage(app) {
  const filter = h('input', { type: 'search', id: 'filter', placeholder: 'Filter by name or group', 'aria-label': 'Filter jobs' });
  const body = h('tbody', { id: 'jobs' });
  let jobs = [];
  const el = h('section', {}, h('h1', {}, 'Jobs'), filter,
    h('div', { class: 'scroll' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', { class: 'hide-narrow' }, 'Group'),
        h('th', { class: 'hide-narrow' }, 'Schedule'), h('th', {}, 'Enabled'), h('th', { class: 'hide-narrow' }, 'Next run'),
        h('th', {}, 'Last run'), h('th', {}, 'Running'), app.canOperate && h('th', {}, ''))),
      body)));

  function draw() {
    const q = filter.value.trim().toLowerCase();
    const shown = jobs.filter((j) => !q || j.name.toLowerCase().includes(q) || (j.group || '').toLowerCase().includes(q));
    clear(body, shown.map((j) => h('tr', { 'data-job': j.name },
      h('td', {}, h('a', { href: `#/jobs/${enc(j.name)}` }, j.name)),
      h('td', { class: 'hide-narrow' }, j.group || ''),
      h('td', { class: 'hide-narrow' }, h('code', {}, j.schedule)),
      h('td', { class: 'enabled' }, j.enabled ? 'yes' : 'no'),
      h('td', { class: 'hide-narrow' }, when(j.next_run)),
      h('td', {}, j.last_run ? h('a', { href: `#/runs/${enc(j.last_run.id)}` }, status(j.last_run.status)) : '—'),
      h('td', {}, (j.running || []).map((id) => h('a', { href: `#/runs/${enc(id)}`, class: 'running-run' }, status('running'), ' '))),
      app.canOperate && h('td', {}, h('button', {
        class: 'toggle',
        onclick: () => post(`/api/v1/jobs/${enc(j.name)}/${j.enabled ? 'disable' : 'enable'}`).then(r.now, app.fail),
      }, j.enabled ? 'Disable' : 'Enable')))));
    if (!shown.length) body.append(h('tr', {}, h('td', { colspan: 8, class: 'muted' }, jobs.length ? 'No job matches.' : 'No jobs are configured.')));
  }

  const r = refresher(async () => {
    try {
      jobs = (await get('/api/v1/jobs')).jobs || [];
      draw();
    } catch (err) { app.fail(err); }
  });
  filter.addEventListener('input', draw);
  return {
    el,
    refresh: r.now,
    onEvent: (e) => { if (e.kind !== 'output') r.soon(); },
    dispose: r.stop,
  };
}

export function jobPage(app, name) {
  const head = h('div', {});
  const settings = h('dl', { id: 'settings' });
  const next = h('ul', { id: 'next' });
  const runs = h('tbody', { id: 'runs' });
  const el = h('section', {}, h('p', {}, h('a', { href: '#/jobs' }, '← Jobs')), h('h1', {}, name), head,
    h('h2', {}, 'Settings'), settings, h('h2', {}, 'Next fire times'), next,
    h('h2', {}, 'Recent runs'), h('div', { class: 'scroll' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Run'), h('th', {}, 'Status'), h('th', { class: 'hide-narrow' }, 'Trigger'),
        h('th', {}, 'Started'), h('th', { class: 'hide-narrow' }, 'Finished'))), runs)));

  const r = refresher(async () => {
    try {
      const [job, fires, list] = await Promise.all([
        get(`/api/v1/jobs/${enc(name)}`),
        get(`/api/v1/jobs/${enc(name)}/next?count=5`),
        get(`/api/v1/runs?job=${enc(name)}&limit=20`),
      ]);
      clear(head, h('div', { class: 'actions' },
        app.canOperate && h('button', {
          id: 'run-now', class: 'primary',
          onclick: () => post(`/api/v1/jobs/${enc(name)}/run`).then((res) => app.go(`#/runs/${enc(res.run_id)}`), app.fail),
        }, 'Run now'),
        app.canOperate && h('button', {
          class: 'toggle',
          onclick: () => post(`/api/v1/jobs/${enc(name)}/${job.enabled ? 'disable' : 'enable'}`).then(r.now, app.fail),
        }, job.enabled ? 'Disable' : 'Enable')));
      const row = (k, v) => [h('dt', {}, k), h('dd', {}, v === undefined || v === null || v === '' ? '—' : v)];
      clear(settings,
        row('Command', h('code', {}, job.command)),
        row('Schedule', h('span', {}, h('code', {}, job.schedule), ' ', job.timezone || '')),
        row('Group', job.group),
        row('Enabled', `${job.enabled ? 'yes' : 'no'}${job.enabled !== job.enabled_in_config ? ` (set by ${job.override_by || '?'}; config says ${job.enabled_in_config ? 'yes' : 'no'})` : ''}`),
        row('Target', job.target && job.target.plugin),
        row('User', job.user),
        row('Working directory', job.cwd),
        // Names only: the values are redacted by the API and an operator
        // needs to know which variables are set, not to read secrets.
        row('Environment', Object.keys(job.env || {}).sort().join(', ')),
        row('Overlap', job.overlap),
        row('Timeout', job.timeout),
        row('Kill', job.kill && `${job.kill.signal}, grace ${job.kill.grace}`));
      clear(next, (fires.fires || []).map((f) => h('li', {}, when(f.at), f.dst_transition ? ` (DST ${f.dst || 'transition'})` : '')));
      if (!next.children.length) next.append(h('li', { class: 'muted' }, 'Not scheduled.'));
      clear(runs, (list.runs || []).map((run) => h('tr', {},
        h('td', {}, h('a', { href: `#/runs/${enc(run.id)}` }, h('code', {}, run.id))),
        h('td', {}, status(run.status)),
        h('td', { class: 'hide-narrow' }, run.trigger),
        h('td', {}, when(run.started_at)),
        h('td', { class: 'hide-narrow' }, when(run.finished_at)))));
      if (!runs.children.length) runs.append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No runs yet.')));
    } catch (err) { app.fail(err); }
  });
  return {
    el,
    refresh: r.now,
    onEvent: (e) => { if (e.kind !== 'output' && (!e.job || e.job === name)) r.soon(); },
    dispose: r.stop,
  };
}
