//! Browser sessions as operations (SPEC §15): signing in with a password into a new session,
//! ending one (sign out, "sign out this device"), ending all but the current one. An ended
//! session is deleted and named in the user's record (`User::ended`) by the same write, so
//! the user-state cache, and through the change feed every replica, refuses it at once.

use super::sign_in::{code_step, record, sign_in, SecondFactor, SignedIn};
use super::{mfa, writer, Actor, Input};
use crate::app::App;
use crate::auth::sessions;
use crate::clock::now;
use crate::error::ApiError;
use crate::store::{Action, Effects, Ended, Session, User, METHOD_PASSWORD, METHOD_PASSWORD_OTP};

/// How many characters of the User-Agent a session keeps.
const USER_AGENT_CHARS: usize = 200;

/// A session just written: the cookie value to hand the browser (never stored or logged)
/// and the record.
#[derive(Debug, Clone)]
pub struct Started {
    pub cookie: String,
    pub session: Session,
}

/// The session a sign-in of `user` by `actor` starts now; `mfa`: with a second factor.
fn new_session(
    app: &App,
    actor: &Actor,
    user: &User,
    remember: bool,
    mfa: bool,
    at: u64,
) -> Started {
    let (cookie, id_hash) = sessions::new_id();
    let web = &app.config.web;
    let remember = remember && web.remember_me_days > 0;
    let user_agent = user_agent_of(actor);
    let method = if mfa {
        METHOD_PASSWORD_OTP
    } else {
        METHOD_PASSWORD
    };
    Started {
        cookie,
        session: Session {
            id_hash,
            user_id: user.id,
            created: at,
            last_seen: at,
            expires_at: at.saturating_add(web.lifetime_seconds(remember)),
            client_ip: actor.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            user_agent,
            remember,
            method: method.into(),
            token_version: user.token_version,
        },
    }
}

/// The proof of a browser sign-in: a new session, kept in `started` for the caller once the
/// write that carries it commits.
fn session_proof<'a>(
    app: &'a App,
    actor: &'a Actor,
    remember: bool,
    at: u64,
    started: &'a std::sync::Mutex<Option<Started>>,
) -> impl Fn(&User, bool) -> Effects + Sync + 'a {
    move |user: &User, mfa: bool| {
        let s = new_session(app, actor, user, remember, mfa, at);
        let effects = Effects {
            sessions: vec![s.session.clone()],
            ..Effects::none()
        };
        *started.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
        effects
    }
}

fn take_started(started: std::sync::Mutex<Option<Started>>) -> Result<Started, ApiError> {
    Ok(started
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .ok_or(crate::store::StoreError::Conflict)?)
}

/// `{username, password[, otp][, remember]}` -> the user and their new session, written with
/// the sign-in's record (the JSON sign-in: a second factor's code comes with the password).
/// The throttle, the equal cost of unknown users and the verified-email rule are the token
/// login's (`sign_in`).
pub async fn sign_in_session(
    app: &App,
    actor: &Actor,
    input: &dyn Input,
    remember: bool,
) -> Result<(User, Started), ApiError> {
    match sign_in_browser(app, actor, input, remember, SecondFactor::WithPassword).await? {
        BrowserSignIn::Started(done) => Ok(*done),
        // Never: with the code asked with the password, a sign-in without one is refused.
        BrowserSignIn::NeedsCode(_) => Err(ApiError::OtpRequired),
    }
}

/// How a browser's sign-in on the password page ended.
#[derive(Debug, Clone)]
pub enum BrowserSignIn {
    /// Signed in: the user and the new session.
    Started(Box<(User, Started)>),
    /// The password was right and the user has a second factor: the value of the cookie
    /// that carries the pending step to the code page.
    NeedsCode(String),
}

/// The password page's sign-in: a session, or a pending step for the code page when the
/// user has a second factor (and `second` lets it wait).
pub async fn sign_in_browser(
    app: &App,
    actor: &Actor,
    input: &dyn Input,
    remember: bool,
    second: SecondFactor,
) -> Result<BrowserSignIn, ApiError> {
    let at = now();
    let started = std::sync::Mutex::new(None);
    let outcome = sign_in(
        app,
        actor,
        input,
        second,
        &session_proof(app, actor, remember, at, &started),
    )
    .await?;
    match outcome {
        SignedIn::Done { user, .. } => Ok(BrowserSignIn::Started(Box::new((
            user,
            take_started(started)?,
        )))),
        SignedIn::NeedsCode(user) => Ok(BrowserSignIn::NeedsCode(
            mfa::begin_pending(app, &user, remember).await?,
        )),
    }
}

/// The code page: the pending step `pending` (the cookie's value) and the typed `code` ->
/// the user and their new session, signed in with both factors. The pending step is used up
/// by the same write that accepts the code; a missing, used or expired one is
/// `Ok(None)`: the browser starts again at the password.
pub async fn finish_sign_in(
    app: &App,
    actor: &Actor,
    pending: &str,
    code: &str,
) -> Result<Option<(User, Started)>, ApiError> {
    let Some((user, step)) = mfa::pending(app, pending).await? else {
        return Ok(None);
    };
    if let Err(wait) = app
        .throttle
        .check_login(&user.username, actor.client_ip, now())
        .await
    {
        crate::metrics::LOGINS
            .with_label_values(&["throttled"])
            .inc();
        return Err(ApiError::Throttled(wait));
    }
    code_step(app, actor, &user, code, &mfa::use_pending(&step.id_hash)).await?;
    let started = std::sync::Mutex::new(None);
    let user = record(
        app,
        actor,
        user,
        None,
        true,
        &|_| {},
        &session_proof(app, actor, step.remember, now(), &started),
    )
    .await?;
    Ok(Some((user, take_started(started)?)))
}

/// Step-up: a browser signed in with the password alone proves its second factor with
/// `code` and gets a new session (a change of privilege: a new id) that says so; the one it
/// held ends.
pub async fn step_up(
    app: &App,
    actor: &Actor,
    user_id: u64,
    current: &str,
    code: &str,
) -> Result<Started, ApiError> {
    let user = match app.store.get_user(user_id).await? {
        Some(u) if u.is_active => u,
        _ => return Err(ApiError::UserNotFound),
    };
    if let Err(wait) = app
        .throttle
        .check_login(&user.username, actor.client_ip, now())
        .await
    {
        return Err(ApiError::Throttled(wait));
    }
    code_step(app, actor, &user, code, &|_| {}).await?;
    upgrade_session(app, actor, user, current).await
}

/// The session that follows a proof of the second factor by the browser holding session
/// `current` (a step-up, or a code that just turned the factor on): a new id (a change of
/// privilege: fixation), signed in with both factors, keeping remember-me; the old one ends
/// at once on every replica.
pub async fn upgrade_session(
    app: &App,
    actor: &Actor,
    user: User,
    current: &str,
) -> Result<Started, ApiError> {
    let previous = app.store.get_session(current).await?;
    let remember = previous.as_ref().is_some_and(|s| s.remember);
    let ended = [Ended {
        id: current.to_string(),
        until: previous.as_ref().map_or(0, |s| s.expires_at),
    }];
    let at = now();
    let started = std::sync::Mutex::new(None);
    {
        let proof = session_proof(app, actor, remember, at, &started);
        record(
            app,
            actor,
            user,
            None,
            true,
            &|u| remember_ended(u, &ended, at),
            &|user, mfa| {
                let mut effects = proof(user, mfa);
                effects.end_sessions.push(current.to_string());
                effects
            },
        )
        .await?;
    }
    take_started(started)
}

/// `{username, password[, otp]}` -> the user, the id of the refresh family a token pair for
/// this sign-in starts, and whether a second factor was part of it. The family's record (the
/// device: when, from where, which client) is written with the sign-in's, so the sessions
/// list shows it and "sign out this device" can end it.
pub async fn sign_in_app(
    app: &App,
    actor: &Actor,
    input: &dyn Input,
) -> Result<(User, String, bool), ApiError> {
    let at = now();
    let family = crate::ids::new_id();
    let expires_at = at.saturating_add(app.tokens.refresh_lifetime);
    let outcome = sign_in(app, actor, input, SecondFactor::WithPassword, &|user, _| {
        Effects {
            families: vec![(
                family.clone(),
                crate::store::Family {
                    user_id: user.id,
                    current: family.clone(),
                    parent: None,
                    rotated_at: 0,
                    revoked: false,
                    expires_at,
                    created: at,
                    client_ip: actor.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                    user_agent: user_agent_of(actor),
                },
            )],
            ..Effects::none()
        }
    })
    .await?;
    match outcome {
        SignedIn::Done { user, mfa } => Ok((user, family, mfa)),
        SignedIn::NeedsCode(_) => Err(ApiError::OtpRequired),
    }
}

/// The first characters of the actor's User-Agent, as a session or device keeps them.
fn user_agent_of(actor: &Actor) -> String {
    actor
        .user_agent
        .as_deref()
        .unwrap_or("")
        .chars()
        .take(USER_AGENT_CHARS)
        .collect()
}

/// A new session for `user` without a password (the session that changed its own password
/// gets a fresh one, as Django's `update_session_auth_hash`), keeping what `previous` had:
/// remember-me and how the user signed in.
pub async fn renew_session(
    app: &App,
    actor: &Actor,
    user: &User,
    previous: Option<&Session>,
) -> Result<Started, ApiError> {
    let remember = previous.is_some_and(|s| s.remember);
    let mut started = new_session(app, actor, user, remember, false, now());
    if let Some(p) = previous {
        started.session.method.clone_from(&p.method);
    }
    writer::record(
        app,
        Effects {
            sessions: vec![started.session.clone()],
            ..Effects::none()
        },
    )
    .await?;
    Ok(started)
}

/// Which of a user's sessions to end.
pub enum Which<'a> {
    /// The caller's own, by id hash: a sign-out (`logout`).
    Current(&'a str),
    /// One, by id hash ("sign out" on a row of the sessions list: `session.revoked`).
    One(&'a str),
    /// Every one but this id hash ("sign out all other sessions").
    AllBut(&'a str),
    /// Every one (staff ending all of a user's sessions).
    All,
}

/// Ends sessions of the acting user: deleted, and named in the user's record until they
/// would have expired anyway. How many ended (0: none of theirs matched).
pub async fn end_sessions(app: &App, actor: &Actor, which: Which<'_>) -> Result<usize, ApiError> {
    let me = actor.user_id()?;
    end_sessions_of(app, actor, me, which).await
}

/// Ends sessions of user `me` (the actor's own, or a user's a staff member ends).
async fn end_sessions_of(
    app: &App,
    actor: &Actor,
    me: u64,
    which: Which<'_>,
) -> Result<usize, ApiError> {
    let mine = app.store.list_sessions(me).await?;
    let ending: Vec<&Session> = mine
        .iter()
        .filter(|s| match which {
            Which::Current(id) | Which::One(id) => s.id_hash == id,
            Which::AllBut(keep) => s.id_hash != keep,
            Which::All => true,
        })
        .collect();
    if ending.is_empty() {
        return Ok(0);
    }
    let at = now();
    let ended: Vec<Ended> = ending
        .iter()
        .map(|s| Ended {
            id: s.id_hash.clone(),
            until: s.expires_at,
        })
        .collect();
    let hashes: Vec<String> = ending.iter().map(|s| s.id_hash.clone()).collect();
    let action = match which {
        Which::Current(_) => Action::Logout,
        Which::One(_) | Which::AllBut(_) | Which::All => Action::SessionRevoked,
    };
    let event = actor
        .event(action, Some(me))
        .detail("via", "session")
        .detail("count", hashes.len());
    writer::update(app, me, &|u| remember_ended(u, &ended, at), &|_, _| {
        Effects {
            end_sessions: hashes.clone(),
            ..Effects::none()
        }
        .with(event.clone())
    })
    .await?;
    Ok(hashes.len())
}

/// Ends refresh family `family` of user `user_id` (logout, "sign out this device"): its
/// refresh tokens are blacklisted, and, named in the user's record until `until` (when its
/// last token expires), its access tokens are refused at once. An already ended family is
/// simplejwt's "Token is blacklisted".
/// `why` is the event: `logout` (the token's own logout) or `session.revoked`.
pub async fn end_family(
    app: &App,
    actor: &Actor,
    why: Action,
    user_id: u64,
    family: &str,
    until: u64,
) -> Result<(), ApiError> {
    use crate::auth::families;
    use crate::store::{StoreError, MAX_SWAP_ATTEMPTS};
    let mut revoked_it = false;
    for _ in 0..MAX_SWAP_ATTEMPTS {
        let record = app.store.get_family(family).await?;
        let Some(revoked) = families::revoke(record.as_ref(), family, user_id, until) else {
            return Err(ApiError::InvalidToken(crate::error::BLACKLISTED));
        };
        if app
            .store
            .swap_family(family, record.as_ref(), &revoked)
            .await?
        {
            revoked_it = true;
            break;
        }
    }
    if !revoked_it {
        return Err(StoreError::Conflict.into());
    }
    let ended = [Ended {
        id: family.to_string(),
        until,
    }];
    let at = now();
    let event = actor
        .event(why, Some(user_id))
        .detail("via", "token")
        .detail("count", 1);
    writer::update(app, user_id, &|u| remember_ended(u, &ended, at), &|_, _| {
        event.clone().into()
    })
    .await?;
    Ok(())
}

/// What holds a sign-in: a browser's session cookie or an app's refresh-token family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Browser,
    App,
}

impl DeviceKind {
    pub fn label(self) -> &'static str {
        match self {
            DeviceKind::Browser => "browser",
            DeviceKind::App => "app",
        }
    }
}

/// One live sign-in of a user, as the sessions list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The session's id hash or the family's id (never a cookie or a token).
    pub id: String,
    pub kind: DeviceKind,
    pub created: u64,
    pub last_seen: u64,
    pub client_ip: String,
    pub user_agent: String,
    /// The sign-in the asking request came with.
    pub current: bool,
}

/// User `user_id`'s live sessions and refresh families, newest first.
pub async fn devices(
    app: &App,
    user_id: u64,
    current: Option<&str>,
) -> Result<Vec<Device>, ApiError> {
    let at = now();
    let idle = app.config.web.idle_seconds();
    let mut out: Vec<Device> = app
        .store
        .list_sessions(user_id)
        .await?
        .into_iter()
        .filter(|s| s.live_at(at, idle))
        .map(|s| Device {
            current: current == Some(s.id_hash.as_str()),
            id: s.id_hash,
            kind: DeviceKind::Browser,
            created: s.created,
            last_seen: s.last_seen,
            client_ip: s.client_ip,
            user_agent: s.user_agent,
        })
        .collect();
    out.extend(
        app.store
            .list_families(user_id)
            .await?
            .into_iter()
            .filter(|(_, f)| !f.revoked && f.expires_at > at)
            .map(|(id, f)| Device {
                current: current == Some(id.as_str()),
                id,
                kind: DeviceKind::App,
                created: f.created,
                last_seen: f.rotated_at.max(f.created),
                client_ip: f.client_ip,
                user_agent: f.user_agent,
            }),
    );
    out.sort_by_key(|d| std::cmp::Reverse(d.created));
    Ok(out)
}

/// Ends one of user `user_id`'s sessions or families by id; `false` when none of theirs
/// has it.
pub async fn end_device(
    app: &App,
    actor: &Actor,
    user_id: u64,
    id: &str,
) -> Result<bool, ApiError> {
    if app
        .store
        .list_sessions(user_id)
        .await?
        .iter()
        .any(|s| s.id_hash == id)
    {
        return Ok(end_sessions_of(app, actor, user_id, Which::One(id)).await? > 0);
    }
    let family = app
        .store
        .list_families(user_id)
        .await?
        .into_iter()
        .find(|(fid, f)| fid == id && !f.revoked);
    match family {
        Some((fid, f)) => {
            revoke_family(app, actor, user_id, &fid, &f).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Ends another device's refresh family (`session.revoked`), until its last token expires.
async fn revoke_family(
    app: &App,
    actor: &Actor,
    user_id: u64,
    family: &str,
    record: &crate::store::Family,
) -> Result<(), ApiError> {
    let why = Action::SessionRevoked;
    end_family(app, actor, why, user_id, family, record.expires_at).await
}

/// Ends every session and family of user `user_id` but `keep`; how many ended.
pub async fn end_other_devices(
    app: &App,
    actor: &Actor,
    user_id: u64,
    keep: &str,
) -> Result<usize, ApiError> {
    let sessions = end_sessions_of(app, actor, user_id, Which::AllBut(keep)).await?;
    Ok(sessions + end_families(app, actor, user_id, Some(keep)).await?)
}

/// Ends every session and refresh family of user `user_id`; how many ended.
pub async fn end_all_devices(app: &App, actor: &Actor, user_id: u64) -> Result<usize, ApiError> {
    let sessions = end_sessions_of(app, actor, user_id, Which::All).await?;
    Ok(sessions + end_families(app, actor, user_id, None).await?)
}

/// Ends every live refresh family of user `user_id` but `keep`; how many ended.
async fn end_families(
    app: &App,
    actor: &Actor,
    user_id: u64,
    keep: Option<&str>,
) -> Result<usize, ApiError> {
    let mut ended = 0;
    for (fid, f) in app.store.list_families(user_id).await? {
        if Some(fid.as_str()) != keep && !f.revoked && f.expires_at > now() {
            match revoke_family(app, actor, user_id, &fid, &f).await {
                Ok(()) => ended += 1,
                // Ended meanwhile (a logout, a reuse): nothing left to do.
                Err(ApiError::InvalidToken(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(ended)
}

/// Adds `ended` to the user's list, dropping entries whose session or token could no longer
/// be used anyway.
fn remember_ended(u: &mut User, ended: &[Ended], at: u64) {
    u.ended.retain(|e| e.until > at);
    for e in ended {
        if !u.ended.iter().any(|k| k.id == e.id) {
            u.ended.push(e.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ended_list_keeps_only_what_could_still_be_used() {
        let mut u = crate::store::test_user(1, "a", "a@example.com");
        u.ended = vec![Ended {
            id: "old".into(),
            until: 10,
        }];
        remember_ended(
            &mut u,
            &[
                Ended {
                    id: "s1".into(),
                    until: 500,
                },
                Ended {
                    id: "s1".into(),
                    until: 500,
                },
            ],
            100,
        );
        assert_eq!(
            u.ended,
            vec![Ended {
                id: "s1".into(),
                until: 500
            }]
        );
    }
}
