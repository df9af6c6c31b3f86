// The jobs list and one job's page.

import { get, post } from './api.js';
import { clear, duration, enc, h, refresher, status, when, zoned } from './dom.js';

// severity orders last-run statuses, most severe first, as the API
// folds its machines' statuses into the run's; running sits between the
// failures and the good ends.
const severity = ['error', 'not_started', 'lost', 'timeout', 'killed', 'failed', 'cancelled', 'running', 'pending', 'skipped', 'succeeded'];
const rank = (s) => { const i = severity.indexOf(s); return i < 0 ? severity.indexOf('failed') + 0.5 : i; };

// lastStatuses are what the status filter offers for the last run; the
// other choices are about the job itself.
const lastStatuses = ['succeeded', 'failed', 'timeout', 'killed', 'lost', 'not_started', 'error', 'cancelled', 'skipped'];
const jobStatuses = [['running', 'Running now'], ['never', 'Never run'], ['disabled', 'Disabled']];

// sorts are the sortable columns: the key a job sorts by (null, for no
// group, no next run or no run yet, sorts last either way) and the
// direction a first click picks.
const sorts = {
  name: { label: 'Name', first: 'asc', key: (j) => j.name },
  group: { label: 'Group', first: 'asc', key: (j) => j.group || null },
  next: { label: 'Next run', first: 'asc', key: (j) => (j.next_run ? Date.parse(j.next_run) : null) },
  // Most severe first, then the newest.
  last: { label: 'Last run', first: 'desc', key: (j) => (j.last_run ? [-rank(j.last_run.status), Date.parse(j.last_run.started_at || 0) || 0] : null) },
  running: { label: 'Running', first: 'desc', key: (j) => (j.running || []).length },
};

// narrowChips is how many machines a run may have and still show one chip
// each on a phone; more read as counts there.
const narrowChips = 10;

function compare(a, b) {
  if (Array.isArray(a)) {
    for (let i = 0; i < a.length; i++) {
      const c = compare(a[i], b[i]);
      if (c) return c;
    }
    return 0;
  }
  if (typeof a === 'string') return a.localeCompare(b);
  return a - b;
}

// hashQuery is the query the jobs page keeps in its hash
// (#/jobs?group=db&status=failed&sort=next&dir=desc), so that a filtered
// view can be shared and survives the page's redraws.
function hashQuery() {
  const i = location.hash.indexOf('?');
  return new URLSearchParams(i < 0 ? '' : location.hash.slice(i + 1));
}

export function jobsPage(app) {
  const q = hashQuery();
  const view = {
    text: q.get('q') || '',
    group: q.get('group') || '',
    status: q.get('status') || '',
    sort: sorts[q.get('sort')] ? q.get('sort') : 'name',
    dir: q.get('dir') === 'desc' ? 'desc' : 'asc',
  };
  const filter = h('input', { type: 'search', id: 'filter', placeholder: 'Filter by name or group', 'aria-label': 'Filter jobs', value: view.text });
  const groupSel = h('select', { id: 'filter-group', 'aria-label': 'Group' });
  const statusSel = h('select', { id: 'filter-status', 'aria-label': 'Status' },
    h('option', { value: '' }, 'Any status'),
    h('optgroup', { label: 'Last run' }, lastStatuses.map((s) => h('option', { value: s }, s.replace('_', ' ')))),
    h('optgroup', { label: 'Job' }, jobStatuses.map(([v, label]) => h('option', { value: v }, label))));
  if (view.status && ![...statusSel.options].some((o) => o.value === view.status)) {
    // A status this page does not know (a newer core's) still filters.
    statusSel.append(h('option', { value: view.status }, view.status));
  }
  statusSel.value = view.status;
  const count = h('p', { id: 'jobs-count', class: 'muted' });
  const body = h('tbody', { id: 'jobs' });
  const heads = {};
  const head = (key, cls) => {
    heads[key] = h('th', { class: cls, 'data-sort': key },
      h('button', { type: 'button', class: 'sort', onclick: () => sortBy(key) }, sorts[key].label));
    return heads[key];
  };
  let jobs = [];
  let loaded = false;
  let groupsShown = null;
  const el = h('section', {}, h('h1', {}, 'Jobs'),
    h('form', { class: 'inline', id: 'jobs-filter', role: 'search', onsubmit: (ev) => ev.preventDefault() }, filter, groupSel, statusSel),
    count,
    h('div', { class: 'scroll' }, h('table', {},
      h('thead', {}, h('tr', {}, head('name'), head('group', 'hide-narrow'),
        h('th', { class: 'hide-narrow' }, 'Schedule'), h('th', {}, 'Enabled'), head('next', 'hide-narrow'),
        head('last'), head('running'), app.canOperate && h('th', {}, ''))),
      body)));

  function drawGroups() {
    const groups = [...new Set(jobs.map((j) => j.group).filter(Boolean))].sort();
    // A group from a shared link that no job has now stays chosen, and
    // the list says nothing matches.
    if (view.group && !groups.includes(view.group)) groups.push(view.group);
    const key = groups.join('\n');
    if (key === groupsShown) return;
    groupsShown = key;
    clear(groupSel, h('option', { value: '' }, 'All groups'), groups.map((g) => h('option', { value: g }, g)));
    groupSel.value = view.group;
  }

  function matches(j) {
    const t = view.text.trim().toLowerCase();
    if (t && !j.name.toLowerCase().includes(t) && !(j.group || '').toLowerCase().includes(t)) return false;
    if (view.group && j.group !== view.group) return false;
    switch (view.status) {
      case '': return true;
      case 'running': return (j.running || []).length > 0 || (!!j.last_run && j.last_run.status === 'running');
      case 'never': return !j.last_run;
      case 'disabled': return !j.enabled;
      default: return !!j.last_run && j.last_run.status === view.status;
    }
  }

  function sorted(list) {
    const { key } = sorts[view.sort];
    const sign = view.dir === 'desc' ? -1 : 1;
    return list.map((j) => [key(j), j]).sort(([ka, a], [kb, b]) => {
      if (ka === null || kb === null) {
        if (ka !== kb) return ka === null ? 1 : -1;
      } else {
        const c = compare(ka, kb);
        if (c) return sign * c;
      }
      return a.name.localeCompare(b.name);
    }).map(([, j]) => j);
  }

  // keep writes the view into the hash without a hashchange, which would
  // build the page anew under the reader's typing.
  function keep() {
    const p = new URLSearchParams();
    if (view.text.trim()) p.set('q', view.text.trim());
    if (view.group) p.set('group', view.group);
    if (view.status) p.set('status', view.status);
    if (view.sort !== 'name' || view.dir !== 'asc') {
      p.set('sort', view.sort);
      p.set('dir', view.dir);
    }
    const s = p.toString();
    const hash = `#/jobs${s ? `?${s}` : ''}`;
    if (location.hash !== hash) history.replaceState(history.state, '', hash);
  }

  function sortBy(key) {
    if (view.sort === key) view.dir = view.dir === 'asc' ? 'desc' : 'asc';
    else {
      view.sort = key;
      view.dir = sorts[key].first;
    }
    keep();
    draw();
  }

  function draw() {
    for (const [key, th] of Object.entries(heads)) {
      if (key === view.sort) th.setAttribute('aria-sort', view.dir === 'asc' ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
    drawGroups();
    const shown = sorted(jobs.filter(matches));
    const filtered = !!(view.text.trim() || view.group || view.status);
    clear(count, loaded && filtered && [`${shown.length} of ${jobs.length} jobs. `,
      h('button', { type: 'button', id: 'filter-clear', class: 'link', onclick: clearFilters }, 'Show all')]);
    clear(body, shown.map((j) => h('tr', { 'data-job': j.name },
      h('td', {}, h('a', { href: `#/jobs/${enc(j.name)}` }, j.name)),
      h('td', { class: 'hide-narrow' }, j.group || ''),
      h('td', { class: 'hide-narrow' }, h('code', {}, j.schedule)),
      h('td', { class: 'enabled' }, j.enabled ? 'yes' : 'no'),
      h('td', { class: 'hide-narrow next-run' }, zoned(j.next_run, j.timezone)),
      h('td', { class: 'last-run' }, j.last_run
        ? [h('a', { href: `#/runs/${enc(j.last_run.id)}` }, status(j.last_run.status)), machineResults(j.last_run)]
        : '—'),
      h('td', {}, (j.running || []).map((id) => h('a', { href: `#/runs/${enc(id)}`, class: 'running-run' }, status('running'), ' '))),
      app.canOperate && h('td', {}, h('button', {
        class: 'toggle',
        onclick: () => post(`/api/v1/jobs/${enc(j.name)}/${j.enabled ? 'disable' : 'enable'}`).then(r.now, app.fail),
      }, j.enabled ? 'Disable' : 'Enable')))));
    if (loaded && !shown.length) body.append(h('tr', {}, h('td', { colspan: 8, class: 'muted' }, jobs.length ? 'No job matches.' : 'No jobs are configured.')));
  }

  function clearFilters() {
    view.text = '';
    view.group = '';
    view.status = '';
    filter.value = '';
    groupSel.value = '';
    statusSel.value = '';
    keep();
    draw();
  }

  const r = refresher(async () => {
    try {
      jobs = (await get('/api/v1/jobs')).jobs || [];
      loaded = true;
      draw();
    } catch (err) { app.fail(err); }
  });
  filter.addEventListener('input', () => { view.text = filter.value; keep(); draw(); });
  groupSel.addEventListener('change', () => { view.group = groupSel.value; keep(); draw(); });
  statusSel.addEventListener('change', () => { view.status = statusSel.value; keep(); draw(); });
  draw();
  return {
    el,
    refresh: r.now,
    onEvent: (e) => { if (e.kind !== 'output') r.soon(); },
    dispose: r.stop,
  };
}

// machineResults shows each machine's result in a run, one chip per
// machine the API lists (the first 50), and the rest as counts by status.
// A chip's colour and shape say its status; its title and hidden text say
// which machine, the status and the exit code, for a pointer and a screen
// reader alike. On a phone a run of many machines reads as counts alone.
function machineResults(lr) {
  const listed = lr.machines || [];
  const counts = lr.machine_counts || {};
  const total = Math.max(listed.length, Object.values(counts).reduce((a, n) => a + n, 0));
  if (!total) return null;
  const rest = { ...counts };
  for (const m of listed) rest[m.status] = (rest[m.status] || 0) - 1;
  const many = total > narrowChips;
  return [
    h('span', { class: `chips${many ? ' hide-narrow' : ''}`, role: 'list', 'aria-label': 'Machines' }, listed.map((m) => {
      const what = `${m.machine}: ${m.status}${m.exit_code === null || m.exit_code === undefined ? '' : `, exit ${m.exit_code}`}`;
      return h('span', { class: `chip status-${m.status}`, role: 'listitem', title: what, 'data-machine': m.machine },
        h('span', { class: 'sr-only' }, `${what}; `));
    })),
    total > listed.length && h('span', { class: `machines-more${many ? ' hide-narrow' : ''}` },
      `+ ${total - listed.length} more: ${byStatus(rest)}`),
    many && h('span', { class: 'machines-summary show-narrow', title: `${total} machines` }, byStatus(counts)),
  ];
}

// byStatus words counts by status, the largest first: "200 succeeded, 30 failed".
function byStatus(counts) {
  return Object.entries(counts).filter(([, n]) => n > 0)
    .sort(([sa, a], [sb, b]) => b - a || rank(sa) - rank(sb))
    .map(([s, n]) => `${n} ${s.replace('_', ' ')}`).join(', ');
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
      clear(next, (fires.fires || []).map((f) => h('li', {}, zoned(f.at, fires.timezone || job.timezone),
        f.dst_transition || f.dst ? h('span', { class: 'dst' }, ` (DST ${f.dst || 'transition'})`) : '')));
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
