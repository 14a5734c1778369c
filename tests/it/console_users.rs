use crate::common;

// The console's users list in a real browser (SPEC §18): search, every filter, sort, keyset
// pages; the streamed CSV export of the filtered list (parsed: its rows are the filter's,
// formulas neutralised); bulk actions through the re-authentication step and the admin API's
// operations (groups, deactivation refusing proxied requests at once, restore); CSRF;
// malformed addresses; escaping; axe-core; screenshots.

use crate::console::{
    app_answers, console_asking_the_password, console_gatehouse, shoot_both, sign_in_to_console,
    ROOT,
};
use crate::web_browser::base_of;
use crate::web_mfa::{accessible, enrol_by_api, status_of};
use common::browser::Browser;
use common::origin::{auto_submit, Origin};
use common::upstream::Upstream;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// How many users the dump brings.
const IMPORTED: u64 = 240;
/// The first imported id (root and the API's users come first).
const FIRST_PK: u64 = 100;
/// A first name a spreadsheet would run, with markup in it.
const NASTY: &str = "=HYPERLINK(\"x\")<script>alert(1)</script>";

fn imported_name(i: u64) -> String {
    format!("user-{i:03}")
}

/// Imported user `i`: staff every 10th, in `ops` every 4th, deactivated every 7th.
fn imported(i: u64) -> Value {
    let day = 1 + (i * 7) % 28;
    json!({"model": "accounts.user", "pk": FIRST_PK + i, "fields": {
        "password": "!unusable", "last_login": null, "is_superuser": false,
        "username": imported_name(i), "first_name": format!("First{i}"), "last_name": "Imported",
        "email": format!("{}@example.com", imported_name(i)), "is_staff": i % 10 == 0,
        "is_active": i % 7 != 0, "date_joined": format!("2024-02-{day:02}T12:00:00Z"),
        "is_deleted": false, "groups": if i % 4 == 0 { json!(["ops"]) } else { json!([]) },
        "user_permissions": []}})
}

/// The browser's cookies as a `Cookie` header (to fetch the export over plain HTTP).
fn cookie_header(b: &Browser) -> String {
    b.cookies()
        .iter()
        .map(|c| format!("{}={}", c.name, c.value))
        .collect::<Vec<_>>()
        .join("; ")
}

/// GET `path` as the browser's session.
fn get_as(g: &Gatehouse, b: &Browser, path: &str) -> Resp {
    g.http()
        .with_headers("GET", path, &[("cookie", &cookie_header(b))])
}

/// POSTs the form `body` to the list as the browser's session, from its own origin.
fn post_as(g: &Gatehouse, b: &Browser, base: &str, body: &str) -> Resp {
    let http = g.http();
    let rb = http
        .request("POST", "/admin/users/")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie_header(b))
        .header("origin", base)
        .body(body.to_string());
    http.send(rb)
}

/// RFC 4180 records of `text`.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(
        cell.is_empty() && row.is_empty(),
        "the last line ends in CRLF"
    );
    rows
}

/// The usernames of the list page on screen.
fn listed(b: &Browser) -> Vec<String> {
    b.find_all("table.users tbody th a")
        .iter()
        .map(|a| a.text())
        .collect()
}

/// Everything the list shows when `query` is applied by URL, following "Next page".
fn all_pages(b: &Browser, base: &str, query: &str) -> Vec<String> {
    b.goto(&format!("{base}/admin/users/?{query}"));
    let mut names = listed(b);
    while let Some(next) = b.try_find("#next-page") {
        let href = next.attr("href").expect("a link");
        b.goto(&format!("{base}{href}"));
        assert_eq!(status_of(b), 200);
        names.extend(listed(b));
    }
    names
}

fn set(names: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    names.into_iter().collect()
}

#[test]
fn staff_find_users_by_search_and_filters_page_through_and_export() {
    let up = Upstream::start();
    let mut g = console_gatehouse(&up, |c| c.console.require_mfa = false);
    g.kill();
    let dump = g.dir().join("users.json");
    let entries: Vec<Value> = (0..IMPORTED).map(imported).collect();
    std::fs::write(&dump, Value::Array(entries).to_string()).expect("write the dump");
    g.cli(&["import", dump.to_str().expect("utf-8")], &[])
        .assert_ok("import");
    g.restart();
    let (nasty, nasty_token, _) = g.http().user("nasty");
    g.http()
        .call(
            "PATCH",
            paths::PROFILE,
            Some(json!({"first_name": NASTY, "last_name": "-1+1"})),
            Some(&nasty_token),
        )
        .expect_status(200);
    enrol_by_api(&g, "nasty");
    let (staff_token, _) = g.http().login(ROOT, PASSWORD);
    let verified = |name: &str, id: u64| -> Option<String> {
        let r = g.get(&paths::admin_user(id), Some(&staff_token));
        r.expect_status(200);
        (r.json["email_verified"] == json!(true)).then(|| name.to_string())
    };
    let root_id = g
        .get(paths::ADMIN_USERS, Some(&staff_token))
        .json
        .as_array()
        .and_then(|all| all.iter().find(|u| u["username"] == ROOT).map(id_of))
        .expect("root is listed");
    let everyone: BTreeSet<String> = (0..IMPORTED)
        .map(imported_name)
        .chain([ROOT.to_string(), "nasty".to_string()])
        .collect();
    let imported_where =
        |keep: fn(u64) -> bool| set((0..IMPORTED).filter(|i| keep(*i)).map(imported_name));

    let base = base_of(&g);
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Browser::start();
    sign_in_to_console(&b, &base, ROOT, None);
    // From the home page and the header.
    b.find("main .actions a").click();
    b.wait_for(|b| b.url() == format!("{base}/admin/users/"), "the list");
    assert!(b
        .try_find("nav.console-nav a[href='/admin/users/']")
        .is_some());
    assert_eq!(
        b.find("#list-h").text(),
        format!("{} users", everyone.len())
    );
    accessible(&b, "the users list");
    shoot_both(&b, dir.path(), "users");

    // Search, by the form: a username part, an email part, a name.
    for (q, want) in [
        ("user-012", set([imported_name(12)])),
        ("USER-23", set((230..IMPORTED).map(imported_name))),
        (
            "first7",
            set([7, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79].map(imported_name)),
        ),
        ("<script>", set(["nasty".to_string()])),
    ] {
        b.goto(&format!("{base}/admin/users/"));
        b.fill("#id_find-q", q);
        b.submit_form("form.filters");
        b.wait_for(|b| b.url().contains("q="), "the search");
        assert_eq!(set(listed(&b)), want, "{q}");
        // Few users: the search's count is exact (an estimate only past the store's budget).
        let counted = match want.len() {
            1 => "1 user".to_string(),
            n => format!("{n} users"),
        };
        assert_eq!(b.find("#list-h").text(), counted, "{q}");
    }
    // HTML in names is text: shown, never run.
    let row = b.find("table.users tbody tr").text();
    assert!(row.contains(NASTY), "{row}");
    assert_eq!(
        b.execute("return document.scripts.length;", json!([])),
        json!(0)
    );

    // Each filter, chosen in the form (one select at a time).
    let pick = |select: &str, value: &str| {
        b.goto(&format!("{base}/admin/users/?per=200"));
        b.find(&format!("{select} option[value='{value}']")).click();
        b.submit_form("form.filters");
        b.wait_for(|b| b.url().contains("state="), "the filter");
        assert_eq!(status_of(&b), 200);
        listed(&b)
    };
    let mut staff = imported_where(|i| i % 10 == 0);
    staff.insert(ROOT.into());
    assert_eq!(set(pick("#id_find-staff", "yes")), staff);
    assert_eq!(
        set(pick("#id_find-state", "deleted")),
        imported_where(|i| i % 7 == 0)
    );
    assert_eq!(set(pick("#id_find-mfa", "on")), set(["nasty".to_string()]));
    let unverified: BTreeSet<String> = everyone
        .iter()
        .filter(|n| {
            let id = match n.as_str() {
                "nasty" => nasty,
                r if r == ROOT => root_id,
                other => FIRST_PK + other[5..].parse::<u64>().expect("a number"),
            };
            verified(n, id).is_none()
        })
        .cloned()
        .collect();
    assert!(unverified.contains("nasty"), "{unverified:?}");
    assert_eq!(set(pick("#id_find-verified", "no")), unverified);
    b.goto(&format!("{base}/admin/users/?per=200"));
    b.fill("#id_find-group", "ops");
    b.submit_form("form.filters");
    b.wait_for(|b| b.url().contains("group=ops"), "the group filter");
    assert_eq!(set(listed(&b)), imported_where(|i| i % 4 == 0));
    accessible(&b, "the filtered list");

    // Filters together, and nothing found.
    b.goto(&format!(
        "{base}/admin/users/?group=ops&state=active&staff=yes"
    ));
    assert_eq!(
        set(listed(&b)),
        imported_where(|i| i % 4 == 0 && i % 7 != 0 && i % 10 == 0)
    );
    b.goto(&format!("{base}/admin/users/?q=nobody-at-all"));
    assert!(b.try_find("#no-users").is_some());
    assert_eq!(b.find("#list-h").text(), "0 users");
    accessible(&b, "the list with no result");
    shoot_both(&b, dir.path(), "users-none");

    // Sorts: by username both ways, by date joined; pages follow the order with no gap or
    // repeat.
    let mut by_name: Vec<String> = everyone.iter().cloned().collect();
    by_name.sort();
    b.goto(&format!("{base}/admin/users/?sort=username&per=20"));
    assert_eq!(listed(&b), by_name[..20].to_vec());
    b.goto(&format!(
        "{base}/admin/users/?sort=username&order=desc&per=20"
    ));
    let mut desc = by_name.clone();
    desc.reverse();
    assert_eq!(listed(&b), desc[..20].to_vec());
    let paged = all_pages(&b, &base, "sort=username&order=desc&per=37");
    assert_eq!(paged, desc, "every user once, in order, over the pages");
    let paged = all_pages(&b, &base, "per=50");
    assert_eq!(paged.len(), everyone.len());
    assert_eq!(set(paged), everyone);
    let joined = all_pages(&b, &base, "sort=date_joined&state=active&per=30");
    assert_eq!(set(joined.clone()), {
        let mut s = imported_where(|i| i % 7 != 0);
        s.insert(ROOT.into());
        s.insert("nasty".into());
        s
    });
    let day = |n: &String| {
        n.strip_prefix("user-")
            .map(|i| 1 + (i.parse::<u64>().unwrap_or(0) * 7) % 28)
    };
    let days: Vec<u64> = joined.iter().filter_map(day).collect();
    assert!(days.windows(2).all(|w| w[0] <= w[1]), "{days:?}");
    // A later page has "First page".
    b.goto(&format!("{base}/admin/users/?per=10"));
    b.find("#next-page").click();
    b.wait_for(|b| b.url().contains("after="), "the second page");
    assert!(b.try_find("#first-page").is_some());
    accessible(&b, "a later page");

    // The export of a filtered list: exactly its rows, formulas neutralised.
    b.goto(&format!("{base}/admin/users/?group=ops&state=active"));
    let href = b.find("#export").attr("href").expect("a link");
    assert_eq!(href, "/admin/users.csv?state=active&group=ops");
    let r = get_as(&g, &b, &href);
    r.expect_status(200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/csv; charset=utf-8")
    );
    assert_eq!(
        r.header("content-disposition").as_deref(),
        Some("attachment; filename=\"users.csv\"")
    );
    assert_eq!(
        r.header("transfer-encoding").as_deref(),
        Some("chunked"),
        "streamed"
    );
    assert_eq!(
        r.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    let rows = parse_csv(&r.text);
    assert_eq!(rows[0][..3], ["id", "username", "email"]);
    let got: Vec<String> = rows[1..].iter().map(|r| r[1].clone()).collect();
    assert_eq!(got.len(), rows.len() - 1);
    assert_eq!(set(got), imported_where(|i| i % 4 == 0 && i % 7 != 0));
    assert!(
        rows[1..].iter().all(|r| r[5] == "true" && r[7] == "ops"),
        "active, in ops"
    );
    // The whole list, more than one store page of the export.
    let all = parse_csv(&get_as(&g, &b, "/admin/users.csv").text);
    assert_eq!(all.len() - 1, everyone.len());
    let nasty_csv = get_as(&g, &b, "/admin/users.csv?q=nasty");
    assert!(
        nasty_csv
            .text
            .contains("\"'=HYPERLINK(\"\"x\"\")<script>alert(1)</script>\",\"'-1+1\""),
        "{}",
        nasty_csv.text
    );
    let rows = parse_csv(&nasty_csv.text);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][3], format!("'{NASTY}"));
    assert_eq!(rows[1][4], "'-1+1");
    assert_eq!(rows[1][8], "true", "two-factor on");

    // Malformed addresses: a page that says why (400), or the first page; never a 500.
    for (query, says) in [
        ("staff=maybe", "“staff”"),
        ("sort=password", "sorts by"),
        ("order=sideways", "“desc”"),
        ("per=100000000000000000000000", "from 1 to 200"),
        ("per=0", "from 1 to 200"),
        ("state=%3Cscript%3E", "“state”"),
        ("mfa=%00", "“mfa”"),
    ] {
        for path in ["/admin/users/", "/admin/users.csv"] {
            let r = get_as(&g, &b, &format!("{path}?{query}"));
            r.expect_status(400);
            assert!(r.text.contains(says), "{path}?{query}: {}", r.text);
            assert!(!r.text.contains("<script>"));
        }
    }
    for after in [
        "garbage",
        "99999999999999999999999999",
        "1.t%ZZ",
        "%00",
        "5.n1",
    ] {
        let r = get_as(&g, &b, &format!("/admin/users/?after={after}"));
        r.expect_status(200);
        assert!(r.text.contains("does not fit this list"), "{after}");
    }
    let r = get_as(&g, &b, "/admin/users/?page=999999999999999999999");
    r.expect_status(200);
    b.goto(&format!("{base}/admin/users/?staff=maybe"));
    assert_eq!(status_of(&b), 400);
    accessible(&b, "the malformed-list page");
    shoot_both(&b, dir.path(), "users-bad-query");
}

#[test]
fn bulk_changes_ask_the_password_again_and_go_through_the_admin_api() {
    let up = Upstream::start();
    let g = console_asking_the_password(&up);
    let (ann, ann_token, _) = g.http().user("ann");
    let (bo, bo_token, _) = g.http().user("bo");
    let (cy, cy_token, _) = g.http().user("cy");
    let (staff_token, _) = g.http().login(ROOT, PASSWORD);
    let groups_of = |id: u64| -> Value {
        let r = g.get(&paths::admin_user(id), Some(&staff_token));
        r.expect_status(200);
        r.json["groups"].clone()
    };

    // Signed out: no page and no action.
    for path in ["/admin/users/", "/admin/users.csv"] {
        let r = g.http().get(path, None);
        r.expect_status(302);
    }
    g.http()
        .form(
            "POST",
            "/admin/users/",
            &format!("action=deactivate&ids={ann}"),
            None,
        )
        .expect_status(403);
    app_answers(&g, &ann_token, 200);

    let base = base_of(&g);
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Browser::start();
    sign_in_to_console(&b, &base, ROOT, None);
    let list = format!("{base}/admin/users/");

    // Add ann and bo to "beta": the password first.
    b.goto(&format!("{list}?sort=username"));
    b.find(&format!("#pick-{ann}")).click();
    b.find(&format!("#pick-{bo}")).click();
    b.find("#id_bulk-action option[value='add-group']").click();
    b.fill("#id_bulk-group", "beta");
    b.submit_form("#bulk");
    b.wait_for(
        |b| b.try_find("#id_reauth-password").is_some(),
        "the re-authentication page",
    );
    assert!(
        b.text().contains("To add 2 users to the group beta"),
        "{}",
        b.text()
    );
    assert_eq!(groups_of(ann), json!([]), "nothing yet");
    accessible(&b, "the bulk re-authentication page");
    shoot_both(&b, dir.path(), "users-reauth");
    b.fill("#id_reauth-password", "not-the-password");
    b.submit_form("main form");
    b.wait_for(
        |b| b.try_find("#id_reauth-password-errors").is_some(),
        "the refused password",
    );
    assert_eq!(groups_of(ann), json!([]));
    b.fill("#id_reauth-password", PASSWORD);
    b.submit_form("main form");
    b.wait_for(|b| b.try_find("#bulk-summary").is_some(), "the summary");
    assert!(
        b.url()
            .starts_with(&format!("{list}?sort=username&bulk=add-group")),
        "{}",
        b.url()
    );
    assert!(b
        .find("#bulk-summary")
        .text()
        .contains("2 users were added"));
    accessible(&b, "the list with a summary");
    shoot_both(&b, dir.path(), "users-summary");
    assert_eq!(groups_of(ann), json!(["beta"]));
    assert_eq!(groups_of(bo), json!(["beta"]));
    assert_eq!(groups_of(cy), json!([]));
    let changed = g.get(
        &format!("{}?action=admin.user_changed&page_size=500", paths::AUDIT),
        Some(&staff_token),
    );
    changed.expect_status(200);
    let targets: BTreeSet<u64> = changed.json["results"]
        .as_array()
        .expect("a page")
        .iter()
        .map(|e| e["target_id"].as_u64().expect("a target"))
        .collect();
    assert_eq!(targets, BTreeSet::from([ann, bo]), "{}", changed.json);

    // A form auto-submitted from another loopback origin: refused, nothing changes.
    let evil = Origin::serve(vec![(
        "/bulk",
        auto_submit(&list, &[("action", "deactivate"), ("ids", &cy.to_string())]),
    )]);
    b.goto(&evil.url("/bulk"));
    b.wait_for(|b| b.url() == list, "the form's answer");
    assert_eq!(status_of(&b), 403);
    assert!(b.text().contains("Origin checking failed"), "{}", b.text());
    app_answers(&g, &cy_token, 200);

    // Deactivate ann and bo: their proxied requests are refused at once; cy's are not.
    app_answers(&g, &ann_token, 200);
    b.goto(&format!("{list}?group=beta"));
    b.find(&format!("#pick-{ann}")).click();
    b.find(&format!("#pick-{bo}")).click();
    b.find("#id_bulk-action option[value='deactivate']").click();
    b.submit_form("#bulk");
    b.wait_for(
        |b| b.try_find("#id_reauth-password").is_some(),
        "the re-authentication page",
    );
    assert!(b.text().contains("To deactivate 2 users"));
    b.fill("#id_reauth-password", PASSWORD);
    b.submit_form("main form");
    b.wait_for(|b| b.try_find("#bulk-summary").is_some(), "the summary");
    assert!(b
        .find("#bulk-summary")
        .text()
        .contains("2 users were deactivated"));
    app_answers(&g, &ann_token, 401);
    app_answers(&g, &bo_token, 401);
    app_answers(&g, &cy_token, 200);

    // Restore them, and a user that no longer exists: changed and failed, said apart.
    b.goto(&format!("{list}?state=deleted"));
    assert_eq!(set(listed(&b)), set(["ann".to_string(), "bo".to_string()]));
    let body = format!(
        "csrfmiddlewaretoken={}&action=restore&ids={ann}&ids={bo}&ids=999999&reauth=1&password={PASSWORD}",
        b.find("#bulk input[name=csrfmiddlewaretoken]").attr("value").expect("a token")
    );
    let r = post_as(&g, &b, &base, &body);
    r.expect_status(303);
    let to = r.header("location").expect("a redirect");
    assert!(
        to.contains("bulk=restore&changed=2&failed=999999.gone"),
        "{to}"
    );
    b.goto(&format!("{base}{to}"));
    let summary = b.find("#bulk-summary").text();
    assert!(
        summary.contains("2 users were restored") && summary.contains("User 999999"),
        "{summary}"
    );
    let (again, _) = g.http().login("ann", PASSWORD);
    app_answers(&g, &again, 200);

    // A reset mail, through the password-reset operation (its audit event).
    let token = b
        .find("#bulk input[name=csrfmiddlewaretoken]")
        .attr("value")
        .expect("a token");
    let r = post_as(
        &g,
        &b,
        &base,
        &format!(
            "csrfmiddlewaretoken={token}&action=reset-mail&ids={cy}&reauth=1&password={PASSWORD}"
        ),
    );
    r.expect_status(303);
    let to = r.header("location").expect("a redirect");
    assert!(to.ends_with("bulk=reset-mail&changed=1"), "{to}");
    let asked = g.get(
        &format!(
            "{}?action=password.reset_requested&target={cy}",
            paths::AUDIT
        ),
        Some(&staff_token),
    );
    asked.expect_status(200);
    assert_eq!(
        asked.json["results"].as_array().map(Vec::len),
        Some(1),
        "{}",
        asked.json
    );

    // Bad bulk forms: said, nothing changed.
    b.goto(&list);
    b.find("#id_bulk-action option[value='deactivate']").click();
    b.submit_form("#bulk");
    b.wait_for(
        |b| b.text().contains("Select at least one user"),
        "the refusal",
    );
    assert_eq!(status_of(&b), 400);
    app_answers(&g, &cy_token, 200);
    let over: String = (1..=501).map(|i| format!("&ids={i}")).collect();
    let body = format!(
        "csrfmiddlewaretoken={}&action=deactivate{over}",
        b.find("#bulk input[name=csrfmiddlewaretoken]")
            .attr("value")
            .expect("a token")
    );
    let r = post_as(&g, &b, &base, &body);
    r.expect_status(400);
    assert!(r.text.contains("At most 500 users"), "{}", r.text);
    app_answers(&g, &cy_token, 200);
}

#[test]
fn the_list_its_pages_export_and_bulk_actions_work_on_postgresql() {
    let up = Upstream::start();
    let addr = up.addr;
    let g = Gatehouse::new()
        .postgres(&common::postgres::database())
        .superuser(ROOT, "root@example.com", PASSWORD)
        .with_config(move |c| {
            c.web.enabled = true;
            c.console.require_mfa = false;
            c.routes = vec![route("/app/", &[addr])];
        })
        .start();
    let names = [
        "pg-ann", "pg-bo", "pg-cy", "pg-di", "pg-ed", "pg-flo", "pg-gus",
    ];
    let mut ids = Vec::new();
    for name in names {
        ids.push(g.http().user(name).0);
    }
    let base = base_of(&g);
    let b = Browser::start();
    sign_in_to_console(&b, &base, ROOT, None);

    // Pages of 3, by username descending: every user once, in order.
    let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    want.push(ROOT.to_string());
    want.sort();
    want.reverse();
    assert_eq!(all_pages(&b, &base, "sort=username&order=desc&per=3"), want);
    b.goto(&format!("{base}/admin/users/?q=PG-F"));
    assert_eq!(listed(&b), ["pg-flo"]);

    // Bulk-add the first three to "pg" (a fresh sign-in: no password again), then filter
    // and export by it.
    let token = b
        .find("#bulk input[name=csrfmiddlewaretoken]")
        .attr("value")
        .expect("a token");
    let picked: String = ids[..3].iter().map(|id| format!("&ids={id}")).collect();
    let r = post_as(
        &g,
        &b,
        &base,
        &format!("csrfmiddlewaretoken={token}&action=add-group&group=pg{picked}"),
    );
    r.expect_status(303);
    b.goto(&format!("{base}/admin/users/?group=pg&sort=username"));
    assert_eq!(listed(&b), ["pg-ann", "pg-bo", "pg-cy"]);
    assert_eq!(b.find("#list-h").text(), "3 users");
    let rows = parse_csv(&get_as(&g, &b, "/admin/users.csv?group=pg&sort=username").text);
    let got: Vec<&str> = rows[1..].iter().map(|r| r[1].as_str()).collect();
    assert_eq!(got, ["pg-ann", "pg-bo", "pg-cy"]);
    assert!(rows[1..].iter().all(|r| r[7] == "pg"));
}
