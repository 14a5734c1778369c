//! The operations: every change a user, an admin or the operator makes to an account, as
//! `(services, actor, input) -> outcome`, with the field validation that produces DRF's
//! messages. The JSON API (`api/`) renders the outcome; pages will render the same outcome
//! as HTML: one code path per change. Every change is written by `writer`, the one place
//! that writes a user with its effects, then updates the cache and wakes the mailer.

mod actor;
mod admin;
mod audit;
mod fields;
pub mod form;
pub mod groups;
pub mod keys;
mod links;
pub mod mfa;
mod profile;
mod register;
mod sessions;
mod sign_in;
mod writer;

pub use actor::{Actor, Principal, SYSTEM_ACTOR};
pub use admin::{
    change_access, change_groups, end_user_devices, restore, AccessChange, GroupsEdit,
    IdentityChange,
};
pub use audit::{csrf_refused, record_alone, record_event};
pub use fields::{required_value, EMAIL_MAX, NAME_MAX, USERNAME_MAX};
pub use links::{
    confirm_password_reset, request_password_reset, request_verification, verify_email,
};
pub use profile::{change_password, own_record, soft_delete, update_profile};
pub use register::{create_superuser, register};
pub use sessions::{
    devices, end_device, end_family, end_other_devices, end_sessions, finish_sign_in,
    renew_session, sign_in_app, sign_in_browser, sign_in_session, step_up, upgrade_session,
    BrowserSignIn, Device, DeviceKind, Started, Which,
};
pub use sign_in::{sign_in, SecondFactor, SignedIn};

use crate::error::ApiError;
use serde_json::{Map, Value};

/// The data an operation reads: DRF's `request.data` (a JSON or form body as a map; see
/// `api::body::parse`), read when the operation gets to it. As in DRF, what comes before the
/// body (a throttle, the caller's own record, the target's existence) answers first,
/// whatever the body holds.
pub trait Input: Sync {
    fn data(&self) -> Result<Map<String, Value>, ApiError>;
}

/// Data already read (the command line, tests).
impl Input for Map<String, Value> {
    fn data(&self) -> Result<Map<String, Value>, ApiError> {
        Ok(self.clone())
    }
}
