// Building the page from elements rather than HTML strings keeps every
// job name, command and line of output text, never markup.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

// Times are shown in the reader's zone; the title keeps the exact UTC.
export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return h('time', { datetime: iso, title: iso }, d.toLocaleString());
}

// zoned shows an instant as when does and, when the zone a job is
// scheduled in (an IANA name; none is UTC) reads another time then, in
// that zone too, with its date only if it is another day there:
// "26/11/2026, 18:00:00 (03:00:00 America/Chicago)". A zone that reads
// the same time as the reader's adds nothing and is left out.
export function zoned(iso, zone) {
  const local = when(iso);
  if (!iso) return local;
  const d = new Date(iso);
  const tz = zone || 'UTC';
  const day = { year: 'numeric', month: 'numeric', day: 'numeric' };
  let there;
  try {
    if (d.toLocaleString(undefined, { timeZone: tz }) === d.toLocaleString()) return local;
    there = d.toLocaleDateString(undefined, { ...day, timeZone: tz }) === d.toLocaleDateString(undefined, day)
      ? d.toLocaleTimeString(undefined, { timeZone: tz })
      : d.toLocaleString(undefined, { timeZone: tz });
  } catch {
    // A zone this browser does not know: the reader's time alone.
    return local;
  }
  return h('span', { class: 'zoned' }, local, ' ',
    h('span', { class: 'job-zone', title: `In the job's time zone, ${tz}` }, `(${there} ${tz})`));
}

export function status(s) {
  if (!s) return '—';
  return h('span', { class: `status status-${s}` }, s);
}

export const final = (s) => !!s && s !== 'running' && s !== 'pending';

// duration says how long from start to end, or until now while there is
// no end yet, at the precision a reader compares runs by.
export function duration(fromIso, toIso) {
  if (!fromIso) return '—';
  const ms = Math.max(0, (toIso ? new Date(toIso) : new Date()) - new Date(fromIso));
  if (ms < 1000) return `${ms}ms`;
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)}s`;
  const pad = (n) => String(n).padStart(2, '0');
  const t = Math.floor(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${pad(t % 60)}s`;
  if (t < 86400) return `${Math.floor(t / 3600)}h${pad(Math.floor(t / 60) % 60)}m`;
  return `${Math.floor(t / 86400)}d${pad(Math.floor(t / 3600) % 24)}h`;
}

// choice is a select of values (or [value, label] pairs) with one chosen.
export function choice(attrs, values, chosen) {
  return h('select', attrs, values.map((v) => {
    const [value, label] = Array.isArray(v) ? v : [v, v];
    return h('option', { value, selected: value === chosen }, label);
  }));
}

export const enc = encodeURIComponent;

// ask shows the confirmation dialog and resolves to true when the reader
// confirms; body says what the action touches, so nothing dies unnamed.
export function ask(title, body, okLabel) {
  const dlg = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  clear(document.getElementById('confirm-body'), body);
  document.getElementById('confirm-ok').textContent = okLabel;
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    dlg.returnValue = '';
    dlg.showModal();
  });
}

// refresher runs fn one at a time: a call while one is in flight queues
// exactly one more, so a burst of events costs at most two reads.
export function refresher(fn) {
  let running = false;
  let again = false;
  let timer = null;
  async function run() {
    if (running) { again = true; return; }
    running = true;
    try { await fn(); } finally {
      running = false;
      if (again) { again = false; run(); }
    }
  }
  return {
    now: run,
    // soon waits a moment so that one run's many events read once.
    soon() { clearTimeout(timer); timer = setTimeout(run, 150); },
    stop() { clearTimeout(timer); },
  };
}
