#!/usr/bin/env python3
"""Non-decoding WebRTC viewers (aiortc) for outpost's WHEP endpoint or Janus's streaming plugin.

One process holds N peer connections. Only the VP8/Opus decode is skipped (a null decoder
stands in for aiortc's): ICE, DTLS-SRTP, RTCP (receiver reports, NACK, PLI), the jitter
buffer and the VP8 frame re-assembly all run, so the server sees an ordinary receiver while
the client costs far less CPU than a browser. A frame counts once a keyframe has been seen,
i.e. what a decoder could have decoded.

Signalling, one of:
  --whep URL        WHEP: POST the recvonly offer (audio + video, all candidates in it) as
                    application/sdp, expect 201 + Location + the answer; DELETE Location at the end.
  --janus URL       Janus HTTP API: create session, attach janus.plugin.streaming, watch
                    --mountpoint, long-poll for the offer, answer with "start"; hangup/destroy
                    at the end (keepalive every 20 s meanwhile).

Prints one line per viewer (--json: one JSON object each) with the time from its start to
its first decodable frame ("firstFrameMs"), the signalling time, packet counts and, with
--hold, the figures over the hold window. Exit status 0 when every viewer got more than
--frames frames within --timeout seconds, 1 otherwise.

Usage: python viewer_aiortc.py (--whep URL | --janus URL [--mountpoint ID]) [--viewers N]
         [--frames 30] [--timeout 20] [--hold S] [--ready-file PATH] [--json]
"""
import argparse
import asyncio
import json
import random
import string
import sys
import time
from urllib.parse import urljoin

import aiohttp
import aiortc.rtcrtpreceiver as _receiver
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError


class _Marker:
    """What the null decoder hands to the track: the frame's size and whether it is a keyframe."""

    __slots__ = ("size", "key")

    def __init__(self, size, key):
        self.size = size
        self.key = key


class _NullDecoder:
    def __init__(self, codec):
        self.vp8 = codec.name.upper() == "VP8"

    def decode(self, encoded_frame):
        data = encoded_frame.data
        # VP8 frame tag: bit 0 of the first byte is 0 on a keyframe.
        return [_Marker(len(data), self.vp8 and len(data) > 0 and (data[0] & 1) == 0)]


_receiver.get_decoder = _NullDecoder


def _loopback_only(sdp):
    """Keeps only 127.0.0.0/8 and ::1 candidates: nothing is offered on other interfaces."""

    def keep(line):
        if not line.startswith("a=candidate:"):
            return True
        parts = line.split(" ")
        return len(parts) > 4 and (parts[4].startswith("127.") or parts[4] == "::1")

    return "\r\n".join(line for line in sdp.split("\r\n") if keep(line))


class SignallingError(Exception):
    pass


class Viewer:
    def __init__(self, idx, http, opts):
        self.idx = idx
        self.http = http
        self.opts = opts
        self.pc = None
        self.t0 = time.monotonic()
        self.signalling_ms = None   # start -> answer applied
        self.first_frame_ms = None  # start -> first decodable video frame
        self.threshold_ms = None    # start -> more than --frames frames
        self.frames = 0
        self.keyframes = 0
        self.audio_frames = 0
        self.ok = False
        self.error = None
        self._seen_key = False
        self._tasks = []
        # WHEP
        self.location = None
        # Janus
        self.sess_url = None
        self.handle_url = None

    # ---- media ------------------------------------------------------------------------------
    def _new_pc(self):
        # iceServers=[]: aiortc would otherwise add a public STUN server.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

        @pc.on("track")
        def on_track(track):
            self._tasks.append(asyncio.create_task(self._consume(track)))

        return pc

    async def _consume(self, track):
        try:
            while True:
                m = await track.recv()
                if track.kind == "audio":
                    self.audio_frames += 1
                    continue
                if m.key:
                    self.keyframes += 1
                    self._seen_key = True
                if not self._seen_key:
                    continue
                self.frames += 1
                now_ms = round((time.monotonic() - self.t0) * 1000)
                if self.first_frame_ms is None:
                    self.first_frame_ms = now_ms
                if self.threshold_ms is None and self.frames > self.opts.frames:
                    self.threshold_ms = now_ms
        except MediaStreamError:
            pass

    # ---- WHEP -------------------------------------------------------------------------------
    async def _whep_start(self):
        self.pc = self._new_pc()
        self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.addTransceiver("video", direction="recvonly")
        # aiortc gathers every candidate inside setLocalDescription: no trickle needed.
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = _loopback_only(self.pc.localDescription.sdp)
        async with self.http.post(self.opts.whep, data=offer.encode(),
                                  headers={"Content-Type": "application/sdp"}) as r:
            body = await r.text()
            if r.status != 201:
                raise SignallingError(f"WHEP POST: {r.status} {body.strip()[:200]}")
            loc = r.headers.get("Location")
            if not loc:
                raise SignallingError("WHEP POST: 201 without a Location header")
            self.location = urljoin(self.opts.whep, loc)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))

    async def _whep_stop(self):
        if self.location:
            try:
                async with self.http.delete(self.location) as r:
                    await r.read()
            except aiohttp.ClientError:
                pass

    # ---- Janus ------------------------------------------------------------------------------
    async def _janus(self, url, body):
        body = dict(body, transaction="".join(random.choices(string.ascii_lowercase, k=12)))
        # text/plain as the harness's viewers send it; Janus parses the body as JSON anyway.
        async with self.http.post(url, data=json.dumps(body), headers={"Content-Type": "text/plain"}) as r:
            j = json.loads(await r.text())
        if j.get("janus") == "error":
            e = j.get("error") or {}
            raise SignallingError(f"janus error {e.get('code')}: {e.get('reason')}")
        return j

    async def _janus_offer(self, deadline):
        while time.monotonic() < deadline:
            async with self.http.get(f"{self.sess_url}?maxev=10&rid={int(time.time() * 1000)}") as r:
                evs = json.loads(await r.text())
            for ev in evs if isinstance(evs, list) else [evs]:
                if ev.get("janus") != "event":
                    continue
                data = (ev.get("plugindata") or {}).get("data") or {}
                if data.get("error"):
                    raise SignallingError(f"streaming error {data.get('error_code')}: {data['error']}")
                jsep = ev.get("jsep")
                if jsep and jsep.get("type") == "offer":
                    return jsep
        raise SignallingError("no JSEP offer from Janus")

    async def _janus_keepalive(self):
        while True:
            await asyncio.sleep(20)
            try:
                await self._janus(self.sess_url, {"janus": "keepalive"})
            except (aiohttp.ClientError, SignallingError, ValueError):
                pass

    async def _janus_start(self, deadline):
        j = await self._janus(self.opts.janus, {"janus": "create"})
        self.sess_url = f"{self.opts.janus}/{j['data']['id']}"
        j = await self._janus(self.sess_url, {"janus": "attach", "plugin": "janus.plugin.streaming"})
        self.handle_url = f"{self.sess_url}/{j['data']['id']}"
        await self._janus(self.handle_url, {"janus": "message",
                                            "body": {"request": "watch", "id": self.opts.mountpoint}})
        offer = await self._janus_offer(deadline)
        self._tasks.append(asyncio.create_task(self._janus_keepalive()))
        self.pc = self._new_pc()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        answer = _loopback_only(self.pc.localDescription.sdp)
        await self._janus(self.handle_url, {"janus": "message", "body": {"request": "start"},
                                            "jsep": {"type": "answer", "sdp": answer}})

    async def _janus_stop(self):
        for url, req in ((self.handle_url, "hangup"), (self.sess_url, "destroy")):
            if url:
                try:
                    await self._janus(url, {"janus": req})
                except (aiohttp.ClientError, SignallingError, ValueError):
                    pass

    # ---- common -----------------------------------------------------------------------------
    async def start(self):
        deadline = self.t0 + self.opts.timeout
        try:
            work = self._whep_start() if self.opts.whep else self._janus_start(deadline)
            await asyncio.wait_for(work, timeout=self.opts.timeout)
            self.signalling_ms = round((time.monotonic() - self.t0) * 1000)
            while time.monotonic() < deadline:
                if self.frames > self.opts.frames:
                    self.ok = True
                    return
                await asyncio.sleep(0.05)
            self.error = f"frames={self.frames} after {self.opts.timeout}s"
        except Exception as e:  # noqa: BLE001 - reported per viewer
            self.error = f"{type(e).__name__}: {e}"

    async def stats(self):
        out = {"frames": self.frames, "keyframes": self.keyframes, "audioFrames": self.audio_frames,
               "video": None, "audio": None}
        if not self.pc:
            return out
        for s in (await self.pc.getStats()).values():
            if getattr(s, "type", None) == "inbound-rtp":
                clock = 90.0 if s.kind == "video" else 48.0
                out[s.kind] = {"packetsReceived": s.packetsReceived, "packetsLost": s.packetsLost,
                               "jitterMs": round(s.jitter / clock, 2)}
        return out

    async def stop(self):
        for t in self._tasks:
            t.cancel()
        if self.pc:
            await self.pc.close()
        await (self._whep_stop() if self.opts.whep else self._janus_stop())


def _delta(a, b, *keys):
    try:
        for k in keys:
            a, b = a[k], b[k]
        return b - a
    except (KeyError, TypeError):
        return None


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sig = ap.add_mutually_exclusive_group(required=True)
    sig.add_argument("--whep", help="WHEP endpoint, e.g. http://127.0.0.1:18600/whep/demo")
    sig.add_argument("--janus", help="Janus HTTP API, e.g. http://127.0.0.1:8088/janus")
    ap.add_argument("--mountpoint", type=int, default=1)
    ap.add_argument("--viewers", type=int, default=1)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--timeout", type=float, default=20)
    ap.add_argument("--hold", type=float, default=0)
    ap.add_argument("--ready-file", default="")
    ap.add_argument("--json", action="store_true")
    opts = ap.parse_args()
    if not 1 <= opts.viewers <= 256 or not 0 <= opts.hold <= 3600:
        ap.error("--viewers must be 1-256 and --hold 0-3600")

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=opts.timeout)) as http:
        viewers = [Viewer(i, http, opts) for i in range(opts.viewers)]
        await asyncio.gather(*(v.start() for v in viewers))
        ok = all(v.ok for v in viewers)
        print(f"viewers-ready: {sum(v.ok for v in viewers)}/{len(viewers)}", flush=True)
        if ok and opts.ready_file:
            with open(opts.ready_file, "w") as f:
                f.write(f"{time.time()}\n")
        window = {}
        if ok and opts.hold > 0:
            before = [await v.stats() for v in viewers]
            t = time.monotonic()
            await asyncio.sleep(opts.hold)
            dt = time.monotonic() - t
            after = [await v.stats() for v in viewers]
            for v, b, a in zip(viewers, before, after):
                df = _delta(b, a, "frames")
                window[v.idx] = {"seconds": round(dt, 2), "fps": round(df / dt, 2) if df is not None else None,
                                 "videoPackets": _delta(b, a, "video", "packetsReceived"),
                                 "videoLost": _delta(b, a, "video", "packetsLost"),
                                 "audioPackets": _delta(b, a, "audio", "packetsReceived")}
        for v in viewers:
            s = await v.stats()
            rec = {"viewer": v.idx, "ok": v.ok, "error": v.error, "signallingMs": v.signalling_ms,
                   "firstFrameMs": v.first_frame_ms, "thresholdMs": v.threshold_ms,
                   "stats": s, "window": window.get(v.idx)}
            if opts.json:
                print(json.dumps(rec), flush=True)
            else:
                w = window.get(v.idx) or {}
                print(f"viewer {v.idx}: {'OK' if v.ok else 'FAIL'} frames={v.frames} keyframes={v.keyframes}"
                      f" signallingMs={v.signalling_ms} firstFrameMs={v.first_frame_ms}"
                      f" thresholdMs={v.threshold_ms} windowFps={w.get('fps')}"
                      f" video={s.get('video')} audioFrames={v.audio_frames}"
                      + (f" | error: {v.error}" if v.error else ""), flush=True)
        await asyncio.gather(*(v.stop() for v in viewers), return_exceptions=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
