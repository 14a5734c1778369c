//! The proxy side: everything between a request arriving on the public listener and its
//! bytes reaching an upstream. `proxy` holds the Pingora phases; the decisions they call are
//! plain functions (`classify`: who answers a path; `decide`, `headers`, `cors`, `routes`);
//! `respond` and `telemetry` are what comes out (written answers, the access log and
//! metrics).

mod api_request;
pub mod classify;
pub mod connection;
pub mod cors;
pub mod decide;
pub mod drain;
pub mod forward_auth;
pub mod headers;
pub mod health;
pub mod live;
pub mod proxy;
pub mod respond;
pub mod routes;
pub mod telemetry;
pub mod upstream_check;

pub use proxy::Gateway;
