//! Who is calling: tokens (JWT), passwords (argon2 pool and Django's policy), the user-state
//! cache, refresh-token families, the signing secret, throttling, and the `Authenticator`,
//! the one check that both the user API and the proxy run on an `Authorization` header.

pub mod assertion;
pub mod authenticator;
pub mod cache;
pub mod django_hash;
pub mod families;
pub mod keys;
pub mod passwords;
pub mod policy;
pub mod secret;
pub mod throttle;
pub mod tokens;

pub use authenticator::{AuthError, Authenticator, Identity, Requirement};
