// Logs: the daemon's last log lines from GET /api/v1/logs, filtered by level,
// followed live (a poll every second asks only for the lines after the last one).
'use strict';

(() => {
  const { el, call, message } = window.mlb;
  const $ = (id) => document.getElementById(id);
  const MAX_ROWS = 2000;
  let last = 0;
  let timer = 0;

  function details(fields) {
    if (!fields) return '';
    return Object.entries(fields).map(([k, v]) => k + '=' + (typeof v === 'string' ? v : JSON.stringify(v))).join('  ');
  }

  async function poll(reset) {
    clearTimeout(timer);
    const body = $('logs').tBodies[0];
    if (reset) { last = 0; body.replaceChildren(); }
    try {
      const r = await call('GET', `/api/v1/logs?level=${$('level').value}&after=${last}`);
      if (!r.ok) throw new Error(message(r));
      const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
      for (const l of r.body.lines) {
        body.append(el('tr', { class: 'lvl-' + l.level, 'data-seq': l.seq },
          el('td', { class: 'mono', text: (l.time || '').replace('T', ' ').replace('Z', '') }),
          el('td', { class: 'level', text: l.level }),
          el('td', { text: l.message }),
          el('td', { class: 'mono', text: details(l.fields) })));
      }
      while (body.rows.length > MAX_ROWS) body.rows[0].remove();
      last = r.body.last;
      $('error').hidden = true;
      if (r.body.lines.length && atBottom && $('follow').checked) window.scrollTo(0, document.body.scrollHeight);
    } catch (e) {
      $('error').textContent = 'Cannot load the logs: ' + e.message;
      $('error').hidden = false;
    }
    if ($('follow').checked) timer = setTimeout(() => poll(false), 1000);
  }

  $('level').addEventListener('change', () => poll(true));
  $('follow').addEventListener('change', () => { if ($('follow').checked) poll(false); else clearTimeout(timer); });
  poll(true);
})();
