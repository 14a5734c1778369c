//! A real upstream HTTP server (hyper, on loopback) that records every request it receives
//! and answers with a small JSON echo; it can be slow, and it echoes upgraded connections.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The header every answer of these upstreams carries (their port): how the harness tells an
/// upstream's answer, passed through by the proxy, from one gatehouse made itself.
pub const MARK: &str = "x-upstream-port";

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query as received.
    pub uri: String,
    /// Every header line, names lower-case, in order, duplicates kept.
    pub headers: Vec<(String, String)>,
    pub body_len: u64,
}

impl Recorded {
    /// All values of `name` (case-insensitive).
    pub fn header_values(&self, name: &str) -> Vec<String> {
        super::raw::values_of(&self.headers, name)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.header_values(name).into_iter().next()
    }
}

#[derive(Clone, Default)]
pub struct Options {
    /// Wait this long before answering.
    pub delay: Option<Duration>,
}

pub struct Upstream {
    pub port: u16,
    /// What a route's `upstreams` lists.
    pub addr: SocketAddr,
    records: Arc<Mutex<Vec<Recorded>>>,
    arrived: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    pub fn start() -> Upstream {
        Upstream::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Upstream {
        Upstream::start_inner(options, None)
    }

    /// The same upstream over TLS with `server`'s certificate (HTTP/1.1, as gatehouse speaks
    /// to upstreams); with `client_ca`, a client certificate from that CA is required (mTLS).
    pub fn start_tls(server: &super::certs::Pair, client_ca: Option<&std::path::Path>) -> Upstream {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let read = |p: &std::path::Path| std::fs::read(p).expect("read PEM");
        let certs: Vec<_> = rustls_pemfile::certs(&mut read(&server.cert).as_slice())
            .collect::<Result<_, _>>()
            .expect("certificates");
        let key = rustls_pemfile::private_key(&mut read(&server.key).as_slice())
            .expect("key parses")
            .expect("a key");
        let builder = rustls::ServerConfig::builder();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in rustls_pemfile::certs(&mut read(ca).as_slice()) {
                    roots.add(c.expect("CA parses")).expect("add CA");
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .expect("certificate and key");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Upstream::start_inner(Options::default(), Some(Arc::new(config)))
    }

    fn start_inner(options: Options, tls: Option<Arc<rustls::ServerConfig>>) -> Upstream {
        let listener = super::process::listener();
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let records = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(AtomicUsize::new(0));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let recs = Arc::clone(&records);
        let arr = Arc::clone(&arrived);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                tokio::pin!(stop_rx);
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let recs = Arc::clone(&recs);
                            let arr = Arc::clone(&arr);
                            let options = options.clone();
                            let tls = tls.clone();
                            tokio::spawn(async move {
                                let svc = service_fn(move |req| {
                                    arr.fetch_add(1, Ordering::SeqCst);
                                    handle(req, port, Arc::clone(&recs), options.clone())
                                });
                                let http = hyper::server::conn::http1::Builder::new();
                                match tls {
                                    None => {
                                        let _ = http
                                            .serve_connection(TokioIo::new(stream), svc)
                                            .with_upgrades()
                                            .await;
                                    }
                                    Some(config) => {
                                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                                        // A refused handshake (no client certificate, say)
                                        // just ends this connection.
                                        if let Ok(tls) = acceptor.accept(stream).await {
                                            let _ = http
                                                .serve_connection(TokioIo::new(tls), svc)
                                                .with_upgrades()
                                                .await;
                                        }
                                    }
                                }
                            });
                        }
                    }
                }
            });
            // Dropping the runtime ends every connection task: the upstream is really gone.
            rt.shutdown_background();
        });
        Upstream {
            port,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            records,
            arrived,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Requests that have arrived, answered or not yet (a slow upstream records a request
    /// only once it answers).
    pub fn arrived(&self) -> usize {
        self.arrived.load(Ordering::SeqCst)
    }

    pub fn count(&self) -> usize {
        self.records.lock().map(|r| r.len()).unwrap_or(0)
    }

    pub fn last(&self) -> Recorded {
        self.requests()
            .pop()
            .expect("the upstream received a request")
    }

    /// Closes the listener and every connection.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn handle(
    req: Request<Incoming>,
    port: u16,
    records: Arc<Mutex<Vec<Recorded>>>,
    options: Options,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let upgrade = req.headers().contains_key(hyper::header::UPGRADE);
    if upgrade {
        if let Ok(mut r) = records.lock() {
            r.push(Recorded {
                method,
                uri,
                headers,
                body_len: 0,
            });
        }
        tokio::spawn(async move {
            if let Ok(upgraded) = hyper::upgrade::on(req).await {
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 4096];
                loop {
                    match io.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if io.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }
        });
        let resp = Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(Full::new(Bytes::new()))
            .expect("101");
        return Ok(resp);
    }
    // Count the body without keeping it: uploads can be large.
    let mut body = req.into_body();
    let mut body_len = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            body_len += data.len() as u64;
        }
    }
    if let Some(d) = options.delay {
        tokio::time::sleep(d).await;
    }
    let echo =
        serde_json::json!({"upstream": port, "method": method, "uri": uri, "body_len": body_len});
    if let Ok(mut r) = records.lock() {
        r.push(Recorded {
            method,
            uri,
            headers,
            body_len,
        });
    }
    let resp = Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header(MARK, port.to_string())
        .body(Full::new(Bytes::from(echo.to_string())))
        .expect("response");
    Ok(resp)
}
