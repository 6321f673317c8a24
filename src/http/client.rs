//! A small HTTP/1.1 client on hyper and smol, for HTTP health checks and the CLI: one request
//! per connection, bounded in time (one total timeout) and memory (a response body limit);
//! `https://` over rustls, verifying against the system's CA bundle unless told otherwise.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_io::Timer;
use async_net::TcpStream;
use bytes::Bytes;
use futures_lite::future;
use http::header::{HOST, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use smol_hyper::rt::FuturesIo;

/// hyper's read buffer limit per connection: bounds the response head (status line and
/// headers) and each body read. hyper's own default is about 400 KiB; 8 KiB is its minimum.
const READ_BUF_MAX: usize = 64 * 1024;

/// One request to send. Header names and values, the method and the URL are checked when the
/// request is sent, so a bad one comes back as a [`ClientError`] naming it.
#[derive(Clone, Debug)]
pub struct ClientRequest {
    /// Such as `GET` or `PUT`; any HTTP token is accepted.
    pub method: String,
    /// `http://host:port/path?query`; the port defaults to 80. https is refused for now.
    pub url: String,
    /// Sent in order; a name may repeat. A `Host` header here replaces the one taken from
    /// the URL (as Consul's HTTP checks allow).
    pub headers: Vec<(String, String)>,
    /// Empty for no body (no `Content-Length` is sent for GET, HEAD and CONNECT).
    pub body: Bytes,
    /// For everything: resolving, connecting, sending and reading the whole response.
    pub timeout: Duration,
    /// Most response body bytes read; the rest is not read, and the response says it was cut.
    pub max_body: usize,
    /// For `https://` URLs: how to verify the server (default: the system's CA bundle).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl ClientRequest {
    /// A GET of `url` with no headers, a 10 s timeout and a 64 KiB body limit.
    pub fn get(url: &str) -> ClientRequest {
        ClientRequest {
            method: "GET".into(),
            url: url.into(),
            headers: Vec::new(),
            body: Bytes::new(),
            timeout: Duration::from_secs(10),
            max_body: 64 * 1024,
            tls: None,
        }
    }
}

/// Where the system's CA certificates are: `SSL_CERT_FILE`, else Debian's and Yocto's bundle.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A TLS client trusting `roots` (TLS 1.2 and 1.3, ALPN http/1.1).
pub fn tls_config(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    let mut c = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

/// A TLS client trusting the CA certificates in `path` (PEM): for a server with a
/// self-signed or private-CA certificate, such as an agent's.
pub fn tls_config_with_ca(
    path: &std::path::Path,
) -> Result<Arc<rustls::ClientConfig>, crate::tls::TlsError> {
    Ok(tls_config(crate::tls::load_client_ca(path)?))
}

/// A TLS client trusting the system's CA bundle (empty if there is none), made once.
pub fn system_tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let path = std::env::var_os("SSL_CERT_FILE")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| CA_BUNDLE.into());
            let mut roots = rustls::RootCertStore::empty();
            if let Ok(certs) = crate::tls::load_certs(&path) {
                roots.add_parsable_certificates(certs);
            }
            tls_config(roots)
        })
        .clone()
}

/// A TLS client that accepts any server certificate (Consul's `tls_skip_verify` for
/// checks): the connection is encrypted, the server unauthenticated.
pub fn insecure_tls_config() -> Arc<rustls::ClientConfig> {
    let provider = crate::tls::provider();
    let mut c = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the provider supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

/// Accepts every certificate, still checking that the handshake is signed by its key.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A response, with its body read up to [`ClientRequest::max_body`].
#[derive(Clone, Debug)]
pub struct ClientResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The server sent more than `max_body` bytes of body: `body` holds the first `max_body`.
    pub truncated: bool,
}

/// What the client was doing when the time ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Resolving,
    Connecting,
    /// Sending the request and waiting for the response head.
    Waiting,
    ReadingBody,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Resolving => "resolving the host name",
            Stage::Connecting => "connecting",
            Stage::Waiting => "waiting for the response",
            Stage::ReadingBody => "reading the response body",
        })
    }
}

/// Why a request got no response. Every variant names its culprit; none leaves anything
/// behind (the connection is closed when [`request`] returns).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("TLS with {addr}: {source}")]
    Tls { addr: SocketAddr, source: io::Error },
    #[error("bad HTTP method {method:?}: expected a token such as GET, HEAD, POST or PUT")]
    BadMethod { method: String },
    #[error("bad header {name:?}: {reason}")]
    BadHeader { name: String, reason: String },
    #[error("cannot resolve {host:?}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("timed out after {after:?} {stage}")]
    Timeout { after: Duration, stage: Stage },
    #[error("HTTP error talking to {addr}: {source}")]
    Protocol {
        addr: SocketAddr,
        source: hyper::Error,
    },
}

/// Sends one request on a new connection and reads the response, all within
/// `req.timeout`. Needs no executor handle: the hyper connection is driven inside this
/// future, so it runs on whatever smol executor (or `block_on`) awaits it.
pub async fn request(req: ClientRequest) -> Result<ClientResponse, ClientError> {
    let target = Target::parse(&req.url)?;
    let http_req = build(&req, &target)?;
    let stage = Cell::new(Stage::Resolving);
    let timeout = req.timeout;
    let tls = target
        .https
        .then(|| req.tls.clone().unwrap_or_else(system_tls_config));
    let work = exchange(&target, http_req, req.max_body, tls, &stage);
    let expire = async {
        Timer::after(timeout).await;
        Err(ClientError::Timeout {
            after: timeout,
            stage: stage.get(),
        })
    };
    future::or(work, expire).await
}

/// Where a URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    /// Without IPv6 brackets.
    host: String,
    port: u16,
    /// The `Host` header: the URL's host and port as written.
    authority: String,
    /// Origin form: `/path?query`.
    path: String,
    https: bool,
}

impl Target {
    fn parse(url: &str) -> Result<Target, ClientError> {
        let bad = |reason: &str| ClientError::BadUrl {
            url: url.into(),
            reason: reason.into(),
        };
        let uri: Uri = url.parse().map_err(|e: http::uri::InvalidUri| {
            bad(&format!("{e}; expected http://host:port/path"))
        })?;
        let https = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            _ => {
                return Err(bad(
                    "expected an http:// or https:// URL, such as http://127.0.0.1:8080/health",
                ));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| bad("no host; expected http://host:port/path"))?;
        if authority.as_str().contains('@') {
            return Err(bad(
                "user info in the URL is not supported; send an Authorization header instead",
            ));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(bad("no host; expected http://host:port/path"));
        }
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = match authority.port() {
            None if https => 443,
            None => 80,
            Some(p) => p.as_u16(),
        };
        let path = uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("/");
        Ok(Target {
            host: host.to_string(),
            port,
            authority: authority.as_str().to_string(),
            path: path.to_string(),
            https,
        })
    }
}

fn build(req: &ClientRequest, target: &Target) -> Result<Request<Full<Bytes>>, ClientError> {
    let method = Method::from_bytes(req.method.as_bytes()).map_err(|_| ClientError::BadMethod {
        method: req.method.clone(),
    })?;
    let mut builder = Request::builder().method(method).uri(target.path.as_str());
    let headers = builder.headers_mut().ok_or_else(|| ClientError::BadUrl {
        url: req.url.clone(),
        reason: "cannot build a request for it".into(),
    })?;
    for (name, value) in &req.headers {
        let bad = |reason: &str| ClientError::BadHeader {
            name: name.clone(),
            reason: reason.into(),
        };
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad("not a valid header name (letters, digits and -, no spaces)"))?;
        let v = HeaderValue::from_str(value)
            .map_err(|_| bad(&format!("value {value:?} has control characters")))?;
        headers.append(n, v);
    }
    if !headers.contains_key(HOST) {
        let v = HeaderValue::from_str(&target.authority).map_err(|_| ClientError::BadUrl {
            url: req.url.clone(),
            reason: "the host is not a valid Host header".into(),
        })?;
        headers.insert(HOST, v);
    }
    builder
        .body(Full::new(req.body.clone()))
        .map_err(|e| ClientError::BadUrl {
            url: req.url.clone(),
            reason: e.to_string(),
        })
}

/// Resolves, connects, sends and reads; `stage` tells the timeout what was going on.
async fn exchange(
    target: &Target,
    req: Request<Full<Bytes>>,
    max_body: usize,
    tls: Option<Arc<rustls::ClientConfig>>,
    stage: &Cell<Stage>,
) -> Result<ClientResponse, ClientError> {
    let addrs = resolve(&target.host, target.port).await?;
    stage.set(Stage::Connecting);
    let (tcp, addr) = connect(&addrs).await?;
    let stream = match tls {
        None => Stream::Plain(tcp),
        Some(config) => {
            let name =
                rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|e| {
                    ClientError::BadUrl {
                        url: target.authority.clone(),
                        reason: format!("not a TLS server name: {e}"),
                    }
                })?;
            let tls = futures_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|source| ClientError::Tls { addr, source })?;
            Stream::Tls(Box::new(tls))
        }
    };
    stage.set(Stage::Waiting);
    let protocol = |source| ClientError::Protocol { addr, source };
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(READ_BUF_MAX)
        .handshake::<_, Full<Bytes>>(FuturesIo::new(stream))
        .await
        .map_err(protocol)?;
    // The connection future does the socket I/O; it runs next to the request. When it
    // ends first, with or without an error, the request side sees the end too (hyper closes
    // its channels), so its error (or its complete response) is what is returned.
    let conn = async {
        let _ = conn.await;
        future::pending::<Result<ClientResponse, ClientError>>().await
    };
    let talk = async {
        sender.ready().await.map_err(protocol)?;
        let resp = sender.send_request(req).await.map_err(protocol)?;
        stage.set(Stage::ReadingBody);
        let (parts, mut body) = resp.into_parts();
        let mut buf: Vec<u8> = Vec::new();
        let mut truncated = false;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(protocol)?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            let room = max_body - buf.len();
            if data.len() > room {
                buf.extend_from_slice(&data[..room]);
                truncated = true;
                break;
            }
            buf.extend_from_slice(&data);
        }
        Ok(ClientResponse {
            status: parts.status,
            headers: parts.headers,
            body: Bytes::from(buf),
            truncated,
        })
    };
    future::or(talk, conn).await
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ClientError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs = async_net::resolve((host, port))
        .await
        .map_err(|source| ClientError::Resolve {
            host: host.into(),
            source,
        })?;
    if addrs.is_empty() {
        return Err(ClientError::Resolve {
            host: host.into(),
            source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
        });
    }
    Ok(addrs)
}

/// The connection: plain TCP or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

impl futures_lite::AsyncRead for Stream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl futures_lite::AsyncWrite for Stream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_close(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// Tries each address in turn; the error is the last one's.
async fn connect(addrs: &[SocketAddr]) -> Result<(TcpStream, SocketAddr), ClientError> {
    let mut last = None;
    for &addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok((s, addr)),
            Err(source) => last = Some(ClientError::Connect { addr, source }),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::Resolve {
        host: String::new(),
        source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    //! Against real servers on 127.0.0.1 (hyper on smol), on one thread like the agent.

    use std::convert::Infallible;
    use std::rc::Rc;
    use std::time::Instant;

    use async_net::TcpListener;
    use http::Response;
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use smol::LocalExecutor;

    use super::*;

    /// Answers by path: `/echo` sends back the method, the headers it got (one
    /// `name: value` line each, sorted) and the request body; `/big/N` sends N bytes of `x`;
    /// `/status/N` answers with status N.
    async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let path = req.uri().path().to_string();
        let method = req.method().to_string();
        let mut lines: Vec<String> = req
            .headers()
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")))
            .collect();
        lines.sort();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let resp = if path == "/echo" {
            let text = format!(
                "{method} {path}\n{}\n\n{}",
                lines.join("\n"),
                String::from_utf8_lossy(&body)
            );
            Response::new(Full::new(Bytes::from(text)))
        } else if let Some(n) = path.strip_prefix("/big/") {
            let n: usize = n.parse().unwrap_or(0);
            Response::new(Full::new(Bytes::from(vec![b'x'; n])))
        } else if let Some(code) = path.strip_prefix("/status/") {
            let mut r = Response::new(Full::new(Bytes::from(format!("status {code}"))));
            *r.status_mut() = StatusCode::from_bytes(code.as_bytes()).unwrap_or_default();
            r
        } else {
            let mut r = Response::new(Full::new(Bytes::from_static(b"not found")));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        };
        Ok(resp)
    }

    /// Starts the test server on the executor and returns its address.
    pub(crate) async fn serve(ex: &Rc<LocalExecutor<'static>>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ex2 = ex.clone();
        ex.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                ex2.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(FuturesIo::new(stream), service_fn(answer))
                        .await;
                })
                .detach();
            }
        })
        .detach();
        addr
    }

    fn run<T>(f: impl FnOnce(Rc<LocalExecutor<'static>>) -> T) -> T::Output
    where
        T: std::future::Future,
    {
        let ex = Rc::new(LocalExecutor::new());
        let fut = f(ex.clone());
        smol::block_on(ex.run(fut))
    }

    #[test]
    fn get_sends_the_headers_and_host_from_the_url() {
        let (resp, addr) = run(|ex| async move {
            let addr = serve(&ex).await;
            let mut req = ClientRequest::get(&format!("http://{addr}/echo?x=1"));
            req.headers = vec![
                ("X-Probe".into(), "one".into()),
                ("x-probe".into(), "two".into()),
                ("Accept".into(), "text/plain".into()),
            ];
            (request(req).await.unwrap(), addr)
        });
        assert_eq!(resp.status, StatusCode::OK);
        assert!(!resp.truncated);
        let body = String::from_utf8(resp.body.to_vec()).unwrap();
        let expected =
            format!("GET /echo\naccept: text/plain\nhost: {addr}\nx-probe: one\nx-probe: two\n\n");
        assert_eq!(body, expected);
    }

    #[test]
    fn a_host_header_replaces_the_one_from_the_url() {
        let resp = run(|ex| async move {
            let addr = serve(&ex).await;
            let mut req = ClientRequest::get(&format!("http://{addr}/echo"));
            req.headers = vec![("Host".into(), "web.example".into())];
            request(req).await.unwrap()
        });
        let body = String::from_utf8(resp.body.to_vec()).unwrap();
        assert!(body.contains("\nhost: web.example\n"), "{body}");
        assert_eq!(body.matches("host:").count(), 1, "{body}");
    }

    #[test]
    fn put_sends_the_body_with_its_length() {
        let resp = run(|ex| async move {
            let addr = serve(&ex).await;
            let mut req = ClientRequest::get(&format!("http://{addr}/echo"));
            req.method = "PUT".into();
            req.body = Bytes::from_static(b"{\"ok\":true}");
            request(req).await.unwrap()
        });
        let body = String::from_utf8(resp.body.to_vec()).unwrap();
        assert!(body.starts_with("PUT /echo\n"), "{body}");
        assert!(body.contains("\ncontent-length: 11\n"), "{body}");
        assert!(body.ends_with("\n\n{\"ok\":true}"), "{body}");
    }

    #[test]
    fn status_codes_come_back_as_sent() {
        let codes = run(|ex| async move {
            let addr = serve(&ex).await;
            let mut codes = Vec::new();
            for c in [200, 204, 429, 500] {
                let req = ClientRequest::get(&format!("http://{addr}/status/{c}"));
                codes.push(request(req).await.unwrap().status.as_u16());
            }
            codes
        });
        assert_eq!(codes, [200, 204, 429, 500]);
    }

    #[test]
    fn a_body_over_the_limit_is_cut_and_flagged() {
        let (big, exact) = run(|ex| async move {
            let addr = serve(&ex).await;
            let mut req = ClientRequest::get(&format!("http://{addr}/big/1000000"));
            req.max_body = 4096;
            let big = request(req.clone()).await.unwrap();
            req.url = format!("http://{addr}/big/4096");
            let exact = request(req).await.unwrap();
            (big, exact)
        });
        assert_eq!(big.body.len(), 4096);
        assert!(big.truncated);
        assert!(big.body.iter().all(|&b| b == b'x'));
        assert_eq!(exact.body.len(), 4096);
        assert!(!exact.truncated, "a body of exactly the limit is whole");
    }

    #[test]
    fn a_server_that_never_answers_times_out() {
        let (err, took) = run(|ex| async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            // Accepts and holds the connection, never reading or writing.
            let held = ex.spawn(async move {
                let conn = listener.accept().await;
                future::pending::<()>().await;
                drop(conn);
            });
            let mut req = ClientRequest::get(&format!("http://{addr}/"));
            req.timeout = Duration::from_millis(200);
            let start = Instant::now();
            let err = request(req).await.unwrap_err();
            drop(held);
            (err, start.elapsed())
        });
        assert!(
            matches!(
                err,
                ClientError::Timeout {
                    stage: Stage::Waiting,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "timed out after 200ms waiting for the response"
        );
        assert!(took >= Duration::from_millis(200), "{took:?}");
    }

    #[test]
    fn a_closed_port_is_a_connect_error_naming_the_address() {
        let (err, addr) = run(|_ex| async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            drop(listener);
            (
                request(ClientRequest::get(&format!("http://{addr}/")))
                    .await
                    .unwrap_err(),
                addr,
            )
        });
        match &err {
            ClientError::Connect { addr: a, source } => {
                assert_eq!(*a, addr);
                assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused);
            }
            other => panic!("expected a connect error, got {other:?}"),
        }
        assert!(
            err.to_string()
                .starts_with(&format!("cannot connect to {addr}: ")),
            "{err}"
        );
    }

    #[test]
    fn ipv6_literals_connect() {
        let got = run(|ex| async move {
            let Ok(listener) = TcpListener::bind("[::1]:0").await else {
                return None; // no IPv6 loopback on this machine
            };
            let addr = listener.local_addr().unwrap();
            ex.spawn(async move {
                if let Ok((stream, _)) = listener.accept().await {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(FuturesIo::new(stream), service_fn(answer))
                        .await;
                }
            })
            .detach();
            let resp = request(ClientRequest::get(&format!(
                "http://[::1]:{}/echo",
                addr.port()
            )))
            .await
            .unwrap();
            Some((resp, addr.port()))
        });
        if let Some((resp, port)) = got {
            let body = String::from_utf8(resp.body.to_vec()).unwrap();
            assert!(body.contains(&format!("host: [::1]:{port}\n")), "{body}");
        }
    }

    #[test]
    fn host_names_are_resolved() {
        let resp = run(|ex| async move {
            let addr = serve(&ex).await;
            let url = format!("http://localhost:{}/status/204", addr.port());
            request(ClientRequest::get(&url)).await
        });
        // `localhost` may resolve to ::1 first; the client then tries 127.0.0.1.
        assert_eq!(resp.unwrap().status, StatusCode::NO_CONTENT);
    }

    #[test]
    fn bad_requests_are_refused_naming_the_culprit() {
        let err = |req: ClientRequest| {
            smol::block_on(request(req))
                .map(|r| r.status)
                .unwrap_err()
                .to_string()
        };
        assert!(
            err(ClientRequest::get("ftp://127.0.0.1/")).starts_with("bad URL \"ftp://127.0.0.1/\""),
        );
        assert!(err(ClientRequest::get("http://")).starts_with("bad URL \"http://\""));
        assert!(err(ClientRequest::get("/health")).starts_with("bad URL \"/health\""));
        assert!(err(ClientRequest::get("http://a b/")).starts_with("bad URL \"http://a b/\""));
        assert!(
            err(ClientRequest::get("http://u:p@127.0.0.1/")).contains("user info"),
            "credentials are never sent in clear by accident"
        );
        let mut bad_method = ClientRequest::get("http://127.0.0.1:1/");
        bad_method.method = "GE T".into();
        assert!(err(bad_method).starts_with("bad HTTP method \"GE T\""));
        let mut bad_name = ClientRequest::get("http://127.0.0.1:1/");
        bad_name.headers = vec![("X Bad".into(), "v".into())];
        assert!(err(bad_name).starts_with("bad header \"X Bad\""));
        let mut bad_value = ClientRequest::get("http://127.0.0.1:1/");
        bad_value.headers = vec![("X-Ok".into(), "a\nb".into())];
        assert!(err(bad_value).starts_with("bad header \"X-Ok\""));
    }

    /// An HTTPS server with a certificate from a test CA: trusted when that CA is given,
    /// refused (naming TLS) against the system's CAs, accepted when verification is off.
    #[test]
    fn https_verifies_the_server_unless_told_not_to() {
        use crate::tls::testing::TestCa;
        use crate::tls::{HttpsServer, ServeOptions};
        let tmp = tempfile::tempdir().unwrap();
        let ca = TestCa::new("client test CA");
        let pki = ca.write_server_files(&tmp.path().join("pki"));
        let site = tmp.path().join("site");
        std::fs::create_dir(&site).unwrap();
        std::fs::write(site.join("health"), "ok").unwrap();
        let server = HttpsServer::start(ServeOptions::new(&site, &pki.cert, &pki.key)).unwrap();
        let url = format!("https://localhost:{}/health", server.addr().port());
        let mut req = ClientRequest::get(&url);
        req.tls = Some(tls_config(ca.root_store()));
        let r = smol::block_on(request(req)).unwrap();
        assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"ok"[..]));
        let e = smol::block_on(request(ClientRequest::get(&url))).unwrap_err();
        assert!(matches!(e, ClientError::Tls { .. }), "{e}");
        assert!(e.to_string().contains("certificate"), "{e}");
        let mut req = ClientRequest::get(&url);
        req.tls = Some(insecure_tls_config());
        assert_eq!(smol::block_on(request(req)).unwrap().status.as_u16(), 200);
    }

    #[test]
    fn urls_give_host_port_authority_and_origin_form_path() {
        let t = Target::parse("http://[::1]:8080/health?full=1").unwrap();
        assert_eq!(
            t,
            Target {
                host: "::1".into(),
                port: 8080,
                authority: "[::1]:8080".into(),
                path: "/health?full=1".into(),
                https: false,
            }
        );
        let t = Target::parse("HTTPS://box.local/x").unwrap();
        assert_eq!((t.port, t.https), (443, true), "https defaults to port 443");
        let t = Target::parse("http://web.local").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("web.local", 80, "/")
        );
        assert_eq!(t.authority, "web.local");
    }
}
