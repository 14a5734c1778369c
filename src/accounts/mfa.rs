//! The second factor as operations (SPEC §17): enrolment (a pending secret, confirmed by a
//! code, which yields the recovery codes), new recovery codes, turning it off, an admin's
//! reset, and the second step of a sign-in: a code checked against the store's record by
//! compare-and-swap, so that a time step is accepted once per user on every replica, wrong
//! codes count towards a lock, and a browser's pending step is used once. The arithmetic is
//! `auth::totp`'s; what each outcome writes, mails and records is decided here.

use super::{audit, writer, Actor, Input};
use crate::accounts::form::{Fields, REQUIRED};
use crate::accounts::required_value;
use crate::app::App;
use crate::auth::totp::{self, Typed, Verdict};
use crate::clock::now;
use crate::error::{field, ApiError, MfaState, OTP_INVALID};
use crate::metrics::MFA_CHECKS;
use crate::store::{
    Action, Effects, MailKind, Mfa, PendingStep, StoreError, User, MAX_SWAP_ATTEMPTS,
};

const HOUR: u64 = 3600;
/// Browser sign-ins a user may have waiting for their code at once (several tabs).
const PENDING_MAX: usize = 5;

/// What enrolment shows: the secret for typing in, the URI an app scans, and its QR code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
}

/// The user's second factor when it is on.
pub async fn enabled(app: &App, user_id: u64) -> Result<Option<Mfa>, ApiError> {
    Ok(app.store.get_mfa(user_id).await?.filter(|m| m.enabled))
}

/// The issuer authenticator apps show.
fn issuer(app: &App) -> &str {
    match app.config.mfa.issuer.as_str() {
        "" => &app.config.web.brand_name,
        issuer => issuer,
    }
}

/// The secret of `record`, opened. A secret that does not open was sealed with other
/// material (the JWT secret changed): the store's error, logged, never a wrong code.
fn secret_of(app: &App, user_id: u64, record: &Mfa) -> Result<Vec<u8>, ApiError> {
    app.second_factor
        .open(user_id, &record.secret)
        .ok_or_else(|| {
            StoreError::Io(format!(
                "the second-factor secret of user {user_id} does not open: was the JWT secret changed?"
            ))
            .into()
        })
}

/// What enrolment of `user` with `secret` shows.
fn enrolment(app: &App, user: &User, secret: &[u8]) -> Result<Enrolment, ApiError> {
    let otpauth_uri = totp::otpauth_uri(issuer(app), &user.username, secret);
    let qr_svg = totp::qr_svg(&otpauth_uri).map_err(StoreError::Io)?;
    Ok(Enrolment {
        secret: totp::secret_text(secret),
        otpauth_uri,
        qr_svg,
    })
}

/// The caller's own record, active.
async fn own_user(app: &App, actor: &Actor) -> Result<User, ApiError> {
    let id = actor.user_id()?;
    match app.store.get_user(id).await? {
        Some(u) if u.is_active => Ok(u),
        _ => Err(ApiError::UserNotFound),
    }
}

/// `POST /api/auth/2fa/totp/`: a new pending secret (replacing one still pending). Refused
/// while a second factor is on: turn it off first.
pub async fn start_enrolment(app: &App, actor: &Actor) -> Result<Enrolment, ApiError> {
    let user = own_user(app, actor).await?;
    let secret = totp::new_secret();
    let record = Mfa {
        secret: app
            .second_factor
            .seal(user.id, &secret)
            .map_err(StoreError::Io)?,
        enabled: false,
        since: now(),
        ..Mfa::default()
    };
    for _ in 0..MAX_SWAP_ATTEMPTS {
        let current = app.store.get_mfa(user.id).await?;
        if current.as_ref().is_some_and(|m| m.enabled) {
            return Err(ApiError::MfaState(MfaState::Enabled));
        }
        if app
            .store
            .swap_mfa(user.id, current.as_ref(), Some(&record), Effects::none())
            .await?
        {
            return enrolment(app, &user, &secret);
        }
    }
    Err(StoreError::Conflict.into())
}

/// The enrolment pending for `user`, shown again (the account page, after a reload).
pub async fn pending_enrolment(app: &App, user: &User) -> Result<Option<Enrolment>, ApiError> {
    match app.store.get_mfa(user.id).await? {
        Some(m) if !m.enabled => enrolment(app, user, &secret_of(app, user.id, &m)?).map(Some),
        _ => Ok(None),
    }
}

/// The `code` field of an operation's input.
fn code_field(input: &dyn Input) -> Result<String, ApiError> {
    let data = input.data()?;
    let mut f = Fields::new(&data);
    let code = f.char("code", REQUIRED);
    f.finish()?;
    required_value(code, "code")
}

/// New recovery codes for `user`: the codes to show once, and their hashes to keep.
fn recovery_codes(app: &App, user_id: u64) -> (Vec<String>, Vec<String>) {
    let codes = totp::new_recovery_codes();
    let hashes = codes
        .iter()
        .map(|c| match totp::parse(c) {
            Typed::Recovery(normalised) => app.second_factor.recovery_hash(user_id, &normalised),
            // Never: every code made parses. A hash of nothing matches nothing typed.
            _ => String::new(),
        })
        .collect();
    (codes, hashes)
}

/// `POST /api/auth/2fa/totp/confirm/ {code}`: a code of the pending secret turns the second
/// factor on; the answer is the recovery codes, shown this once.
pub async fn confirm_enrolment(
    app: &App,
    actor: &Actor,
    input: &dyn Input,
) -> Result<Vec<String>, ApiError> {
    let user = own_user(app, actor).await?;
    let typed = code_field(input)?;
    for _ in 0..MAX_SWAP_ATTEMPTS {
        let current = app.store.get_mfa(user.id).await?;
        let pending = match &current {
            Some(m) if !m.enabled => m,
            Some(_) => return Err(ApiError::MfaState(MfaState::Enabled)),
            None => return Err(ApiError::MfaState(MfaState::NotPending)),
        };
        let secret = secret_of(app, user.id, pending)?;
        let at = now();
        let step = match totp::parse(&typed) {
            Typed::Code(code) => match totp::check(&secret, code, at, pending.last_step) {
                Verdict::Fresh(step) => step,
                _ => return Err(ApiError::field("code", OTP_INVALID)),
            },
            _ => return Err(ApiError::field("code", OTP_INVALID)),
        };
        let (codes, hashes) = recovery_codes(app, user.id);
        let record = Mfa {
            enabled: true,
            since: at,
            last_step: step,
            recovery: hashes,
            ..pending.clone()
        };
        let effects = Effects::from(app.mailer.notice(MailKind::MfaEnabled, &user, at))
            .with(actor.event(Action::MfaEnabled, Some(user.id)));
        if swap(app, user.id, current.as_ref(), Some(&record), effects).await? {
            return Ok(codes);
        }
    }
    Err(StoreError::Conflict.into())
}

/// A compare-and-swap of the user's record with its effects, the mailer woken when they
/// hold mail.
async fn swap(
    app: &App,
    user_id: u64,
    expected: Option<&Mfa>,
    new: Option<&Mfa>,
    effects: Effects,
) -> Result<bool, StoreError> {
    let mailed = !effects.mails.is_empty();
    let done = app.store.swap_mfa(user_id, expected, new, effects).await?;
    if done && mailed {
        app.mailer.wake.notify_one();
    }
    Ok(done)
}

/// `POST /api/auth/2fa/recovery-codes/ {code}`: a current code (or a recovery code) makes a
/// new set of recovery codes; the old ones stop working.
pub async fn renew_recovery_codes(
    app: &App,
    actor: &Actor,
    input: &dyn Input,
) -> Result<Vec<String>, ApiError> {
    let user = own_user(app, actor).await?;
    let typed = code_field(input)?;
    if enabled(app, user.id).await?.is_none() {
        return Err(ApiError::MfaState(MfaState::NotEnabled));
    }
    let (codes, hashes) = recovery_codes(app, user.id);
    let at = now();
    let renewed = Effects::from(app.mailer.notice(MailKind::RecoveryCodesRenewed, &user, at))
        .with(actor.event(Action::MfaRecoveryCodesRenewed, Some(user.id)));
    second_step(
        app,
        actor,
        &user,
        &typed,
        &|m| m.recovery.clone_from(&hashes),
        renewed,
    )
    .await
    .map_err(as_field_error)?;
    Ok(codes)
}

/// A wrong code on a signed-in user's own form is a field error, as a wrong password is.
fn as_field_error(e: ApiError) -> ApiError {
    match e {
        ApiError::OtpInvalid => ApiError::field("code", OTP_INVALID),
        other => other,
    }
}

/// `DELETE /api/auth/2fa/totp/ {password, code}`: the password and a code (or a recovery
/// code) turn the second factor off. Every session and token of the user ends with it (the
/// token version), and the user is mailed.
pub async fn disable(app: &App, actor: &Actor, input: &dyn Input) -> Result<(), ApiError> {
    let user = own_user(app, actor).await?;
    let data = input.data()?;
    let mut f = Fields::new(&data);
    let password = f.char("password", REQUIRED);
    let code = f.char("code", REQUIRED);
    f.finish()?;
    let password = required_value(password, "password")?;
    let code = required_value(code, "code")?;
    if enabled(app, user.id).await?.is_none() {
        return Err(ApiError::MfaState(MfaState::NotEnabled));
    }
    reauthenticate(app, actor, &user, &password, &code).await?;
    remove(app, actor, user.id, false).await
}

/// A signed-in `user` proving again who they are before a sensitive change (SPEC §15, §17):
/// the password, throttled and counted as at sign-in (a stolen token or cookie is no free
/// password oracle), then, when a second factor is on, `code` (a code or a recovery code).
/// Refusals are field errors on `password` or `code`; a lock is the 429.
pub async fn reauthenticate(
    app: &App,
    actor: &Actor,
    user: &User,
    password: &str,
    code: &str,
) -> Result<(), ApiError> {
    if let Err(wait) = app
        .throttle
        .check_login(&user.username, actor.client_ip, now())
        .await
    {
        return Err(ApiError::Throttled(wait));
    }
    let check = app.passwords.verify(password, Some(&user.password)).await?;
    if !check.ok {
        app.throttle
            .login_failed(&user.username, actor.client_ip, now())
            .await;
        return Err(ApiError::field("password", field::WRONG_PASSWORD));
    }
    if enabled(app, user.id).await?.is_none() {
        return Ok(());
    }
    if code.trim().is_empty() {
        return Err(ApiError::field("code", field::REQUIRED));
    }
    second_step(app, actor, user, code, &|_| {}, Effects::none())
        .await
        .map(|_| ())
        .map_err(as_field_error)
}

/// Takes the second factor of user `id` away in the write that ends every session and
/// token of the user, with its event and notice. `by_admin`: an admin's reset.
async fn remove(app: &App, actor: &Actor, id: u64, by_admin: bool) -> Result<(), ApiError> {
    let at = now();
    writer::update(app, id, &|u| u.token_version += 1, &|_, after| {
        let mut event = actor.event(Action::MfaDisabled, Some(after.id));
        if by_admin {
            event = event.detail("reset_by_admin", true);
        }
        Effects {
            mfa_removed: vec![after.id],
            ..Effects::from(app.mailer.notice(MailKind::MfaDisabled, after, at))
        }
        .with(event)
    })
    .await?;
    Ok(())
}

/// An admin's reset of user `id`'s lost second factor (`PATCH …/admin/users/{id}/ {"mfa":
/// false}`): nothing when the user has none. An enrolment still pending is none: it signs
/// nobody out and is left for its user to finish or replace.
pub async fn admin_reset(app: &App, actor: &Actor, id: u64) -> Result<bool, ApiError> {
    actor.require_staff()?;
    if enabled(app, id).await?.is_none() {
        return Ok(false);
    }
    remove(app, actor, id, true).await?;
    Ok(true)
}

/// How a second step passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passed {
    Code,
    RecoveryCode,
}

/// The second step for `user`, whose second factor is on: `typed` (a current code or an
/// unused recovery code) checked and used in one compare-and-swap with `on_success` (what
/// else the step changes, such as a pending step used up) and `effects`. A code of a step
/// used before is refused and reported (`mfa.replay_refused`, a notice); every refusal counts
/// towards the lock (`[mfa] failures_per_hour`), which answers 429 until it ends.
pub async fn second_step(
    app: &App,
    actor: &Actor,
    user: &User,
    typed: &str,
    on_success: &(dyn Fn(&mut Mfa) + Sync),
    effects: Effects,
) -> Result<Passed, ApiError> {
    let typed = totp::parse(typed);
    for _ in 0..MAX_SWAP_ATTEMPTS {
        let Some(current) = enabled(app, user.id).await? else {
            return Err(ApiError::MfaState(MfaState::NotEnabled));
        };
        let at = now();
        if current.locked_until > at {
            MFA_CHECKS.with_label_values(&["locked"]).inc();
            return Err(ApiError::Throttled(current.locked_until - at));
        }
        let mut next = current.clone();
        // What the check found, as the metric counts it.
        let mut counted = "wrong";
        let outcome = match &typed {
            Typed::Code(code) => {
                let secret = secret_of(app, user.id, &current)?;
                match totp::check(&secret, *code, at, current.last_step) {
                    Verdict::Fresh(step) => {
                        counted = "code";
                        next.last_step = step;
                        Ok((Passed::Code, None))
                    }
                    // Reported once per step: racers sending the same code make one
                    // notice; each still counts as a failure.
                    Verdict::Replayed(step) => {
                        counted = "replayed";
                        if step == current.replay_reported {
                            Err(None)
                        } else {
                            next.replay_reported = step;
                            Err(Some(Action::MfaReplayRefused))
                        }
                    }
                    Verdict::Wrong => Err(None),
                }
            }
            Typed::Recovery(normalised) => {
                let hash = app.second_factor.recovery_hash(user.id, normalised);
                match next.recovery.iter().position(|h| *h == hash) {
                    Some(i) => {
                        counted = "recovery_code";
                        next.recovery.remove(i);
                        Ok((Passed::RecoveryCode, Some(Action::MfaRecoveryCodeUsed)))
                    }
                    None => Err(None),
                }
            }
            Typed::Malformed => Err(None),
        };
        let (written, result) = match outcome {
            Ok((passed, event)) => {
                let mut caused = effects.clone();
                if let Some(action) = event {
                    let remaining = next.recovery.len();
                    caused = caused.with(
                        actor
                            .event(action, Some(user.id))
                            .detail("remaining", remaining),
                    );
                }
                next.failures.clear();
                on_success(&mut next);
                (caused, Ok(passed))
            }
            Err(reported) => {
                let mut caused = Effects::none();
                if let Some(action) = reported {
                    caused = Effects::from(app.mailer.notice(MailKind::MfaReplayRefused, user, at))
                        .with(actor.event(action, Some(user.id)));
                }
                next.failures.retain(|t| at.saturating_sub(*t) < HOUR);
                next.failures.push(at);
                let limit = app.config.mfa.failures_per_hour as usize;
                if next.failures.len() >= limit {
                    next.failures.clear();
                    next.locked_until = at.saturating_add(app.config.mfa.lock_seconds());
                    caused
                        .mails
                        .extend(app.mailer.notice(MailKind::MfaLocked, user, at));
                    caused = caused.with(actor.event(Action::MfaLocked, Some(user.id)));
                }
                (caused, Err(ApiError::OtpInvalid))
            }
        };
        if swap(app, user.id, Some(&current), Some(&next), written).await? {
            MFA_CHECKS.with_label_values(&[counted]).inc();
            return result;
        }
    }
    Err(StoreError::Conflict.into())
}

/// A browser's sign-in whose password was right, waiting for its code: the value of the
/// cookie that carries it to the second page ("<user id>.<random>", never stored).
pub async fn begin_pending(app: &App, user: &User, remember: bool) -> Result<String, ApiError> {
    let (value, id_hash) = pending_id(app, user.id);
    for _ in 0..MAX_SWAP_ATTEMPTS {
        let Some(current) = enabled(app, user.id).await? else {
            return Err(ApiError::MfaState(MfaState::NotEnabled));
        };
        let at = now();
        let mut next = current.clone();
        next.pending.retain(|p| p.expires_at > at);
        next.pending.push(PendingStep {
            id_hash: id_hash.clone(),
            expires_at: at.saturating_add(app.config.mfa.pending_seconds()),
            remember,
        });
        let excess = next.pending.len().saturating_sub(PENDING_MAX);
        next.pending.drain(..excess);
        if swap(app, user.id, Some(&current), Some(&next), Effects::none()).await? {
            return Ok(value);
        }
    }
    Err(StoreError::Conflict.into())
}

/// A new pending step's cookie value and its hash as the record keeps it.
fn pending_id(app: &App, user_id: u64) -> (String, String) {
    let random = crate::ids::new_id();
    let value = format!("{user_id}.{random}");
    let hash = app.second_factor.pending_hash(&value);
    (value, hash)
}

/// The pending step a browser's cookie names: its user (active) and the step, while it
/// has not expired or been used. `None` for anything else.
pub async fn pending(app: &App, value: &str) -> Result<Option<(User, PendingStep)>, ApiError> {
    let Some(user_id) = value
        .split_once('.')
        .and_then(|(id, _)| id.parse::<u64>().ok())
    else {
        return Ok(None);
    };
    let Some(record) = enabled(app, user_id).await? else {
        return Ok(None);
    };
    let hash = app.second_factor.pending_hash(value);
    let at = now();
    let Some(step) = record
        .pending
        .into_iter()
        .find(|p| p.id_hash == hash && p.expires_at > at)
    else {
        return Ok(None);
    };
    match app.store.get_user(user_id).await? {
        Some(user) if user.is_active => Ok(Some((user, step))),
        _ => Ok(None),
    }
}

/// What using up the pending step `hash` changes in the record.
pub fn use_pending(hash: &str) -> impl Fn(&mut Mfa) + Sync + '_ {
    move |m: &mut Mfa| m.pending.retain(|p| p.id_hash != hash)
}

/// Records a refused second step as the sign-in's failure (`login.failed`, bounded).
pub(super) async fn refused(app: &App, actor: &Actor, user: &User, reason: &'static str) {
    let event = actor
        .event(Action::LoginFailed, Some(user.id))
        .detail("reason", reason)
        .detail("username", user.username.as_str());
    audit::record_alone(app, event).await;
}

/// Where a staff member's visit to the admin console goes (SPEC §17, `[console]
/// require_mfa`, OWASP ASVS 4.3.1): in, to enrolment first (no second factor yet), or to the
/// second-factor page (a factor, but this sign-in did not use it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleEntry {
    Enter,
    Enrol,
    StepUp,
}

/// `require_mfa`: the console's setting; `signed_in_with_code`: the session's sign-in used a
/// second factor; `has_factor`: the user has one on.
pub fn console_entry(
    require_mfa: bool,
    signed_in_with_code: bool,
    has_factor: bool,
) -> ConsoleEntry {
    match (require_mfa, signed_in_with_code, has_factor) {
        (false, _, _) | (true, true, _) => ConsoleEntry::Enter,
        (true, false, false) => ConsoleEntry::Enrol,
        (true, false, true) => ConsoleEntry::StepUp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::new_user;
    use serde_json::{json, Map, Value};

    const PASSWORD: &str = "Corr3ct-Horse";

    fn app(failures_per_hour: u32) -> (tempfile::TempDir, App) {
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = format!(
            "[server]\ndata_dir = \"{}\"\n[passwords]\nargon2_memory_kib = 64\nargon2_iterations = 1\n\
             [mfa]\nfailures_per_hour = {failures_per_hour}\n",
            dir.path().display()
        );
        let config = Config::from_toml_and_env(&toml, "t", &[]).expect("config");
        (dir, App::open(config).expect("app"))
    }

    fn input(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("an object")
    }

    /// A user with a second factor turned on: the user, the actor, the secret, the recovery
    /// codes. The confirming code was the current step's.
    async fn enrolled(app: &App) -> (User, Actor, Vec<u8>, Vec<String>) {
        let password = app.passwords.hash(PASSWORD).await.expect("hash");
        let new = crate::store::NewUser {
            password,
            ..new_user("ann")
        };
        let user = writer::create(app, new, &|_| Effects::none())
            .await
            .expect("create");
        let actor = Actor::user(user.id, false, None);
        start_enrolment(app, &actor).await.expect("enrol");
        let record = app
            .store
            .get_mfa(user.id)
            .await
            .expect("read")
            .expect("pending");
        let secret = secret_of(app, user.id, &record).expect("opens");
        let code = totp::code_at(&secret, totp::step_at(now()));
        let codes = confirm_enrolment(app, &actor, &input(json!({ "code": code })))
            .await
            .expect("confirm");
        (user, actor, secret, codes)
    }

    #[tokio::test]
    async fn a_step_is_accepted_once_and_a_recovery_code_once() {
        let (_dir, app) = app(10);
        let (user, actor, secret, codes) = enrolled(&app).await;
        assert_eq!(codes.len(), 10);
        let step = totp::step_at(now());
        let stored = enabled(&app, user.id).await.expect("read").expect("on");
        assert!(
            stored.last_step >= step,
            "the confirming code's step is used"
        );
        assert!(!stored.secret.contains(&totp::secret_text(&secret)));
        let same = totp::code_at(&secret, stored.last_step);
        let none = &|_: &mut Mfa| {};
        for _ in 0..2 {
            assert_eq!(
                second_step(&app, &actor, &user, &same, none, Effects::none()).await,
                Err(ApiError::OtpInvalid),
                "replayed"
            );
        }
        let replays = crate::store::EventFilter {
            action: Some(Action::MfaReplayRefused),
            ..Default::default()
        };
        let reported = app
            .store
            .list_events(&replays, None, 10)
            .await
            .expect("events");
        assert_eq!(
            reported.len(),
            1,
            "one report per replayed step: {reported:?}"
        );
        let next = totp::code_at(&secret, stored.last_step + 1);
        assert_eq!(
            second_step(&app, &actor, &user, &next, none, Effects::none()).await,
            Ok(Passed::Code)
        );
        let recovery = codes[3].to_uppercase();
        assert_eq!(
            second_step(&app, &actor, &user, &recovery, none, Effects::none()).await,
            Ok(Passed::RecoveryCode)
        );
        assert_eq!(
            second_step(&app, &actor, &user, &recovery, none, Effects::none()).await,
            Err(ApiError::OtpInvalid)
        );
        let left = enabled(&app, user.id).await.expect("read").expect("on");
        assert_eq!(left.recovery.len(), 9);
        // The replays were cleared by the success after them; the second use of the
        // recovery code counts.
        assert_eq!(left.failures.len(), 1);
    }

    #[tokio::test]
    async fn wrong_codes_lock_the_second_step_even_for_a_right_one() {
        let (_dir, app) = app(3);
        let (user, actor, secret, _) = enrolled(&app).await;
        let none = &|_: &mut Mfa| {};
        for wrong in ["000000", "12345", "zzzzz-zzzzz"] {
            let wrong = if totp::code_at(&secret, totp::step_at(now())) == wrong {
                "999999"
            } else {
                wrong
            };
            assert_eq!(
                second_step(&app, &actor, &user, wrong, none, Effects::none()).await,
                Err(ApiError::OtpInvalid)
            );
        }
        let record = enabled(&app, user.id).await.expect("read").expect("on");
        assert!(record.locked_until > now() + 3500, "{record:?}");
        let right = totp::code_at(&secret, record.last_step + 1);
        assert!(matches!(
            second_step(&app, &actor, &user, &right, none, Effects::none()).await,
            Err(ApiError::Throttled(wait)) if wait > 3500
        ));
    }

    #[tokio::test]
    async fn a_pending_browser_step_is_used_once() {
        let (_dir, app) = app(10);
        let (user, actor, secret, _) = enrolled(&app).await;
        let cookie = begin_pending(&app, &user, true).await.expect("pending");
        let (found, step) = pending(&app, &cookie).await.expect("read").expect("found");
        assert_eq!((found.id, step.remember), (user.id, true));
        assert_eq!(pending(&app, "1.forged").await.expect("read"), None);
        assert_eq!(pending(&app, "no-dot").await.expect("read"), None);
        let last = enabled(&app, user.id)
            .await
            .expect("read")
            .expect("on")
            .last_step;
        let code = totp::code_at(&secret, last + 1);
        second_step(
            &app,
            &actor,
            &user,
            &code,
            &use_pending(&step.id_hash),
            Effects::none(),
        )
        .await
        .expect("accepted");
        assert_eq!(pending(&app, &cookie).await.expect("read"), None, "used up");

        // A step past its time is refused, and a new one leaves at most five waiting.
        let stale = begin_pending(&app, &user, false).await.expect("pending");
        let record = enabled(&app, user.id).await.expect("read").expect("on");
        let mut aged = record.clone();
        for p in &mut aged.pending {
            p.expires_at = now() - 1;
        }
        assert!(app
            .store
            .swap_mfa(user.id, Some(&record), Some(&aged), Effects::none())
            .await
            .expect("swap"));
        assert_eq!(pending(&app, &stale).await.expect("read"), None, "expired");
        for _ in 0..7 {
            begin_pending(&app, &user, false).await.expect("pending");
        }
        let record = enabled(&app, user.id).await.expect("read").expect("on");
        assert_eq!(record.pending.len(), PENDING_MAX);
    }

    #[tokio::test]
    async fn turning_it_off_ends_every_token_and_needs_the_password() {
        let (_dir, app) = app(10);
        let (user, actor, secret, codes) = enrolled(&app).await;
        let wrong = disable(
            &app,
            &actor,
            &input(json!({"password": "nope", "code": codes[0]})),
        )
        .await;
        assert!(matches!(wrong, Err(ApiError::Validation(_))), "{wrong:?}");
        assert!(enabled(&app, user.id).await.expect("read").is_some());
        let last = enabled(&app, user.id)
            .await
            .expect("read")
            .expect("on")
            .last_step;
        let code = totp::code_at(&secret, last + 1);
        disable(
            &app,
            &actor,
            &input(json!({"password": PASSWORD, "code": code})),
        )
        .await
        .expect("off");
        assert_eq!(app.store.get_mfa(user.id).await.expect("read"), None);
        let after = app
            .store
            .get_user(user.id)
            .await
            .expect("read")
            .expect("user");
        assert_eq!(after.token_version, user.token_version + 1);
    }

    #[test]
    fn the_console_wants_a_second_factor_behind_the_session_by_default() {
        assert_eq!(console_entry(true, true, true), ConsoleEntry::Enter);
        assert_eq!(console_entry(true, false, false), ConsoleEntry::Enrol);
        assert_eq!(console_entry(true, false, true), ConsoleEntry::StepUp);
        assert_eq!(console_entry(false, false, false), ConsoleEntry::Enter);
        assert!(crate::config::ConsoleConfig::default().require_mfa);
    }
}
