//! The operations listener (`server.metrics_listen`, loopback by default): `/metrics` in the
//! Prometheus text format, `/healthz` (the process answers) and `/readyz` (the store answers).

use crate::app::App;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

pub struct Ops {
    app: Arc<App>,
}

impl Ops {
    pub fn new(app: Arc<App>) -> Ops {
        Ops { app }
    }

    /// Status, content type and body for a path: a plain function, testable without sockets.
    pub fn answer(&self, path: &str) -> (u16, &'static str, Vec<u8>) {
        const JSON: &str = "application/json";
        match path {
            "/metrics" => {
                crate::metrics::refresh_gauges(&self.app);
                (
                    200,
                    "text/plain; version=0.0.4",
                    crate::metrics::render().into_bytes(),
                )
            }
            "/healthz" => (200, JSON, br#"{"status":"ok"}"#.to_vec()),
            "/readyz" => match self.app.store.get_user(0) {
                Ok(_) => (200, JSON, br#"{"status":"ready"}"#.to_vec()),
                Err(_) => (503, JSON, br#"{"status":"store unavailable"}"#.to_vec()),
            },
            _ => (404, JSON, br#"{"detail":"Not found."}"#.to_vec()),
        }
    }
}

#[async_trait]
impl ServeHttp for Ops {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let (status, content_type, body) = self.answer(&path);
        Response::builder()
            .status(status)
            .header("Content-Type", content_type)
            .header("Content-Length", body.len())
            .body(body)
            .unwrap_or_default()
    }
}
