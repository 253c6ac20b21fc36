//! The Python package's own tests (python/tests, pytest), run by the
//! README's test command: the package of this tree, with the Python of
//! `WIDESWEEP_PYTHON` (else the virtual environment scripts/setup.sh
//! --tests makes, which has pytest and numpy).

use std::path::Path;
use std::process::Command;

#[test]
fn the_python_package_passes_its_pytest_suite() {
    let python = std::env::var("WIDESWEEP_PYTHON").unwrap_or_else(|_| "/opt/widesweep-python/bin/python".to_string());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("python");
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"])
        .current_dir(&root)
        .env("PYTHONPATH", root.join("src"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (run scripts/setup.sh --tests, or set WIDESWEEP_PYTHON): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pytest failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(" passed"), "pytest ran no test:\n{stdout}");
}
