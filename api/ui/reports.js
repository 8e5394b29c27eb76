// Reports: per virtual service and real server, connections (layer 7) or
// clients (layer 4), packets/s, bits/s and the health state over time, from
// GET /api/v1/reports. The charts are SVG drawn here: a few polylines and
// labels need no chart library, and the page loads nothing from elsewhere.
'use strict';

(() => {
  const { el, call, message } = window.mlb;
  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';
  const W = 900, H = 180, L = 64, R = 12, T = 12, B = 24;
  const COLORS = ['#2b74d0', '#1f9d55', '#d99211', '#8e44ad', '#d23c3c', '#16a5a5', '#7d8796'];
  const STATE_COLORS = { online: 'var(--online)', drain: 'var(--drain)', halt: 'var(--halt)', down: 'var(--down)', degraded: 'var(--degraded)' };

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'stroke') e.style.stroke = v; // CSSOM: the page's CSP refuses style attributes
      else e.setAttribute(k, v);
    }
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function human(v, unit) {
    const steps = [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
    for (const [n, p] of steps) if (Math.abs(v) >= n) return (v / n).toFixed(v / n >= 10 ? 0 : 1) + ' ' + p + unit;
    return (Number.isInteger(v) ? v : v.toFixed(1)) + (unit ? ' ' + unit : '');
  }
  let span = 0; // seconds shown: labels carry seconds when it is short
  const clock = (t) => new Date(t * 1000).toISOString().slice(11, span < 600 ? 19 : 16);

  // chart draws one line per series of value(point) against time.
  function chart(title, unit, series, value, t0, t1) {
    let max = 0;
    for (const s of series) for (const p of s.points) max = Math.max(max, value(p));
    max = max > 0 ? max * 1.1 : 1;
    const x = (t) => L + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * (W - L - R);
    const y = (v) => T + (1 - v / max) * (H - T - B);
    const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title });
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      g.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
      g.append(svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, human(v, unit)));
    }
    for (let i = 0; i <= 4; i++) {
      const t = t0 + ((t1 - t0) * i) / 4;
      g.append(svg('text', { x: x(t), y: H - 6, 'text-anchor': 'middle', class: 'tick' }, clock(t)));
    }
    series.forEach((s, i) => {
      if (!s.points.length) return;
      const pts = s.points.map((p) => `${x(p.t).toFixed(1)},${y(value(p)).toFixed(1)}`).join(' ');
      g.append(svg('polyline', { points: pts, fill: 'none', stroke: COLORS[i % COLORS.length], 'stroke-width': s.server ? 1.6 : 2.4, 'data-series': s.server || s.service }));
    });
    const legend = el('ul', { class: 'legend' }, ...series.map((s, i) =>
      el('li', {}, el('span', { class: 'swatch', style: `background:${COLORS[i % COLORS.length]}` }), s.server || s.service + ' (VIP)')));
    return el('section', { class: 'panel', 'data-chart': title }, el('h2', { text: title }), g, legend);
  }

  // states draws each series' state over time as a coloured band.
  function states(series, t0, t1) {
    const rowH = 18;
    const g = svg('svg', { viewBox: `0 0 ${W} ${series.length * (rowH + 6) + 20}`, class: 'chart', role: 'img', 'aria-label': 'Health state' });
    const x = (t) => L + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * (W - L - R);
    series.forEach((s, i) => {
      const yy = i * (rowH + 6);
      g.append(svg('text', { x: L - 6, y: yy + 13, 'text-anchor': 'end', class: 'tick' }, s.server || 'VIP'));
      s.points.forEach((p, j) => {
        const next = s.points[j + 1] ? s.points[j + 1].t : p.t + 1;
        const r = svg('rect', { x: x(p.t), y: yy, width: Math.max(x(next) - x(p.t), 1), height: rowH, 'data-state': p.state });
        r.style.fill = STATE_COLORS[p.state] || 'var(--halt)';
        r.append(svg('title', {}, `${s.server || s.service} ${clock(p.t)} ${p.state}`));
        g.append(r);
      });
    });
    return el('section', { class: 'panel', 'data-chart': 'Health state' }, el('h2', { text: 'Health state' }), g,
      el('ul', { class: 'legend' }, ...Object.keys(STATE_COLORS).map((k) => el('li', {}, el('span', { class: 'swatch', style: `background:${STATE_COLORS[k]}` }), k))));
  }

  let timer = 0;
  async function load() {
    clearTimeout(timer);
    try {
      const svc = $('service').value;
      const r = await call('GET', `/api/v1/reports?range=${$('range').value}` + (svc ? `&service=${encodeURIComponent(svc)}` : ''));
      if (!r.ok) throw new Error(message(r));
      const names = [...new Set(r.body.series.map((s) => s.service))];
      if (!svc && names.length) {
        $('service').replaceChildren(...names.map((n) => el('option', { value: n, text: n })));
        return load();
      }
      const series = r.body.series.filter((s) => s.service === svc);
      let t0 = Infinity, t1 = -Infinity;
      for (const s of series) for (const p of s.points) { t0 = Math.min(t0, p.t); t1 = Math.max(t1, p.t); }
      span = t1 - t0;
      const layer = series.length ? series[0].layer : 7;
      const charts = series.length ? [
        layer === 7 ? chart('Connections', '', series, (p) => p.conns, t0, t1) : chart('Clients', '', series, (p) => p.clients, t0, t1),
        chart('Packets/s', 'pps', series, (p) => p.pps, t0, t1),
        chart('Bits/s', 'bit/s', series, (p) => p.bps, t0, t1),
        states(series, t0, t1),
      ] : [el('p', { class: 'muted', text: 'No samples yet.' })];
      $('charts').replaceChildren(...charts);
      $('error').hidden = true;
    } catch (e) {
      $('error').textContent = 'Cannot load the reports: ' + e.message;
      $('error').hidden = false;
    }
    timer = setTimeout(load, 5000);
  }
  $('service').addEventListener('change', load);
  $('range').addEventListener('change', load);
  load();
})();
