//! docker-compose.yml cannot be run here (no Docker), so this checks what
//! can be checked without it: every widesweep command line in it parses
//! with the real argument parser, and the services agree with each other
//! (addresses, ports, credentials, token, GPU reservation, image).

use std::collections::HashMap;
use std::path::Path;

use clap::Parser;
use serde_yaml_ng::Value;

fn repo_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn compose() -> Value {
    serde_yaml_ng::from_str(&repo_file("docker-compose.yml")).expect("docker-compose.yml is valid YAML")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"].get(name).unwrap_or_else(|| panic!("docker-compose.yml has no service {name:?}"))
}

fn command(service: &Value) -> Vec<String> {
    service["command"]
        .as_sequence()
        .expect("commands are written as lists (no shell word splitting)")
        .iter()
        .map(|v| v.as_str().expect("command words are strings").to_string())
        .collect()
}

/// The value after `flag` in a command line.
fn flag<'a>(command: &'a [String], flag: &str) -> &'a str {
    let at = command.iter().position(|w| w == flag).unwrap_or_else(|| panic!("{command:?} has no {flag}"));
    &command[at + 1]
}

fn env(service: &Value) -> HashMap<String, String> {
    service["environment"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_string(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_widesweep_command_line_parses() {
    let compose = compose();
    let mut checked = 0;
    for (name, service) in compose["services"].as_mapping().unwrap() {
        if service.get("command").is_none() {
            continue;
        }
        let words = command(service);
        assert_eq!(words[0], "widesweep", "service {name:?} should run widesweep");
        if let Err(error) = widesweep::Cli::try_parse_from(&words) {
            panic!("service {name:?}: `{}` does not parse:\n{error}", words.join(" "));
        }
        checked += 1;
    }
    assert_eq!(checked, 2, "the coordinator and the worker");
    // The parser is strict: a misspelt flag is caught, so the check above means something.
    assert!(widesweep::Cli::try_parse_from(["widesweep", "work", "--coordinatr", "http://x:1"]).is_err());
}

#[test]
fn the_services_reference_each_other_consistently() {
    let compose = compose();
    let postgres = service(&compose, "postgres");
    let coordinator = service(&compose, "coordinator");
    let worker = service(&compose, "worker");
    let serve = command(coordinator);
    let work = command(worker);
    assert_eq!(serve[1], "serve");
    assert_eq!(work[1], "work");

    // The coordinator's database is the postgres service, with its credentials.
    let pg = env(postgres);
    let expected_db =
        format!("postgres://{}:{}@postgres:5432/{}", pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"]);
    assert_eq!(flag(&serve, "--db"), expected_db);
    assert_eq!(coordinator["depends_on"]["postgres"]["condition"].as_str(), Some("service_healthy"));
    assert!(postgres.get("healthcheck").is_some());

    // Workers reach the coordinator by its service name, on the port it
    // listens on, which is also published for clients outside.
    let listen = flag(&serve, "--listen");
    let port = listen.rsplit(':').next().unwrap();
    assert!(listen.starts_with("0.0.0.0:"), "the coordinator must listen beyond loopback inside its container");
    assert_eq!(flag(&work, "--coordinator"), format!("http://coordinator:{port}"));
    let published: Vec<&str> =
        coordinator["ports"].as_sequence().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(published.iter().any(|p| p.ends_with(&format!(":{port}"))), "{published:?} should publish {port}");
    let depends: Vec<&str> = worker["depends_on"].as_sequence().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    assert!(depends.contains(&"coordinator"));

    // A non-loopback coordinator needs tokens (serve refuses otherwise):
    // one per role, each from the environment, none shared; workers send
    // the worker token and nothing more.
    let coordinator_env = env(coordinator);
    for role in ["USER", "WORKER", "VIEWER"] {
        let token = &coordinator_env[&format!("WIDESWEEP_{role}_TOKEN")];
        assert!(token.starts_with(&format!("${{WIDESWEEP_{role}_TOKEN")), "from the environment: {token}");
    }
    assert!(!coordinator_env.contains_key("WIDESWEEP_TOKEN"), "no token with every role");
    assert_eq!(env(worker)["WIDESWEEP_TOKEN"], coordinator_env["WIDESWEEP_WORKER_TOKEN"]);
    assert!(!serve.iter().any(|w| w == "--insecure"));

    // Artifacts persist in a volume mounted where --artifacts points.
    let artifacts = flag(&serve, "--artifacts");
    let volumes: Vec<&str> =
        coordinator["volumes"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(volumes.iter().any(|v| v.ends_with(&format!(":{artifacts}"))), "{volumes:?}");
    let data_dir = flag(&work, "--data-dir");
    let volumes: Vec<&str> = worker["volumes"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(volumes.iter().any(|v| v.ends_with(&format!(":{data_dir}"))), "{volumes:?}");
    for named in compose["volumes"].as_mapping().unwrap().keys() {
        let named = named.as_str().unwrap();
        let used = ["postgres", "coordinator", "worker"].iter().any(|s| {
            service(&compose, s)["volumes"]
                .as_sequence()
                .is_some_and(|v| v.iter().any(|v| v.as_str().unwrap().starts_with(&format!("{named}:"))))
        });
        assert!(used, "volume {named} is declared but not mounted");
    }

    // Workers reserve NVIDIA GPUs and run the image the coordinator builds.
    let devices = &worker["deploy"]["resources"]["reservations"]["devices"][0];
    assert_eq!(devices["driver"].as_str(), Some("nvidia"));
    assert!(devices["capabilities"].as_sequence().unwrap().iter().any(|c| c.as_str() == Some("gpu")));
    assert_eq!(worker["image"], coordinator["image"]);
    assert_eq!(coordinator["build"].as_str(), Some("."));
    let dockerfile = repo_file("Dockerfile");
    assert!(dockerfile.contains("/usr/local/bin/widesweep"), "the image puts widesweep on PATH");
    assert!(dockerfile.contains("--features cuda"), "the image is built with CUDA");
}
