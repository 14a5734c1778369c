//! A real nginx (Debian's package) in front of gatehouse, running the very file operators
//! copy, `deploy/nginx/gatehouse-auth-request.conf`, with loopback ports put in its place:
//! `auth_request` to gatehouse, the identity headers copied with `auth_request_set`,
//! refusals relayed with gatehouse's own body, the pages passed straight on.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The site file, relative to the repository.
pub const SITE_FILE: &str = "deploy/nginx/gatehouse-auth-request.conf";
/// What a machine without nginx is told.
pub const MISSING: &str = "the forward-auth tests need a real nginx: install it (Debian/Ubuntu: \
                           apt-get install nginx); .ci/run does";
/// From spawning nginx to it accepting connections.
const STARTUP: Duration = Duration::from_secs(10);

/// A running nginx; stopped when dropped.
pub struct Nginx {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> &'static str {
    for candidate in ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(candidate).exists() {
            return candidate;
        }
    }
    panic!("{MISSING}");
}

/// The site file with its example addresses replaced by these ports.
pub fn site(port: u16, gatehouse_port: u16, upstream_port: u16) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(SITE_FILE))
        .unwrap_or_else(|e| panic!("{SITE_FILE}: {e}"))
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace(
            "server 127.0.0.1:8080;",
            &format!("server 127.0.0.1:{gatehouse_port};"),
        )
        .replace(
            "server 127.0.0.1:9000;",
            &format!("server 127.0.0.1:{upstream_port};"),
        )
}

impl Nginx {
    /// nginx on a free loopback port, in front of gatehouse and the app (the upstream).
    pub fn start(gatehouse_port: u16, upstream_port: u16) -> Nginx {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = super::free_port();
        let site = site(port, gatehouse_port, upstream_port);
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{site}\n}}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).expect("write nginx.conf");
        let child = Command::new(binary())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx");
        let deadline = Instant::now() + STARTUP;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx {
            child,
            port,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:<port><path>`: what a browser in front of nginx opens.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}
