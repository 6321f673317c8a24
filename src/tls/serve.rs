//! The HTTPS static file server's shell: the only code that touches its sockets and files.
//! It runs on a thread of its own with its own smol executor, so plain `#[test]`s can start it.
//!
//! Bounds: at most [`ServeOptions::max_connections`] connections (further ones are closed at
//! once); a TLS handshake must finish within [`ServeOptions::handshake_timeout`]; request heads
//! of at most [`MAX_HEADER_BYTES`], each within [`HEADER_TIMEOUT`] (also the keep-alive idle
//! time); files are sent in [`CHUNK`]-byte reads, never read whole; listings show at most
//! [`files::MAX_LISTING`] entries.

use std::cell::Cell;
use std::convert::Infallible;
use std::fmt;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_io::Timer;
use async_net::{TcpListener, TcpStream};
use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use futures_rustls::TlsAcceptor;
use http::header::{self, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use smol::LocalExecutor;
use smol_hyper::rt::{FuturesIo, SmolTimer};

use super::files::{self, Entry, SitePath};
use super::{Identity, TlsError};

/// Request line and headers.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Time to send a request head; also how long an idle keep-alive connection stays open.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read from a file at a time; hyper asks for the next chunk only when the last one
/// is written, so a connection holds about one chunk of a file however large it is.
pub const CHUNK: usize = 64 * 1024;
/// The default of [`ServeOptions::handshake_timeout`].
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The default of [`ServeOptions::max_connections`].
pub const MAX_CONNECTIONS: usize = 512;

/// What [`HttpsServer::start`] serves and how.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The directory served; nothing outside it is ever sent (symlinks leading out are 404).
    pub dir: PathBuf,
    /// The certificate chain, PEM, the server's certificate first.
    pub cert: PathBuf,
    /// The private key, PEM, unencrypted; it must match `cert`.
    pub key: PathBuf,
    /// When given, clients must present a certificate chaining to one of these CAs (PEM).
    pub client_ca: Option<PathBuf>,
    /// Where to listen; port 0 picks a free port ([`HttpsServer::addr`] tells which).
    pub addr: SocketAddr,
    /// A connection that has not finished its TLS handshake by then is closed.
    pub handshake_timeout: Duration,
    /// Connections open at once; further ones are closed as they arrive.
    pub max_connections: usize,
}

impl ServeOptions {
    /// Serve `dir` with `cert` and `key` on `127.0.0.1` (a free port), no client
    /// certificates, default timeouts and bounds.
    pub fn new(dir: impl Into<PathBuf>, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        ServeOptions {
            dir: dir.into(),
            cert: cert.into(),
            key: key.into(),
            client_ca: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            handshake_timeout: HANDSHAKE_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// Why a server did not start. Nothing listens when this is returned.
#[derive(Debug)]
pub enum ServeError {
    /// A certificate, key or CA file (named in the error) is missing, malformed, encrypted or
    /// does not match.
    Tls(TlsError),
    /// The directory to serve cannot be used.
    Dir { dir: PathBuf, message: String },
    /// The address cannot be listened on.
    Bind { addr: SocketAddr, source: io::Error },
    /// The server thread could not be started.
    Thread(io::Error),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Tls(e) => e.fmt(f),
            ServeError::Dir { dir, message } => write!(f, "{}: {message}", dir.display()),
            ServeError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            ServeError::Thread(e) => write!(f, "cannot start the server thread: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

impl From<TlsError> for ServeError {
    fn from(e: TlsError) -> Self {
        ServeError::Tls(e)
    }
}

/// A static file server over HTTPS, running on a thread of its own until dropped. Dropping it
/// stops it: the drop returns once the listener is closed and every connection dropped.
///
/// It serves GET and HEAD (405 otherwise), with `Content-Type` and `Content-Length`, an
/// HTML listing for a directory without `index.html`, 404 for what is not there, and never
/// anything outside its directory: `..` (also percent-encoded), encoded `/` or `\`, NUL and
/// symlinks leading out are refused.
///
/// # Example: a test that fetches a file
///
/// ```
/// use std::io::{Read, Write};
/// use outpost::tls::testing::TestCa;
/// use outpost::tls::{HttpsServer, ServeOptions};
///
/// let tmp = tempfile::tempdir().unwrap();
/// let ca = TestCa::new("test CA");
/// let pki = ca.write_server_files(&tmp.path().join("pki"));
/// let site = tmp.path().join("site");
/// std::fs::create_dir(&site).unwrap();
/// std::fs::write(site.join("hello.txt"), "hello\n").unwrap();
///
/// let server = HttpsServer::start(ServeOptions::new(&site, &pki.cert, &pki.key)).unwrap();
///
/// // A rustls client that trusts the test CA.
/// let name = "localhost".try_into().unwrap();
/// let conn = rustls::ClientConnection::new(ca.client_config(None), name).unwrap();
/// let tcp = std::net::TcpStream::connect(server.addr()).unwrap();
/// tcp.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
/// let mut tls = rustls::StreamOwned::new(conn, tcp);
/// tls.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
///     .unwrap();
/// let mut response = String::new();
/// tls.read_to_string(&mut response).unwrap();
/// assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(response.contains("content-type: text/plain; charset=utf-8\r\n"));
/// assert!(response.ends_with("\r\n\r\nhello\n"));
///
/// // The same in one call.
/// let r = outpost::tls::testing::https_get(server.addr(), ca.client_config(None), "/hello.txt")
///     .unwrap();
/// assert_eq!((r.status, r.text().as_str()), (200, "hello\n"));
/// drop(server); // stops it
/// ```
pub struct HttpsServer {
    addr: SocketAddr,
    identity: Arc<Identity>,
    stop: Option<async_channel::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpsServer {
    /// Loads and checks every file (directory, certificate, key, client CA), then listens on
    /// `opts.addr` and serves on a new thread. Errors name the file at fault; nothing listens
    /// when one is returned.
    pub fn start(opts: ServeOptions) -> Result<HttpsServer, ServeError> {
        let root = served_dir(&opts.dir)?;
        let key = super::load_identity(&opts.cert, &opts.key)?;
        let client_ca = opts
            .client_ca
            .as_deref()
            .map(super::load_client_ca)
            .transpose()?;
        launch(root, key, client_ca, &opts)
    }

    /// Serves `dir` with a new self-signed certificate for `names` (DNS names or IP
    /// addresses), as `outpost serve-tls` does without `-cert`; [`Self::fingerprint_sha256`]
    /// tells clients what to expect. `opts.cert` and `opts.key` are not read.
    pub fn start_self_signed(
        opts: ServeOptions,
        names: &[String],
    ) -> Result<HttpsServer, ServeError> {
        let root = served_dir(&opts.dir)?;
        let (cert_pem, key_pem) = super::self_signed(names)?;
        let pem_err = |e| TlsError::other(format!("the self-signed certificate: {e}"));
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(pem_err)?;
        let der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(pem_err)?;
        let key = super::identity_from_der(vec![cert], der).map_err(TlsError::other)?;
        let client_ca = opts
            .client_ca
            .as_deref()
            .map(super::load_client_ca)
            .transpose()?;
        launch(root, key, client_ca, &opts)
    }

    /// The address it listens on (with the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The identity it presents; [`Identity::set`] swaps it for new connections.
    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }

    /// The SHA-256 fingerprint of the certificate it presents, as `openssl x509
    /// -fingerprint -sha256` prints it.
    pub fn fingerprint_sha256(&self) -> String {
        let key = self.identity.current();
        key.cert
            .first()
            .map(super::fingerprint_sha256)
            .unwrap_or_default()
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        // Closing the channel ends the accept loop; joining waits until the thread has
        // dropped the listener and every connection.
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The served directory, canonical (symlinks resolved), checked to be a readable directory.
fn served_dir(dir: &Path) -> Result<PathBuf, ServeError> {
    let fail = |message: String| ServeError::Dir {
        dir: dir.to_path_buf(),
        message,
    };
    let root =
        fs::canonicalize(dir).map_err(|e| fail(format!("cannot serve this directory: {e}")))?;
    let meta =
        fs::metadata(&root).map_err(|e| fail(format!("cannot serve this directory: {e}")))?;
    if !meta.is_dir() {
        return Err(fail("not a directory".into()));
    }
    fs::read_dir(&root).map_err(|e| fail(format!("cannot list this directory: {e}")))?;
    Ok(root)
}

fn launch(
    root: PathBuf,
    key: Arc<CertifiedKey>,
    client_ca: Option<RootCertStore>,
    opts: &ServeOptions,
) -> Result<HttpsServer, ServeError> {
    let identity = Identity::new(key);
    let config = super::server_config(identity.clone(), client_ca)?;
    let bind_err = |source| ServeError::Bind {
        addr: opts.addr,
        source,
    };
    let std_listener = std::net::TcpListener::bind(opts.addr).map_err(bind_err)?;
    let addr = std_listener.local_addr().map_err(bind_err)?;
    let listener = TcpListener::try_from(std_listener).map_err(bind_err)?;
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let site = Site {
        root: Arc::new(root),
        handshake_timeout: opts.handshake_timeout,
        max_connections: opts.max_connections.max(1),
    };
    let thread = std::thread::Builder::new()
        .name(format!("https {addr}"))
        .spawn(move || run(listener, config, site, stop_rx))
        .map_err(ServeError::Thread)?;
    Ok(HttpsServer {
        addr,
        identity,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// What every connection of one server shares.
#[derive(Clone)]
struct Site {
    /// Canonical.
    root: Arc<PathBuf>,
    handshake_timeout: Duration,
    max_connections: usize,
}

/// The server thread: accepts until `stop` closes, then drops the listener and every
/// connection before returning.
fn run(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    site: Site,
    stop: async_channel::Receiver<()>,
) {
    let ex = Rc::new(LocalExecutor::new());
    let accept = accept_loop(listener, TlsAcceptor::from(config), site, ex.clone());
    let stopped = async {
        let _ = stop.recv().await;
    };
    futures_lite::future::block_on(ex.run(accept.or(stopped)));
    drop(ex);
}

/// Decrements the open-connection count when a connection's task ends or is dropped.
struct Open(Rc<Cell<usize>>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    site: Site,
    ex: Rc<LocalExecutor<'static>>,
) {
    let open = Rc::new(Cell::new(0usize));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors or a transient error: pause rather than spin.
                tracing::warn!("HTTPS accept failed: {e}");
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.get() >= site.max_connections {
            tracing::debug!(
                "HTTPS: {} connections open, closing the one from {peer}",
                site.max_connections
            );
            continue;
        }
        let _ = stream.set_nodelay(true);
        open.set(open.get() + 1);
        let guard = Open(open.clone());
        let (acceptor, site) = (acceptor.clone(), site.clone());
        ex.spawn(async move {
            connection(stream, acceptor, site).await;
            drop(guard);
        })
        .detach();
    }
}

/// What a plain-HTTP request on the TLS port gets before the connection closes.
const PLAIN_HTTP_REPLY: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nThis port speaks HTTPS: use https://\n";

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// One connection: the TLS handshake (bounded in time), then HTTP/1.1 until the client
/// leaves or idles. A client speaking plain HTTP gets a 400 saying to use https; anything
/// else that is not TLS is closed.
async fn connection(stream: TcpStream, acceptor: TlsAcceptor, site: Site) {
    let handshake = async {
        let mut first = [0u8; 1];
        if stream.peek(&mut first).await.ok()? == 0 {
            return None;
        }
        if first[0] != TLS_HANDSHAKE {
            if first[0].is_ascii_uppercase() {
                plain_http(&stream).await;
            }
            return None;
        }
        match acceptor.accept(stream.clone()).await {
            Ok(tls) => Some(tls),
            Err(e) => {
                tracing::debug!("HTTPS handshake failed: {e}");
                None
            }
        }
    };
    let timeout = async {
        Timer::after(site.handshake_timeout).await;
        tracing::debug!("HTTPS handshake timed out");
        None
    };
    let Some(tls) = handshake.or(timeout).await else {
        return;
    };
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let site = site.clone();
        async move { Ok::<_, Infallible>(respond(&site, req).await) }
    });
    let http = hyper::server::conn::http1::Builder::new()
        .timer(SmolTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES.max(8192))
        .keep_alive(true)
        .serve_connection(FuturesIo::new(tls), service);
    if let Err(e) = http.await {
        tracing::debug!("HTTPS connection ended: {e}");
    }
}

/// Answers a plain-HTTP request: reads what it sent (so closing does not reset the
/// connection before the client reads the reply), replies and half-closes.
async fn plain_http(stream: &TcpStream) {
    let mut buf = [0u8; 4096];
    let mut s = stream.clone();
    let _ = s.read(&mut buf).await;
    let _ = s.write_all(PLAIN_HTTP_REPLY).await;
    let _ = s.flush().await;
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

type Body = UnsyncBoxBody<Bytes, io::Error>;

/// What a request names, found on disk.
enum Found {
    File {
        file: fs::File,
        len: u64,
        path: PathBuf,
    },
    Listing(String),
    Redirect(String),
    Status(StatusCode, &'static str),
}

async fn respond(site: &Site, req: hyper::Request<Incoming>) -> hyper::Response<Body> {
    let method = req.method().clone();
    if !files::method_allowed(&method) {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(files::ALLOW));
        return r;
    }
    let path = match files::site_path(req.uri().path()) {
        Ok(p) => p,
        Err(refused) => {
            return text(refused.status(), &format!("{}\n", refused.reason()));
        }
    };
    let root = site.root.clone();
    let found = smol::unblock(move || find(&root, &path)).await;
    let head = method == Method::HEAD;
    match found {
        Found::File { file, len, path } => {
            let body = if head {
                empty()
            } else {
                file_body(smol::fs::File::from(file), len)
            };
            let mut r = hyper::Response::new(body);
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(files::content_type(&path)),
            );
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            r
        }
        Found::Listing(html) => {
            let len = html.len();
            let mut r = hyper::Response::new(if head { empty() } else { full(html) });
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            r
        }
        Found::Redirect(location) => {
            let mut r = text(StatusCode::MOVED_PERMANENTLY, "a directory: add /\n");
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        Found::Status(status, why) => text(status, why),
    }
}

/// Finds what `path` names under `root` (canonical), following symlinks only as far as they
/// stay under `root`. Blocking: runs on smol's blocking pool.
fn find(root: &Path, path: &SitePath) -> Found {
    let not_found = Found::Status(StatusCode::NOT_FOUND, "not found\n");
    let resolved = match fs::canonicalize(root.join(path.relative())) {
        Ok(p) => p,
        Err(e) => return io_status(&e),
    };
    if !files::is_within(root, &resolved) {
        tracing::debug!(
            "HTTPS: {} leads outside the served directory",
            path.display()
        );
        return not_found;
    }
    let meta = match fs::metadata(&resolved) {
        Ok(m) => m,
        Err(e) => return io_status(&e),
    };
    if meta.is_dir() {
        if !path.trailing_slash && !path.is_root() {
            return Found::Redirect(path.href(true));
        }
        let index = resolved.join(files::INDEX);
        if let Ok(index) = fs::canonicalize(&index)
            && files::is_within(root, &index)
            && let Some(found) = open_file(&index)
        {
            return found;
        }
        return listing(&resolved, path);
    }
    if path.trailing_slash {
        return not_found;
    }
    open_file(&resolved).unwrap_or(Found::Status(StatusCode::FORBIDDEN, "not a regular file\n"))
}

/// Opens a regular file (checked on the open file, so a swap after the check cannot slip a
/// FIFO or a device in); None if it is not one or cannot be opened.
fn open_file(path: &Path) -> Option<Found> {
    let file = fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    meta.is_file().then(|| Found::File {
        file,
        len: meta.len(),
        path: path.to_path_buf(),
    })
}

fn listing(dir: &Path, path: &SitePath) -> Found {
    let read = match fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) => return io_status(&e),
    };
    let mut entries = Vec::new();
    let mut more = false;
    for entry in read.flatten() {
        if entries.len() >= files::MAX_LISTING {
            more = true;
            break;
        }
        let is_dir = match entry.file_type() {
            Ok(t) if t.is_symlink() => entry.path().is_dir(),
            Ok(t) => t.is_dir(),
            Err(_) => false,
        };
        entries.push(Entry {
            name: entry.file_name(),
            is_dir,
        });
    }
    Found::Listing(files::listing_html(path, entries, more))
}

fn io_status(e: &io::Error) -> Found {
    match e.kind() {
        io::ErrorKind::PermissionDenied => Found::Status(StatusCode::FORBIDDEN, "forbidden\n"),
        _ => Found::Status(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn empty() -> Body {
    Empty::new()
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

fn full(text: String) -> Body {
    Full::new(Bytes::from(text))
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

fn text(status: StatusCode, body: &str) -> hyper::Response<Body> {
    let mut r = hyper::Response::new(full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Streams `len` bytes of `file` in [`CHUNK`]-byte reads. A file that shrinks meanwhile ends
/// the body with an error (hyper then closes the connection, as `Content-Length` cannot be
/// met); one that grows is cut at `len`.
fn file_body(file: smol::fs::File, len: u64) -> Body {
    let chunks = futures_lite::stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; CHUNK.min(usize::try_from(left).unwrap_or(CHUNK))];
        match file.read(&mut buf).await {
            Ok(0) => Some((
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file shrank while being sent",
                )),
                (file, 0),
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Frame::data(Bytes::from(buf))), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    StreamBody::new(chunks).boxed_unsync()
}
