//! A throwaway PKI and a small HTTPS client for tests: a CA, server and client certificates
//! signed by it, written as PEM files when a server wants files, and a rustls client that
//! trusts the CA. Not behind `cfg(test)`: integration tests and users' tests use it too.
//!
//! Everything here panics with a message on failure: it serves tests, where a failure to
//! make a certificate is a broken test, not an input to handle.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use rustls_pki_types::pem::PemObject;

/// The names a test server certificate is valid for.
pub const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A test certificate authority (ECDSA P-256), made fresh each time.
pub struct TestCa {
    cert: rcgen::Certificate,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its private key, both PEM (the key is PKCS#8).
#[derive(Clone, Debug)]
pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Where [`TestCa::write_server_files`] put the server's files.
#[derive(Clone, Debug)]
pub struct ServerFiles {
    /// `server.crt.pem`
    pub cert: PathBuf,
    /// `server.private_key.pem`
    pub key: PathBuf,
    /// `ca.crt.pem`
    pub ca: PathBuf,
}

impl TestCa {
    /// A new CA whose certificate's common name is `name`.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("generate a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-sign the CA");
        TestCa {
            cert,
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// A store holding just this CA, for clients (or for a server verifying clients).
    pub fn root_store(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert_der()).expect("add the test CA");
        roots
    }

    fn sign(&self, params: CertificateParams) -> TestCert {
        let key = KeyPair::generate().expect("generate a key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        TestCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server certificate for [`SERVER_NAMES`] (`localhost`, `127.0.0.1`, `::1`).
    pub fn server_cert(&self) -> TestCert {
        let names: Vec<String> = SERVER_NAMES.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("server names");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A client certificate (clientAuth) with `common_name` as its subject.
    pub fn client_cert(&self, common_name: &str) -> TestCert {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    /// Writes `ca.crt.pem` into `dir` and returns its path.
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        write(dir, "ca.crt.pem", &self.cert_pem())
    }

    /// Writes a new server certificate and key and this CA into `dir`, as
    /// `server.crt.pem`, `server.private_key.pem` and `ca.crt.pem`.
    pub fn write_server_files(&self, dir: &Path) -> ServerFiles {
        let (cert, key) = self.server_cert().write(dir, "server");
        ServerFiles {
            cert,
            key,
            ca: self.write_ca(dir),
        }
    }

    /// A rustls client trusting only this CA (TLS 1.2 and 1.3, ALPN http/1.1), presenting
    /// `client` when given.
    pub fn client_config(&self, client: Option<&TestCert>) -> Arc<ClientConfig> {
        let builder = ClientConfig::builder_with_provider(super::provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("TLS versions")
            .with_root_certificates(self.root_store());
        let mut config = match client {
            Some(c) => builder
                .with_client_auth_cert(vec![c.cert_der()], c.key_der())
                .expect("client certificate"),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl TestCert {
    /// Writes `{stem}.crt.pem` and `{stem}.private_key.pem` into `dir` (created if need be)
    /// and returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        (
            write(dir, &format!("{stem}.crt.pem"), &self.cert_pem),
            write(dir, &format!("{stem}.private_key.pem"), &self.key_pem),
        )
    }

    pub fn cert_der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).expect("test certificate PEM")
    }

    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("test key PEM")
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// A response as [`https_request`] read it.
#[derive(Clone, Debug)]
pub struct TestResponse {
    pub status: u16,
    /// Names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl TestResponse {
    /// The first header called `name` (give it lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (bytes that are not UTF-8 shown as U+FFFD).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Most response bytes [`https_request`] reads.
pub const MAX_RESPONSE: usize = 64 * 1024 * 1024;
/// How long [`https_request`] waits for any one read or write.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP/1.1 request over TLS to `addr` (blocking rustls over a `std` socket), verifying
/// the server as `localhost`, with `Connection: close`; the response is read to its end.
/// `target` is sent as it is (percent-encode it yourself). An error is returned when the
/// handshake, the I/O or the response head fails (such as a refused client certificate).
pub fn https_request(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    method: &str,
    target: &str,
) -> io::Result<TestResponse> {
    let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
    let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(conn, tcp);
    write!(
        tls,
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    tls.flush()?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match tls.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&chunk[..n]);
                if raw.len() > MAX_RESPONSE {
                    return Err(io::Error::other("response over MAX_RESPONSE"));
                }
            }
            // A peer that closes without close_notify: the response is judged below.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    parse_response(&raw, method == "HEAD")
}

/// [`https_request`] with GET.
pub fn https_get(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    target: &str,
) -> io::Result<TestResponse> {
    https_request(addr, config, "GET", target)
}

fn parse_response(raw: &[u8], head_only: bool) -> io::Result<TestResponse> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let len = match parsed.parse(raw) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("incomplete response head ({} bytes)", raw.len()),
            ));
        }
        Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
    };
    let status = parsed.code.unwrap_or(0);
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let body = raw[len..].to_vec();
    let declared = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    if let Some(n) = declared
        && !head_only
        && n != body.len()
    {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("Content-Length {n} but {} body bytes", body.len()),
        ));
    }
    Ok(TestResponse {
        status,
        headers,
        body,
    })
}
