// Watches outpost's WebRTC gateway with Debian's headless Chromium over WHEP, as people would.
// Usage: node viewers.mjs BASE_URL STREAM MAX_VIEWERS [agent]
//   BASE_URL: the test harness's HTTP server (player page at /, WHEP at /whep/, counters at
//   /stats), or with `agent` an outpost agent's HTTP API (WHEP at /whep/, the stream's
//   state at /v1/streams/STREAM; the test player, player.html beside this script, is put
//   into a page of the agent's origin).
// Started by tests/whep.rs; prints one JSON line of figures and PASS, or exits non-zero on the
// first failed check. Every wait is bounded; the whole run is bounded by WATCHDOG_MS.
import { chromium } from 'playwright-core';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [base, stream, maxArg, mode] = process.argv.slice(2);
if (!base || !stream || !maxArg || (mode && mode !== 'agent')) {
  console.error('usage: node viewers.mjs BASE_URL STREAM MAX_VIEWERS [agent]');
  process.exit(2);
}
const AGENT = mode === 'agent';
const PLAYER = readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'player.html'), 'utf8');
const MAX = Number(maxArg);
const CHROMIUM = process.env.OUTPOST_CHROMIUM || '/usr/bin/chromium';
const WATCHDOG_MS = 120_000;
// A viewer must pass this many decoded frames...
const FRAMES = 30;
// ...within this long of its offer.
const DECODE_MS = 20_000;
// A late viewer's first decoded frame, after it connected.
const FIRST_FRAME_MS = 1_000;
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
const watchdog = setTimeout(() => {
  console.error(`FAIL: the browser test took longer than ${WATCHDOG_MS} ms`);
  process.exit(3);
}, WATCHDOG_MS);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function check(ok, what) {
  if (!ok) throw new Error(`assertion failed: ${what}`);
}

// The gateway's counters ({ viewers, ... }), or the agent's view of the stream.
async function stats() {
  const path = AGENT ? `/v1/streams/${stream}` : '/stats';
  const r = await fetch(new URL(path, base), { signal: AbortSignal.timeout(5_000) });
  const s = await r.json();
  return AGENT ? { viewers: s.Viewers, state: s.State, fps: s.MeasuredFps } : s;
}

// Waits (polling every 100 ms) until the page's viewer decoded more than FRAMES frames.
async function decoded(page, name) {
  const end = Date.now() + DECODE_MS;
  let s;
  while (Date.now() < end) {
    s = await page.evaluate(() => window.viewerStats());
    if (s.connection === 'failed' || s.connection === 'closed') break;
    if (s.framesDecoded > FRAMES) return s;
    await sleep(100);
  }
  throw new Error(`${name}: not ${FRAMES} decoded frames within ${DECODE_MS} ms: ${JSON.stringify(s)}`);
}

const profile = mkdtempSync(join(tmpdir(), 'outpost-whep-profile-'));
let context;
const figures = {};
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const open = async () => {
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    page.on('pageerror', (e) => log('page error:', e.message));
    if (AGENT) {
      // A page of the agent's origin (WHEP is same-origin), showing the test player.
      await page.goto(new URL(`/v1/streams/${stream}`, base).href);
      await page.setContent(PLAYER);
    } else {
      await page.goto(base);
    }
    return page;
  };
  const endpoint = `/whep/${stream}`;

  // Requests a browser can get wrong, from the player page (same origin).
  const probe = await open();
  const bad = await probe.evaluate(async (endpoint) => {
    const post = async (url, type, body) => {
      const headers = type ? { 'Content-Type': type } : {};
      const r = await fetch(url, { method: 'POST', headers, body });
      return { status: r.status, text: await r.text() };
    };
    return {
      badSdp: await post(endpoint, 'application/sdp', 'v=0\r\nthis is not an offer\r\n'),
      wrongType: await post(endpoint, 'text/plain', 'v=0\r\n'),
      unknownStream: await post('/whep/no-such-stream', 'application/sdp', 'v=0\r\n'),
    };
  }, endpoint);
  check(bad.badSdp.status === 400 && /SDP/.test(bad.badSdp.text), `bad SDP is 400: ${JSON.stringify(bad.badSdp)}`);
  check(bad.wrongType.status === 415, `text/plain is 415: ${JSON.stringify(bad.wrongType)}`);
  check(bad.unknownStream.status === 404, `unknown stream is 404: ${JSON.stringify(bad.unknownStream)}`);
  const vp9 = await probe.evaluate((e) => window.watch(e, { videoCodecs: ['video/vp9'] }), endpoint);
  check(vp9.status === 400 && /VP8/.test(vp9.error), `a VP9-only offer is 400: ${JSON.stringify(vp9)}`);
  log('refusals: bad SDP 400, text/plain 415, unknown stream 404, VP9-only 400:', vp9.error.trim());

  // MAX viewers at once, all decoding 640x480.
  const pages = [];
  for (let i = 0; i < MAX; i++) pages.push(await open());
  const started = Date.now();
  const joined = await Promise.all(pages.map((p) => p.evaluate((e) => window.watch(e), endpoint)));
  for (const [i, j] of joined.entries()) {
    check(j.status === 201, `viewer ${i} POST is 201: ${JSON.stringify(j)}`);
    check(j.location && j.location.startsWith(`${endpoint}/`), `viewer ${i} Location: ${j.location}`);
    check(/a=ice-lite/.test(j.answer), `viewer ${i} answer is ICE-lite`);
  }
  const all = await Promise.all(pages.map((p, i) => decoded(p, `viewer ${i}`)));
  figures.viewers = MAX;
  figures.allDecodedMs = Date.now() - started;
  for (const [i, s] of all.entries()) {
    check(s.width === 640 && s.height === 480, `viewer ${i} decodes 640x480, not ${s.width}x${s.height}`);
    log(`viewer ${i}: ${s.framesDecoded} frames ${s.width}x${s.height}, audio packets ${s.audioPackets}, pair ${s.pair}`);
  }
  // Audio flows too (50 packets a second).
  await sleep(500);
  for (const [i, p] of pages.entries()) {
    const s = await p.evaluate(() => window.viewerStats());
    check(s.audioPackets > 10, `viewer ${i} receives audio: ${JSON.stringify(s)}`);
  }
  figures.pair = all[0].pair;
  let st = await stats();
  check(st.viewers === MAX, `the gateway has ${MAX} viewers: ${JSON.stringify(st)}`);

  // One more is refused while MAX watch.
  const extra = await probe.evaluate((e) => window.watch(e), endpoint);
  check(extra.status === 503, `viewer ${MAX + 1} is refused with 503: ${JSON.stringify(extra)}`);
  log('viewer limit:', extra.status, extra.error.trim());

  // PATCH (trickle, ICE restart) is not supported.
  const patch = await pages[0].evaluate(async () => {
    const r = await fetch(window.viewer.location, {
      method: 'PATCH', headers: { 'Content-Type': 'application/trickle-ice-sdpfrag' }, body: 'a=end-of-candidates\r\n',
    });
    return { status: r.status, allow: r.headers.get('Allow'), text: await r.text() };
  });
  check(patch.status === 405 && patch.allow === 'DELETE', `PATCH is 405 with Allow: DELETE: ${JSON.stringify(patch)}`);

  // DELETE frees the session: a second DELETE finds nothing, and the gateway has one less.
  const last = pages.pop();
  const location = await last.evaluate(() => window.viewer.location);
  const del = await last.evaluate(() => window.leave());
  check(del === 200, `DELETE is 200, not ${del}`);
  const again = await last.evaluate(async (l) => (await fetch(l, { method: 'DELETE' })).status, location);
  check(again === 404, `a second DELETE is 404, not ${again}`);
  st = await stats();
  check(st.viewers === MAX - 1, `DELETE freed the session: ${JSON.stringify(st)}`);
  await last.close();

  // A late viewer takes the freed place and sees a picture within FIRST_FRAME_MS of connecting,
  // long before the encoder's own next keyframe: its KeyframeWanted got one made.
  const late = await open();
  const lj = await late.evaluate((e) => window.watch(e), endpoint);
  check(lj.status === 201, `the late viewer's POST is 201: ${JSON.stringify(lj)}`);
  const ls = await decoded(late, 'late viewer');
  const firstFrame = ls.firstFrameAt - ls.connectedAt;
  figures.lateFirstFrameMs = Math.round(firstFrame);
  log(`late viewer: connected, first frame ${firstFrame.toFixed(0)} ms later; ${ls.framesDecoded} frames`);
  check(ls.connectedAt !== null && ls.firstFrameAt !== null, `late viewer timings: ${JSON.stringify(ls)}`);
  check(firstFrame < FIRST_FRAME_MS, `the late viewer's first frame came ${firstFrame} ms after connecting`);
  pages.push(late);

  // Everybody leaves.
  for (const p of pages) {
    const s = await p.evaluate(() => window.leave());
    check(s === 200, `DELETE is 200, not ${s}`);
  }
  st = await stats();
  check(st.viewers === 0, `every session is freed: ${JSON.stringify(st)}`);
  figures.stats = st;
  console.log(JSON.stringify(figures));
  console.log('PASS');
} catch (e) {
  console.error(`FAIL: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
