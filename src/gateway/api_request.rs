//! Reading a user-API request off the session: the head fields the handlers use and the body,
//! capped at `api.max_body_bytes`.

use super::headers;
use crate::api;
use crate::config::Network;
use crate::error::ApiError;
use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;
use std::net::IpAddr;

pub fn peer_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// The client's address: the peer, or the hop `trusted_proxies` lets `X-Forwarded-For` name.
pub fn client_ip(session: &Session, trusted_proxies: &[Network]) -> Option<IpAddr> {
    peer_ip(session).map(|peer| {
        let xff = session
            .req_header()
            .headers
            .get(headers::X_FORWARDED_FOR)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        headers::client_ip(peer, xff.as_deref(), trusted_proxies)
    })
}

/// The request as the API handlers see it; `path` is the normalized path routing used.
pub async fn read(
    session: &mut Session,
    path: &str,
    request_id: &str,
    limit: usize,
    trusted_proxies: &[Network],
) -> Result<api::Request, ApiError> {
    let head = session.req_header();
    let header = |name: &str| {
        head.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let declared = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
    let mut req = api::Request {
        method: head.method.as_str().to_string(),
        path: path.to_string(),
        query: head.uri.query().unwrap_or("").to_string(),
        host: header("host").unwrap_or_default(),
        headers: head.headers.clone(),
        request_id: request_id.to_string(),
        content_type: header("content-type"),
        body: Bytes::new(),
        client_ip: client_ip(session, trusted_proxies),
        secure: false,
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::TooLarge(limit));
    }
    let mut body = BytesMut::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::TooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => return Err(ApiError::Parse("could not read the request body".into())),
        }
    }
    req.body = body.freeze();
    Ok(req)
}
