//! The pages' HTML (SPEC §15): one view model and one render function per page, over askama
//! templates compiled into the binary (`src/web/templates/`, HTML-escaped by default).
//!
//! Every view model carries the same five frame fields: `brand`, `prefix` (ends with `/`),
//! `custom_css` (the operator set `css_file`: link `{prefix}static/custom.css` too),
//! `csrf_token` (the masked token for this response; empty on pages without forms) and
//! `signed_in_as`. Field names in the forms follow the user API (djoser's), so an
//! `accounts::` outcome's field errors land next to the right input as they are.

use askama::Template;
use std::collections::BTreeMap;

/// A page could not be rendered (a template's own failure; the caller answers 500).
#[derive(Debug, thiserror::Error)]
#[error("a page could not be rendered: {0}")]
pub struct RenderError(#[from] askama::Error);

/// Field errors as DRF words them: field name to messages. `non_field_errors` and any key
/// no input on the page carries are shown above the form.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// Django's message for a failed sign-in (`AuthenticationForm.error_messages["invalid_login"]`).
pub const SIGN_IN_FAILED: &str =
    "Please enter a correct username and password. Note that both fields may be case-sensitive.";

/// The built-in stylesheet, served at `{prefix}static/gatehouse.css`.
pub const STYLESHEET: &str = include_str!("static/gatehouse.css");

/// The account page posts every form to the prefix itself; this hidden field names which one.
pub const ACCOUNT_FORM_FIELD: &str = "form";
/// The hidden field of a session row's "Sign out" form: the session's (or family's) public id.
pub const SESSION_FIELD: &str = "session";

const NO_ERRORS: &[String] = &[];

/// The query parameter the sign-in page reads a [`SignInNotice`] from.
pub const NOTICE_PARAM: &str = "notice";
/// The sign-in page after a pending second step was missing, used or expired.
pub const SIGN_IN_EXPIRED: &str = "Your sign-in expired; enter your password again.";
/// The sign-in page after the second factor was turned off (every session ended with it).
pub const MFA_TURNED_OFF: &str =
    "Two-factor authentication is off, and every session was signed out. Sign in again.";
/// The account page after the first code turned the second factor on.
pub const MFA_TURNED_ON: &str = "Two-factor authentication is on.";
/// The account page after new recovery codes were made.
pub const RECOVERY_CODES_RENEWED: &str =
    "New recovery codes were made. The old ones no longer work.";

/// The second step's lock (or the sign-in throttle) of `seconds`, in whole minutes.
pub fn too_many_codes(seconds: u64) -> String {
    let minutes = seconds.div_ceil(60).max(1);
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    format!("Too many wrong codes. Try again in {minutes} {unit}.")
}

/// An SVG as an `<img src>` the pages' CSP allows (`img-src data:`).
pub fn svg_data_uri(svg: &str) -> String {
    use base64::Engine as _;
    format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    )
}

/// Why a browser was sent back to the sign-in page, said above its form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInNotice {
    /// The pending second step was missing, used or expired.
    Expired,
    /// The second factor was turned off, which signed every session out.
    MfaOff,
}

impl SignInNotice {
    const ALL: [SignInNotice; 2] = [SignInNotice::Expired, SignInNotice::MfaOff];

    /// The value of [`NOTICE_PARAM`].
    pub fn as_str(self) -> &'static str {
        match self {
            SignInNotice::Expired => "expired",
            SignInNotice::MfaOff => "mfa-off",
        }
    }

    /// The notice a query value names, if any.
    pub fn parse(value: &str) -> Option<SignInNotice> {
        Self::ALL.into_iter().find(|n| n.as_str() == value)
    }

    /// What the sign-in page says.
    pub fn text(self) -> &'static str {
        match self {
            SignInNotice::Expired => SIGN_IN_EXPIRED,
            SignInNotice::MfaOff => MFA_TURNED_OFF,
        }
    }
}

/// The forms of the account page, as the hidden [`ACCOUNT_FORM_FIELD`] names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountForm {
    /// First name, last name, email (`password` when the email changes and the sign-in is old).
    Profile,
    /// `old_password`, `new_password`, `re_new_password`.
    Password,
    /// End one session: [`SESSION_FIELD`].
    EndSession,
    /// End every session but this one (`password` unless the sign-in is recent).
    EndOthers,
    /// Delete the account (`password` unless the sign-in is recent, and `confirm`).
    Delete,
    /// Start setting up the second factor (no fields).
    MfaStart,
    /// Turn the pending second factor on with its first `code`.
    MfaConfirm,
    /// New recovery codes, for a `code`.
    MfaRenew,
    /// Turn the second factor off: `password` and `code`.
    MfaDisable,
    /// Make an API key: `name`, `expires_at` (a date), `groups`, `password` and `code`.
    KeyMake,
    /// Revoke one API key: [`KEY_FIELD`].
    KeyRevoke,
}

impl AccountForm {
    const ALL: [AccountForm; 11] = [
        AccountForm::Profile,
        AccountForm::Password,
        AccountForm::EndSession,
        AccountForm::EndOthers,
        AccountForm::Delete,
        AccountForm::MfaStart,
        AccountForm::MfaConfirm,
        AccountForm::MfaRenew,
        AccountForm::MfaDisable,
        AccountForm::KeyMake,
        AccountForm::KeyRevoke,
    ];

    /// The value of the hidden field.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountForm::Profile => "profile",
            AccountForm::Password => "password",
            AccountForm::EndSession => "end-session",
            AccountForm::EndOthers => "end-others",
            AccountForm::Delete => "delete",
            AccountForm::MfaStart => "mfa-start",
            AccountForm::MfaConfirm => "mfa-confirm",
            AccountForm::MfaRenew => "mfa-renew",
            AccountForm::MfaDisable => "mfa-disable",
            AccountForm::KeyMake => "key-make",
            AccountForm::KeyRevoke => "key-revoke",
        }
    }

    /// The heading of the part of the account page the form sits in, and its anchor.
    fn section(self) -> (&'static str, &'static str) {
        match self {
            AccountForm::Profile => ("Profile", "profile-h"),
            AccountForm::Password => ("Password", "password-h"),
            AccountForm::EndSession | AccountForm::EndOthers => {
                ("Sessions and devices", "sessions-h")
            }
            AccountForm::Delete => ("Delete account", "delete-h"),
            AccountForm::MfaStart
            | AccountForm::MfaConfirm
            | AccountForm::MfaRenew
            | AccountForm::MfaDisable => ("Two-factor authentication", "two-factor-h"),
            AccountForm::KeyMake | AccountForm::KeyRevoke => ("API keys", "keys-h"),
        }
    }

    /// The form a posted hidden field names, if any.
    pub fn parse(value: &str) -> Option<AccountForm> {
        Self::ALL.into_iter().find(|f| f.as_str() == value)
    }
}

/// What holds a session: a browser's cookie or an app's refresh-token family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Browser,
    App,
}

impl SessionKind {
    pub fn label(self) -> &'static str {
        match self {
            SessionKind::Browser => "Browser",
            SessionKind::App => "App",
        }
    }
}

/// One row of the account page's sessions and devices.
#[derive(Debug, Clone)]
pub struct SessionRow<'a> {
    /// The public id the row's "Sign out" form posts back.
    pub id: &'a str,
    pub kind: SessionKind,
    /// Unix seconds.
    pub created: u64,
    pub last_seen: u64,
    pub address: &'a str,
    /// As stored (the first 200 characters); the page shows [`short_user_agent`].
    pub user_agent: &'a str,
    /// The session this page was asked with.
    pub current: bool,
}

impl SessionRow<'_> {
    fn created_at(&self) -> String {
        utc_time(self.created)
    }
    fn created_parts(&self) -> (String, String) {
        utc_time_parts(self.created)
    }
    fn last_seen_parts(&self) -> (String, String) {
        utc_time_parts(self.last_seen)
    }
    fn device(&self) -> String {
        short_user_agent(self.user_agent)
    }
}

/// Messages of `errors` under `field`, or none.
fn messages<'e>(errors: &'e FieldErrors, field: &str) -> &'e [String] {
    errors.get(field).map_or(NO_ERRORS, Vec::as_slice)
}

/// Every message of `errors` whose key is none of `fields` (DRF's `non_field_errors`,
/// `detail`, or a field this page does not show), in key order.
fn others(errors: &FieldErrors, fields: &[&str]) -> Vec<String> {
    errors
        .iter()
        .filter(|(k, _)| !fields.contains(&k.as_str()))
        .flat_map(|(_, v)| v.iter().cloned())
        .collect()
}

/// The sign-in page (`login/`).
#[derive(Template)]
#[template(path = "login.html")]
pub struct SignIn<'a> {
    pub brand: &'a str,
    pub prefix: &'a str,
    pub custom_css: bool,
    pub csrf_token: &'a str,
    pub signed_in_as: Option<&'a str>,
    /// What was typed, shown again after a failure.
    pub username: &'a str,
    /// The (already checked) target, posted back in a hidden field.
    pub next: &'a str,
    /// `remember_me_days`: 0 hides the checkbox.
    pub remember_days: u32,
    pub remember: bool,
    /// Offer the sign-up page.
    pub registration: bool,
    /// One message above the form, e.g. [`SIGN_IN_FAILED`].
    pub error: Option<&'a str>,
    /// Why the browser is here again, e.g. [`SIGN_IN_EXPIRED`].
    pub notice: Option<&'a str>,
}

impl SignIn<'_> {
    fn no_errors(&self) -> &'static [String] {
        NO_ERRORS
    }
}

/// The sign-in page.
pub fn login(v: &SignIn) -> Result<String, RenderError> {
    Ok(v.render()?)
}

/// The sign-out page (`logout/`): a confirm form, or after the POST, that it is done.
#[derive(Template)]
#[template(path = "logout.html")]
pub struct SignOut<'a> {
    pub brand: &'a str,
    pub prefix: &'a str,
    pub custom_css: bool,
    pub csrf_token: &'a str,
    pub signed_in_as: Option<&'a str>,
    /// The session is ended: say so and offer to sign in again.
    pub done: bool,
}

/// The sign-out page.
pub fn logout(v: &SignOut) -> Result<String, RenderError> {
    Ok(v.render()?)
}

/// The sign-up page (`register/`).
#[derive(Template)]
#[template(path = "register.html")]
pub struct SignUp<'a> {
    pub brand: &'a str,
    pub prefix: &'a str,
    pub custom_css: bool,
    pub csrf_token: &'a str,
    pub signed_in_as: Option<&'a str>,
    pub username: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    /// Keys `username`, `email`, `first_name`, `last_name`, `password`, `re_password`.
    pub errors: &'a FieldErrors,
}

impl SignUp<'_> {
    const FIELDS: [&'static str; 6] = [
        "username",
        "email",
        "first_name",
        "last_name",
        "password",
        "re_password",
    ];
    fn errors_for(&self, field: &str) -> &[String] {
        messages(self.errors, field)
    }
    fn other_errors(&self) -> Vec<String> {
        others(self.errors, &Self::FIELDS)
    }
}

/// The sign-up page.
pub fn register(v: &SignUp) -> Result<String, RenderError> {
    Ok(v.render()?)
}

/// The account page (the prefix itself).
#[derive(Template)]
#[template(path = "account.html")]
pub struct Account<'a> {
    pub brand: &'a str,
    pub prefix: &'a str,
    pub custom_css: bool,
    pub csrf_token: &'a str,
    pub signed_in_as: Option<&'a str>,
    /// A banner after a change, e.g. "Your password was changed."
    pub notice: Option<&'a str>,
    pub username: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub email: &'a str,
    /// The sign-in is younger than 10 minutes: no password for the email, other sessions,
    /// deletion.
    pub recent_sign_in: bool,
    pub sessions: &'a [SessionRow<'a>],
    /// Where the second factor stands.
    pub two_factor: TwoFactor<'a>,
    /// Recovery codes just made, shown this once (empty: none).
    pub new_codes: &'a [String],
    /// A safe target the browser was on its way to (the page that needs a second factor):
    /// carried through the set-up forms and offered once the factor is on.
    pub next: Option<&'a str>,
    /// The form that was posted and refused, whose field errors `errors` holds.
    pub failed: Option<AccountForm>,
    pub errors: &'a FieldErrors,
    /// The user's API keys (SPEC §19), and what the form to make one offers and keeps.
    pub keys: KeysSection<'a>,
}

/// The account page's API keys: the list, the key just made (shown this once), and what
/// the form to make one offers (the user's groups, the dates allowed) and keeps after a
/// refusal.
#[derive(Debug, Clone, Default)]
pub struct KeysSection<'a> {
    pub rows: Vec<KeyRow<'a>>,
    /// The key just made, in this answer to the POST only (never in a URL).
    pub new_key: Option<&'a str>,
    /// The groups a key may be narrowed to: the user's own.
    pub groups: &'a [String],
    /// The `<input type="date">` bounds: tomorrow, and today + `max_lifetime_days`.
    pub min_date: String,
    pub max_date: String,
    /// A refused form's name, date and groups, shown again.
    pub name: &'a str,
    pub expires: &'a str,
    pub chosen: Vec<String>,
}

impl KeysSection<'_> {
    fn chose(&self, group: &str) -> bool {
        self.chosen.iter().any(|g| g == group)
    }
}

/// One row of the account page's API keys (never the key: its display prefix).
#[derive(Debug, Clone)]
pub struct KeyRow<'a> {
    /// The id the row's "Revoke" form posts back.
    pub id: &'a str,
    pub name: &'a str,
    pub prefix: &'a str,
    /// Unix seconds.
    pub created: u64,
    pub expires_at: u64,
    pub last_used: Option<u64>,
    pub groups: &'a [String],
    /// Past its expiry at the time of the page.
    pub expired: bool,
}

impl KeyRow<'_> {
    fn created_day(&self) -> String {
        day(self.created)
    }
    fn expires_day(&self) -> String {
        day(self.expires_at)
    }
    fn last_used_day(&self) -> String {
        self.last_used.map_or_else(|| "Never".to_string(), utc_time)
    }
    fn groups_text(&self) -> String {
        if self.groups.is_empty() {
            "All of yours".to_string()
        } else {
            self.groups.join(", ")
        }
    }
}

/// The account page's form field naming the API key a "Revoke" button revokes.
pub const KEY_FIELD: &str = "key_id";

/// A day people read, "7 Dec 2026", from unix seconds.
pub fn day(unix: u64) -> String {
    utc_time_parts(unix).0.trim_end_matches(',').to_string()
}

/// The day of unix seconds as `<input type="date">` spells it, `2026-12-07` (UTC).
pub fn input_date(unix: u64) -> String {
    let iso = crate::clock::iso_ms(unix.saturating_mul(1000));
    iso.get(..10).unwrap_or(&iso).to_string()
}

/// Where the user's second factor stands, for the account page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwoFactor<'a> {
    /// Off and nothing pending: offer to set it up.
    Off,
    /// Set-up started: the QR code (an SVG document) and the secret to type in by hand.
    Pending { qr_svg: &'a str, secret: &'a str },
    /// On since (unix seconds), with this many unused recovery codes.
    On { since: u64, recovery_left: usize },
}

impl Account<'_> {
    /// The fields each form shows; other keys of a refused form's errors go above it.
    fn fields(form: AccountForm) -> &'static [&'static str] {
        match form {
            AccountForm::Profile => &["first_name", "last_name", "email", "password", "code"],
            AccountForm::Password => &["old_password", "new_password", "re_new_password"],
            AccountForm::EndOthers | AccountForm::Delete => &["password", "code"],
            AccountForm::EndSession | AccountForm::MfaStart => &[],
            AccountForm::MfaConfirm | AccountForm::MfaRenew => &["code"],
            AccountForm::MfaDisable => &["password", "code"],
            AccountForm::KeyMake => &["name", "expires_at", "groups", "password", "code"],
            AccountForm::KeyRevoke => &[],
        }
    }
    /// The sensitive forms ask for a code as well as the password: the factor is on and
    /// the sign-in is not recent.
    fn asks_code(&self) -> bool {
        !self.recent_sign_in && matches!(self.two_factor, TwoFactor::On { .. })
    }
    /// Set-up started: the QR code as an `<img src>`, and the secret.
    fn pending(&self) -> Option<(String, &str)> {
        match self.two_factor {
            TwoFactor::Pending { qr_svg, secret } => Some((svg_data_uri(qr_svg), secret)),
            _ => None,
        }
    }
    /// On: since when (a date people read) and how many recovery codes are unused.
    fn on(&self) -> Option<(String, usize)> {
        match self.two_factor {
            TwoFactor::On {
                since,
                recovery_left,
            } => Some((
                utc_time_parts(since).0.trim_end_matches(',').to_string(),
                recovery_left,
            )),
            _ => None,
        }
    }
    fn errors_in(&self, form: AccountForm, field: &str) -> &[String] {
        if self.failed == Some(form) {
            messages(self.errors, field)
        } else {
            NO_ERRORS
        }
    }
    fn other_errors_in(&self, form: AccountForm) -> Vec<String> {
        if self.failed == Some(form) {
            others(self.errors, Self::fields(form))
        } else {
            Vec::new()
        }
    }
    /// The second factor is on: making a key asks for a code whatever the sign-in's age.
    fn has_factor(&self) -> bool {
        matches!(self.two_factor, TwoFactor::On { .. })
    }
    fn has_others(&self) -> bool {
        self.sessions.iter().any(|s| !s.current)
    }
}

/// The account page.
pub fn account(v: &Account) -> Result<String, RenderError> {
    Ok(v.render()?)
}

/// What the second-factor page (`login/code/`) shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeState {
    /// The code form, finishing a sign-in after the password.
    SignIn,
    /// The code form, for a signed-in browser on its way to a page that needs the factor.
    StepUp,
    /// Too many wrong codes: no form until the wait (in `error`) is over.
    Locked,
    /// A page needs the second factor and the user has none: the way to set it up.
    Enrol,
}

/// The second-factor page (`login/code/`).
#[derive(Template)]
#[template(path = "second_factor.html")]
pub struct SecondFactorPage<'a> {
    pub brand: &'a str,
    pub prefix: &'a str,
    pub custom_css: bool,
    pub csrf_token: &'a str,
    pub signed_in_as: Option<&'a str>,
    pub state: CodeState,
    /// The target after the code, posted back in a hidden field.
    pub next: &'a str,
    /// The sign-in page, keeping `next` ("Start again").
    pub sign_in_url: &'a str,
    /// The account page's set-up section, keeping `next`.
    pub enrol_url: &'a str,
    /// Under the code field: [`crate::error::OTP_INVALID`]; locked, the wait.
    pub error: Option<&'a str>,
}

impl SecondFactorPage<'_> {
    fn code_errors(&self) -> Vec<String> {
        match (self.state, self.error) {
            (CodeState::SignIn | CodeState::StepUp, Some(e)) => vec![e.to_string()],
            _ => Vec::new(),
        }
    }
    fn title(&self) -> &'static str {
        match self.state {
            CodeState::SignIn | CodeState::StepUp | CodeState::Locked => {
                "Two-factor authentication"
            }
            CodeState::Enrol => "Two-factor authentication needed",
        }
    }
}

/// The second-factor page.
pub fn second_factor(v: &SecondFactorPage) -> Result<String, RenderError> {
    Ok(v.render()?)
}

/// The password reset request (`password/reset/`) and, once sent, "check your mail".
#[derive(Template)]
#[template(path = "password_reset.html")]
pub struct PasswordReset<'a> {
    pub brand: &'a str,
    pub prefix: &'a str,
    pub custom_css: bool,
    pub csrf_token: &'a str,
    pub signed_in_as: Option<&'a str>,
    pub email: &'a str,
    /// The request was taken: show "check your mail" (whether or not the address is known).
    pub sent: bool,
    /// Key `email`.
    pub errors: &'a FieldErrors,
}

impl PasswordReset<'_> {
    fn errors_for(&self, field: &str) -> &[String] {
        messages(self.errors, field)
    }
    fn other_errors(&self) -> Vec<String> {
        others(self.errors, &["email"])
    }
}

/// The password reset request.
pub fn password_reset(v: &PasswordReset) -> Result<String, RenderError> {
    Ok(v.render()?)
}

/// Where a reset link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetState {
    /// The link is good: ask for the new password.
    Form,
    /// The link is unknown, used or expired.
    Invalid,
    /// The password was set.
    Done,
}

/// The form a reset mail links to (`password/reset/confirm/...`); it posts to its own URL.
#[derive(Template)]
#[template(path = "password_reset_confirm.html")]
pub struct PasswordResetConfirm<'a> {
    pub brand: &'a str,
    pub prefix: &'a str,
    pub custom_css: bool,
    pub csrf_token: &'a str,
    pub signed_in_as: Option<&'a str>,
    pub state: ResetState,
    /// Keys `new_password`, `re_new_password`.
    pub errors: &'a FieldErrors,
}

impl PasswordResetConfirm<'_> {
    fn errors_for(&self, field: &str) -> &[String] {
        messages(self.errors, field)
    }
    fn other_errors(&self) -> Vec<String> {
        others(self.errors, &["new_password", "re_new_password"])
    }
    fn title(&self) -> &'static str {
        match self.state {
            ResetState::Form => "Choose a new password",
            ResetState::Invalid => "This link does not work",
            ResetState::Done => "Your password is set",
        }
    }
}

/// The reset confirm page.
pub fn password_reset_confirm(v: &PasswordResetConfirm) -> Result<String, RenderError> {
    Ok(v.render()?)
}

/// Where an email verification link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyState {
    /// Show the button that POSTs the verification (a GET never uses the link up).
    Ask,
    Done,
    Invalid,
}

/// The email verification page (`email/verify/{uid}/{token}/`); it posts to its own URL.
#[derive(Template)]
#[template(path = "verify_email.html")]
pub struct VerifyEmail<'a> {
    pub brand: &'a str,
    pub prefix: &'a str,
    pub custom_css: bool,
    pub csrf_token: &'a str,
    pub signed_in_as: Option<&'a str>,
    pub state: VerifyState,
}

impl VerifyEmail<'_> {
    fn title(&self) -> &'static str {
        match self.state {
            VerifyState::Ask => "Confirm your email address",
            VerifyState::Done => "Your email address is confirmed",
            VerifyState::Invalid => "This link does not work",
        }
    }
}

/// The email verification page.
pub fn verify_email(v: &VerifyEmail) -> Result<String, RenderError> {
    Ok(v.render()?)
}

/// The 403 page of a refused CSRF check.
#[derive(Template)]
#[template(path = "csrf_failure.html")]
pub struct CsrfFailure<'a> {
    pub brand: &'a str,
    pub prefix: &'a str,
    pub custom_css: bool,
    pub csrf_token: &'a str,
    pub signed_in_as: Option<&'a str>,
    /// Django's reason, verbatim (`csrf::Refused`'s text).
    pub reason: &'a str,
}

/// The CSRF failure page (status 403).
pub fn csrf_failure(v: &CsrfFailure) -> Result<String, RenderError> {
    Ok(v.render()?)
}

/// The frame alone, for the pages that say only what went wrong.
pub struct Plain<'a> {
    pub brand: &'a str,
    pub prefix: &'a str,
    pub custom_css: bool,
    pub csrf_token: &'a str,
    pub signed_in_as: Option<&'a str>,
}

/// The page of a 404 or a 500: the frame and the status.
#[derive(Template)]
#[template(path = "problem.html")]
struct Problem<'a> {
    brand: &'a str,
    prefix: &'a str,
    custom_css: bool,
    signed_in_as: Option<&'a str>,
    status: u16,
}

impl<'a> Problem<'a> {
    fn new(v: &Plain<'a>, status: u16) -> Self {
        Problem {
            brand: v.brand,
            prefix: v.prefix,
            custom_css: v.custom_css,
            signed_in_as: v.signed_in_as,
            status,
        }
    }
    fn title(&self) -> &'static str {
        match self.status {
            404 => "Page not found",
            _ => "Something went wrong",
        }
    }
}

/// The 404 page.
pub fn not_found(v: &Plain) -> Result<String, RenderError> {
    Ok(Problem::new(v, 404).render()?)
}

/// The 500 page: says nothing of the cause (that goes to the log).
pub fn server_error(v: &Plain) -> Result<String, RenderError> {
    Ok(Problem::new(v, 500).render()?)
}

/// A time people read: "7 Dec 2026, 14:05 UTC", from unix seconds.
pub fn utc_time(unix: u64) -> String {
    let (date, clock) = utc_time_parts(unix);
    format!("{date} {clock}")
}

/// [`utc_time`] in its two halves, ("7 Dec 2026,", "14:05 UTC"), so a narrow column breaks
/// between them. A value past the calendar's range (never stored by gatehouse) shows as
/// its seconds.
pub fn utc_time_parts(unix: u64) -> (String, String) {
    let Some(t) = i64::try_from(unix)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
    else {
        return (format!("{unix} s after 1970"), "(UTC)".to_string());
    };
    let month = t.month().to_string();
    (
        format!(
            "{} {} {},",
            t.day(),
            month.get(..3).unwrap_or(&month),
            t.year()
        ),
        format!("{:02}:{:02} UTC", t.hour(), t.minute()),
    )
}

/// How long a user agent may be shown when it is none of the browsers known here.
const UA_SHOWN: usize = 40;

/// A user agent as a person names their device: "Firefox 128 on Linux", "Safari on iOS";
/// another client's first product token ("curl/8.5.0"), cut to 40 characters; "Unknown" for
/// nothing.
pub fn short_user_agent(ua: &str) -> String {
    let ua = ua.trim();
    if ua.is_empty() {
        return "Unknown".to_string();
    }
    // Order matters: Edge and Opera say Chrome too, Chrome says Safari, Android says Linux.
    const BROWSERS: [(&str, &str); 7] = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("FxiOS/", "Firefox"),
        ("CriOS/", "Chrome"),
        ("Chrome/", "Chrome"),
        ("Version/", "Safari"),
    ];
    const SYSTEMS: [(&str, &str); 8] = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("CrOS", "ChromeOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Macintosh", "macOS"),
        ("Linux", "Linux"),
    ];
    let browser = BROWSERS.iter().find_map(|(token, name)| {
        let at = ua.find(token)?;
        let version: String = ua[at + token.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        // Safari's "Version/" is only Safari when the agent says Safari.
        (*name != "Safari" || ua.contains("Safari/")).then_some((*name, version))
    });
    let system = SYSTEMS
        .iter()
        .find(|(token, _)| ua.contains(token))
        .map(|(_, name)| *name);
    match (browser, system) {
        (Some((name, version)), system) => {
            let mut s = name.to_string();
            if !version.is_empty() && name != "Safari" {
                s.push(' ');
                s.push_str(&version);
            }
            if let Some(system) = system {
                s.push_str(" on ");
                s.push_str(system);
            }
            s
        }
        (None, _) => {
            let first = ua.split_whitespace().next().unwrap_or(ua);
            if first.chars().count() > UA_SHOWN {
                let cut: String = first.chars().take(UA_SHOWN - 1).collect();
                format!("{cut}…")
            } else {
                first.to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::html_checks::{assert_fields_labelled, attr, tags};

    const EVIL: &str = "<script>alert(1)</script>";
    const SVG: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>"#;

    fn recovery_codes() -> Vec<String> {
        (0..10).map(|i| format!("abcde-fghj{i}")).collect()
    }
    const TOKEN: &str = "tok3nTOK3Ntok3nTOK3Ntok3nTOK3Nxx";
    const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

    fn errors(pairs: &[(&str, &str)]) -> FieldErrors {
        let mut e = FieldErrors::new();
        for (k, v) in pairs {
            e.entry(k.to_string()).or_default().push(v.to_string());
        }
        e
    }

    fn sessions() -> Vec<SessionRow<'static>> {
        vec![
            SessionRow {
                id: "s1",
                kind: SessionKind::Browser,
                created: 1_796_652_359,
                last_seen: 1_796_655_000,
                address: "203.0.113.7",
                user_agent: FIREFOX,
                current: true,
            },
            SessionRow {
                id: "f2",
                kind: SessionKind::App,
                created: 1_709_197_380,
                last_seen: 1_796_600_000,
                address: "2001:db8::1",
                user_agent: IPHONE,
                current: false,
            },
            SessionRow {
                id: "f3",
                kind: SessionKind::App,
                created: 1_709_197_380,
                last_seen: 1_709_197_380,
                address: "198.51.100.4",
                user_agent: EVIL,
                current: false,
            },
        ]
    }

    /// Every page in every state, with `user` as the name shown and typed, and `errs` as
    /// each form's field errors: (name, html).
    fn all_pages(user: &str, errs: &FieldErrors, custom_css: bool) -> Vec<(String, String)> {
        let rows = sessions();
        let mut pages = Vec::new();
        let mut add = |name: &str, html: Result<String, RenderError>| match html {
            Ok(h) => pages.push((name.to_string(), h)),
            Err(e) => panic!("{name}: {e}"),
        };
        let brand = "Acme";
        let prefix = "/accounts/";
        for (name, days, error) in [
            ("login", 0, None),
            ("login-remember-error", 14, Some(SIGN_IN_FAILED)),
        ] {
            add(
                name,
                login(&SignIn {
                    brand,
                    prefix,
                    custom_css,
                    csrf_token: TOKEN,
                    signed_in_as: None,
                    username: user,
                    next: "/app/?a=1&b=2",
                    remember_days: days,
                    remember: false,
                    registration: days > 0,
                    error,
                    notice: None,
                }),
            );
        }
        for (name, done) in [("logout", false), ("logout-done", true)] {
            add(
                name,
                logout(&SignOut {
                    brand,
                    prefix,
                    custom_css,
                    csrf_token: if done { "" } else { TOKEN },
                    signed_in_as: (!done).then_some(user),
                    done,
                }),
            );
        }
        add(
            "register",
            register(&SignUp {
                brand,
                prefix,
                custom_css,
                csrf_token: TOKEN,
                signed_in_as: None,
                username: user,
                email: "alice@example.com",
                first_name: "Alice",
                last_name: "",
                errors: errs,
            }),
        );
        for (name, recent, failed, notice) in [
            ("account", false, None, Some("Your password was changed.")),
            (
                "account-recent-error",
                true,
                Some(AccountForm::Password),
                None,
            ),
        ] {
            add(
                name,
                account(&Account {
                    brand,
                    prefix,
                    custom_css,
                    csrf_token: TOKEN,
                    signed_in_as: Some(user),
                    notice,
                    username: user,
                    first_name: "Alice",
                    last_name: "Liddell",
                    email: "alice@example.com",
                    recent_sign_in: recent,
                    sessions: &rows,
                    two_factor: TwoFactor::Off,
                    new_codes: &[],
                    next: None,
                    failed,
                    errors: errs,
                    keys: KeysSection::default(),
                }),
            );
        }
        let codes = recovery_codes();
        let on = TwoFactor::On {
            since: 1_796_652_359,
            recovery_left: 7,
        };
        let pending = TwoFactor::Pending {
            qr_svg: SVG,
            secret: "JBSW Y3DP EHPK 3PXP",
        };
        for (name, recent, two_factor, new_codes, failed) in [
            ("account-mfa-pending", false, pending, &[][..], None),
            ("account-mfa-codes", true, on, &codes[..], None),
            ("account-mfa-on", false, on, &[][..], None),
            (
                "account-mfa-on-error",
                false,
                on,
                &[][..],
                Some(AccountForm::MfaDisable),
            ),
        ] {
            add(
                name,
                account(&Account {
                    brand,
                    prefix,
                    custom_css,
                    csrf_token: TOKEN,
                    signed_in_as: Some(user),
                    notice: None,
                    username: user,
                    first_name: "Alice",
                    last_name: "Liddell",
                    email: "alice@example.com",
                    recent_sign_in: recent,
                    sessions: &rows,
                    two_factor,
                    new_codes,
                    next: Some("/app/x?a=1"),
                    failed,
                    errors: errs,
                    keys: KeysSection::default(),
                }),
            );
        }
        let wait = too_many_codes(3600);
        for (name, state, error) in [
            ("code", CodeState::SignIn, None),
            (
                "code-error",
                CodeState::SignIn,
                Some(crate::error::OTP_INVALID),
            ),
            ("code-step-up", CodeState::StepUp, None),
            ("code-locked", CodeState::Locked, Some(wait.as_str())),
            ("code-enrol", CodeState::Enrol, None),
        ] {
            add(
                name,
                second_factor(&SecondFactorPage {
                    brand,
                    prefix,
                    custom_css,
                    csrf_token: TOKEN,
                    signed_in_as: matches!(state, CodeState::StepUp | CodeState::Enrol)
                        .then_some(user),
                    state,
                    next: "/app/x?a=1&b=2",
                    sign_in_url: "/accounts/login/?next=/app/x",
                    enrol_url: "/accounts/?next=/app/x#two-factor",
                    error,
                }),
            );
        }
        for (name, sent) in [("reset", false), ("reset-sent", true)] {
            add(
                name,
                password_reset(&PasswordReset {
                    brand,
                    prefix,
                    custom_css,
                    csrf_token: if sent { "" } else { TOKEN },
                    signed_in_as: None,
                    email: user,
                    sent,
                    errors: errs,
                }),
            );
        }
        for (name, state) in [
            ("reset-confirm", ResetState::Form),
            ("reset-confirm-invalid", ResetState::Invalid),
            ("reset-confirm-done", ResetState::Done),
        ] {
            add(
                name,
                password_reset_confirm(&PasswordResetConfirm {
                    brand,
                    prefix,
                    custom_css,
                    csrf_token: TOKEN,
                    signed_in_as: None,
                    state,
                    errors: errs,
                }),
            );
        }
        for (name, state) in [
            ("verify", VerifyState::Ask),
            ("verify-done", VerifyState::Done),
            ("verify-invalid", VerifyState::Invalid),
        ] {
            add(
                name,
                verify_email(&VerifyEmail {
                    brand,
                    prefix,
                    custom_css,
                    csrf_token: TOKEN,
                    signed_in_as: Some(user),
                    state,
                }),
            );
        }
        add(
            "csrf",
            csrf_failure(&CsrfFailure {
                brand,
                prefix,
                custom_css,
                csrf_token: "",
                signed_in_as: None,
                reason: "CSRF token from POST incorrect.",
            }),
        );
        let plain = Plain {
            brand,
            prefix,
            custom_css,
            csrf_token: "",
            signed_in_as: Some(user),
        };
        add("404", not_found(&plain));
        add("500", server_error(&plain));
        pages
    }

    fn sample_errors() -> FieldErrors {
        errors(&[
            ("username", "A user with that username already exists."),
            ("password", "This password is too common."),
            ("password", "This password is entirely numeric."),
            ("re_password", EVIL),
            ("email", "Enter a valid email address."),
            ("old_password", "Wrong password."),
            ("new_password", "This password is too short."),
            ("non_field_errors", "The two password fields didn't match."),
        ])
    }

    /// The text of each `<form ...>...</form>`.
    fn forms(html: &str) -> Vec<&str> {
        html.split("<form ")
            .skip(1)
            .map(|f| f.split("</form>").next().unwrap_or(f))
            .collect()
    }

    #[test]
    fn key_days_as_people_and_date_inputs_read_them() {
        assert_eq!(input_date(1_796_631_302), "2026-12-07");
        assert_eq!(day(1_796_631_302), "7 Dec 2026");
        assert_eq!(input_date(0), "1970-01-01");
    }

    #[test]
    fn every_page_renders_a_whole_document_in_the_frame() {
        for custom in [false, true] {
            for (name, html) in all_pages("alice", &FieldErrors::new(), custom) {
                assert!(
                    html.starts_with("<!doctype html>\n<html lang=\"en\">"),
                    "{name}"
                );
                assert!(html.contains("<meta name=\"viewport\""), "{name}");
                assert!(html.contains(" · Acme</title>"), "{name}");
                assert!(
                    html.contains(
                        r#"<link rel="stylesheet" href="/accounts/static/gatehouse.css">"#
                    ),
                    "{name}"
                );
                assert_eq!(
                    html.contains(r#"href="/accounts/static/custom.css""#),
                    custom,
                    "{name}"
                );
                assert_eq!(html.matches("<main").count(), 1, "{name}");
                assert!(
                    html.contains("<header") && html.contains("<footer"),
                    "{name}"
                );
                assert_eq!(tags(&html, "h1").len(), 1, "{name}: one heading");
            }
        }
    }

    #[test]
    fn no_page_carries_inline_style_or_script() {
        for (name, html) in all_pages(EVIL, &sample_errors(), true) {
            let lower = html.to_ascii_lowercase();
            assert!(!lower.contains("<script"), "{name}");
            assert!(!lower.contains("style="), "{name}");
            assert!(!lower.contains("<style"), "{name}");
            for tag in lower.split('<').skip(1) {
                let tag = tag.split('>').next().unwrap_or(tag);
                let handler = tag.split([' ', '\n']).any(|a| {
                    a.starts_with("on")
                        && a.split('=').next().is_some_and(|n| {
                            n.len() > 2 && n.chars().all(|c| c.is_ascii_lowercase())
                        })
                        && a.contains('=')
                });
                assert!(!handler, "{name}: an event handler attribute in <{tag}>");
            }
            assert!(!lower.contains("javascript:"), "{name}");
        }
    }

    #[test]
    fn what_people_type_comes_out_escaped() {
        for (name, html) in all_pages(EVIL, &sample_errors(), false) {
            assert!(!html.contains(EVIL), "{name}");
        }
        let pages = all_pages(EVIL, &sample_errors(), false);
        let find = |n: &str| {
            pages
                .iter()
                .find(|(name, _)| name == n)
                .map(|(_, h)| h.as_str())
                .unwrap_or_default()
        };
        let escaped = "&#60;script&#62;alert(1)&#60;/script&#62;";
        assert!(find("login").contains(&format!("value=\"{escaped}\"")));
        assert!(find("account").contains(&format!("Signed in as <strong>{escaped}</strong>")));
        assert!(
            find("register").contains(escaped),
            "an error message is text too"
        );
        assert!(find("login").contains(r#"name="next" value="/app/?a=1&#38;b=2""#));
    }

    #[test]
    fn every_form_posts_and_carries_the_csrf_token() {
        let mut seen = 0;
        for (name, html) in all_pages("alice", &sample_errors(), false) {
            for form in forms(&html) {
                seen += 1;
                assert!(form.starts_with("method=\"post\""), "{name}: {form}");
                let field =
                    format!(r#"<input type="hidden" name="csrfmiddlewaretoken" value="{TOKEN}">"#);
                assert_eq!(form.matches(&field).count(), 1, "{name}: {form}");
            }
        }
        // login, logout, register, 5 account forms + 2 more session rows, reset, confirm, verify.
        assert!(seen >= 15, "{seen} forms");
    }

    #[test]
    fn every_label_points_at_an_input_and_every_input_has_one() {
        for (name, html) in all_pages("alice", &sample_errors(), false) {
            assert_fields_labelled(&name, &html);
        }
    }

    #[test]
    fn field_errors_sit_next_to_their_field_and_the_rest_above_the_form() {
        let errs = sample_errors();
        let pages = all_pages("alice", &errs, false);
        let (_, html) = pages
            .iter()
            .find(|(n, _)| n == "register")
            .unwrap_or(&pages[0]);
        let input = tags(html, "input")
            .into_iter()
            .find(|t| attr(t, "name") == Some("password"))
            .unwrap_or_default();
        assert_eq!(attr(input, "aria-invalid"), Some("true"));
        assert_eq!(
            attr(input, "aria-describedby"),
            Some("id_register-password-errors")
        );
        let list = html
            .split(r#"<ul class="errors" id="id_register-password-errors">"#)
            .nth(1)
            .and_then(|rest| rest.split("</ul>").next())
            .unwrap_or_default();
        assert!(list.contains("<span class=\"tag\">Error:</span> This password is too common."));
        assert!(list.contains("This password is entirely numeric."));
        let username = tags(html, "input")
            .into_iter()
            .find(|t| attr(t, "name") == Some("username"))
            .unwrap_or_default();
        assert_eq!(
            attr(username, "aria-describedby"),
            Some("id_register-username-help id_register-username-errors"),
        );
        let first = tags(html, "input")
            .into_iter()
            .find(|t| attr(t, "name") == Some("first_name"))
            .unwrap_or_default();
        assert_eq!(attr(first, "aria-invalid"), None);
        let top = html.split("<form").next().unwrap_or_default();
        assert!(top.contains(
            "<span class=\"tag\">Error:</span> The two password fields didn&#39;t match."
        ));
        assert!(
            top.contains("Wrong password."),
            "a key no field of the page carries is still shown, above the form"
        );
    }

    fn page(pages: &[(String, String)], name: &str) -> String {
        pages
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, h)| h.clone())
            .unwrap_or_else(|| panic!("no page {name}"))
    }

    #[test]
    fn sign_in_offers_remember_me_and_sign_up_only_when_configured() {
        let pages = all_pages("alice", &FieldErrors::new(), false);
        let plain = page(&pages, "login");
        assert!(!plain.contains("name=\"remember\""));
        assert!(!plain.contains("register/"));
        assert!(plain.contains("href=\"/accounts/password/reset/\""));
        assert!(!plain.contains("role=\"alert\""));
        let full = page(&pages, "login-remember-error");
        assert!(full.contains("Remember me for 14 days</label>"));
        assert!(full.contains("href=\"/accounts/register/\""));
        assert!(full.contains(&format!(
            "<span class=\"tag\">Error:</span> {SIGN_IN_FAILED}"
        )));
        let one = login(&SignIn {
            brand: "b",
            prefix: "/",
            custom_css: false,
            csrf_token: TOKEN,
            signed_in_as: None,
            username: "",
            next: "/",
            remember_days: 1,
            remember: true,
            registration: false,
            error: None,
            notice: None,
        })
        .unwrap_or_default();
        assert!(one.contains("Remember me for 1 day</label>"));
        assert!(one.contains("id=\"id_login-remember\" checked>"));
    }

    #[test]
    fn the_account_page_asks_for_the_password_only_after_ten_minutes() {
        let pages = all_pages("alice", &sample_errors(), false);
        let old = page(&pages, "account");
        let recent = page(&pages, "account-recent-error");
        let passwords = |html: &str, form: &str| {
            forms(html)
                .into_iter()
                .filter(|f| f.contains(&format!("name=\"form\" value=\"{form}\"")))
                .map(|f| f.matches("name=\"password\"").count())
                .sum::<usize>()
        };
        for form in ["profile", "end-others", "delete"] {
            assert_eq!(passwords(&old, form), 1, "{form}");
            assert_eq!(passwords(&recent, form), 0, "{form}");
        }
        assert!(old.contains("role=\"status\"><p>Your password was changed.</p>"));
        assert!(!recent.contains("role=\"status\""));
    }

    #[test]
    fn the_account_page_lists_sessions_and_marks_this_device() {
        let pages = all_pages("alice", &FieldErrors::new(), false);
        let html = page(&pages, "account");
        assert_eq!(
            html.matches("<span class=\"badge\">This device</span>")
                .count(),
            1
        );
        assert!(html.contains("Firefox 128 on Linux"));
        assert!(html.contains("Safari on iOS"));
        assert!(html
            .contains("<span class=\"nw\">7 Dec 2026,</span> <span class=\"nw\">14:05 UTC</span>"));
        assert!(
            html.contains("class=\"kind\">App</span>")
                && html.contains("class=\"kind\">Browser <span class=\"badge\">")
        );
        assert!(html.contains("name=\"session\" value=\"f2\""));
        assert!(html.contains("Sign out all other sessions</button>"));
        let rows = sessions();
        let alone = account(&Account {
            brand: "b",
            prefix: "/",
            custom_css: false,
            csrf_token: TOKEN,
            signed_in_as: Some("alice"),
            notice: None,
            username: "alice",
            first_name: "",
            last_name: "",
            email: "",
            recent_sign_in: true,
            sessions: &rows[..1],
            two_factor: TwoFactor::Off,
            new_codes: &[],
            next: None,
            failed: None,
            errors: &FieldErrors::new(),
            keys: KeysSection::default(),
        })
        .unwrap_or_default();
        assert!(!alone.contains("Sign out all other sessions"));
    }

    #[test]
    fn a_refused_account_form_shows_its_errors_and_only_its_own() {
        let pages = all_pages("alice", &sample_errors(), false);
        let html = page(&pages, "account-recent-error");
        let form = |name: &str| {
            forms(&html)
                .into_iter()
                .find(|f| f.contains(&format!("name=\"form\" value=\"{name}\"")))
                .unwrap_or_default()
        };
        assert!(form("password").contains("Wrong password."));
        assert!(form("password").contains("aria-invalid=\"true\""));
        assert!(!form("profile").contains("aria-invalid"));
        assert!(!form("profile").contains("Enter a valid email address."));
        let password_section = html
            .split("id=\"password-h\"")
            .nth(1)
            .and_then(|s| s.split("</section>").next())
            .unwrap_or_default();
        assert!(
            password_section.contains("didn&#39;t match."),
            "non-field errors above it"
        );
        assert_eq!(
            html.matches("role=\"alert\"").count(),
            2,
            "the summary and the form's"
        );
        assert!(html.contains("<a href=\"#password-h\">Password</a>"));
    }

    #[test]
    fn the_page_states_say_what_happened() {
        let pages = all_pages("alice", &FieldErrors::new(), false);
        let has = |name: &str, text: &str| {
            assert!(page(&pages, name).contains(text), "{name}: {text}");
        };
        has("logout", "action=\"/accounts/logout/\"");
        has("logout-done", "<h1>You are signed out</h1>");
        has("reset-sent", "<h1>Check your mail</h1>");
        has("reset-sent", "<title>Check your mail · Acme</title>");
        has("reset-confirm", "name=\"re_new_password\"");
        has("reset-confirm-invalid", "invalid or has expired");
        has("reset-confirm-done", "href=\"/accounts/login/\"");
        has("verify", "Confirm my email address</button>");
        has("verify-done", "<h1>Your email address is confirmed</h1>");
        has("verify-invalid", "invalid or has expired");
        has("csrf", "<title>Forbidden (403) · Acme</title>");
        has("csrf", "CSRF verification failed. Request aborted.");
        has(
            "csrf",
            "<span class=\"tag\">Reason:</span> CSRF token from POST incorrect.",
        );
        has("404", "<h1>Page not found</h1>");
        has("500", "<h1>Something went wrong</h1>");
        has("500", "Signed in as <strong>alice</strong>");
        assert!(!page(&pages, "logout-done").contains("Signed in as"));
    }

    #[test]
    fn the_two_factor_section_follows_its_state() {
        let pages = all_pages("alice", &FieldErrors::new(), false);
        let section = |name: &str| {
            page(&pages, name)
                .split(
                    "<section class=\"card\" id=\"two-factor\" aria-labelledby=\"two-factor-h\">",
                )
                .nth(1)
                .and_then(|s| s.split("</section>").next())
                .map(str::to_string)
                .unwrap_or_else(|| panic!("{name}: no two-factor section"))
        };
        let off = section("account");
        assert!(off.contains("name=\"form\" value=\"mfa-start\""));
        assert!(off.contains("Set up two-factor authentication</button>"));
        assert!(!off.contains("<img") && !off.contains("recovery-codes"));

        let pending = section("account-mfa-pending");
        let img = tags(&pending, "img").into_iter().next().unwrap_or_default();
        assert_eq!(attr(img, "alt"), Some("QR code for your authenticator app"));
        assert_eq!(attr(img, "src"), Some(svg_data_uri(SVG).as_str()));
        assert!(
            pending.contains("<code class=\"secret\" id=\"mfa-secret\">JBSW Y3DP EHPK 3PXP</code>")
        );
        assert!(pending.contains("name=\"form\" value=\"mfa-confirm\""));
        assert!(pending.contains("Turn on</button>"));
        assert!(pending.contains("name=\"next\" value=\"/app/x?a=1\""));

        let shown = section("account-mfa-codes");
        let list = shown
            .split("id=\"recovery-codes\"")
            .nth(1)
            .and_then(|s| s.split("</ul>").next())
            .unwrap_or_default();
        assert_eq!(list.matches("<li><code>").count(), 10);
        assert!(list.contains("abcde-fghj9"));
        assert!(
            shown.contains("href=\"/app/x?a=1\""),
            "on to where the browser was going"
        );
        assert!(!section("account-mfa-on").contains("recovery-codes"));

        let on = section("account-mfa-on");
        assert!(on.contains("since 7 Dec 2026."), "{on}");
        assert!(on.contains("You have 7 unused recovery codes."));
        assert!(on.contains("name=\"form\" value=\"mfa-renew\""));
        assert!(on.contains("name=\"form\" value=\"mfa-disable\""));
        assert!(on.contains("id=\"id_mfa-disable-password\""));
        assert!(on.contains("id=\"id_mfa-disable-code\""));
    }

    #[test]
    fn the_sensitive_forms_ask_a_code_only_when_enrolled_and_the_sign_in_is_old() {
        let pages = all_pages("alice", &FieldErrors::new(), false);
        let codes = |name: &str, form: &str| {
            forms(&page(&pages, name))
                .into_iter()
                .filter(|f| f.contains(&format!("name=\"form\" value=\"{form}\"")))
                .map(|f| f.matches("name=\"code\"").count())
                .sum::<usize>()
        };
        for form in ["profile", "end-others", "delete"] {
            assert_eq!(
                codes("account-mfa-on", form),
                1,
                "{form}: enrolled, old sign-in"
            );
            assert_eq!(codes("account", form), 0, "{form}: not enrolled");
            assert_eq!(
                codes("account-mfa-codes", form),
                0,
                "{form}: recent sign-in"
            );
        }
    }

    #[test]
    fn a_refused_two_factor_form_shows_its_errors_under_its_fields() {
        let errs = errors(&[
            ("code", crate::error::OTP_INVALID),
            ("password", "Wrong password."),
        ]);
        let rows = sessions();
        let html = account(&Account {
            brand: "b",
            prefix: "/",
            custom_css: false,
            csrf_token: TOKEN,
            signed_in_as: Some("alice"),
            notice: None,
            username: "alice",
            first_name: "",
            last_name: "",
            email: "",
            recent_sign_in: true,
            sessions: &rows,
            two_factor: TwoFactor::On {
                since: 0,
                recovery_left: 1,
            },
            new_codes: &[],
            next: None,
            failed: Some(AccountForm::MfaDisable),
            errors: &errs,
            keys: KeysSection::default(),
        })
        .unwrap_or_default();
        let form = forms(&html)
            .into_iter()
            .find(|f| f.contains("value=\"mfa-disable\""))
            .unwrap_or_default();
        assert!(form.contains("id=\"id_mfa-disable-code-errors\""));
        assert!(form.contains("<span class=\"tag\">Error:</span> Invalid two-factor code."));
        assert!(form.contains("Wrong password."));
        assert!(html.contains("You have 1 unused recovery code."));
        assert!(html.contains("<a href=\"#two-factor-h\">Two-factor authentication</a>"));
        let renew = forms(&html)
            .into_iter()
            .find(|f| f.contains("value=\"mfa-renew\""))
            .unwrap_or_default();
        assert!(
            !renew.contains("aria-invalid"),
            "only the refused form's fields"
        );
    }

    #[test]
    fn the_code_page_asks_one_code_a_recovery_code_fits() {
        let pages = all_pages("alice", &FieldErrors::new(), false);
        let html = page(&pages, "code");
        assert!(html.contains("<h1>Two-factor authentication</h1>"));
        let input = tags(&html, "input")
            .into_iter()
            .find(|t| attr(t, "name") == Some("code"))
            .unwrap_or_default();
        assert_eq!(
            attr(input, "inputmode"),
            None,
            "a phone's digits-only keyboard cannot type a recovery code"
        );
        assert_eq!(attr(input, "autocomplete"), Some("one-time-code"));
        assert_eq!(attr(input, "pattern"), None, "recovery codes have letters");
        assert_eq!(attr(input, "maxlength"), None);
        assert!(html.contains("<label for=\"id_otp-code\">Authentication code</label>"));
        assert!(html.contains("recovery codes works too"));
        assert!(html.contains("name=\"next\" value=\"/app/x?a=1&#38;b=2\""));
        assert!(html.contains("href=\"/accounts/login/?next=/app/x\">Start again</a>"));
        assert!(!html.contains("role=\"alert\""));

        let error = page(&pages, "code-error");
        assert!(error.contains("id=\"id_otp-code-errors\""));
        assert!(error.contains("<span class=\"tag\">Error:</span> Invalid two-factor code."));
        assert!(error.contains("aria-invalid=\"true\""));

        let locked = page(&pages, "code-locked");
        assert!(locked.contains("Too many wrong codes. Try again in 60 minutes."));
        assert!(!locked.contains("name=\"code\""), "no form while locked");

        let step_up = page(&pages, "code-step-up");
        assert!(step_up.contains("name=\"code\""));
        assert!(!step_up.contains("Start again"));

        let enrol = page(&pages, "code-enrol");
        assert!(enrol.contains("<h1>Two-factor authentication needed</h1>"));
        assert!(enrol.contains("href=\"/accounts/?next=/app/x#two-factor\""));
        assert!(!enrol.contains("<form"));
    }

    #[test]
    fn second_factor_texts_and_values() {
        assert_eq!(
            too_many_codes(3600),
            "Too many wrong codes. Try again in 60 minutes."
        );
        assert_eq!(
            too_many_codes(61),
            "Too many wrong codes. Try again in 2 minutes."
        );
        assert_eq!(
            too_many_codes(60),
            "Too many wrong codes. Try again in 1 minute."
        );
        assert_eq!(
            too_many_codes(0),
            "Too many wrong codes. Try again in 1 minute."
        );
        assert_eq!(svg_data_uri("<svg/>"), "data:image/svg+xml;base64,PHN2Zy8+");
        for n in SignInNotice::ALL {
            assert_eq!(SignInNotice::parse(n.as_str()), Some(n));
        }
        assert_eq!(SignInNotice::parse(""), None);
        assert_eq!(SignInNotice::Expired.text(), SIGN_IN_EXPIRED);
        let html = login(&SignIn {
            brand: "b",
            prefix: "/",
            custom_css: false,
            csrf_token: TOKEN,
            signed_in_as: None,
            username: "",
            next: "",
            remember_days: 0,
            remember: false,
            registration: false,
            error: None,
            notice: Some(SIGN_IN_EXPIRED),
        })
        .unwrap_or_default();
        assert!(html.contains(
            "<div class=\"alert notice\" role=\"status\"><p>Your sign-in expired; enter your password again.</p></div>"
        ));
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(utc_time(1_796_652_359), "7 Dec 2026, 14:05 UTC");
        assert_eq!(utc_time(1_709_197_380), "29 Feb 2024, 09:03 UTC");
        assert_eq!(utc_time(0), "1 Jan 1970, 00:00 UTC");
        assert_eq!(
            utc_time(u64::MAX),
            format!("{} s after 1970 (UTC)", u64::MAX)
        );
        assert_eq!(
            utc_time_parts(1_796_652_359),
            ("7 Dec 2026,".to_string(), "14:05 UTC".to_string())
        );
    }

    #[test]
    fn user_agents_read_as_devices() {
        let cases = [
            (FIREFOX, "Firefox 128 on Linux"),
            (IPHONE, "Safari on iOS"),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.87",
                "Edge 126 on Windows",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.122 Mobile Safari/537.36",
                "Chrome 126 on Android",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
                "Safari on macOS",
            ),
            ("curl/8.5.0", "curl/8.5.0"),
            ("python-requests/2.32.3 CPython/3.12", "python-requests/2.32.3"),
            ("", "Unknown"),
            ("   ", "Unknown"),
        ];
        for (ua, want) in cases {
            assert_eq!(short_user_agent(ua), want, "{ua}");
        }
        let long = "x".repeat(200);
        let short = short_user_agent(&long);
        assert_eq!(short.chars().count(), 40);
        assert!(short.ends_with('…'));
    }

    #[test]
    fn account_forms_round_trip_through_their_hidden_field() {
        for form in AccountForm::ALL {
            assert_eq!(AccountForm::parse(form.as_str()), Some(form));
        }
        assert_eq!(AccountForm::parse(""), None);
        assert_eq!(AccountForm::parse("Profile"), None);
    }

    #[test]
    fn the_stylesheet_is_small_and_self_contained() {
        // The pages and the console share this one stylesheet; the budget keeps it small.
        assert!(STYLESHEET.len() < 12 * 1024, "{} bytes", STYLESHEET.len());
        assert!(!STYLESHEET.contains("@import") && !STYLESHEET.contains("url("));
        assert!(STYLESHEET.contains("prefers-color-scheme: dark"));
    }

    /// Writes every page and the stylesheet to `GATEHOUSE_PAGES_PREVIEW` (default: a folder
    /// in the temp dir), linked to each other, for a look in a browser:
    /// `cargo test --lib web::render::tests::preview -- --ignored`.
    #[test]
    #[ignore = "writes files for a person to look at"]
    fn preview() {
        let dir = std::env::var_os("GATEHOUSE_PAGES_PREVIEW")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("gatehouse-pages-preview"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        };
        write("gatehouse.css", STYLESHEET);
        let clean = all_pages("alice", &FieldErrors::new(), false);
        let errs = errors(&[
            ("username", "A user with that username already exists."),
            (
                "password",
                "This password is too short. It must contain at least 8 characters.",
            ),
            ("password", "This password is too common."),
            ("email", "Enter a valid email address."),
            ("old_password", "Wrong password."),
            ("non_field_errors", "The two password fields didn't match."),
        ]);
        let failed = all_pages("alice", &errs, false)
            .into_iter()
            .filter(|(n, _)| {
                ["register", "account-recent-error", "reset", "reset-confirm"].contains(&n.as_str())
            })
            .map(|(n, h)| (format!("{n}-errors"), h));
        for (name, html) in clean.into_iter().chain(failed) {
            write(
                &format!("{name}.html"),
                &html.replace("/accounts/static/gatehouse.css", "gatehouse.css"),
            );
        }
    }
}
