//! TLS for every HTTPS server outpost runs: the one place a rustls `ServerConfig` is built
//! (aws-lc-rs, TLS 1.2 and 1.3 only), PEM files loaded with errors that name the file, an
//! identity that can be swapped while connections stay open, and self-signed certificates.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::{self, PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub mod files;
pub mod serve;
pub mod testing;

pub use serve::{HttpsServer, ServeError, ServeOptions};

/// A TLS problem, naming the file (or what was being built) and what is wrong.
#[derive(Debug)]
pub struct TlsError {
    /// The file at fault, if a file is.
    pub file: Option<PathBuf>,
    pub message: String,
}

impl TlsError {
    fn file(path: &Path, message: impl Into<String>) -> TlsError {
        TlsError {
            file: Some(path.to_path_buf()),
            message: message.into(),
        }
    }

    fn other(message: impl Into<String>) -> TlsError {
        TlsError {
            file: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "{}: {}", p.display(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for TlsError {}

/// The crypto provider of the whole binary (str0m uses aws-lc-rs too).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Largest PEM file read: a chain or a CA bundle is tens of KiB; Mozilla's whole root store
/// is about 200 KiB.
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Reads a file of PEM sections (at most [`MAX_PEM_BYTES`]), refusing what cannot be right
/// before parsing.
fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let cannot = |e: std::io::Error| TlsError::file(path, format!("cannot read the {what}: {e}"));
    let file = std::fs::File::open(path).map_err(cannot)?;
    if file.metadata().map_err(cannot)?.is_dir() {
        return Err(TlsError::file(
            path,
            format!("this is a directory, not the {what} file"),
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError::file(
            path,
            format!("the {what} file is over {MAX_PEM_BYTES} bytes: not a PEM file"),
        ));
    }
    // DER starts with an ASN.1 SEQUENCE whose length (over 127 bytes for any certificate
    // or key) takes 1-3 more bytes: 0x30 0x81..=0x83, which no text file starts with.
    if bytes.first() == Some(&0x30) && matches!(bytes.get(1), Some(0x81..=0x83)) {
        return Err(TlsError::file(
            path,
            format!(
                "the {what} looks like binary DER: give it as PEM (openssl x509 -inform der -in FILE -out FILE.pem, or openssl pkey -inform der for a key)"
            ),
        ));
    }
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(TlsError::file(
            path,
            format!(
                "the {what} is encrypted with a passphrase: give an unencrypted PEM key (openssl pkey -in KEY -out KEY.pem)"
            ),
        ));
    }
    Ok(bytes)
}

fn pem_error(path: &Path, what: &str, e: pem::Error) -> TlsError {
    let detail = match e {
        pem::Error::NoItemsFound => format!("no {what} found: expected a PEM file"),
        other => format!("malformed PEM in the {what}: {other:?}"),
    };
    TlsError::file(path, detail)
}

/// The certificate chain of a PEM file (the server's certificate first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_pem(path, "certificate")?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, "certificate", e))?;
    if certs.is_empty() {
        return Err(pem_error(path, "certificate", pem::Error::NoItemsFound));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_pem(path, "private key")?;
    for item in pem::PemObject::pem_slice_iter(&bytes) {
        let item: Result<(SectionKind, Vec<u8>), _> = item;
        match item {
            Ok((kind, der)) => {
                if let Some(key) = PrivateKeyDer::from_pem(kind, der) {
                    return Ok(key);
                }
            }
            Err(e) => return Err(pem_error(path, "private key", e)),
        }
    }
    Err(TlsError::file(
        path,
        "no private key found: expected a PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\" section",
    ))
}

/// A server identity (chain and key) from PEM files, checked to belong together.
pub fn load_identity(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = load_certs(cert)?;
    let der = load_key(key)?;
    identity_from_der(chain, der).map_err(|message| TlsError {
        file: Some(key.to_path_buf()),
        message: format!("{message} (certificate {})", cert.display()),
    })
}

/// A server identity from DER, checked to belong together.
pub fn identity_from_der(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, String> {
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("unusable private key: {e}"))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(Arc::new(certified)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err("the private key does not match the certificate".into())
        }
        Err(e) => Err(format!("cannot check the key against the certificate: {e}")),
    }
}

/// The CA certificates client certificates must chain to.
pub fn load_client_ca(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::file(path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// The identity a server presents, swappable while it runs: new handshakes get the new
/// certificate, open connections keep theirs.
#[derive(Debug)]
pub struct Identity(RwLock<Arc<CertifiedKey>>);

impl Identity {
    pub fn new(key: Arc<CertifiedKey>) -> Arc<Identity> {
        Arc::new(Identity(RwLock::new(key)))
    }

    pub fn set(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = key;
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ResolvesServerCert for Identity {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The one server configuration builder: TLS 1.2 and 1.3, HTTP/1.1 by ALPN, the given
/// identity, and client certificates required (chaining to `client_ca`) when one is given.
pub fn server_config(
    identity: Arc<Identity>,
    client_ca: Option<RootCertStore>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::other(format!("TLS versions: {e}")))?;
    let builder = match client_ca {
        Some(roots) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::other(format!("client certificate verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(identity);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A self-signed certificate and key (PEM) for `names` (DNS names or IP addresses).
pub fn self_signed(names: &[String]) -> Result<(String, String), TlsError> {
    let key = rcgen::KeyPair::generate()
        .map_err(|e| TlsError::other(format!("cannot generate a key: {e}")))?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|e| TlsError::other(format!("bad certificate names {names:?}: {e}")))?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        names.first().map_or("outpost", |n| n),
    );
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::other(format!("cannot sign the certificate: {e}")))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The certificate's SHA-256 fingerprint, as browsers and `openssl x509 -fingerprint
/// -sha256` print it (`AB:CD:...`).
pub fn fingerprint_sha256(cert: &CertificateDer<'_>) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.as_ref());
    d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn an_identity_loads_and_a_foreign_key_is_refused_naming_the_files() {
        let tmp = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        let (_, other_key) = self_signed(&["localhost".into()]).unwrap();
        let c = write(tmp.path(), "server.crt.pem", &cert);
        let k = write(tmp.path(), "server.private_key.pem", &key);
        let o = write(tmp.path(), "other.pem", &other_key);
        let id = load_identity(&c, &k).unwrap();
        assert_eq!(fingerprint_sha256(&id.cert[0]).len(), 32 * 3 - 1);
        let e = load_identity(&c, &o).unwrap_err().to_string();
        assert!(
            e.contains("other.pem") && e.contains("does not match"),
            "{e}"
        );
        assert!(server_config(Identity::new(id), None).is_ok());
    }

    #[test]
    fn missing_malformed_and_encrypted_files_get_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope.pem");
        let e = load_certs(&missing).unwrap_err().to_string();
        assert!(e.contains("nope.pem") && e.contains("cannot read"), "{e}");
        let junk = write(tmp.path(), "junk.pem", "hello\n");
        assert!(
            load_certs(&junk)
                .unwrap_err()
                .to_string()
                .contains("no certificate found")
        );
        assert!(
            load_key(&junk)
                .unwrap_err()
                .to_string()
                .contains("no private key found")
        );
        let bad = write(
            tmp.path(),
            "bad.pem",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        );
        let e = load_certs(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.pem") && e.contains("malformed"), "{e}");
        let dir = load_certs(tmp.path()).unwrap_err().to_string();
        assert!(dir.contains("directory"), "{dir}");
        let big = tmp.path().join("big.pem");
        std::fs::write(&big, vec![b'A'; MAX_PEM_BYTES as usize + 1]).unwrap();
        let e = load_certs(&big).unwrap_err().to_string();
        assert!(e.contains("big.pem") && e.contains("over"), "{e}");
        let der = tmp.path().join("cert.der");
        let (cert, _) = self_signed(&["localhost".into()]).unwrap();
        let cert = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        std::fs::write(&der, cert.as_ref()).unwrap();
        let e = load_certs(&der).unwrap_err().to_string();
        assert!(e.contains("cert.der") && e.contains("DER"), "{e}");
        let enc = write(
            tmp.path(),
            "enc.pem",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        assert!(
            load_key(&enc)
                .unwrap_err()
                .to_string()
                .contains("encrypted")
        );
    }
}
