//! The scale runs' users, shared by `scale_load.rs` and `user_list.rs`: user `id` of a store
//! of `total` (the last one is the staff user `admin`), everyone with the same password hash.

use gatehouse::store::User;

/// `user0000001`..`userNNNNNNN` (email `user0000001@example.com`), active, verified, in no
/// group, joined `now`; id `total` is `admin` (staff, `admin@example.com`).
pub fn scale_user(id: u64, total: u64, hash: &str, now: u64) -> User {
    let (username, email) = if id == total {
        ("admin".to_string(), "admin@example.com".to_string())
    } else {
        (format!("user{id:07}"), format!("user{id:07}@example.com"))
    };
    User {
        id,
        username,
        email,
        first_name: String::new(),
        last_name: String::new(),
        password: hash.to_string(),
        is_active: true,
        is_staff: id == total,
        date_joined: now,
        last_login: None,
        deleted_at: None,
        token_version: 0,
        groups: Vec::new(),
        email_verified: true,
        ended: Vec::new(),
        is_service: false,
    }
}
