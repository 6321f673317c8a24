// Opens outpost's status page in Debian's headless Chromium and checks that it shows the
// board profile the agent runs with and the encoder of each codec and stream.
// Usage: node status_board.mjs PAGE_URL OUT_DIR BOARD H264 VP8 STREAM STREAM_ENCODER
//   (PAGE_URL like https://127.0.0.1:8501/; BOARD the profile name; H264 and VP8 the
//   encoder lines the Node card must show, such as "H.264: x264enc (software)"; STREAM a
//   stream and STREAM_ENCODER its encoder line, such as "encoder x264enc (software)")
// Started by tests/boards.rs against a real `outpost agent -board ...`; exits non-zero on
// the first failed check. Every wait is bounded; the whole run by WATCHDOG_MS.
import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [pageUrl, outDir, board, h264, vp8, stream, streamEncoder] = process.argv.slice(2);
if (!streamEncoder) {
  console.error('usage: node status_board.mjs PAGE_URL OUT_DIR BOARD H264 VP8 STREAM STREAM_ENCODER');
  process.exit(2);
}
const CHROMIUM = process.env.OUTPOST_CHROMIUM || '/usr/bin/chromium';
const WATCHDOG_MS = 60_000;
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
const watchdog = setTimeout(() => {
  console.error(`FAIL: the browser test took longer than ${WATCHDOG_MS} ms`);
  process.exit(3);
}, WATCHDOG_MS);

mkdirSync(outDir, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'outpost-boards-profile-'));
const errors = [];
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    viewport: { width: 1280, height: 800 },
    // The agent's self-signed certificate.
    ignoreHTTPSErrors: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(10_000);
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));

  const shown = () => page.evaluate((name) => ({
    board: document.querySelector('#f-board')?.textContent || '',
    encoders: [...document.querySelectorAll('#f-encoders > [data-codec]')].map((d) => ({
      codec: d.dataset.codec,
      line: d.firstChild?.textContent || '',
      reason: d.getAttribute('title') || '',
    })),
    stream: document.querySelector(`#stream-list > li[data-stream="${name}"] [data-kind=encoder]`)?.textContent || '',
  }), stream);
  async function until(what, ok, ms = 15_000) {
    const start = Date.now();
    let s;
    while (Date.now() - start < ms) {
      s = await shown();
      if (ok(s)) return s;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`within ${ms} ms: ${what}; the page showed ${JSON.stringify(s, null, 1)}`);
  }

  await page.goto(pageUrl, { waitUntil: 'load' });
  const s = await until('the board, both codecs\' encoders and the stream\'s encoder show',
    (s) => s.board.startsWith(board) && s.encoders.length === 2 && s.stream !== '');
  log('board:', s.board);
  for (const e of s.encoders) log(`encoder ${e.codec}: ${e.line} (${e.reason})`);
  log(`stream ${stream}:`, s.stream);
  const line = (codec) => s.encoders.find((e) => e.codec === codec)?.line;
  if (line('h264') !== h264) throw new Error(`H.264 shows ${JSON.stringify(line('h264'))}, expected ${JSON.stringify(h264)}`);
  if (line('vp8') !== vp8) throw new Error(`VP8 shows ${JSON.stringify(line('vp8'))}, expected ${JSON.stringify(vp8)}`);
  if (s.stream !== streamEncoder) throw new Error(`stream ${stream} shows ${JSON.stringify(s.stream)}, expected ${JSON.stringify(streamEncoder)}`);
  if (s.encoders.some((e) => !e.reason)) throw new Error('an encoder line has no reason');
  await page.screenshot({ path: join(outDir, 'status-board.png'), fullPage: true });
  if (errors.length) throw new Error(`the page reported errors:\n${errors.join('\n')}`);
  console.log('PASS');
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
