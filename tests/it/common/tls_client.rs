//! A Rust TLS client (rustls + hyper) for gatehouse's TLS listener: HTTP/2 or HTTP/1.1 by
//! ALPN, the headers exactly as given, a new connection (and handshake) per request, and the
//! certificate the server showed, so a test can tell which one it got.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug)]
pub struct TlsResp {
    pub status: u16,
    /// "HTTP/2.0" or "HTTP/1.1".
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The server's leaf certificate (DER).
    pub peer_cert: Vec<u8>,
}

impl TlsResp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_values(name).into_iter().next()
    }

    pub fn header_values(&self, name: &str) -> Vec<String> {
        super::raw::values_of(&self.headers, name)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {:?} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The DER of the first certificate in a PEM file.
pub fn cert_der(pem: &Path) -> Vec<u8> {
    let bytes = std::fs::read(pem).expect("read the PEM");
    let first = rustls_pemfile::certs(&mut bytes.as_slice())
        .next()
        .expect("a certificate")
        .expect("PEM parses")
        .to_vec();
    first
}

/// Roots from the PEM files, offering `alpn`.
pub fn client_config(roots: &[&Path], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut store = rustls::RootCertStore::empty();
    for pem in roots {
        let bytes = std::fs::read(pem).expect("read the CA");
        for cert in rustls_pemfile::certs(&mut bytes.as_slice()) {
            store.add(cert.expect("PEM parses")).expect("add the root");
        }
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A client of one TLS port, trusting `roots`, speaking h2 (`h2 = true`) or HTTP/1.1.
#[derive(Clone)]
pub struct TlsClient {
    pub port: u16,
    pub host: String,
    config: Arc<rustls::ClientConfig>,
    pub h2: bool,
}

impl TlsClient {
    pub fn new(port: u16, roots: &[&Path], h2: bool) -> TlsClient {
        let alpn: &[&[u8]] = if h2 { &[b"h2"] } else { &[b"http/1.1"] };
        TlsClient {
            port,
            host: "localhost".into(),
            config: client_config(roots, alpn),
            h2,
        }
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> TlsResp {
        self.request("GET", path, headers, Vec::new())
            .unwrap_or_else(|e| panic!("GET {path} over TLS: {e}"))
    }

    /// One request on a new connection; `Err` when the connection or handshake fails.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<TlsResp, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(self.send(method, path, headers, body))
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<TlsResp, String> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name = ServerName::try_from(self.host.clone()).map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let (_, session) = tls.get_ref();
        let peer_cert = session
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c: &CertificateDer| c.to_vec())
            .unwrap_or_default();
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        if self.h2 && alpn.as_deref() != Some(b"h2") {
            return Err(format!("the server chose ALPN {alpn:?}, not h2"));
        }
        let io = TokioIo::new(tls);
        let mut req = hyper::Request::builder().method(method);
        req = if self.h2 {
            req.uri(format!("https://{}:{}{path}", self.host, self.port))
        } else {
            req.uri(path)
                .header("host", format!("{}:{}", self.host, self.port))
        };
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = if self.h2 {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(conn);
            sender.send_request(req).await
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("h1 handshake: {e}"))?;
            tokio::spawn(conn);
            sender.send_request(req).await
        }
        .map_err(|e| format!("request: {e}"))?;
        let status = resp.status().as_u16();
        let version = format!("{:?}", resp.version());
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes()
            .to_vec();
        Ok(TlsResp {
            status,
            version,
            headers,
            body,
            peer_cert,
        })
    }
}
