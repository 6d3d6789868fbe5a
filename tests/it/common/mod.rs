//! Shared helpers for the integration tests: the built binary with a clean,
//! fast environment, and runners that do not block the async test runtime
//! (wiremock and the sandbox serve from that runtime).

use std::process::Output;

use assert_cmd::Command;

pub mod db;
pub mod fake;

/// Keys the tests hand to the binary; every test asserts none of them
/// appears in anything the binary wrote.
pub const CHATZURI_KEY: &str = "cz-test-key-5f2a9c1e77d04b3b";
pub const NEOAGENT_KEY: &str = "na-test-key-0b9d8e7f6a5c4d3e";
pub const ROBOFY_KEY: &str = "rf-test-key-9a8b7c6d5e4f3a2b";
pub const CHATBASE_KEY: &str = "cb-test-key-4e3d2c1b0a9f8e7d";

/// The binary, with no inherited keys, base URLs, proxies, config or log
/// settings, and with retry back-off shortened to a millisecond.
pub fn leads() -> Command {
    clean(Command::cargo_bin("leads").expect("the leads binary is built"))
}

/// The Singer tap binary, with the same clean environment as [`leads`].
pub fn tap_leads() -> Command {
    clean(Command::cargo_bin("tap-leads").expect("the tap-leads binary is built"))
}

fn clean(mut cmd: Command) -> Command {
    for var in [
        "CHATZURI_API_KEY",
        "NEOAGENT_API_KEY",
        "ROBOFY_API_KEY",
        "CHATBASE_API_KEY",
        "CHATZURI_BASE_URL",
        "NEOAGENT_BASE_URL",
        "ROBOFY_BASE_URL",
        "CHATBASE_BASE_URL",
        "RUST_LOG",
        "LEADS_CONFIG",
        "LEADS_NOW",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("XDG_CONFIG_HOME", "/nonexistent-leads-test-config");
    cmd.env("LEADS_RETRY_BASE_MS", "1");
    cmd
}

/// Runs the command on a blocking thread, so a server on the test's runtime
/// keeps answering.
pub async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("the binary runs"))
        .await
        .expect("the runner thread did not panic")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the exit code, showing stderr when it is wrong.
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit code; stderr:\n{}\nstdout (first 2000 bytes):\n{}",
        stderr(output),
        &stdout(output).chars().take(2000).collect::<String>()
    );
}

/// Asserts that no test key, nor any 12-character run of one, appears
/// anywhere in what the binary wrote.
pub fn assert_no_key(output: &Output) {
    assert_no_key_in("stdout", &output.stdout);
    assert_no_key_in("stderr", &output.stderr);
}

/// The same scan over any bytes (an output file, a state file, a report).
pub fn assert_no_key_in(what: &str, bytes: &[u8]) {
    for key in [CHATZURI_KEY, NEOAGENT_KEY, ROBOFY_KEY, CHATBASE_KEY] {
        assert_no_secret_in(what, bytes, key);
    }
}

/// Every 12-character run of `secret` is searched for: a vendor that echoes
/// part of a key leaks it as surely as one that echoes all of it.
pub fn assert_no_secret_in(what: &str, bytes: &[u8], secret: &str) {
    let secret = secret.as_bytes();
    let run = secret.len().min(12);
    for start in 0..=secret.len() - run {
        let needle = &secret[start..start + run];
        assert!(
            !bytes.windows(run).any(|w| w == needle),
            "a 12-character run of the key leaked into {what}"
        );
    }
}

/// Scans every file under `dir` (outputs, state, temporary files).
pub fn assert_no_key_in_dir(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).expect("the directory is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            assert_no_key_in_dir(&path);
        } else if let Ok(bytes) = std::fs::read(&path) {
            assert_no_key_in(&path.display().to_string(), &bytes);
        }
    }
}

/// Parses NDJSON output into values.
pub fn ndjson(output: &Output) -> Vec<serde_json::Value> {
    stdout(output)
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("bad NDJSON line {line:?}: {e}"))
        })
        .collect()
}

// ------------------------------------------------------------------ TLS

/// A test CA and a leaf certificate for `localhost`/`127.0.0.1` signed by it.
pub struct TestCa {
    pub ca_pem: String,
    pub leaf_der: Vec<u8>,
    pub leaf_key_der: Vec<u8>,
}

pub fn make_ca() -> TestCa {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "leads test internal CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    TestCa {
        ca_pem: ca.pem(),
        leaf_der: leaf.der().to_vec(),
        leaf_key_der: leaf_key.serialize_der(),
    }
}

/// A TLS server on loopback that answers every request with `body`.
pub async fn tls_server(ca: &TestCa, body: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(ca.leaf_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ca.leaf_key_der.clone())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(&body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    format!("https://127.0.0.1:{port}")
}

/// The simulator's name for a client vendor (the simulator shares no types
/// with the client; they meet by name).
pub fn sim(vendor: leads::model::Vendor) -> leads::sandbox::SimVendor {
    leads::sandbox::SimVendor::from_name(vendor.as_str()).expect("the sandbox serves every vendor")
}

/// The sandbox's base URL for a client vendor.
pub fn sandbox_url(sandbox: &leads::sandbox::Sandbox, vendor: leads::model::Vendor) -> String {
    sandbox.url(sim(vendor))
}

/// The key the sandbox accepts for a client vendor.
pub fn sandbox_key(vendor: leads::model::Vendor) -> &'static str {
    sim(vendor).key()
}
