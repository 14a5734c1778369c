//! `gatehouse check-config`: validates what `serve` would load besides the file (signing
//! keys, the secret file, the certificate files and the routes' upstreams) and explains the
//! set-up, TLS and certificate expiry included.

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
    // The same checks as `serve` and a reload: files readable, keys matching, not expired.
    let mut certs = Vec::new();
    if config.server.tls_listen.is_some() {
        let (_, infos) =
            crate::tls::listener_cert(&config.server.tls_cert, &config.server.tls_key)?;
        certs.extend(infos);
    }
    let routes = crate::gateway::routes::RouteTable::from_config(config)?;
    certs.extend(routes.certs());
    if config.email.backend == crate::config::MailBackend::Smtp {
        crate::mail::sender::SmtpTarget::from_env()?;
    }
    print!(
        "config OK\n{}{}",
        config.explain(),
        crate::tls::describe(&certs)
    );
    Ok(())
}
