//! Real Django (5.0, with DRF 3.16 and simplejwt 5.5) for the switch-over tests: a throwaway
//! virtualenv under the cargo target directory, made once by `tests/support/make_venv.sh`
//! (which `.ci/run` also calls, so the tests find it ready), and `tests/support/django_tool.py`,
//! which mints tokens, makes password hashes and dumps data with Django's own code.
//!
//! Without Python 3, its venv module or PyPI the tests fail, saying what to install: they
//! never skip.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The repository's root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `<target dir>/test-venv`, next to the build's `debug/` (or `release/`) directory.
pub fn venv_dir() -> PathBuf {
    let bin = Path::new(super::bin());
    let target = bin
        .parent()
        .and_then(Path::parent)
        .expect("the gatehouse binary sits in <target>/<profile>/");
    target.join("test-venv")
}

/// The virtualenv's python, made on first use (under a lock: parallel test binaries wait for
/// one another rather than race).
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let script = root().join("tests/support/make_venv.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(venv_dir())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run bash {}: {e}", script.display()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "the switch-over tests need real Django in a Python virtualenv, and making it \
             failed ({}):\n{stderr}\n\
             They need python3 with its venv module (Debian/Ubuntu: apt-get install python3-venv) \
             and pip reaching PyPI (or PIP_INDEX_URL naming a mirror) for the packages of \
             tests/support/django-requirements.txt. Run `bash tests/support/make_venv.sh` to \
             see it fail on its own.",
            out.status
        );
        let python = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
        assert!(
            python.is_file(),
            "make_venv.sh named no python ({python:?}):\n{stdout}\n{stderr}"
        );
        python
    })
}

/// Runs `django_tool.py` with `request` (JSON on stdin); returns its JSON answer. See the
/// script for the request's fields: `secret`, `users`, `mint`, `hash`.
pub fn run(request: &Value) -> Value {
    run_script("django_tool.py", request)
}

/// Runs `tests/support/<script>` with the venv's python, `request` as JSON on stdin; returns
/// the JSON it prints.
pub fn run_script(script: &str, request: &Value) -> Value {
    let tool = root().join("tests/support").join(script);
    let mut child = Command::new(python())
        .arg(&tool)
        .env_remove("DJANGO_SETTINGS_MODULE")
        .env_remove("PYTHONPATH")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write the request");
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{script} runs: {e}"));
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A user row for `run`'s `users`: its password made by `make_password(password, hasher)`.
pub fn user(id: u64, username: &str, password: &str, hasher: &str) -> Value {
    serde_json::json!({
        "id": id,
        "username": username,
        "email": format!("{username}@example.com"),
        "password": password,
        "hasher": hasher,
    })
}
