// Cluster Configuration: the virtual services and real servers of the
// configuration file, changed only through the config REST endpoints
// (/api/v1/config/...). Changes are staged; "Apply changes" writes the file and
// reloads. A refused change shows each problem next to the field it names.
'use strict';

(() => {
  const { el, call, message, toast, diffView } = window.mlb;
  const $ = (id) => document.getElementById(id);
  const API = '/api/v1/config';
  const enc = encodeURIComponent;

  // The guide's values for a new service (its tables for VIP 1 and VIP 2).
  const HEALTH = { type: 'https-get', port: 8443, path: '/admin/status', expect: 'Healthy', interval: '5s', timeout: '3s', rise: 2, fall: 3 };
  const DEFAULTS = {
    7: { ports: '8080,8443', layer: 7, protocol: 'tcp', persistence: { mode: 'source-ip', timeout: '30m' }, health_check: HEALTH },
    4: { ports: '1935,554,50000-65535', layer: 4, forwarding: 'direct-routing', protocol: 'tcp+udp', persistence: { mode: 'source-ip', timeout: '300s' }, health_check: HEALTH },
  };

  // The form's fields: key (the YAML path inside a service), label, kind.
  const GROUPS = [
    ['Virtual Service', [
      { k: 'name', label: 'Label', hint: 'letters, digits, _ . -' },
      { k: 'address', label: 'IP Address', hint: 'the VIP' },
      { k: 'ports', label: 'Ports', hint: 'e.g. 1935,554,50000-65535' },
      { k: 'protocol', label: 'Protocol', options: ['tcp', 'udp', 'tcp+udp'] },
      { k: 'forwarding', label: 'Forwarding Method', options: ['direct-routing'], layer: 4 },
      { k: 'maglev_size', label: 'Maglev Table Size', hint: 'a prime; default 65537', num: true },
    ]],
    ['Persistence', [
      { k: 'persistence.mode', label: 'Mode', options: ['source-ip', 'none'] },
      { k: 'persistence.timeout', label: 'Timeout', hint: 'e.g. 30m, 300s' },
      { k: 'persistence.capacity', label: 'Clients Remembered', hint: 'default 1048576', num: true },
    ]],
    ['Health Check', [
      { k: 'health_check.type', label: 'Check Type', options: ['https-get', 'http-get', 'tcp-connect', 'none'] },
      { k: 'health_check.port', label: 'Check Port', num: true },
      { k: 'health_check.path', label: 'Request to Send', hint: 'the path' },
      { k: 'health_check.expect', label: 'Response Expected', hint: 'the whole body' },
      { k: 'health_check.expect_status', label: 'Status Expected', hint: 'empty: any 2xx', num: true },
      { k: 'health_check.interval', label: 'Check Interval', hint: 'e.g. 5s' },
      { k: 'health_check.timeout', label: 'Check Timeout', hint: 'less than the interval' },
      { k: 'health_check.rise', label: 'Rise', hint: 'passed checks to come up', num: true },
      { k: 'health_check.fall', label: 'Fall', hint: 'failed checks to go down', num: true },
      { k: 'health_check.jitter', label: 'Jitter', hint: 'default interval/10' },
      { k: 'health_check.host', label: 'Host Header', hint: 'default: the server\'s address' },
      { k: 'health_check.sni', label: 'TLS Server Name' },
      { k: 'health_check.tls_verify', label: 'Verify Certificate', options: ['', 'false', 'true'], bool: true },
      { k: 'health_check.ca_file', label: 'CA File', hint: 'PEM, with verify' },
    ]],
    ['Layer 7 Options', [
      { k: 'connect_timeout', label: 'Connect Timeout', hint: 'default 5s', layer: 7 },
      { k: 'client_timeout', label: 'Client Timeout', hint: 'idle; default 1h', layer: 7 },
      { k: 'server_timeout', label: 'Server Timeout', hint: 'idle; default 1h', layer: 7 },
      { k: 'max_connections', label: 'Max Connections', hint: '0: unlimited', num: true, layer: 7 },
      { k: 'source_address', label: 'Source Address', hint: 'toward the real servers', layer: 7 },
      { k: 'proxy_protocol', label: 'PROXY Protocol', options: ['', 'none', 'v2'], layer: 7 },
    ]],
    ['Fallback Server', [
      { k: 'fallback.address', label: 'IP Address', hint: 'takes new clients when every real server is out' },
      { k: 'fallback.name', label: 'Label', hint: 'default fallback' },
      { k: 'fallback.port', label: 'Port', num: true, layer: 7 },
    ]],
  ];
  const SERVER_FIELDS = [
    { k: 'name', label: 'Label' },
    { k: 'address', label: 'Real Server IP Address' },
    { k: 'port', label: 'Port', num: true, layer: 7, hint: 'empty: the client\'s port' },
    { k: 'weight', label: 'Weight', num: true, hint: '0..65535, default 100' },
    { k: 'max_connections', label: 'Max Conns', num: true, layer: 7, hint: '0: unlimited' },
  ];

  let state = null; // the last ConfigState

  const get = (o, path) => path.split('.').reduce((v, p) => (v == null ? undefined : v[p]), o);
  function put(o, path, value) {
    const parts = path.split('.');
    let cur = o;
    for (const p of parts.slice(0, -1)) {
      if (typeof cur[p] !== 'object' || cur[p] === null) cur[p] = {};
      cur = cur[p];
    }
    const last = parts[parts.length - 1];
    if (value === undefined) {
      delete cur[last];
      if (parts.length > 1 && Object.keys(cur).length === 0) delete o[parts[0]];
    } else cur[last] = value;
  }
  const clone = (o) => JSON.parse(JSON.stringify(o || {}));
  const show = (v) => (v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));

  function showError(text) {
    $('error').textContent = text;
    $('error').hidden = !text;
  }

  async function load(r) {
    try {
      r = r || await call('GET', API + '/services');
      if (!r.ok) throw new Error(message(r));
      state = r.body;
      render();
      showError('');
    } catch (e) {
      showError('Cannot load the configuration: ' + e.message);
    }
  }

  function summary(s) {
    const p = s.persistence;
    const pers = !p ? 'none' : typeof p === 'object' ? [p.mode, p.timeout].filter(Boolean).join(' ') : show(p);
    const h = s.health_check || {};
    const hc = [h.type || 'default', h.port ? ':' + h.port : '', h.path || '', h.interval ? 'every ' + h.interval : ''].join(' ').replace(/\s+/g, ' ').trim();
    return { pers, hc };
  }

  function render() {
    $('staged').hidden = !state.staged;
    if (state.staged) diffView($('diff'), state.diff || []);
    for (const layer of [7, 4]) {
      const table = $('l' + layer);
      for (const tb of table.querySelectorAll('tbody')) tb.remove();
      const tb = el('tbody');
      state.services.forEach((s, i) => {
        if (Number(s.layer) !== layer) return;
        const { pers, hc } = summary(s);
        tb.append(el('tr', { class: 'svc', 'data-service': s.name },
          el('td', { text: s.name }), el('td', { class: 'mono', text: show(s.address) }), el('td', { class: 'mono', text: show(s.ports) }),
          el('td', { text: show(s.protocol || 'tcp') }), el('td', { text: pers }), el('td', { text: hc }),
          el('td', {}, el('span', { class: 'row-btns' },
            el('button', { class: 'btn', type: 'button', text: 'Modify', 'data-do': 'edit', 'data-i': i }),
            el('button', { class: 'btn', type: 'button', text: 'Add Real Server', 'data-do': 'add-rs', 'data-i': i }),
            el('button', { class: 'btn danger', type: 'button', text: 'Delete', 'data-do': 'delete', 'data-i': i })))));
        (s.real_servers || []).forEach((rs, j) => {
          tb.append(el('tr', { class: 'sub', 'data-server': rs.name || rs.address },
            el('td', { text: rs.name || rs.address }), el('td', { class: 'mono', text: show(rs.address) }),
            el('td', { class: 'mono', text: rs.port ? show(rs.port) : '' }), el('td', { text: 'weight ' + (rs.weight ?? 100) }),
            el('td'), el('td'),
            el('td', {}, el('span', { class: 'row-btns' },
              el('button', { class: 'btn', type: 'button', text: 'Modify', 'data-do': 'edit-rs', 'data-i': i, 'data-j': j }),
              el('button', { class: 'btn danger', type: 'button', text: 'Delete', 'data-do': 'delete-rs', 'data-i': i, 'data-j': j })))));
        });
      });
      if (!tb.children.length) tb.append(el('tr', {}, el('td', { colspan: 7, class: 'muted', text: 'None.' })));
      table.append(tb);
    }
  }

  // field builds one labelled input with the place for its error.
  function field(f, value, path) {
    const input = f.options
      ? el('select', { 'data-path': path, name: path }, ...f.options.map((o) => el('option', { value: o, text: o === '' ? 'default' : o })))
      : el('input', { 'data-path': path, name: path, type: 'text', inputmode: f.num ? 'numeric' : undefined, autocomplete: 'off' });
    if (f.options && value !== undefined && !f.options.includes(String(value))) input.append(el('option', { value: show(value), text: show(value) }));
    input.value = show(value);
    if (f.options && value === undefined) input.value = f.options[0];
    return el('label', {}, el('span', {}, f.label, f.hint ? el('span', { class: 'hint', text: ' (' + f.hint + ')' }) : null),
      input, el('span', { class: 'field-error', 'data-for': path }));
  }

  function serverRow(rs, layer, j) {
    const tr = el('tr', { 'data-orig': rs ? (rs.name || rs.address) : '' });
    for (const f of SERVER_FIELDS) {
      if (f.layer && f.layer !== layer) continue;
      const path = `real_servers[${j}].${f.k}`;
      const inp = el('input', { 'data-path': path, 'data-key': f.k, type: 'text', 'aria-label': f.label, placeholder: f.hint || '' });
      inp.value = rs ? show(rs[f.k]) : '';
      tr.append(el('td', {}, inp, el('span', { class: 'field-error', 'data-for': path })));
    }
    tr.append(el('td', {}, el('button', { class: 'btn', type: 'button', text: 'Remove', 'data-do': 'rm-row' })));
    return tr;
  }

  function renumber(tbody) {
    [...tbody.rows].forEach((tr, j) => {
      for (const inp of tr.querySelectorAll('[data-key]')) {
        inp.dataset.path = `real_servers[${j}].${inp.dataset.key}`;
        inp.nextElementSibling.dataset.for = inp.dataset.path;
      }
    });
  }

  let editing = null; // {kind: 'service'|'server', i, j, orig, layer, svc}

  function openEditor(ed) {
    editing = ed;
    const form = $('form');
    form.replaceChildren();
    const o = ed.orig;
    if (ed.kind === 'service') {
      $('editor-title').textContent = (ed.i === undefined ? 'Add a new ' : 'Modify ') + 'Layer ' + ed.layer + ' Virtual Service';
      for (const [legend, fields] of GROUPS) {
        const fs = el('fieldset', {}, el('legend', { text: legend }));
        for (const f of fields) if (!f.layer || f.layer === ed.layer) fs.append(field(f, get(o, f.k), f.k));
        if (fs.children.length > 1) form.append(fs); // not a layer-7 group on a layer-4 service
      }
      const body = el('tbody');
      (o.real_servers || [null]).forEach((rs, j) => body.append(serverRow(rs, ed.layer, j)));
      const head = el('tr', {}, ...SERVER_FIELDS.filter((f) => !f.layer || f.layer === ed.layer).map((f) => el('th', { text: f.label })), el('th'));
      form.append(el('fieldset', {}, el('legend', { text: 'Real Servers' }),
        el('table', { class: 'list servers' }, el('thead', {}, head), body),
        el('div', {}, el('button', { class: 'btn', type: 'button', text: 'Add a row', 'data-do': 'add-row' }))));
    } else {
      $('editor-title').textContent = (ed.j === undefined ? 'Add a Real Server to ' : 'Modify a Real Server of ') + ed.svc.name;
      const fs = el('fieldset', {}, el('legend', { text: 'Real Server' }));
      for (const f of SERVER_FIELDS) if (!f.layer || f.layer === ed.layer) fs.append(field(f, o[f.k], f.k));
      form.append(fs);
    }
    form.append(el('ul', { class: 'form-errors', id: 'form-errors' }),
      el('div', { class: 'form-btns' },
        el('button', { class: 'btn primary', type: 'submit', id: 'save', text: 'Update' }),
        el('button', { class: 'btn', type: 'button', text: 'Cancel', 'data-do': 'cancel' })));
    $('editor').hidden = false;
    $('editor').scrollIntoView({ block: 'start' });
    form.querySelector('input, select').focus();
  }

  const numeric = (v) => (/^\d+$/.test(v) ? Number(v) : v);

  // body is the service or server to send: the original with the form's fields
  // put over it, so that keys the form does not show are kept.
  function body() {
    const form = $('form');
    const out = clone(editing.orig);
    const fields = editing.kind === 'service' ? GROUPS.flatMap((g) => g[1]) : SERVER_FIELDS;
    for (const f of fields) {
      const inp = form.querySelector(`[data-path="${f.k}"]`);
      if (!inp) { if (f.layer && f.layer !== editing.layer) put(out, f.k, undefined); continue; }
      const v = inp.value.trim();
      put(out, f.k, v === '' ? undefined : f.num ? numeric(v) : f.bool ? v === 'true' : v);
    }
    if (editing.kind === 'service') {
      out.layer = editing.layer;
      const olds = new Map((editing.orig.real_servers || []).map((rs) => [rs.name || rs.address, rs]));
      out.real_servers = [];
      for (const tr of form.querySelectorAll('table.servers tbody tr')) {
        const rs = clone(olds.get(tr.dataset.orig));
        let any = false;
        for (const inp of tr.querySelectorAll('[data-key]')) {
          const f = SERVER_FIELDS.find((x) => x.k === inp.dataset.key);
          const v = inp.value.trim();
          if (v !== '') any = true;
          put(rs, f.k, v === '' ? undefined : f.num ? numeric(v) : v);
        }
        if (any) out.real_servers.push(rs);
      }
      // Keep the key order of the YAML the guide shows: name first.
      const ordered = { name: out.name, address: out.address, ports: out.ports, layer: out.layer };
      return Object.assign(ordered, out);
    }
    return Object.assign({ name: out.name, address: out.address }, out);
  }

  // showProblems puts each problem next to its field; the rest go in a list.
  function showProblems(problems) {
    const form = $('form');
    for (const e of form.querySelectorAll('.field-error')) e.textContent = '';
    for (const i of form.querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid');
    const list = $('form-errors');
    list.replaceChildren();
    const svcPrefix = `virtual_services[${editing.i ?? state.services.length}]`;
    let prefix = svcPrefix + '.';
    if (editing.kind === 'server') {
      const j = editing.j ?? (editing.svc.real_servers || []).length;
      prefix = `${svcPrefix}.real_servers[${j}].`;
    }
    let first = null;
    for (const p of problems) {
      const rel = p.path && p.path.startsWith(prefix) ? p.path.slice(prefix.length) : null;
      const slot = rel && form.querySelector(`.field-error[data-for="${CSS.escape(rel)}"]`);
      if (slot) {
        slot.textContent = p.message;
        const input = form.querySelector(`[data-path="${CSS.escape(rel)}"]`);
        input.setAttribute('aria-invalid', 'true');
        first = first || input;
      } else {
        list.append(el('li', { text: (p.path ? p.path + ': ' : '') + p.message + (p.line ? ` (line ${p.line} of the staged file)` : '') }));
      }
    }
    if (first) first.focus();
  }

  async function save(ev) {
    ev.preventDefault();
    const ed = editing;
    const b = body();
    let r;
    if (ed.kind === 'service') {
      r = ed.i === undefined ? await call('POST', API + '/services', b)
        : await call('PUT', `${API}/services/${enc(ed.orig.name)}`, b);
    } else {
      const base = `${API}/services/${enc(ed.svc.name)}/real-servers`;
      r = ed.j === undefined ? await call('POST', base, b)
        : await call('PUT', `${base}/${enc(ed.orig.name || ed.orig.address)}`, b);
    }
    if (r.status === 400 && r.body && Array.isArray(r.body.errors)) {
      showProblems(r.body.errors);
      toast('Not staged: ' + r.body.errors.length + ' problem(s), shown next to the fields', true);
      return;
    }
    if (!r.ok) { toast(message(r), true); return; }
    $('editor').hidden = true;
    editing = null;
    toast('Staged. Apply changes to put it in force.');
    load(r);
  }

  async function remove(url, what, button) {
    if (!button.classList.contains('confirm')) {
      button.classList.add('confirm');
      button.textContent = 'Delete ' + what + '?';
      setTimeout(() => { button.classList.remove('confirm'); button.textContent = 'Delete'; }, 4000);
      return;
    }
    const r = await call('DELETE', url);
    if (!r.ok) { toast(message(r), true); return; }
    toast(what + ' deleted (staged)');
    load(r);
  }

  async function apply() {
    $('apply').disabled = true;
    try {
      const r = await call('POST', API + '/apply');
      if (!r.ok) {
        if (r.status === 400 && r.body && r.body.errors) toast('Not applied: ' + message(r), true);
        else toast('Not applied: ' + message(r), true);
        return;
      }
      toast('Applied and reloaded; the old file is ' + r.body.backup);
      load();
    } finally {
      $('apply').disabled = false;
    }
  }

  document.addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-do]');
    if (!b) return;
    const i = b.dataset.i === undefined ? undefined : Number(b.dataset.i);
    const j = b.dataset.j === undefined ? undefined : Number(b.dataset.j);
    const svc = i === undefined ? null : state.services[i];
    switch (b.dataset.do) {
      case 'edit': openEditor({ kind: 'service', i, orig: clone(svc), layer: Number(svc.layer) }); break;
      case 'delete': remove(`${API}/services/${enc(svc.name)}`, svc.name, b); break;
      case 'add-rs': openEditor({ kind: 'server', i, svc, orig: {}, layer: Number(svc.layer) }); break;
      case 'edit-rs': openEditor({ kind: 'server', i, j, svc, orig: clone(svc.real_servers[j]), layer: Number(svc.layer) }); break;
      case 'delete-rs': {
        const rs = svc.real_servers[j];
        remove(`${API}/services/${enc(svc.name)}/real-servers/${enc(rs.name || rs.address)}`, rs.name || rs.address, b);
        break;
      }
      case 'add-row': {
        const tbody = $('form').querySelector('table.servers tbody');
        tbody.append(serverRow(null, editing.layer, tbody.rows.length));
        break;
      }
      case 'rm-row': {
        const tbody = b.closest('tbody');
        b.closest('tr').remove();
        renumber(tbody);
        break;
      }
      case 'cancel': $('editor').hidden = true; editing = null; break;
    }
  });

  $('add7').addEventListener('click', () => openEditor({ kind: 'service', orig: clone(DEFAULTS[7]), layer: 7 }));
  $('add4').addEventListener('click', () => openEditor({ kind: 'service', orig: clone(DEFAULTS[4]), layer: 4 }));
  $('form').addEventListener('submit', save);
  $('apply').addEventListener('click', apply);
  $('discard').addEventListener('click', async () => {
    const r = await call('DELETE', API + '/staged');
    if (!r.ok) { toast(message(r), true); return; }
    toast('Staged changes discarded');
    load(r);
  });
  $('showdiff').addEventListener('click', (ev) => {
    const open = $('diff').hidden;
    $('diff').hidden = !open;
    ev.target.setAttribute('aria-expanded', String(open));
    ev.target.textContent = open ? 'Hide changes' : 'Show changes';
  });

  document.addEventListener('mlb:changed', () => load()); // staged elsewhere on the page (alerts.js)
  load();
})();
