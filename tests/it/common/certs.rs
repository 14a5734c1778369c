//! Certificates made by the tests with the `openssl` command (Debian's `openssl` package): a
//! local CA, server certificates for given names (valid, expired, for another host), client
//! certificates, each as a PEM certificate and key file in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A certificate and its private key, as files.
#[derive(Clone, Debug)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pair {
    pub fn cert_str(&self) -> String {
        self.cert.display().to_string()
    }

    pub fn key_str(&self) -> String {
        self.key.display().to_string()
    }
}

/// A local certificate authority in its own directory.
pub struct Ca {
    dir: tempfile::TempDir,
    pub root: Pair,
    serial: AtomicUsize,
}

#[track_caller]
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("the openssl command is needed for the TLS tests (apt-get install openssl): {e}")
        });
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Ca {
    /// A new CA named `name` (its certificate valid 30 days).
    pub fn new(name: &str) -> Ca {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "30",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Ca {
            root: Pair {
                cert: d.join("ca.pem"),
                key: d.join("ca.key"),
            },
            dir,
            serial: AtomicUsize::new(0),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A server certificate for `names` (DNS names or IP addresses) valid `days` days from
    /// now; a negative `days` gives one that has already expired.
    pub fn server(&self, names: &[&str], days: i64) -> Pair {
        self.issue(names, days, "serverAuth")
    }

    /// A client certificate (for mTLS) named `name`.
    pub fn client(&self, name: &str) -> Pair {
        self.issue(&[name], 30, "clientAuth")
    }

    fn issue(&self, names: &[&str], days: i64, usage: &str) -> Pair {
        let n = self.serial.fetch_add(1, Ordering::SeqCst);
        let d = self.dir.path();
        let base = format!("cert{n}");
        let (key, csr, pem, ext) = (
            format!("{base}.key"),
            format!("{base}.csr"),
            format!("{base}.pem"),
            format!("{base}.ext"),
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={}", names[0]),
            ],
        );
        let sans: Vec<String> = names
            .iter()
            .map(|n| {
                if n.parse::<std::net::IpAddr>().is_ok() {
                    format!("IP:{n}")
                } else {
                    format!("DNS:{n}")
                }
            })
            .collect();
        std::fs::write(
            d.join(&ext),
            format!(
                "subjectAltName={}\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n",
                sans.join(",")
            ),
        )
        .expect("write the extensions");
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &(1000 + n).to_string(),
                "-out",
                &pem,
                "-days",
                &days.to_string(),
                "-extfile",
                &ext,
            ],
        );
        Pair {
            cert: d.join(pem),
            key: d.join(key),
        }
    }
}
