// Maintenance: reload, restart the layer-7 listeners or keepalived (each after a
// second, confirming click), and Backup & Restore.
'use strict';

(() => {
  const { el, call, message, toast } = window.mlb;
  const $ = (id) => document.getElementById(id);
  const ACTIONS = {
    'reload': ['/api/v1/reload', 'Reloaded'],
    'restart-l7': ['/api/v1/maintenance/restart-l7', null],
    'restart-keepalived': ['/api/v1/maintenance/restart-keepalived', null],
  };

  // confirmed turns the first click into a question; the second one goes ahead.
  function confirmed(b) {
    if (b.classList.contains('confirm')) {
      b.classList.remove('confirm');
      b.textContent = b.dataset.label;
      return true;
    }
    b.dataset.label = b.textContent;
    b.classList.add('confirm');
    b.textContent = b.dataset.confirm;
    setTimeout(() => { if (b.classList.contains('confirm')) { b.classList.remove('confirm'); b.textContent = b.dataset.label; } }, 5000);
    return false;
  }

  for (const [id, [url, done]] of Object.entries(ACTIONS)) {
    $(id).addEventListener('click', async (ev) => {
      const b = ev.currentTarget;
      if (!confirmed(b)) return;
      b.disabled = true;
      try {
        const r = await call('POST', url);
        if (!r.ok) toast(message(r), true);
        else toast(done || r.body.result);
      } catch (e) {
        toast(e.message, true);
      } finally {
        b.disabled = false;
      }
    });
  }

  $('keys').addEventListener('change', () => {
    $('download').href = '/api/v1/backup' + ($('keys').checked ? '?private_keys=1' : '');
  });

  $('restore').addEventListener('click', async (ev) => {
    const b = ev.currentTarget;
    const list = $('restore-errors');
    list.replaceChildren();
    const f = $('archive').files[0];
    if (!f) { toast('Choose a backup file first', true); return; }
    if (!confirmed(b)) return;
    b.disabled = true;
    try {
      const res = await fetch('/api/v1/restore', { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/gzip', Accept: 'application/json' }, body: await f.arrayBuffer() });
      const body = await res.json().catch(() => null);
      const r = { ok: res.ok, status: res.status, body };
      if (!r.ok) {
        if (body && Array.isArray(body.errors)) {
          for (const e of body.errors) list.append(el('li', { text: (e.path ? e.path + ': ' : '') + e.message + (e.line ? ` (line ${e.line})` : '') }));
        }
        toast('Not restored: ' + message(r), true);
        return;
      }
      toast(`Restored; ${body.states.length} operator states set; the replaced file is ${body.backup}`);
    } catch (e) {
      toast(e.message, true);
    } finally {
      b.disabled = false;
    }
  });
  document.body.dataset.ready = 'true'; // the handlers are in place (tests wait for it)
})();
