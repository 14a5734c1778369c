//! axe-core, Deque's accessibility rules, for the pages' browser tests: the npm package under
//! the cargo target directory, fetched once by `tests/support/get_axe.sh` (which `.ci/run`
//! also calls). Without npm or its registry the tests fail, saying what to install: they never
//! skip the check.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The text of `axe.min.js`, fetched on first use.
pub fn script() -> &'static str {
    static AXE: OnceLock<String> = OnceLock::new();
    AXE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let script = root.join("tests/support/get_axe.sh");
        let dir = super::django::venv_dir().with_file_name("axe");
        let out = Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run bash {}: {e}", script.display()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "the accessibility checks need axe-core (npm package), and fetching it failed \
             ({}):\n{stderr}\nInstall npm (Debian/Ubuntu: apt-get install npm) with the npm \
             registry reachable, or run `bash tests/support/get_axe.sh` to see it fail alone.",
            out.status
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let path = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("get_axe.sh named {path:?}, unreadable: {e}"))
    })
}
