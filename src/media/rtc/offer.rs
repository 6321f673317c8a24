//! Reads what a viewer's SDP offer asks for before a peer connection is built, so that an
//! offer the stream cannot serve is refused with a reason a person can act on.

use crate::config::stream::VideoCodec;

/// What an acceptable offer can receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offered {
    /// An enabled audio section that receives Opus.
    pub opus: bool,
}

/// One `m=` section, as far as codec choice goes.
#[derive(Default)]
struct Section<'a> {
    kind: &'a str,
    port_zero: bool,
    bundle_only: bool,
    /// `a=sendrecv` unless said otherwise.
    direction: &'a str,
    /// (payload type, encoding name, clock rate)
    rtpmaps: Vec<(&'a str, &'a str, &'a str)>,
    /// (payload type, parameters)
    fmtps: Vec<(&'a str, &'a str)>,
}

impl Section<'_> {
    fn enabled(&self) -> bool {
        !self.port_zero || self.bundle_only
    }

    fn receives(&self) -> bool {
        matches!(self.direction, "sendrecv" | "recvonly")
    }

    fn fmtp(&self, pt: &str) -> &str {
        self.fmtps
            .iter()
            .find(|(p, _)| *p == pt)
            .map_or("", |(_, f)| f)
    }

    fn has(&self, codec: VideoCodec) -> bool {
        self.rtpmaps.iter().any(|(pt, name, rate)| {
            *rate == "90000"
                && match codec {
                    VideoCodec::Vp8 => name.eq_ignore_ascii_case("VP8"),
                    VideoCodec::H264 => {
                        name.eq_ignore_ascii_case("H264") && h264_baseline_mode1(self.fmtp(pt))
                    }
                }
        })
    }

    fn has_opus(&self) -> bool {
        self.rtpmaps
            .iter()
            .any(|(_, name, rate)| name.eq_ignore_ascii_case("opus") && *rate == "48000")
    }

    fn codec_names(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        for (_, name, _) in &self.rtpmaps {
            let skip = ["rtx", "red", "ulpfec", "flexfec-03"];
            if !skip.iter().any(|s| name.eq_ignore_ascii_case(s)) && !names.contains(name) {
                names.push(name);
            }
        }
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }
}

/// The H.264 the gateway sends: constrained baseline (profile_idc 0x42, which decoders of
/// any baseline-family profile take) in packetization mode 1 (FU-A), as browsers decode.
fn h264_baseline_mode1(fmtp: &str) -> bool {
    let mut mode1 = false;
    let mut baseline = false;
    for kv in fmtp.split(';') {
        let (k, v) = kv.trim().split_once('=').unwrap_or((kv.trim(), ""));
        if k.eq_ignore_ascii_case("packetization-mode") {
            mode1 = v.trim() == "1";
        } else if k.eq_ignore_ascii_case("profile-level-id") {
            baseline = v
                .trim()
                .get(..2)
                .is_some_and(|p| p.eq_ignore_ascii_case("42"));
        }
    }
    mode1 && baseline
}

fn sections(sdp: &str) -> Vec<Section<'_>> {
    let mut out: Vec<Section> = Vec::new();
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            let mut f = m.split_ascii_whitespace();
            out.push(Section {
                kind: f.next().unwrap_or(""),
                port_zero: f.next() == Some("0"),
                direction: "sendrecv",
                ..Section::default()
            });
            continue;
        }
        let Some(s) = out.last_mut() else { continue };
        let Some(attr) = line.strip_prefix("a=") else {
            continue;
        };
        let (name, value) = attr.split_once(':').unwrap_or((attr, ""));
        match name {
            "sendrecv" | "recvonly" | "sendonly" | "inactive" => s.direction = name,
            "bundle-only" => s.bundle_only = true,
            "rtpmap" => {
                if let Some((pt, enc)) = value.split_once(' ') {
                    let mut parts = enc.trim().split('/');
                    let codec = parts.next().unwrap_or("");
                    let rate = parts.next().unwrap_or("");
                    s.rtpmaps.push((pt, codec, rate));
                }
            }
            "fmtp" => {
                if let Some((pt, params)) = value.split_once(' ') {
                    s.fmtps.push((pt, params));
                }
            }
            _ => {}
        }
    }
    out
}

/// Checks that `sdp` (already parsed by str0m) offers to receive `codec` video; says why
/// not, naming what the offer has and what the stream sends.
pub fn check(sdp: &str, stream: &str, codec: VideoCodec) -> Result<Offered, String> {
    let all = sections(sdp);
    let video: Vec<&Section> = all.iter().filter(|s| s.kind == "video").collect();
    if video.is_empty() {
        return Err(format!(
            "the offer has no video (m=video) section; stream {stream:?} sends {}",
            describe(codec)
        ));
    }
    let receiving: Vec<&&Section> = video
        .iter()
        .filter(|s| s.enabled() && s.receives())
        .collect();
    if receiving.is_empty() {
        let s = video[0];
        let why = if s.enabled() {
            format!("is a={}", s.direction)
        } else {
            "is disabled (port 0)".into()
        };
        return Err(format!(
            "the offer's video {why}; a WHEP viewer receives (a=recvonly)"
        ));
    }
    if !receiving.iter().any(|s| s.has(codec)) {
        return Err(format!(
            "the offer's video codecs ({}) do not include {}, which stream {stream:?} sends",
            receiving[0].codec_names(),
            describe(codec)
        ));
    }
    let opus = all
        .iter()
        .any(|s| s.kind == "audio" && s.enabled() && s.receives() && s.has_opus());
    Ok(Offered { opus })
}

fn describe(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::Vp8 => "VP8",
        VideoCodec::H264 => {
            "H264 (constrained baseline, profile-level-id 42xxxx, packetization-mode=1)"
        }
    }
}

/// Whether str0m's answer accepted a video section (a port other than 0): the last word on
/// whether the codecs matched, after [`check`] looked at the offer.
pub fn answer_has_video(answer: &str) -> bool {
    sections(answer)
        .iter()
        .any(|s| s.kind == "video" && s.enabled() && !s.rtpmaps.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The media part of an offer as Chromium makes it for two recvonly transceivers
    /// (trimmed to the lines that matter here).
    pub const CHROMIUM_LIKE: &str = "v=0\r\n\
o=- 1 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 45\r\n\
a=mid:0\r\n\
a=recvonly\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
a=rtpmap:103 rtx/90000\r\n\
a=rtpmap:45 AV1/90000\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
a=mid:1\r\n\
a=recvonly\r\n\
a=rtpmap:111 opus/48000/2\r\n";

    #[test]
    fn a_browser_offer_is_acceptable_for_vp8_and_h264() {
        assert_eq!(
            check(CHROMIUM_LIKE, "cam", VideoCodec::Vp8),
            Ok(Offered { opus: true })
        );
        assert_eq!(
            check(CHROMIUM_LIKE, "cam", VideoCodec::H264),
            Ok(Offered { opus: true })
        );
    }

    #[test]
    fn an_offer_without_vp8_is_refused_naming_its_codecs() {
        let sdp = CHROMIUM_LIKE.replace("a=rtpmap:96 VP8/90000\r\n", "");
        let e = check(&sdp, "cam", VideoCodec::Vp8).unwrap_err();
        assert!(e.contains("(H264, AV1)"), "{e}");
        assert!(e.contains("VP8, which stream \"cam\" sends"), "{e}");
    }

    #[test]
    fn h264_needs_packetization_mode_1_and_a_baseline_profile() {
        let high = CHROMIUM_LIKE.replace("profile-level-id=42001f", "profile-level-id=64001f");
        assert!(check(&high, "cam", VideoCodec::H264).is_err());
        let mode0 = CHROMIUM_LIKE.replace("packetization-mode=1", "packetization-mode=0");
        let e = check(&mode0, "cam", VideoCodec::H264).unwrap_err();
        assert!(e.contains("packetization-mode=1"), "{e}");
    }

    #[test]
    fn video_the_browser_only_sends_is_refused() {
        let sdp = CHROMIUM_LIKE.replacen("a=recvonly", "a=sendonly", 1);
        let e = check(&sdp, "cam", VideoCodec::Vp8).unwrap_err();
        assert!(e.contains("a=sendonly"), "{e}");
        let sdp = CHROMIUM_LIKE.replace("m=video 9", "m=video 0");
        let e = check(&sdp, "cam", VideoCodec::Vp8).unwrap_err();
        assert!(e.contains("port 0"), "{e}");
    }

    #[test]
    fn an_audio_only_offer_is_refused() {
        let audio_only = CHROMIUM_LIKE
            .split("m=audio")
            .nth(1)
            .map(|a| format!("v=0\r\nm=audio{a}"))
            .unwrap();
        let e = check(&audio_only, "cam", VideoCodec::Vp8).unwrap_err();
        assert!(e.contains("no video"), "{e}");
    }

    #[test]
    fn video_without_audio_is_fine() {
        let video_only = CHROMIUM_LIKE.split("m=audio").next().unwrap();
        assert_eq!(
            check(video_only, "cam", VideoCodec::Vp8),
            Ok(Offered { opus: false })
        );
    }
}
