//! Reloading (SPEC §14): on SIGHUP the config file and every certificate file are read again
//! and checked; only when all of it is valid are the routes (upstreams, health checks, CORS,
//! route policy, upstream TLS), the edge rules and the listener's certificate swapped, each in
//! one store. Settings that cannot change in a running process are named in the log.

use crate::config::Config;
use crate::gateway::live::{Live, SharedLive};
use crate::metrics;
use crate::tls::{self, LiveCert};
use std::path::PathBuf;
use std::sync::Arc;

/// `server` keys a reload applies; every other key outside `routes` needs a restart.
const LIVE_SERVER_KEYS: &[&str] = &[
    "tls_cert",
    "tls_key",
    "redirect_to_https",
    "hsts_max_age_seconds",
];

pub struct Reloader {
    /// The config the process started with: what the settings that cannot change still are.
    started: Config,
    path: Option<PathBuf>,
    live: SharedLive,
    cert: Option<Arc<LiveCert>>,
}

/// A checked configuration, not yet in use.
pub struct Prepared {
    config: Config,
    live: Live,
    cert: Option<Arc<rustls::sign::CertifiedKey>>,
    certs: Vec<tls::CertInfo>,
}

/// What a reload did.
pub struct Reloaded {
    pub routes: String,
    /// Keys that changed in the file but keep their old value until a restart.
    pub need_restart: Vec<String>,
}

impl Reloader {
    pub fn new(
        started: Config,
        path: Option<PathBuf>,
        live: SharedLive,
        cert: Option<Arc<LiveCert>>,
    ) -> Reloader {
        Reloader {
            started,
            path,
            live,
            cert,
        }
    }

    /// Reads and checks everything; changes nothing.
    pub fn prepare(&self) -> Result<Prepared, String> {
        let config = Config::load(self.path.as_deref()).map_err(|e| e.to_string())?;
        let live = Live::from_config(&config)?;
        let mut certs = live.routes.certs();
        let cert = match (&self.cert, config.server.tls_listen) {
            (Some(_), Some(_)) => {
                let (cert, infos) =
                    tls::listener_cert(&config.server.tls_cert, &config.server.tls_key)?;
                certs.extend(infos);
                Some(cert)
            }
            _ => None,
        };
        Ok(Prepared {
            config,
            live,
            cert,
            certs,
        })
    }

    /// Swaps in what `prepare` made.
    pub fn commit(&self, p: Prepared) -> Reloaded {
        self.live.store(Arc::new(p.live));
        if let (Some(current), Some(new)) = (&self.cert, p.cert) {
            current.swap(new);
        }
        tls::publish_expiry(&p.certs);
        Reloaded {
            routes: describe_routes(&p.config),
            need_restart: need_restart(&self.started, &p.config),
        }
    }

    /// A whole reload with its outcome in the log and the metric. The new routes' upstreams
    /// are health-checked once before the swap, so a dead one never gets a request.
    pub async fn reload_and_log(&self) {
        let prepared = self.prepare();
        if let Ok(p) = &prepared {
            for route in p.live.routes.all() {
                route.upstreams.backends().run_health_check(true).await;
            }
        }
        match prepared.map(|p| self.commit(p)) {
            Ok(done) => {
                metrics::CONFIG_RELOADS
                    .with_label_values(&["success"])
                    .inc();
                log::info!(
                    "reload: config and certificates re-read; routes now [{}]",
                    done.routes
                );
                if !done.need_restart.is_empty() {
                    log::warn!(
                        "reload: {} changed but cannot change in a running process: restart or `serve --upgrade` to apply",
                        done.need_restart.join(", ")
                    );
                }
            }
            Err(e) => {
                metrics::CONFIG_RELOADS
                    .with_label_values(&["failure"])
                    .inc();
                log::error!("reload refused, nothing changed: {e}");
            }
        }
    }
}

/// The keys whose value differs between the running and the new config and that a reload
/// does not apply.
pub fn need_restart(running: &Config, new: &Config) -> Vec<String> {
    let (Ok(serde_json::Value::Object(old)), Ok(serde_json::Value::Object(new))) =
        (serde_json::to_value(running), serde_json::to_value(new))
    else {
        return vec!["(the config could not be compared)".to_string()];
    };
    let mut changed = Vec::new();
    for (section, value) in &new {
        if section == "routes" {
            continue;
        }
        let before = old.get(section);
        match (value, before) {
            (serde_json::Value::Object(keys), Some(serde_json::Value::Object(old_keys))) => {
                for (key, v) in keys {
                    let live = section == "server" && LIVE_SERVER_KEYS.contains(&key.as_str());
                    if !live && old_keys.get(key) != Some(v) {
                        changed.push(format!("{section}.{key}"));
                    }
                }
            }
            (v, before) if before != Some(v) => changed.push(section.clone()),
            _ => {}
        }
    }
    changed
}

/// `/api -> 127.0.0.1:9000,https://orders:8443 (Required); ...`, for the log.
pub fn describe_routes(config: &Config) -> String {
    config
        .routes
        .iter()
        .map(|r| {
            let upstreams: Vec<String> = r.upstreams.iter().map(ToString::to_string).collect();
            format!("{} -> {} ({:?})", r.prefix, upstreams.join(","), r.auth)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Listens for SIGHUP on a thread of its own (with its own runtime: Pingora's services each
/// have theirs). The handler is in place when this returns, before anything is served:
/// SIGHUP's default action would end the process.
pub fn on_sighup(reloader: Arc<Reloader>) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the reload runtime: {e}"))?;
    let mut hangups = {
        let _in_runtime = runtime.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| format!("cannot listen for SIGHUP: {e}"))?
    };
    std::thread::Builder::new()
        .name("gatehouse-reload".into())
        .spawn(move || {
            runtime.block_on(async move {
                while hangups.recv().await.is_some() {
                    // Resolving upstream names and reading files blocks: this thread only.
                    reloader.reload_and_log().await;
                }
            });
        })
        .map_err(|e| format!("cannot start the reload thread: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_need_a_restart_are_named() {
        let old = Config::default();
        let mut new = Config::default();
        new.server.threads = 7;
        new.server.hsts_max_age_seconds = 0;
        new.jwt.access_lifetime_seconds = 60;
        new.routes = Vec::new();
        assert_eq!(
            need_restart(&old, &new),
            vec!["server.threads", "jwt.access_lifetime_seconds"]
        );
        assert!(need_restart(&old, &Config::default()).is_empty());
    }
}
