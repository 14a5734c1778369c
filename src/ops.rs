//! The operations listener (`server.metrics_listen`, loopback by default): `/metrics` in the
//! Prometheus text format, `/healthz` (the process answers) and `/readyz` (the store answers).

use crate::app::App;
use crate::metrics;
use crate::store::StateFilter;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

const JSON: &str = "application/json";

pub struct Ops {
    app: Arc<App>,
}

impl Ops {
    pub fn new(app: Arc<App>) -> Ops {
        Ops { app }
    }

    /// Gauges computed at scrape time rather than on every request.
    async fn refresh_gauges(&self) {
        for (state, label) in [
            (StateFilter::Active, "active"),
            (StateFilter::Inactive, "inactive"),
        ] {
            match self.app.store.count_users(&state).await {
                Ok(count) => metrics::USERS
                    .with_label_values(&[label])
                    .set(i64::try_from(count).unwrap_or(i64::MAX)),
                Err(e) => log::warn!("metrics: cannot count {label} users: {e}"),
            }
        }
        metrics::PASSWORD_HASH_QUEUE.set(self.app.passwords.queue_depth() as i64);
        metrics::BUILD_INFO
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
    }

    /// Status, content type and body for a path: a plain function, testable without sockets.
    pub async fn answer(&self, path: &str) -> (u16, &'static str, Vec<u8>) {
        match path {
            "/metrics" => {
                self.refresh_gauges().await;
                match metrics::render() {
                    Ok(text) => (200, "text/plain; version=0.0.4", text),
                    Err(e) => {
                        log::error!("metrics: cannot render: {e}");
                        (500, JSON, br#"{"detail":"metrics unavailable"}"#.to_vec())
                    }
                }
            }
            "/healthz" => (200, JSON, br#"{"status":"ok"}"#.to_vec()),
            "/readyz" => match self.app.store.ping().await {
                Ok(()) => (200, JSON, br#"{"status":"ready"}"#.to_vec()),
                Err(e) => {
                    log::warn!("readyz: {e}");
                    (503, JSON, br#"{"status":"store unavailable"}"#.to_vec())
                }
            },
            _ => (404, JSON, br#"{"detail":"Not found."}"#.to_vec()),
        }
    }
}

#[async_trait]
impl ServeHttp for Ops {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let (status, content_type, body) = self.answer(&path).await;
        let length = body.len();
        let mut response = Response::new(body);
        *response.status_mut() =
            http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        headers.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from(length),
        );
        response
    }
}
