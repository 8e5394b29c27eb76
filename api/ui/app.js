// medialb System Overview: polls /api/v1/overview every two seconds and drives the
// real servers' Drain, Halt and Online buttons through the REST API. Plain JavaScript,
// no libraries; the browser's basic-auth login covers every request (same origin).
'use strict';

(() => {
  const POLL_MS = 2000;
  const STALE_MS = 6000;
  const CONFIRM_MS = 4000;

  const $ = (id) => document.getElementById(id);
  const table = $('overview');
  let structure = '';          // names of services and servers the table was built for
  let refs = new Map();        // key -> {elements}
  let timer = 0;
  let lastOK = 0;
  let inflight = false;
  const busy = new Set();      // "service/server" with a request under way
  const confirming = new Map(); // "service/server" -> timeout id (halt waits for a second click)

  const PROTOCOLS = { 'tcp': 'TCP', 'udp': 'UDP', 'tcp+udp': 'TCP/UDP' };
  const MODES = { 'direct-routing': 'DR', 'proxy': 'Proxy', 'snat': 'Proxy', 'nat': 'NAT' };

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function td(cls, label) {
    const c = el('td', cls);
    if (label) c.dataset.label = label;
    return c;
  }

  function setStateClass(node, state) {
    for (const c of [...node.classList]) if (c.startsWith('s-')) node.classList.remove(c);
    if (state) node.classList.add('s-' + state);
  }

  function set(node, text) {
    text = String(text);
    if (node.textContent !== text) node.textContent = text;
  }

  // breakable lets long port lists wrap after their commas, and only there.
  const breakable = (s) => String(s).replace(/-/g, '\u2011').replace(/,/g, ',\u200b');
  const num = (n) => (n || 0).toLocaleString('en-US');
  const key = (svc, rs) => svc + '/' + rs;

  function stamp(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return '—';
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ` +
      `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} UTC`;
  }

  // build makes one tbody per service: its row, a header row and one row per real server.
  function build(ov) {
    for (const tb of table.querySelectorAll('tbody')) tb.remove();
    refs = new Map();
    for (const svc of ov.services) {
      const tb = el('tbody');
      tb.dataset.service = svc.name;

      const vs = el('tr', 'vs');
      const v = {
        tbody: tb, row: vs,
        name: td('name'), ip: td('ip', 'IP'), ports: td('ports', 'Ports'),
        conns: td('num conns', 'Conns'), clients: td('num clients', 'Clients'),
        proto: td('proto', 'Protocol'), method: td('method', 'Method'), mode: td('mode', 'Mode'),
        act: td('actions'),
      };
      vs.append(v.name, v.ip, v.ports, v.conns, v.clients, v.proto, v.method, v.mode, v.act);
      tb.append(vs);
      refs.set(svc.name, v);

      const head = el('tr', 'rs-head');
      for (const h of ['Real Server', 'IP', 'Ports', 'Conns', 'Clients', 'Weight']) {
        head.append(el('td', h === 'Conns' || h === 'Clients' ? 'num' : '', h));
      }
      const sh = el('td', '', 'State');
      sh.colSpan = 2;
      head.append(sh, td('actions'));
      tb.append(head);

      for (const rs of svc.real_servers) {
        const tr = el('tr', 'rs');
        tr.dataset.service = svc.name;
        tr.dataset.server = rs.name;
        const r = {
          row: tr, name: td('name'), ip: td('ip', 'IP'), ports: td('ports', 'Ports'),
          conns: td('num conns', 'Conns'), clients: td('num clients', 'Clients'), weight: td('num weight', 'Weight'),
          state: td('state'), act: td('actions'), badge: el('span', 'badge'), reason: el('span', 'reason'),
          buttons: {},
        };
        r.state.colSpan = 2;
        r.state.append(r.badge, r.reason);
        const btns = el('div', 'btns');
        for (const [action, label] of [['drain', 'Drain'], ['halt', 'Halt'], ['online', 'Online']]) {
          const b = el('button', 'act', label);
          b.type = 'button';
          b.dataset.action = action;
          b.dataset.service = svc.name;
          b.dataset.server = rs.name;
          b.dataset.label = label;
          btns.append(b);
          r.buttons[action] = b;
        }
        r.act.append(btns);
        tr.append(r.name, r.ip, r.ports, r.conns, r.clients, r.weight, r.state, r.act);
        tb.append(tr);
        refs.set(key(svc.name, rs.name), r);
      }
      table.append(tb);
    }
  }

  function update(ov) {
    const shape = JSON.stringify(ov.services.map((s) => [s.name, s.real_servers.map((r) => r.name)]));
    if (shape !== structure) {
      build(ov);
      structure = shape;
    }
    const count = { online: 0, drain: 0, halt: 0, down: 0 };
    for (const svc of ov.services) {
      const v = refs.get(svc.name);
      setStateClass(v.row, svc.state);
      setStateClass(v.tbody, svc.state);
      v.row.title = 'Service ' + svc.state + (svc.panic ? '; PANIC since ' + svc.panic_since +
        ': its real servers stopped answering health checks at once, so this node suspects itself and keeps them in service' : '');
      v.row.classList.toggle('panic', !!svc.panic);
      set(v.name, svc.name);
      set(v.ip, svc.address);
      set(v.ports, breakable(svc.ports));
      v.ports.title = svc.ports;
      set(v.conns, num(svc.connections));
      set(v.clients, num(svc.active_clients));
      set(v.proto, PROTOCOLS[svc.protocol] || String(svc.protocol).toUpperCase());
      set(v.method, 'Layer ' + svc.layer);
      set(v.mode, (MODES[svc.forwarding] || svc.forwarding || (svc.layer === 7 ? 'Proxy' : 'DR')) + (svc.panic ? ' · PANIC' : ''));
      v.mode.title = svc.persistence ? 'Persistence: ' + svc.persistence : '';
      for (const rs of svc.real_servers) {
        const r = refs.get(key(svc.name, rs.name));
        count[rs.state] = (count[rs.state] || 0) + 1;
        setStateClass(r.row, rs.state);
        r.row.dataset.state = rs.state;
        set(r.name, rs.name);
        set(r.ip, rs.address);
        const ports = rs.port ? String(rs.port) : svc.ports;
        set(r.ports, breakable(ports));
        r.ports.title = ports;
        set(r.conns, num(rs.connections));
        set(r.clients, num(rs.active_clients));
        // Effective weight, and the configured one when feedback or a slow start moved it.
        const cw = rs.configured_weight;
        set(r.weight, cw && cw !== rs.weight ? rs.weight + ' / ' + cw : rs.weight);
        const fb = rs.feedback;
        r.weight.title = fb ? 'Feedback agent: ' + (fb.error || fb.answer || 'no answer yet') : '';
        set(r.badge, rs.state);
        let why = rs.state === 'online' ? (rs.health === 'down' ? 'kept in service (panic): ' + (rs.health_reason || '') : '') :
          rs.state === 'down' ? (rs.health_reason || 'failed health check') :
            rs.admin && rs.admin !== 'online' ? 'set by operator' :
              fb && fb.agent ? 'set by the feedback agent' : '';
        const problems = rs.problems || [];
        if (problems.length) why = (why ? why + '; ' : '') + problems.map((p) => p.split(':')[0]).join('; ');
        set(r.reason, why);
        r.reason.title = problems.join('\n');
        r.state.title = 'Health: ' + (rs.health || 'unknown') + (rs.health_reason ? ' (' + rs.health_reason + ')' : '') +
          (svc.layer === 4 ? '; sent ' + num(rs.packets || 0) + ' frames, ' + num(rs.bytes || 0) + ' bytes' : '');
        const admin = rs.admin || (['drain', 'halt'].includes(rs.state) ? rs.state : 'online');
        const k = key(svc.name, rs.name);
        for (const [action, b] of Object.entries(r.buttons)) {
          const current = action === admin;
          b.classList.toggle('current', current);
          b.setAttribute('aria-pressed', current ? 'true' : 'false');
          const confirm = action === 'halt' && confirming.has(k);
          b.classList.toggle('confirm', confirm);
          set(b, confirm ? 'Confirm' : b.dataset.label);
          b.disabled = current || busy.has(k);
          b.title = current ? 'Current operator state' : titles[action];
        }
      }
    }
    summary(ov, count);
    $('empty').hidden = ov.services.length > 0;
  }

  const titles = {
    drain: 'No new clients; persistent and established ones stay',
    halt: 'Out of service at once (click twice)',
    online: 'Back in service (if healthy)',
  };

  function summary(ov, count) {
    const ul = $('summary');
    ul.replaceChildren();
    const servers = ov.services.reduce((n, s) => n + s.real_servers.length, 0);
    const item = (n, text, state) => {
      const li = el('li');
      if (state) {
        const d = el('span', 'dot s-' + state);
        li.append(d);
      }
      li.append(el('b', '', num(n)), document.createTextNode(' ' + text));
      ul.append(li);
    };
    item(ov.services.length, ov.services.length === 1 ? 'virtual service' : 'virtual services');
    item(servers, servers === 1 ? 'real server' : 'real servers');
    for (const st of ['online', 'drain', 'halt', 'down']) item(count[st] || 0, st, st);
  }

  function header(ov) {
    set($('node'), ov.node || '');
    const ha = $('ha');
    if (ov.ha) {
      ha.hidden = false;
      ha.dataset.role = ov.ha.role;
      set(ha, 'HA ' + ov.ha.role);
      const last = ov.ha.last_failover
        ? `last failover ${ov.ha.last_failover.replace('T', ' ').replace(/\.\d+/, '')} (${ov.ha.last_failover_cause || 'no cause'})`
        : 'no failover since start';
      ha.title = [
        `Peer ${ov.ha.peer}: ${ov.ha.peer_state}`,
        last,
        `configuration: ${ov.ha.config_sync || 'not compared yet'}`,
        `persistence entries: ${ov.ha.sync_exported || 0} sent, ${ov.ha.sync_imported || 0} received`,
      ].join('\n');
    } else {
      ha.hidden = true;
    }
    bgpBadge(ov.bgp);
    const t = $('stamp');
    t.dateTime = ov.time;
    set(t, stamp(ov.time));
    document.title = `System Overview · ${ov.node || 'medialb'}`;
  }

  // The node's BGP state (scale-out behind ECMP routers): a badge with the
  // sessions and announced routes, and the node drain / online button.
  function bgpBadge(bgp) {
    const b = $('bgp'), btn = $('nodeact');
    b.hidden = btn.hidden = !bgp;
    if (!bgp) return;
    const up = bgp.peers.filter((p) => p.state === 'established').length;
    b.dataset.state = bgp.state;
    set(b, `BGP ${bgp.state} · ${up}/${bgp.peers.length} sessions · ${bgp.announced.length} routes`);
    b.title = [
      ...bgp.peers.map((p) => `peer ${p.address} (AS ${p.asn}): ${p.state}`),
      bgp.announced.length ? 'announced: ' + bgp.announced.join(', ') : 'nothing announced',
      bgp.reason || '',
    ].filter(Boolean).join('\n');
    btn.dataset.action = bgp.state === 'drain' ? 'online' : 'drain';
    set(btn, bgp.state === 'drain' ? 'Node online' : 'Drain node');
  }

  $('nodeact').addEventListener('click', async (ev) => {
    const action = ev.currentTarget.dataset.action;
    try {
      const res = await fetch(`/api/v1/node/${action}`, { method: 'POST', credentials: 'same-origin', headers: { Accept: 'application/json' } });
      if (!res.ok) throw new Error(await errorOf(res));
      toast(action === 'drain' ? 'node drained: routes withdrawn, established flows kept' : 'node online: routes announced');
    } catch (e) {
      toast(`node ${action} failed: ${e.message}`, true);
    } finally {
      inflight = false;
      await refresh();
    }
  });

  function live(state, text) {
    const l = $('live');
    l.dataset.live = state;
    set(l, text);
  }

  function showError(msg) {
    const b = $('error');
    b.hidden = !msg;
    set(b, msg || '');
  }

  let toastTimer = 0;
  function toast(msg, isError) {
    const t = $('toast');
    set(t, msg);
    t.classList.toggle('error', !!isError);
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 3500);
  }

  async function errorOf(res) {
    try {
      const j = await res.json();
      if (j && j.error) return j.error;
    } catch (_) { /* not JSON */ }
    return `${res.status} ${res.statusText}`;
  }

  let last = null;
  async function refresh() {
    if (inflight) return;
    inflight = true;
    clearTimeout(timer);
    try {
      const res = await fetch('/api/v1/overview', { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } });
      if (!res.ok) throw new Error(await errorOf(res));
      const ov = await res.json();
      last = ov;
      header(ov);
      update(ov);
      lastOK = Date.now();
      live('ok', 'live');
      showError('');
    } catch (e) {
      if (Date.now() - lastOK > STALE_MS) live('stale', 'stale');
      showError('Cannot load the overview: ' + e.message);
    } finally {
      inflight = false;
      clearTimeout(timer); // one poll chain, even when an action refreshed in between
      if (!document.hidden) timer = setTimeout(refresh, POLL_MS);
    }
  }

  async function act(b) {
    const { action, service, server } = b.dataset;
    const k = key(service, server);
    if (action === 'halt' && !confirming.has(k)) {
      confirming.set(k, setTimeout(() => { confirming.delete(k); if (last) update(last); }, CONFIRM_MS));
      if (last) update(last);
      return;
    }
    clearTimeout(confirming.get(k));
    confirming.delete(k);
    busy.add(k);
    if (last) update(last);
    try {
      const url = `/api/v1/services/${encodeURIComponent(service)}/real-servers/${encodeURIComponent(server)}/${action}`;
      const res = await fetch(url, { method: 'POST', credentials: 'same-origin', headers: { Accept: 'application/json' } });
      if (!res.ok) throw new Error(await errorOf(res));
      toast(`${server} of ${service}: ${action}`);
    } catch (e) {
      toast(`${server}: ${action} failed: ${e.message}`, true);
    } finally {
      busy.delete(k);
      inflight = false;
      await refresh();
    }
  }

  table.addEventListener('click', (ev) => {
    const b = ev.target.closest('button.act');
    if (b && !b.disabled) act(b);
  });

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) refresh();
  });

  // Keep the "stale" marker honest when the poll itself hangs.
  setInterval(() => {
    if (lastOK && Date.now() - lastOK > STALE_MS) live('stale', 'stale');
  }, 1000);

  refresh();
})();
