//! `gatehouse check-config`: validates what `serve` would load besides the file (signing
//! keys, the secret file) and explains the set-up.

use crate::auth::keys::Keys;
use crate::config::env::JWT_SECRET_VAR;
use crate::config::Config;

pub fn run(config: &Config) -> Result<(), String> {
    let jwt = &config.jwt;
    let env_secret = std::env::var(JWT_SECRET_VAR).ok();
    // A generated secret is left alone: checking must not create it.
    if !jwt.algorithm.is_symmetric() || !jwt.secret_file.is_empty() || env_secret.is_some() {
        Keys::load(jwt, &config.server.data_dir, env_secret.as_deref())?;
    }
    if config.email.backend == crate::config::MailBackend::Smtp {
        crate::mail::sender::SmtpTarget::from_env()?;
    }
    print!("config OK\n{}", config.explain());
    Ok(())
}
