//! gatehouse: an authentication gateway. This file builds the Pingora server from a `Config`;
//! `main.rs` is only the command line.

pub mod access_log;
pub mod accounts;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod cookies;
pub mod error;
pub mod gateway;
pub mod housekeeping;
pub mod ids;
pub mod limits;
pub mod mail;

pub mod metrics;
pub mod ops;
pub mod reload;
pub mod response;
pub mod store;
pub mod tls;
pub mod web;

use app::App;
use config::Config;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use std::sync::Arc;

/// Pingora modules whose debug and trace lines carry whole request and response heads
/// (tokens, cookies), and tokio-postgres, whose debug lines carry every query's parameters
/// (the shared JWT secret, password hashes): never logged below info.
pub const NOISY_MODULES: &[&str] = &[
    "pingora_proxy",
    "pingora_core",
    "pingora_http",
    "pingora_cache",
    "tokio_postgres",
];

/// Pingora's own settings, from our config (never from a Pingora YAML file).
pub fn server_conf(config: &Config) -> ServerConf {
    ServerConf {
        threads: config.server.threads,
        work_stealing: config.server.work_stealing,
        grace_period_seconds: Some(config.server.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(config.server.graceful_shutdown_timeout_seconds),
        pid_file: config.server.pid_file.clone(),
        upgrade_sock: config.server.upgrade_sock.clone(),
        daemon: false,
        ..ServerConf::default()
    }
}

/// Opens the app. During a graceful upgrade the old process still holds the single-writer
/// store while it drains; new connections wait in the listen backlog until it has exited.
fn open_app(config: &Config, upgrade: bool) -> Result<App, String> {
    // The old process serves a few more seconds, drains for the grace period, then stops.
    let s = &config.server;
    let patience = std::time::Duration::from_secs(
        s.grace_period_seconds + s.graceful_shutdown_timeout_seconds + 10,
    );
    let deadline = std::time::Instant::now() + patience;
    loop {
        match store::open(config) {
            Err(store::StoreError::InUse(_)) if upgrade && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(e.to_string()),
            Ok(store) => return App::with_store(config.clone(), store),
        }
    }
}

/// Opens the store, builds the services and runs until a signal ends the process. SIGHUP
/// reloads what can change live (`reload`), re-reading `config_path`.
pub fn serve(
    config: Config,
    upgrade: bool,
    config_path: Option<std::path::PathBuf>,
) -> Result<(), String> {
    // rustls needs one process-wide crypto provider before any TLS config is built.
    pingora::tls::install_default_crypto_provider();
    let live = gateway::live::Live::from_config(&config)?;
    let mut certs = live.routes.certs();
    let listener_cert = match config.server.tls_listen {
        Some(_) => {
            let (cert, infos) =
                tls::listener_cert(&config.server.tls_cert, &config.server.tls_key)?;
            certs.extend(infos);
            Some(Arc::new(tls::LiveCert::new(cert)))
        }
        None => None,
    };
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf(&config));
    // With --upgrade this receives the listening sockets from the running process.
    server.bootstrap();
    let app = Arc::new(open_app(&config, upgrade)?);
    // Pingora writes the pid file only when it daemonizes; operators need it either way
    // (`kill -QUIT $(cat pid_file)` for an upgrade, `gatehouse reload` for SIGHUP).
    std::fs::write(&config.server.pid_file, format!("{}\n", std::process::id()))
        .map_err(|e| format!("server.pid_file {}: {e}", config.server.pid_file))?;
    // Its own thread and runtime: a slow mail server never holds up a request.
    mail::sender::start(Arc::clone(&app.store), Arc::clone(&app.mailer))?;
    audit::start(&app.store, &config.audit)?;
    audit::start_retention(Arc::clone(&app.store), config.audit.retention_days)?;
    if config.web.enabled {
        auth::sessions::start_cleanup(Arc::clone(&app.store), config.web.idle_seconds())?;
    }
    // API keys' `last_used`, batched: at most one write a minute per key (SPEC §19).
    let flushing = Arc::clone(&app);
    housekeeping::every(
        "apikey uses",
        std::time::Duration::from_secs(store::TOUCH_INTERVAL),
        move || {
            let app = Arc::clone(&flushing);
            async move {
                if let Err(e) = app.authenticator.flush_key_uses().await {
                    log::warn!("apikeys: cannot write when keys were last used: {e}");
                }
            }
        },
    )?;
    if config.log.access_log {
        access_log::start_flusher()?;
    }
    tls::publish_expiry(&certs);
    let live: gateway::live::SharedLive = Arc::new(arc_swap::ArcSwap::from_pointee(live));
    // Health checks run in the background over the current route table and take dead
    // upstreams out of the rotation.
    server.add_service(pingora::services::background::background_service(
        "health checks",
        gateway::health::HealthChecks::new(Arc::clone(&live)),
    ));
    let reloader = reload::Reloader::new(
        config.clone(),
        config_path,
        Arc::clone(&live),
        listener_cert.clone(),
    );
    reload::on_sighup(Arc::new(reloader))?;
    let drain = gateway::drain::Drain::default();
    drain.watch(server.watch_execution_phase())?;
    let mut proxy = pingora::services::listening::Service::new(
        "gatehouse".to_string(),
        gateway::drain::LastCall(Arc::new(pingora::proxy::http_proxy(
            &server.configuration,
            gateway::Gateway::new(Arc::clone(&app), Arc::clone(&live), drain.clone()),
        ))),
    );
    if let Some(listen) = config.server.listen {
        proxy.add_tcp(&listen.to_string());
    }
    if let (Some(addr), Some(cert)) = (config.server.tls_listen, listener_cert) {
        proxy.add_tls_with_settings(&addr.to_string(), None, tls::listener_settings(cert)?);
    }
    server.add_service(proxy);
    if let Some(addr) = config.console_listener() {
        let mut console = pingora::services::listening::Service::new(
            "console".to_string(),
            gateway::drain::LastCall(Arc::new(pingora::proxy::http_proxy(
                &server.configuration,
                gateway::Gateway::console(Arc::clone(&app), Arc::clone(&live), drain.clone()),
            ))),
        );
        console.add_tcp(&addr.to_string());
        server.add_service(console);
    }
    let mut ops = pingora::services::listening::Service::new(
        "ops".to_string(),
        ops::Ops::new(Arc::clone(&app)),
    );
    ops.add_tcp(&config.server.metrics_listen.to_string());
    server.add_service(ops);
    let off = || "off".to_string();
    log::info!(
        "gatehouse {} listening on {} (plain HTTP), {} (TLS, h2 + http/1.1) (metrics {}, console {}), store {}, routes: [{}]",
        env!("CARGO_PKG_VERSION"),
        config.server.listen.map_or_else(off, |a| a.to_string()),
        config.server.tls_listen.map_or_else(off, |a| a.to_string()),
        config.server.metrics_listen,
        config.console_listener().map_or_else(|| "under the public listeners".to_string(), |a| a.to_string()),
        store::describe(&config),
        reload::describe_routes(&config)
    );
    // Returns once the last connection has drained after SIGTERM/SIGINT/SIGQUIT.
    server.run(pingora::server::RunArgs::default());
    access_log::flush();
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_support {
    /// Runs a future to completion on a fresh current-thread runtime (unit tests only).
    pub fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }
}

#[cfg(test)]
mod architecture_tests;
