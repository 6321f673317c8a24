//! An API request as the handlers see it (decoded path, query parameters, body) and the
//! reply they give back: plain data, no sockets, so every route is testable without hyper.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};

/// Default wait of a blocking query (Consul: 5 minutes).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);
/// Longest wait of a blocking query (Consul: 10 minutes).
pub const MAX_WAIT: Duration = Duration::from_secs(600);

#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    /// The path, percent-decoded, without the query.
    pub path: String,
    /// Query parameters, decoded; a parameter given without a value maps to "".
    pub query: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// The ACL token: `X-Consul-Token`, `Authorization: Bearer`, or `?token=`.
    pub token: Option<String>,
    /// The body's `Content-Type` (WHEP wants `application/sdp`).
    pub content_type: Option<String>,
}

/// `?index=N&wait=D`: wait until the data's index passes `index`, at most `wait`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    pub index: u64,
    pub wait: Duration,
}

impl Request {
    /// Builds a request from the raw path and query string of a URI.
    pub fn new(method: Method, raw_path: &str, raw_query: Option<&str>, body: Vec<u8>) -> Request {
        let path = percent_encoding::percent_decode_str(raw_path)
            .decode_utf8_lossy()
            .into_owned();
        let query: BTreeMap<String, String> = raw_query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let token = query.get("token").cloned();
        Request {
            method,
            path,
            query,
            body,
            token,
            content_type: None,
        }
    }

    /// Takes the token from the request headers, as Consul reads them (`X-Consul-Token`,
    /// else `Authorization: Bearer ...`), over a `?token=` parameter.
    pub fn with_token_headers<'h>(
        mut self,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) -> Request {
        let (mut bearer, mut consul) = (None, None);
        for (name, value) in headers {
            let Ok(v) = std::str::from_utf8(value) else {
                continue;
            };
            if name.eq_ignore_ascii_case("content-type") {
                self.content_type = Some(v.trim().to_string());
                continue;
            }
            if name.eq_ignore_ascii_case("x-consul-token") {
                consul = Some(v.trim().to_string());
                continue;
            }
            if name.eq_ignore_ascii_case("authorization")
                && let Some(t) = v.trim().strip_prefix("Bearer ")
            {
                bearer = Some(t.trim().to_string());
            }
        }
        if let Some(t) = consul.or(bearer) {
            self.token = Some(t);
        }
        self
    }

    pub fn has(&self, param: &str) -> bool {
        self.query.contains_key(param)
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A query parameter that must be an unsigned integer if present.
    pub fn u64_param(&self, name: &str) -> Result<Option<u64>, Reply> {
        match self.param(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                Reply::error(
                    StatusCode::BAD_REQUEST,
                    format!("invalid ?{name}={v:?}: expected an unsigned integer"),
                )
            }),
        }
    }

    /// A boolean parameter as Go's `strconv.ParseBool` reads it (Consul's parser): `1 t T
    /// TRUE true True` and `0 f F FALSE false False`; None if absent.
    pub fn bool_param(&self, name: &str) -> Result<Option<bool>, Reply> {
        match self.param(name) {
            None => Ok(None),
            Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(Some(true)),
            Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(Some(false)),
            Some(v) => Err(Reply::error(
                StatusCode::BAD_REQUEST,
                format!("invalid ?{name}={v:?}: expected true or false"),
            )),
        }
    }

    /// A boolean flag parameter: present without a value, or `true`/`false`.
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), Some("" | "true" | "1"))
    }

    /// The blocking-query parameters, if `?index` asks for blocking (index 0 does not:
    /// Consul answers at once). `wait` is capped at [`MAX_WAIT`].
    pub fn blocking(&self) -> Result<Option<Blocking>, Reply> {
        let Some(index) = self.u64_param("index")? else {
            return Ok(None);
        };
        let wait = match self.param("wait") {
            None | Some("") => DEFAULT_WAIT,
            Some(w) => {
                // Consul accepts a bare number of seconds too.
                let ms = crate::config::parse_duration(w)
                    .or_else(|e| w.parse::<u64>().map(|s| s * 1000).map_err(|_| e))
                    .map_err(|e| Reply::error(StatusCode::BAD_REQUEST, format!("?wait: {e}")))?;
                Duration::from_millis(ms)
            }
        };
        Ok((index > 0).then_some(Blocking {
            index,
            wait: wait.min(MAX_WAIT),
        }))
    }
}

/// What a handler answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    /// Shared, so a kept reply is served again without a copy.
    pub body: Bytes,
    /// `X-Consul-Index` (with the known-leader and last-contact headers), for reads.
    pub index: Option<u64>,
    /// Methods allowed, for a 405.
    pub allow: Option<&'static str>,
    /// Other headers, such as WHEP's `Location` or the status page's security policy.
    pub headers: Vec<(&'static str, String)>,
}

pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain; charset=utf-8";

impl Reply {
    pub fn json<T: serde::Serialize + ?Sized>(value: &T, pretty: bool) -> Reply {
        let body = if pretty {
            serde_json::to_vec_pretty(value)
        } else {
            serde_json::to_vec(value)
        };
        match body {
            Ok(body) => Reply {
                status: StatusCode::OK,
                content_type: JSON,
                body: body.into(),
                index: None,
                allow: None,
                headers: Vec::new(),
            },
            Err(e) => Reply::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }

    /// A plain-text error, as Consul writes them.
    pub fn error(status: StatusCode, message: impl Into<String>) -> Reply {
        let mut body = message.into().into_bytes();
        body.push(b'\n');
        Reply {
            status,
            content_type: TEXT,
            body: body.into(),
            index: None,
            allow: None,
            headers: Vec::new(),
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Reply {
        self.status = status;
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn with_index(mut self, index: u64) -> Reply {
        // Consul never reports index 0: a client blocking on 0 would not block.
        self.index = Some(index.max(1));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_query_are_decoded_as_consul_clients_encode_them() {
        let r = Request::new(
            Method::GET,
            "/v1/kv/a%2Fb%20c",
            Some("recurse&separator=%2F&tag=x+y&index=7"),
            vec![],
        );
        assert_eq!(r.path, "/v1/kv/a/b c");
        assert!(r.flag("recurse"));
        assert_eq!(r.param("separator"), Some("/"));
        assert_eq!(r.param("tag"), Some("x y"));
        assert_eq!(
            r.blocking().unwrap(),
            Some(Blocking {
                index: 7,
                wait: DEFAULT_WAIT
            })
        );
    }

    #[test]
    fn blocking_parameters_are_checked_and_capped() {
        let q = |s| Request::new(Method::GET, "/", Some(s), vec![]).blocking();
        assert_eq!(
            q("index=0&wait=1s").unwrap(),
            None,
            "index 0 answers at once"
        );
        assert_eq!(
            q("index=5&wait=2s").unwrap().unwrap().wait,
            Duration::from_secs(2)
        );
        assert_eq!(
            q("index=5&wait=3").unwrap().unwrap().wait,
            Duration::from_secs(3)
        );
        assert_eq!(q("index=5&wait=1h").unwrap().unwrap().wait, MAX_WAIT);
        let e = q("index=x").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(String::from_utf8_lossy(&e.body).contains("?index"));
        assert_eq!(
            q("index=5&wait=soon").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }
}
