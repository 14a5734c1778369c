//! TLS material (SPEC §14): PEM certificates and keys read and checked (readable, the key
//! matches the certificate, in its validity period), the TLS listener's certificate that a
//! reload swaps under live connections, a route's upstream roots and client certificate, and
//! each certificate's expiry for `check-config` and the metrics. Key bytes are never logged.

use arc_swap::ArcSwap;
use pingora::tls::{CertificateDer, PrivateKeyDer};
use pingora::utils::tls::{parse_x509, CertKey, WrappedX509};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// One certificate file in use, for `check-config` and the expiry metric.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// What it is for: `listener`, `upstream_ca /api`, `upstream_client /api`.
    pub role: String,
    pub path: String,
    pub subject: String,
    /// Unix seconds.
    pub not_after: i64,
}

impl CertInfo {
    /// Whole days until it expires (negative once expired).
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }
}

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn date(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ts.to_string())
}

fn read_pem(key: &str, path: &str) -> Result<Vec<rustls_pemfile::Item>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{key} {path}: cannot read it: {e}"))?;
    rustls_pemfile::read_all(&mut bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{key} {path}: not a PEM file: {e}"))
}

/// The certificates of a PEM file, each parsed and inside its validity period.
pub fn load_certs(
    key: &str,
    path: &str,
    role: &str,
) -> Result<(Vec<CertificateDer<'static>>, Vec<CertInfo>), String> {
    let certs: Vec<CertificateDer<'static>> = read_pem(key, path)?
        .into_iter()
        .filter_map(|item| match item {
            rustls_pemfile::Item::X509Certificate(der) => Some(der),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(format!("{key} {path}: no CERTIFICATE in it"));
    }
    let now = now_unix();
    let mut infos = Vec::with_capacity(certs.len());
    for der in &certs {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| format!("{key} {path}: a certificate that does not parse: {e}"))?;
        let validity = cert.validity();
        let info = CertInfo {
            role: role.to_string(),
            path: path.to_string(),
            subject: cert.subject().to_string(),
            not_after: validity.not_after.timestamp(),
        };
        if info.not_after < now {
            return Err(format!(
                "{key} {path}: the certificate {} expired on {}",
                info.subject,
                date(info.not_after)
            ));
        }
        if validity.not_before.timestamp() > now {
            return Err(format!(
                "{key} {path}: the certificate {} is not valid before {}",
                info.subject,
                date(validity.not_before.timestamp())
            ));
        }
        infos.push(info);
    }
    Ok((certs, infos))
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(key: &str, path: &str) -> Result<PrivateKeyDer<'static>, String> {
    read_pem(key, path)?
        .into_iter()
        .find_map(|item| match item {
            rustls_pemfile::Item::Pkcs8Key(k) => Some(PrivateKeyDer::from(k)),
            rustls_pemfile::Item::Pkcs1Key(k) => Some(PrivateKeyDer::from(k)),
            rustls_pemfile::Item::Sec1Key(k) => Some(PrivateKeyDer::from(k)),
            _ => None,
        })
        .ok_or_else(|| format!("{key} {path}: no PRIVATE KEY in it"))
}

/// A certificate chain with its key, checked to belong together.
fn certified(
    (cert_key, cert_path): (&str, &str),
    (key_key, key_path): (&str, &str),
    role: &str,
) -> Result<(CertifiedKey, PrivateKeyDer<'static>, Vec<CertInfo>), String> {
    let (certs, infos) = load_certs(cert_key, cert_path, role)?;
    let key = load_key(key_key, key_path)?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(certs, key.clone_key(), &provider).map_err(|e| {
        format!("{key_key} {key_path} does not go with {cert_key} {cert_path}: {e}")
    })?;
    Ok((certified, key, infos))
}

/// The TLS listener's certificate and key (`server.tls_cert`, `server.tls_key`).
pub fn listener_cert(
    cert_path: &str,
    key_path: &str,
) -> Result<(Arc<CertifiedKey>, Vec<CertInfo>), String> {
    let (certified, _, infos) = certified(
        ("server.tls_cert", cert_path),
        ("server.tls_key", key_path),
        "listener",
    )?;
    Ok((Arc::new(certified), infos))
}

/// The listener's certificate as rustls asks for it on every handshake; a reload stores a new
/// one and the next handshake uses it (connections already open keep theirs).
#[derive(Debug)]
pub struct LiveCert {
    current: ArcSwap<CertifiedKey>,
}

impl LiveCert {
    pub fn new(cert: Arc<CertifiedKey>) -> LiveCert {
        LiveCert {
            current: ArcSwap::new(cert),
        }
    }

    pub fn swap(&self, cert: Arc<CertifiedKey>) {
        self.current.store(cert);
    }
}

impl ResolvesServerCert for LiveCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The TLS listener's settings: TLS 1.2 and 1.3 (rustls, its default modern suites), ALPN h2
/// then http/1.1, the certificate from `cert`.
pub fn listener_settings(
    cert: Arc<LiveCert>,
) -> Result<pingora::listeners::tls::TlsSettings, String> {
    let mut settings = pingora::listeners::tls::TlsSettings::intermediate("", "")
        .map_err(|e| format!("TLS listener: {e}"))?;
    settings.enable_h2();
    settings.set_cert_resolver(cert);
    Ok(settings)
}

/// How a route reaches its `https://` upstreams beyond SNI and the system roots.
#[derive(Default)]
pub struct UpstreamTls {
    /// `upstream_ca`: the only roots its upstreams' certificates are verified against.
    pub ca: Option<Arc<[WrappedX509]>>,
    /// `upstream_client_cert` + `upstream_client_key`: the certificate shown for mTLS.
    pub client: Option<Arc<CertKey>>,
    pub certs: Vec<CertInfo>,
}

impl UpstreamTls {
    pub fn load(route: &crate::config::RouteConfig) -> Result<UpstreamTls, String> {
        let mut out = UpstreamTls::default();
        let prefix = &route.prefix;
        if !route.upstream_ca.is_empty() {
            let key = format!("routes ({prefix}) upstream_ca");
            let (certs, infos) =
                load_certs(&key, &route.upstream_ca, &format!("upstream_ca {prefix}"))?;
            let wrapped: Vec<WrappedX509> = certs
                .iter()
                .map(|der| WrappedX509::new(der.to_vec(), |raw: &Vec<u8>| parse_x509(raw)))
                .collect();
            out.ca = Some(Arc::from(wrapped));
            out.certs.extend(infos);
        }
        if !route.upstream_client_cert.is_empty() {
            let cert_key = format!("routes ({prefix}) upstream_client_cert");
            let key_key = format!("routes ({prefix}) upstream_client_key");
            let (certified, key, infos) = certified(
                (&cert_key, &route.upstream_client_cert),
                (&key_key, &route.upstream_client_key),
                &format!("upstream_client {prefix}"),
            )?;
            let chain = certified.cert.iter().map(|c| c.to_vec()).collect();
            out.client = Some(Arc::new(CertKey::new(chain, key.secret_der().to_vec())));
            out.certs.extend(infos);
        }
        Ok(out)
    }
}

/// The words of a failed handshake that say what did not verify (`invalid peer certificate:
/// UnknownIssuer`), without Pingora's layers of context around them.
pub fn handshake_reason(e: &pingora::Error) -> String {
    let text = e.to_string();
    match text.find(" cause: ") {
        Some(start) => {
            let rest = &text[start + " cause: ".len()..];
            let end = rest.find(", SNI:").unwrap_or(rest.len());
            rest[..end].trim().to_string()
        }
        None => text.trim().to_string(),
    }
}

/// The expiry metric for exactly these certificates (the ones no longer used disappear).
pub fn publish_expiry(certs: &[CertInfo]) {
    let gauge = &crate::metrics::TLS_CERT_EXPIRY;
    gauge.reset();
    for c in certs {
        gauge
            .with_label_values(&[c.role.as_str(), c.path.as_str(), c.subject.as_str()])
            .set(c.not_after);
    }
}

/// `check-config`'s lines about the certificates: what each is, whose, and days left.
pub fn describe(certs: &[CertInfo]) -> String {
    let now = now_unix();
    certs
        .iter()
        .map(|c| {
            let days = c.days_left(now);
            format!(
                "certificate {} {}: {} expires {} ({days} days left{})\n",
                c.role,
                c.path,
                c.subject,
                date(c.not_after),
                if days < 14 { ", renew it soon" } else { "" }
            )
        })
        .collect()
}
