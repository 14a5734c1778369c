//! The console's home page: users by state, and sign-ups and failed sign-ins over the last
//! seven days from the audit log (read up to a cap, never the whole log).

use super::render::{self, NewUser, COUNT_CAP};
use crate::app::App;
use crate::auth::Identity;
use crate::error::ApiError;
use crate::response::Response;
use crate::store::{Action, Event, EventFilter, StateFilter};
use crate::web::kit::{self, Csrf};

/// The window the home page's activity counts cover.
const WEEK_MS: u64 = 7 * 24 * 3600 * 1000;
/// How many of the newest sign-ups the home page links to.
const NEWEST_SHOWN: usize = 5;

/// The home page for staff member `who`.
pub(super) async fn page(app: &App, who: &Identity, csrf: &Csrf) -> Response {
    match facts(app).await {
        Ok(f) => {
            let newest: Vec<NewUser<'_>> = f
                .newest
                .iter()
                .map(|u| NewUser {
                    id: u.id,
                    username: &u.username,
                    joined: u.date_joined,
                })
                .collect();
            let token = csrf.token();
            kit::rendered(
                200,
                render::home(&render::Home {
                    frame: super::frame(app, &who.username, &token),
                    active: f.active,
                    inactive: f.inactive,
                    signups_week: f.signups.len(),
                    failed_sign_ins_week: f.failed,
                    newest: &newest,
                }),
            )
        }
        Err(e) => kit::rendered_error(app, &e),
    }
}

/// What the home page shows.
struct Facts {
    active: usize,
    inactive: usize,
    /// The week's `user.registered` events, newest first, up to the cap + 1.
    signups: Vec<Event>,
    /// Up to the cap + 1.
    failed: usize,
    newest: Vec<crate::store::User>,
}

async fn facts(app: &App) -> Result<Facts, ApiError> {
    let active = app.store.count_users(&StateFilter::Active).await?;
    let inactive = app.store.count_users(&StateFilter::Inactive).await?;
    let since = crate::clock::now_ms().saturating_sub(WEEK_MS);
    let signups = week_of(app, Action::UserRegistered, since).await?;
    let failed = week_of(app, Action::LoginFailed, since).await?.len();
    let mut newest = Vec::new();
    for id in signups
        .iter()
        .filter_map(|e| e.target_id)
        .take(NEWEST_SHOWN)
    {
        if let Some(user) = app.store.get_user(id).await? {
            newest.push(user);
        }
    }
    Ok(Facts {
        active,
        inactive,
        signups,
        failed,
        newest,
    })
}

/// The events of `action` since `since` (unix ms), newest first, up to [`COUNT_CAP`] + 1.
async fn week_of(app: &App, action: Action, since: u64) -> Result<Vec<Event>, ApiError> {
    let filter = EventFilter {
        action: Some(action),
        since: Some(since),
        ..EventFilter::default()
    };
    Ok(app.store.list_events(&filter, None, COUNT_CAP + 1).await?)
}
