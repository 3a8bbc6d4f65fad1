// Browser test of the kagi dashboard (tests/dashboard_e2e.sh runs it):
// starts `kagi sim tests/data/dashboard.yaml --serve` on a free port, opens
// the page in headless Chromium through playwright-core, and checks what a
// person would: every node and link of the scenario drawn, pool levels that
// change as time advances, the scenario's events in the log, the replay
// slider after the end, the feed's keys against an allow-list, path
// traversal refused; saves a screenshot. Prints "N passed, N failed".
//
//   node e2e.js KAGI OUTDIR                        the test
//   node e2e.js KAGI OUTDIR --bench SCENARIO SPEED  time first render and updates
'use strict';
const {spawn} = require('child_process');
const fs = require('fs');
const http = require('http');
const path = require('path');
const {chromium} = require('playwright-core');

const [kagi, outDir, flag, benchScenario, benchSpeed] = process.argv.slice(2);
const bench = flag === '--bench';
const root = path.resolve(__dirname, '..', '..');
const scenario = bench ? benchScenario : path.join(root, 'tests/data/dashboard.yaml');
// what tests/data/dashboard.yaml holds, written here by hand (not read
// from the server) so the page is checked against the scenario itself
const NODES = ['Koganei', 'Otemachi', 'Hakusan', 'Hongo', 'Chofu'];
const LINKS = ['west', 'west-2', 'loop', 'campus', 'short', 'chofu'];
const EVENTS = ['cut', 'repair', 'eavesdrop', 'node_down', 'node_up'];

// the page's files: found beside the build by kagi itself (what users get),
// or given when the binary was built elsewhere (BUILD=/tmp/x)
const webArgs = fs.existsSync(path.join(path.dirname(path.resolve(kagi)), '..', 'web', 'index.html')) ? [] :
  ['--web', path.join(root, 'web')];

// every process this test starts, stopped whatever happens to the test
const children = [];
function start(args) {
  const p = spawn(kagi, args, {stdio: ['ignore', 'pipe', 'pipe']});
  children.push(p);
  return p;
}
process.on('exit', () => { for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM'); });
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, () => { console.log('FAIL stopped by ' + sig); console.log(`${passed} passed, ${failed + 1} failed`); process.exit(1); });

let passed = 0, failed = 0;
function check(name, ok, detail) {
  if (ok) { passed++; console.log('ok   ' + name); }
  else { failed++; console.log('FAIL ' + name + (detail !== undefined ? ': ' + detail : '')); }
}
const sleep = ms => new Promise(r => setTimeout(r, ms));

function get(url) {
  return new Promise((resolve, reject) => {
    http.get(url, res => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', c => { body += c; });
      res.on('end', () => resolve({status: res.statusCode, type: res.headers['content-type'], body}));
    }).on('error', reject);
  });
}
// a raw request line, so that no client library normalises the path
function raw(port, target) {
  return new Promise((resolve, reject) => {
    const s = require('net').connect(port, '127.0.0.1', () => s.end(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    let d = '';
    s.on('data', c => { d += c; });
    s.on('end', () => resolve(Number(d.split(' ')[1])));
    s.on('error', reject);
  });
}

// Every key a feed document may hold: counts, rates, names, times. A key
// not listed here fails the test (docs/dashboard.md: no key material).
const ALLOWED = new Set([
  'mode', 'name', 'source', 'start_utc', 'end_s', 'sample_s', 'mac_bits', 'nodes', 'lat', 'lon', 'role',
  'trusted', 'capacity_bits', 'links', 'a', 'b', 'kind', 'satellite', 'length_km', 'rate_bps', 'qber',
  'demands', 'from', 'to', 'key_bits', 'policy', 'split', 'satellites', 'node', 'period_s', 'passes',
  'link', 'aos_s', 'los_s', 'max_el_deg', 'planned_events', 'at_s', 'target', 'seq', 't_s', 'speed',
  'done', 'samples', 'pool_bits', 'generated_bits', 'consumed_bits', 'relay_bits', 'direct_bits',
  'discarded_bits', 'state', 'up', 'requests', 'served', 'blocked', 'timed_out', 'waiting', 'served_bits',
  'route', 'alt_km', 'track', 'passes_now', 'events_applied', 'events', 'totals', 'sample',
]);
function keysOf(v, out) {
  if (Array.isArray(v)) v.forEach(x => keysOf(x, out));
  else if (v && typeof v === 'object') for (const k in v) { out.add(k); keysOf(v[k], out); }
  return out;
}
// strings in the feed: names and times only, no long opaque blobs
function longStrings(v, out) {
  if (typeof v === 'string') { if (v.length > 64 || /^[0-9a-fA-F]{32,}$|^[A-Za-z0-9+/=]{40,}$/.test(v)) out.push(v); }
  else if (Array.isArray(v)) v.forEach(x => longStrings(x, out));
  else if (v && typeof v === 'object') for (const k in v) longStrings(v[k], out);
  return out;
}

async function main() {
  fs.mkdirSync(outDir, {recursive: true});
  const args = ['sim', scenario, '--serve', '--listen', '127.0.0.1:0', '--speed', bench ? benchSpeed : '600', ...webArgs];
  const proc = start(args);
  let out = '', err = '';
  proc.stdout.on('data', c => { out += c; });
  proc.stderr.on('data', c => { err += c; });
  let exited = null;
  proc.on('exit', (code, sig) => { exited = {code, sig}; });
  let url = null;
  for (let i = 0; i < 1200 && !url && !exited; i++) {
    const m = out.match(/^dashboard: (http:\/\/\S+)/m);
    if (m) url = m[1];
    else await sleep(50);
  }
  check('kagi sim --serve prints its dashboard URL', !!url, out + err);
  if (!url) return finish(proc);
  const port = Number(new URL(url).port);
  const browser = await chromium.launch({
    executablePath: process.env.KAGI_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage({viewport: {width: 1400, height: 1000}});
    const errors = [];
    page.on('pageerror', e => errors.push(String(e)));
    page.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
    await page.goto(url);
    if (bench) return await benchmark(page, proc);
    await page.waitForSelector('[data-link]', {timeout: 15000});
    await page.waitForFunction(() => document.body.dataset.seq > 0, null, {timeout: 15000});

    const linkTitles = await page.$$eval('#links [data-link] title', ts => ts.map(t => t.textContent));
    const linkNames = linkTitles.map(t => t.split(':')[0]);
    check('every link of the scenario is drawn once', JSON.stringify(linkNames.slice().sort()) === JSON.stringify(LINKS.slice().sort()), linkNames);
    const nodeNames = await page.$$eval('#nodes [data-node] title', ts => ts.map(t => t.textContent.split(' (')[0]));
    check('every node of the scenario is drawn once', JSON.stringify(nodeNames.slice().sort()) === JSON.stringify(NODES.slice().sort()), nodeNames);
    const labels = await page.$$eval('#labels [data-label]', ts => ts.map(t => t.textContent));
    check('links are labelled with their key rate and pool where there is room (the 1.2 km one has none)',
      labels.length === LINKS.length - 1 && labels.every(t => /bit\/s · \d+%/.test(t)), labels);
    check('every link\'s tooltip gives its key rate and pool', linkTitles.every(t => /: .*bit\/s · \d+%/.test(t)), linkTitles);
    const land = await page.$eval('#land', g => (g.querySelector('path') ? g.querySelector('path').getAttribute('d').length : 0));
    check('the bundled coastline is drawn (offline)', land > 100, land);

    const pools = () => page.$$eval('#links [data-link]', es => es.map(e => e.dataset.pool + '/' + e.dataset.level));
    const t1 = Number(await page.evaluate(() => document.body.dataset.t));
    const p1 = await pools();
    await page.waitForFunction(t => Number(document.body.dataset.t) > t + 300, t1, {timeout: 15000});
    const p2 = await pools();
    const t2 = Number(await page.evaluate(() => document.body.dataset.t));
    check('simulated time advances on the page', t2 > t1, `${t1} -> ${t2}`);
    check('pool levels change as time advances', JSON.stringify(p1) !== JSON.stringify(p2), `${p1} | ${p2}`);

    await page.waitForSelector('#events li[data-kind="cut"]', {timeout: 20000});
    const cutText = await page.$eval('#events li[data-kind="cut"]', e => e.textContent);
    check('the event log shows the cut as it happens', /west/.test(cutText) && /15m/.test(cutText), cutText);
    const cutState = await page.evaluate(() => {
      const e = document.querySelector('#links [data-link] title');
      return [...document.querySelectorAll('#links [data-link]')].map(x => x.dataset.state);
    });
    check('links show their state', cutState.every(s => ['up', 'cut', 'eavesdropped', 'node down'].includes(s)), cutState);

    await page.click('#demands tbody tr[data-demand="0"]');
    await page.waitForSelector('#route path', {timeout: 5000}).catch(() => {});
    const route = await page.$eval('#route path', p => p.getAttribute('data-route')).catch(() => null);
    check('clicking a demand highlights the route it took', route === '0', route);
    const detail = await page.$eval('#selinfo', e => e.textContent);
    check('the demand detail names its route', /route last used/.test(detail) && /(west|campus|short|loop)/.test(detail), detail);

    await page.waitForFunction(() => document.body.dataset.done === '1', null, {timeout: 30000});
    const kinds = await page.$$eval('#events li[data-kind]', ls => ls.map(l => l.dataset.kind));
    check('after the end the log holds every event of the scenario', EVENTS.every(k => kinds.includes(k)), kinds);
    const status = await page.$eval('#status', e => e.textContent);
    check('the page says the run has finished', status === 'finished', status);

    // click the first link on the map: its detail and charts
    const box = await page.$eval('#links [data-link="0"]', e => { const b = e.getBoundingClientRect(); return [b.x + b.width / 2, b.y + b.height / 2]; });
    await page.mouse.click(box[0], box[1]);
    await page.waitForFunction(() => document.querySelectorAll('#chart1 .series').length > 0, null, {timeout: 5000}).catch(() => {});
    const title = await page.$eval('#seltitle', e => e.textContent);
    const series = await page.$$eval('#chart1 .series, #chart2 .series', s => s.length);
    check('clicking a link shows its pool and key-rate charts', /^Link /.test(title) && series >= 3, `${title}, ${series} series`);
    const qber = await page.$eval('#selinfo', e => e.textContent);
    check('the link detail shows QBER and relay/application consumption', /QBER/.test(qber) && /consumed by relay/.test(qber) && /consumed by applications/.test(qber), qber);

    // zoom about the pointer with the wheel, back with a double click
    const mb = await page.$eval('#map', e => { const b = e.getBoundingClientRect(); return [b.x + b.width / 2, b.y + b.height / 2]; });
    await page.mouse.move(mb[0], mb[1]);
    await page.mouse.wheel(0, -600);
    await page.waitForFunction(() => Number(document.body.dataset.zoom) > 1.5, null, {timeout: 3000}).catch(() => {});
    const z1 = await page.evaluate(() => [document.body.dataset.zoom, document.getElementById('map').getAttribute('viewBox')]);
    await page.mouse.dblclick(mb[0], mb[1]);
    const z2 = await page.evaluate(() => document.getElementById('map').getAttribute('viewBox'));
    check('the wheel zooms the map and a double click restores it', Number(z1[0]) > 1.5 && z2 === '0.00 0.00 900.00 560.00', `${z1} -> ${z2}`);

    // replay: the slider goes back to the first sample and forward again
    const max = Number(await page.$eval('#slider', s => s.max));
    check('the slider spans the recorded samples', max === 120, max);
    const slide = k => page.$eval('#slider', (s, v) => { s.value = v; s.dispatchEvent(new Event('input')); }, k);
    await slide(10);
    await page.waitForFunction(() => document.body.dataset.sample === '10', null, {timeout: 5000});
    const s10 = await pools();
    const api10 = JSON.parse((await get(`${url}api/sample?k=10`)).body);
    const want10 = api10.links.pool_bits.map(String);
    check('replay shows the recorded sample (slider at 10)', JSON.stringify(s10.map(x => x.split('/')[0])) === JSON.stringify(want10), `${s10} vs ${want10}`);
    await slide(85);
    await page.waitForFunction(() => document.body.dataset.sample === '85', null, {timeout: 5000});
    const s85 = await pools();
    check('replay: pools differ between samples 10 and 85', JSON.stringify(s10) !== JSON.stringify(s85));
    const replayEvents = await page.$$eval('#events li[data-kind]', ls => ls.map(l => l.dataset.kind));
    check('replay: the log holds the events up to that time (42.5 min: all but node_up)', replayEvents.includes('node_down') && !replayEvents.includes('node_up'), replayEvents);
    const ds = await page.$$eval('#links [data-link]', es => es.map(e => e.dataset.state));
    check('replay at 42.5 min: campus eavesdropped, Hakusan\'s links down, west up', ds[3] === 'eavesdropped' && ds[2] === 'node down' && ds[4] === 'node down' && ds[0] === 'up', ds);
    const down = await page.$eval('#nodes [data-node="2"]', e => e.dataset.up);
    check('replay at 42.5 min: Hakusan is drawn down', down === '0', down);

    await page.screenshot({path: path.join(outDir, 'dashboard.png'), fullPage: true});
    check('screenshot saved', fs.statSync(path.join(outDir, 'dashboard.png')).size > 10000);

    await page.click('#loadmetrics');
    await page.waitForFunction(() => document.getElementById('status').textContent === 'metrics.json', null, {timeout: 5000}).catch(() => {});
    const ms = await page.$eval('#status', e => e.textContent);
    const mp = await pools();
    const metrics = JSON.parse((await get(`${url}api/metrics`)).body);
    check('metrics.json of the finished run loads into the page', ms === 'metrics.json' &&
      JSON.stringify(mp.map(x => x.split('/')[0])) === JSON.stringify(metrics.links.map(l => String(l.pool_bits))), `${ms} ${mp}`);

    // the feed: only allowed keys, nothing key-like
    const docs = ['api/topology', 'api/state', 'api/sample?k=5', 'api/series?link=0', 'api/series?node=1', 'api/series?demand=0'];
    const keys = new Set(), blobs = [];
    for (const d of docs) {
      const r = await get(url + d);
      const j = JSON.parse(r.body);
      keysOf(j, keys);
      longStrings(j, blobs);
    }
    const bad = [...keys].filter(k => !ALLOWED.has(k));
    check('the feed holds only allow-listed keys (counts, rates, names)', bad.length === 0, bad);
    check('the feed holds no long opaque string', blobs.length === 0, blobs.slice(0, 3));
    const st = await get(url + 'api/state');
    check('/api/state is JSON, not cached', /^application\/json/.test(st.type), st.type);
    const css = await get(url + 'style.css');
    check('static files get their content type', /^text\/css/.test(css.type), css.type);
    const codes = [];
    for (const t of ['/../Makefile', '/%2e%2e/Makefile', '/web/../../Makefile', '/.git/config', '//etc/passwd', '/nope.html'])
      codes.push(await raw(port, t));
    check('path traversal and missing files are refused', codes.every(c => c === 404 || c === 400), codes);
    check('the page logged no script error', errors.length === 0, errors);
    await testbed(browser);
  } finally {
    await browser.close();
  }
  return finish(proc);
}

// kagi testbed --serve: the feed of real KMEs holds counts only (the
// status calls' three numbers), under allow-listed keys
async function testbed(browser) {
  const dir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'kagi-dash-tb-'));
  const tb = start(['testbed', path.join(root, 'examples/testbed.yaml'), '--dir', dir, '--max-key', '65536',
    '--serve', '--listen', '127.0.0.1:0', ...webArgs]);
  let out = '';
  tb.stdout.on('data', c => { out += c; });
  tb.stderr.on('data', c => { out += c; });
  let url = null;
  for (let i = 0; i < 600 && !url && tb.exitCode === null; i++) {
    const m = out.match(/^dashboard: (http:\/\/\S+)/m);
    if (m) url = m[1];
    else await sleep(50);
  }
  check('kagi testbed --serve prints its dashboard URL', !!url, out);
  if (url) {
    let st = null;
    for (let i = 0; i < 40; i++) {
      st = JSON.parse((await get(url + 'api/state')).body);
      if (!st.links) { await sleep(250); continue; } // 503 before the first state
      if (st.links.pool_bits.every(p => p !== null) && st.kmes.some(k => k.some(s => s.stored_key_count > 0))) break;
      await sleep(250);
    }
    check('testbed feed: every link shows the pool its KME reports (ETSI status)', st.links && st.links.pool_bits.every(p => p > 0), JSON.stringify(st.links));
    check('testbed feed: the key the devices wrote grows', st.links.generated_bits.every(b => b > 0), st.links.generated_bits);
    const keys = new Set(), blobs = [];
    const topo = JSON.parse((await get(url + 'api/topology')).body);
    for (const j of [st, topo]) { keysOf(j, keys); longStrings(j, blobs); }
    const TB = new Set(['kmes', 'master', 'slave', 'stored_key_count', 'max_key_count', 'key_size', 'capacity_bits', 'rate_bps']);
    const bad = [...keys].filter(k => !ALLOWED.has(k) && !TB.has(k));
    check('testbed feed: only allow-listed keys (counts), no long opaque string', bad.length === 0 && blobs.length === 0, bad.concat(blobs));
    const page = await browser.newPage({viewport: {width: 1400, height: 900}});
    await page.goto(url);
    await page.waitForFunction(() => document.body.dataset.seq > 0, null, {timeout: 10000});
    const n = await page.$$eval('#links [data-link]', es => es.length);
    check('testbed page: every link of the scenario is drawn', n === topo.links.length, n);
    await page.screenshot({path: path.join(outDir, 'dashboard-testbed.png')});
    await page.close();
  }
  tb.kill('SIGTERM');
  const code = await new Promise(r => { if (tb.exitCode !== null) r(tb.exitCode); else tb.on('exit', c => r(c)); });
  check('kagi testbed --serve stops on SIGTERM with exit 0', code === 0, code + ' ' + out.slice(-300));
  fs.rmSync(dir, {recursive: true, force: true});
}

async function benchmark(page, proc) {
  await page.waitForFunction(() => window.kagiPerf && window.kagiPerf.first !== null, null, {timeout: 120000});
  const first = await page.evaluate(() => window.kagiPerf.first);
  await sleep(10000);
  const p = await page.evaluate(() => ({u: window.kagiPerf.updates, f: window.kagiPerf.frames, b: window.kagiPerf.bytes}));
  const med = a => { const s = a.slice().sort((x, y) => x - y); return s.length ? s[Math.floor(s.length / 2)] : NaN; };
  const p95 = a => { const s = a.slice().sort((x, y) => x - y); return s.length ? s[Math.floor(s.length * 0.95)] : NaN; };
  const counts = await page.evaluate(() => ({links: (window.kagiPerf && document.querySelectorAll('#links path').length), nodes: document.querySelectorAll('[data-node]').length}));
  const marks = await page.evaluate(() => [window.kagiPerf.topology, window.kagiPerf.built, window.kagiPerf.firstState]);
  console.log(`first render: ${first.toFixed(0)} ms after navigation start (topology fetched at ${marks[0].toFixed(0)} ms, map built at ${marks[1].toFixed(0)} ms, first state at ${marks[2].toFixed(0)} ms)`);
  console.log(`updates: ${p.u.length} in 10 s; script per update median ${med(p.u).toFixed(1)} ms, p95 ${p95(p.u).toFixed(1)} ms`);
  console.log(`update to next frame: median ${med(p.f).toFixed(1)} ms, p95 ${p95(p.f).toFixed(1)} ms; ${(p.b / Math.max(1, p.u.length + 1) / 1024).toFixed(0)} KiB per state`);
  console.log(`drawn: ${counts.nodes} node elements, ${counts.links} link paths`);
  await page.screenshot({path: path.join(outDir, 'dashboard-bench.png')});
  check('first render under 1 s', first < 1000, first);
  check('median update under 50 ms', med(p.f) < 50, med(p.f));
  return finish(proc);
}

async function finish(proc) {
  if (proc.exitCode === null) {
    proc.kill('SIGTERM');
    const code = await new Promise(r => { if (proc.exitCode !== null) r(proc.exitCode); else proc.on('exit', c => r(c)); });
    check('kagi sim --serve stops on SIGTERM with exit 0', code === 0, code);
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch(e => { console.log('FAIL unexpected: ' + (e && e.stack || e)); failed++; console.log(`${passed} passed, ${failed} failed`); process.exit(1); });
