// One run: its machines, the live output of one of them, and the actions
// an operator takes on it.

import { APIError, get, post } from './api.js';
import { ask, choice, clear, enc, final, h, refresher, status, when } from './dom.js';

// signals are what "Signal…" offers: the ones jobs commonly trap. SIGKILL
// is not among them, since the API refuses it for signal (kill is the
// call that does it, with the kill queue's bookkeeping); SIGSTOP and
// SIGCONT have their own buttons.
const signals = ['SIGHUP', 'SIGINT', 'SIGTERM', 'SIGUSR1', 'SIGUSR2', 'SIGQUIT'];

// killSignals are what a kill may send first instead of the job's
// policy; SIGKILL skips the grace.
const killSignals = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGKILL'];

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
        h('th', { class: 'hide-narrow' }, 'Last heartbeat'), h('th', { class: 'hide-narrow' }, 'Wrapper'),
        app.canOperate && h('th', {}, ''))), machines)),
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
      h('button', { id: 'signal-run', onclick: () => askSignal(null, live.map((m) => m.machine)) }, 'Signal…'),
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
    h('td', { class: 'hide-narrow wrapper-version' }, m.wrapper_version || '—'),
    app.canOperate && h('td', { class: 'row-actions' }, !final(m.status) && [
      h('button', { class: 'signal-machine', onclick: () => askSignal(m.machine, [m.machine]) }, 'Signal…'),
      h('button', { class: 'danger kill-machine', onclick: () => killMachine(m.machine) }, 'Kill'),
    ]))));
    if (!machines.children.length) machines.append(h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No machine yet.')));
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
    const body = await confirmKill(`Kill run ${id}?`, names);
    if (body) post(`/api/v1/runs/${enc(id)}/kill`, body.override).then(r.now, app.fail);
  }

  async function killMachine(machine) {
    const body = await confirmKill(`Kill ${machine}?`, [machine]);
    if (body) post(`/api/v1/runs/${enc(id)}/machines/${enc(machine)}/kill`, body.override).then(r.now, app.fail);
  }

  // confirmKill names what dies and offers the job's kill policy, filled
  // in, to override for this kill only. It resolves to null when the
  // operator cancels, else to { override }: undefined, so no body and
  // the job's own policy, unless a field was changed; then only the
  // changed fields, so an untouched one stays the job's.
  async function confirmKill(title, names) {
    let policy = {};
    try {
      policy = (await get(`/api/v1/jobs/${enc(run.job)}`)).kill || {};
    } catch (err) {
      // A job dropped from the configuration still has runs to kill; the
      // core applies the policy the run started with, which is not known
      // here, so the fields start blank and blank means that policy.
      if (!(err instanceof APIError && err.status === 404)) { app.fail(err); return null; }
    }
    const sigs = policy.signal && !killSignals.includes(policy.signal) ? [policy.signal, ...killSignals] : killSignals;
    const sig = choice({ id: 'confirm-kill-signal' },
      [...(policy.signal ? [] : [['', "the job's policy"]]), ...sigs.map((s) => [s, s === policy.signal ? `${s} (the job's policy)` : s])],
      policy.signal || '');
    const grace = h('input', {
      type: 'text', id: 'confirm-kill-grace', value: policy.grace || '', placeholder: "the job's grace",
      autocomplete: 'off', size: 8,
    });
    const yes = await ask(title, [
      h('p', {}, 'Job ', h('strong', {}, run.job), ', run ', h('code', {}, id), ', will be killed on:'),
      h('ul', { id: 'confirm-machines' }, names.map((n) => h('li', {}, n))),
      h('div', { class: 'fields' },
        h('label', {}, 'First send ', sig),
        h('label', {}, 'then SIGKILL after ', grace)),
      h('p', { class: 'muted' }, "Filled in with the job's kill policy; a change applies to this kill only."),
    ], 'Kill');
    if (!yes) return null;
    const override = {};
    if (sig.value && sig.value !== policy.signal) override.signal = sig.value;
    const g = grace.value.trim();
    if (g && g !== policy.grace) override.grace = g;
    return { override: Object.keys(override).length ? override : undefined };
  }

  function signal(sig, machine) {
    post(`/api/v1/runs/${enc(id)}/signal`, { signal: sig, machine }).then(r.now, app.fail);
  }

  // askSignal sends another signal than pause and resume, to the whole
  // run (machine null) or to one machine, once the operator has seen
  // which signal goes where.
  async function askSignal(machine, names) {
    const sig = choice({ id: 'confirm-signal' }, signals, signals[0]);
    const what = h('strong', { id: 'confirm-signal-name' }, sig.value);
    sig.addEventListener('change', () => { what.textContent = sig.value; });
    const yes = await ask(machine ? `Send a signal to ${machine}?` : `Send a signal to run ${id}?`, [
      h('div', { class: 'fields' }, h('label', {}, 'Signal ', sig)),
      h('p', {}, what, ' goes to job ', h('strong', {}, run.job), ', run ', h('code', {}, id), ', on:'),
      h('ul', { id: 'confirm-machines' }, names.map((n) => h('li', {}, n))),
      h('p', { class: 'muted' }, 'What it does is up to the job; Kill is what ends it.'),
    ], 'Send');
    if (yes) signal(sig.value, machine || undefined);
  }

  return {
    el,
    refresh: r.now,
    onEvent: (e) => { if (e.run_id === id) r.soon(); },
    dispose() { r.stop(); if (follower) follower.abort(); },
  };
}
