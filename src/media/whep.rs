//! WHEP (draft-ietf-wish-whep) signalling over the [`Gateway`]: a pure function from a
//! request's method, path, content type and body to a reply's status, headers and body.
//!
//! - `POST /whep/<stream>` with an `application/sdp` offer: `201 Created`, `Location:
//!   /whep/<stream>/<session>`, the SDP answer with the gateway's one candidate (ICE-lite:
//!   nothing to trickle);
//! - `DELETE /whep/<stream>/<session>`: `200 OK`, the viewer is dropped at once;
//! - `PATCH` on a session: `405` (no trickle, no ICE restart: a viewer POSTs a new offer);
//! - `OPTIONS` on either: `204` with `Allow`, `Accept-Post` and the CORS preflight's
//!   answer; every reply allows any origin and exposes `Location`, so a player on another
//!   origin can watch (as Janus allows).
//!
//! Errors are `text/plain`, one line naming the culprit: `404` unknown stream or session,
//! `415` not `application/sdp`, `413` offer above [`MAX_OFFER`], `400` bad SDP or no
//! common codec, `503` the stream's `max_viewers` reached.

use std::time::Instant;

use http::{Method, StatusCode};

use super::rtc::{Gateway, JoinError};

#[cfg(test)]
mod tests;

/// Where WHEP lives in the agent's HTTP API.
pub const PREFIX: &str = "/whep/";
/// Largest offer read: browsers' offers are 3-8 KB.
pub const MAX_OFFER: usize = 64 * 1024;
pub const SDP: &str = "application/sdp";
pub const TEXT: &str = "text/plain; charset=utf-8";

/// Every header a [`WhepReply`] may carry (besides `content-type`).
pub const HEADERS: [&str; 8] = [
    "location",
    "allow",
    "accept-post",
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-max-age",
    "access-control-expose-headers",
];

/// `name` as one of [`HEADERS`] (a reply read back from the media process), if it is one.
pub fn header_name(name: &str) -> Option<&'static str> {
    HEADERS.into_iter().find(|h| *h == name)
}

/// An HTTP reply as plain data, for the agent to write with its own server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WhepReply {
    pub status: StatusCode,
    /// Header names in lower case: `content-type` (always), and `location`, `allow`,
    /// `accept-post` where they apply.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl WhepReply {
    fn new(status: StatusCode, content_type: &str, body: impl Into<Vec<u8>>) -> WhepReply {
        WhepReply {
            status,
            headers: vec![("content-type", content_type.into())],
            body: body.into(),
        }
    }

    pub fn error(status: StatusCode, message: impl Into<String>) -> WhepReply {
        let mut body = message.into().into_bytes();
        body.push(b'\n');
        WhepReply::new(status, TEXT, body)
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> WhepReply {
        self.headers.push((name, value.into()));
        self
    }

    /// The value of header `name` (lower case), if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Whether `path` is WHEP's, for the agent's router.
pub fn is_whep(path: &str) -> bool {
    path.starts_with(PREFIX)
}

/// Answers one WHEP request. `path` is the request path without its query; `content_type`
/// the request's `Content-Type` header, if any.
pub fn handle(
    gateway: &mut Gateway,
    now: Instant,
    method: &Method,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> WhepReply {
    let rest = path.strip_prefix(PREFIX).unwrap_or("");
    let mut parts = rest.split('/');
    let stream = parts.next().unwrap_or("");
    let session = parts.next();
    if stream.is_empty() || parts.next().is_some() || session == Some("") {
        return WhepReply::error(
            StatusCode::NOT_FOUND,
            format!("{path}: not a WHEP resource (/whep/<stream> or /whep/<stream>/<session>)"),
        );
    }
    let reply = match (session, method) {
        // A browser's CORS preflight, for a player on another origin.
        (_, &Method::OPTIONS) if gateway.viewers(stream).is_some() => {
            WhepReply::new(StatusCode::NO_CONTENT, TEXT, Vec::new())
                .with(
                    "allow",
                    if session.is_some() {
                        "DELETE, OPTIONS"
                    } else {
                        "POST, OPTIONS"
                    },
                )
                .with("accept-post", SDP)
                .with(
                    "access-control-allow-methods",
                    "POST, DELETE, PATCH, OPTIONS",
                )
                .with(
                    "access-control-allow-headers",
                    "Content-Type, Authorization, X-Consul-Token",
                )
                .with("access-control-max-age", "600")
        }
        (None, _) => endpoint(gateway, now, method, stream, content_type, body),
        (Some(session), _) => session_resource(gateway, now, method, stream, session),
    };
    // Any page may play a stream, as with Janus; it must read `Location` to leave.
    reply
        .with("access-control-allow-origin", "*")
        .with("access-control-expose-headers", "Location")
}

/// The answer as sent: without `a=ice-options:trickle`, which str0m writes but this
/// endpoint does not take (PATCH is 405: the answer has the gateway's one candidate).
fn without_trickle(answer: &str) -> String {
    answer
        .split_inclusive('\n')
        .filter(|l| l.trim_end() != "a=ice-options:trickle")
        .collect()
}

fn endpoint(
    gateway: &mut Gateway,
    now: Instant,
    method: &Method,
    stream: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> WhepReply {
    if gateway.viewers(stream).is_none() {
        return WhepReply::error(StatusCode::NOT_FOUND, format!("no stream named {stream:?}"));
    }
    match *method {
        Method::POST => {}
        _ => {
            return WhepReply::error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} on a WHEP endpoint: POST an SDP offer to watch {stream:?}"),
            )
            .with("allow", "POST, OPTIONS");
        }
    }
    let media_type = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .unwrap_or("");
    if !media_type.eq_ignore_ascii_case(SDP) {
        let got = content_type.map_or("no Content-Type".into(), |c| format!("Content-Type {c:?}"));
        return WhepReply::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("a WHEP offer is {SDP}, not {got}"),
        )
        .with("accept-post", SDP);
    }
    if body.len() > MAX_OFFER {
        return WhepReply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the offer has {} bytes; at most {MAX_OFFER} are read",
                body.len()
            ),
        );
    }
    let Ok(offer) = std::str::from_utf8(body) else {
        return WhepReply::error(StatusCode::BAD_REQUEST, "bad SDP offer: not UTF-8");
    };
    match gateway.add_viewer(now, stream, offer) {
        Ok(joined) => WhepReply::new(StatusCode::CREATED, SDP, without_trickle(&joined.answer))
            .with("location", format!("{PREFIX}{stream}/{}", joined.session)),
        Err(e) => {
            let status = match e {
                JoinError::UnknownStream(_) => StatusCode::NOT_FOUND,
                JoinError::BadOffer(_) | JoinError::NoCommonCodec(_) => StatusCode::BAD_REQUEST,
                JoinError::Full { .. } => StatusCode::SERVICE_UNAVAILABLE,
            };
            WhepReply::error(status, e.to_string())
        }
    }
}

fn session_resource(
    gateway: &mut Gateway,
    now: Instant,
    method: &Method,
    stream: &str,
    session: &str,
) -> WhepReply {
    let id = match gateway.session(session) {
        Some((id, s)) if s == stream => id,
        _ => {
            return WhepReply::error(
                StatusCode::NOT_FOUND,
                format!("no WHEP session {session:?} on stream {stream:?} (ended, or never made)"),
            );
        }
    };
    match *method {
        Method::DELETE => {
            gateway.remove_viewer(now, id);
            WhepReply::new(StatusCode::OK, TEXT, Vec::new())
        }
        Method::PATCH => WhepReply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "PATCH: trickle ICE and ICE restarts are not supported; the answer already has the \
             gateway's only candidate (ICE-lite). To reconnect, DELETE this session and POST a \
             new offer",
        )
        .with("allow", "DELETE"),
        _ => WhepReply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} on a WHEP session: only DELETE ends it"),
        )
        .with("allow", "DELETE"),
    }
}
