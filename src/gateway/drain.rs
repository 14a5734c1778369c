//! The hand-over drain: once an upgrade has begun (the old process got SIGQUIT and passes its
//! listening sockets on) or a graceful stop has, every answer says `Connection: close`, so
//! busy clients move to the new process one finished request at a time instead of meeting
//! Pingora's drop of idle keep-alive connections at the end of the hand-over; and the last
//! call: a connection accepted just before the listener stops still gets to send its request.

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora::protocols::http::v2::server::H2Options;
use pingora::protocols::http::ServerSession;
use pingora::server::{ExecutionPhase, ShutdownWatch};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long connections that have not sent a request yet are kept once the listener stops
/// accepting. Pingora drops them at once; a client that connected a moment before (its request
/// still on the way) would then see its connection reset. Shorter than any sensible
/// `server.grace_period_seconds`, which bounds it anyway.
pub const LAST_CALL: Duration = Duration::from_secs(1);

/// Set once the process starts handing over or stopping; never cleared.
#[derive(Clone, Default)]
pub struct Drain(Arc<AtomicBool>);

impl Drain {
    pub fn draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Follows the server's execution phases on a thread of its own.
    pub fn watch(
        &self,
        mut phases: tokio::sync::broadcast::Receiver<ExecutionPhase>,
    ) -> Result<(), String> {
        let flag = Arc::clone(&self.0);
        std::thread::Builder::new()
            .name("drain".into())
            .spawn(move || {
                use tokio::sync::broadcast::error::RecvError;
                loop {
                    match phases.blocking_recv() {
                        Ok(phase) if begins_drain(&phase) => {
                            flag.store(true, Ordering::Relaxed);
                            return;
                        }
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    }
                }
            })
            .map(|_| ())
            .map_err(|e| format!("drain watcher thread: {e}"))
    }
}

/// The public listener's app: Pingora's proxy, with the last call before idle connections are
/// dropped. Everything else is the proxy's own.
pub struct LastCall<A>(pub Arc<A>);

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> HttpServerApp for LastCall<A> {
    async fn process_new_http(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        self.0.process_new_http(session, shutdown).await
    }

    fn h2_options(&self) -> Option<H2Options> {
        self.0.h2_options()
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.0.server_options()
    }

    /// Called once the listener has stopped accepting: waits the last call, then lets the
    /// proxy close the connections still idle.
    async fn http_cleanup(&self) {
        tokio::time::sleep(LAST_CALL).await;
        self.0.http_cleanup().await;
    }
}

/// The phases after which a connection should not be kept for another request.
fn begins_drain(phase: &ExecutionPhase) -> bool {
    matches!(
        phase,
        ExecutionPhase::GracefulUpgradeTransferringFds
            | ExecutionPhase::GracefulUpgradeCloseTimeout
            | ExecutionPhase::GracefulTerminate
            | ExecutionPhase::ShutdownStarted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hand_over_and_a_stop_drain_running_does_not() {
        assert!(begins_drain(
            &ExecutionPhase::GracefulUpgradeTransferringFds
        ));
        assert!(begins_drain(&ExecutionPhase::GracefulTerminate));
        assert!(!begins_drain(&ExecutionPhase::Running));
        assert!(!begins_drain(&ExecutionPhase::BootstrapComplete));
    }

    #[test]
    fn the_flag_follows_the_phases() {
        let (tx, rx) = tokio::sync::broadcast::channel(4);
        let drain = Drain::default();
        drain.watch(rx).expect("thread");
        tx.send(ExecutionPhase::Running).expect("send");
        assert!(!drain.draining());
        tx.send(ExecutionPhase::GracefulUpgradeTransferringFds)
            .expect("send");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !drain.draining() {
            assert!(std::time::Instant::now() < deadline, "never drained");
            std::thread::yield_now();
        }
    }
}
