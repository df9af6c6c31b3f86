// The maintenance page: what is in force and where it comes from, and for
// the operate role an editor of the whole state. PUT replaces global and
// machines together, so the editor always sends both, never a delta.

import { call, get } from './api.js';
import { clear, h, refresher, when } from './dom.js';

export function maintenancePage(app) {
  const state = h('dl', { id: 'maint-state' });
  const note = h('p', { id: 'maint-note', class: 'muted' });
  const el = h('section', {}, h('h1', {}, 'Maintenance'),
    h('p', { class: 'muted' }, 'Global maintenance starts no new runs and lets running ones finish; ',
      'machines under maintenance are left out of every run.'),
    state);

  let current = null;
  // The draft is the operator's unsaved edit. An event from elsewhere
  // redraws what is in force but leaves the draft alone, so a change made
  // meanwhile never wipes what the operator is typing.
  let draft = { global: false, machines: [] };
  let dirty = false;

  const globalBox = h('input', {
    type: 'checkbox', id: 'maint-global',
    onchange: () => { draft.global = globalBox.checked; edited(); },
  });
  const list = h('ul', { id: 'maint-machines' });
  const name = h('input', {
    type: 'text', id: 'maint-add-name', placeholder: 'Machine name', 'aria-label': 'Machine to add', autocomplete: 'off',
  });
  const addForm = h('form', {
    id: 'maint-add-form', class: 'inline',
    onsubmit: (ev) => {
      ev.preventDefault();
      const n = name.value.trim();
      if (n && !draft.machines.includes(n)) draft.machines.push(n);
      name.value = '';
      edited();
      name.focus();
    },
  }, name, h('button', { type: 'submit', id: 'maint-add' }, 'Add'));
  const saveBtn = h('button', { id: 'maint-save', class: 'primary', onclick: save }, 'Save');
  const resetBtn = h('button', { id: 'maint-reset', onclick: reset }, 'Back to the configuration');

  // The editor appears only once the state is read: controls drawn
  // before that would offer to save a state nobody has seen.
  const editor = app.canOperate && h('div', { id: 'maint-editor' }, h('h2', {}, 'Change it'),
      h('p', { id: 'maint-explain' }, 'Save replaces the whole maintenance state, the global switch and the machine list ',
        'together, with what is below; it holds across restarts and reloads, over the configuration\'s ',
        h('code', {}, 'maintenance'), ' block, until "Back to the configuration" drops it.'),
      h('p', {}, h('label', {}, globalBox, ' Global maintenance')),
      h('h3', {}, 'Machines under maintenance'), list, addForm,
      h('div', { class: 'actions' }, saveBtn, resetBtn), note);

  function drawState() {
    const m = current;
    clear(state,
      h('dt', {}, 'Global'), h('dd', { id: 'maint-global-state' }, m.global ? 'on: no new runs start' : 'off'),
      h('dt', {}, 'Machines'), h('dd', { id: 'maint-machines-state' },
        m.machines.length ? m.machines.join(', ') : h('span', { class: 'muted' }, 'none')),
      h('dt', {}, 'From'), h('dd', { id: 'maint-source' }, m.source === 'api'
        ? ['the API, set by ', m.set_by || '?', ' at ', when(m.set_at)]
        : ['the configuration (its ', h('code', {}, 'maintenance'), ' block)']));
  }

  function drawEditor() {
    globalBox.checked = draft.global;
    clear(list, draft.machines.map((n) => h('li', { 'data-machine': n }, n, ' ',
      h('button', {
        type: 'button', class: 'remove-machine', 'aria-label': `Remove ${n}`,
        onclick: () => { draft.machines = draft.machines.filter((x) => x !== n); edited(); },
      }, 'Remove'))));
    if (!draft.machines.length) list.append(h('li', { class: 'muted' }, 'No machine.'));
    // With nothing set through the API there is no override to drop.
    resetBtn.disabled = current.source !== 'api';
    note.textContent = dirty ? 'Not saved yet.' : '';
  }

  function edited() {
    dirty = true;
    drawEditor();
  }

  function shown(m) {
    current = m;
    current.machines = current.machines || [];
    drawState();
    if (!dirty) draft = { global: m.global, machines: [...m.machines] };
    if (editor) {
      if (editor.parentNode !== el) el.append(editor);
      drawEditor();
    }
    app.maintenanceShown(m);
  }

  async function save() {
    try {
      const m = await call('PUT', '/api/v1/maintenance', { global: draft.global, machines: draft.machines });
      dirty = false;
      shown(m);
    } catch (err) { app.fail(err); }
  }

  async function reset() {
    try {
      const m = await call('DELETE', '/api/v1/maintenance');
      dirty = false;
      shown(m);
    } catch (err) { app.fail(err); }
  }

  const r = refresher(async () => {
    try { shown(await get('/api/v1/maintenance')); } catch (err) { app.fail(err); }
  });
  return {
    el,
    refresh: r.now,
    onEvent: (e) => { if (e.kind === 'maintenance_updated') r.soon(); },
    dispose: r.stop,
  };
}
