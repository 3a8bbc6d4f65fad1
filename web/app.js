/* kagi dashboard (docs/dashboard.md): plain JavaScript and SVG, no build
 * step. It reads the server's feed (/api/topology once, then /api/stream
 * or /api/state), draws the network on an equirectangular map fitted to
 * it (the projection of report.html: x shrunk by the cosine of the middle
 * latitude), and replays recorded samples (/api/sample?k=K) with a slider.
 * The feed holds counts and rates only, never key material. */
'use strict';
(() => {
  const W = 900, H = 560, M = 30;
  const NS = 'http://www.w3.org/2000/svg';
  const BIG = 800;          // more links than this: one SVG path per colour class
  const LABELS = 40;        // at most this many links get a rate label
  const ROUTES = 200;       // the feed carries the routes of the first 200 demands
  const PAL = ['#CC79A7', '#009E73', '#E69F00', '#56B4E9', '#D55E00', '#0072B2', '#999999', '#000000'];
  // pool level classes (fraction of the pool's capacity) and link states
  const CLS = {
    high: {c: '#0072B2', d: '', txt: 'pool \u2265 40%'},
    mid: {c: '#56B4E9', d: '', txt: '10\u201340%'},
    low: {c: '#E69F00', d: '', txt: '1\u201310%'},
    empty: {c: '#D55E00', d: '', txt: 'empty (< 1%)'},
    cut: {c: '#000000', d: '6 4', txt: 'cut'},
    eve: {c: '#CC79A7', d: '2 3', txt: 'eavesdropped'},
    down: {c: '#999999', d: '1 3', txt: 'node down'},
    unknown: {c: '#777777', d: '8 3', txt: 'pool not reported'},
  };
  const STATE_NAMES = ['up', 'cut', 'eavesdropped', 'node down'];
  const $ = id => document.getElementById(id);
  const perf = window.kagiPerf = {first: null, updates: [], frames: [], bytes: 0};

  let topo = null, latest = null, cur = null, mode = 'live', proj = null, big = false;
  let sel = null, hoverDemand = -1;
  let linkEls = [], nodeEls = [], labelEls = [], satDots = [], satTracks = [];
  let passPath = null;
  let xy = [];              // per node [x, y] in map units (satellites: where they are now)
  let seenEvents = -1, series = {key: '', samples: -1, at: 0, data: null, busy: false};
  let playing = null, sampleBusy = false, pendingSample = -1;

  // ---- formatting ----
  function fmtBits(b) {
    if (b === null || b === undefined || !isFinite(b)) return '\u2013';
    const u = [['Tbit', 1e12], ['Gbit', 1e9], ['Mbit', 1e6], ['kbit', 1e3]];
    for (const [n, v] of u) if (Math.abs(b) >= v) return (b / v).toPrecision(3) + ' ' + n;
    return Math.round(b) + ' bit';
  }
  const fmtRate = r => (r > 0 ? fmtBits(r) + '/s' : '0 bit/s');
  function fmtDur(s) {
    if (!isFinite(s)) return '\u2013';
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d) return `${d}d ${h}h ${String(m).padStart(2, '0')}m`;
    if (h) return `${h}h ${String(m).padStart(2, '0')}m`;
    return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  }
  function fmtUtc(t) {
    if (!topo || !topo.start_utc) return '';
    const ms = Date.parse(topo.start_utc) + t * 1000;
    return isFinite(ms) ? new Date(ms).toISOString().slice(0, 19).replace('T', ' ') + ' UTC' : '';
  }
  const esc = s => String(s).replace(/[&<>"']/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
  function el(tag, attrs, parent) {
    const e = document.createElementNS(NS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  // ---- projection: equirectangular fitted to the network ----
  function makeProj() {
    let la0 = 90, la1 = -90, lo0 = 180, lo1 = -180, placed = 0;
    for (const n of topo.nodes) {
      if (n.role === 'satellite') continue;
      placed++;
      la0 = Math.min(la0, n.lat); la1 = Math.max(la1, n.lat);
      lo0 = Math.min(lo0, n.lon); lo1 = Math.max(lo1, n.lon);
    }
    if (!placed) { la0 = -60; la1 = 60; lo0 = -180; lo1 = 180; }
    // room for the passes: a station sees a satellite of orbit radius a
    // within the Earth-central angle acos(R cos e / a) - e (e = 10 deg);
    // the map keeps the network large and shows the nearer part of it
    let amax = 0;
    for (const s of topo.satellites || []) {
      if (!s.period_s) continue;
      const n = 2 * Math.PI / s.period_s;
      amax = Math.max(amax, Math.cbrt(398600.4418 / (n * n)));
    }
    if (amax > 6378.137) {
      const e = 10 * Math.PI / 180;
      // a third of it: the network stays large, passes show as they approach
      const lam = (Math.acos(6378.137 * Math.cos(e) / amax) - e) * 180 / Math.PI / 3;
      for (const n of topo.nodes) {
        if (n.role !== 'station') continue;
        const dl = Math.min(lam / Math.max(Math.cos(n.lat * Math.PI / 180), 0.2), 180);
        la0 = Math.max(Math.min(la0, n.lat - lam), -85); la1 = Math.min(Math.max(la1, n.lat + lam), 85);
        lo0 = Math.max(Math.min(lo0, n.lon - dl), -180); lo1 = Math.min(Math.max(lo1, n.lon + dl), 180);
      }
    }
    const pl = Math.max((la1 - la0) * 0.06, 0.02), pn = Math.max((lo1 - lo0) * 0.06, 0.02);
    la0 -= pl; la1 += pl; lo0 -= pn; lo1 += pn;
    const kx = Math.cos((la0 + la1) / 2 * Math.PI / 180);
    const sx = Math.max((lo1 - lo0) * kx, 1e-3), sy = Math.max(la1 - la0, 1e-3);
    const scale = Math.min((W - 2 * M) / sx, (H - 2 * M) / sy);
    const ox = M + (W - 2 * M - sx * scale) / 2, oy = M + (H - 2 * M - sy * scale) / 2;
    return {
      x: lon => ox + (lon - lo0) * kx * scale,
      y: lat => oy + (la1 - lat) * scale,
      lon: x => lo0 + (x - ox) / (kx * scale),
      lat: y => la1 - (y - oy) / scale,
    };
  }

  // ---- static layers: land, graticule ----
  // The outlines with their longitudes unwrapped (a ring that crosses the
  // antimeridian goes on past 180 instead of jumping back across the map),
  // and a copy 360 degrees over for each that spills past +-180.
  let unwrapped = null;
  function coast() {
    if (unwrapped) return unwrapped;
    unwrapped = [];
    for (const r0 of window.KAGI_COAST || []) {
      const r = r0.slice();
      let lo = Infinity, hi = -Infinity;
      for (let i = 0; i < r.length; i += 2) {
        if (i) while (r[i] - r[i - 2] > 180) r[i] -= 360;
        if (i) while (r[i] - r[i - 2] < -180) r[i] += 360;
        lo = Math.min(lo, r[i]); hi = Math.max(hi, r[i]);
      }
      unwrapped.push(r);
      for (const shift of [hi > 180 ? -360 : 0, lo < -180 ? 360 : 0])
        if (shift) unwrapped.push(r.map((v, i) => (i % 2 ? v : v + shift)));
    }
    return unwrapped;
  }
  function drawLand() {
    const rings = coast();
    const lonA = proj.lon(0), lonB = proj.lon(W), latA = proj.lat(H), latB = proj.lat(0);
    let d = '';
    for (const r of rings) {
      let x0 = 1e9, x1 = -1e9, y0 = 1e9, y1 = -1e9;
      for (let i = 0; i < r.length; i += 2) {
        if (r[i] < x0) x0 = r[i]; if (r[i] > x1) x1 = r[i];
        if (r[i + 1] < y0) y0 = r[i + 1]; if (r[i + 1] > y1) y1 = r[i + 1];
      }
      if (x1 < lonA || x0 > lonB || y1 < latA || y0 > latB) continue;
      for (let i = 0; i < r.length; i += 2)
        d += (i ? 'L' : 'M') + proj.x(r[i]).toFixed(1) + ' ' + proj.y(r[i + 1]).toFixed(1);
      d += 'Z';
    }
    $('land').replaceChildren();
    if (d) el('path', {d}, $('land'));
    const span = Math.max(lonB - lonA, latB - latA);
    const step = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30].find(s => span / s <= 12) || 30;
    let g = '';
    for (let lo = Math.ceil(lonA / step) * step; lo <= lonB; lo += step)
      g += `M${proj.x(lo).toFixed(1)} 0V${H}`;
    for (let la = Math.ceil(latA / step) * step; la <= latB; la += step)
      g += `M0 ${proj.y(la).toFixed(1)}H${W}`;
    $('grid').replaceChildren();
    el('path', {d: g}, $('grid'));
  }

  // ---- the network ----
  function linkGeom(i) {
    const l = topo.links[i];
    let [x1, y1] = xy[l.a], [x2, y2] = xy[l.b];
    if (l.a > l.b) [x1, y1, x2, y2] = [x2, y2, x1, y1];
    const off = l.bend || 0, len = Math.hypot(x2 - x1, y2 - y1);
    const cx = (x1 + x2) / 2 + (len > 0 ? -(y2 - y1) / len * off * 2 : 0);
    const cy = (y1 + y2) / 2 + (len > 0 ? (x2 - x1) / len * off * 2 : 0);
    return {x1, y1, x2, y2, cx, cy};
  }
  let dCache = [];          // fibre links' path data: their ends do not move
  function linkD(i) {
    if (dCache[i]) return dCache[i];
    const g = linkGeom(i);
    const d = !topo.links[i].bend ? `M${g.x1.toFixed(1)} ${g.y1.toFixed(1)}L${g.x2.toFixed(1)} ${g.y2.toFixed(1)}`
      : `M${g.x1.toFixed(1)} ${g.y1.toFixed(1)}Q${g.cx.toFixed(1)} ${g.cy.toFixed(1)} ${g.x2.toFixed(1)} ${g.y2.toFixed(1)}`;
    if (!topo.links[i].satellite) dCache[i] = d;
    return d;
  }

  // node size in map units: a little larger as the map zooms in, not k times
  const nodeR = () => (topo.nodes.length > 200 ? 2.2 : 5) / Math.pow(view.k, 0.7);
  function stationD(i, r) {
    const [x, y] = xy[i];
    return `M${x.toFixed(2)} ${(y - 1.6 * r).toFixed(2)}l${(1.4 * r).toFixed(2)} ${(2.5 * r).toFixed(2)}h${(-2.8 * r).toFixed(2)}z`;
  }
  function resizeNodes() {
    const r = nodeR();
    nodeEls.forEach((e, i) => {
      if (!e) return;
      if (e.tagName === 'circle') e.setAttribute('r', r.toFixed(3));
      else e.setAttribute('d', stationD(i, r));
    });
    satDots.forEach(c => c.setAttribute('r', (4.5 / Math.pow(view.k, 0.7)).toFixed(3)));
  }

  function buildMap() {
    proj = makeProj();
    dCache = [];
    drawLand();
    xy = topo.nodes.map(n => [proj.x(n.lon), proj.y(n.lat)]);
    const L = topo.links;
    big = L.length > BIG;
    // parallel links bow apart (small maps), as in report.html
    if (!big) {
      const groups = {};
      L.forEach((l, i) => {
        if (l.satellite) return;
        const k = Math.min(l.a, l.b) + ':' + Math.max(l.a, l.b);
        (groups[k] = groups[k] || []).push(i);
      });
      for (const k in groups) groups[k].forEach((i, j, all) => { L[i].bend = (j - (all.length - 1) / 2) * 14; });
    }
    const gl = $('links');
    gl.replaceChildren();
    linkEls = [];
    const cv = $('linkcanvas');
    cv.getContext('2d').clearRect(0, 0, cv.width, cv.height);
    if (big) {
      // a canvas: thousands of stroked SVG segments cost the browser tens of
      // milliseconds to repaint, a canvas a few
      passPath = el('path', {stroke: '#CC79A7', 'stroke-width': 2.5, 'data-class': 'pass'}, gl);
      fitCanvas();
    } else {
      L.forEach((l, i) => {
        const p = el('path', {'data-link': i, 'stroke-width': 2.6, class: l.satellite ? 'sat' : 'fibre'}, gl);
        if (!l.satellite) p.setAttribute('d', linkD(i));
        const t = el('title', {}, p);
        t.textContent = l.name;
        linkEls.push(p);
      });
    }
    // nodes
    const gn = $('nodes');
    gn.replaceChildren();
    nodeEls = [];
    const r = nodeR();
    topo.nodes.forEach((n, i) => {
      let e;
      if (n.role === 'satellite') { nodeEls.push(null); return; }
      const [x, y] = xy[i];
      if (n.role === 'station')
        e = el('path', {d: stationD(i, r)}, gn);
      else
        e = el('circle', {cx: x.toFixed(1), cy: y.toFixed(1), r}, gn);
      e.setAttribute('class', 'node');
      e.setAttribute('data-node', i);
      e.setAttribute('data-role', n.role);
      e.setAttribute('fill', n.trusted ? '#222222' : '#ffffff');
      if (r < 5) e.setAttribute('stroke-width', 0.5);
      el('title', {}, e).textContent = `${n.name} (${n.role}${n.trusted ? ', trusted' : ', not trusted'})`;
      nodeEls.push(e);
    });
    // labels: nodes of small maps, and the rate of each link of small maps
    const gt = $('labels');
    gt.replaceChildren();
    labelEls = [];
    // a label that would cover one already placed is left out (a city's
    // nodes crowd together on a continent-wide map); hover shows names
    const placed = [];
    const free = (x, y, w) => !placed.some(([px, py, pw]) => Math.abs(py - y) < 11 && x < px + pw && px < x + w);
    if (topo.nodes.length <= 60)
      topo.nodes.forEach((n, i) => {
        if (n.role === 'satellite') return;
        const x = xy[i][0] + 7, y = xy[i][1] - 6, w = 6 * n.name.length;
        if (!free(x, y, w)) return;
        placed.push([x, y, w]);
        el('text', {x: x.toFixed(1), y: y.toFixed(1)}, gt).textContent = n.name;
      });
    const fibres = L.filter(l => !l.satellite).length;
    if (fibres <= LABELS)
      L.forEach((l, i) => {
        if (l.satellite) return;
        const g = linkGeom(i);
        const mx = (g.x1 + 2 * g.cx + g.x2) / 4, my = (g.y1 + 2 * g.cy + g.y2) / 4;
        const far = Math.hypot(g.x2 - g.x1, g.y2 - g.y1) > 40;
        if (!far || !free(mx - 45, my + 3, 90)) return;
        placed.push([mx - 45, my + 3, 90]);
        labelEls[i] = el('text', {x: mx.toFixed(1), y: (my + 3).toFixed(1), 'text-anchor': 'middle', 'data-label': i}, gt);
      });
    // satellites
    const gs = $('sats');
    gs.replaceChildren();
    $('tracks').replaceChildren();
    satDots = []; satTracks = [];
    (topo.satellites || []).forEach((s, k) => {
      satTracks.push(el('path', {class: 'track', stroke: PAL[k % 8]}, $('tracks')));
      const c = el('circle', {r: 4.5, class: 'sat', fill: PAL[k % 8], 'data-sat': k}, gs);
      el('title', {}, c).textContent = s.name + ' (satellite)';
      satDots.push(c);
    });
    // legend
    const lg = $('legend');
    lg.replaceChildren();
    for (const c in CLS) {
      const s = document.createElement('span');
      s.innerHTML = `<i style="background:${CLS[c].c}"></i>${esc(CLS[c].txt)}`;
      lg.appendChild(s);
    }
    if (topo.satellites && topo.satellites.length) {
      const s = document.createElement('span');
      s.innerHTML = '<i style="background:#CC79A7"></i>satellite pass in progress; dashed: ground tracks';
      lg.appendChild(s);
    }
    $('title').textContent = topo.name || topo.source || 'kagi dashboard';
    document.title = 'kagi: ' + $('title').textContent;
  }

  // the canvas of a large network's links, sized to its box in device pixels
  let lastAcc = null;
  function fitCanvas() {
    const cv = $('linkcanvas'), r = cv.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(r.width * dpr)), h = Math.max(1, Math.round(r.height * dpr));
    if (cv.width !== w || cv.height !== h) { cv.width = w; cv.height = h; }
    return w / W;
  }
  function drawCanvas(acc) {
    lastAcc = acc;
    const cv = $('linkcanvas'), k = fitCanvas(), ctx = cv.getContext('2d');
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, cv.width, cv.height);
    ctx.setTransform(k * view.k, 0, 0, k * view.k, -view.x * k * view.k, -view.y * k * view.k);
    ctx.lineWidth = 1.3 / view.k;
    for (const c in acc) {
      if (!acc[c].length) continue;
      ctx.beginPath();
      for (const i of acc[c]) {
        const l = topo.links[i];
        ctx.moveTo(xy[l.a][0], xy[l.a][1]);
        ctx.lineTo(xy[l.b][0], xy[l.b][1]);
      }
      ctx.strokeStyle = CLS[c].c;
      ctx.setLineDash(CLS[c].d ? CLS[c].d.split(' ').map(Number) : []);
      ctx.stroke();
    }
  }
  window.addEventListener('resize', () => { if (big && lastAcc) drawCanvas(lastAcc); });

  // ---- zoom and pan: the wheel zooms about the pointer, a drag pans,
  // a double click goes back to the whole network ----
  const view = {k: 1, x: 0, y: 0};
  let drag = null, dragged = false;
  function setView(k, x, y) {
    k = Math.max(1, Math.min(k, 64));
    const w = W / k, h = H / k;
    view.k = k;
    view.x = Math.max(0, Math.min(x, W - w));
    view.y = Math.max(0, Math.min(y, H - h));
    const vb = `${view.x.toFixed(2)} ${view.y.toFixed(2)} ${w.toFixed(2)} ${h.toFixed(2)}`;
    $('map').setAttribute('viewBox', vb);
    $('base').setAttribute('viewBox', vb);
    document.body.dataset.zoom = k.toFixed(2);
    if (big && lastAcc) drawCanvas(lastAcc);
    if (topo) { resizeNodes(); drawSel(); }
    const f = Math.pow(k, 0.7);
    $('labels').style.fontSize = (10 / f).toFixed(2) + 'px';
    $('labels').style.strokeWidth = (3 / f).toFixed(2) + 'px';
  }
  function mapPoint(ev) {
    const svg = $('map'), pt = svg.createSVGPoint();
    pt.x = ev.clientX; pt.y = ev.clientY;
    return pt.matrixTransform(svg.getScreenCTM().inverse());
  }
  $('map').addEventListener('wheel', ev => {
    ev.preventDefault();
    const p = mapPoint(ev), f = Math.exp(-ev.deltaY * 0.0015), k = Math.max(1, Math.min(view.k * f, 64));
    // keep the point under the pointer where it is
    setView(k, p.x - (p.x - view.x) * view.k / k, p.y - (p.y - view.y) * view.k / k);
  }, {passive: false});
  $('map').addEventListener('mousedown', ev => { drag = {cx: ev.clientX, cy: ev.clientY, x: view.x, y: view.y}; dragged = false; });
  window.addEventListener('mousemove', ev => {
    if (!drag) return;
    const r = $('map').getBoundingClientRect(), s = W / view.k / r.width;
    const dx = ev.clientX - drag.cx, dy = ev.clientY - drag.cy;
    if (Math.abs(dx) + Math.abs(dy) > 3) dragged = true;
    if (dragged) setView(view.k, drag.x - dx * s, drag.y - dy * s);
  });
  window.addEventListener('mouseup', () => { drag = null; });
  $('map').addEventListener('dblclick', () => setView(1, 0, 0));

  // the class of link i in state st
  function linkClass(st, i) {
    const s = st.links.state[i];
    if (s === 1) return 'cut';
    if (s === 3) return 'down';
    if (s === 2) return 'eve';
    const cap = st.links.capacity_bits ? st.links.capacity_bits[i] : topo.links[i].capacity_bits;
    const p = st.links.pool_bits[i];
    if (p === null || p === undefined) return 'unknown';
    const f = cap > 0 ? p / cap : 0;
    return f >= 0.4 ? 'high' : f >= 0.1 ? 'mid' : f >= 0.01 ? 'low' : 'empty';
  }
  // the key rate a link makes now: its model's while it is up; a satellite
  // link's only shows as a pass in progress
  function linkRate(st, i) {
    const l = topo.links[i];
    if (st.links.rate_bps) return st.links.rate_bps[i];
    if (l.satellite) return 0;
    return st.links.state[i] === 0 ? l.rate_bps : 0;
  }

  function satSegments(st) {
    // the satellite's node is placed where the satellite is
    const sats = st.satellites || [];
    (topo.satellites || []).forEach((s, k) => {
      const p = sats[k];
      if (!p || p.lat === null) { satDots[k].setAttribute('visibility', 'hidden'); xy[s.node] = [NaN, NaN]; return; }
      const x = proj.x(p.lon), y = proj.y(p.lat);
      xy[s.node] = [x, y];
      satDots[k].setAttribute('visibility', 'visible');
      satDots[k].setAttribute('cx', x.toFixed(1));
      satDots[k].setAttribute('cy', y.toFixed(1));
      // only the part of the track near the map: a dashed path far
      // outside it costs the browser a repaint of every dash
      let d = '', plon = null, pin = false;
      const t = p.track || [];
      const near = (x, y) => x > -60 && x < W + 60 && y > -60 && y < H + 60;
      for (let j = 0; j < t.length; j += 2) {
        const px = proj.x(t[j]), py = proj.y(t[j + 1]), inside = near(px, py);
        const jump = plon === null || Math.abs(t[j] - plon) > 180 || !pin;
        if (inside || pin) d += (jump ? 'M' : 'L') + px.toFixed(1) + ' ' + py.toFixed(1);
        plon = t[j];
        pin = inside;
      }
      satTracks[k].setAttribute('d', d);
    });
  }

  function renderMap(st) {
    const L = topo.links, n = L.length;
    satSegments(st);
    const now = new Set(st.passes_now || []);
    if (big) {
      const acc = {};
      for (const c in CLS) acc[c] = [];
      let pd = '';
      for (let i = 0; i < n; i++) {
        if (L[i].satellite) {
          if (now.has(i) && st.links.state[i] === 0 && isFinite(xy[L[i].a][0]) && isFinite(xy[L[i].b][0])) pd += linkD(i);
          continue;
        }
        acc[linkClass(st, i)].push(i);
      }
      drawCanvas(acc);
      passPath.setAttribute('d', pd);
      document.body.dataset.linkClasses = Object.keys(acc).map(c => c + ':' + acc[c].length).join(' ');
    } else {
      for (let i = 0; i < n; i++) {
        const e = linkEls[i], c = linkClass(st, i), l = L[i];
        const cap = st.links.capacity_bits ? st.links.capacity_bits[i] : l.capacity_bits, p = st.links.pool_bits[i];
        e.dataset.pool = p;
        e.dataset.level = (cap > 0 && p !== null ? p / cap : 0).toFixed(4);
        e.dataset.state = STATE_NAMES[st.links.state[i]] || '?';
        if (l.satellite) {
          const on = now.has(i) && isFinite(xy[l.a][0]) && isFinite(xy[l.b][0]);
          e.classList.toggle('pass', on);
          e.setAttribute('d', on ? linkD(i) : '');
          e.dataset.pass = on ? 1 : 0;
          continue;
        }
        if (e.dataset.cls !== c) {
          e.dataset.cls = c;
          e.setAttribute('stroke', CLS[c].c);
          e.setAttribute('stroke-dasharray', CLS[c].d);
        }
        const txt = `${fmtRate(linkRate(st, i))} \u00b7 ${Math.round(100 * Number(e.dataset.level))}%`;
        const t = labelEls[i];
        if (t && t.textContent !== txt) t.textContent = txt;
        const tt = e.firstChild, full = `${l.name}: ${txt}`;
        if (tt && tt.textContent !== full) tt.textContent = full;
      }
    }
    const up = st.nodes.up;
    for (let i = 0; i < nodeEls.length; i++) {
      const e = nodeEls[i];
      if (!e) continue;
      const u = up[i] ? '1' : '0';
      if (e.dataset.up !== u) { e.dataset.up = u; e.classList.toggle('down', !up[i]); }
    }
    drawRoute();
    drawSel();
  }

  // ---- demands ----
  // the route a demand last used: the feed's, or when it found none just
  // now (a cut, an empty pool), the last one the page saw
  const lastRoute = [];
  function demandRoute(st, d) {
    const r = st && st.demands && st.demands.route;
    if (!r || !r[d]) return null;
    if (r[d].length) lastRoute[d] = r[d];
    return r[d].length ? r[d] : lastRoute[d] || r[d];
  }
  function drawRoute() {
    const g = $('route');
    g.replaceChildren();
    const d = hoverDemand >= 0 ? hoverDemand : sel && sel.kind === 'demand' ? sel.i : -1;
    const r = d >= 0 ? demandRoute(latestOrCur(), d) : null;
    if (!r || !r.length) return;
    el('path', {d: r.map(linkD).join(''), 'data-route': d}, g);
  }
  const latestOrCur = () => (cur && cur.demands && cur.demands.route ? cur : latest);

  function renderDemands(st) {
    const D = topo.demands, tb = $('demands').tBodies[0], n = Math.min(D.length, ROUTES);
    const dm = st.demands;
    if (!dm) {
      tb.replaceChildren();
      $('demandsnote').textContent = 'A testbed does not count requests: see each KME\u2019s pools (click a node).';
      return;
    }
    if (tb.rows.length !== n) {
      tb.replaceChildren();
      for (let i = 0; i < n; i++) {
        const tr = tb.insertRow();
        tr.dataset.demand = i;
        for (let c = 0; c < 7; c++) tr.insertCell().className = c >= 2 ? 'n' : '';
        tr.cells[0].textContent = D[i].name;
        tr.cells[1].textContent = topo.nodes[D[i].from].name + ' \u2192 ' + topo.nodes[D[i].to].name;
      }
    }
    const put = (cell, v) => { if (cell.textContent !== v) cell.textContent = v; };
    for (let i = 0; i < n; i++) {
      const row = tb.rows[i], c = row.cells;
      put(c[2], String(dm.served[i]));
      put(c[3], String(dm.waiting[i]));
      put(c[4], String(dm.blocked[i]));
      if ((dm.blocked[i] > 0) !== c[4].classList.contains('bad')) c[4].classList.toggle('bad');
      put(c[5], String(dm.timed_out[i]));
      put(c[6], dm.served_bits ? fmtBits(dm.served_bits[i]) : '\u2013');
      const on = !!(sel && sel.kind === 'demand' && sel.i === i);
      if (on !== row.classList.contains('on')) row.classList.toggle('on');
    }
    $('demandsnote').textContent = D.length > n ? `The first ${n} of ${D.length} demands.` :
      D.length ? 'Hover or click a demand to see the route it last used.' : 'No demands.';
  }

  // ---- events ----
  function renderEvents(st) {
    const ev = st.events || [];
    const key = (st.events_applied || 0) + ':' + (mode === 'live' ? 'l' : st.t_s);
    if (key === seenEvents) return;
    const fresh = mode === 'live' && seenEvents !== -1;
    seenEvents = key;
    const ol = $('events');
    ol.replaceChildren();
    for (let j = ev.length - 1; j >= 0; j--) {
      const e = ev[j], li = document.createElement('li');
      li.className = e.kind;
      li.dataset.kind = e.kind;
      li.textContent = `${fmtDur(e.at_s)}  ${e.kind.replace('_', ' ')}  ${e.name}`;
      if (fresh && j === ev.length - 1) li.classList.add('fresh');
      ol.appendChild(li);
    }
    if (!ev.length) {
      const li = document.createElement('li');
      li.className = 'note';
      li.textContent = 'No event yet.';
      ol.appendChild(li);
    }
  }

  // ---- selection, details and charts ----
  function drawSel() {
    const g = $('sel');
    g.replaceChildren();
    if (!sel) return;
    if (sel.kind === 'node' && isFinite(xy[sel.i][0])) el('circle', {cx: xy[sel.i][0], cy: xy[sel.i][1], r: 10 / Math.pow(view.k, 0.7)}, g);
    if (sel.kind === 'link' && !(topo.links[sel.i].satellite)) {
      const p = el('path', {d: linkD(sel.i)}, g);
      p.style.strokeWidth = 6;
      p.style.strokeOpacity = 0.4;
    }
  }

  function rows(list) {
    return '<table>' + list.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join('') + '</table>';
  }

  function renderDetail(st) {
    if (!sel) return;
    const info = $('selinfo');
    if (sel.kind === 'link') {
      const l = topo.links[sel.i], i = sel.i, Ls = st.links;
      const p = Ls.pool_bits[i], cap = Ls.capacity_bits ? Ls.capacity_bits[i] : l.capacity_bits;
      $('seltitle').textContent = 'Link ' + l.name;
      const r = [
        ['ends', topo.nodes[l.a].name + ' \u2013 ' + topo.nodes[l.b].name],
        ['kind', l.satellite ? 'satellite' : l.kind],
        ['length', isFinite(l.length_km) && l.length_km !== null ? l.length_km.toFixed(1) + ' km' : '\u2013'],
        ['state', STATE_NAMES[Ls.state[i]] || '?'],
        ['key rate now', fmtRate(linkRate(st, i))],
        ['model rate', fmtRate(l.rate_bps)],
        ['QBER', Ls.qber ? (Ls.qber[i] === null ? '\u2013' : (100 * Ls.qber[i]).toFixed(2) + '%') :
          l.qber !== null && l.qber !== undefined ? (100 * l.qber).toFixed(2) + '% (model)' : '\u2013'],
        ['pool', p === null ? 'not reported (no SAE pair across the link)' :
          `${fmtBits(p)} of ${fmtBits(cap)} (${cap ? (100 * p / cap).toFixed(1) : 0}%)` + (Ls.capacity_bits ? ', from ETSI status' : '')],
        ['generated', fmtBits(Ls.generated_bits ? Ls.generated_bits[i] : NaN)],
        ['consumed by relay', Ls.relay_bits ? fmtBits(Ls.relay_bits[i]) + ' (hop messages and their MAC keys)' : '\u2013'],
        ['consumed by applications', Ls.direct_bits ? fmtBits(Ls.direct_bits[i]) + ' (one-hop keys)' : '\u2013'],
      ];
      if (Ls.written_bytes) r.push(['key written by the devices', fmtBits(8 * Ls.written_bytes[i])]);
      info.innerHTML = rows(r);
    } else if (sel.kind === 'node') {
      const n = topo.nodes[sel.i], i = sel.i;
      let held = 0, cnt = 0;
      topo.links.forEach((l, j) => { if (l.a === i || l.b === i) { held += st.links.pool_bits[j] || 0; cnt++; } });
      $('seltitle').textContent = (n.role === 'node' ? 'Node ' : n.role === 'station' ? 'Ground station ' : 'Satellite ') + n.name;
      const r = [
        ['where', n.role === 'satellite' ? 'moving' : `${n.lat.toFixed(4)}, ${n.lon.toFixed(4)}`],
        ['trusted', n.trusted ? 'yes (may relay)' : 'no (an end only)'],
        ['up', st.nodes.up[i] ? 'yes' : 'no'],
        ['links', String(cnt)],
        ['key held in its pools', `${fmtBits(held)} of ${fmtBits(n.capacity_bits)}`],
      ];
      const kme = st.kmes && st.kmes[i];
      if (kme) r.push(['KME pools (ETSI status)', kme.map(k => `${k.master}\u2192${k.slave}: ${k.stored_key_count} keys`).join('; ') || '\u2013']);
      info.innerHTML = rows(r);
    } else if (sel.kind === 'demand' && st.demands) {
      const d = topo.demands[sel.i], i = sel.i, dm = st.demands;
      $('seltitle').textContent = 'Demand ' + d.name;
      const r = demandRoute(latestOrCur(), i);
      info.innerHTML = rows([
        ['from \u2192 to', topo.nodes[d.from].name + ' \u2192 ' + topo.nodes[d.to].name],
        ['key size', fmtBits(d.key_bits)], ['policy', d.policy + (d.split > 1 ? `, split over ${d.split} paths` : '')],
        ['served', String(dm.served[i])], ['waiting', String(dm.waiting[i])], ['blocked', String(dm.blocked[i])],
        ['timed out', String(dm.timed_out[i])],
        ['key served', dm.served_bits ? fmtBits(dm.served_bits[i]) : '\u2013'],
        ['route last used', r ? (r.length ? r.map(j => topo.links[j].name).join(', ') : 'none') : '\u2013'],
        ['route now', st.demands.route && st.demands.route[i] ? (st.demands.route[i].length ? 'found' : 'none (no path can serve it now)') : '\u2013'],
      ]);
    }
    refreshSeries(st);
  }

  function select(s) {
    sel = s;
    series.key = '';
    renderDemands(cur);
    renderDetail(cur);
    drawRoute();
    drawSel();
  }

  // time series of the selection: the recorded samples (sim), or the
  // states seen so far (testbed)
  const history = [];
  function refreshSeries(st) {
    if (!sel) return;
    const key = sel.kind + sel.i;
    if (topo.mode === 'testbed') return drawCharts(localSeries(), st);
    const samples = st.samples || 0, nowMs = performance.now();
    if (series.key === key && series.data && (series.samples === samples || nowMs - series.at < 1000)) return drawCharts(series.data, st);
    if (series.busy) return;
    series.busy = true;
    const q = sel.kind === 'link' ? 'link' : sel.kind === 'node' ? 'node' : 'demand';
    fetch(`/api/series?${q}=${sel.i}`).then(r => (r.ok ? r.json() : null)).then(d => {
      series.busy = false;
      if (!d || !sel || sel.kind + sel.i !== key) return;
      series.key = key; series.samples = d.samples; series.at = performance.now(); series.data = d;
      drawCharts(d, cur);
    }).catch(() => { series.busy = false; });
  }
  function localSeries() {
    const t = [], pool = [], gen = [], cons = [];
    for (const h of history) {
      t.push(h.t_s);
      if (sel.kind === 'link') { pool.push(h.links.pool_bits[sel.i]); gen.push(h.links.generated_bits[sel.i]); cons.push(h.links.consumed_bits ? h.links.consumed_bits[sel.i] : 0); }
      else if (sel.kind === 'node') {
        let p = 0, g = 0;
        topo.links.forEach((l, j) => { if (l.a === sel.i || l.b === sel.i) { p += h.links.pool_bits[j]; g += h.links.generated_bits[j]; } });
        pool.push(p); gen.push(g); cons.push(0);
      }
    }
    return {t_s: t, pool_bits: pool, generated_bits: gen, consumed_bits: cons};
  }

  function niceUnit(maxv) {
    for (const [n, v] of [['Tbit', 1e12], ['Gbit', 1e9], ['Mbit', 1e6], ['kbit', 1e3]]) if (maxv >= v) return [n, v];
    return ['bit', 1];
  }
  function chart(svg, title, ylab, xs, ys, names, colors, tNow) {
    svg.replaceChildren();
    const x0 = 66, x1 = 410, y0 = 140, y1 = 22;
    el('text', {x: 8, y: 13, 'font-weight': 600}, svg).textContent = title;
    if (!xs || xs.length < 1) {
      el('text', {x: 200, y: 90, 'text-anchor': 'middle'}, svg).textContent = 'no samples yet';
      return;
    }
    const tmax = Math.max(xs[xs.length - 1], 1e-9);
    const [tu, tdiv] = tmax > 3 * 86400 ? ['days', 86400] : tmax > 3 * 3600 ? ['h', 3600] : tmax > 180 ? ['min', 60] : ['s', 1];
    let ymax = 0;
    for (const y of ys) for (const v of y) if (v > ymax) ymax = v;
    if (!(ymax > 0)) ymax = 1;
    const sx = t => x0 + (x1 - x0) * t / tmax, sy = v => y0 - (y0 - y1) * v / ymax;
    el('path', {class: 'axis', d: `M${x0} ${y1}V${y0}H${x1}`}, svg);
    for (const f of [0.5, 1]) {
      el('path', {class: 'gridl', d: `M${x0} ${sy(f * ymax).toFixed(1)}H${x1}`}, svg);
      el('text', {x: x0 - 4, y: sy(f * ymax) + 3, 'text-anchor': 'end'}, svg).textContent = ylab.fmt(f * ymax);
    }
    el('text', {x: x0 - 4, y: y0 + 3, 'text-anchor': 'end'}, svg).textContent = '0';
    el('text', {x: x1, y: y0 + 14, 'text-anchor': 'end'}, svg).textContent = (tmax / tdiv).toPrecision(3) + ' ' + tu;
    el('text', {x: x0, y: y0 + 14}, svg).textContent = '0';
    el('text', {x: (x0 + x1) / 2, y: y0 + 14, 'text-anchor': 'middle'}, svg).textContent = ylab.name;
    const step = Math.max(1, Math.floor(xs.length / 600));
    ys.forEach((y, k) => {
      let d = '';
      for (let j = 0; j < xs.length; j += step) d += (j ? 'L' : 'M') + sx(xs[j]).toFixed(1) + ' ' + sy(y[j]).toFixed(1);
      el('path', {class: 'series', d, stroke: colors[k]}, svg);
      el('text', {x: x0 + 8 + 110 * k, y: y1 + 10, fill: colors[k]}, svg).textContent = names[k];
    });
    if (isFinite(tNow) && tNow <= tmax) el('path', {class: 'now', d: `M${sx(tNow).toFixed(1)} ${y1}V${y0}`}, svg);
  }
  const bitsAxis = name => ({name, fmt: v => fmtBits(v)});
  function rates(t, c) {
    const out = [0];
    for (let j = 1; j < t.length; j++) out.push(t[j] > t[j - 1] ? Math.max(0, (c[j] - c[j - 1]) / (t[j] - t[j - 1])) : out[j - 1]);
    return out;
  }
  function drawCharts(d, st) {
    if (!d || !sel) return;
    const tNow = st ? st.t_s : NaN;
    if (sel.kind === 'demand') {
      chart($('chart1'), 'Requests since the start', {name: 'time', fmt: v => v.toPrecision(3)}, d.t_s,
        [d.served, d.blocked, d.timed_out], ['served', 'blocked', 'timed out'], ['#0072B2', '#D55E00', '#E69F00'], tNow);
      chart($('chart2'), 'Requests waiting', {name: 'time', fmt: v => v.toPrecision(3)}, d.t_s, [d.waiting], ['waiting'], ['#CC79A7'], tNow);
      return;
    }
    chart($('chart1'), sel.kind === 'link' ? 'Key pool' : 'Key held in the node\u2019s pools', bitsAxis('time'), d.t_s,
      [d.pool_bits], ['pool'], ['#0072B2'], tNow);
    chart($('chart2'), 'Key rate: generated and consumed', {name: 'time', fmt: v => fmtRate(v)}, d.t_s,
      [rates(d.t_s, d.generated_bits), rates(d.t_s, d.consumed_bits)], ['generated', 'consumed'], ['#009E73', '#D55E00'], tNow);
  }

  // ---- one update ----
  function render(st) {
    const t0 = performance.now();
    cur = st;
    // a replayed sample carries no totals: sum its columns
    const sum = a => (a ? a.reduce((x, y) => x + (y || 0), 0) : 0);
    const T = st.totals || (st.demands && {
      served: sum(st.demands.served), waiting: sum(st.demands.waiting), blocked: sum(st.demands.blocked),
      timed_out: sum(st.demands.timed_out), generated_bits: sum(st.links.generated_bits),
      consumed_bits: sum(st.links.consumed_bits)});
    $('time').textContent = topo.mode === 'testbed' ? `running for ${fmtDur(st.t_s)} (wall clock)` :
      `t = ${fmtDur(st.t_s)} of ${fmtDur(st.end_s)}` + (fmtUtc(st.t_s) ? ` (${fmtUtc(st.t_s)})` : '');
    document.body.dataset.t = st.t_s;
    document.body.dataset.seq = st.seq || 0;
    if (T) $('totals').textContent = `${T.served} served, ${T.waiting} waiting, ${T.blocked} blocked, ${T.timed_out} timed out; ` +
      `${fmtBits(T.generated_bits)} generated, ${fmtBits(T.consumed_bits)} consumed`;
    renderMap(st);
    renderDemands(st);
    renderEvents(st);
    renderDetail(st);
    const dt = performance.now() - t0;
    if (perf.first === null) perf.first = performance.now();
    else perf.updates.push(dt);
    if (perf.updates.length > 1000) perf.updates.shift();
    requestAnimationFrame(() => {
      perf.frames.push(performance.now() - t0);
      if (perf.frames.length > 1000) perf.frames.shift();
    });
    $('perf').textContent = `first render at ${perf.first.toFixed(0)} ms; this update ${dt.toFixed(1)} ms of script`;
  }

  function setStatus(text, cls) {
    const s = $('status');
    s.textContent = text;
    s.className = 'status ' + cls;
    document.body.dataset.status = cls;
  }

  // ---- live feed ----
  function onState(st) {
    latest = st;
    if (topo.mode === 'testbed') { history.push(st); if (history.length > 2000) history.shift(); }
    const n = st.samples || 0;
    if (n > 1) {
      $('slider').disabled = false;
      $('play').disabled = false;
      $('slider').max = n - 1;
      if (mode === 'live') $('slider').value = n - 1;
    }
    if (st.done) {
      $('loadmetrics').disabled = false;
      document.body.dataset.done = '1';
    }
    if (mode !== 'live') return;
    setStatus(st.done ? 'finished' : topo.mode === 'testbed' ? 'testbed' : 'live', st.done ? 'done' : 'live');
    render(st);
  }

  function connect() {
    if (!window.EventSource) return poll();
    const es = new EventSource('/api/stream');
    es.addEventListener('state', ev => {
      if (!perf.firstState) perf.firstState = performance.now();
      perf.bytes += ev.data.length;
      onState(JSON.parse(ev.data));
    });
    es.onerror = () => { if (!(latest && latest.done)) setStatus('reconnecting', 'lost'); };
  }
  function poll() {
    fetch('/api/state').then(r => r.json()).then(onState).catch(() => setStatus('lost', 'lost'))
      .finally(() => setTimeout(poll, 250));
  }

  // ---- replay ----
  function showSample(k) {
    if (sampleBusy) { pendingSample = k; return; }
    sampleBusy = true;
    fetch('/api/sample?k=' + k).then(r => (r.ok ? r.json() : null)).then(st => {
      sampleBusy = false;
      if (st && mode === 'replay') {
        setStatus('replay', 'replay');
        $('replaytime').textContent = `sample ${st.sample + 1} of ${st.samples}: ${fmtDur(st.t_s)}`;
        document.body.dataset.sample = st.sample;
        render(st);
      }
      if (pendingSample >= 0) { const p = pendingSample; pendingSample = -1; showSample(p); }
    }).catch(() => { sampleBusy = false; });
  }
  function toLive() {
    mode = 'live';
    stopPlay();
    $('live').disabled = true;
    $('replaytime').textContent = '';
    seenEvents = -1;
    if (latest) onState(latest);
  }
  function stopPlay() { if (playing) { clearInterval(playing); playing = null; $('play').innerHTML = '&#9654;'; } }

  $('slider').addEventListener('input', () => {
    mode = 'replay';
    $('live').disabled = false;
    showSample(Number($('slider').value));
  });
  $('live').addEventListener('click', toLive);
  $('play').addEventListener('click', () => {
    if (playing) return stopPlay();
    mode = 'replay';
    $('live').disabled = false;
    const s = $('slider');
    if (Number(s.value) >= Number(s.max)) s.value = 0;
    $('play').innerHTML = '&#10074;&#10074;';
    playing = setInterval(() => {
      if (sampleBusy) return;
      const k = Number(s.value) + Math.max(1, Math.round(Number(s.max) / 400));
      if (k > Number(s.max)) return stopPlay();
      s.value = k;
      showSample(k);
    }, 80);
  });
  $('loadmetrics').addEventListener('click', () => loadMetrics('/api/metrics'));

  // ---- metrics.json of a finished run ----
  function topoFromMetrics(m) {
    const idx = {};
    const nodes = m.nodes.map((n, i) => { idx[n.name] = i; return {name: n.name, lat: n.lat, lon: n.lon, role: 'node', trusted: n.trusted, capacity_bits: n.capacity_bits}; });
    for (const g of m.ground_stations || []) if (g.name in idx) nodes[idx[g.name]].role = 'station';
    for (const s of m.satellites || []) if (s.name in idx) nodes[idx[s.name]].role = 'satellite';
    return {
      mode: 'metrics', name: m.scenario, source: m.source, start_utc: m.start_utc, end_s: m.end_s, nodes,
      links: m.links.map(l => ({name: l.name, a: idx[l.a], b: idx[l.b], kind: l.kind, satellite: !!l.satellite,
        length_km: l.length_km, rate_bps: l.rate_bps, qber: l.qber, capacity_bits: l.pool_capacity_bits})),
      demands: m.demands.map(d => ({name: d.name, from: idx[d.from], to: idx[d.to], key_bits: 0, policy: d.policy, split: d.split})),
      satellites: [], passes: [],
    };
  }
  const STATES = {up: 0, cut: 1, eavesdropped: 2, 'node down': 3};
  function stateFromMetrics(m) {
    const col = (a, k) => a.map(x => x[k]);
    const ln = {};
    m.links.forEach((l, i) => { ln[l.name] = i; });
    return {
      t_s: m.simulated_s, end_s: m.end_s, done: true, samples: 0, seq: 0,
      links: {pool_bits: col(m.links, 'pool_bits'), generated_bits: col(m.links, 'generated_bits'),
        consumed_bits: col(m.links, 'consumed_bits'), direct_bits: col(m.links, 'direct_bits'),
        relay_bits: m.links.map(l => l.relay_payload_bits + l.relay_messages * (m.mac_bits || 0)),
        state: m.links.map(l => STATES[l.state] || 0), qber: col(m.links, 'qber')},
      nodes: {up: m.nodes.map(n => (n.up ? 1 : 0))},
      demands: {served: col(m.demands, 'served'), waiting: col(m.demands, 'waiting'), blocked: col(m.demands, 'blocked'),
        timed_out: col(m.demands, 'timed_out'), served_bits: col(m.demands, 'served_bits')},
      events: (m.events || []).map(e => ({at_s: e.at_s, kind: e.kind, name: e.link || e.node})),
      events_applied: (m.events || []).length, totals: m.totals, satellites: [], passes_now: [],
    };
  }
  function loadMetrics(url) {
    return fetch(url).then(r => { if (!r.ok) throw new Error(url + ': ' + r.status); return r.json(); }).then(m => {
      const sameNet = topo && topo.links.length === m.links.length && topo.links.every((l, i) => l.name === m.links[i].name);
      if (!sameNet) { topo = topoFromMetrics(m); buildMap(); }
      mode = 'metrics';
      stopPlay();
      $('live').disabled = !latest;
      seenEvents = -1;
      setStatus('metrics.json', 'replay');
      $('replaytime').textContent = 'metrics.json: the state at the end';
      render(stateFromMetrics(m));
    }).catch(e => setStatus(String(e.message || e), 'lost'));
  }

  // ---- map clicks: the nearest node, else the nearest link ----
  $('map').addEventListener('click', ev => {
    if (!cur || dragged) return;
    const p = mapPoint(ev);
    let best = null, bd = 12 / view.k;
    xy.forEach(([x, y], i) => { const d = Math.hypot(x - p.x, y - p.y); if (d < bd) { bd = d; best = {kind: 'node', i}; } });
    if (!best) {
      bd = 8 / view.k;
      topo.links.forEach((l, i) => {
        const [x1, y1] = xy[l.a], [x2, y2] = xy[l.b];
        if (!isFinite(x1) || !isFinite(x2)) return;
        const g = linkGeom(i), mx = (g.x1 + 2 * g.cx + g.x2) / 4, my = (g.y1 + 2 * g.cy + g.y2) / 4;
        const d = Math.min(segDist(p, g.x1, g.y1, mx, my), segDist(p, mx, my, g.x2, g.y2));
        if (d < bd) { bd = d; best = {kind: 'link', i}; }
      });
    }
    select(best);
    if (!best) { $('seltitle').textContent = 'Select a link or node'; $('selinfo').replaceChildren(); $('chart1').replaceChildren(); $('chart2').replaceChildren(); }
  });
  function segDist(p, x1, y1, x2, y2) {
    const dx = x2 - x1, dy = y2 - y1, n = dx * dx + dy * dy;
    const t = n ? Math.max(0, Math.min(1, ((p.x - x1) * dx + (p.y - y1) * dy) / n)) : 0;
    return Math.hypot(p.x - x1 - t * dx, p.y - y1 - t * dy);
  }
  const tbody = $('demands').tBodies[0];
  tbody.addEventListener('mouseover', ev => {
    const tr = ev.target.closest('tr');
    hoverDemand = tr ? Number(tr.dataset.demand) : -1;
    drawRoute();
  });
  tbody.addEventListener('mouseleave', () => { hoverDemand = -1; drawRoute(); });
  tbody.addEventListener('click', ev => {
    const tr = ev.target.closest('tr');
    if (tr) select({kind: 'demand', i: Number(tr.dataset.demand)});
  });

  // for tests and measurements in a browser console
  window.kagiDashboard = {render: st => render(st), get state() { return cur; }};

  // ---- start ----
  const params = new URLSearchParams(location.search);
  const murl = params.get('metrics');
  fetch('/api/topology').then(r => { if (!r.ok) throw new Error('no topology'); return r.json(); }).then(t => {
    perf.topology = performance.now();
    topo = t;
    buildMap();
    perf.built = performance.now();
    if (murl) return loadMetrics(murl);
    connect();
  }).catch(() => (murl ? loadMetrics(murl) : setStatus('no feed', 'lost')));
})();
