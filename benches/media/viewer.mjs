#!/usr/bin/env node
// Headless Chromium WebRTC viewers (playwright-core) for outpost's WHEP endpoint or Janus's
// streaming plugin: one browser, one page per viewer, each decoding and rendering the video
// in a <video> element.
//
// Signalling (inside the page, fetch + RTCPeerConnection), one of:
//   --whep URL    recvonly audio + video offer, wait for ICE gathering, POST it as
//                 application/sdp, expect 201 + Location + answer; DELETE Location at the end.
//   --janus URL   Janus HTTP API: create, attach janus.plugin.streaming, watch --mountpoint,
//                 long-poll for the offer, answer with "start"; hangup + destroy at the end.
// Only 127.0.0.0/8 and ::1 candidates are sent.
//
// Each viewer then polls getStats() (every 25 ms until its first decoded frame, then every
// 200 ms) until video framesDecoded > --frames. Printed per viewer: time to the first
// decoded frame from the page's creation ("firstFrameMs") and from the start of signalling
// ("firstFrameFromSignallingMs"), the signalling time, and with --hold the figures over
// the hold window. Exit status: 0 when every viewer passed --frames within --timeout
// seconds, 1 otherwise, 2 on bad usage or when Chromium does not launch.
//
// Usage: node viewer.mjs (--whep URL | --janus URL [--mountpoint ID]) [--viewers N]
//          [--frames 30] [--timeout 20] [--hold S] [--ready-file PATH] [--json] [--debug]
// Env: CHROMIUM (default /usr/bin/chromium), MEDIA_BENCH_DEPS (folder whose node_modules
//      holds playwright-core; default: .deps beside this file).

import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const DEPS = process.env.MEDIA_BENCH_DEPS || join(HERE, '.deps');
const { chromium } = createRequire(join(DEPS, 'package.json'))('playwright-core');

// ---- args -------------------------------------------------------------------------------
const opts = { whep: '', janus: '', mountpoint: 1, viewers: 1, frames: 30, timeout: 20, hold: 0,
  readyFile: '', json: false, debug: false };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const v = () => { if (i + 1 >= argv.length) { console.error(`viewer.mjs: ${a} needs a value`); process.exit(2); } return argv[++i]; };
  switch (a) {
    case '--whep': opts.whep = v(); break;
    case '--janus': opts.janus = v(); break;
    case '--mountpoint': opts.mountpoint = Number(v()); break;
    case '--viewers': opts.viewers = Number(v()); break;
    case '--frames': opts.frames = Number(v()); break;
    case '--timeout': opts.timeout = Number(v()); break;
    case '--hold': opts.hold = Number(v()); break;
    case '--ready-file': opts.readyFile = v(); break;
    case '--json': opts.json = true; break;
    case '--debug': opts.debug = true; break;
    default: console.error(`viewer.mjs: unknown argument ${a}`); process.exit(2);
  }
}
if (!opts.whep === !opts.janus) { console.error('viewer.mjs: give exactly one of --whep URL, --janus URL'); process.exit(2); }
if (!(opts.viewers >= 1 && opts.viewers <= 64) || !(opts.hold >= 0 && opts.hold <= 3600)) {
  console.error('viewer.mjs: --viewers must be 1-64 and --hold 0-3600'); process.exit(2);
}

// The harness's Chromium flags, unchanged. The profile (--user-data-dir) is a fresh temporary
// folder, given to Playwright as launchPersistentContext(dir) since it refuses it in args.
const LAUNCH_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
];

// ---- in-page code (serialised into each page by page.evaluate) --------------------------
async function pageStart(cfg) {
  const t0 = performance.now();
  window.__t0 = t0;
  window.__t0Epoch = Date.now();
  const log = (m) => (window.__log = window.__log || []).push(`${Math.round(performance.now() - t0)}ms ${m}`);
  const keepLoopback = (sdp) => sdp.split('\r\n').filter((l) => {
    if (!l.startsWith('a=candidate:')) return true;
    const addr = l.split(' ')[4];
    return /^127\./.test(addr) || addr === '::1';
  }).join('\r\n');
  const gathered = (pc) => new Promise((res) => {
    if (pc.iceGatheringState === 'complete') return res();
    const t = setTimeout(res, 3000);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') { clearTimeout(t); res(); }
    });
  });
  const pc = new RTCPeerConnection({ iceServers: [] });
  window.__pc = pc;
  pc.addEventListener('iceconnectionstatechange', () => log(`ice ${pc.iceConnectionState}`));
  const stream = new MediaStream();
  pc.addEventListener('track', (e) => {
    stream.addTrack(e.track);
    const v = document.getElementById('v');
    if (v.srcObject !== stream) { v.srcObject = stream; v.play().catch(() => {}); }
  });

  if (cfg.whep) {
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const offer = keepLoopback(pc.localDescription.sdp);
    log('POST offer');
    const r = await fetch(cfg.whep, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: offer });
    const body = await r.text();
    if (r.status !== 201) throw new Error(`WHEP POST: ${r.status} ${body.trim().slice(0, 200)}`);
    const loc = r.headers.get('Location');
    if (!loc) throw new Error('WHEP POST: 201 without a Location header');
    window.__whepLocation = new URL(loc, cfg.whep).href;
    await pc.setRemoteDescription({ type: 'answer', sdp: body });
    window.__remoteCandidates = body.split('\r\n').filter((l) => l.startsWith('a=candidate:'));
  } else {
    const tx = () => Math.random().toString(36).slice(2, 12);
    // text/plain keeps the POSTs "simple" CORS requests; Janus parses the body as JSON anyway.
    const post = async (url, b) => {
      const r = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'text/plain' },
        body: JSON.stringify({ ...b, transaction: tx() }) });
      const j = await r.json();
      if (j.janus === 'error') throw new Error(`janus error ${j.error && j.error.code}: ${j.error && j.error.reason}`);
      return j;
    };
    const sess = `${cfg.janus}/${(await post(cfg.janus, { janus: 'create' })).data.id}`;
    const handle = `${sess}/${(await post(sess, { janus: 'attach', plugin: 'janus.plugin.streaming' })).data.id}`;
    window.__janus = { sess, handle };
    await post(handle, { janus: 'message', body: { request: 'watch', id: cfg.mountpoint } });
    let offer = null;
    const deadline = performance.now() + cfg.timeoutMs;
    while (!offer && performance.now() < deadline) {
      let evs = await (await fetch(`${sess}?maxev=10&rid=${Date.now()}`)).json();
      if (!Array.isArray(evs)) evs = [evs];
      for (const ev of evs) {
        const d = ev.janus === 'event' && ev.plugindata && ev.plugindata.data;
        if (d && d.error) throw new Error(`streaming error ${d.error_code}: ${d.error}`);
        if (d && ev.jsep && ev.jsep.type === 'offer') offer = ev.jsep;
      }
    }
    if (!offer) throw new Error('no JSEP offer from Janus');
    window.__keepalive = setInterval(() => { post(sess, { janus: 'keepalive' }).catch(() => {}); }, 20000);
    window.__remoteCandidates = offer.sdp.split('\r\n').filter((l) => l.startsWith('a=candidate:'));
    await pc.setRemoteDescription(offer);
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    await post(handle, { janus: 'message', body: { request: 'start' },
      jsep: { type: 'answer', sdp: keepLoopback(pc.localDescription.sdp) } });
  }
  log('signalled');
  // Watch closely for the first decoded frame (25 ms), in the page so no round trip to node.
  window.__firstFrame = null;
  window.__firstFramePoll = setInterval(async () => {
    const rep = await pc.getStats();
    rep.forEach((s) => {
      if (!window.__firstFrame && s.type === 'inbound-rtp' && s.kind === 'video' && s.framesDecoded > 0) {
        window.__firstFrame = { sinceStartMs: Math.round(performance.now() - t0), epochMs: Date.now() };
        clearInterval(window.__firstFramePoll);
      }
    });
  }, 25);
  return { signallingMs: Math.round(performance.now() - t0), t0Epoch: window.__t0Epoch };
}

async function pageStats() {
  const pc = window.__pc;
  if (!pc) return null;
  const rep = await pc.getStats();
  const out = { video: null, audio: null, pair: null, firstFrame: window.__firstFrame };
  const byId = new Map();
  rep.forEach((s) => byId.set(s.id, s));
  rep.forEach((s) => {
    if (s.type === 'inbound-rtp' && (s.kind === 'video' || s.kind === 'audio')) {
      out[s.kind] = {
        packetsReceived: s.packetsReceived, packetsLost: s.packetsLost, jitter: s.jitter,
        jitterBufferDelay: s.jitterBufferDelay, jitterBufferEmittedCount: s.jitterBufferEmittedCount,
        framesDecoded: s.framesDecoded, framesDropped: s.framesDropped, frameWidth: s.frameWidth,
        frameHeight: s.frameHeight, freezeCount: s.freezeCount, nackCount: s.nackCount, pliCount: s.pliCount,
      };
    }
    if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
      const l = byId.get(s.localCandidateId), r = byId.get(s.remoteCandidateId);
      out.pair = { local: l && `${l.address}:${l.port}/${l.candidateType}`,
        remote: r && `${r.address}:${r.port}/${r.candidateType}`, rtt: s.currentRoundTripTime };
    }
  });
  return out;
}

async function pageStop() {
  clearInterval(window.__keepalive);
  clearInterval(window.__firstFramePoll);
  try { if (window.__pc) window.__pc.close(); } catch (e) { /* ignore */ }
  const tx = () => Math.random().toString(36).slice(2, 12);
  try {
    if (window.__whepLocation) await fetch(window.__whepLocation, { method: 'DELETE' });
    if (window.__janus) {
      for (const [url, req] of [[window.__janus.handle, 'hangup'], [window.__janus.sess, 'destroy']]) {
        await fetch(url, { method: 'POST', headers: { 'Content-Type': 'text/plain' },
          body: JSON.stringify({ janus: req, transaction: tx() }) });
      }
    }
  } catch (e) { /* best effort */ }
}

// ---- node side ----------------------------------------------------------------------------
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const jbMean = (v) => (v && v.jitterBufferEmittedCount ? (1000 * v.jitterBufferDelay) / v.jitterBufferEmittedCount : null);

function browserPid() {  // the browser is a direct child of this node process
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]) === process.pid) return Number(d);
    } catch (e) { /* raced */ }
  }
  return null;
}

const profileDir = mkdtempSync(join(tmpdir(), 'media-bench-profile-'));
let context = null;
const cleanup = async () => {
  try { if (context) await context.close(); } catch (e) { /* ignore */ }
  context = null;
  try { rmSync(profileDir, { recursive: true, force: true }); } catch (e) { /* ignore */ }
};
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, async () => { await cleanup(); process.exit(130); });

try {
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: LAUNCH_ARGS,
    viewport: { width: 640, height: 480 },
  });
} catch (e) {
  console.error(`viewer.mjs: chromium launch failed: ${e.message}`);
  await cleanup();
  process.exit(2);
}
const bpid = browserPid();
let cmdline = '';
try { cmdline = readFileSync(`/proc/${bpid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' '); } catch (e) { /* ignore */ }
console.log(`chromium-version: ${context.browser() ? context.browser().version() : 'n/a'}`);
console.log(`chromium-cmdline: ${cmdline.split(profileDir).join('<fresh-tmp-profile>')}`);

const HTML = '<!doctype html><html><body style="margin:0;background:#000">' +
  '<video id="v" autoplay muted playsinline width="640" height="480"></video></body></html>';

async function runViewer(i) {
  const res = { viewer: i, ok: false, error: null, signallingMs: null, firstFrameMs: null,
    firstFrameFromSignallingMs: null, thresholdMs: null, stats: null, page: null, window: null };
  const tStart = Date.now();
  const cfg = { whep: opts.whep, janus: opts.janus, mountpoint: opts.mountpoint, timeoutMs: opts.timeout * 1000 };
  let timer;
  try {
    const page = await context.newPage();
    res.page = page;
    // outpost's WHEP replies carry no CORS headers, so a page of another origin (about:blank
    // included) cannot POST application/sdp to it: the page takes the WHEP endpoint's origin
    // first (a GET there, whatever its status), as a player served by the server itself would.
    // Janus's HTTP transport allows any origin, so its pages stay on about:blank.
    if (opts.whep) await page.goto(opts.whep, { timeout: opts.timeout * 1000 });
    await page.setContent(HTML);
    const started = await Promise.race([
      page.evaluate(pageStart, cfg),
      new Promise((_, rej) => { timer = setTimeout(() => rej(new Error('signalling timed out')), opts.timeout * 1000); }),
    ]);
    res.signallingMs = started.signallingMs;
    while (Date.now() - tStart < opts.timeout * 1000) {
      const s = await page.evaluate(pageStats);
      res.stats = s;
      if (s && s.firstFrame && res.firstFrameMs == null) {
        res.firstFrameMs = s.firstFrame.epochMs - tStart;
        res.firstFrameFromSignallingMs = s.firstFrame.sinceStartMs;
      }
      if (((s && s.video && s.video.framesDecoded) || 0) > opts.frames) {
        res.ok = true; res.thresholdMs = Date.now() - tStart; break;
      }
      await sleep(200);
    }
    if (!res.ok) res.error = `framesDecoded=${(res.stats && res.stats.video && res.stats.video.framesDecoded) || 0} after ${opts.timeout}s`;
  } catch (e) {
    res.error = e.message.split('\n')[0];
  } finally {
    clearTimeout(timer);
  }
  return res;
}

let allOk = false;
try {
  const results = await Promise.all(Array.from({ length: opts.viewers }, (_, i) => runViewer(i)));
  allOk = results.every((r) => r.ok);
  console.log(`viewers-ready: ${results.filter((r) => r.ok).length}/${opts.viewers}`);
  for (const r of results) {
    if ((r.ok && !opts.debug) || !r.page) continue;
    try {
      const dbg = await r.page.evaluate(() => ({ log: window.__log, remote: window.__remoteCandidates }));
      console.error(`viewer ${r.viewer} debug: ${JSON.stringify(dbg)}`);
    } catch (e) { /* ignore */ }
  }
  if (opts.readyFile && allOk) writeFileSync(opts.readyFile, `${Date.now()}\n`);
  if (opts.hold > 0 && allOk) {
    const before = await Promise.all(results.map((r) => r.page.evaluate(pageStats)));
    const tHold = Date.now();
    await sleep(opts.hold * 1000);
    const after = await Promise.all(results.map((r) => r.page.evaluate(pageStats)));
    const secs = (Date.now() - tHold) / 1000;
    results.forEach((r, k) => {
      const d = (kind, f) => {
        const a = after[k] && after[k][kind], b = before[k] && before[k][kind];
        return a && b && a[f] != null && b[f] != null ? a[f] - b[f] : null;
      };
      r.window = { seconds: Number(secs.toFixed(2)), fps: Number((d('video', 'framesDecoded') / secs).toFixed(2)),
        videoPackets: d('video', 'packetsReceived'), videoLost: d('video', 'packetsLost'),
        audioPackets: d('audio', 'packetsReceived'), framesDropped: d('video', 'framesDropped'),
        freezes: d('video', 'freezeCount'),
        jitterBufferMeanMs: d('video', 'jitterBufferEmittedCount')
          ? (1000 * d('video', 'jitterBufferDelay')) / d('video', 'jitterBufferEmittedCount') : null };
      r.stats = after[k];
    });
  }
  for (const r of results) {
    const { page, ...rec } = r;
    rec.videoJitterBufferMeanMs = jbMean(r.stats && r.stats.video);
    if (opts.json) {
      console.log(JSON.stringify(rec));
    } else {
      const v = (r.stats && r.stats.video) || {};
      console.log(`viewer ${r.viewer}: ${r.ok ? 'OK' : 'FAIL'} framesDecoded=${v.framesDecoded ?? 0}` +
        ` size=${v.frameWidth ?? '?'}x${v.frameHeight ?? '?'} signallingMs=${r.signallingMs}` +
        ` firstFrameMs=${r.firstFrameMs} (from signalling ${r.firstFrameFromSignallingMs})` +
        ` thresholdMs=${r.thresholdMs} windowFps=${r.window ? r.window.fps : 'n/a'}` +
        ` video=${JSON.stringify(v)} audioPackets=${((r.stats && r.stats.audio) || {}).packetsReceived ?? 0}` +
        ` pair=${r.stats && r.stats.pair ? `${r.stats.pair.local} <-> ${r.stats.pair.remote}` : 'none'}` +
        (r.error ? ` | error: ${r.error}` : ''));
    }
  }
  await Promise.all(results.map((r) => (r.page ? r.page.evaluate(pageStop).catch(() => {}) : null)));
} finally {
  await cleanup();
}
process.exit(allOk ? 0 : 1);
