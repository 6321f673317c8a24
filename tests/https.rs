//! The agent's API over HTTPS, driven by `curl`, `openssl s_client` and a rustls client:
//! certificates from the config or a self-signed one kept in the data dir, client
//! certificates, TLS versions, and certificates reloaded on SIGHUP while a connection stays
//! open.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{Agent, read_response, require_curl, write};
use outpost::tls::testing::{TestCa, TestCert};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

fn require_openssl() {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "these tests need `openssl` (Debian package openssl); the README's test command installs it"
    );
}

fn https_port(agent: &Agent) -> u16 {
    agent
        .https
        .expect("HTTPS listener in the agent's log")
        .port()
}

/// `curl -s -o /dev/null -w %{http_code} ARGS` over HTTPS: the status, or 0 when the TLS
/// connection failed.
fn curl_status(args: &[&str]) -> u16 {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(args)
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// `openssl s_client` at `version` (e.g. `-tls1_3`): whether the handshake completed, and
/// what it printed. SECLEVEL=0 so that OpenSSL itself is willing to offer old versions: a
/// refusal is then the server's.
fn handshake(port: u16, version: &str) -> (bool, String) {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            version,
        ])
        .args(["-cipher", "DEFAULT@SECLEVEL=0"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ok =
        out.status.success() && text.contains("Cipher is") && !text.contains("Cipher is (NONE)");
    (ok, text)
}

#[test]
fn self_signed_certificate_is_made_once_kept_and_serves_tls_1_2_and_1_3_only() {
    require_curl();
    require_openssl();
    let tmp = tempfile::tempdir().unwrap();
    let (data, conf) = (tmp.path().join("data"), tmp.path().join("conf"));
    write(
        &conf,
        "web.json",
        r#"{"service": {"name": "web", "port": 80}}"#,
    );
    let agent = Agent::start_box1(&data, &conf, &["-https-port", "0"]);
    let port = https_port(&agent);
    let cert = data.join("tls/agent.crt.pem");
    let key = data.join("tls/agent.key.pem");
    assert!(cert.exists() && key.exists());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600,
        "the key is the agent's alone"
    );
    let url = format!("https://127.0.0.1:{port}/v1/catalog/service/web");
    assert_eq!(
        curl_status(&["--cacert", cert.to_str().unwrap(), &url]),
        200
    );
    assert_eq!(
        curl_status(&[&url]),
        0,
        "not trusted without the certificate"
    );
    let page = format!("https://localhost:{port}/");
    assert_eq!(
        curl_status(&["--cacert", cert.to_str().unwrap(), &page]),
        200
    );
    assert!(handshake(port, "-tls1_3").0);
    assert!(handshake(port, "-tls1_2").0);
    let (ok, out) = handshake(port, "-tls1_1");
    assert!(!ok, "TLS 1.1 was accepted: {out}");
    assert!(
        out.contains("alert") && !out.contains("no protocols available"),
        "TLS 1.1 not refused by the server: {out}"
    );
    // The CLI over HTTPS: with the agent's certificate as its CA, and not without.
    let cli = |extra: &[&str]| {
        Command::new(common::bin())
            .args([
                "members",
                "-http-addr",
                &format!("https://127.0.0.1:{port}"),
            ])
            .args(extra)
            .env_remove("CONSUL_CACERT")
            .output()
            .unwrap()
    };
    let out = cli(&["-ca-file", cert.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("box1"));
    let out = cli(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("certificate"));
    let pem = std::fs::read(&cert).unwrap();
    drop(agent);
    // A restart keeps the same certificate.
    let agent = Agent::start_box1(&data, &conf, &["-https-port", "0"]);
    assert_eq!(std::fs::read(&cert).unwrap(), pem);
    let url = format!("https://127.0.0.1:{}/v1/status/leader", https_port(&agent));
    assert_eq!(
        curl_status(&["--cacert", cert.to_str().unwrap(), &url]),
        200
    );
}

fn tls_config(conf: &std::path::Path, tls: &std::path::Path, verify_incoming: bool) {
    write(
        conf,
        "tls.json",
        &format!(
            r#"{{"tls": {{"defaults": {{"cert_file": "{t}/server.crt.pem", "key_file": "{t}/server.private_key.pem",
                "ca_file": "{t}/ca.crt.pem", "verify_incoming": {verify_incoming}}}}}}}"#,
            t = tls.display()
        ),
    );
}

#[test]
fn client_certificates_are_required_with_verify_incoming() {
    require_curl();
    let tmp = tempfile::tempdir().unwrap();
    let (data, conf, tls) = (
        tmp.path().join("data"),
        tmp.path().join("conf"),
        tmp.path().join("tls"),
    );
    let ca = TestCa::new("outpost test CA");
    let files = ca.write_server_files(&tls);
    let (client_cert, client_key) = ca.client_cert("operator").write(&tls, "client");
    let (other_cert, other_key) = TestCa::new("another CA")
        .client_cert("mallory")
        .write(&tls, "other");
    tls_config(&conf, &tls, true);
    let agent = Agent::start_box1(&data, &conf, &["-https-port", "0"]);
    let url = format!("https://localhost:{}/v1/status/leader", https_port(&agent));
    let ca_path = files.ca.to_str().unwrap();
    assert_eq!(
        curl_status(&["--cacert", ca_path, &url]),
        0,
        "no client certificate"
    );
    assert_eq!(
        curl_status(&[
            "--cacert",
            ca_path,
            "--cert",
            other_cert.to_str().unwrap(),
            "--key",
            other_key.to_str().unwrap(),
            &url
        ]),
        0,
        "a certificate from another CA"
    );
    assert_eq!(
        curl_status(&[
            "--cacert",
            ca_path,
            "--cert",
            client_cert.to_str().unwrap(),
            "--key",
            client_key.to_str().unwrap(),
            &url
        ]),
        200
    );
}

fn connect(port: u16, config: Arc<ClientConfig>) -> StreamOwned<ClientConnection, TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    StreamOwned::new(conn, tcp)
}

/// Reference: Consul reloads its TLS certificates on SIGHUP; open connections carry on.
#[test]
fn sighup_reloads_certificates_while_a_connection_stays_open() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, conf, tls) = (
        tmp.path().join("data"),
        tmp.path().join("conf"),
        tmp.path().join("tls"),
    );
    let old_ca = TestCa::new("old CA");
    old_ca.write_server_files(&tls);
    tls_config(&conf, &tls, false);
    let agent = Agent::start_box1(&data, &conf, &["-https-port", "0"]);
    let port = https_port(&agent);
    let mut open = BufReader::new(connect(port, old_ca.client_config(None)));
    let get = b"GET /v1/status/leader HTTP/1.1\r\nHost: localhost\r\n\r\n";
    open.get_mut().write_all(get).unwrap();
    let (head, _) = read_response(&mut open);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    // New certificate from another CA, then SIGHUP.
    let new_ca = TestCa::new("new CA");
    let new: TestCert = new_ca.server_cert();
    new.write(&tls, "server");
    agent.signal("HUP");
    agent.wait_log("config reloaded");

    // The open connection carries on; new ones get the new certificate.
    open.get_mut().write_all(get).unwrap();
    let (head, body) = read_response(&mut open);
    assert!(
        head.starts_with("HTTP/1.1 200") && body.contains("127.0.0.1:"),
        "{head}{body}"
    );
    let mut fresh = connect(port, new_ca.client_config(None));
    fresh.write_all(get).unwrap();
    let (head, _) = read_response(&mut BufReader::new(fresh));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut stale = connect(port, old_ca.client_config(None));
    assert!(
        stale.write_all(get).and_then(|_| stale.flush()).is_err() || {
            let mut b = [0u8; 1];
            stale.read(&mut b).is_err()
        },
        "the old CA no longer verifies the server"
    );

    // A broken certificate on reload: refused, logged, and the running one stays.
    std::fs::write(tls.join("server.crt.pem"), "not a certificate").unwrap();
    agent.signal("HUP");
    agent.wait_log("config reload failed");
    let mut again = connect(port, new_ca.client_config(None));
    again.write_all(get).unwrap();
    let (head, _) = read_response(&mut BufReader::new(again));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        agent.log().contains("server.crt.pem"),
        "the error names the file"
    );
}

#[test]
fn a_bad_certificate_at_start_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (conf, tls) = (tmp.path().join("conf"), tmp.path().join("tls"));
    let ca = TestCa::new("ca");
    ca.write_server_files(&tls);
    // The key of another certificate.
    let other = TestCa::new("other").server_cert();
    std::fs::write(tls.join("server.private_key.pem"), other.key_pem).unwrap();
    tls_config(&conf, &tls, false);
    let out = Command::new(common::bin())
        .args([
            "agent",
            "-server",
            "-bootstrap",
            "-node",
            "box1",
            "-bind",
            "127.0.0.1",
        ])
        .args(["-data-dir", tmp.path().join("data").to_str().unwrap()])
        .args(["-config-dir", conf.to_str().unwrap()])
        .args(["-dns-port", "0", "-http-port", "0", "-https-port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.private_key.pem") && err.contains("does not match"),
        "{err}"
    );
    assert!(!err.contains("listening"), "nothing listened: {err}");
}
