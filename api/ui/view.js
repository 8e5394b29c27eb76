// View Configuration: the configuration in force (the file's text when it was
// last loaded) and how the file on disk differs from it (GET /api/v1/config/file).
'use strict';

(() => {
  const { el, call, message, diffView } = window.mlb;
  const $ = (id) => document.getElementById(id);

  async function load() {
    try {
      const r = await call('GET', '/api/v1/config/file');
      if (!r.ok) throw new Error(message(r));
      const v = r.body;
      $('file').textContent = v.file;
      $('running').textContent = v.running || '(this node does not say what it runs)';
      $('changed').textContent = v.changed
        ? `${v.file} differs from the running configuration: a reload (Maintenance) or Apply puts it in force.`
        : `${v.file} is what runs.` + (v.staged ? ' Changes are staged in Cluster Configuration.' : '');
      diffView($('diff'), v.changed ? v.diff.filter((l) => l.op !== ' ') : []);
      $('diff').hidden = !v.changed;
      $('backups').replaceChildren(...(v.backups || []).map((b) => el('li', { text: b })));
      if (!(v.backups || []).length) $('backups').append(el('li', { class: 'muted', text: 'none yet (Apply keeps the old file as FILE.N)' }));
      $('error').hidden = true;
    } catch (e) {
      $('error').textContent = 'Cannot load the configuration: ' + e.message;
      $('error').hidden = false;
    }
  }
  load();
})();
