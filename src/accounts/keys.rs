//! API keys and service accounts as operations (SPEC §19): making a key (the maker's
//! password, and code when enrolled, in the body: a stolen token alone cannot mint a
//! long-lived key), listing and revoking keys, and staff's service accounts. What a request
//! may ask of a key (expiry, groups, routes, staff) is decided by `check_request`, a plain
//! function; the key's format is `auth::apikey`'s. The key itself is returned once and
//! never stored, logged, mailed or audited.

use super::fields::{names, FULL_UPDATE};
use super::{audit, mfa, writer, Actor, Input};
use crate::accounts::form::{Fields, OPTIONAL_BLANK_OK, REQUIRED};
use crate::accounts::required_value;
use crate::app::App;
use crate::auth::apikey;
use crate::clock::{iso_ms, now, parse_iso_ms};
use crate::error::{field, ApiError, FieldError};
use crate::store::{Action, ApiKey, Effects, MailKind, NewUser, User};
use serde_json::{Map, Value};

/// The longest key name (as Django's `CharField(max_length=150)` names elsewhere).
pub const KEY_NAME_MAX: usize = 150;
/// Groups a key may name.
pub const KEY_GROUPS_MAX: usize = 100;
/// Route prefixes a key may name, and the longest one.
pub const KEY_ROUTES_MAX: usize = 50;
pub const KEY_ROUTE_LEN_MAX: usize = 1024;
/// The domain of a service account made without an address (RFC 2606: never delivered).
/// Addresses are unique, so each gets `<username>@` it.
pub const SERVICE_DOMAIN: &str = "service.invalid";

/// The messages of a refused key request, one place each.
pub mod message {
    pub const EXPIRES_FORMAT: &str =
        "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].";
    pub const EXPIRES_PAST: &str = "Ensure this date-time is in the future.";
    pub const STAFF_OWNER: &str = "Only a staff account's key may carry staff.";
    pub const ROUTE_PREFIX: &str = "Must be a path prefix starting with \"/\".";

    pub fn expires_too_far(days: u64) -> String {
        format!(
            "Ensure this date-time is at most {days} days from now ([apikeys] max_lifetime_days)."
        )
    }

    pub fn not_a_group(group: &str) -> String {
        format!("\"{group}\" is not one of the owner's groups.")
    }

    pub fn too_many(max: usize) -> String {
        format!("Ensure this field has no more than {max} elements.")
    }
}

/// What a valid key request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRequest {
    pub name: String,
    /// Unix seconds.
    pub expires_at: u64,
    pub groups: Vec<String>,
    pub routes: Vec<String>,
    pub staff: bool,
}

/// A key as made: the key, shown this once, and its record.
#[derive(Clone)]
pub struct MadeKey {
    pub key: String,
    pub record: ApiKey,
}

impl std::fmt::Debug for MadeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MadeKey")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// The fields of a key request for `owner` at `now` with keys living at most
/// `max_lifetime_days`, in the order they are reported; `password` and `otp` are read (and
/// checked) by the caller. Pure: what the request asks is decided here, not written.
pub fn check_request(
    data: &Map<String, Value>,
    owner: &User,
    now: u64,
    max_lifetime_days: u64,
) -> Result<KeyRequest, ApiError> {
    let mut f = Fields::new(data);
    let name = f.char("name", REQUIRED);
    if let Some(name) = &name {
        f.max_len("name", name, KEY_NAME_MAX);
        if name.contains('\0') {
            f.add("name", field::NULL_CHARACTERS);
        }
    }
    let expires = f.char("expires_at", REQUIRED);
    let mut expires_at = None;
    if let Some(text) = &expires {
        match parse_iso_ms(text).map(|ms| ms / 1000) {
            None => f.add("expires_at", message::EXPIRES_FORMAT),
            Some(at) if at <= now => f.add("expires_at", message::EXPIRES_PAST),
            Some(at) if at > now.saturating_add(max_lifetime_days.saturating_mul(86_400)) => {
                f.add("expires_at", message::expires_too_far(max_lifetime_days))
            }
            Some(at) => expires_at = Some(at),
        }
    }
    let groups = f.char_list("groups", crate::store::GROUP_NAME_MAX);
    if let Some(groups) = &groups {
        if groups.len() > KEY_GROUPS_MAX {
            f.add("groups", message::too_many(KEY_GROUPS_MAX));
        }
        for g in groups.iter().filter(|g| !owner.groups.contains(g)) {
            f.add("groups", message::not_a_group(g));
        }
    }
    let routes = f.char_list("routes", KEY_ROUTE_LEN_MAX);
    if let Some(routes) = &routes {
        if routes.len() > KEY_ROUTES_MAX {
            f.add("routes", message::too_many(KEY_ROUTES_MAX));
        }
        if routes.iter().any(|r| !r.starts_with('/')) {
            f.add("routes", message::ROUTE_PREFIX);
        }
    }
    let staff = f.boolean("staff").unwrap_or(false);
    if staff && !owner.is_staff {
        f.add("staff", message::STAFF_OWNER);
    }
    f.finish()?;
    Ok(KeyRequest {
        name: required_value(name, "name")?,
        expires_at: required_value(expires_at, "expires_at")?,
        groups: crate::store::group_names(groups.unwrap_or_default()),
        routes: routes.unwrap_or_default(),
        staff,
    })
}

/// User `id`, active, or the admin API's 404.
async fn active_user(app: &App, id: u64) -> Result<User, ApiError> {
    match app.store.get_user(id).await? {
        Some(u) if u.is_active => Ok(u),
        _ => Err(ApiError::NoUser),
    }
}

/// The signed-in caller's own record, active.
async fn caller(app: &App, actor: &Actor) -> Result<User, ApiError> {
    match app.store.get_user(actor.user_id()?).await? {
        Some(u) if u.is_active => Ok(u),
        _ => Err(ApiError::UserNotFound),
    }
}

/// The maker proves who they are: `password`, and `otp` when their second factor is on,
/// throttled and counted as at sign-in (`mfa::reauthenticate`). Refusals are field errors
/// on `password` or `otp`.
async fn reauthenticate(
    app: &App,
    actor: &Actor,
    maker: &User,
    data: &Map<String, Value>,
) -> Result<(), ApiError> {
    let mut f = Fields::new(data);
    let password = f.char("password", REQUIRED);
    let otp = f.char("otp", OPTIONAL_BLANK_OK);
    f.finish()?;
    let password = required_value(password, "password")?;
    mfa::reauthenticate(app, actor, maker, &password, otp.as_deref().unwrap_or(""))
        .await
        .map_err(code_as_otp)
}

/// `mfa::reauthenticate` names the code `code` (the second factor's own forms); here it is
/// `otp`, as at sign-in.
fn code_as_otp(e: ApiError) -> ApiError {
    match e {
        ApiError::Validation(errors) => ApiError::Validation(
            errors
                .into_iter()
                .map(|(name, error)| match name.as_str() {
                    "code" => ("otp".to_string(), error),
                    _ => (name, error),
                })
                .collect::<Vec<(String, FieldError)>>(),
        ),
        other => other,
    }
}

/// `POST /api/auth/keys/`: a key for the caller.
pub async fn make_own_key(
    app: &App,
    actor: &Actor,
    input: &dyn Input,
) -> Result<MadeKey, ApiError> {
    let me = caller(app, actor).await?;
    let data = input.data()?;
    let request = check_request(&data, &me, now(), app.config.apikeys.max_lifetime_days)?;
    reauthenticate(app, actor, &me, &data).await?;
    make(app, actor, &me, &me, request).await
}

/// `POST /api/auth/admin/users/{id}/keys/`: staff make a key for user `owner_id` (a
/// service account, usually) with their own password (and code).
pub async fn admin_make_key(
    app: &App,
    actor: &Actor,
    owner_id: u64,
    input: &dyn Input,
) -> Result<MadeKey, ApiError> {
    actor.require_staff()?;
    let maker = caller(app, actor).await?;
    let owner = active_user(app, owner_id).await?;
    let data = input.data()?;
    let request = check_request(&data, &owner, now(), app.config.apikeys.max_lifetime_days)?;
    reauthenticate(app, actor, &maker, &data).await?;
    make(app, actor, &maker, &owner, request).await
}

/// Writes the key with its event and notice (to the owner; for a service account, to its
/// maker), in one write.
async fn make(
    app: &App,
    actor: &Actor,
    maker: &User,
    owner: &User,
    request: KeyRequest,
) -> Result<MadeKey, ApiError> {
    let made = apikey::generate();
    let at = now();
    let record = ApiKey {
        id: crate::ids::new_id(),
        user_id: owner.id,
        name: request.name,
        sha256: made.sha256.clone(),
        prefix: made.prefix.clone(),
        created: at,
        expires_at: request.expires_at,
        groups: request.groups,
        routes: request.routes,
        staff: request.staff,
        last_used: None,
        revoked: None,
    };
    let told = if owner.is_service { maker } else { owner };
    let mut mails = app.mailer.notice(MailKind::ApikeyCreated, told, at);
    for mail in &mut mails {
        mail.api_key = Some(format!("\"{}\" ({}…)", record.name, record.prefix));
        mail.account = Some(owner.username.clone());
    }
    let event = key_event(actor, Action::ApikeyCreated, &record)
        .detail("expires_at", iso_ms(record.expires_at.saturating_mul(1000)))
        .detail("groups", record.groups.clone())
        .detail("routes", record.routes.clone())
        .detail("staff", record.staff);
    let effects = Effects {
        api_keys: vec![record.clone()],
        ..Effects::from(mails)
    }
    .with(event);
    writer::record(app, effects).await?;
    Ok(MadeKey {
        key: made.key,
        record,
    })
}

/// The event of `action` on `key` (its owner the target): the key's id, name and prefix,
/// never the key.
fn key_event(actor: &Actor, action: Action, key: &ApiKey) -> crate::store::Event {
    actor
        .event(action, Some(key.user_id))
        .detail("key_id", key.id.as_str())
        .detail("name", key.name.as_str())
        .detail("prefix", key.prefix.as_str())
}

/// `GET /api/auth/keys/`: the caller's keys, newest first: the live ones and the expired
/// ones (which say why a job stopped); a revoked key is gone from it.
pub async fn own_keys(app: &App, actor: &Actor) -> Result<Vec<ApiKey>, ApiError> {
    let me = caller(app, actor).await?;
    let mut keys = app.store.list_api_keys(me.id).await?;
    keys.retain(|k| k.revoked.is_none());
    Ok(keys)
}

/// `GET /api/auth/admin/users/{id}/keys/` and the console's user page: user `id`'s keys.
pub async fn user_keys(app: &App, actor: &Actor, id: u64) -> Result<Vec<ApiKey>, ApiError> {
    actor.require_staff()?;
    if app.store.get_user(id).await?.is_none() {
        return Err(ApiError::NoUser);
    }
    Ok(app.store.list_api_keys(id).await?)
}

/// `DELETE /api/auth/keys/{id}/`: the caller's key `id` is revoked at once; `false` when
/// none of theirs has that id or it is revoked already (404: another user's key is no
/// different from none).
pub async fn revoke_own_key(app: &App, actor: &Actor, id: &str) -> Result<bool, ApiError> {
    let me = caller(app, actor).await?;
    revoke(app, actor, me.id, id).await
}

/// Staff revoke user `owner`'s key `id` (the console); `false` when it has none such.
pub async fn admin_revoke_key(
    app: &App,
    actor: &Actor,
    owner: u64,
    id: &str,
) -> Result<bool, ApiError> {
    actor.require_staff()?;
    revoke(app, actor, owner, id).await
}

/// Revokes `owner`'s key `id` with its event; `false` (nothing written) when `owner` has
/// no such key, or it is revoked already.
async fn revoke(app: &App, actor: &Actor, owner: u64, id: &str) -> Result<bool, ApiError> {
    let Some(key) = app
        .store
        .get_api_key(id)
        .await?
        .filter(|k| k.user_id == owner && k.revoked.is_none())
    else {
        return Ok(false);
    };
    let effects = Effects {
        api_keys_revoked: vec![(key.id.clone(), now())],
        ..Effects::from(key_event(actor, Action::ApikeyRevoked, &key))
    };
    writer::record(app, effects).await?;
    // Refused from the next request on: here at once; other replicas hear of it through
    // the change feed (the revocation announces its owner).
    app.cache.key_revoked(&key.id);
    Ok(true)
}

/// `POST /api/auth/admin/service-accounts/ {username, email?}`: a service account (no
/// password, no sign-in, keys only), made by staff. Without an address it gets
/// `<username>@service.invalid` (addresses are unique; that domain is never delivered).
pub async fn make_service_account(
    app: &App,
    actor: &Actor,
    input: &dyn Input,
) -> Result<User, ApiError> {
    actor.require_staff()?;
    let data = input.data()?;
    let mut f = Fields::new(&data);
    let valid = names(app.store.as_ref(), &mut f, FULL_UPDATE, None).await?;
    f.finish()?;
    let username = required_value(valid.username, "username")?;
    let email = valid
        .email
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| service_address(&username));
    let new = NewUser {
        username,
        email,
        first_name: String::new(),
        last_name: String::new(),
        // Django's unusable password: no password ever matches it.
        password: format!(
            "{}{}",
            crate::auth::django_hash::UNUSABLE_PREFIX,
            crate::ids::new_id()
        ),
        is_staff: false,
        date_joined: now(),
        is_service: true,
    };
    let user = writer::create(app, new, &|created| {
        audit::registered(actor, created)
            .detail("is_service", true)
            .into()
    })
    .await?;
    Ok(user)
}

/// The address of a service account made without one: its username (an `@` in it made a
/// `.`, so that the address stays one) at [`SERVICE_DOMAIN`].
pub fn service_address(username: &str) -> String {
    format!(
        "{}@{SERVICE_DOMAIN}",
        username.to_lowercase().replace('@', ".")
    )
}

/// A key as the API shows it (never the key: that is added once, at creation).
pub fn key_json(k: &ApiKey) -> Value {
    let time = |s: u64| Value::String(iso_ms(s.saturating_mul(1000)));
    serde_json::json!({
        "id": k.id,
        "name": k.name,
        "prefix": k.prefix,
        "created": time(k.created),
        "expires_at": time(k.expires_at),
        "groups": k.groups,
        "routes": k.routes,
        "staff": k.staff,
        "last_used": k.last_used.map(time),
        "revoked": k.revoked.map(time),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_user;
    use serde_json::json;

    const NOW: u64 = 1_796_601_600; // 2026-12-07T00:00:00Z
    const DAY: u64 = 86_400;

    fn data(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn owner(staff: bool, groups: &[&str]) -> User {
        let mut u = test_user(1, "ann", "ann@example.com");
        u.is_staff = staff;
        u.groups = groups.iter().map(|g| g.to_string()).collect();
        u
    }

    fn errors(r: Result<KeyRequest, ApiError>) -> Vec<(String, Vec<String>)> {
        match r {
            Err(ApiError::Validation(errors)) => errors
                .into_iter()
                .map(|(name, e)| match e {
                    FieldError::Messages(m) => (name, m),
                    FieldError::Items(items) => {
                        (name, items.into_iter().flat_map(|(_, m)| m).collect())
                    }
                })
                .collect(),
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn a_valid_request_is_read_with_its_groups_sorted() {
        let r = check_request(
            &data(json!({"name": " ci ", "expires_at": "2027-01-06T00:00:00Z",
                         "groups": ["ops", "billing"], "routes": ["/svc/"], "staff": true})),
            &owner(true, &["billing", "ops", "x"]),
            NOW,
            365,
        )
        .expect("valid");
        assert_eq!(
            r,
            KeyRequest {
                name: "ci".into(),
                expires_at: NOW + 30 * DAY,
                groups: vec!["billing".into(), "ops".into()],
                routes: vec!["/svc/".into()],
                staff: true,
            }
        );
        let bare = check_request(
            &data(json!({"name": "ci", "expires_at": "2027-01-06"})),
            &owner(false, &[]),
            NOW,
            365,
        )
        .expect("valid");
        assert!(bare.groups.is_empty() && bare.routes.is_empty() && !bare.staff);
    }

    #[test]
    fn name_and_expiry_are_required() {
        let e = errors(check_request(
            &data(json!({})),
            &owner(false, &[]),
            NOW,
            365,
        ));
        assert_eq!(
            e,
            [
                ("name".to_string(), vec![field::REQUIRED.to_string()]),
                ("expires_at".to_string(), vec![field::REQUIRED.to_string()]),
            ]
        );
    }

    #[test]
    fn an_expiry_in_the_past_too_far_or_not_a_date_is_refused() {
        let check = |at: &str, max: u64| {
            errors(check_request(
                &data(json!({"name": "ci", "expires_at": at})),
                &owner(false, &[]),
                NOW,
                max,
            ))
        };
        assert_eq!(
            check("2026-12-06T23:59:59Z", 365)[0].1,
            [message::EXPIRES_PAST]
        );
        assert_eq!(
            check("2026-12-07T00:00:00Z", 365)[0].1,
            [message::EXPIRES_PAST]
        );
        assert_eq!(
            check("2028-01-01", 365)[0].1,
            [message::expires_too_far(365)]
        );
        assert_eq!(check("2026-12-09", 1)[0].1, [message::expires_too_far(1)]);
        assert_eq!(check("next year", 365)[0].1, [message::EXPIRES_FORMAT]);
        // Exactly the maximum is fine.
        let at = iso_ms((NOW + 365 * DAY) * 1000);
        assert!(check_request(
            &data(json!({"name": "ci", "expires_at": at})),
            &owner(false, &[]),
            NOW,
            365
        )
        .is_ok());
    }

    #[test]
    fn groups_must_be_the_owners_and_staff_a_staff_owners() {
        let e = errors(check_request(
            &data(json!({"name": "ci", "expires_at": "2027-01-01",
                         "groups": ["ops", "admins"], "staff": true})),
            &owner(false, &["ops"]),
            NOW,
            365,
        ));
        assert_eq!(
            e,
            [
                ("groups".to_string(), vec![message::not_a_group("admins")]),
                ("staff".to_string(), vec![message::STAFF_OWNER.to_string()]),
            ]
        );
    }

    #[test]
    fn routes_are_path_prefixes_and_lists_are_bounded() {
        let many: Vec<String> = (0..=KEY_ROUTES_MAX).map(|i| format!("/r{i}/")).collect();
        let e = errors(check_request(
            &data(json!({"name": "ci", "expires_at": "2027-01-01", "routes": many})),
            &owner(false, &[]),
            NOW,
            365,
        ));
        assert_eq!(e[0].1, [message::too_many(KEY_ROUTES_MAX)]);
        let e = errors(check_request(
            &data(json!({"name": "ci", "expires_at": "2027-01-01", "routes": ["svc/"]})),
            &owner(false, &[]),
            NOW,
            365,
        ));
        assert_eq!(e[0].1, [message::ROUTE_PREFIX]);
        let e = errors(check_request(
            &data(json!({"name": "ci", "expires_at": "2027-01-01", "routes": "/svc/"})),
            &owner(false, &[]),
            NOW,
            365,
        ));
        assert_eq!(e[0].0, "routes");
    }

    #[test]
    fn a_service_account_without_an_address_gets_one_that_is_never_delivered() {
        assert_eq!(service_address("CI-Bot"), "ci-bot@service.invalid");
        let odd = service_address("bot@corp");
        assert_eq!(odd, "bot.corp@service.invalid");
        assert!(crate::auth::policy::is_valid_email(&odd));
    }

    #[test]
    fn a_code_error_is_reported_as_otp() {
        let e = code_as_otp(ApiError::field("code", field::REQUIRED));
        let ApiError::Validation(errors) = e else {
            panic!("not a validation error");
        };
        assert_eq!(errors[0].0, "otp");
        assert!(matches!(
            code_as_otp(ApiError::field("password", field::WRONG_PASSWORD)),
            ApiError::Validation(e) if e[0].0 == "password"
        ));
    }

    #[test]
    fn the_json_of_a_key_never_holds_its_hash() {
        let k = ApiKey {
            id: "a".into(),
            user_id: 1,
            name: "ci".into(),
            sha256: "d".repeat(64),
            prefix: "gk_abcde".into(),
            created: NOW,
            expires_at: NOW + DAY,
            groups: vec![],
            routes: vec![],
            staff: false,
            last_used: None,
            revoked: None,
        };
        let j = key_json(&k);
        assert_eq!(j["created"], "2026-12-07T00:00:00.000Z");
        assert_eq!(j["last_used"], Value::Null);
        assert!(!j.to_string().contains(&k.sha256));
        assert!(j.get("key").is_none());
    }
}
