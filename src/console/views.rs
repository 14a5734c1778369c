//! The HTML of the groups page and the audit log page: their view models and render
//! functions, as `render` holds the other pages' (same frame, templates, escaping).

use super::render::{grouped, Frame, COUNT_CAP};
use crate::store::{Action, UserCount};
use crate::web::render::{utc_time_parts, FieldErrors, RenderError};
use askama::Template;

/// The query parameter the groups page reads a [`GroupDone`] from, after a change.
pub const GROUP_DONE_PARAM: &str = "done";
/// The form field naming the group a form changes.
pub const GROUP_FIELD: &str = "group";
/// The rename form's field holding the new name.
pub const NEW_NAME_FIELD: &str = "to";

/// A count as the lists show it: "more than 10,000" past the cap, "about N" for an
/// estimate.
pub fn members_shown(count: UserCount) -> String {
    match count {
        UserCount::Exact(n) => grouped(n),
        UserCount::AtLeast(_) => format!("more than {}", grouped(COUNT_CAP)),
        UserCount::About(n) => format!("about {}", grouped(n)),
    }
}

/// What a change on the groups page did, said above it after the redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupDone {
    Renamed,
    Deleted,
}

impl GroupDone {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupDone::Renamed => "renamed",
            GroupDone::Deleted => "deleted",
        }
    }

    pub fn parse(value: &str) -> Option<GroupDone> {
        [GroupDone::Renamed, GroupDone::Deleted]
            .into_iter()
            .find(|d| d.as_str() == value)
    }

    pub fn text(self) -> &'static str {
        match self {
            GroupDone::Renamed => {
                "The group was renamed: its members now hold the new name (merged into the group of that name, if there was one)."
            }
            GroupDone::Deleted => "The group was deleted: nobody holds it any more.",
        }
    }
}

/// One group on the groups page.
pub struct GroupRow<'a> {
    /// Its place on the page (from 1): keeps its forms' ids apart.
    pub index: usize,
    pub name: &'a str,
    pub members: UserCount,
    /// The users list filtered by the group.
    pub list_url: String,
}

impl GroupRow<'_> {
    fn members_text(&self) -> String {
        members_shown(self.members)
    }
    fn form_name(&self) -> String {
        format!("rename-{}", self.index)
    }
}

/// The groups page (`groups/`).
#[derive(Template)]
#[template(path = "console/groups.html")]
pub struct GroupsPage<'a> {
    pub frame: Frame<'a>,
    pub groups: &'a [GroupRow<'a>],
    /// More groups exist than are shown.
    pub more: bool,
    pub notice: Option<&'a str>,
    /// A refused change: why (the operation's words).
    pub errors: &'a [String],
    pub recent_minutes: u64,
}

impl GroupsPage<'_> {
    fn shown(&self) -> String {
        grouped(self.groups.len())
    }
    fn path(&self) -> String {
        format!("{}groups/", self.frame.prefix)
    }
    fn no_errors(&self) -> &'static [String] {
        &[]
    }
}

/// The groups page.
pub fn groups(v: &GroupsPage) -> Result<String, RenderError> {
    Ok(v.render()?)
}

/// A changed field of an event: its name, before and after ("" when absent).
pub struct ChangeRow {
    pub field: String,
    pub before: String,
    pub after: String,
}

/// One event on the audit log page.
pub struct AuditRow<'a> {
    pub id: u64,
    /// Unix milliseconds.
    pub time: u64,
    pub action: &'a str,
    pub actor_id: Option<u64>,
    /// "" for nobody signed in.
    pub actor: &'a str,
    pub target_id: Option<u64>,
    /// The target's username when it still exists.
    pub target: Option<String>,
    pub address: &'a str,
    /// The fields `before` and `after` name.
    pub changes: Vec<ChangeRow>,
    /// The other details, as `key: value` text.
    pub other: Vec<(String, String)>,
}

impl AuditRow<'_> {
    fn time_parts(&self) -> (String, String) {
        utc_time_parts(self.time / 1000)
    }
}

/// The filters as the form shows them (what was typed, even when refused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditForm {
    pub actor: String,
    pub target: String,
    pub action: String,
    pub since: String,
    pub until: String,
}

/// The audit log page (`audit/`).
#[derive(Template)]
#[template(path = "console/audit.html")]
pub struct AuditPage<'a> {
    pub frame: Frame<'a>,
    /// The filters as typed.
    pub filters: &'a AuditForm,
    pub events: &'a [AuditRow<'a>],
    /// The link to the next (older) page.
    pub older: Option<String>,
    /// This is not the first page: a link back to the newest.
    pub paged: bool,
    /// The first page of the same filters.
    pub newest: String,
    /// Above the form: a refused query's summary, or a bad cursor.
    pub errors: &'a [String],
    /// Refused filters, by field name.
    pub field_errors: &'a FieldErrors,
}

impl AuditPage<'_> {
    fn actions(&self) -> impl Iterator<Item = &'static str> {
        Action::ALL.iter().map(|a| a.as_str())
    }
    fn path(&self) -> String {
        format!("{}audit/", self.frame.prefix)
    }
    fn errors_for(&self, field: &str) -> &[String] {
        self.field_errors.get(field).map_or(&[], Vec::as_slice)
    }
    fn newest_url(&self) -> &str {
        &self.newest
    }
    fn filtered(&self) -> bool {
        self.filters != &AuditForm::default()
    }
}

/// The audit log page.
pub fn audit(v: &AuditPage) -> Result<String, RenderError> {
    Ok(v.render()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::html_checks::assert_fields_labelled;

    const NASTY: &str = "<script>alert(1)</script>\"'&";

    fn frame() -> Frame<'static> {
        Frame {
            brand: "gatehouse",
            web_prefix: "/accounts/",
            prefix: "/admin/",
            custom_css: false,
            csrf_token: "tok",
            signed_in_as: NASTY,
        }
    }

    fn pages() -> Vec<(&'static str, String)> {
        let rows = [
            GroupRow {
                index: 1,
                name: NASTY,
                members: UserCount::Exact(3),
                list_url: "/admin/users/?group=%3Cscript%3E".into(),
            },
            GroupRow {
                index: 2,
                name: "ops",
                members: UserCount::AtLeast(COUNT_CAP),
                list_url: "/admin/users/?group=ops".into(),
            },
        ];
        let errors = vec![NASTY.to_string()];
        let groups_html = groups(&GroupsPage {
            frame: frame(),
            groups: &rows,
            more: true,
            notice: Some(GroupDone::Renamed.text()),
            errors: &errors,
            recent_minutes: 10,
        })
        .expect("groups");
        let events = [AuditRow {
            id: 9,
            time: 1_800_000_000_000,
            action: "admin.user_changed",
            actor_id: Some(1),
            actor: NASTY,
            target_id: Some(2),
            target: Some(NASTY.into()),
            address: "127.0.0.1",
            changes: vec![ChangeRow {
                field: "groups".into(),
                before: NASTY.into(),
                after: "[]".into(),
            }],
            other: vec![("reason".into(), NASTY.into())],
        }];
        let mut field_errors = FieldErrors::new();
        field_errors.insert("actor".into(), vec![NASTY.into()]);
        field_errors.insert("action".into(), vec![NASTY.into()]);
        let form = AuditForm {
            actor: NASTY.into(),
            action: "login.failed".into(),
            ..AuditForm::default()
        };
        let audit_html = audit(&AuditPage {
            frame: frame(),
            filters: &form,
            events: &events,
            older: Some("/admin/audit/?cursor=x&amp".into()),
            paged: true,
            newest: "/admin/audit/?action=login.failed".into(),
            errors: &errors,
            field_errors: &field_errors,
        })
        .expect("audit");
        vec![("groups", groups_html), ("audit", audit_html)]
    }

    #[test]
    fn what_users_typed_comes_out_escaped() {
        for (name, html) in pages() {
            assert!(!html.contains("<script>"), "{name}: {html}");
            assert!(!html.contains(NASTY), "{name}");
            assert!(!html.contains(" style="), "{name}");
            assert!(html.contains("<h1"), "{name}");
            let forms = html.matches("<form").count();
            let posts = html.matches("method=\"post\"").count();
            assert_eq!(
                html.matches("name=\"csrfmiddlewaretoken\" value=\"tok\"")
                    .count(),
                posts,
                "{name}: every POST form carries the token"
            );
            assert!(forms >= 1, "{name}");
            assert_fields_labelled(name, &html);
        }
    }

    #[test]
    fn the_pages_show_counts_choices_and_changes() {
        let all = pages();
        let groups_html = &all[0].1;
        assert!(groups_html.contains("more than 10,000"));
        assert!(groups_html.contains("href=\"/admin/users/?group=ops\""));
        assert!(groups_html.contains(GroupDone::Renamed.text()));
        let audit_html = &all[1].1;
        for a in Action::ALL {
            assert!(
                audit_html.contains(&format!("<option value=\"{}\"", a.as_str())),
                "{a:?}"
            );
        }
        assert!(audit_html.contains("<option value=\"login.failed\" selected"));
        assert!(audit_html.contains("href=\"/admin/users/1/\""));
        assert!(audit_html.contains("href=\"/admin/users/2/\""));
        assert_eq!(GroupDone::parse("renamed"), Some(GroupDone::Renamed));
        assert_eq!(GroupDone::parse("deleted"), Some(GroupDone::Deleted));
        assert_eq!(GroupDone::parse("x"), None);
        assert_eq!(members_shown(UserCount::Exact(1234)), "1,234");
        assert_eq!(members_shown(UserCount::About(200_000)), "about 200,000");
    }
}
