//! Second-factor codes for the tests (SPEC §17), from an independent implementation: pyotp in
//! the tests' virtualenv (`tests/support/totp_tool.py`), never gatehouse's own arithmetic.

use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// The codes of `secret` (base32 as gatehouse shows it, spaces allowed) at each of `at`.
pub fn codes_at(secret: &str, at: &[u64]) -> Vec<String> {
    let answer = super::django::run_script("totp_tool.py", &json!({"secret": secret, "at": at}));
    answer["codes"]
        .as_array()
        .unwrap_or_else(|| panic!("totp_tool.py gave no codes: {answer}"))
        .iter()
        .map(|c| {
            c.as_str()
                .unwrap_or_else(|| panic!("totp_tool.py gave a code that is no text: {c}"))
                .to_string()
        })
        .collect::<Vec<_>>()
}

/// The code of `secret` now.
pub fn code_now(secret: &str) -> String {
    codes_at(secret, &[now()]).remove(0)
}

/// The code of `secret` for the time step `steps` away from now (-1: the previous one).
pub fn code_in_step(secret: &str, steps: i64) -> String {
    let at = now() as i64 + steps * 30;
    codes_at(secret, &[at.max(0) as u64]).remove(0)
}

/// Waits until a new 30-second step starts when fewer than `margin` seconds of the current
/// one are left, so that a code taken now is still current for at least `margin` seconds.
pub fn fresh_step(margin: u64) {
    let left = 30 - now() % 30;
    if left < margin {
        std::thread::sleep(std::time::Duration::from_secs(left + 1));
    }
}

/// Waits for the next 30-second step (a new code).
pub fn next_step() {
    let left = 30 - now() % 30;
    std::thread::sleep(std::time::Duration::from_secs(left + 1));
}

/// The `secret` field of an enrolment answer.
pub fn secret_of(enrolment: &Value) -> String {
    enrolment["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("no secret in {enrolment}"))
        .to_string()
}
