//! gatehouse: an authentication gateway. This file builds the Pingora server from a `Config`;
//! `main.rs` is only the command line.

pub mod access_log;
pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod gateway;
pub mod ids;
pub mod mail;

pub mod metrics;
pub mod ops;
pub mod response;
pub mod store;

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

/// Opens the store, builds the services and runs until a signal ends the process.
pub fn serve(config: Config, upgrade: bool) -> Result<(), String> {
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf(&config));
    // With --upgrade this receives the listening sockets from the running process.
    server.bootstrap();
    let app = Arc::new(open_app(&config, upgrade)?);
    // Pingora writes the pid file only when it daemonizes; operators need it either way
    // (`kill -QUIT $(cat pid_file)` for an upgrade).
    std::fs::write(&config.server.pid_file, format!("{}\n", std::process::id()))
        .map_err(|e| format!("server.pid_file {}: {e}", config.server.pid_file))?;
    let routes = gateway::routes::RouteTable::from_config(&config)?;
    // Its own thread and runtime: a slow mail server never holds up a request.
    mail::sender::start(Arc::clone(&app.store), Arc::clone(&app.mailer))?;
    if config.log.access_log {
        access_log::start_flusher()?;
    }
    for route in routes.all() {
        // Health checks run in the background and take dead upstreams out of the rotation.
        let checks = pingora::services::background::GenBackgroundService::new(
            format!("health check {}", route.prefix),
            Arc::clone(&route.upstreams),
        );
        server.add_service(checks);
    }
    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        gateway::Gateway::new(Arc::clone(&app), Arc::new(routes)),
        "gatehouse",
    );
    proxy.add_tcp(&config.server.listen.to_string());
    server.add_service(proxy);
    let mut ops = pingora::services::listening::Service::new(
        "ops".to_string(),
        ops::Ops::new(Arc::clone(&app)),
    );
    ops.add_tcp(&config.server.metrics_listen.to_string());
    server.add_service(ops);
    let routes: Vec<String> = config
        .routes
        .iter()
        .map(|r| {
            let upstreams: Vec<String> = r.upstreams.iter().map(ToString::to_string).collect();
            format!("{} -> {} ({:?})", r.prefix, upstreams.join(","), r.auth)
        })
        .collect();
    log::info!(
        "gatehouse {} listening on {} (metrics {}), store {}, routes: [{}]",
        env!("CARGO_PKG_VERSION"),
        config.server.listen,
        config.server.metrics_listen,
        store::describe(&config),
        routes.join("; ")
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
