//! Static files, the pure part: which file under the served directory a request path names
//! (or why it names none), directory listings, and content types. No I/O here.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use http::{Method, StatusCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, percent_encode};

/// Most bytes of a request path, as sent (percent-encoded); Linux's `PATH_MAX` is 4096.
pub const MAX_PATH_BYTES: usize = 4096;
/// Most entries a directory listing shows; the rest are left out, and the page says so.
/// A listing page is then at most about 4096 × 2.3 KiB (255-byte names, escaped twice).
pub const MAX_LISTING: usize = 4096;
/// The methods a file server answers; others get 405 with this `Allow` header.
pub const ALLOW: &str = "GET, HEAD";

/// Whether a file server answers `method` (GET and HEAD; others get 405).
pub fn method_allowed(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// Why a request path names no file under the served directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not an origin-form path starting with `/` (such as `*`).
    NotAbsolute,
    /// Longer than [`MAX_PATH_BYTES`].
    TooLong,
    /// A `..` segment, also when percent-encoded (`%2e%2e`).
    DotDot,
    /// A segment that decodes to `/` or `\` (`%2f`, `%5c`): a separator smuggled inside a name.
    EncodedSeparator,
    /// A segment that decodes to a NUL byte (`%00`).
    Nul,
}

impl Refused {
    /// The status to answer with: 403 for traversal attempts, 400 / 414 for paths that are
    /// not paths.
    pub fn status(self) -> StatusCode {
        match self {
            Refused::NotAbsolute => StatusCode::BAD_REQUEST,
            Refused::TooLong => StatusCode::URI_TOO_LONG,
            Refused::DotDot | Refused::EncodedSeparator | Refused::Nul => StatusCode::FORBIDDEN,
        }
    }

    /// A short text for the response body.
    pub fn reason(self) -> &'static str {
        match self {
            Refused::NotAbsolute => "the request path must start with /",
            Refused::TooLong => "the request path is too long",
            Refused::DotDot => "`..` is not allowed in the path",
            Refused::EncodedSeparator => "an encoded / or \\ is not allowed in the path",
            Refused::Nul => "a NUL byte is not allowed in the path",
        }
    }
}

/// A request path, checked: its segments, decoded, each a plain name (never empty, `.`, `..`,
/// and without `/`, `\` or NUL), so joining them to the served directory stays beneath it
/// (symlinks aside: the shell resolves them and checks the result).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SitePath {
    segments: Vec<Vec<u8>>,
    /// The request ended in `/` (it asks for a directory).
    pub trailing_slash: bool,
}

/// Checks a request path (the URI's path as sent, percent-encoded; no query) and decodes it
/// into segments. Empty and `.` segments are dropped, as clients drop them.
pub fn site_path(raw: &str) -> Result<SitePath, Refused> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(Refused::TooLong);
    }
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(Refused::NotAbsolute);
    };
    let mut segments = Vec::new();
    for seg in rest.split('/') {
        let name: Vec<u8> = percent_decode_str(seg).collect();
        if name.contains(&0) {
            return Err(Refused::Nul);
        }
        if name.iter().any(|&b| b == b'/' || b == b'\\') {
            return Err(Refused::EncodedSeparator);
        }
        match name.as_slice() {
            b"" | b"." => {}
            b".." => return Err(Refused::DotDot),
            _ => segments.push(name),
        }
    }
    Ok(SitePath {
        segments,
        trailing_slash: raw.ends_with('/'),
    })
}

/// Characters kept as they are in links: RFC 3986's unreserved ones.
const HREF: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode(name: &[u8]) -> String {
    percent_encode(name, HREF).to_string()
}

impl SitePath {
    /// The path relative to the served directory (empty for the directory itself).
    pub fn relative(&self) -> PathBuf {
        self.segments.iter().map(|s| OsStr::from_bytes(s)).collect()
    }

    /// Whether this is the served directory itself.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// The path as a link, re-encoded from the segments (so it never starts with `//`, which
    /// a browser would read as another host), with a trailing `/` when `dir`.
    pub fn href(&self, dir: bool) -> String {
        let mut out = String::from("/");
        for (i, s) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            out.push_str(&encode(s));
        }
        if dir && !self.segments.is_empty() {
            out.push('/');
        }
        out
    }

    /// The path for people to read (decoded; bytes that are not UTF-8 shown as U+FFFD).
    pub fn display(&self) -> String {
        let mut out = String::from("/");
        for s in &self.segments {
            out.push_str(&String::from_utf8_lossy(s));
            out.push('/');
        }
        out
    }
}

/// Whether `resolved` (a canonical path) lies in or under `root` (canonical too), comparing
/// whole components: `/srv/www2` is not under `/srv/www`.
pub fn is_within(root: &Path, resolved: &Path) -> bool {
    resolved.starts_with(root)
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: OsString,
    /// A directory, or a symlink to one.
    pub is_dir: bool,
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The HTML listing of the directory at `path`: entries sorted by name, directories marked
/// with a trailing `/`, names escaped and links percent-encoded and relative (`./name`, so a
/// name such as `a:b` is not read as a URL scheme). `more` says entries were left out.
pub fn listing_html(path: &SitePath, mut entries: Vec<Entry>, more: bool) -> String {
    entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let title = escape_html(&path.display());
    let mut out = format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>Index of {title}</title>\n</head>\n<body>\n<h1>Index of {title}</h1>\n<ul>\n"
    );
    if !path.is_root() {
        out.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for e in &entries {
        let slash = if e.is_dir { "/" } else { "" };
        let href = encode(e.name.as_bytes());
        let name = escape_html(&e.name.to_string_lossy());
        out.push_str(&format!(
            "<li><a href=\"./{href}{slash}\">{name}{slash}</a></li>\n"
        ));
    }
    out.push_str("</ul>\n");
    if more {
        out.push_str(&format!(
            "<p>Only the first {MAX_LISTING} entries are shown.</p>\n"
        ));
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// The file served for a directory, when present.
pub const INDEX: &str = "index.html";

/// The content type of a file, by its extension (case-insensitive); text types say UTF-8.
/// Unknown extensions are `application/octet-stream`, so a browser downloads rather than
/// guesses (the server also sends `X-Content-Type-Options: nosniff`).
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "txt" | "log" | "conf" | "ini" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "m3u8" => "application/vnd.apple.mpegurl",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" => "audio/ogg",
        "wav" => "audio/wav",
        "pem" | "crt" => "application/x-pem-file",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Component;

    fn rel(raw: &str) -> Result<PathBuf, Refused> {
        site_path(raw).map(|p| p.relative())
    }

    #[test]
    fn plain_paths_map_to_names_under_the_root() {
        assert_eq!(rel("/"), Ok(PathBuf::new()));
        assert_eq!(rel("/a/b.txt"), Ok(PathBuf::from("a/b.txt")));
        assert_eq!(rel("/a%20b/c%2Bd"), Ok(PathBuf::from("a b/c+d")));
        // Empty and `.` segments are dropped, so `//etc/passwd` stays under the root.
        assert_eq!(rel("//etc//passwd"), Ok(PathBuf::from("etc/passwd")));
        assert_eq!(rel("/./a/./b"), Ok(PathBuf::from("a/b")));
        // Names that merely contain dots are names.
        assert_eq!(rel("/..."), Ok(PathBuf::from("...")));
        assert_eq!(rel("/..a/b.."), Ok(PathBuf::from("..a/b..")));
        assert!(site_path("/d/").unwrap().trailing_slash);
        assert!(!site_path("/d").unwrap().trailing_slash);
    }

    #[test]
    fn every_traversal_form_is_refused() {
        for raw in [
            "/..",
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/a/..",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/etc/passwd",
            "/.%2e/etc/passwd",
            "/%2e./etc/passwd",
        ] {
            assert_eq!(rel(raw), Err(Refused::DotDot), "{raw}");
        }
        for raw in [
            "/%2fetc%2fpasswd",
            "/a%2F..%2F..%2Fetc",
            "/..%2fetc",
            "/..%5c..%5cetc",
            "/a%5Cb",
            "/%2e%2e%2fetc",
        ] {
            assert_eq!(rel(raw), Err(Refused::EncodedSeparator), "{raw}");
        }
        assert_eq!(rel("/a%00.txt"), Err(Refused::Nul));
        assert_eq!(rel("*"), Err(Refused::NotAbsolute));
        assert_eq!(rel("etc/passwd"), Err(Refused::NotAbsolute));
        assert_eq!(rel(""), Err(Refused::NotAbsolute));
        let long = format!("/{}", "a".repeat(MAX_PATH_BYTES));
        assert_eq!(rel(&long), Err(Refused::TooLong));
        assert_eq!(Refused::DotDot.status(), StatusCode::FORBIDDEN);
        assert_eq!(Refused::EncodedSeparator.status(), StatusCode::FORBIDDEN);
        assert_eq!(Refused::Nul.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn links_are_reencoded_and_never_name_another_host() {
        let p = site_path("//evil.example/x%20y").unwrap();
        assert_eq!(p.href(true), "/evil.example/x%20y/");
        assert_eq!(p.href(false), "/evil.example/x%20y");
        assert_eq!(site_path("/").unwrap().href(true), "/");
        assert_eq!(p.display(), "/evil.example/x y/");
    }

    #[test]
    fn within_compares_whole_components() {
        assert!(is_within(Path::new("/srv/www"), Path::new("/srv/www")));
        assert!(is_within(Path::new("/srv/www"), Path::new("/srv/www/a")));
        assert!(!is_within(Path::new("/srv/www"), Path::new("/srv/www2/a")));
        assert!(!is_within(Path::new("/srv/www"), Path::new("/etc/passwd")));
    }

    #[test]
    fn listings_escape_names_encode_links_and_sort() {
        let p = site_path("/docs/").unwrap();
        let entries = vec![
            Entry {
                name: "z.txt".into(),
                is_dir: false,
            },
            Entry {
                name: "<script>alert(1)</script>&\"'".into(),
                is_dir: false,
            },
            Entry {
                name: "sub dir".into(),
                is_dir: true,
            },
            Entry {
                name: "a:b".into(),
                is_dir: false,
            },
        ];
        let html = listing_html(&p, entries, false);
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39;"));
        assert!(html.contains("href=\"./%3Cscript%3Ealert%281%29%3C%2Fscript%3E%26%22%27\""));
        assert!(html.contains("<a href=\"./sub%20dir/\">sub dir/</a>"));
        assert!(html.contains("<a href=\"./a%3Ab\">a:b</a>"));
        assert!(html.contains("<a href=\"../\">"));
        assert!(html.contains("<title>Index of /docs/</title>"));
        let order: Vec<usize> = ["<script", "a:b", "sub dir", "z.txt"]
            .iter()
            .map(|n| html.find(&format!(">{}", escape_html(n))).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{html}");
        assert!(!html.contains("Only the first"));
        let root = listing_html(&site_path("/").unwrap(), vec![], true);
        assert!(!root.contains("../"));
        assert!(root.contains(&format!("Only the first {MAX_LISTING} entries")));
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(
            content_type(Path::new("a/index.HTML")),
            "text/html; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("x.css")), "text/css; charset=utf-8");
        assert_eq!(content_type(Path::new("x.png")), "image/png");
        assert_eq!(content_type(Path::new("x.json")), "application/json");
        assert_eq!(
            content_type(Path::new("x.txt")),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("README")),
            "application/octet-stream"
        );
        assert_eq!(content_type(Path::new("x.exe")), "application/octet-stream");
    }

    #[test]
    fn only_get_and_head_are_allowed() {
        assert!(method_allowed(&Method::GET));
        assert!(method_allowed(&Method::HEAD));
        for m in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
            assert!(!method_allowed(&m));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Whatever is asked, an accepted path is relative and made of plain names only.
        #[test]
        fn an_accepted_path_never_leaves_the_root(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("..".to_string()), Just(".".to_string()), Just("".to_string()),
                    Just("%2e".to_string()), Just("%2E%2e".to_string()), Just("%2f".to_string()),
                    Just("%5c".to_string()), Just("%00".to_string()), Just("%".to_string()),
                    Just("/".to_string()), "[a-z.%0-9A-F\\\\]{0,6}",
                ],
                0..8,
            )
        ) {
            let raw = format!("/{}", parts.concat());
            if let Ok(p) = site_path(&raw) {
                let rel = p.relative();
                prop_assert!(rel.is_relative());
                for c in rel.components() {
                    prop_assert!(matches!(c, Component::Normal(_)), "{raw} -> {rel:?}");
                }
                prop_assert!(!rel.as_os_str().as_bytes().contains(&b'\\'));
                prop_assert!(!rel.as_os_str().as_bytes().contains(&0));
                // The link form decodes back to the same path.
                prop_assert_eq!(site_path(&p.href(false)).map(|q| q.relative()), Ok(rel));
            }
        }
    }
}
