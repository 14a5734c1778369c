//! Random identifiers: token ids (`jti`) and generated request ids.

use rand::RngCore;

/// 32 lower-case hex characters, as simplejwt's `uuid4().hex`.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
