#!/usr/bin/env python3
"""Added latency of a WebRTC gateway: from the sender's RTP into the server to the SRTP out of it.

Captures every UDP packet on the loopback interface of the current network namespace for
--seconds (an AF_PACKET socket on "lo", kernel timestamps, stdlib only; run it as root inside
the benchmark's namespace while a viewer is connected), then matches frames:

- in:  plain RTP to --video-port / --audio-port (the sender's VP8 and Opus);
- out: every other RTP flow (SRTP leaves the RTP header in clear: marker, timestamp, SSRC),
       split into frames by RTP timestamp.

The payload is encrypted, but its length is not: the k-th frame out carries the same bytes
as some frame in, give or take a constant per packet (payload descriptor, SRTP tag), and
packet counts may differ (a server may re-packetize). For each out flow and each index shift
the sizes are fitted as out = in + a*packets_out + b*packets_in; the flow and shift with the
smallest residual, among those whose frames leave after they arrived, is the alignment.
Latency of a frame = capture time of its last packet out - that of its last packet in (the
frame complete at the viewer's socket vs complete at the server's). The first-packet delay
(first out - first in) is printed too: a forwarding server sends the first packet before the
last one has arrived, a re-packetizing one cannot.

Usage: python3 latency.py --seconds 5 [--video-port 5004] [--audio-port 5002] [--json]
       python3 latency.py --load FILE ...   (analyse packets kept earlier with --save FILE)
Prints a JSON object (--json) or a short text summary.
"""
import argparse
import json
import socket
import statistics
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35  # Linux, all common architectures
MAX_PACKETS = 500_000


def capture(seconds, iface="lo"):
    """(t_seconds, udp_src_port, udp_dst_port, udp_payload) of every IPv4 UDP packet sent on iface."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.bind((iface, 0))
        s.settimeout(0.2)
        out = []
        end = time.monotonic() + seconds
        while time.monotonic() < end and len(out) < MAX_PACKETS:
            try:
                data, anc, _flags, addr = s.recvmsg(65536, socket.CMSG_SPACE(16))
            except socket.timeout:
                continue
            # On loopback every packet is seen twice (sent, then received): keep the send.
            if addr[2] != PACKET_OUTGOING:
                continue
            t = None
            for level, kind, val in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(val) >= 16:
                    sec, nsec = struct.unpack("qq", val[:16])
                    t = sec + nsec / 1e9
            if t is None:
                t = time.time()
            p = udp(data)
            if p:
                out.append((t,) + p)
        return out
    finally:
        s.close()


def udp(frame):
    """(src_port, dst_port, payload) of an Ethernet/IPv4/UDP frame, else None."""
    if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    if ip[0] >> 4 != 4 or ip[9] != 17:
        return None
    ihl = (ip[0] & 0x0F) * 4
    sport, dport, ulen = struct.unpack("!HHH", ip[ihl:ihl + 6])
    return sport, dport, bytes(ip[ihl + 8:ihl + ulen])


def rtp(payload):
    """(marker, pt, seq, ts, ssrc, payload_len) of an RTP/SRTP packet, else None (RTCP, STUN, DTLS)."""
    if len(payload) < 12 or payload[0] >> 6 != 2:
        return None
    b0, b1 = payload[0], payload[1]
    pt = b1 & 0x7F
    if 64 <= pt <= 95 or b0 & 0x20:  # RTCP (192-223), or padded (padding-only probes)
        return None
    seq, ts, ssrc = struct.unpack("!HII", payload[2:12])
    hdr = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if len(payload) < hdr + 4:
            return None
        hdr += 4 + 4 * struct.unpack("!H", payload[hdr + 2:hdr + 4])[0]
    if hdr > len(payload):
        return None
    return b1 >> 7, pt, seq, ts, ssrc, len(payload) - hdr


def frames(pkts):
    """Groups (t, marker, ts, size) packets of one flow into frames by RTP timestamp.

    Returns dicts with first/last packet time, total payload size and packet count; the first
    and last groups are dropped (the capture may have cut them)."""
    out, cur = [], None
    for t, marker, ts, size in pkts:
        if cur is None or ts != cur["ts"]:
            if cur is not None:
                out.append(cur)
            cur = {"ts": ts, "t0": t, "t1": t, "size": 0, "n": 0}
        cur["t1"] = t
        cur["size"] += size
        cur["n"] += 1
    if cur is not None:
        out.append(cur)
    return out[1:-1]


def _lstsq2(rows):
    """Least squares y = a*x1 + b*x2 (no intercept); returns (a, b, rms)."""
    s11 = sum(x1 * x1 for _, x1, _ in rows)
    s22 = sum(x2 * x2 for _, _, x2 in rows)
    s12 = sum(x1 * x2 for _, x1, x2 in rows)
    s1y = sum(y * x1 for y, x1, _ in rows)
    s2y = sum(y * x2 for y, _, x2 in rows)
    det = s11 * s22 - s12 * s12
    if abs(det) < 1e-9:
        a, b = (s1y / s11 if s11 else 0.0), 0.0
    else:
        a = (s1y * s22 - s2y * s12) / det
        b = (s2y * s11 - s1y * s12) / det
    rms = (sum((y - a * x1 - b * x2) ** 2 for y, x1, x2 in rows) / len(rows)) ** 0.5
    return a, b, rms


def align(fin, fout, min_pairs=20):
    """Best index shift s (out[k] is in[k+s]): (rms, s, a, b, ties) or None.

    When several shifts fit equally well (frames of equal size, as CBR Opus makes them) the
    one with the smallest latency is taken and `ties` counts the others: the figure is then
    right only if the true latency is below one frame interval."""
    fits = []
    mean_size = statistics.mean(f["size"] for f in fin) if fin else 0
    for s in range(-len(fout) + min_pairs, len(fin) - min_pairs + 1):
        pairs = [(fin[k + s], fout[k]) for k in range(len(fout)) if 0 <= k + s < len(fin)]
        if len(pairs) < min_pairs:
            continue
        lat = sorted(o["t1"] - i["t1"] for i, o in pairs)
        if lat[len(lat) // 10] < -0.0005 or lat[len(lat) // 2] > 5.0:
            continue  # frames would leave before they arrived, or absurdly late
        a, b, rms = _lstsq2([(o["size"] - i["size"], o["n"], -i["n"]) for i, o in pairs])
        fits.append((rms, lat[len(lat) // 2], s, a, b))
    if not fits:
        return None
    best = min(f[0] for f in fits)
    if mean_size and best > 0.05 * mean_size:
        return None  # nothing fits within 5 % of a frame: no trustworthy match
    near = [f for f in fits if f[0] <= best + max(1.0, 0.1 * best)]
    rms, _lat, s, a, b = min(near, key=lambda f: f[1])
    return rms, s, a, b, len(near) - 1


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


def analyse(pkts, video_port, audio_port):
    ins = {"video": [], "audio": []}
    flows = {}
    for t, sport, dport, payload in pkts:
        r = rtp(payload)
        if r is None:
            continue
        marker, pt, _seq, ts, ssrc, size = r
        if dport == video_port:
            ins["video"].append((t, marker, ts, size))
        elif dport == audio_port:
            ins["audio"].append((t, marker, ts, size))
        else:
            flows.setdefault((sport, dport, ssrc, pt), []).append((t, marker, ts, size))
    result = {"packets_captured": len(pkts), "out_flows": len(flows)}
    out_frames = {k: frames(v) for k, v in flows.items()}
    for kind in ("video", "audio"):
        fin = frames(ins[kind])
        best = None
        for key, fout in out_frames.items():
            if len(fout) < 20:
                continue
            m = align(fin, fout)
            if m and (best is None or m[0] < best[0][0]):
                best = (m, key, fout)
        if not best:
            result[kind] = {"frames_in": len(fin), "matched": 0,
                            "note": "no out flow matched the frames in (no viewer, or nothing forwarded)"}
            continue
        (rms, s, a, b, ties), (sport, dport, ssrc, pt), fout = best
        pairs = [(fin[k + s], fout[k]) for k in range(len(fout)) if 0 <= k + s < len(fin)]
        last = [1000 * (o["t1"] - i["t1"]) for i, o in pairs]
        first = [1000 * (o["t0"] - i["t0"]) for i, o in pairs]
        result[kind] = {
            "frames_in": len(fin), "frames_out": len(fout), "matched": len(pairs),
            "out_flow": f"{sport}->{dport} ssrc {ssrc:08x} pt {pt}",
            "fit": {"per_packet_out_bytes": round(a, 1), "per_packet_in_bytes": round(b, 1),
                    "residual_rms_bytes": round(rms, 1), "equally_good_shifts": ties},
            "packets_per_frame_in": round(sum(i["n"] for i, _ in pairs) / len(pairs), 2),
            "packets_per_frame_out": round(sum(o["n"] for _, o in pairs) / len(pairs), 2),
            "latency_ms": {"median": round(statistics.median(last), 2), "p95": round(pct(last, 0.95), 2),
                           "min": round(min(last), 2), "max": round(max(last), 2)},
            "first_packet_ms": {"median": round(statistics.median(first), 2),
                                "p95": round(pct(first, 0.95), 2)},
        }
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--video-port", type=int, default=5004)
    ap.add_argument("--audio-port", type=int, default=5002)
    ap.add_argument("--iface", default="lo")
    ap.add_argument("--save", default="", help="also write the captured packets (JSON lines) here")
    ap.add_argument("--load", default="", help="analyse packets saved with --save instead of capturing")
    ap.add_argument("--json", action="store_true")
    o = ap.parse_args()
    if not 0 < o.seconds <= 120:
        ap.error("--seconds must be in (0, 120]")
    if o.load:
        with open(o.load) as f:
            # headers as saved, the rest of each payload zero-filled to its length
            pkts = [(t, sp, dp, bytes.fromhex(h).ljust(n, b"\0")) for t, sp, dp, h, n in map(json.loads, f)]
    else:
        pkts = capture(o.seconds, o.iface)
        if o.save:
            with open(o.save, "w") as f:
                for t, sp, dp, p in pkts:
                    f.write(json.dumps([t, sp, dp, p[:64].hex(), len(p)]) + "\n")
    res = analyse(pkts, o.video_port, o.audio_port)
    res["seconds"] = o.seconds
    if o.json:
        print(json.dumps(res))
    else:
        for kind in ("video", "audio"):
            r = res.get(kind) or {}
            if r.get("matched"):
                print(f"{kind}: {r['matched']} frames matched on {r['out_flow']}: latency median "
                      f"{r['latency_ms']['median']} ms, p95 {r['latency_ms']['p95']} ms; first packet median "
                      f"{r['first_packet_ms']['median']} ms (fit rms {r['fit']['residual_rms_bytes']} B)")
            else:
                print(f"{kind}: {r.get('note', 'no match')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
