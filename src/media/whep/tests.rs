//! WHEP requests as a client sends them (draft-ietf-wish-whep §4), against a gateway.

use std::time::Instant;

use http::{Method, StatusCode};
use str0m::Rtc;
use str0m::media::{Direction, MediaKind};

use super::*;
use crate::config::stream::StreamSpec;
use crate::media::rtc::GatewayConfig;

fn gateway(max_viewers: usize) -> (Gateway, Instant) {
    let now = Instant::now();
    let addr = "192.0.2.1:40000".parse().unwrap();
    let mut gw = Gateway::new(GatewayConfig::new(addr, [1; 32])).unwrap();
    gw.set_streams(
        now,
        &[StreamSpec {
            max_viewers,
            ..StreamSpec::dev_test()
        }],
    );
    (gw, now)
}

/// An offer like a browser's: receive video and audio.
fn offer() -> String {
    let mut rtc = Rtc::builder().build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    api.apply().unwrap().0.to_sdp_string()
}

fn post(gw: &mut Gateway, now: Instant, path: &str, ct: Option<&str>, body: &str) -> WhepReply {
    handle(gw, now, &Method::POST, path, ct, body.as_bytes())
}

fn text(r: &WhepReply) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn post_an_offer_gets_201_with_the_answer_and_the_session_location() {
    let (mut gw, now) = gateway(4);
    let r = post(
        &mut gw,
        now,
        "/whep/test",
        Some("application/sdp"),
        &offer(),
    );
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    assert_eq!(r.header("content-type"), Some("application/sdp"));
    let location = r.header("location").unwrap();
    let session = location.strip_prefix("/whep/test/").unwrap();
    assert_eq!(session.len(), 32);
    let answer = text(&r);
    assert!(answer.starts_with("v=0"), "{answer}");
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(answer.contains("192.0.2.1 40000 typ host"), "{answer}");
    assert_eq!(gw.viewers("test"), Some(1));
}

#[test]
fn the_content_type_may_carry_parameters_and_any_case() {
    let (mut gw, now) = gateway(4);
    let r = post(
        &mut gw,
        now,
        "/whep/test",
        Some("Application/SDP; charset=utf-8"),
        &offer(),
    );
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
}

#[test]
fn delete_ends_the_session_once() {
    let (mut gw, now) = gateway(4);
    let r = post(
        &mut gw,
        now,
        "/whep/test",
        Some("application/sdp"),
        &offer(),
    );
    let location = r.header("location").unwrap().to_owned();
    let d = handle(&mut gw, now, &Method::DELETE, &location, None, b"");
    assert_eq!(d.status, StatusCode::OK);
    assert_eq!(gw.viewers("test"), Some(0));
    assert_eq!(gw.stats().viewers, 0);
    let again = handle(&mut gw, now, &Method::DELETE, &location, None, b"");
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(text(&again).contains("no WHEP session"), "{}", text(&again));
}

#[test]
fn a_session_is_found_only_under_its_own_stream() {
    let (mut gw, now) = gateway(4);
    let r = post(
        &mut gw,
        now,
        "/whep/test",
        Some("application/sdp"),
        &offer(),
    );
    let session = r
        .header("location")
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let d = handle(
        &mut gw,
        now,
        &Method::DELETE,
        &format!("/whep/other/{session}"),
        None,
        b"",
    );
    assert_eq!(d.status, StatusCode::NOT_FOUND);
    assert_eq!(gw.viewers("test"), Some(1));
}

#[test]
fn patch_is_405_with_the_reason_and_allow() {
    let (mut gw, now) = gateway(4);
    let r = post(
        &mut gw,
        now,
        "/whep/test",
        Some("application/sdp"),
        &offer(),
    );
    let location = r.header("location").unwrap().to_owned();
    let p = handle(
        &mut gw,
        now,
        &Method::PATCH,
        &location,
        Some("application/trickle-ice-sdpfrag"),
        b"a=ice-ufrag:x\r\n",
    );
    assert_eq!(p.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(p.header("allow"), Some("DELETE"));
    assert!(text(&p).contains("trickle ICE and ICE restarts are not supported"));
    assert_eq!(gw.viewers("test"), Some(1), "the session is untouched");
}

#[test]
fn unknown_stream_is_404() {
    let (mut gw, now) = gateway(4);
    let r = post(
        &mut gw,
        now,
        "/whep/nope",
        Some("application/sdp"),
        &offer(),
    );
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(text(&r), "no stream named \"nope\"\n");
    for path in ["/whep/", "/whep//x", "/whep/test/a/b", "/whep/test/"] {
        let r = post(&mut gw, now, path, Some("application/sdp"), &offer());
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[test]
fn a_bad_sdp_is_400_with_the_parse_reason() {
    let (mut gw, now) = gateway(4);
    let r = post(&mut gw, now, "/whep/test", Some("application/sdp"), "hello");
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        text(&r).starts_with("bad SDP offer: SDP parse"),
        "{}",
        text(&r)
    );
    let r = handle(
        &mut gw,
        now,
        &Method::POST,
        "/whep/test",
        Some("application/sdp"),
        &[0xff, 0xfe],
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(gw.viewers("test"), Some(0));
}

#[test]
fn an_offer_without_vp8_is_400_naming_the_codecs() {
    let (mut gw, now) = gateway(4);
    let mut rtc = Rtc::builder().clear_codecs().enable_vp9(true).build(now);
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let offer = api.apply().unwrap().0.to_sdp_string();
    let r = post(&mut gw, now, "/whep/test", Some("application/sdp"), &offer);
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        text(&r).contains("(VP9) do not include VP8"),
        "{}",
        text(&r)
    );
}

#[test]
fn wrong_content_type_is_415_and_says_what_is_accepted() {
    let (mut gw, now) = gateway(4);
    for ct in [None, Some("application/json"), Some("text/plain")] {
        let r = post(&mut gw, now, "/whep/test", ct, &offer());
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        assert_eq!(r.header("accept-post"), Some("application/sdp"));
    }
    assert_eq!(gw.viewers("test"), Some(0));
}

#[test]
fn an_oversized_offer_is_413() {
    let (mut gw, now) = gateway(4);
    let big = "a".repeat(MAX_OFFER + 1);
    let r = post(&mut gw, now, "/whep/test", Some("application/sdp"), &big);
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn the_viewer_limit_is_503() {
    let (mut gw, now) = gateway(1);
    let r = post(
        &mut gw,
        now,
        "/whep/test",
        Some("application/sdp"),
        &offer(),
    );
    assert_eq!(r.status, StatusCode::CREATED);
    let r = post(
        &mut gw,
        now,
        "/whep/test",
        Some("application/sdp"),
        &offer(),
    );
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(text(&r), "stream \"test\" has its maximum of 1 viewers\n");
}

#[test]
fn other_methods_are_405_with_allow() {
    let (mut gw, now) = gateway(4);
    let r = handle(&mut gw, now, &Method::GET, "/whep/test", None, b"");
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("POST, OPTIONS"));
    let o = handle(&mut gw, now, &Method::OPTIONS, "/whep/test", None, b"");
    assert_eq!(o.status, StatusCode::NO_CONTENT);
    assert_eq!(o.header("accept-post"), Some("application/sdp"));
    let r = post(
        &mut gw,
        now,
        "/whep/test",
        Some("application/sdp"),
        &offer(),
    );
    let location = r.header("location").unwrap().to_owned();
    let g = handle(&mut gw, now, &Method::GET, &location, None, b"");
    assert_eq!(g.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(g.header("allow"), Some("DELETE"));
}

#[test]
fn a_player_on_another_origin_may_watch_and_leave() {
    let (mut gw, now) = gateway(4);
    // The preflights of the POST and of the DELETE.
    for path in ["/whep/test", "/whep/test/abc"] {
        let o = handle(&mut gw, now, &Method::OPTIONS, path, None, b"");
        assert_eq!(o.status, StatusCode::NO_CONTENT, "{path}");
        assert_eq!(o.header("access-control-allow-origin"), Some("*"));
        let methods = o.header("access-control-allow-methods").unwrap();
        assert!(
            methods.contains("POST") && methods.contains("DELETE"),
            "{methods}"
        );
        let headers = o.header("access-control-allow-headers").unwrap();
        assert!(headers.contains("Content-Type"), "{headers}");
    }
    let r = post(
        &mut gw,
        now,
        "/whep/test",
        Some("application/sdp"),
        &offer(),
    );
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-expose-headers"), Some("Location"));
    // Errors too, so the page can read why.
    let e = post(
        &mut gw,
        now,
        "/whep/test",
        Some("application/sdp"),
        "v=0\r\n",
    );
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
    assert_eq!(e.header("access-control-allow-origin"), Some("*"));
    // An unknown stream's preflight is not answered as if it existed.
    let o = handle(&mut gw, now, &Method::OPTIONS, "/whep/nope", None, b"");
    assert_eq!(o.status, StatusCode::NOT_FOUND);
}

#[test]
fn the_answer_offers_no_trickle_since_patch_is_refused() {
    let (mut gw, now) = gateway(4);
    let r = post(
        &mut gw,
        now,
        "/whep/test",
        Some("application/sdp"),
        &offer(),
    );
    assert_eq!(r.status, StatusCode::CREATED);
    let answer = text(&r);
    assert!(!answer.contains("trickle"), "{answer}");
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(answer.contains("a=candidate:"), "{answer}");
    assert!(without_trickle("a=x\r\na=ice-options:trickle\r\na=y\r\n") == "a=x\r\na=y\r\n");
}

#[test]
fn every_header_a_reply_carries_is_one_the_agent_passes_on() {
    let (mut gw, now) = gateway(1);
    let created = post(
        &mut gw,
        now,
        "/whep/test",
        Some("application/sdp"),
        &offer(),
    );
    let session = created.header("location").unwrap().to_owned();
    let replies = [
        handle(&mut gw, now, &Method::OPTIONS, "/whep/test", None, b""),
        handle(&mut gw, now, &Method::OPTIONS, &session, None, b""),
        post(
            &mut gw,
            now,
            "/whep/test",
            Some("application/sdp"),
            &offer(),
        ),
        post(&mut gw, now, "/whep/test", Some("text/plain"), "x"),
        post(
            &mut gw,
            now,
            "/whep/nope",
            Some("application/sdp"),
            &offer(),
        ),
        handle(&mut gw, now, &Method::PATCH, &session, None, b""),
        handle(&mut gw, now, &Method::GET, "/whep/test", None, b""),
        handle(&mut gw, now, &Method::GET, &session, None, b""),
        handle(&mut gw, now, &Method::DELETE, &session, None, b""),
        created,
    ];
    for r in &replies {
        for (name, _) in &r.headers {
            assert!(
                *name == "content-type" || header_name(name) == Some(*name),
                "{name} of {r:?}"
            );
        }
    }
}
