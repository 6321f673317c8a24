// Drives Debian's headless Chromium through outpost's status page, as a person would.
// Usage: node status_page.mjs BASE_URL OUT_DIR DNS_ADDR [PAGE_URL]
//   (BASE_URL like http://127.0.0.1:8500/, the API the test drives; DNS_ADDR like
//   127.0.0.1:8600; PAGE_URL, default BASE_URL, the page the browser opens, such as the
//   agent's HTTPS port with its self-signed certificate)
// Started by tests/ui.rs against a real `outpost agent -dev`; exits non-zero on the first
// failed assertion. Every wait is bounded; the whole run is bounded by WATCHDOG_MS.
import { chromium } from 'playwright-core';
import { createSocket } from 'node:dgram';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, outDir, dnsAddr, pageArg] = process.argv.slice(2);
const pageBase = pageArg || base;
if (!base || !outDir || !dnsAddr) {
  console.error('usage: node status_page.mjs BASE_URL OUT_DIR DNS_ADDR');
  process.exit(2);
}
const CHROMIUM = process.env.OUTPOST_CHROMIUM || '/usr/bin/chromium';
const WATCHDOG_MS = 100_000;
// How soon a catalog change must show on the page without a reload.
const LIVE_MS = 5_000;
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);

const watchdog = setTimeout(() => {
  console.error(`FAIL: the browser test took longer than ${WATCHDOG_MS} ms`);
  process.exit(3);
}, WATCHDOG_MS);

async function api(method, path, body) {
  const r = await fetch(new URL(path, base), {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  if (!r.ok) throw new Error(`${method} ${path}: HTTP ${r.status}: ${await r.text()}`);
  const text = await r.text();
  return text ? JSON.parse(text) : null;
}

// One DNS query (A of `name`) over UDP; resolves with the reply's answer count.
function dnsQuery(name) {
  const [host, port] = [dnsAddr.slice(0, dnsAddr.lastIndexOf(':')), Number(dnsAddr.slice(dnsAddr.lastIndexOf(':') + 1))];
  const labels = name.split('.').filter(Boolean).map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const q = Buffer.concat([Buffer.from([0x4f, 0x50, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
  const sock = createSocket('udp4');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { sock.close(); reject(new Error(`no DNS reply from ${dnsAddr}`)); }, 3_000);
    sock.on('message', (m) => { clearTimeout(timer); sock.close(); resolve(m.readUInt16BE(6)); });
    sock.send(q, port, host);
  });
}

function check(ok, what) {
  if (!ok) throw new Error(`assertion failed: ${what}`);
}

mkdirSync(outDir, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'outpost-ui-profile-'));
const errors = [];
// While the test takes the browser offline, failed requests are expected.
let offline = false;
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    viewport: { width: 1280, height: 800 },
    // The agent's self-signed certificate (a box on a LAN has no public name to certify).
    ignoreHTTPSErrors: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(10_000);
  page.on('console', (m) => {
    if (m.type() === 'error' && !(offline && /Failed to load resource/.test(m.text()))) errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  // Leaving a page aborts its held blocking queries: that is not a failure.
  page.on('requestfailed', (r) => {
    const why = r.failure()?.errorText;
    if (why !== 'net::ERR_ABORTED' && !offline) errors.push(`request failed: ${r.url()} ${why}`);
  });
  page.on('response', (r) => { if (r.status() >= 400) errors.push(`HTTP ${r.status()} for ${r.url()}`); });

  // The page reads what it shows from the DOM; `state` collects it in one evaluation.
  const state = () => page.evaluate(() => {
    const q = (s, el = document) => el.querySelector(s);
    const services = {};
    for (const li of document.querySelectorAll('#services > li')) {
      const pills = (kind) => Object.fromEntries([...li.querySelectorAll(`[data-kind=${kind}] .pill`)]
        .map((p) => [p.dataset.state, p.textContent]));
      services[li.dataset.service] = {
        status: li.dataset.status,
        tags: [...li.querySelectorAll('.tag')].map((t) => t.textContent),
        instances: pills('instances'),
        checks: pills('checks'),
        outputs: [...li.querySelectorAll('.out')].map((o) => o.textContent),
      };
    }
    const num = (id) => ({ text: q('#' + id).textContent, value: q('#' + id).dataset.value });
    return {
      node: q('#node-name').textContent,
      dc: q('#node-dc').textContent,
      conn: q('#conn-text').textContent,
      services,
      members: [...document.querySelectorAll('#members > li')].map((li) => [li.dataset.member, li.dataset.status]),
      counters: { kv: num('n-kv'), dns: num('n-dns'), http: num('n-http'), services: num('n-services') },
      streams: [...document.querySelectorAll('#stream-list > li')].map((li) => ({
        name: li.dataset.stream,
        state: li.dataset.state,
        href: li.querySelector('a')?.getAttribute('href'),
      })),
      marker: window.__outpostTestMarker,
      xss: window.__xss,
      injected: document.querySelectorAll('#services img, #services script').length,
    };
  });

  // Polls `state` until `ok(s)` holds; fails after `ms` showing the last state.
  async function until(what, ok, ms = LIVE_MS) {
    const start = Date.now();
    let s;
    while (Date.now() - start < ms) {
      s = await state();
      if (ok(s)) return { s, ms: Date.now() - start };
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`within ${ms} ms: ${what}; the page showed ${JSON.stringify(s, null, 1)}`);
  }

  const self = await api('GET', 'v1/agent/self');
  const { NodeName: nodeName, Datacenter: dc } = self.Config;
  log(`agent ${nodeName} (${dc}) at ${base}`);

  await page.goto(pageBase, { waitUntil: 'load', timeout: 15_000 });
  const isNum = (c) => c.value !== '' && Number.isFinite(Number(c.value)) && /\d/.test(c.text);
  const first = await until('the node, its datacenter, the dev services with their health and numeric counters',
    (s) => s.node === nodeName && s.dc === dc && s.conn === 'live'
      && ['web', 'api', 'db', 'consul'].every((n) => s.services[n]?.status === 'passing'
        && JSON.stringify(s.services[n].instances) === '{"passing":"1 passing"}'
        && JSON.stringify(s.services[n].checks) === '{"passing":"1 passing"}')
      && Object.values(s.counters).every(isNum), 10_000);
  log(`rendered in ${first.ms} ms:`, JSON.stringify(first.s.counters));
  check(first.s.services.web.tags.includes('rails'), 'web shows its tag rails');
  check(first.s.members.some(([n, st]) => n === nodeName && st === 'alive'), 'the node is an alive member');
  const test = first.s.streams.find((s) => s.name === 'test');
  check(test && /streams\/test$/.test(test.href), `the dev test stream is listed with a link to its viewer: ${JSON.stringify(first.s.streams)}`);
  const http0 = Number(first.s.counters.http.value);

  // Live update: a new service shows without a reload.
  await page.evaluate(() => { window.__outpostTestMarker = 'same page'; });
  const hostile = '<img src=x onerror="window.__xss=1">';
  await api('PUT', 'v1/agent/service/register', {
    Name: 'ui-probe', Tags: [hostile], Port: 9000,
    Check: { CheckID: 'ui-probe-ttl', Name: 'ui-probe TTL', TTL: '60s', Status: 'passing' },
  });
  const reg = await until('the registered service ui-probe, passing',
    (s) => s.services['ui-probe']?.status === 'passing' && s.services['ui-probe'].checks.passing === '2 passing');
  log(`ui-probe shown ${reg.ms} ms after its registration`);
  check(reg.s.marker === 'same page', 'the page was not reloaded');
  check(reg.s.services['ui-probe'].tags[0] === hostile, 'a tag with markup shows as text');

  // Its TTL check fails: the service turns critical, again live.
  const note = '<script>window.__xss=2</script>';
  await api('PUT', `v1/agent/check/fail/ui-probe-ttl?note=${encodeURIComponent(note)}`);
  const crit = await until('ui-probe critical after its TTL check failed',
    (s) => s.services['ui-probe']?.status === 'critical'
      && JSON.stringify(s.services['ui-probe'].instances) === '{"critical":"1 critical"}'
      && JSON.stringify(s.services['ui-probe'].checks) === '{"passing":"1 passing","critical":"1 critical"}');
  log(`ui-probe critical ${crit.ms} ms after the check failed`);
  check(crit.s.services['ui-probe'].outputs.includes(note), 'the check output shows as text');
  check(crit.s.xss === undefined && crit.s.injected === 0, 'no markup from the API was run or inserted');
  check(crit.s.services.web.status === 'passing', 'the other services stay passing');

  // The counters refresh by themselves: a DNS query, and the page's own HTTP requests.
  check(await dnsQuery('web.service.consul') === 1, 'the agent answers web.service.consul');
  const more = await until('the DNS counter to count the query and the HTTP counter to grow',
    (s) => Number(s.counters.dns.value) >= 1 && Number(s.counters.http.value) > http0, 8_000);
  log(`DNS queries ${first.s.counters.dns.value} -> ${more.s.counters.dns.value}, HTTP requests ${http0} -> ${more.s.counters.http.value}`);

  // Screenshots: desktop, phone, phone in dark mode (with the critical service open).
  await page.click('li[data-service="ui-probe"] summary');
  const shots = [];
  const shoot = async (name, width, height, colorScheme) => {
    await page.setViewportSize({ width, height });
    await page.emulateMedia({ colorScheme });
    await page.waitForTimeout(150);
    const file = join(outDir, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true, timeout: 10_000 });
    shots.push(file);
  };
  await shoot('desktop-1280x800', 1280, 800, 'light');
  await shoot('phone-390x844', 390, 844, 'light');
  await shoot('phone-390x844-dark', 390, 844, 'dark');
  await shoot('desktop-1280x800-dark', 1280, 800, 'dark');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
  check(overflow <= 0, `no sideways scrolling on a desktop (overflow ${overflow}px)`);
  await page.setViewportSize({ width: 390, height: 844 });
  const phoneOverflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
  check(phoneOverflow <= 0, `no sideways scrolling on a phone (overflow ${phoneOverflow}px)`);

  // Offline and back: the page says so, then catches up with what changed meanwhile.
  offline = true;
  await context.setOffline(true);
  await until('the page to say it is offline', (s) => s.conn === 'offline');
  await api('PUT', 'v1/agent/check/pass/ui-probe-ttl');
  await context.setOffline(false);
  const back = await until('the page live again, with ui-probe passing',
    (s) => s.conn === 'live' && s.services['ui-probe']?.status === 'passing', 10_000);
  offline = false;
  log(`live and up to date ${back.ms} ms after going back online`);

  // The same page at /ui and /ui/ finds the API too.
  for (const path of ['ui', 'ui/']) {
    await page.goto(new URL(path, pageBase).href, { waitUntil: 'load', timeout: 15_000 });
    await until(`the page at /${path} to show the node and ui-probe`,
      (s) => s.node === nodeName && s.services['ui-probe']?.status === 'passing', 10_000);
  }

  check(errors.length === 0, `no console errors or failed requests:\n  ${errors.join('\n  ')}`);
  log(`screenshots: ${shots.join(' ')}`);
  log('PASS');
} catch (e) {
  console.error(`FAIL: ${e.stack || e}`);
  if (errors.length) console.error(`browser errors:\n  ${errors.join('\n  ')}`);
  process.exitCode = 1;
} finally {
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  clearTimeout(watchdog);
}
