//! The background health-check service: every `HEALTH_CHECK_EVERY` it runs the checks of
//! every route of the current table (`live`), so a reload's new routes are checked from the
//! next round. What one check does, and the log lines when an upstream goes down or comes
//! back, is `upstream_check`'s; Pingora's own report of the same change prints its whole peer
//! options and is silenced in favour of those lines (`cli::init_logging`).

use super::live::SharedLive;
use super::routes::HEALTH_CHECK_EVERY;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

/// Pingora's module whose health-change warnings gatehouse replaces with its own lines.
pub const REPLACED_LOG_MODULE: &str = "pingora_load_balancing";

/// Checks every route of the current table each `HEALTH_CHECK_EVERY`.
pub struct HealthChecks {
    live: SharedLive,
}

impl HealthChecks {
    pub fn new(live: SharedLive) -> HealthChecks {
        HealthChecks { live }
    }
}

#[async_trait]
impl BackgroundService for HealthChecks {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut every = tokio::time::interval(HEALTH_CHECK_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = every.tick() => {}
            }
            let live = self.live.load_full();
            for route in live.routes.all() {
                route.upstreams.backends().run_health_check(true).await;
            }
        }
    }
}
