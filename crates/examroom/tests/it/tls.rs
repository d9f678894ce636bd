//! HTTPS without a proxy (issue 17): `serve --tls-cert/--tls-key` loads a PEM pair (bad files are clear errors), and
//! the API answers over TLS, the status stream included; plain HTTP on the TLS port gets no answer.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use examroom_api::tls::{Tls, TlsError};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::server::{sid, Client, Options, TestServer, SESSIONS};

/// A self-signed certificate for `localhost` (openssl, from Debian), as (cert.pem, key.pem).
fn self_signed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"])
        // A server's certificate, not a CA's (webpki refuses a CA as the end entity).
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl (scripts/install-deps.sh installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}

/// One HTTP/1.1 request over TLS to `addr`, trusting only `cert`; the whole answer (the connection is closed after).
async fn https(addr: &str, cert: &Path, request: String, read_for: Duration) -> String {
    use rustls_pki_types::pem::PemObject;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let until = tokio::time::Instant::now() + read_for;
    while let Ok(Ok(n)) = tokio::time::timeout_at(until, tls.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn bad_certificate_and_key_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let missing = dir.path().join("missing.pem");
    let e = Tls::load(&missing, &key).unwrap_err();
    assert!(matches!(e, TlsError::Cert { .. }) && e.to_string().contains("missing.pem"), "{e}");
    // The certificate where the key should be, and the key where the certificate should be.
    let e = Tls::load(&cert, &cert).unwrap_err();
    assert!(matches!(e, TlsError::Key { .. }), "{e}");
    let e = Tls::load(&key, &key).unwrap_err();
    assert!(matches!(e, TlsError::Cert { .. }), "{e}");
    // A key that does not belong to the certificate.
    let other = tempfile::tempdir().unwrap();
    let (_, other_key) = self_signed(other.path());
    let e = Tls::load(&cert, &other_key).unwrap_err();
    assert!(matches!(e, TlsError::Config(_)), "{e}");
    assert!(Tls::load(&cert, &key).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_its_status_stream_answer_over_tls_and_plain_http_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let tls = Tls::load(&cert, &key).unwrap();
    let s = TestServer::start_with(Options { tls: Some(tls), ..Options::default() }).await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let alice = s.candidate("alice");

    let health = https(
        &addr,
        &cert,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".into(),
        Duration::from_secs(10),
    )
    .await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let body = json!({ "exam_id": "quick" }).to_string();
    let created = https(
        &addr,
        &cert,
        format!(
            "POST {SESSIONS} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {alice}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        Duration::from_secs(30),
    )
    .await;
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let json_start = created.find("\r\n\r\n").unwrap() + 4;
    let view: serde_json::Value =
        serde_json::from_str(created[json_start..].trim()).unwrap_or_else(|e| panic!("{e}: {created}"));
    let id = sid(&view);
    // The status stream over TLS: its first event.
    let stream = https(
        &addr,
        &cert,
        format!("GET {SESSIONS}/{id}/status HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {alice}\r\n\r\n"),
        Duration::from_secs(3),
    )
    .await;
    assert!(stream.starts_with("HTTP/1.1 200") && stream.contains("text/event-stream"), "{stream}");
    assert!(stream.contains("event: status") && stream.contains(&id), "{stream}");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = Client { http: reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap() };
    let r = plain.http.get(format!("http://{addr}/healthz")).send().await;
    assert!(r.is_err() || !r.unwrap().status().is_success(), "plain HTTP was answered on the TLS port");
    s.teardown().await;
}
