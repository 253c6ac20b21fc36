//! `widesweep.Client` against a real coordinator and worker: a spec
//! submitted from Python trains, its status and results read from Python
//! equal `widesweep status` and `widesweep export`, and a client generated
//! from other .proto files is refused with a clear error.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn python(script: &str, cluster: &Cluster) -> std::process::Output {
    let python = std::env::var("WIDESWEEP_PYTHON").unwrap_or_else(|_| "/opt/widesweep-python/bin/python".to_string());
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("python/src");
    Command::new(&python)
        .args(["-c", script])
        .env("PYTHONPATH", src)
        .env("WIDESWEEP_URL", cluster.url())
        .env("WIDESWEEP_TOKEN", TOKEN)
        .env("SPEC", cluster.path("client.toml"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (run scripts/setup.sh --tests, or set WIDESWEEP_PYTHON): {e}"))
}

#[test]
fn the_python_client_submits_follows_and_reads_what_export_writes() {
    let _serial = serial();
    let cluster = Cluster::new(None, 5);
    let _coordinator = cluster.serve("coordinator.log");
    std::fs::write(cluster.path("client.toml"), tiny_spec("client", "mnist", &[1, 2], &[1], 2)).unwrap();
    let _worker = cluster.work("worker");
    let script = r#"
import json, os
import widesweep
client = widesweep.Client(os.environ["WIDESWEEP_URL"], os.environ["WIDESWEEP_TOKEN"])
submitted = client.submit(os.environ["SPEC"])
status = client.wait("client", timeout=120, poll=0.2)
print(json.dumps({
    "version": client.coordinator_version,
    "submitted": submitted,
    "status": status,
    "results": client.results("client"),
    "epochs": len(client.epochs("client")),
}))
"#;
    let out = python(script, &cluster);
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(got["submitted"]["new_cells"], 2, "{got}");
    assert_eq!(got["status"]["succeeded"], 2, "{got}");
    assert_eq!(got["status"]["seeds_target_ci"], serde_json::Value::Null, "an unset optional is None: {got}");
    assert_eq!(got["epochs"], 4, "2 jobs x 2 epochs");

    let mut export = widesweep();
    export.args(["export", "client", "--format", "jsonl"]);
    cluster.client_args(&mut export, TOKEN);
    let exported = export.output().unwrap();
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    let exported: Vec<serde_json::Value> =
        text(&exported.stdout).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let results = got["results"].as_array().unwrap();
    assert_eq!(results.len(), exported.len());
    for (python, cli) in results.iter().zip(&exported) {
        let (python, cli) = (python.as_object().unwrap(), cli.as_object().unwrap());
        assert_eq!(python.keys().collect::<Vec<_>>(), cli.keys().collect::<Vec<_>>(), "the same fields");
        for (key, value) in cli {
            let same = match (value.as_f64(), python[key].as_f64()) {
                (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * a.abs().max(1.0),
                _ => value == &python[key],
            };
            assert!(same, "{key}: export {value} != client {}", python[key]);
        }
    }
}

#[test]
fn a_client_of_another_api_is_refused_with_a_clear_error() {
    let _serial = serial();
    let cluster = Cluster::new(None, 5);
    let _coordinator = cluster.serve("coordinator.log");
    let script = r#"
import os
import widesweep.client
widesweep.client.PROTO_SHA256 = "0" * 64
try:
    widesweep.client.Client(os.environ["WIDESWEEP_URL"], os.environ["WIDESWEEP_TOKEN"])
except widesweep.client.VersionMismatch as error:
    print(error)
"#;
    let out = python(script, &cluster);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("install the Python package of the coordinator's release"), "{stdout}");
    assert!(stdout.contains("serves API") && stdout.contains("speaks 000000000000"), "{stdout}");
}
