// The Alerts panel of Cluster Configuration: the alerts section of the file
// (email, syslog), staged through PUT /api/v1/config/alerts like every other
// change and put in force by Apply changes.
'use strict';

(() => {
  const { call, message, toast } = window.mlb;
  const $ = (id) => document.getElementById(id);
  const form = $('alerts-form');
  const BOOLS = ['email.starttls', 'email.tls_verify'];
  const NUMS = ['syslog.facility'];
  let orig = null;

  const get = (o, path) => path.split('.').reduce((v, p) => (v == null ? undefined : v[p]), o);
  const inputs = () => [...form.querySelectorAll('[data-path]')];

  async function load() {
    const r = await call('GET', '/api/v1/config/alerts');
    if (!r.ok) { toast('Cannot load the alerts: ' + message(r), true); return; }
    orig = r.body.alerts || {};
    for (const inp of inputs()) {
      const v = get(orig, inp.dataset.path);
      if (inp.type === 'checkbox') inp.checked = v === undefined ? true : !!v;
      else if (Array.isArray(v)) inp.value = v.join(', ');
      else inp.value = v === undefined ? (inp.dataset.default || '') : String(v);
    }
  }

  // body is the section as it was with the form's fields put over it; a
  // transport without its address is left out, and with neither, the section.
  function body() {
    const out = JSON.parse(JSON.stringify(orig || {}));
    for (const part of ['email', 'syslog']) {
      const o = Object.assign({}, out[part] || {});
      for (const inp of inputs().filter((i) => i.dataset.path.startsWith(part + '.'))) {
        const k = inp.dataset.path.slice(part.length + 1);
        const v = inp.value.trim();
        if (inp.type === 'checkbox') { if (inp.checked && !(k in (out[part] || {}))) delete o[k]; else o[k] = inp.checked; } // true is the default
        else if (v === '') delete o[k];
        else if (k === 'to') o[k] = v.split(',').map((s) => s.trim()).filter(Boolean);
        else if (NUMS.includes(inp.dataset.path) && /^\d+$/.test(v)) o[k] = Number(v);
        else o[k] = v;
      }
      const used = part === 'email' ? o.server : o.address;
      if (used) out[part] = o; else delete out[part];
    }
    return Object.keys(out).length ? out : null;
  }

  function showProblems(problems) {
    for (const e of form.querySelectorAll('.field-error')) e.textContent = '';
    for (const i of form.querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid');
    const rest = [];
    for (const p of problems) {
      const rel = p.path && p.path.startsWith('alerts.') ? p.path.slice(7).replace(/\[\d+\]$/, '') : null;
      const slot = rel && form.querySelector(`.field-error[data-for="${CSS.escape(rel)}"]`);
      if (slot) {
        slot.textContent = p.message;
        form.querySelector(`[data-path="${CSS.escape(rel)}"]`).setAttribute('aria-invalid', 'true');
      } else rest.push((p.path ? p.path + ': ' : '') + p.message);
    }
    $('alerts-errors').textContent = rest.join('; ');
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await call('PUT', '/api/v1/config/alerts', body() === null ? 'null' : body());
    if (r.status === 400 && r.body && Array.isArray(r.body.errors)) {
      showProblems(r.body.errors);
      toast('Not staged: the problems are shown next to the fields', true);
      return;
    }
    if (!r.ok) { toast(message(r), true); return; }
    showProblems([]);
    toast('Alerts staged. Apply changes to put them in force.');
    document.dispatchEvent(new CustomEvent('mlb:changed'));
    load();
  });
  load();
})();
