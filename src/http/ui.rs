//! The status page: embedded files (no CDN; it works offline on a LAN), served at `/` and
//! under `/ui/` by the same API server, plain or TLS.

use http::StatusCode;

use super::request::Reply;

/// Embedded files by path under `/ui/`, with their content type.
const ASSETS: &[(&str, &str, &[u8])] = &[(
    "index.html",
    "text/html; charset=utf-8",
    include_bytes!("ui/index.html"),
)];

/// The reply for a status-page path (`/`, `/ui`, `/ui/`, `/ui/<file>`), if it is one.
pub fn asset(path: &str) -> Option<Reply> {
    let name = match path {
        "/" | "/ui" | "/ui/" => "index.html",
        p => p.strip_prefix("/ui/")?,
    };
    let Some((_, content_type, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return Some(Reply::error(
            StatusCode::NOT_FOUND,
            format!("no such status page file: {name}"),
        ));
    };
    Some(Reply {
        status: StatusCode::OK,
        content_type,
        body: bytes::Bytes::from_static(body),
        index: None,
        allow: None,
    })
}
