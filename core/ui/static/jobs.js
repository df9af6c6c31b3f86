// The jobs list and one job's page.

import { get, post } from './api.js';
import { clear, duration, enc, h, refresher, status, when } from './dom.js';

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

// runsPage is how many runs the job page reads at a time.
const runsPage = 20;

export function jobPage(app, name) {
  const head = h('div', {});
  const settings = h('dl', { id: 'settings' });
  const next = h('ul', { id: 'next' });
  const runs = h('tbody', { id: 'runs' });
  const older = h('button', { id: 'older-runs', onclick: () => loadOlder() }, 'Older runs');
  // The button is in the page only while there may be older runs.
  const olderBox = h('div', { class: 'actions' });
  // Runs come first: they are what an operator opens a job for; the
  // whole configuration, long, comes last.
  const el = h('section', {}, h('p', {}, h('a', { href: '#/jobs' }, '← Jobs')), h('h1', {}, name), head,
    h('h2', {}, 'Runs'), h('div', { class: 'scroll' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Run'), h('th', {}, 'Status'), h('th', { class: 'hide-narrow' }, 'Trigger'),
        h('th', {}, 'Started'), h('th', { class: 'hide-narrow' }, 'Finished'), h('th', {}, 'Duration'))), runs)),
    olderBox,
    h('h2', {}, 'Next fire times'), next,
    h('h2', {}, 'Configuration'), settings);

  // shown is every run read so far, newest first: a refresh re-reads as
  // many as are shown (one call), so an event does not fold the older
  // pages the reader opened.
  let shown = [];
  // more says whether older runs may be behind the last one shown.
  let more = false;

  const r = refresher(async () => {
    const want = Math.max(runsPage, shown.length);
    try {
      const [job, fires, list] = await Promise.all([
        get(`/api/v1/jobs/${enc(name)}`),
        get(`/api/v1/jobs/${enc(name)}/next?count=5`),
        get(`/api/v1/runs?job=${enc(name)}&limit=${want}`),
      ]);
      drawHead(job);
      clear(settings, configuration(job));
      clear(next, (fires.fires || []).map((f) => h('li', {}, when(f.at), f.dst_transition ? ` (DST ${f.dst || 'transition'})` : '')));
      if (!next.children.length) next.append(h('li', { class: 'muted' }, 'Not scheduled.'));
      const fresh = list.runs || [];
      if (fresh.length < want) {
        // A short read is the whole history.
        shown = fresh;
        more = false;
      } else {
        // Runs shown before that newer ones pushed past the read stay
        // behind the last one it got, whose place in them says where the
        // two join; the bottom is then the same, and so is "more". With
        // no such place (more new runs than shown), the read starts over.
        const at = shown.findIndex((x) => x.id === fresh[fresh.length - 1].id);
        if (at < 0) more = true;
        shown = fresh.concat(at < 0 ? [] : shown.slice(at + 1));
      }
      drawRuns();
    } catch (err) { app.fail(err); }
  });

  function drawHead(job) {
    // An override is what the API keeps over the HCL's enabled until
    // reset; it has a time once set, even when it agrees with the HCL.
    const overridden = !!job.override_at;
    clear(head, h('div', { class: 'actions' },
      app.canOperate && h('button', {
        id: 'run-now', class: 'primary',
        onclick: () => post(`/api/v1/jobs/${enc(name)}/run`).then((res) => app.go(`#/runs/${enc(res.run_id)}`), app.fail),
      }, 'Run now'),
      app.canOperate && h('button', {
        class: 'toggle',
        onclick: () => post(`/api/v1/jobs/${enc(name)}/${job.enabled ? 'disable' : 'enable'}`).then(r.now, app.fail),
      }, job.enabled ? 'Disable' : 'Enable'),
      app.canOperate && overridden && h('button', {
        id: 'reset-enabled',
        title: `Drop the override set by ${job.override_by || '?'}; the configuration says ${job.enabled_in_config ? 'enabled' : 'disabled'}`,
        onclick: () => post(`/api/v1/jobs/${enc(name)}/reset`).then(r.now, app.fail),
      }, 'Reset to configuration'),
      h('a', { href: `#/audit/${enc(name)}`, class: 'audit-link' }, 'Audit log')));
  }

  function drawRuns() {
    clear(runs, shown.map((run) => h('tr', { 'data-run': run.id },
      h('td', {}, h('a', { href: `#/runs/${enc(run.id)}` }, h('code', {}, run.id))),
      h('td', {}, status(run.status)),
      h('td', { class: 'hide-narrow' }, run.trigger),
      h('td', {}, when(run.started_at)),
      h('td', { class: 'hide-narrow' }, when(run.finished_at)),
      h('td', { class: 'duration' }, run.started_at ? duration(run.started_at, run.finished_at) : '—'))));
    if (!runs.children.length) runs.append(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No runs yet.')));
    clear(olderBox, more && older);
  }

  // loadOlder reads the page after the last run shown: the API pages by
  // that run's id (its start bounds the next page).
  async function loadOlder() {
    const last = shown[shown.length - 1];
    if (!last) return;
    older.disabled = true;
    try {
      const list = await get(`/api/v1/runs?job=${enc(name)}&limit=${runsPage}&before=${enc(last.id)}`);
      const got = (list.runs || []).filter((x) => !shown.some((y) => y.id === x.id));
      shown = shown.concat(got);
      more = (list.runs || []).length >= runsPage;
      drawRuns();
    } catch (err) { app.fail(err); } finally { older.disabled = false; }
  }

  return {
    el,
    refresh: r.now,
    onEvent: (e) => { if (e.kind !== 'output' && (!e.job || e.job === name)) r.soon(); },
    dispose: r.stop,
  };
}

// shownElsewhere are the job's fields the page shows outside the
// configuration, or inside another row of it.
const shownElsewhere = new Set(['name', 'next_run', 'running', 'last_run', 'enabled_in_config', 'override_by', 'override_at', 'timezone']);

// configuration lists the job as the API returns it: the fields an
// operator reads most first, worded, then any other field the API has
// (a newer core's), so that nothing configured is hidden from the page.
function configuration(job) {
  const dash = (v) => (v === undefined || v === null || v === '' ? '—' : v);
  const none = (v, word) => (v === undefined || v === null || v === '' || v === 0 ? h('span', { class: 'muted' }, word) : v);
  const yesNo = (v) => (v ? 'yes' : 'no');
  const rows = [];
  const done = new Set(shownElsewhere);
  const row = (key, label, value) => {
    done.add(key);
    if (!(key in job)) return;
    rows.push(h('dt', {}, label), h('dd', { 'data-field': key }, dash(value)));
  };
  row('command', 'Command', h('code', {}, job.command));
  row('schedule', 'Schedule', h('span', {}, h('code', {}, job.schedule), ' ', job.timezone || ''));
  row('group', 'Group', job.group);
  row('enabled', 'Enabled', `${yesNo(job.enabled)}${job.override_at ? ` (set by ${job.override_by || '?'} at ${new Date(job.override_at).toLocaleString()}; the configuration says ${yesNo(job.enabled_in_config)})` : ''}`);
  const args = job.target && job.target.args && Object.keys(job.target.args).length ? job.target.args : null;
  row('target', 'Target', job.target && [job.target.plugin, args && [' ', h('code', {}, JSON.stringify(args))]]);
  row('number_of_targets', 'Machines per run', none(job.number_of_targets, 'all'));
  row('batch_size', 'Batch size', none(job.batch_size, 'all at once'));
  row('success', 'Success', job.success);
  row('abort_after_failures', 'Abort after failures', none(job.abort_after_failures, 'never'));
  row('user', 'User', job.user);
  row('cwd', 'Working directory', job.cwd);
  // Names only: the values are redacted by the API and an operator
  // needs to know which variables are set, not to read secrets.
  row('env', 'Environment', Object.keys(job.env || {}).sort().join(', '));
  row('timeout', 'Timeout', none(job.timeout, 'none'));
  row('soft_timeout', 'Soft timeout', none(job.soft_timeout, 'none'));
  row('no_output_timeout', 'No-output timeout', none(job.no_output_timeout, 'none'));
  row('overlap', 'Overlap', job.overlap);
  row('jitter', 'Jitter', none(job.jitter, 'none'));
  row('catch_up', 'Catch up', job.catch_up);
  row('dst_gap', 'DST gap', job.dst_gap);
  row('dst_repeat', 'DST repeat', job.dst_repeat);
  row('keep_children', 'Keep children', yesNo(job.keep_children));
  row('kill', 'Kill', job.kill && `${job.kill.signal}, SIGKILL after ${job.kill.grace}`);
  row('retry', 'Retry', job.retry ? `${job.retry.attempts} attempts, ${job.retry.backoff} apart` : none(null, 'none'));
  row('expect', 'Expect', job.expect ? `a run at least every ${job.expect.max_gap}` : none(null, 'none'));
  row('notify', 'Notify', (job.notify || []).length
    ? h('ul', { class: 'plain' }, job.notify.map((n) => h('li', {}, h('code', {}, n.notifier), ' on ', (n.on || []).join(', ') || 'every event')))
    : none(null, 'none'));
  row('wrapper', 'Wrapper', job.wrapper && `${job.wrapper.path || 'built in'}, protocol ${job.wrapper.protocol}`);
  for (const key of Object.keys(job).sort()) {
    if (done.has(key)) continue;
    const v = job[key];
    const label = key.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
    const shownValue = typeof v === 'boolean' ? yesNo(v)
      : v !== null && typeof v === 'object' ? h('code', {}, JSON.stringify(v)) : v;
    rows.push(h('dt', {}, label), h('dd', { 'data-field': key }, dash(shownValue)));
  }
  return rows;
}
