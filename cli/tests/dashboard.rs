//! The dashboard from the two commands that serve it, as a user starts
//! them: `serve --http` with the coordinator's TLS certificate (HTTPS, the
//! token required) and `run`, whose output says where to open the sweep.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// A GET over HTTP/1.1 on `stream`; the status code and the body.
fn get_on(mut stream: impl Read + Write, path: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    // A server that refuses the protocol may reset before the request is written.
    if write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n").is_err() {
        return (0, String::new());
    }
    let mut response = Vec::new();
    // A TLS peer may close without close_notify; what arrived is the answer.
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    get_on(TcpStream::connect(("127.0.0.1", port)).unwrap(), path, token)
}

/// A GET over HTTPS, trusting only the coordinator's certificate.
fn get_tls(port: u16, cert: &std::path::Path, path: &str, token: Option<&str>) -> (u16, String) {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for der in rustls::pki_types::CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(der.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    get_on(rustls::StreamOwned::new(connection, tcp), path, token)
}

#[test]
fn serve_shows_the_dashboard_over_https_to_token_holders() {
    let _serial = serial();
    let cluster = Cluster::new(None, 30).with_tls();
    let http = free_port();
    let mut command = widesweep();
    command.args(["serve", "--db", &cluster.db, "--listen"]).arg(format!("127.0.0.1:{}", cluster.port));
    command.args(["--http", &format!("127.0.0.1:{http}"), "--token", TOKEN]);
    command.arg("--artifacts").arg(cluster.path("artifacts"));
    command.arg("--tls-cert").arg(cluster.path("coordinator.crt"));
    command.arg("--tls-key").arg(cluster.path("coordinator.key"));
    let server = spawn(command, cluster.path("serve.log"));
    wait_for("the dashboard to listen", Duration::from_secs(30), || TcpStream::connect(("127.0.0.1", http)).ok());
    assert!(server.log_text().contains(&format!("dashboard at https://127.0.0.1:{http}/")), "{}", server.log_text());
    cluster.submit("shown", &[1, 2], &[1], 2, 1);

    let cert = cluster.tls_cert.clone().unwrap();
    let (status, body) = get_tls(http, &cert, "/api/sweeps", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"name\":\"shown\"") && body.contains("\"pending\":2"), "{body}");
    let (status, body) = get_tls(http, &cert, "/sweeps/shown", Some(TOKEN));
    assert_eq!(status, 200);
    assert!(body.contains("/assets/app.js"), "{body}");
    let (status, _) = get_tls(http, &cert, "/api/sweeps", None);
    assert_eq!(status, 401, "no token, no data");
    let (status, _) = get_tls(http, &cert, "/api/sweeps", Some("wrong-token-0123456789"));
    assert_eq!(status, 401);
    // Plain HTTP on the HTTPS port gets no page.
    let (status, _) = get(http, "/api/sweeps", Some(TOKEN));
    assert_ne!(status, 200);
}

#[test]
fn run_says_where_its_sweep_page_is_and_serves_it_while_training() {
    let _serial = serial();
    let cluster = Cluster::new(None, 5);
    let spec = cluster.path("watched.toml");
    std::fs::write(&spec, tiny_spec("watched", "mnist", &[1], &[1, 2], 40)).unwrap();
    let http = free_port();
    let mut command = run_command(&cluster, &spec);
    command.args(["--http", &format!("127.0.0.1:{http}")]);
    let mut run = spawn(command, cluster.path("run.log"));
    let page = format!("dashboard at http://127.0.0.1:{http}/sweeps/watched");
    wait_for("run to print the dashboard's address", Duration::from_secs(60), || {
        run.log_text().contains(&page).then_some(())
    });
    // While it trains, the sweep's page and its data are there.
    let (status, body) = get(http, "/sweeps/watched", None);
    assert_eq!(status, 200, "{body}");
    let progressed = wait_for("an epoch on the page's table", Duration::from_secs(120), || {
        let (status, body) = get(http, "/api/sweeps/watched/curves", None);
        assert_eq!(status, 200, "{body}");
        body.contains("\"epoch\":1").then_some(body)
    });
    assert!(progressed.contains("\"label\""), "{progressed}");
    let (status, body) = get(http, "/api/workers", None);
    assert_eq!(status, 200);
    assert!(body.contains("\"sweep\":\"watched\""), "the local worker trains the sweep: {body}");
    run.signal("INT");
    let status = run.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(130), "{}", run.log_text());
}
