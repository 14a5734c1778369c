//! Who is calling: tokens (JWT), passwords (argon2 pool and Django's policy), the user-state
//! cache, refresh-token families, the signing secret, throttling, and the credential step
//! (`credentials`), the one check the user API, the proxy and forward-auth run on a request.

pub mod apikey;
pub mod assertion;
pub mod cache;
pub mod credentials;
pub mod csrf;
pub mod django_hash;
pub mod families;
pub mod identity;
pub mod keys;
pub mod passwords;
pub mod policy;
pub mod secret;
pub mod sessions;
pub mod throttle;
pub mod tokens;
pub mod totp;
pub mod verified;

pub use credentials::{Accept, AuthError, Authenticator, Requirement};
pub use identity::{Identity, Via};
