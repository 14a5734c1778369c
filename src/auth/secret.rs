//! The HS256 signing secret: from the environment, a secret file, or generated once (256
//! random bits, hex, mode 0600) in the data directory so a first run needs no set-up.

use rand::RngCore;
use std::io::Write;
use std::path::Path;

/// Shorter secrets make HS256 brute-forceable.
pub const MIN_SECRET_BYTES: usize = 32;
pub const GENERATED_FILE: &str = "jwt_secret";
use crate::config::env::JWT_SECRET_VAR;

pub fn load(
    env_secret: Option<&str>,
    secret_file: &str,
    data_dir: &Path,
) -> Result<Vec<u8>, String> {
    if let Some(s) = env_secret.filter(|s| !s.is_empty()) {
        return checked(s.trim().as_bytes().to_vec(), JWT_SECRET_VAR);
    }
    if !secret_file.is_empty() {
        let text = std::fs::read_to_string(secret_file)
            .map_err(|e| format!("jwt.secret_file {secret_file}: {e}"))?;
        return checked(text.trim().as_bytes().to_vec(), secret_file);
    }
    let path = data_dir.join(GENERATED_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => checked(text.trim().as_bytes().to_vec(), &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => generate(&path),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn checked(secret: Vec<u8>, origin: &str) -> Result<Vec<u8>, String> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "the JWT secret from {origin} is {} bytes; use at least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)",
            secret.len()
        ));
    }
    Ok(secret)
}

/// A new secret: 256 random bits as hex.
pub fn generate_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn generate(path: &Path) -> Result<Vec<u8>, String> {
    let secret = generate_hex();
    write_private(path, format!("{secret}\n").as_bytes())?;
    Ok(secret.into_bytes())
}

/// Creates `path` (which must not exist) readable by the owner only (0600) with `contents`,
/// on disk before it returns: generated key material.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let write = |options: &std::fs::OpenOptions| -> std::io::Result<()> {
        let mut f = options.open(path)?;
        f.write_all(contents)?;
        f.sync_all()
    };
    write(&options).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_with_mode_0600_then_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = load(None, "", dir.path()).expect("generate");
        assert_eq!(first.len(), 64);
        let second = load(None, "", dir.path()).expect("reuse");
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(GENERATED_FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn env_wins_and_short_secrets_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = "k".repeat(40);
        assert_eq!(load(Some(&s), "", dir.path()).expect("env"), s.as_bytes());
        assert!(load(Some("short"), "", dir.path()).is_err());
        // A Django SECRET_KEY as get_random_secret_key() makes it (50 characters of
        // [a-z0-9!@#$%^&*(-_=+)]), and as startproject writes it: both taken byte for byte.
        for django in [
            "t!#x8^2b(k_=u9m@v$q0z&r4y*w+e-h6j)p5n%c3s1l7a@f2d0",
            "django-insecure-t!#x8^2b(k_=u9m@v$q0z&r4y*w+e-h6j)p5n%c3s1l7a@f2d0",
        ] {
            assert_eq!(
                load(Some(django), "", dir.path()).expect("a Django key"),
                django.as_bytes()
            );
        }
        let file = dir.path().join("secret");
        std::fs::write(&file, "f".repeat(32)).expect("write");
        let from_file = load(None, &file.display().to_string(), dir.path()).expect("file");
        assert_eq!(from_file, "f".repeat(32).as_bytes());
    }
}
