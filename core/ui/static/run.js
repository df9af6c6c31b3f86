// One run: its machines, the live output of one of them, and the actions
// an operator takes on it.

import { APIError, get, post } from './api.js';
import { ask, clear, enc, final, h, refresher, status, when } from './dom.js';

export function runPage(app, id) {
  const head = h('div', { id: 'run-head' });
  const actions = h('div', { class: 'actions', id: 'run-actions' });
  const machines = h('tbody', { id: 'machines' });
  const outTitle = h('h2', {}, 'Output');
  const out = h('pre', { id: 'output', tabindex: 0 });
  const el = h('section', {}, h('h1', {}, 'Run ', h('code', {}, id)), head, actions,
    h('h2', {}, 'Machines'), h('div', { class: 'scroll' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Machine'), h('th', {}, 'Status'), h('th', {}, 'Exit'),
        h('th', { class: 'hide-narrow' }, 'Started'), h('th', { class: 'hide-narrow' }, 'Finished'),
        h('th', { class: 'hide-narrow' }, 'Last heartbeat'), app.canOperate && h('th', {}, ''))), machines)),
    outTitle, out);

  let run = null;
  let selected = null;
  let follower = null;

  const r = refresher(async () => {
    try {
      run = await get(`/api/v1/runs/${enc(id)}`);
    } catch (err) { app.fail(err); return; }
    draw();
  });

  function draw() {
    clear(head, h('dl', {},
      h('dt', {}, 'Job'), h('dd', {}, h('a', { href: `#/jobs/${enc(run.job)}` }, run.job)),
      h('dt', {}, 'Status'), h('dd', { id: 'run-status' }, status(run.status), run.reason ? ` (${run.reason})` : ''),
      h('dt', {}, 'Trigger'), h('dd', {}, run.trigger, run.requested_by ? ` by ${run.requested_by}` : ''),
      h('dt', {}, 'Started'), h('dd', {}, when(run.started_at)),
      h('dt', {}, 'Finished'), h('dd', {}, when(run.finished_at))));
    const live = (run.machines || []).filter((m) => !final(m.status));
    clear(actions, app.canOperate && run.status === 'running' && [
      h('button', { id: 'kill-run', class: 'danger', onclick: () => killRun(live) }, 'Kill run'),
      h('button', { id: 'pause', onclick: () => signal('SIGSTOP') }, 'Pause'),
      h('button', { id: 'resume', onclick: () => signal('SIGCONT') }, 'Resume'),
    ]);
    if (!selected && run.machines && run.machines.length) select(run.machines[0].machine);
    clear(machines, (run.machines || []).map((m) => h('tr', {
      'data-machine': m.machine, class: m.machine === selected ? 'selected' : '',
    },
    h('td', {}, h('a', { href: `#/runs/${enc(id)}`, onclick: (ev) => { ev.preventDefault(); select(m.machine); draw(); } }, m.machine)),
    h('td', { class: 'machine-status' }, status(m.status), m.reason && final(m.status) ? ` (${m.reason})` : ''),
    h('td', {}, m.exit_code ?? '—'),
    h('td', { class: 'hide-narrow' }, when(m.started_at)),
    h('td', { class: 'hide-narrow' }, when(m.finished_at)),
    h('td', { class: 'hide-narrow' }, when(m.last_heartbeat)),
    app.canOperate && h('td', {}, !final(m.status) && h('button', {
      class: 'danger kill-machine', onclick: () => killMachine(m.machine),
    }, 'Kill')))));
    if (!machines.children.length) machines.append(h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No machine yet.')));
  }

  function select(machine) {
    if (selected === machine) return;
    selected = machine;
    if (follower) follower.abort();
    clear(outTitle, 'Output of ', h('code', {}, machine));
    clear(out);
    follower = new AbortController();
    follow(machine, follower.signal);
  }

  // follow streams the machine's output and appends it as it arrives. A
  // stream that ends early (the core restarted) resumes from the byte it
  // reached; one that ends because the machine is final stays ended.
  async function follow(machine, signal) {
    const dec = new TextDecoder();
    let offset = 0;
    let delay = 500;
    while (!signal.aborted) {
      try {
        const res = await fetch(`/api/v1/runs/${enc(id)}/machines/${enc(machine)}/output?follow=1&offset=${offset}`,
          { signal, credentials: 'same-origin' });
        if (!res.ok) {
          const body = await res.json().catch(() => null);
          throw new APIError(res.status, body);
        }
        const reader = res.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          offset += value.length;
          append(dec.decode(value, { stream: true }));
          delay = 500;
        }
        const now = await get(`/api/v1/runs/${enc(id)}`);
        const m = (now.machines || []).find((x) => x.machine === machine);
        if (m && final(m.status)) {
          r.now();
          return;
        }
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof APIError && err.status !== 503) { app.fail(err); return; }
      }
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }

  // append keeps the reader at the end while they are there; one who
  // scrolled up to read is left where they are.
  function append(text) {
    const atEnd = out.scrollHeight - out.scrollTop - out.clientHeight < 8;
    out.append(text);
    if (atEnd) out.scrollTop = out.scrollHeight;
  }

  async function killRun(live) {
    const names = live.map((m) => m.machine);
    const yes = await confirmKill(`Kill run ${id}?`, names);
    if (yes) post(`/api/v1/runs/${enc(id)}/kill`).then(r.now, app.fail);
  }

  async function killMachine(machine) {
    const yes = await confirmKill(`Kill ${machine}?`, [machine]);
    if (yes) post(`/api/v1/runs/${enc(id)}/machines/${enc(machine)}/kill`).then(r.now, app.fail);
  }

  function confirmKill(title, names) {
    return ask(title, [
      h('p', {}, 'Job ', h('strong', {}, run.job), ', run ', h('code', {}, id), ', will be killed on:'),
      h('ul', { id: 'confirm-machines' }, names.map((n) => h('li', {}, n))),
    ], 'Kill');
  }

  function signal(sig) {
    post(`/api/v1/runs/${enc(id)}/signal`, { signal: sig }).then(r.now, app.fail);
  }

  return {
    el,
    refresh: r.now,
    onEvent: (e) => { if (e.run_id === id) r.soon(); },
    dispose() { r.stop(); if (follower) follower.abort(); },
  };
}
