//! The status page: embedded files (no CDN; it works offline on a LAN), served at `/` and
//! under `/ui/` by the same API server, plain or TLS.
//!
//! `index.html` is self-contained (its CSS and script inline), because the same page answers
//! at `/`, `/ui` and `/ui/`, where a relative file name would resolve to different paths; its
//! script finds the API from its own location, so it also works behind a path prefix. It
//! reads Consul's API with blocking queries and builds the page from text nodes only.

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
        headers: page_headers(),
    })
}

/// The WHEP player of one stream (`/streams/<name>`): the same page for every stream; it
/// reads the name from its address.
pub fn viewer() -> Reply {
    Reply {
        status: StatusCode::OK,
        content_type: "text/html; charset=utf-8",
        body: bytes::Bytes::from_static(include_bytes!("ui/viewer.html")),
        index: None,
        allow: None,
        headers: page_headers(),
    }
}

/// What a page the agent serves may do: talk to its own origin and nothing else, never be
/// framed, and be revalidated rather than kept stale after an upgrade.
pub fn page_headers() -> Vec<(&'static str, String)> {
    vec![
        (
            "content-security-policy",
            "default-src 'none'; connect-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; \
             script-src 'unsafe-inline'; media-src 'self' blob:; frame-ancestors 'none'; \
             base-uri 'none'; form-action 'none'"
                .into(),
        ),
        ("x-content-type-options", "nosniff".into()),
        ("referrer-policy", "no-referrer".into()),
        ("cache-control", "no-cache".into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> String {
        String::from_utf8(asset("/").unwrap().body.to_vec()).unwrap()
    }

    #[test]
    fn the_page_answers_at_the_root_and_under_ui() {
        for path in ["/", "/ui", "/ui/", "/ui/index.html"] {
            let r = asset(path).unwrap();
            assert!(
                r.headers
                    .iter()
                    .any(|(n, v)| *n == "content-security-policy"
                        && v.contains("connect-src 'self'")),
                "{path}"
            );
            assert_eq!(r.status, StatusCode::OK, "{path}");
            assert_eq!(r.content_type, "text/html; charset=utf-8", "{path}");
            assert!(r.body.starts_with(b"<!doctype html>"), "{path}");
        }
    }

    #[test]
    fn unknown_files_under_ui_are_404_and_other_paths_are_not_the_pages() {
        let r = asset("/ui/nosuch.js").unwrap();
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(
            asset("/ui/../index.html").unwrap().status,
            StatusCode::NOT_FOUND
        );
        for path in ["/v1/agent/self", "/uix", "/favicon.ico", "/index.html", ""] {
            assert!(asset(path).is_none(), "{path}");
        }
    }

    /// Small, self-contained (nothing fetched from elsewhere: it works offline on a LAN),
    /// and no API text is ever parsed as markup.
    #[test]
    fn the_page_is_small_offline_and_builds_no_markup_from_strings() {
        let p = page();
        assert!(p.len() < 30 * 1024, "the page is {} bytes", p.len());
        for bad in [
            "http://",
            "https://",
            "src=\"//",
            "href=\"//",
            "@import",
            "url(",
        ] {
            let ok = p
                .match_indices(bad)
                .all(|(i, _)| p[..i].ends_with("xmlns='"));
            assert!(ok, "the page refers to something outside itself: {bad}");
        }
        for bad in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!p.contains(bad), "the page uses {bad}");
        }
    }
}
