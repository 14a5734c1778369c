//! The change feed of one replica: one unpooled connection that LISTENs on the channel the
//! users trigger notifies, and sends a heartbeat through the same channel every
//! `HEARTBEAT`. PostgreSQL delivers notifications in commit order, so when a heartbeat sent
//! at instant T comes back, every change committed before T has been delivered (and was put
//! on the broadcast before it): `Change::Seen(T)` is that proof. A new connection starts with
//! `Change::All` (what happened while away is unknown).

use super::schema::CHANNEL;
use crate::store::Change;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio_postgres::AsyncMessage;

/// How often a heartbeat goes out.
pub const HEARTBEAT: Duration = Duration::from_millis(100);
/// Wait between reconnection attempts.
const RETRY: Duration = Duration::from_millis(200);

/// Starts the feed on the store's runtime; it runs until the runtime stops.
pub fn start(
    handle: &tokio::runtime::Handle,
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    changes: broadcast::Sender<Change>,
    freshness: Duration,
) {
    // Tells this replica's heartbeats from the other replicas' on the shared channel.
    let replica: u64 = rand::random();
    let mut config = config;
    // Findable in pg_stat_activity (operators, and the fault tests that cut it).
    config.application_name(format!("gatehouse-feed-{}", std::process::id()));
    handle.spawn(async move {
        loop {
            let reason = listen(&config, tls.clone(), &changes, freshness, replica).await;
            crate::metrics::STORE_FEED_RECONNECTS.inc();
            log::warn!("store change feed: {reason}; reconnecting");
            tokio::time::sleep(RETRY).await;
        }
    });
}

/// One connection's life: returns why it ended.
async fn listen(
    config: &tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    changes: &broadcast::Sender<Change>,
    freshness: Duration,
    replica: u64,
) -> String {
    let connecting = tokio::time::timeout(freshness.max(HEARTBEAT * 5), config.connect(tls));
    let (client, mut connection) = match connecting.await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return format!("cannot connect: {}", super::describe_pg_error(&e)),
        Err(_) => return "connecting timed out".into(),
    };
    let (tx, mut notes) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        use futures_util::StreamExt;
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_string()).is_err() {
                        return "stopped".to_string();
                    }
                }
                Ok(_) => {}
                Err(e) => return super::describe_pg_error(&e),
            }
        }
        "the database closed the connection".to_string()
    });
    let result: Result<(), String> = async {
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(|e| format!("LISTEN failed: {}", super::describe_pg_error(&e)))?;
        // Whatever changed while this replica was not listening is unknown.
        let _ = changes.send(Change::All);
        log::info!("store change feed listening");
        let prefix = format!("h:{replica:x}:");
        let mut sent: VecDeque<(u64, Instant)> = VecDeque::new();
        let mut seq = 0u64;
        let mut last_seen = Instant::now();
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    // Heartbeats that stopped coming back mean a stalled connection: the
                    // cache is already deciding from the database; start over.
                    if last_seen.elapsed() > freshness * 4 {
                        return Err("heartbeats stopped coming back".to_string());
                    }
                    seq += 1;
                    sent.push_back((seq, Instant::now()));
                    while sent.len() > 1024 {
                        sent.pop_front();
                    }
                    let payload = format!("{prefix}{seq}");
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&CHANNEL, &payload];
                    let notify = client.execute("SELECT pg_notify($1, $2)", &params);
                    match tokio::time::timeout(freshness, notify).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(format!("heartbeat failed: {}", super::describe_pg_error(&e))),
                        Err(_) => return Err("heartbeat timed out".to_string()),
                    }
                }
                note = notes.recv() => {
                    let Some(payload) = note else {
                        return Err("the connection ended".to_string());
                    };
                    if let Some(id) = payload.strip_prefix("u:").and_then(|s| s.parse().ok()) {
                        let _ = changes.send(Change::User(id));
                    } else if let Some(n) = payload.strip_prefix(&prefix).and_then(|s| s.parse::<u64>().ok()) {
                        while let Some(&(s, at)) = sent.front() {
                            if s > n {
                                break;
                            }
                            sent.pop_front();
                            if s == n {
                                last_seen = Instant::now();
                                crate::metrics::STORE_NOTIFY_LAG_SECONDS.observe(at.elapsed().as_secs_f64());
                                let _ = changes.send(Change::Seen(at));
                            }
                        }
                    }
                }
            }
        }
    }
    .await;
    driver.abort();
    match result {
        Ok(()) => "ended".into(),
        Err(reason) => reason,
    }
}
