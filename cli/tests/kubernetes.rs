//! The Kubernetes manifests (deploy/kubernetes) without a cluster: both
//! overlays render with `kubectl kustomize`, validate against the
//! Kubernetes API schemas (kubernetes-validate, strict), and a static
//! policy scan of them and of the Dockerfile (checkov) finds nothing.
//! scripts/setup.sh --tests installs the tools (kubectl when missing,
//! kubernetes-validate and checkov from PyPI into /opt/widesweep-test-tools).
//! Each tool is first shown a bad input, so a tool that passes everything
//! cannot pass this test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A tool of the test environment: from WIDESWEEP_TEST_TOOLS (a venv's
/// bin), then the PATH.
fn tool(name: &str) -> Command {
    let dir = std::env::var("WIDESWEEP_TEST_TOOLS").unwrap_or_else(|_| "/opt/widesweep-test-tools/bin".to_string());
    let path = Path::new(&dir).join(name);
    Command::new(if path.exists() { path } else { PathBuf::from(name) })
}

fn run(mut command: Command) -> Output {
    let shown = format!("{command:?}");
    command.output().unwrap_or_else(|e| panic!("{shown}: {e} (run `bash scripts/setup.sh --tests`)"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A copy of deploy/kubernetes with the files a user writes (tokens, the
/// database URL), rendered per overlay into `out/<overlay>.yaml`.
fn render(dir: &Path) -> Vec<(String, String)> {
    let copy = dir.join("kubernetes");
    let status = Command::new("cp").arg("-r").arg(repo_root().join("deploy/kubernetes")).arg(&copy).status().unwrap();
    assert!(status.success());
    for role in ["user", "worker", "viewer"] {
        std::fs::write(copy.join(format!("base/tokens/{role}.token")), format!("token-of-the-{role}-role\n")).unwrap();
    }
    std::fs::write(copy.join("overlays/postgres/database.url"), "postgres://widesweep:secret@db:5432/widesweep\n")
        .unwrap();
    ["sqlite", "postgres"]
        .into_iter()
        .map(|overlay| {
            let mut kubectl = Command::new("kubectl");
            kubectl.arg("kustomize").arg(copy.join("overlays").join(overlay));
            let out = run(kubectl);
            assert!(out.status.success(), "kubectl kustomize {overlay}: {}", text(&out.stderr));
            (overlay.to_string(), text(&out.stdout))
        })
        .collect()
}

#[test]
fn the_overlays_render_with_what_a_cluster_needs() {
    let dir = tempfile::tempdir().unwrap();
    for (overlay, yaml) in render(dir.path()) {
        for kind in
            ["kind: Namespace", "kind: Secret", "kind: Service", "kind: PersistentVolumeClaim", "kind: Deployment"]
        {
            assert!(yaml.contains(kind), "{overlay}: no {kind}");
        }
        for needle in [
            "kind: Job",
            "completionMode: Indexed",
            "nvidia.com/gpu: 1",
            "terminationGracePeriodSeconds: 600",
            "runAsNonRoot: true",
            "readOnlyRootFilesystem: true",
            "kind: NetworkPolicy",
            "--exit-when-idle",
            "namespace: widesweep",
        ] {
            assert!(yaml.contains(needle), "{overlay}: no {needle:?}");
        }
        // Secrets only as Secret data, never in a container's arguments.
        assert!(!yaml.contains("token-of-the-"), "{overlay}: a token in clear text");
        assert!(!yaml.contains("secret@db"), "{overlay}: the database password in clear text");
        if overlay == "postgres" {
            assert!(yaml.contains("--db-file"), "the postgres overlay reads its URL from the Secret");
        }
    }
}

#[test]
fn the_manifests_validate_against_the_kubernetes_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  portz: []\n").unwrap();
    let mut validate = tool("kubernetes-validate");
    validate.arg("--strict").arg(&bad);
    assert!(!run(validate).status.success(), "kubernetes-validate accepted an unknown field");

    for (overlay, yaml) in render(dir.path()) {
        let file = dir.path().join(format!("{overlay}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        let mut validate = tool("kubernetes-validate");
        validate.arg("--strict").arg(&file);
        let out = run(validate);
        assert!(out.status.success(), "{overlay}: {}{}", text(&out.stdout), text(&out.stderr));
    }
}

/// checkov's summaries: (failed, passed) over every report it printed.
fn checkov(args: &[&str], target: &Path) -> (u64, u64) {
    let mut command = tool("checkov");
    command.args(args).arg(target).args(["--quiet", "--compact", "--skip-download", "-o", "json"]);
    let out = run(command);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("checkov's JSON ({e}): {}{}", text(&out.stdout), text(&out.stderr)));
    let reports = match json {
        serde_json::Value::Array(reports) => reports,
        report => vec![report],
    };
    reports.iter().fold((0, 0), |(failed, passed), report| {
        let summary = &report["summary"];
        (failed + summary["failed"].as_u64().unwrap_or(0), passed + summary["passed"].as_u64().unwrap_or(0))
    })
}

#[test]
fn a_policy_scan_of_the_manifests_and_the_dockerfile_finds_nothing() {
    // Not tempdir()'s hidden `.tmpXXXX`: checkov skips hidden directories.
    let dir = tempfile::Builder::new().prefix("widesweep-checkov-").tempdir().unwrap();
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(
        bad.join("pod.yaml"),
        concat!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers:\n    - name: x\n",
            "      image: x:latest\n      securityContext:\n        privileged: true\n",
        ),
    )
    .unwrap();
    let (failed, _) = checkov(&["--framework", "kubernetes", "-d"], &bad);
    assert!(failed > 5, "checkov found only {failed} problems in a privileged pod");

    let rendered = dir.path().join("rendered");
    std::fs::create_dir(&rendered).unwrap();
    for (overlay, yaml) in render(dir.path()) {
        std::fs::write(rendered.join(format!("{overlay}.yaml")), yaml).unwrap();
    }
    let (failed, passed) = checkov(&["--framework", "kubernetes", "-d"], &rendered);
    assert_eq!(failed, 0, "checkov's findings in the manifests (run checkov -d on `kubectl kustomize`'s output)");
    assert!(passed > 100, "checkov ran {passed} checks");
    let (failed, passed) = checkov(&["--framework", "dockerfile", "-f"], &repo_root().join("Dockerfile"));
    assert_eq!(failed, 0, "checkov's findings in the Dockerfile");
    assert!(passed > 10, "checkov ran {passed} checks");
}
