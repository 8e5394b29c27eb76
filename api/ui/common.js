// Helpers shared by the WebUI's pages (everything but the System Overview, which
// predates them): the REST calls, the toast, element building. Plain JavaScript.
'use strict';

window.mlb = (() => {
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'style') e.style.cssText = v; // CSSOM: allowed by the page's CSP
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('data-')) e.setAttribute(k, v);
      else if (k in e && typeof v !== 'string') e[k] = v;
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  // call sends one request to the API; it resolves to {ok, status, body} and never
  // rejects for an HTTP error (the caller shows it), only for a network failure.
  async function call(method, url, body) {
    const opts = { method, credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const res = await fetch(url, opts);
    let parsed = null;
    const text = await res.text();
    try { parsed = text ? JSON.parse(text) : null; } catch (_) { parsed = text; }
    return { ok: res.ok, status: res.status, body: parsed };
  }

  // message turns an API answer into one line for a person.
  function message(r) {
    const b = r.body;
    if (b && b.error) return b.error;
    if (b && Array.isArray(b.errors)) return b.errors.map((e) => (e.path ? e.path + ': ' : '') + e.message).join('; ');
    if (b && Array.isArray(b.problems)) return b.problems.join('; ');
    return `HTTP ${r.status}`;
  }

  let toastTimer = 0;
  function toast(text, error) {
    const t = document.getElementById('toast');
    if (!t) return;
    t.textContent = text;
    t.classList.toggle('error', !!error);
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, error ? 8000 : 3500);
  }

  // The node's name in the top bar, from the overview.
  async function header() {
    try {
      const r = await call('GET', '/api/v1/overview');
      if (r.ok) document.getElementById('node').textContent = r.body.node;
    } catch (_) { /* the page says what fails */ }
  }

  // diffView renders edit.Line lines (op ' ', '-', '+') into a <pre>.
  function diffView(pre, lines) {
    pre.replaceChildren(...lines.map((l) => el('span', { class: l.op === '+' ? 'add' : l.op === '-' ? 'del' : 'same', text: l.op + ' ' + l.text + '\n' })));
  }

  document.addEventListener('DOMContentLoaded', () => {
    for (const a of document.querySelectorAll('nav.pages a')) {
      if (a.getAttribute('href') === location.pathname) a.setAttribute('aria-current', 'page');
    }
    header();
  });

  return { el, call, message, toast, diffView };
})();
