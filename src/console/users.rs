//! The users list (`users/`), its bulk actions (a POST to the same address) and its CSV export
//! (`users.csv`, streamed). The query string is read by [`parse_list`], a plain function; every
//! bulk change goes through the re-authentication step and then, user by user, through the
//! admin API's own operations (`accounts::change_access`, `restore`,
//! `request_password_reset`).

use super::csv;
use super::reauth;
use super::render::{self, BulkDone, BulkFailure, UserRow, ACTION_FIELD};
use crate::accounts::{self, Actor, GroupsEdit};
use crate::app::App;
use crate::auth::Identity;
use crate::error::ApiError;
use crate::response::{BodyStream, Chunk, Response, CSV};
use crate::store::{
    StateFilter, User, UserBatches, UserCount, UserCursor, UserQuery, UserSort, UserStore,
    GROUP_NAME_MAX,
};
use crate::web::kit::{self, Csrf, PageRequest};
use futures_util::future::join_all;
use serde_json::{Map, Value};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Rows per page unless `per=` says otherwise.
pub const PER_PAGE: usize = 50;
/// The most rows `per=` may ask for.
pub const MAX_PER_PAGE: usize = 200;
/// The longest search the list takes (characters).
pub const SEARCH_MAX: usize = 200;
/// The most users one bulk post may change.
pub const BULK_MAX: usize = 500;
/// Users the CSV export reads per store page (one chunk of the body).
const CSV_BATCH: usize = 500;
/// Chunks the CSV export makes ahead of a slow client.
const CSV_AHEAD: usize = 2;
/// Bulk changes under way at once (a reset mail waits out the answer floor).
const BULK_AT_ONCE: usize = 8;
/// Failures a bulk summary lists by user (the rest are counted).
const FAILURES_LISTED: usize = 50;

/// The form field holding the selected user ids (one per ticked box).
pub const IDS_FIELD: &str = "ids";
/// The bulk form's group name.
pub const GROUP_FIELD: &str = "group";
/// The bulk form's list query, to come back to.
pub const BACK_FIELD: &str = "back";

/// What the list's query string asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub query: UserQuery,
    pub after: Option<UserCursor>,
    pub per: usize,
    /// An `after=` was given that is no cursor of this sort (mistyped, or a link from another
    /// sort): the first page is shown, with a word about it.
    pub dropped_cursor: bool,
}

impl Default for ListQuery {
    /// The first page of everyone, by id.
    fn default() -> Self {
        ListQuery {
            query: UserQuery::default(),
            after: None,
            per: PER_PAGE,
            dropped_cursor: false,
        }
    }
}

/// A query string the list cannot read: its 400 page says this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadQuery(pub String);

/// `query` (the raw query string) read into the list it asks for.
///
/// Decided here: a filter, sort, order or `per=` value that is not one of the documented ones
/// is a 400 page naming the parameter and what it takes (a typo should not silently show
/// another list, least of all before a bulk action or an export). An `after=` that is no
/// cursor of the sort (malformed, huge, from another sort) shows the first page with a notice:
/// a stale link still leads somewhere useful. Empty values mean "any" (a GET form sends its
/// empty selects); parameters the list does not know (`page=`, `utm_…`) are ignored; a
/// repeated one counts by its last value, as Django's `QueryDict.get`.
pub fn parse_list(query: &str) -> Result<ListQuery, BadQuery> {
    let mut params: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        params.retain(|(have, _)| *have != k);
        params.push((k.into_owned(), v.into_owned()));
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let yes_no = |name: &str, yes: &str, no: &str| -> Result<Option<bool>, BadQuery> {
        match get(name) {
            None => Ok(None),
            Some(v) if v == yes => Ok(Some(true)),
            Some(v) if v == no => Ok(Some(false)),
            Some(_) => Err(BadQuery(format!(
                "The filter “{name}” takes “{yes}”, “{no}” or nothing."
            ))),
        }
    };
    let search = get("q").map(str::to_string);
    if search
        .as_ref()
        .is_some_and(|s| s.chars().count() > SEARCH_MAX)
    {
        return Err(BadQuery(format!(
            "The search is longer than {SEARCH_MAX} characters."
        )));
    }
    let state = match get("state") {
        None | Some("all") => StateFilter::All,
        Some("active") => StateFilter::Active,
        Some("deleted") => StateFilter::Inactive,
        Some(_) => {
            return Err(BadQuery(
                "The filter “state” takes “all”, “active” or “deleted”.".into(),
            ))
        }
    };
    let group = get("group").map(str::to_string);
    if group
        .as_ref()
        .is_some_and(|g| g.chars().count() > GROUP_NAME_MAX)
    {
        return Err(BadQuery(format!(
            "A group name is at most {GROUP_NAME_MAX} characters."
        )));
    }
    let sort = match get("sort") {
        None => UserSort::Id,
        Some(s) => UserSort::parse(s).ok_or_else(|| {
            BadQuery("The list sorts by “id”, “username”, “date_joined” or “last_login”.".into())
        })?,
    };
    let desc = match get("order") {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(BadQuery("The order is “asc” or “desc”.".into())),
    };
    let per = match get("per") {
        None => PER_PAGE,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PER_PAGE).contains(n))
            .ok_or_else(|| {
                BadQuery(format!(
                    "“per” is the number of users a page shows, from 1 to {MAX_PER_PAGE}."
                ))
            })?,
    };
    let query = UserQuery {
        search,
        state,
        staff: yes_no("staff", "yes", "no")?,
        group,
        mfa: yes_no("mfa", "on", "off")?,
        verified: yes_no("verified", "yes", "no")?,
        sort,
        desc,
    };
    let after_text = get("after");
    let after = after_text.and_then(|a| UserCursor::decode(a, sort));
    Ok(ListQuery {
        dropped_cursor: after_text.is_some() && after.is_none(),
        query,
        after,
        per,
    })
}

/// The query string of `list` starting after `after` (only what differs from the defaults,
/// so links stay short): what the list's links, its export and its bulk form carry.
pub fn query_string(list: &ListQuery, after: Option<&UserCursor>) -> String {
    let q = &list.query;
    let mut out = form_urlencoded::Serializer::new(String::new());
    let mut put = |k: &str, v: &str| {
        out.append_pair(k, v);
    };
    if let Some(s) = &q.search {
        put("q", s);
    }
    match q.state {
        StateFilter::All => {}
        StateFilter::Active => put("state", "active"),
        StateFilter::Inactive => put("state", "deleted"),
    }
    let pick =
        |b: Option<bool>, yes: &'static str, no: &'static str| b.map(|b| if b { yes } else { no });
    if let Some(v) = pick(q.staff, "yes", "no") {
        put("staff", v);
    }
    if let Some(g) = &q.group {
        put("group", g);
    }
    if let Some(v) = pick(q.mfa, "on", "off") {
        put("mfa", v);
    }
    if let Some(v) = pick(q.verified, "yes", "no") {
        put("verified", v);
    }
    if q.sort != UserSort::Id {
        put("sort", q.sort.as_str());
    }
    if q.desc {
        put("order", "desc");
    }
    if list.per != PER_PAGE {
        put("per", &list.per.to_string());
    }
    if let Some(c) = after {
        put("after", &c.encode());
    }
    out.finish()
}

/// The list page (GET `users/`).
pub(super) async fn list(app: &App, p: &PageRequest<'_>, who: &Identity, csrf: &Csrf) -> Response {
    let list = match parse_list(&p.req.query) {
        Ok(list) => list,
        Err(BadQuery(why)) => return bad_query(app, who, csrf, &why),
    };
    let done = BulkDone::parse(&p.req.query);
    view(app, who, csrf, &list, done.as_ref(), &[], 200).await
}

/// The 400 page of a query string the list cannot read.
fn bad_query(app: &App, who: &Identity, csrf: &Csrf, why: &str) -> Response {
    let token = csrf.token();
    kit::rendered(
        400,
        render::bad_list_query(&render::BadListQuery {
            frame: super::frame(app, &who.username, &token),
            why,
        }),
    )
}

/// The list page of `list`, with a bulk summary or errors above it.
async fn view(
    app: &App,
    who: &Identity,
    csrf: &Csrf,
    list: &ListQuery,
    done: Option<&BulkDone>,
    errors: &[String],
    status: u16,
) -> Response {
    let store = &app.store;
    let found = async {
        // The page and its count are independent reads: asked at once (PostgreSQL: two
        // connections), the page waits for the slower, not for both.
        let (page, count) = tokio::try_join!(
            store.query_users(&list.query, list.after.as_ref(), list.per),
            store.count_query(&list.query)
        )?;
        let ids: Vec<u64> = page.users.iter().map(|u| u.id).collect();
        let factors = store.factors_on(&ids).await?;
        Ok::<_, crate::store::StoreError>((page, count, factors))
    };
    let (page, count, factors) = match found.await {
        Ok(found) => found,
        Err(e) => return kit::rendered_error(app, &ApiError::from(e)),
    };
    let rows: Vec<UserRow<'_>> = page
        .users
        .iter()
        .zip(&factors)
        .map(|(u, two_factor)| UserRow {
            id: u.id,
            username: &u.username,
            email: &u.email,
            first_name: &u.first_name,
            last_name: &u.last_name,
            is_active: u.is_active,
            is_staff: u.is_staff,
            groups: &u.groups,
            two_factor: *two_factor,
            email_verified: u.email_verified,
            date_joined: u.date_joined,
            last_login: u.last_login,
            is_service: u.is_service,
        })
        .collect();
    let prefix = &app.config.console.prefix;
    let here = query_string(list, None);
    let with = |q: &str| match q {
        "" => format!("{prefix}users/"),
        q => format!("{prefix}users/?{q}"),
    };
    let next_url = page
        .next
        .as_ref()
        .map(|c| with(&query_string(list, Some(c))));
    let first_url = list.after.is_some().then(|| with(&here));
    let csv_url = match here.as_str() {
        "" => format!("{prefix}users.csv"),
        q => format!("{prefix}users.csv?{q}"),
    };
    let count_text = match count {
        UserCount::Exact(1) => "1 user".to_string(),
        UserCount::Exact(n) => format!("{} users", render::grouped(n)),
        UserCount::AtLeast(n) => format!("More than {} users", render::grouped(n)),
        UserCount::About(n) => format!("About {} users", render::grouped(n)),
    };
    let token = csrf.token();
    let q = &list.query;
    let form = render::ListForm {
        search: q.search.as_deref().unwrap_or(""),
        state: match q.state {
            StateFilter::All => "all",
            StateFilter::Active => "active",
            StateFilter::Inactive => "deleted",
        },
        staff: tri(q.staff, "yes", "no"),
        group: q.group.as_deref().unwrap_or(""),
        mfa: tri(q.mfa, "on", "off"),
        verified: tri(q.verified, "yes", "no"),
        sort: q.sort.as_str(),
        order: if q.desc { "desc" } else { "asc" },
        per: (list.per != PER_PAGE).then_some(list.per),
    };
    kit::rendered(
        status,
        render::users(&render::UsersPage {
            frame: super::frame(app, &who.username, &token),
            form,
            rows: &rows,
            count: &count_text,
            next_url: next_url.as_deref(),
            first_url: first_url.as_deref(),
            csv_url: &csv_url,
            back: &here,
            dropped_cursor: list.dropped_cursor,
            done,
            errors,
            bulk_max: BULK_MAX,
            recent_minutes: app.config.console.recent_sign_in_minutes,
        }),
    )
}

fn tri(b: Option<bool>, yes: &'static str, no: &'static str) -> &'static str {
    match b {
        None => "",
        Some(true) => yes,
        Some(false) => no,
    }
}

/// What a bulk form asks to do to every selected user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkAction {
    Deactivate,
    Restore,
    AddGroup(String),
    RemoveGroup(String),
    ResetMail,
}

impl BulkAction {
    /// The value of the form's [`ACTION_FIELD`] (and of the summary's `bulk=`).
    pub fn as_str(&self) -> &'static str {
        match self {
            BulkAction::Deactivate => "deactivate",
            BulkAction::Restore => "restore",
            BulkAction::AddGroup(_) => "add-group",
            BulkAction::RemoveGroup(_) => "remove-group",
            BulkAction::ResetMail => "reset-mail",
        }
    }

    /// Completes "To …, enter your password" for `n` users.
    pub fn describe(&self, n: usize) -> String {
        let users = if n == 1 {
            "1 user".to_string()
        } else {
            format!("{n} users")
        };
        match self {
            BulkAction::Deactivate => format!("deactivate {users}"),
            BulkAction::Restore => format!("restore {users}"),
            BulkAction::AddGroup(g) => format!("add {users} to the group {g}"),
            BulkAction::RemoveGroup(g) => format!("remove {users} from the group {g}"),
            BulkAction::ResetMail => format!("mail {users} a password-reset link"),
        }
    }
}

/// A bulk post, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bulk {
    pub action: BulkAction,
    /// Distinct, in the order ticked.
    pub ids: Vec<u64>,
    /// The list's query string to come back to (re-read, so only a valid one).
    pub back: String,
}

impl Bulk {
    /// The form fields that post this again (the re-authentication page carries them).
    pub fn fields(&self) -> Vec<(String, String)> {
        let mut out = vec![(ACTION_FIELD.to_string(), self.action.as_str().to_string())];
        if let BulkAction::AddGroup(g) | BulkAction::RemoveGroup(g) = &self.action {
            out.push((GROUP_FIELD.to_string(), g.clone()));
        }
        out.extend(
            self.ids
                .iter()
                .map(|id| (IDS_FIELD.to_string(), id.to_string())),
        );
        out.push((BACK_FIELD.to_string(), self.back.clone()));
        out
    }
}

/// A bulk form's fields (`pairs`, in the order posted, a ticked box each) read into what it
/// asks, or the message saying why it cannot be done (nothing is changed then).
pub fn parse_bulk(pairs: &[(String, String)]) -> Result<Bulk, String> {
    let last = |name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .unwrap_or("")
    };
    let back = parse_list(last(BACK_FIELD))
        .map(|l| query_string(&l, None))
        .unwrap_or_default();
    let group = || -> Result<String, String> {
        let g = last(GROUP_FIELD);
        if g.is_empty() {
            return Err("Name the group.".into());
        }
        if g.chars().count() > GROUP_NAME_MAX {
            return Err(format!(
                "A group name is at most {GROUP_NAME_MAX} characters."
            ));
        }
        Ok(g.to_string())
    };
    let action = match last(ACTION_FIELD) {
        "deactivate" => BulkAction::Deactivate,
        "restore" => BulkAction::Restore,
        "add-group" => BulkAction::AddGroup(group()?),
        "remove-group" => BulkAction::RemoveGroup(group()?),
        "reset-mail" => BulkAction::ResetMail,
        "" => return Err("Choose what to do with the selected users.".into()),
        _ => return Err("That is not an action the list knows. Nothing was changed.".into()),
    };
    let mut ids: Vec<u64> = Vec::new();
    for (_, v) in pairs.iter().filter(|(k, _)| k == IDS_FIELD) {
        let id = v
            .parse::<u64>()
            .ok()
            .filter(|id| *id > 0 && v.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| "A selected user is not a user id. Nothing was changed.".to_string())?;
        if !ids.contains(&id) {
            if ids.len() == BULK_MAX {
                return Err(format!(
                    "At most {BULK_MAX} users can be changed at once. Select fewer, or narrow the list with its filters. Nothing was changed."
                ));
            }
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Err("Select at least one user. Nothing was changed.".into());
    }
    Ok(Bulk { action, ids, back })
}

/// A bulk form (POST `users/`): after the password again when the sign-in is old, every
/// selected user through the admin API's operation, then back to the list with a summary.
pub(super) async fn act(app: &App, p: &PageRequest<'_>, who: &Identity, csrf: &Csrf) -> Response {
    let data = match p.req.data() {
        Ok(data) => data,
        // Not a form at all (no browser sends this): DRF's parse error, not an empty form.
        Err(e) => return e.to_response(),
    };
    let pairs: Vec<(String, String)> = if crate::api::body::is_form(p.req.content_type.as_deref()) {
        form_urlencoded::parse(&p.req.body).into_owned().collect()
    } else {
        data.iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect()
    };
    // The list the form was posted from, to show again with a refusal (a bad one: everyone).
    let back = parse_list(&kit::field(&data, BACK_FIELD)).unwrap_or_default();
    let bulk = match parse_bulk(&pairs) {
        Ok(bulk) => bulk,
        Err(why) => return view(app, who, csrf, &back, None, &[why], 400).await,
    };
    let prefix = &app.config.console.prefix;
    let action_url = format!("{prefix}users/");
    let asked = reauth::Asked {
        action_url: &action_url,
        what: &bulk.action.describe(bulk.ids.len()),
        carried: &bulk.fields(),
    };
    if let Some(page) = reauth::cleared(app, p, who, csrf, &data, &asked).await {
        return page;
    }
    let me = kit::actor(p, Some(who));
    let outcome = carry_out(app, &me, &bulk).await;
    if outcome.changed == 0 {
        if let Some(messages) = outcome.refused_input {
            // The operation refused the input itself (its own messages), before any write.
            return view(app, who, csrf, &back, None, &messages, 400).await;
        }
    }
    let done = BulkDone {
        action: bulk.action.as_str().to_string(),
        changed: outcome.changed,
        failed: outcome.failed,
        more_failed: 0,
    };
    let mut to = format!("{prefix}users/?");
    if !bulk.back.is_empty() {
        to.push_str(&bulk.back);
        to.push('&');
    }
    to.push_str(&done.query(FAILURES_LISTED));
    Response::redirect(303, to)
}

/// What a bulk change did.
struct Outcome {
    changed: usize,
    /// By id.
    failed: Vec<(u64, BulkFailure)>,
    /// The operation's messages when it refused the input as such (a field error).
    refused_input: Option<Vec<String>>,
}

async fn carry_out(app: &App, me: &Actor, bulk: &Bulk) -> Outcome {
    let mut results: Vec<(u64, Result<(), ApiError>)> = Vec::with_capacity(bulk.ids.len());
    for ids in bulk.ids.chunks(BULK_AT_ONCE) {
        let done = join_all(ids.iter().map(|id| one(app, me, &bulk.action, *id))).await;
        results.extend(ids.iter().copied().zip(done));
    }
    let mut outcome = Outcome {
        changed: 0,
        failed: Vec::new(),
        refused_input: None,
    };
    for (id, result) in results {
        match result {
            Ok(()) => outcome.changed += 1,
            Err(e) => {
                if matches!(e, ApiError::Validation(_) | ApiError::NonField(_)) {
                    outcome.refused_input = Some(messages_of(&e));
                }
                if !matches!(
                    e,
                    ApiError::NoUser
                        | ApiError::UserNotFound
                        | ApiError::NotFound
                        | ApiError::Throttled(_)
                        | ApiError::Validation(_)
                        | ApiError::NonField(_)
                ) {
                    log::warn!(
                        "console: a bulk change of user {id} failed: {}",
                        kit::detail(&e)
                    );
                }
                outcome.failed.push((id, BulkFailure::of(&e)));
            }
        }
    }
    outcome.failed.sort_by_key(|(id, _)| *id);
    outcome
}

/// The operation's messages, as the user page shows them.
fn messages_of(e: &ApiError) -> Vec<String> {
    super::lines(kit::field_errors(e))
}

/// `action` on user `id`, by the admin API's operation.
async fn one(app: &App, me: &Actor, action: &BulkAction, id: u64) -> Result<(), ApiError> {
    let mut input = Map::new();
    match action {
        BulkAction::Deactivate => {
            input.insert("is_active".into(), Value::Bool(false));
            accounts::change_access(app, me, id, &input).await?;
        }
        BulkAction::Restore => {
            accounts::restore(app, me, id).await?;
        }
        // Applied to the groups the user has at the write: a change made meanwhile is kept.
        BulkAction::AddGroup(g) => {
            accounts::change_groups(app, me, id, &GroupsEdit::Add(g.clone())).await?;
        }
        BulkAction::RemoveGroup(g) => {
            accounts::change_groups(app, me, id, &GroupsEdit::Remove(g.clone())).await?;
        }
        BulkAction::ResetMail => {
            let user = app.store.get_user(id).await?.ok_or(ApiError::NoUser)?;
            input.insert("email".into(), Value::String(user.email));
            accounts::request_password_reset(app, me, &input).await?;
        }
    }
    Ok(())
}

/// The CSV export (GET `users.csv`): the whole filtered list (the list's filters and sort;
/// `after=` and `per=` are ignored), streamed a store page at a time.
pub(super) async fn export(
    app: &App,
    p: &PageRequest<'_>,
    who: &Identity,
    csrf: &Csrf,
) -> Response {
    let list = match parse_list(&p.req.query) {
        Ok(list) => list,
        Err(BadQuery(why)) => return bad_query(app, who, csrf, &why),
    };
    let (tx, stream) = BodyStream::channel(CSV_AHEAD);
    if !p.head_only {
        tokio::spawn(produce(app.store.clone(), list.query, tx));
    }
    let mut resp = Response::streamed(200, CSV, stream);
    for (name, value) in crate::web::SECURITY_HEADERS {
        resp.add_header(name, value);
    }
    resp.with_header("Content-Disposition", "attachment; filename=\"users.csv\"")
}

/// Writes the CSV of `query` into `tx`, a store page per chunk; stops when the client has
/// gone (the receiver is dropped) and ends the body unfinished on a store error.
async fn produce(store: Arc<dyn UserStore>, query: UserQuery, tx: mpsc::Sender<Chunk>) {
    if tx.send(Ok(csv::header().into())).await.is_err() {
        return;
    }
    let mut batches = UserBatches::new(store.as_ref(), query, CSV_BATCH);
    loop {
        let chunk = match batches.next_batch().await {
            Ok(None) => return,
            Ok(Some(users)) => rows(store.as_ref(), &users).await,
            Err(e) => Err(e),
        };
        let stop = chunk.is_err();
        let chunk = chunk.map(bytes::Bytes::from).map_err(|e| {
            log::error!("console: the users export stopped: {e}");
            e.to_string()
        });
        if tx.send(chunk).await.is_err() || stop {
            return;
        }
    }
}

async fn rows(store: &dyn UserStore, users: &[User]) -> Result<String, crate::store::StoreError> {
    let mut out = String::new();
    let ids: Vec<u64> = users.iter().map(|u| u.id).collect();
    for (u, on) in users.iter().zip(store.factors_on(&ids).await?) {
        out.push_str(&csv::row(u, on));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{test_user, SortKey};

    #[tokio::test]
    async fn the_export_comes_a_store_page_per_chunk_and_stops_when_the_client_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::SledStore::open(dir.path(), 1 << 20).expect("open");
        let users: Vec<User> = (1..=1_100)
            .map(|i| {
                let mut u = test_user(i, &format!("u{i}"), &format!("u{i}@example.com"));
                u.is_staff = i % 2 == 0;
                u
            })
            .collect();
        store.insert_users(users).await.expect("insert");
        let store: Arc<dyn UserStore> = Arc::new(store);
        let staff = UserQuery {
            staff: Some(true),
            ..UserQuery::default()
        };
        let (tx, stream) = BodyStream::channel(CSV_AHEAD);
        let producer = tokio::spawn(produce(store.clone(), staff, tx));
        let mut rx = stream.take().expect("the receiver");
        let mut chunks = Vec::new();
        while let Some(chunk) = rx.recv().await {
            chunks.push(chunk.expect("no store error"));
        }
        producer.await.expect("the producer ends");
        // The header, then 550 staff users in pages of 500.
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0], csv::header().as_bytes());
        let text: String = chunks[1..]
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let ids: Vec<u64> = text
            .lines()
            .filter_map(|l| l.split(',').next()?.parse().ok())
            .collect();
        assert_eq!(ids, (1..=550).map(|i| i * 2).collect::<Vec<u64>>());

        // A client that goes after the first chunk: the producer ends rather than waiting on.
        let (tx, stream) = BodyStream::channel(1);
        let producer = tokio::spawn(produce(store, UserQuery::default(), tx));
        let mut rx = stream.take().expect("the receiver");
        assert!(rx.recv().await.is_some());
        drop(rx);
        tokio::time::timeout(std::time::Duration::from_secs(10), producer)
            .await
            .expect("the producer stops")
            .expect("without panicking");
    }

    fn bad(q: &str) -> String {
        match parse_list(q) {
            Err(BadQuery(why)) => why,
            Ok(l) => panic!("{q} read as {l:?}"),
        }
    }

    #[test]
    fn the_query_string_reads_every_filter_and_writes_back_the_same() {
        let q = "q=al%20ice&state=deleted&staff=yes&group=ops&mfa=off&verified=no&sort=username&order=desc&per=20";
        let list = parse_list(q).expect("valid");
        assert_eq!(list.query.search.as_deref(), Some("al ice"));
        assert_eq!(list.query.state, StateFilter::Inactive);
        assert_eq!(
            (list.query.staff, list.query.mfa, list.query.verified),
            (Some(true), Some(false), Some(false))
        );
        assert_eq!(list.query.group.as_deref(), Some("ops"));
        assert_eq!(
            (list.query.sort, list.query.desc, list.per),
            (UserSort::Username, true, 20)
        );
        assert_eq!(query_string(&list, None), q.replace("%20", "+"));
        assert_eq!(parse_list(&query_string(&list, None)), Ok(list));
        let plain = parse_list("").expect("empty");
        assert_eq!(plain.query, UserQuery::default());
        assert_eq!(plain.per, PER_PAGE);
        assert_eq!(query_string(&plain, None), "");
    }

    #[test]
    fn empty_values_are_any_unknown_ones_ignored_and_the_last_repeat_counts() {
        let list = parse_list("q=&state=&staff=&mfa=&verified=&group=&sort=&order=&per=&page=99999999999999999999&utm=x")
            .expect("empty form");
        assert_eq!(list.query, UserQuery::default());
        let list = parse_list("staff=maybe&staff=no").expect("last wins");
        assert_eq!(list.query.staff, Some(false));
    }

    #[test]
    fn malformed_filters_sorts_and_sizes_are_refused_with_what_they_take() {
        assert!(bad("staff=maybe").contains("“staff”"));
        assert!(bad("mfa=yes").contains("“on”"));
        assert!(bad("verified=1").contains("“verified”"));
        assert!(bad("state=gone").contains("“deleted”"));
        assert!(bad("sort=email").contains("last_login"));
        assert!(bad("sort=id%27;drop").contains("sorts by"));
        assert!(bad("order=up").contains("“desc”"));
        for per in ["0", "201", "-1", "x", "99999999999999999999999"] {
            assert!(
                bad(&format!("per={per}")).contains("from 1 to 200"),
                "{per}"
            );
        }
        assert!(bad(&format!("q={}", "a".repeat(SEARCH_MAX + 1))).contains("search"));
        assert!(bad(&format!("group={}", "g".repeat(GROUP_NAME_MAX + 1))).contains("group"));
    }

    #[test]
    fn a_cursor_that_does_not_fit_shows_the_first_page() {
        for after in ["x", "99999999999999999999999", "3.tzz", "3.n5", "-1"] {
            let list = parse_list(&format!("after={after}")).expect("first page");
            assert_eq!(list.after, None, "{after}");
            assert!(list.dropped_cursor, "{after}");
        }
        let list = parse_list("sort=date_joined&after=3.n5").expect("cursor");
        assert_eq!(
            list.after,
            Some(UserCursor {
                key: SortKey::Number(5),
                id: 3
            })
        );
        assert!(!list.dropped_cursor);
        assert_eq!(
            query_string(&list, list.after.as_ref()),
            "sort=date_joined&after=3.n5"
        );
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bulk_forms_are_read_and_posted_again_unchanged() {
        let b = parse_bulk(&pairs(&[
            ("action", "add-group"),
            ("group", " ops "),
            ("ids", "3"),
            ("ids", "5"),
            ("ids", "3"),
            ("back", "staff=yes&after=7&bogus=1"),
        ]))
        .expect("valid");
        assert_eq!(b.action, BulkAction::AddGroup("ops".into()));
        assert_eq!(b.ids, [3, 5]);
        assert_eq!(
            b.back, "staff=yes",
            "the cursor is not where a summary goes back to"
        );
        assert_eq!(parse_bulk(&b.fields()), Ok(b.clone()));
        assert_eq!(b.action.describe(2), "add 2 users to the group ops");
        for action in ["deactivate", "restore", "reset-mail"] {
            let b = parse_bulk(&pairs(&[("action", action), ("ids", "9")])).expect(action);
            assert_eq!(b.action.as_str(), action);
            assert_eq!(b.back, "");
            assert_eq!(parse_bulk(&b.fields()), Ok(b));
        }
        let bad_back = parse_bulk(&pairs(&[
            ("action", "restore"),
            ("ids", "9"),
            ("back", "staff=maybe"),
        ]));
        assert_eq!(bad_back.map(|b| b.back), Ok(String::new()));
    }

    #[test]
    fn bulk_forms_that_cannot_be_done_say_why() {
        let err = |p: &[(&str, &str)]| parse_bulk(&pairs(p)).expect_err("refused");
        assert!(err(&[("action", "restore")]).contains("at least one"));
        assert!(err(&[("ids", "1")]).contains("Choose"));
        assert!(err(&[("action", "explode"), ("ids", "1")]).contains("not an action"));
        assert!(err(&[("action", "add-group"), ("ids", "1")]).contains("Name the group"));
        assert!(
            err(&[("action", "remove-group"), ("group", " "), ("ids", "1")])
                .contains("Name the group")
        );
        let long = "g".repeat(GROUP_NAME_MAX + 1);
        assert!(
            err(&[("action", "add-group"), ("group", &long), ("ids", "1")]).contains("at most")
        );
        for id in ["0", "-1", "+1", "x", "1.5", "99999999999999999999999"] {
            assert!(
                err(&[("action", "restore"), ("ids", id)]).contains("not a user id"),
                "{id}"
            );
        }
        let many: Vec<(String, String)> =
            std::iter::once(("action".to_string(), "restore".to_string()))
                .chain((1..=BULK_MAX as u64 + 1).map(|i| ("ids".to_string(), i.to_string())))
                .collect();
        assert!(parse_bulk(&many)
            .expect_err("too many")
            .contains("At most 500"));
        assert!(parse_bulk(&many[..=BULK_MAX]).is_ok(), "exactly the cap");
    }
}
