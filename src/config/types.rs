//! The value types a config is made of. Each one parses itself once, when the file is read,
//! with an error that says what is expected; the runtime never parses a config string again.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A network in CIDR form (`10.0.0.0/8`) or a single address (`10.1.2.3`, a /32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Network, String> {
        let bad = || format!("{text:?} is not an address or a CIDR network (10.0.0.0/8)");
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (
                a.parse::<IpAddr>().map_err(|_| bad())?,
                Some(p.parse::<u8>().map_err(|_| bad())?),
            ),
            None => (text.parse::<IpAddr>().map_err(|_| bad())?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Network { addr, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One upstream of a route: `host:port` or `http://host:port` (plain HTTP), or
/// `https://host:port` (TLS, with the host as SNI and the name its certificate is checked
/// against). The host may be an IP address or a name resolved when the routes are built.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Upstream {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl FromStr for Upstream {
    type Err = String;

    fn from_str(text: &str) -> Result<Upstream, String> {
        let bad = |why: &str| {
            format!("{text:?} is not an upstream ({why}; use host:port, http://host:port or https://host:port)")
        };
        let (tls, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else if text.contains("://") {
            return Err(bad("only http and https"));
        } else {
            (false, text)
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) || rest.is_empty() {
            return Err(bad("no path, query or user part"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') => (h, Some(p)),
            _ => (rest, None),
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("bad port"))?,
            None => return Err(bad("the port is missing")),
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let valid_name = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
        if host.parse::<IpAddr>().is_err() && !valid_name {
            return Err(bad("bad host"));
        }
        Ok(Upstream {
            tls,
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => format!("[{}]", self.host),
            _ => self.host.clone(),
        };
        if self.tls {
            write!(f, "https://{host}:{}", self.port)
        } else {
            write!(f, "{host}:{}", self.port)
        }
    }
}

/// How an SMTP URL says to talk to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtp://` (default): STARTTLS, required.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://...?tls=none`: plain text, for a relay on the same host.
    None,
}

/// The SMTP server of `[email] backend = "smtp"` (`env::EMAIL_SMTP_URL_VAR`), parsed. It
/// holds the password: no `Debug`, and `describe` leaves the login out.
#[derive(Clone)]
pub struct SmtpUrl {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    user: Option<(String, String)>,
}

impl SmtpUrl {
    /// Errors say what is wrong, never repeating the URL (it may hold a password).
    pub fn parse(text: &str) -> Result<SmtpUrl, String> {
        let url = url::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
        let implicit = match url.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => return Err(format!("scheme {other:?}: use smtp:// or smtps://")),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let mut tls = if implicit {
            SmtpTls::Implicit
        } else {
            SmtpTls::StartTls
        };
        for (k, v) in url.query_pairs() {
            match (k.as_ref(), v.as_ref()) {
                ("tls", "none") if !implicit => tls = SmtpTls::None,
                ("tls", "starttls" | "required") if !implicit => tls = SmtpTls::StartTls,
                ("tls", other) => {
                    return Err(format!(
                    "tls={other:?}: smtp:// takes tls=none or tls=starttls; smtps:// is always TLS"
                ))
                }
                (other, _) => return Err(format!("unknown parameter {other:?}")),
            }
        }
        let port = url.port().unwrap_or(if implicit { 465 } else { 587 });
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| "the user or password is not UTF-8 once decoded".to_string())
        };
        let user = if url.username().is_empty() {
            None
        } else {
            Some((
                decode(url.username())?,
                decode(url.password().unwrap_or(""))?,
            ))
        };
        Ok(SmtpUrl {
            host,
            port,
            tls,
            user,
        })
    }

    /// The login (user, password), if the URL has one.
    pub fn user(&self) -> Option<(&str, &str)> {
        self.user.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// Host, port and TLS mode; never the user's password.
    pub fn describe(&self) -> String {
        let tls = match self.tls {
            SmtpTls::StartTls => "STARTTLS",
            SmtpTls::Implicit => "TLS",
            SmtpTls::None => "no TLS",
        };
        let auth = if self.user.is_some() {
            ", with a login"
        } else {
            ""
        };
        format!("{}:{} ({tls}{auth})", self.host, self.port)
    }
}

/// The JWT signing algorithms gatehouse offers (a subset of jsonwebtoken's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HS256,
    EdDSA,
    RS256,
    ES256,
}

impl Algorithm {
    pub fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        }
    }

    pub fn is_symmetric(self) -> bool {
        self == Algorithm::HS256
    }
}

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(name: &str) -> Result<Algorithm, String> {
        match name {
            "HS256" => Ok(Algorithm::HS256),
            "EdDSA" => Ok(Algorithm::EdDSA),
            "RS256" => Ok(Algorithm::RS256),
            "ES256" => Ok(Algorithm::ES256),
            other => Err(format!("{other:?}: use HS256, EdDSA, RS256 or ES256")),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The access log's line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

/// The diagnostic log's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// Serde for a type that is written as a string and parsed with `FromStr`: the value in the
/// file is checked when the file is read, and the message names what is expected.
pub mod as_string {
    use super::*;

    pub fn serialize<T: fmt::Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: fmt::Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(d)?;
        text.parse::<T>().map_err(serde::de::Error::custom)
    }
}

/// `as_string` for lists.
pub mod as_strings {
    use super::*;

    pub fn serialize<T: fmt::Display, S: Serializer>(
        values: &[T],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(values.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<Vec<T>, D::Error>
    where
        T: FromStr,
        T::Err: fmt::Display,
        D: Deserializer<'de>,
    {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| text.parse::<T>().map_err(serde::de::Error::custom))
            .collect()
    }
}

/// A header name as configured (`X-User-Id`), held as the lower-case `http::HeaderName`
/// every request uses.
pub mod header_name {
    use super::*;
    use http::HeaderName;

    pub fn serialize<S: Serializer>(name: &HeaderName, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(name.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HeaderName, D::Error> {
        let text = String::deserialize(d)?;
        HeaderName::from_bytes(text.to_ascii_lowercase().as_bytes())
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a valid header name")))
    }
}

/// An `IP:port` address.
pub mod socket_addr {
    use super::*;
    use std::net::SocketAddr;

    pub fn serialize<S: Serializer>(addr: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(addr)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    pub fn parse(text: &str) -> Result<SocketAddr, String> {
        text.parse::<SocketAddr>()
            .map_err(|_| format!("{text:?} is not an IP:port address (127.0.0.1:8080)"))
    }

    /// Lists of addresses (a route's upstreams).
    pub mod list {
        use super::*;

        pub fn serialize<S: Serializer>(addrs: &[SocketAddr], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(addrs.iter().map(ToString::to_string))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
            Vec::<String>::deserialize(d)?
                .iter()
                .map(|text| parse(text).map_err(serde::de::Error::custom))
                .collect()
        }
    }
}

/// An optional `IP:port`: `""` is none (a listener turned off).
pub mod optional_socket_addr {
    use super::*;
    use std::net::SocketAddr;

    pub fn serialize<S: Serializer>(addr: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        match addr {
            Some(a) => s.collect_str(a),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        super::socket_addr::parse(&text)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("{e}, or \"\" for none")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_and_match() {
        let net: Network = "10.0.0.0/8".parse().expect("cidr");
        assert!(net.contains("10.200.1.1".parse().expect("ip")));
        assert!(!net.contains("11.0.0.1".parse().expect("ip")));
        let one: Network = "::1".parse().expect("single v6");
        assert!(one.contains("::1".parse().expect("ip")));
        assert!(!one.contains("127.0.0.1".parse().expect("ip")));
        assert_eq!(one.to_string(), "::1/128");
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/", "/8"] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
    }

    #[test]
    fn algorithms_round_trip() {
        for name in ["HS256", "EdDSA", "RS256", "ES256"] {
            let alg: Algorithm = name.parse().expect("known");
            assert_eq!(alg.to_string(), name);
        }
        assert!("HS512".parse::<Algorithm>().is_err());
        assert!("none".parse::<Algorithm>().is_err());
    }

    #[test]
    fn upstreams_parse_with_their_scheme() {
        let up = |t: &str| t.parse::<Upstream>();
        let tls = up("https://Orders.internal:8443").expect("https");
        assert_eq!(
            (tls.tls, tls.host.as_str(), tls.port),
            (true, "orders.internal", 8443)
        );
        assert_eq!(tls.to_string(), "https://orders.internal:8443");
        let plain = up("127.0.0.1:9000").expect("plain");
        assert!(!plain.tls);
        assert_eq!(plain.to_string(), "127.0.0.1:9000");
        assert_eq!(up("http://127.0.0.1:9000").expect("http"), plain);
        let v6 = up("https://[::1]:8443").expect("v6");
        assert_eq!(
            (v6.host.as_str(), v6.to_string()),
            ("::1", "https://[::1]:8443".into())
        );
        for bad in [
            "nowhere",
            "https://a:0",
            "ftp://a:1",
            "https://a:1/path",
            "https://user@a:1",
            "https://:1",
            "a b:1",
            "https://a:99999",
        ] {
            assert!(up(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn smtp_urls_choose_the_tls_mode() {
        let t = SmtpUrl::parse("smtp://u%40x:p%3Ass@mail.example.com").expect("starttls");
        assert_eq!(
            (t.host.as_str(), t.port, &t.tls),
            ("mail.example.com", 587, &SmtpTls::StartTls)
        );
        assert_eq!(t.user(), Some(("u@x", "p:ss")));
        assert!(!t.describe().contains("p:ss") && !t.describe().contains("u@x"));
        let t = SmtpUrl::parse("smtps://mail.example.com").expect("tls");
        assert_eq!((t.port, &t.tls), (465, &SmtpTls::Implicit));
        let t = SmtpUrl::parse("smtp://127.0.0.1:2525?tls=none").expect("plain");
        assert_eq!((t.port, &t.tls), (2525, &SmtpTls::None));
        for bad in [
            "http://x",
            "smtps://x?tls=none",
            "smtp://x?tls=maybe",
            "smtp://x?pool=1",
            "nope",
        ] {
            assert!(SmtpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
