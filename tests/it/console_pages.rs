use crate::common;

// The console's groups page, audit log page and own listener in a real browser (SPEC §18):
// groups counted, renamed (merged) and deleted member by member through the admin API's change
// (checked by the admin API, with the events it writes), the password again on an old
// sign-in, cross-origin forms refused; the audit log filtered and paged by the audit API's own
// reading, bad filters answered on the page; `[console] listen`; axe-core; screenshots.

use crate::console::{
    console_asking_the_password, console_gatehouse, shoot_both, sign_in_to_console, ROOT,
};
use crate::web_browser::{base_of, fill_sign_in, login_url};
use crate::web_mfa::{accessible, status_of};
use common::browser::Browser;
use common::framing::Listener;
use common::origin::{auto_submit, Origin};
use common::upstream::Upstream;
use common::*;
use serde_json::{json, Value};

fn groups_url(base: &str) -> String {
    format!("{base}/admin/groups/")
}

fn audit_url(base: &str) -> String {
    format!("{base}/admin/audit/")
}

/// Sets `id`'s groups through the admin API.
#[track_caller]
fn set_groups(g: &Gatehouse, staff: &str, id: u64, groups: &[&str]) {
    g.http()
        .call(
            "PATCH",
            &format!("/api/auth/admin/users/{id}/"),
            Some(json!({ "groups": groups })),
            Some(staff),
        )
        .expect_status(200);
}

/// `id`'s groups as the admin API reads them.
#[track_caller]
fn groups_of(g: &Gatehouse, staff: &str, id: u64) -> Value {
    let r = g
        .http()
        .get(&format!("/api/auth/admin/users/{id}/"), Some(staff));
    r.expect_status(200);
    r.json["groups"].clone()
}

/// The audit API's events for `query`, newest first.
#[track_caller]
fn events(g: &Gatehouse, staff: &str, query: &str) -> Vec<Value> {
    let r = g
        .http()
        .get(&format!("/api/auth/admin/audit/?{query}"), Some(staff));
    r.expect_status(200);
    r.json["results"].as_array().cloned().unwrap_or_default()
}

/// The groups page's rows: (name, members).
fn group_rows(b: &Browser) -> Vec<(String, String)> {
    b.find_all("table.groups tbody tr")
        .iter()
        .map(|row| {
            let text = |css: &str| row.try_find(css).map(|e| e.text()).unwrap_or_default();
            (text("th a"), text("td.count"))
        })
        .collect()
}

/// The row of group `name` on the groups page (from 1).
#[track_caller]
fn row_of(b: &Browser, name: &str) -> usize {
    group_rows(b)
        .iter()
        .position(|(n, _)| n == name)
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no group {name} on {}", b.text()))
}

/// Opens `name`'s change forms: the CSS of its row.
#[track_caller]
fn open_changes(b: &Browser, name: &str) -> String {
    let row = format!("table.groups tbody tr:nth-child({})", row_of(b, name));
    b.find(&format!("{row} summary")).click();
    row
}

#[test]
fn groups_are_counted_renamed_into_another_and_deleted_as_the_api_changes_users() {
    let up = Upstream::start();
    let g = console_asking_the_password(&up);
    let (staff, _) = g.http().login(ROOT, PASSWORD);
    let (ann, _, _) = g.http().user("ann");
    let (bo, _, _) = g.http().user("bo");
    let (cy, _, _) = g.http().user("cy");
    let (dee, _, _) = g.http().user("dee");
    const NASTY: &str = "<script>alert(1)</script>";
    set_groups(&g, &staff, ann, &["ops", "billing"]);
    set_groups(&g, &staff, bo, &["ops"]);
    set_groups(&g, &staff, cy, &["sre"]);
    set_groups(&g, &staff, dee, &[NASTY]);
    // A deactivated member still counts.
    g.http()
        .call(
            "PATCH",
            &format!("/api/auth/admin/users/{bo}/"),
            Some(json!({"is_active": false})),
            Some(&staff),
        )
        .expect_status(200);
    let base = base_of(&g);
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Browser::start();
    sign_in_to_console(&b, &base, ROOT, None);
    let page = groups_url(&base);

    // The header leads there; the list, by name, with counts and links to the filtered list.
    b.find(".console-nav a[href='/admin/groups/']").click();
    b.wait_for(|b| b.url() == page, "the groups page");
    let n = |name: &str, count: &str| (name.to_string(), count.to_string());
    assert_eq!(
        group_rows(&b),
        [
            n(NASTY, "1"),
            n("billing", "1"),
            n("ops", "2"),
            n("sre", "1")
        ]
    );
    let link = b
        .find(&format!(
            "table.groups tbody tr:nth-child({}) th a",
            row_of(&b, "ops")
        ))
        .attr("href");
    assert_eq!(link.as_deref(), Some("/admin/users/?group=ops"));
    accessible(&b, "the groups page");
    shoot_both(&b, dir.path(), "groups");

    // Forms auto-submitted from another loopback origin: refused, nothing changes.
    let evil = Origin::serve(vec![
        (
            "/rename",
            auto_submit(
                &page,
                &[("action", "rename"), ("group", "ops"), ("to", "x")],
            ),
        ),
        (
            "/delete",
            auto_submit(&page, &[("action", "delete"), ("group", "ops")]),
        ),
    ]);
    for form in ["/rename", "/delete"] {
        b.goto(&evil.url(form));
        b.wait_for(|b| b.url() == page, "the form's answer");
        assert_eq!(status_of(&b), 403, "{form}");
        assert!(b.text().contains("Origin checking failed"), "{}", b.text());
    }
    assert_eq!(groups_of(&g, &staff, ann), json!(["billing", "ops"]));
    assert_eq!(groups_of(&g, &staff, bo), json!(["ops"]));

    // A bad name: the API's message on the page, before any password is asked.
    b.goto(&page);
    let row = open_changes(&b, "ops");
    let i = row_of(&b, "ops");
    accessible(&b, "the groups page, a group's forms open");
    shoot_both(&b, dir.path(), "groups-open");
    b.fill(&format!("#id_rename-{i}-to"), &"x".repeat(151));
    b.submit_form(&format!("{row} form"));
    b.wait_for(|b| b.try_find(".alert.error").is_some(), "the refused name");
    assert_eq!(status_of(&b), 400);
    assert!(
        b.find(".alert.error")
            .text()
            .contains("New name: Ensure this field has no more than 150 characters."),
        "{}",
        b.text()
    );
    assert_eq!(groups_of(&g, &staff, bo), json!(["ops"]));

    // Rename ops onto sre (a merge): the password first.
    let row = open_changes(&b, "ops");
    b.fill(&format!("#id_rename-{i}-to"), " sre ");
    b.submit_form(&format!("{row} form"));
    b.wait_for(
        |b| b.try_find("#id_reauth-password").is_some(),
        "the re-authentication page",
    );
    assert!(
        b.text().contains("To rename the group ops to sre"),
        "{}",
        b.text()
    );
    assert_eq!(groups_of(&g, &staff, ann), json!(["billing", "ops"]));
    accessible(&b, "the re-authentication page of a rename");
    shoot_both(&b, dir.path(), "groups-reauth");
    b.fill("#id_reauth-password", PASSWORD);
    b.submit_form("main form");
    b.wait_for(
        |b| b.url().starts_with(&page) && b.text().contains("The group was renamed"),
        "the renamed group",
    );
    assert_eq!(groups_of(&g, &staff, ann), json!(["billing", "sre"]));
    assert_eq!(groups_of(&g, &staff, bo), json!(["sre"]));
    assert_eq!(groups_of(&g, &staff, cy), json!(["sre"]));
    assert_eq!(
        group_rows(&b),
        [n(NASTY, "1"), n("billing", "1"), n("sre", "3")]
    );
    accessible(&b, "the groups page after a rename");
    shoot_both(&b, dir.path(), "groups-renamed");
    // The API's own events for each member, and one for the group.
    let changed = events(
        &g,
        &staff,
        &format!("action=admin.user_changed&target={ann}"),
    );
    assert_eq!(
        changed[0]["details"],
        json!({"before": {"groups": ["billing", "ops"]}, "after": {"groups": ["billing", "sre"]}}),
        "{changed:?}"
    );
    assert_eq!(changed[0]["actor_username"], json!(ROOT));
    let group_events = events(&g, &staff, "action=admin.group_changed");
    assert_eq!(group_events.len(), 1, "{group_events:?}");
    assert_eq!(
        group_events[0]["details"],
        json!({"before": {"name": "ops"}, "after": {"name": "sre"}, "members": 2})
    );

    // Delete billing: nobody holds it afterwards.
    let row = open_changes(&b, "billing");
    b.submit_form(&format!("{row} form + form"));
    b.wait_for(
        |b| b.text().contains("To delete the group billing"),
        "the re-authentication page",
    );
    b.fill("#id_reauth-password", PASSWORD);
    b.submit_form("main form");
    b.wait_for(
        |b| b.text().contains("The group was deleted"),
        "the deleted group",
    );
    assert_eq!(groups_of(&g, &staff, ann), json!(["sre"]));
    assert_eq!(group_rows(&b), [n(NASTY, "1"), n("sre", "3")]);
    let group_events = events(&g, &staff, "action=admin.group_changed");
    assert_eq!(
        group_events[0]["details"],
        json!({"before": {"name": "billing"}, "after": {}, "members": 1})
    );

    // A group nobody holds any more (another tab deleted it): said, nothing changes.
    let posted = b.execute(
        "const f = document.querySelector('table.groups tbody tr:nth-child(2) form + form');\
         f.querySelector('input[name=group]').value = 'gone'; f.submit(); return 1;",
        json!([]),
    );
    assert_eq!(posted, json!(1));
    b.wait_for(
        |b| b.try_find("#id_reauth-password").is_some(),
        "the password",
    );
    b.fill("#id_reauth-password", PASSWORD);
    b.submit_form("main form");
    b.wait_for(|b| b.try_find(".alert.error").is_some(), "the refusal");
    assert!(
        b.find(".alert.error")
            .text()
            .contains("Group: No user is in this group."),
        "{}",
        b.text()
    );
    assert_eq!(group_rows(&b), [n(NASTY, "1"), n("sre", "3")]);
}

#[test]
fn the_audit_log_filters_by_action_and_target_and_pages() {
    let up = Upstream::start();
    let g = console_gatehouse(&up, |c| c.console.require_mfa = false);
    let (staff, _) = g.http().login(ROOT, PASSWORD);
    let (ann, _, _) = g.http().user("ann");
    let (bo, _, _) = g.http().user("bo");
    for _ in 0..3 {
        g.http()
            .login_attempt("ann", "not-the-password")
            .expect_status(401);
    }
    for _ in 0..2 {
        g.http()
            .login_attempt("bo", "not-the-password")
            .expect_status(401);
    }
    // What a user's change holds is shown as text, never run.
    const NASTY: &str = "<script>alert(1)</script>";
    set_groups(&g, &staff, bo, &[NASTY]);
    let base = base_of(&g);
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Browser::start();
    sign_in_to_console(&b, &base, ROOT, None);
    b.find(".console-nav a[href='/admin/audit/']").click();
    let page = audit_url(&base);
    b.wait_for(|b| b.url() == page, "the audit page");
    assert!(b.find("h1").text().contains("Audit log"));
    let rows = b.find_all("table.log tbody tr");
    assert!(rows.len() >= 8, "{}", b.text());
    // Newest first: the browser's sign-in, then the group change, its before and after
    // readable.
    assert!(
        rows[0].text().contains("login.succeeded"),
        "{}",
        rows[0].text()
    );
    let change = &rows[1];
    let text = change.text();
    assert!(text.contains("admin.user_changed"), "{text}");
    assert!(text.contains(NASTY), "{text}");
    assert!(text.contains("groups"), "{text}");
    let by = change
        .try_find("td[data-label=By] a")
        .and_then(|a| a.attr("href"));
    assert_eq!(
        by.as_deref(),
        Some("/admin/users/1/"),
        "root, the first user"
    );
    let about = change
        .try_find("td[data-label=About] a")
        .expect("a link to the target");
    assert_eq!(about.text(), "bo");
    assert_eq!(
        about.attr("href").as_deref(),
        Some(&*format!("/admin/users/{bo}/"))
    );
    accessible(&b, "the audit page");
    shoot_both(&b, dir.path(), "audit");

    // By action, with the form's select.
    b.find("#id_audit-action option[value='login.failed']")
        .click();
    b.submit_form("section[aria-labelledby=filter-h] form");
    b.wait_for(
        |b| b.url().contains("action=login.failed"),
        "the filtered log",
    );
    let actions: Vec<String> = b
        .find_all("table.log tbody td[data-label=Action]")
        .iter()
        .map(|td| td.text())
        .collect();
    assert_eq!(actions, vec!["login.failed"; 5], "{}", b.text());
    // And by target.
    b.fill("#id_audit-target", &ann.to_string());
    b.submit_form("section[aria-labelledby=filter-h] form");
    b.wait_for(|b| b.url().contains("target="), "the narrower log");
    let targets: Vec<Option<String>> = b
        .find_all("table.log tbody td[data-label=About] a")
        .iter()
        .map(|a| a.attr("href"))
        .collect();
    let ann_page = format!("/admin/users/{ann}/");
    assert_eq!(targets, vec![Some(ann_page.clone()); 3]);

    // Keyset pages of two: 2, 2, 1, each older than the last, then no older link.
    b.goto(&format!("{page}?action=login.failed&page_size=2"));
    let mut seen: Vec<u64> = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let ids: Vec<u64> = b
            .find_all("table.log tbody tr")
            .iter()
            .filter_map(|tr| tr.attr("id"))
            .filter_map(|id| id.strip_prefix("event-").and_then(|n| n.parse().ok()))
            .collect();
        sizes.push(ids.len());
        seen.extend(ids);
        match b.try_find("a[rel=next]") {
            Some(older) => {
                let href = older.attr("href").unwrap_or_default();
                assert!(href.contains("action=login.failed"), "{href}");
                older.click();
                b.wait_for(|b| b.url().contains("cursor="), "an older page");
            }
            None => break,
        }
        assert!(sizes.len() < 10, "pages do not end");
    }
    assert_eq!(sizes, [2, 2, 1]);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");
    assert!(b.try_find(".pager a[href*='page_size=2']").is_some());

    // Dates: an until date counts through its day; a since date tomorrow finds nothing.
    let today = b
        .execute("return new Date().toISOString().slice(0, 10);", json!([]))
        .as_str()
        .unwrap_or_default()
        .to_string();
    b.goto(&format!(
        "{page}?action=login.failed&until={today}&since={today}"
    ));
    assert_eq!(b.find_all("table.log tbody tr").len(), 5, "{}", b.text());
    b.goto(&format!("{page}?since=2999-01-01"));
    assert!(b.text().contains("No event matches."), "{}", b.text());

    // Malformed filters and cursors: the page says what is wrong, 400, never a 500.
    b.goto(&format!(
        "{page}?actor=me&target=-1&action=login.maybe&since=2026-13-01&until=soon"
    ));
    assert_eq!(status_of(&b), 400);
    assert!(
        b.find(".alert.error")
            .text()
            .contains("The filters were not applied"),
        "{}",
        b.text()
    );
    for (field, message) in [
        ("actor", "Enter a whole number."),
        ("target", "Enter a whole number."),
        (
            "action",
            "Select a valid choice. login.maybe is not one of the available choices.",
        ),
        ("since", "Enter a valid date/time."),
        ("until", "Enter a valid date/time."),
    ] {
        let said = b.find(&format!("#id_audit-{field}-errors")).text();
        assert!(said.contains(message), "{field}: {said}");
        assert_eq!(
            b.find(&format!("#id_audit-{field}"))
                .attr("aria-invalid")
                .as_deref(),
            Some("true"),
            "{field}"
        );
    }
    assert!(
        b.text()
            .contains("No events are shown until the filters are corrected."),
        "{}",
        b.text()
    );
    // What was typed stays in the form, escaped.
    assert_eq!(
        b.find("#id_audit-actor").attr("value").as_deref(),
        Some("me")
    );
    accessible(&b, "the audit page with refused filters");
    shoot_both(&b, dir.path(), "audit-refused");
    b.goto(&format!("{page}?cursor=garbage"));
    assert_eq!(status_of(&b), 400);
    assert!(
        b.text().contains("This page link is not valid"),
        "{}",
        b.text()
    );
    b.goto(&format!(
        "{page}?page_size=99999999999999999999999&actor={ann}"
    ));
    assert_eq!(status_of(&b), 200);
    b.goto(&format!("{page}?actor={NASTY}"));
    assert_eq!(status_of(&b), 400);
    assert_eq!(
        b.find("#id_audit-actor").attr("value").as_deref(),
        Some(NASTY)
    );
}

#[test]
fn no_groups_or_audit_page_for_non_staff_or_signed_out_browsers() {
    let up = Upstream::start();
    let g = console_gatehouse(&up, |c| c.console.require_mfa = false);
    let (staff, _) = g.http().login(ROOT, PASSWORD);
    let (ann, _, _) = g.http().user("ann");
    set_groups(&g, &staff, ann, &["ops"]);
    let base = base_of(&g);
    for path in ["/admin/groups/", "/admin/audit/?action=login.failed"] {
        let r = g.http().get(path, None);
        r.expect_status(302);
        assert!(
            r.header("location")
                .is_some_and(|l| l.starts_with("/accounts/login/?next=/admin/")),
            "{path}"
        );
    }
    // A bearer token is no way in, not even a staff one.
    g.http()
        .get("/admin/groups/", Some(&staff))
        .expect_status(302);
    let b = Browser::start();
    b.goto(&login_url(&base));
    fill_sign_in(&b, "ann", PASSWORD);
    b.wait_for(
        |b| b.url() == format!("{base}/accounts/"),
        "the account page",
    );
    for url in [groups_url(&base), audit_url(&base)] {
        b.goto(&url);
        assert_eq!(status_of(&b), 403, "{url}");
        assert!(b.text().contains("This page is for staff only"));
        assert!(!b.text().contains("ops"), "{}", b.text());
    }
    // A form of ann's own session, same origin: still refused, nothing changes.
    let posted = b.execute(
        "const f = document.createElement('form'); f.method = 'post'; f.action = '/admin/groups/';\
         for (const [k, v] of [['action', 'delete'], ['group', 'ops'], ['csrfmiddlewaretoken', \
         (document.cookie.match(/csrftoken=([^;]+)/) || [])[1] || '']]) {\
         const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v;\
         f.appendChild(i); } document.body.appendChild(f); f.submit(); return 1;",
        json!([]),
    );
    assert_eq!(posted, json!(1));
    b.wait_for(
        |b| b.text().contains("This page is for staff only") || b.text().contains("refused"),
        "the refusal",
    );
    assert_eq!(status_of(&b), 403);
    assert_eq!(groups_of(&g, &staff, ann), json!(["ops"]));
}

#[test]
fn the_console_on_a_listener_of_its_own_leaves_the_public_one() {
    let up = Upstream::start();
    let own = free_addr();
    let g = console_gatehouse(&up, move |c| {
        c.console.require_mfa = false;
        c.console.listen = Some(own);
    });
    let (staff, _) = g.http().login(ROOT, PASSWORD);
    // The public listener: no console (a 404, not the sign-in), the rest as before.
    for path in ["/admin/", "/admin/groups/", "/admin/users/1/"] {
        g.http().get(path, None).expect_status(404);
    }
    g.http().get("/accounts/login/", None).expect_status(200);
    g.http()
        .get("/api/auth/admin/audit/", Some(&staff))
        .expect_status(200);
    // The own listener: the console and its pages, nothing else.
    let console = Http::new(format!("http://{own}"), Listener::Public, false);
    eventually("the console's listener", || {
        std::net::TcpStream::connect(own).ok().map(|_| ())
    });
    let r = console.get("/admin/", None);
    r.expect_status(302);
    assert_eq!(
        r.header("location").as_deref(),
        Some("/accounts/login/?next=/admin/")
    );
    console.get("/accounts/login/", None).expect_status(200);
    console
        .get("/accounts/static/gatehouse.css", None)
        .expect_status(200);
    for path in ["/app/orders", "/api/token/", "/api/auth/admin/audit/", "/"] {
        console.get(path, Some(&staff)).expect_status(404);
    }
    let base = format!("http://{own}");
    let b = Browser::start();
    sign_in_to_console(&b, &base, ROOT, None);
    b.goto(&groups_url(&base));
    assert_eq!(status_of(&b), 200);
    assert!(b.find("h1").text().contains("Groups"));
    b.goto(&audit_url(&base));
    assert_eq!(status_of(&b), 200);
    assert!(
        b.text().contains("login.succeeded"),
        "the sign-in just made: {}",
        b.text()
    );
    // Signed in there, the public listener still answers no console.
    b.goto(&format!("{}/admin/", base_of(&g)));
    assert_eq!(status_of(&b), 404);
    // check-config shows where the console listens.
    g.cli(&["check-config"], &[])
        .assert_says(&format!("console_listen {own}"), "check-config names it");
}
