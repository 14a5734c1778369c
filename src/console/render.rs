//! The console's HTML: one view model and one render function per page, over askama
//! templates compiled into the binary (`src/console/templates/console/`, HTML-escaped by
//! default, on the pages' stylesheet and form macros).

use crate::web::render::{utc_time, utc_time_parts, FieldErrors, RenderError};
use askama::Template;

/// The hidden field naming which form of the user page was posted.
pub const ACTION_FIELD: &str = "action";
/// The hidden field of a session row's "Sign out" form on the user page: the session's (or
/// refresh family's) public id.
pub const DEVICE_FIELD: &str = "device";
/// The hidden field of an API key row's "Revoke" form on the user page: the key's id.
pub const KEY_FIELD: &str = "key";
/// The user page's form making an API key for the user ([`ACTION_FIELD`]'s value).
pub const MAKE_KEY_ACTION: &str = "make-key";
/// The hidden field a re-authentication page adds to the form it carries.
pub const REAUTH_FIELD: &str = "reauth";
/// The query parameter the user page reads a [`Done`] from, after a change.
pub const DONE_PARAM: &str = "done";
/// Counts from the audit log stop here ("10,000+"), so the home page never reads it all.
pub const COUNT_CAP: usize = 10_000;

/// What every console page shares: the frame around it.
pub struct Frame<'a> {
    pub brand: &'a str,
    /// `[web] prefix`: the stylesheet, the account page and sign-out live there.
    pub web_prefix: &'a str,
    /// `[console] prefix`: the console's own links.
    pub prefix: &'a str,
    pub custom_css: bool,
    /// The masked CSRF token for this response's forms.
    pub csrf_token: &'a str,
    pub signed_in_as: &'a str,
}

/// A number as people read it: "12,345".
pub fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count read up to [`COUNT_CAP`] + 1 items: "10,000+" past the cap.
pub fn capped(n: usize) -> String {
    if n > COUNT_CAP {
        format!("{}+", grouped(COUNT_CAP))
    } else {
        grouped(n)
    }
}

/// A newest sign-up on the home page.
pub struct NewUser<'a> {
    pub id: u64,
    pub username: &'a str,
    /// Unix seconds.
    pub joined: u64,
}

impl NewUser<'_> {
    fn joined_at(&self) -> String {
        utc_time(self.joined)
    }
}

/// The console's home page.
#[derive(Template)]
#[template(path = "console/home.html")]
pub struct Home<'a> {
    pub frame: Frame<'a>,
    pub active: usize,
    pub inactive: usize,
    /// Read up to [`COUNT_CAP`] + 1.
    pub signups_week: usize,
    pub failed_sign_ins_week: usize,
    /// Newest first.
    pub newest: &'a [NewUser<'a>],
}

impl Home<'_> {
    fn active_shown(&self) -> String {
        grouped(self.active)
    }
    fn inactive_shown(&self) -> String {
        grouped(self.inactive)
    }
    fn total(&self) -> String {
        grouped(self.active.saturating_add(self.inactive))
    }
    fn signups_shown(&self) -> String {
        capped(self.signups_week)
    }
    fn failed_shown(&self) -> String {
        capped(self.failed_sign_ins_week)
    }
}

/// The console's home page.
pub fn home(v: &Home) -> Result<String, RenderError> {
    Ok(v.render()?)
}

/// What a change on the user page did, said above it after the redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Access,
    Deactivated,
    Restored,
    MfaReset,
    ResetMailed,
    Edited,
    VerifyMailed,
    DeviceEnded,
    AlreadyEnded,
    AllEnded,
    KeyRevoked,
    KeyGone,
    ServiceMade,
}

impl Done {
    const ALL: [Done; 13] = [
        Done::Access,
        Done::Deactivated,
        Done::Restored,
        Done::MfaReset,
        Done::ResetMailed,
        Done::Edited,
        Done::VerifyMailed,
        Done::DeviceEnded,
        Done::AlreadyEnded,
        Done::AllEnded,
        Done::KeyRevoked,
        Done::KeyGone,
        Done::ServiceMade,
    ];

    /// The value of [`DONE_PARAM`].
    pub fn as_str(self) -> &'static str {
        match self {
            Done::Access => "access",
            Done::Deactivated => "deactivated",
            Done::Restored => "restored",
            Done::MfaReset => "mfa-reset",
            Done::ResetMailed => "reset-mailed",
            Done::Edited => "edited",
            Done::VerifyMailed => "verify-mailed",
            Done::DeviceEnded => "device-ended",
            Done::AlreadyEnded => "already-ended",
            Done::AllEnded => "all-ended",
            Done::KeyRevoked => "key-revoked",
            Done::KeyGone => "key-gone",
            Done::ServiceMade => "service-made",
        }
    }

    pub fn parse(value: &str) -> Option<Done> {
        Self::ALL.into_iter().find(|d| d.as_str() == value)
    }

    pub fn text(self) -> &'static str {
        match self {
            Done::Access => "Staff and groups were saved.",
            Done::Deactivated => {
                "The user was deactivated and signed out everywhere. Their tokens and sessions no longer work."
            }
            Done::Restored => {
                "The user was restored. They sign in again; their old sessions stay ended."
            }
            Done::MfaReset => {
                "Two-factor authentication was reset, and the user was signed out everywhere and told by mail."
            }
            Done::ResetMailed => "A password-reset link was mailed to the user's address.",
            Done::Edited => "The details were saved.",
            Done::VerifyMailed => "A verification link was mailed to the user's address.",
            Done::DeviceEnded => {
                "That sign-in was ended: its session or app tokens no longer work."
            }
            Done::AlreadyEnded => "That sign-in had ended already. Nothing was changed.",
            Done::AllEnded => {
                "The user was signed out everywhere: every session and app sign-in of theirs was ended."
            }
            Done::KeyRevoked => "The API key was revoked: it no longer works, on any replica.",
            Done::KeyGone => "That API key was revoked already. Nothing was changed.",
            Done::ServiceMade => {
                "The service account was made. It cannot sign in: make it a key below."
            }
        }
    }
}

/// One live session or app sign-in of the user.
pub struct DeviceRow<'a> {
    /// The session's id hash or the family's id: what its "Sign out" form posts.
    pub id: &'a str,
    pub kind: &'a str,
    pub device: String,
    pub created: u64,
    pub last_seen: u64,
    pub address: &'a str,
}

impl DeviceRow<'_> {
    fn created_at(&self) -> String {
        utc_time(self.created)
    }
    fn created_parts(&self) -> (String, String) {
        utc_time_parts(self.created)
    }
    fn last_seen_parts(&self) -> (String, String) {
        utc_time_parts(self.last_seen)
    }
}

/// One audit event about the user.
pub struct EventRow<'a> {
    /// Unix milliseconds.
    pub time: u64,
    pub action: &'a str,
    /// "" for nobody signed in.
    pub actor: &'a str,
    pub address: &'a str,
}

impl EventRow<'_> {
    fn time_parts(&self) -> (String, String) {
        utc_time_parts(self.time / 1000)
    }
}

/// One API key of the user (SPEC §19).
pub struct KeyRow<'a> {
    /// What the revoke form names it by.
    pub id: &'a str,
    pub name: &'a str,
    /// The key's display prefix (never the key).
    pub prefix: &'a str,
    /// Unix seconds.
    pub created: u64,
    pub expires_at: u64,
    pub last_used: Option<u64>,
    pub revoked: Option<u64>,
}

impl KeyRow<'_> {
    fn created_at(&self) -> String {
        utc_time(self.created)
    }
    fn expires(&self) -> String {
        utc_time(self.expires_at)
    }
    fn last_used_at(&self) -> Option<String> {
        self.last_used.map(utc_time)
    }
    fn revoked_at(&self) -> Option<String> {
        self.revoked.map(utc_time)
    }
}

/// The user page's form making an API key for the user with the staff member's password
/// (`accounts::keys::admin_make_key`): its bounds, what a refusal keeps, the key just made.
#[derive(Default)]
pub struct KeyForm<'a> {
    /// The key just made, in this answer to the POST only.
    pub new_key: Option<&'a str>,
    /// The `<input type="date">` bounds.
    pub min_date: String,
    pub max_date: String,
    /// A refused form's name and date, and the operation's messages by field.
    pub name: &'a str,
    pub expires: &'a str,
    pub errors: FieldErrors,
    /// The staff member has a second factor: the code is asked with the password.
    pub asks_code: bool,
}

impl KeyForm<'_> {
    fn errors_for(&self, field: &str) -> &[String] {
        self.errors.get(field).map_or(&[], Vec::as_slice)
    }
}

/// The user page's edit form: the user's values, or the ones just posted and refused.
pub struct EditForm<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    /// The admin API's messages, by field.
    pub errors: &'a FieldErrors,
}

impl EditForm<'_> {
    fn errors_for(&self, field: &str) -> &[String] {
        self.errors.get(field).map_or(&[], Vec::as_slice)
    }
}

/// The user page (`users/{id}/`).
#[derive(Template)]
#[template(path = "console/user.html")]
pub struct UserPage<'a> {
    pub frame: Frame<'a>,
    pub id: u64,
    pub username: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub email_verified: bool,
    pub is_active: bool,
    pub is_staff: bool,
    pub groups: &'a [String],
    pub two_factor: bool,
    /// Unix seconds.
    pub date_joined: u64,
    pub last_login: Option<u64>,
    pub deleted_at: Option<u64>,
    pub devices: &'a [DeviceRow<'a>],
    pub events: &'a [EventRow<'a>],
    /// `events` holds as many as the page shows: the audit page has older ones.
    pub events_capped: bool,
    pub keys: &'a [KeyRow<'a>],
    /// A service account (SPEC §19): no password, no sign-in, keys only.
    pub is_service: bool,
    /// The form making a key for the user, and the key just made (shown this once).
    pub key_form: KeyForm<'a>,
    pub edit: EditForm<'a>,
    /// After a change: what it did.
    pub notice: Option<&'a str>,
    /// A refused change: why (the operation's words).
    pub errors: &'a [String],
    /// `[console] recent_sign_in_minutes`, said where a form asks for the password again.
    pub recent_minutes: u64,
}

impl UserPage<'_> {
    fn name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_string()
    }
    fn groups_value(&self) -> String {
        self.groups.join(", ")
    }
    fn joined(&self) -> String {
        utc_time(self.date_joined)
    }
    fn last_login_at(&self) -> Option<String> {
        self.last_login.map(utc_time)
    }
    fn deleted(&self) -> Option<String> {
        self.deleted_at.map(utc_time)
    }
    fn path(&self) -> String {
        format!("{}users/{}/", self.frame.prefix, self.id)
    }
    /// The audit log page, filtered to events about this user.
    fn audit_path(&self) -> String {
        format!("{}audit/?target={}", self.frame.prefix, self.id)
    }
    fn no_errors(&self) -> &'static [String] {
        &[]
    }
}

/// The form making a service account (`service-accounts/`).
#[derive(Template)]
#[template(path = "console/service.html")]
pub struct ServicePage<'a> {
    pub frame: Frame<'a>,
    /// What was posted and refused, and the admin API's messages by field.
    pub username: &'a str,
    pub email: &'a str,
    pub errors: &'a FieldErrors,
    pub other_errors: &'a [String],
}

impl ServicePage<'_> {
    fn errors_for(&self, field: &str) -> &[String] {
        self.errors.get(field).map_or(&[], Vec::as_slice)
    }
}

/// The service-account form.
pub fn service(v: &ServicePage) -> Result<String, RenderError> {
    Ok(v.render()?)
}

/// The user page.
pub fn user(v: &UserPage) -> Result<String, RenderError> {
    Ok(v.render()?)
}

/// The password (and code) again before a destructive change, carrying the change's fields.
#[derive(Template)]
#[template(path = "console/reauth.html")]
pub struct Reauth<'a> {
    pub frame: Frame<'a>,
    /// Where the form posts (and "Cancel" goes): the user page.
    pub action_url: &'a str,
    /// What the change does, completing "To …, enter your password".
    pub what: &'a str,
    /// The change's own fields, posted again as they were.
    pub carried: &'a [(String, String)],
    /// The staff user has a second factor: ask a code too.
    pub asks_code: bool,
    pub recent_minutes: u64,
    /// Keys `password`, `code`; others above the form.
    pub errors: &'a FieldErrors,
}

impl Reauth<'_> {
    fn errors_for(&self, field: &str) -> &[String] {
        self.errors.get(field).map_or(&[], Vec::as_slice)
    }
    fn other_errors(&self) -> Vec<String> {
        self.errors
            .iter()
            .filter(|(k, _)| k.as_str() != "password" && k.as_str() != "code")
            .flat_map(|(_, v)| v.iter().cloned())
            .collect()
    }
}

/// The re-authentication page.
pub fn reauth(v: &Reauth) -> Result<String, RenderError> {
    Ok(v.render()?)
}

/// One row of the users list.
pub struct UserRow<'a> {
    pub id: u64,
    pub username: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub is_active: bool,
    pub is_staff: bool,
    pub groups: &'a [String],
    pub two_factor: bool,
    pub email_verified: bool,
    /// Unix seconds.
    pub date_joined: u64,
    pub last_login: Option<u64>,
    /// A service account (SPEC §19).
    pub is_service: bool,
}

impl UserRow<'_> {
    fn name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_string()
    }
    fn groups_shown(&self) -> String {
        self.groups.join(", ")
    }
    /// The day joined ("7 Dec 2026"): the list leaves the clock to the user page.
    fn joined_on(&self) -> String {
        day_of(self.date_joined)
    }
    fn last_login_on(&self) -> Option<String> {
        self.last_login.map(day_of)
    }
}

/// The UTC day of `unix` seconds, as the pages write it ("7 Dec 2026").
fn day_of(unix: u64) -> String {
    let (date, _) = utc_time_parts(unix);
    date.trim_end_matches(',').to_string()
}

/// The users list's filter form, as the query string set it (`""`: any).
pub struct ListForm<'a> {
    pub search: &'a str,
    /// "all", "active" or "deleted".
    pub state: &'a str,
    /// "", "yes" or "no".
    pub staff: &'a str,
    pub group: &'a str,
    /// "", "on" or "off".
    pub mfa: &'a str,
    /// "", "yes" or "no".
    pub verified: &'a str,
    pub sort: &'a str,
    /// "asc" or "desc".
    pub order: &'a str,
    /// A page size other than the default, kept by the form.
    pub per: Option<usize>,
}

/// Why one user of a bulk change was not changed (a code in the summary's URL, so the list
/// after the redirect says only words of ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkFailure {
    Gone,
    Throttled,
    Refused,
    Failed,
}

impl BulkFailure {
    const ALL: [BulkFailure; 4] = [
        BulkFailure::Gone,
        BulkFailure::Throttled,
        BulkFailure::Refused,
        BulkFailure::Failed,
    ];

    /// The failure an operation's error is.
    pub fn of(e: &crate::error::ApiError) -> BulkFailure {
        use crate::error::ApiError as E;
        match e {
            E::NoUser | E::UserNotFound | E::NotFound => BulkFailure::Gone,
            E::Throttled(_) => BulkFailure::Throttled,
            e if e.to_response().status < 500 => BulkFailure::Refused,
            _ => BulkFailure::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BulkFailure::Gone => "gone",
            BulkFailure::Throttled => "throttled",
            BulkFailure::Refused => "refused",
            BulkFailure::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<BulkFailure> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }

    pub fn text(self) -> &'static str {
        match self {
            BulkFailure::Gone => "there is no such user any more.",
            BulkFailure::Throttled => {
                "too many mails were asked for at once; try again in a few minutes."
            }
            BulkFailure::Refused => "the change was refused; open the user to make it there.",
            BulkFailure::Failed => "it could not be saved (the problem is logged); try again.",
        }
    }
}

/// What a bulk change did, said above the list after the redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkDone {
    /// The bulk action's name ("deactivate", "add-group", …).
    pub action: String,
    pub changed: usize,
    /// The first failures, by user id.
    pub failed: Vec<(u64, BulkFailure)>,
    /// Failures past the listed ones.
    pub more_failed: usize,
}

/// The bulk actions a summary may name.
const BULK_ACTIONS: [&str; 5] = [
    "deactivate",
    "restore",
    "add-group",
    "remove-group",
    "reset-mail",
];

impl BulkDone {
    /// The summary as query parameters, listing at most `listed` failures.
    pub fn query(&self, listed: usize) -> String {
        let failed: Vec<String> = self
            .failed
            .iter()
            .take(listed)
            .map(|(id, why)| format!("{id}.{}", why.as_str()))
            .collect();
        let more = self.failed.len().saturating_sub(listed) + self.more_failed;
        let mut out = format!("bulk={}&changed={}", self.action, self.changed);
        if !failed.is_empty() {
            out.push_str(&format!("&failed={}", failed.join("~")));
        }
        if more > 0 {
            out.push_str(&format!("&more={more}"));
        }
        out
    }

    /// The summary in a list URL's `query`, if it holds a well-formed one (anything else is
    /// no summary).
    pub fn parse(query: &str) -> Option<BulkDone> {
        let mut bulk = None;
        let mut changed = None;
        let mut failed = Vec::new();
        let mut more = 0;
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "bulk" => bulk = BULK_ACTIONS.into_iter().find(|a| *a == v),
                "changed" => changed = v.parse::<usize>().ok(),
                "more" => more = v.parse::<usize>().ok()?,
                "failed" => {
                    failed = v
                        .split('~')
                        .take(500)
                        .map(|item| {
                            let (id, why) = item.split_once('.')?;
                            Some((id.parse::<u64>().ok()?, BulkFailure::parse(why)?))
                        })
                        .collect::<Option<Vec<_>>>()?;
                }
                _ => {}
            }
        }
        Some(BulkDone {
            action: bulk?.to_string(),
            changed: changed?,
            failed,
            more_failed: more,
        })
    }

    /// "3 users were deactivated." and the like.
    pub fn text(&self) -> String {
        let n = self.changed;
        let users = if n == 1 {
            "1 user was".to_string()
        } else {
            format!("{} users were", grouped(n))
        };
        let what = match self.action.as_str() {
            "deactivate" => "deactivated and signed out everywhere",
            "restore" => "restored",
            "add-group" => "added to the group (or were in it already)",
            "remove-group" => "removed from the group (or were not in it)",
            _ => "mailed a password-reset link (when their account is active)",
        };
        format!("{users} {what}.")
    }

    fn failures(&self) -> usize {
        self.failed.len() + self.more_failed
    }
}

/// The users list (`users/`).
#[derive(Template)]
#[template(path = "console/users.html")]
pub struct UsersPage<'a> {
    pub frame: Frame<'a>,
    pub form: ListForm<'a>,
    pub rows: &'a [UserRow<'a>],
    /// "12 users", "More than 10,000 users".
    pub count: &'a str,
    pub next_url: Option<&'a str>,
    /// On a page after the first.
    pub first_url: Option<&'a str>,
    pub csv_url: &'a str,
    /// The list's query string, which the bulk form comes back to.
    pub back: &'a str,
    /// An `after=` that did not fit was dropped: this is the first page.
    pub dropped_cursor: bool,
    pub done: Option<&'a BulkDone>,
    /// A refused bulk form: why.
    pub errors: &'a [String],
    pub bulk_max: usize,
    pub recent_minutes: u64,
}

impl UsersPage<'_> {
    fn sel(&self, value: &str, current: &str) -> &'static str {
        if value == current {
            " selected"
        } else {
            ""
        }
    }
}

/// The users list.
pub fn users(v: &UsersPage) -> Result<String, RenderError> {
    Ok(v.render()?)
}

/// The 400 page of a users-list address the list cannot read.
#[derive(Template)]
#[template(path = "console/bad_query.html")]
pub struct BadListQuery<'a> {
    pub frame: Frame<'a>,
    pub why: &'a str,
}

/// The page of a malformed users-list address.
pub fn bad_list_query(v: &BadListQuery) -> Result<String, RenderError> {
    Ok(v.render()?)
}

/// A page that only says what went wrong: 403 (not staff, or a refused CSRF check), 404.
#[derive(Template)]
#[template(path = "console/problem.html")]
pub struct Problem<'a> {
    pub frame: Frame<'a>,
    pub status: u16,
    /// Django's CSRF reason, for a refused form.
    pub reason: Option<&'a str>,
}

impl Problem<'_> {
    fn title(&self) -> &'static str {
        match (self.status, self.reason) {
            (403, Some(_)) => "The form was refused",
            (403, None) => "This page is for staff only",
            (404, _) => "Page not found",
            _ => "Something went wrong",
        }
    }
}

/// The page of a 403 or a 404.
pub fn problem(v: &Problem) -> Result<String, RenderError> {
    Ok(v.render()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::html_checks::assert_fields_labelled;

    fn frame(name: &'static str) -> Frame<'static> {
        Frame {
            brand: "gatehouse",
            web_prefix: "/accounts/",
            prefix: "/admin/",
            custom_css: false,
            csrf_token: "tok",
            signed_in_as: name,
        }
    }

    const NASTY: &str = "<script>alert(1)</script>\"'&";

    fn user_page<'a>(
        devices: &'a [DeviceRow<'a>],
        events: &'a [EventRow<'a>],
        groups: &'a [String],
    ) -> UserPage<'a> {
        UserPage {
            frame: frame(NASTY),
            id: 7,
            username: NASTY,
            email: "a<b>@example.com",
            first_name: NASTY,
            last_name: "",
            email_verified: false,
            is_active: true,
            is_staff: false,
            groups,
            two_factor: true,
            date_joined: 1_800_000_000,
            last_login: None,
            deleted_at: None,
            devices,
            events,
            events_capped: true,
            keys: &KEYS,
            is_service: false,
            key_form: KeyForm::default(),
            edit: EditForm {
                username: NASTY,
                email: "a<b>@example.com",
                first_name: NASTY,
                last_name: "",
                errors: &NO_ERRORS,
            },
            notice: Some(Done::Access.text()),
            errors: &[],
            recent_minutes: 10,
        }
    }

    static NO_ERRORS: FieldErrors = FieldErrors::new();

    /// A live key and a revoked one.
    static KEYS: [KeyRow<'static>; 2] = [
        KeyRow {
            id: "k1",
            name: NASTY,
            prefix: "gk_abcde",
            created: 1_800_000_000,
            expires_at: 1_810_000_000,
            last_used: Some(1_800_000_500),
            revoked: None,
        },
        KeyRow {
            id: "k2",
            name: "old",
            prefix: "gk_fghij",
            created: 1_790_000_000,
            expires_at: 1_810_000_000,
            last_used: None,
            revoked: Some(1_800_000_000),
        },
    ];

    #[test]
    fn the_user_page_lists_keys_with_a_revoke_form_for_live_ones_only() {
        let page = user(&user_page(&[], &[], &[])).expect("user");
        assert_eq!(page.matches("value=\"revoke-key\"").count(), 1, "{page}");
        assert!(page.contains("value=\"k1\"") && !page.contains("value=\"k2\""));
        assert!(page.contains("gk_abcde") && page.contains("gk_fghij"));
        assert!(!page.contains(NASTY), "the key's name is escaped");
    }

    /// Every page, as the tests see them.
    fn all_pages() -> Vec<(&'static str, String)> {
        let groups = vec![NASTY.to_string()];
        let devices = [DeviceRow {
            id: "abc123",
            kind: "Browser",
            device: NASTY.into(),
            created: 1_800_000_000,
            last_seen: 1_800_000_100,
            address: "127.0.0.1",
        }];
        let events = [EventRow {
            time: 1_800_000_000_000,
            action: "admin.user_changed",
            actor: NASTY,
            address: "",
        }];
        let newest = [NewUser {
            id: 3,
            username: NASTY,
            joined: 1_800_000_000,
        }];
        let carried = vec![
            (ACTION_FIELD.to_string(), "access".to_string()),
            ("groups".to_string(), NASTY.to_string()),
        ];
        let mut errors = FieldErrors::new();
        errors.insert("password".into(), vec![NASTY.into()]);
        let mut out = vec![
            (
                "home",
                home(&Home {
                    frame: frame(NASTY),
                    active: 12_345,
                    inactive: 2,
                    signups_week: COUNT_CAP + 1,
                    failed_sign_ins_week: 3,
                    newest: &newest,
                })
                .expect("home"),
            ),
            (
                "user",
                user(&user_page(&devices, &events, &groups)).expect("user"),
            ),
            (
                "reauth",
                reauth(&Reauth {
                    frame: frame(NASTY),
                    action_url: "/admin/users/7/",
                    what: "deactivate this user",
                    carried: &carried,
                    asks_code: true,
                    recent_minutes: 10,
                    errors: &errors,
                })
                .expect("reauth"),
            ),
        ];
        for (name, status, reason) in [
            ("403", 403, None),
            ("csrf", 403, Some(NASTY)),
            ("404", 404, None),
        ] {
            out.push((
                name,
                problem(&Problem {
                    frame: frame(NASTY),
                    status,
                    reason,
                })
                .expect("problem"),
            ));
        }
        out
    }

    #[test]
    fn what_users_typed_comes_out_escaped_on_every_page() {
        for (name, html) in all_pages() {
            assert!(!html.contains("<script>"), "{name}: {html}");
            assert!(!html.contains(NASTY), "{name}");
            assert!(
                html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
                    || html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
                "{name}: {html}"
            );
            assert!(!html.contains(" style="), "{name}");
            assert!(!html.contains("<style"), "{name}");
            assert!(html.starts_with("<!doctype html>"), "{name}");
            assert!(html.contains("/accounts/static/gatehouse.css"), "{name}");
            assert!(html.contains("<h1"), "{name}");
        }
    }

    #[test]
    fn every_form_posts_with_the_csrf_token_and_labels_its_inputs() {
        for (name, html) in all_pages() {
            let forms = html.matches("<form").count();
            assert_eq!(
                html.matches("name=\"csrfmiddlewaretoken\" value=\"tok\"")
                    .count(),
                forms,
                "{name}"
            );
            assert_eq!(html.matches("method=\"post\"").count(), forms, "{name}");
            assert_fields_labelled(name, &html);
        }
    }

    #[test]
    fn the_user_page_offers_what_fits_the_user() {
        let groups = vec!["ops".to_string(), "billing".to_string()];
        let mut v = user_page(&[], &[], &groups);
        let html = user(&v).expect("user");
        assert!(html.contains("value=\"ops, billing\""), "{html}");
        assert!(html.contains("value=\"deactivate\""));
        assert!(!html.contains("value=\"restore\""));
        assert!(html.contains("value=\"mfa-reset\""));
        assert!(html.contains("value=\"verify-mail\""), "unverified");
        assert!(html.contains("value=\"edit\""));
        assert!(
            !html.contains("/admin/audit/?target="),
            "no events, no link"
        );
        assert!(!html.contains("value=\"end-all\""), "no devices");
        assert!(html.contains(Done::Access.text()));
        let devices = [DeviceRow {
            id: "fam-1",
            kind: "App",
            device: "curl".into(),
            created: 1_800_000_000,
            last_seen: 1_800_000_000,
            address: "",
        }];
        let mut errors = FieldErrors::new();
        errors.insert("username".into(), vec!["taken <b>".into()]);
        let events = [EventRow {
            time: 1_800_000_000_000,
            action: "user.restored",
            actor: "root",
            address: "",
        }];
        let with = UserPage {
            devices: &devices,
            events: &events,
            edit: EditForm {
                errors: &errors,
                ..user_page(&[], &[], &groups).edit
            },
            ..user_page(&[], &[], &groups)
        };
        let html = user(&with).expect("user");
        assert!(html.contains("value=\"end-all\""));
        assert!(html.contains("href=\"/admin/audit/?target=7\""));
        assert!(html.contains("name=\"device\" value=\"fam-1\""));
        assert!(html.contains("taken &#60;b&#62;") || html.contains("taken &lt;b&gt;"));
        assert!(html.contains("aria-invalid=\"true\""));
        v.email_verified = true;
        assert!(!user(&v).expect("user").contains("value=\"verify-mail\""));
        v.email_verified = false;
        v.is_active = false;
        v.two_factor = false;
        v.deleted_at = Some(1_800_000_500);
        v.notice = None;
        let html = user(&v).expect("user");
        assert!(!html.contains("value=\"deactivate\""));
        assert!(html.contains("value=\"restore\""));
        assert!(!html.contains("value=\"mfa-reset\""));
        assert!(
            !html.contains("value=\"verify-mail\""),
            "no mail to the deactivated"
        );
        assert!(html.contains("Deactivated"));
        let gone = UserPage {
            is_active: false,
            ..with
        };
        let html = user(&gone).expect("user");
        assert!(!html.contains("value=\"end-all\""), "every sign-in is dead");
        assert!(!html.contains("value=\"end-device\""));
    }

    fn users_page(rows: &[UserRow<'_>], done: Option<&BulkDone>) -> String {
        users(&UsersPage {
            frame: frame(NASTY),
            form: ListForm {
                search: NASTY,
                state: "deleted",
                staff: "yes",
                group: NASTY,
                mfa: "",
                verified: "no",
                sort: "username",
                order: "desc",
                per: Some(20),
            },
            rows,
            count: "1 user",
            next_url: Some("/admin/users/?after=3&q=%3C"),
            first_url: None,
            csv_url: "/admin/users.csv?q=%3C",
            back: "q=%3C",
            dropped_cursor: true,
            done,
            errors: &[],
            bulk_max: 500,
            recent_minutes: 10,
        })
        .expect("users")
    }

    #[test]
    fn the_users_list_escapes_labels_and_keeps_its_filters() {
        let groups = vec![NASTY.to_string()];
        let rows = [UserRow {
            id: 3,
            username: NASTY,
            email: NASTY,
            first_name: NASTY,
            last_name: "",
            is_active: false,
            is_staff: true,
            groups: &groups,
            two_factor: true,
            email_verified: false,
            date_joined: 1_800_000_000,
            last_login: None,
            is_service: true,
        }];
        let done = BulkDone {
            action: "deactivate".into(),
            changed: 2,
            failed: vec![(9, BulkFailure::Gone)],
            more_failed: 1,
        };
        assert!(
            users_page(&rows, None).contains("<span class=\"badge\">Service account</span>"),
            "a service account says so in the list"
        );
        for (name, html) in [
            ("users", users_page(&rows, Some(&done))),
            ("no users", users_page(&[], None)),
        ] {
            assert!(!html.contains("<script>"), "{html}");
            assert!(!html.contains(" style="));
            assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
            assert_fields_labelled(name, &html);
            assert!(html.contains("<option value=\"deleted\" selected>"));
            assert!(html.contains("<option value=\"username\" selected>"));
            assert!(html.contains("<option value=\"desc\" selected>"));
            assert!(html.contains("name=\"per\" value=\"20\""));
            assert!(html.contains("does not fit this list"));
        }
        let html = users_page(&rows, Some(&done));
        assert_eq!(html.matches("method=\"post\"").count(), 1, "the bulk form");
        assert_eq!(
            html.matches("name=\"csrfmiddlewaretoken\" value=\"tok\"")
                .count(),
            1
        );
        assert!(html.contains("2 users were deactivated"));
        assert!(html.contains("/admin/users/9/") && html.contains("and 1 more."));
        assert!(html.contains("value=\"3\" id=\"pick-3\""));
        let empty = users_page(&[], None);
        assert!(empty.contains("No user matches."));
        assert!(
            !empty.contains("method=\"post\""),
            "nothing to select, no bulk form"
        );
    }

    #[test]
    fn bulk_summaries_go_through_the_address_and_nothing_else_does() {
        let done = BulkDone {
            action: "add-group".into(),
            changed: 3,
            failed: vec![(4, BulkFailure::Throttled), (5, BulkFailure::Refused)],
            more_failed: 0,
        };
        let q = done.query(50);
        assert_eq!(q, "bulk=add-group&changed=3&failed=4.throttled~5.refused");
        assert_eq!(BulkDone::parse(&format!("q=x&{q}")), Some(done.clone()));
        let short = done.query(1);
        assert_eq!(short, "bulk=add-group&changed=3&failed=4.throttled&more=1");
        assert_eq!(BulkDone::parse(&short).map(|d| d.more_failed), Some(1));
        for bad in [
            "bulk=explode&changed=1",
            "bulk=restore",
            "bulk=restore&changed=x",
            "bulk=restore&changed=1&failed=4.hacked",
            "bulk=restore&changed=1&failed=%3Cb%3E.gone",
            "changed=1",
        ] {
            assert_eq!(BulkDone::parse(bad), None, "{bad}");
        }
        assert_eq!(
            BulkFailure::of(&crate::error::ApiError::NoUser),
            BulkFailure::Gone
        );
        assert_eq!(
            BulkFailure::of(&crate::error::ApiError::Throttled(5)),
            BulkFailure::Throttled
        );
        assert_eq!(
            BulkFailure::of(&crate::error::ApiError::field("groups", "x")),
            BulkFailure::Refused
        );
    }

    #[test]
    fn counts_read_as_people_write_them() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(capped(COUNT_CAP), "10,000");
        assert_eq!(capped(COUNT_CAP + 1), "10,000+");
        assert_eq!(day_of(1_800_000_000), "15 Jan 2027");
        for d in Done::ALL {
            assert_eq!(Done::parse(d.as_str()), Some(d));
        }
        assert_eq!(Done::parse("nope"), None);
    }
}
