// Plays a stream in Debian's headless Chromium through the agent's viewer page
// (/streams/<name>, WHEP), as a person would open it.
// Usage: node viewer_page.mjs PAGE_URL API_BASE OUT_DIR
//   PAGE_URL like https://127.0.0.1:8501/streams/test; API_BASE like http://127.0.0.1:8500/.
// Exits non-zero on the first failed assertion; every wait is bounded.
import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [pageUrl, api, outDir] = process.argv.slice(2);
if (!pageUrl || !api || !outDir) {
  console.error('usage: node viewer_page.mjs PAGE_URL API_BASE OUT_DIR');
  process.exit(2);
}
const CHROMIUM = process.env.OUTPOST_CHROMIUM || '/usr/bin/chromium';
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
const watchdog = setTimeout(() => { console.error('FAIL: took longer than 90 s'); process.exit(3); }, 90_000);
const check = (ok, what) => { if (!ok) throw new Error(`assertion failed: ${what}`); };
const stream = async () => (await (await fetch(new URL('v1/streams/' + pageUrl.split('/').pop(), api))).json());

mkdirSync(outDir, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'outpost-viewer-profile-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
      '--autoplay-policy=no-user-gesture-required'],
  });
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const before = await stream();
  check(before.State === 'idle' && before.Viewers === 0, `unwatched, the stream is idle: ${JSON.stringify(before)}`);
  const opened = Date.now();
  await page.goto(pageUrl, { waitUntil: 'load', timeout: 15_000 });
  let v = null;
  for (const deadline = Date.now() + 20_000; Date.now() < deadline;) {
    v = await page.evaluate(() => {
      const el = document.querySelector('video');
      return { frames: el.getVideoPlaybackQuality().totalVideoFrames, w: el.videoWidth, h: el.videoHeight,
        state: document.getElementById('state').textContent,
        audioTracks: el.srcObject ? el.srcObject.getAudioTracks().length : 0,
        audioPackets: Number(el.dataset.audioPackets || 0) };
    });
    if (v.frames > 30) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  log('video:', JSON.stringify(v), `first frames within ${Date.now() - opened} ms of opening`);
  check(v.frames > 30, `more than 30 frames decoded: ${JSON.stringify(v)}`);
  check(v.w === 640 && v.h === 480, `640x480: ${v.w}x${v.h}`);
  check(v.state === 'playing', `the page says playing: ${v.state}`);
  // The tone too: an audio track, its packets counted by the page (once a second).
  for (const deadline = Date.now() + 5_000; Date.now() < deadline && v.audioPackets <= 10;) {
    await new Promise((r) => setTimeout(r, 250));
    v = { ...v, ...(await page.evaluate(() => {
      const el = document.querySelector('video');
      return { audioTracks: el.srcObject ? el.srcObject.getAudioTracks().length : 0,
        audioPackets: Number(el.dataset.audioPackets || 0) };
    })) };
  }
  check(v.audioTracks === 1 && v.audioPackets > 10, `audio received: ${JSON.stringify(v)}`);
  log('audio packets:', v.audioPackets);
  const during = await stream();
  check(during.State === 'playing' && during.Viewers === 1, `watched: playing with one viewer: ${JSON.stringify(during)}`);
  check(during.MeasuredFps > 10, `the agent measures frames: ${during.MeasuredFps}`);
  await page.screenshot({ path: join(outDir, 'viewer-1280x800.png') });
  await page.close();
  // Leaving the page (pagehide sends DELETE) frees the session; the encoder stops.
  let after = null;
  for (const deadline = Date.now() + 15_000; Date.now() < deadline;) {
    after = await stream();
    if (after.Viewers === 0 && after.State === 'idle') break;
    await new Promise((r) => setTimeout(r, 250));
  }
  check(after.Viewers === 0 && after.State === 'idle', `after leaving: no viewer, encoder stopped: ${JSON.stringify(after)}`);
  check(errors.length === 0, `no page errors: ${errors}`);
  log('PASS');
} catch (e) {
  console.error('FAIL:', e.message);
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
