//! The browser harness proves itself against a local origin before any scenario relies on it:
//! forms are typed into and posted, cookies come back with their attributes, browsers keep to
//! themselves, screenshots are PNGs of the window, a cross-origin page posts on load, nothing
//! stays running, and a machine without Chromium is told what to install.
use crate::common;

use common::browser::{self, Browser, BrowserCookie, Programs};
use common::origin::{auto_submit, Origin, Page};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const FORM: &str = r#"<!doctype html><html><head><title>sign in</title></head><body>
<h1>Sign in</h1>
<form method="post" action="/done?step=1">
  <label>Username <input id="u" name="username" value="old"></label>
  <label>Password <input id="p" type="password" name="password"></label>
  <label><input id="r" type="checkbox" name="remember" value="yes"> remember me</label>
  <button type="submit" name="go" value="1">Sign in</button>
</form></body></html>"#;

const DONE: &str = "<!doctype html><html><head><title>done</title></head>\
                    <body><p class=\"msg\">Welcome back</p></body></html>";

#[test]
fn a_filled_form_posts_its_fields_and_the_page_can_be_read() {
    let site = Origin::serve(vec![("/", FORM.into()), ("/done", DONE.into())]);
    let b = Browser::start();
    b.goto(&site.url("/"));
    assert_eq!(b.title(), "sign in");
    assert_eq!(b.find("h1").text(), "Sign in");
    assert_eq!(b.find("#u").attr("value").as_deref(), Some("old"));
    assert_eq!(b.find("#u").attr("data-none"), None);
    assert!(b.try_find("#nothing-here").is_none());
    assert_eq!(b.find_all("input").len(), 3);

    b.fill("#u", "alice & bob");
    b.fill("#p", "S3cret pass=1%");
    assert_eq!(b.find("#u").prop("value"), "alice & bob");
    let remember = b.find("#r");
    assert!(!remember.is_selected());
    remember.click();
    assert!(remember.is_selected());
    b.submit_form("form");
    b.wait_for(|b| b.url().contains("/done"), "the page after the form");
    assert_eq!(b.find(".msg").text(), "Welcome back");
    assert!(b.source().contains("Welcome back"));
    assert!(b.text().contains("Welcome back"));

    let post = site.wait_for_request("POST", "/done");
    assert_eq!(post.target, "/done?step=1");
    assert_eq!(
        post.form(),
        [
            ("username", "alice & bob"),
            ("password", "S3cret pass=1%"),
            ("remember", "yes"),
            ("go", "1"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    assert_eq!(post.header("origin"), Some(site.origin().as_str()));

    b.back();
    b.wait_for(|b| b.title() == "sign in", "the form again");
    b.refresh();
    assert!(b.try_find("form").is_some());
}

#[test]
fn a_set_cookie_is_read_back_with_its_attributes() {
    let site = Origin::serve_pages(vec![
        Page::new("/", "<title>home</title>"),
        Page::new("/set", "<title>set</title>")
            .header("Set-Cookie", "a=b; HttpOnly; SameSite=Lax; Path=/"),
    ]);
    let b = Browser::start();
    b.goto(&site.url("/"));
    assert_eq!(b.cookies(), []);
    assert_eq!(b.cookie("a"), None);
    b.goto(&site.url("/set"));
    let a = b.cookie("a").expect("the cookie a");
    assert_eq!(
        a,
        BrowserCookie {
            name: "a".into(),
            value: "b".into(),
            path: "/".into(),
            domain: "127.0.0.1".into(),
            secure: false,
            http_only: true,
            same_site: Some("Lax".into()),
            expiry: None,
        }
    );
    // HttpOnly: the page's script does not see it.
    assert_eq!(
        b.execute("return document.cookie;", serde_json::json!([])),
        ""
    );

    // A cookie added by the test goes out with the next request, as the browser's own do.
    b.add_cookie(&BrowserCookie::new("c", "d"));
    b.goto(&site.url("/"));
    let sent = site.requests_to("/").pop().expect("the last visit");
    assert_eq!(sent.header("cookie"), Some("a=b; c=d"));
    assert_eq!(b.cookies().len(), 2);

    // `localhost` is another site than `127.0.0.1`: its pages see none of these.
    b.goto(&site.url_on("localhost", "/"));
    assert_eq!(b.cookies(), []);
    let last = site.requests_to("/").pop().expect("the visit as localhost");
    assert_eq!(last.header("cookie"), None);

    b.goto(&site.url("/"));
    b.delete_cookies();
    assert_eq!(b.cookies(), []);
}

#[test]
fn two_browsers_at_once_keep_separate_cookies() {
    let site = Origin::serve_pages(vec![
        Page::new("/", "<title>home</title>"),
        Page::new("/a", "<title>a</title>").header("Set-Cookie", "who=a; Path=/"),
        Page::new("/b", "<title>b</title>").header("Set-Cookie", "who=b; Path=/"),
    ]);
    // Started side by side from other threads, and used after those threads ended.
    let [a, b] = common::race(2, |_| Browser::start())
        .try_into()
        .unwrap_or_else(|_| panic!("two browsers"));
    assert_ne!(a.profile(), b.profile());
    a.goto(&site.url("/a"));
    b.goto(&site.url("/"));
    assert_eq!(b.cookies(), []);
    b.goto(&site.url("/b"));
    assert_eq!(a.cookie("who").map(|c| c.value).as_deref(), Some("a"));
    assert_eq!(b.cookie("who").map(|c| c.value).as_deref(), Some("b"));
}

#[test]
fn a_screenshot_is_a_png_of_the_window() {
    let site = Origin::serve(vec![(
        "/",
        "<title>shot</title><body style=\"background:#2a6\"><h1>gatehouse</h1></body>".into(),
    )]);
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Browser::start();
    b.goto(&site.url("/"));
    let first = dir.path().join("first.png");
    b.screenshot(&first);
    let png = std::fs::read(&first).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let (width, _) = browser::png_size(&png).expect("a PNG header");
    assert_eq!(width, browser::WINDOW.0);

    b.set_window_size(800, 600);
    let second = dir.path().join("second.png");
    b.screenshot(&second);
    let png = std::fs::read(&second).expect("the screenshot");
    assert_eq!(browser::png_size(&png).map(|(w, _)| w), Some(800));
}

#[test]
fn a_page_of_another_origin_posts_its_form_on_load() {
    let target = Origin::serve(vec![("/api/thing/", "<title>posted</title>".into())]);
    let action = target.url("/api/thing/");
    let attacker = Origin::serve(vec![("/", auto_submit(&action, &[("amount", "1 000\"<")]))]);
    let b = Browser::start();
    b.goto(&attacker.url("/"));
    let post = target.wait_for_request("POST", "/api/thing/");
    assert_eq!(post.header("origin"), Some(attacker.origin().as_str()));
    assert_eq!(post.field("amount").as_deref(), Some("1 000\"<"));
    b.wait_for(|b| b.url() == action, "the target's page");
}

#[test]
fn failures_name_the_command_the_selector_and_the_page() {
    let page = "<title>t</title><body><p>Some words here</p>\
                <input id=\"hidden\" style=\"display:none\"></body>";
    let site = Origin::serve(vec![("/page", page.into())]);
    let b = Browser::start();
    b.goto(&site.url("/page"));
    let message = |f: &dyn Fn()| {
        let panic =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("a failure");
        match (panic.downcast_ref::<String>(), panic.downcast_ref::<&str>()) {
            (Some(s), _) => s.clone(),
            (None, Some(s)) => s.to_string(),
            (None, None) => String::from("(not a text panic)"),
        }
    };
    let m = message(&|| b.find("#hidden").send_keys("x"));
    assert!(
        m.starts_with("WebDriver POST /value of \"#hidden\" failed: element not interactable"),
        "{m}"
    );
    let m = message(&|| drop(b.find("form#login")));
    assert!(
        m.contains("\"form#login\"") && m.contains(&site.url("/page")),
        "{m}"
    );
    assert!(m.contains("Some words here"), "{m}");
    let m = message(&|| b.wait_up_to(Duration::from_millis(200), |_| false, "a miracle"));
    assert!(
        m.starts_with("still waiting after 200ms for a miracle: http://127.0.0.1:"),
        "{m}"
    );
    assert!(m.contains("Some words here"), "{m}");
    // The browser still works after its commands failed.
    assert_eq!(b.title(), "t");
}

#[test]
fn a_browser_is_wiped_before_the_next_test_reuses_it() {
    let site = Origin::serve_pages(vec![
        Page::new("/", "<title>home</title>"),
        Page::new("/set", "<title>set</title>").header("Set-Cookie", "who=a; Path=/"),
    ]);
    // What `Drop` does before giving a browser to the pool, on a browser of this test alone.
    let b = Browser::start_fresh();
    b.goto(&site.url("/set"));
    assert!(b.cookie("who").is_some());
    b.set_window_size(390, 700);
    b.execute(
        "window.open('about:blank'); return 1;",
        serde_json::json!([]),
    );
    assert_eq!(b.windows(), 2);
    assert!(b.wipe(), "the wipe's WebDriver and DevTools commands");
    assert_eq!(b.windows(), 1, "the extra window is closed");
    let (w, h) = browser::WINDOW;
    assert_eq!(b.window_size(), (u64::from(w), u64::from(h)));
    assert_eq!(b.url(), "about:blank");
    b.goto(&site.url("/"));
    assert_eq!(b.cookies(), [], "no cookie of the last test");
    let last = site.requests_to("/").pop().expect("the visit");
    assert_eq!(last.header("cookie"), None, "no cookie sent");
}

#[test]
fn a_closed_browser_leaves_no_process() {
    let b = Browser::start_fresh();
    b.goto("about:blank");
    let pids = b.pids();
    let profile = b.profile();
    assert!(
        pids.len() >= 3,
        "chromedriver, Chromium and its helpers: {pids:?}"
    );
    let named = profile.display().to_string();
    let chromium = pids
        .iter()
        .filter(|p| cmdline(**p).is_some_and(|c| c.contains(&named)));
    assert!(chromium.count() >= 2, "Chromium processes with the profile");
    b.quit();
    // Gone and reaped: not even a zombie keeps the pid.
    let left: Vec<_> = pids
        .iter()
        .filter(|p| Path::new(&format!("/proc/{p}")).exists())
        .collect();
    assert!(left.is_empty(), "still there: {left:?}");
    assert!(!profile.exists(), "the profile is removed");
}

fn cmdline(pid: u32) -> Option<String> {
    let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&bytes).replace('\0', " "))
}

/// Run by the scenario below in a child test process, with a bogus chromedriver.
#[test]
#[ignore = "run by without_chromedriver_the_harness_says_what_to_install"]
fn start_a_browser() {
    drop(Browser::start());
}

#[test]
fn without_chromedriver_the_harness_says_what_to_install() {
    // The test binary's environment is every test's: the variable goes to a child run only.
    let me = std::env::current_exe().expect("the test binary");
    let out = std::process::Command::new(me)
        .args(["--exact", "browser_harness::start_a_browser", "--ignored"])
        .args(["--nocapture", "--test-threads=1"])
        .env(browser::DRIVER_VAR, "/nonexistent/chromedriver")
        .output()
        .expect("run the test binary");
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the start failed:\n{text}");
    assert!(text.contains(browser::MISSING), "the message:\n{text}");
    assert!(text.contains("1 failed"), "the probe ran:\n{text}");
}

#[test]
fn the_programs_are_found_by_variable_path_and_debian_place() {
    let have =
        |list: &'static [&'static str]| move |p: &Path| list.iter().any(|x| Path::new(x) == p);
    let debian = have(&[
        "/usr/bin/chromedriver",
        "/usr/lib/chromium/chromium",
        "/usr/bin/chromium",
    ]);
    let path = Some(OsStr::new("/opt/x/bin:/usr/bin"));
    let found = browser::locate(None, None, path, debian);
    let expect = |d: &str, c: &str| {
        Some(Programs {
            chromedriver: PathBuf::from(d),
            chromium: PathBuf::from(c),
        })
    };
    assert_eq!(
        found,
        expect("/usr/bin/chromedriver", "/usr/lib/chromium/chromium")
    );
    // PATH first for the driver; the variables over everything.
    let opt = have(&[
        "/opt/x/bin/chromedriver",
        "/usr/bin/chromedriver",
        "/usr/bin/chromium",
    ]);
    assert_eq!(
        browser::locate(None, None, path, opt),
        expect("/opt/x/bin/chromedriver", "/usr/bin/chromium")
    );
    let own = have(&["/d", "/c", "/usr/bin/chromedriver", "/usr/bin/chromium"]);
    let (d, c) = (Some(OsStr::new("/d")), Some(OsStr::new("/c")));
    assert_eq!(browser::locate(d, c, path, own), expect("/d", "/c"));
    // A variable naming no program is a missing program, not a fallback to another one.
    let bogus = Some(OsStr::new("/nonexistent/chromedriver"));
    assert_eq!(browser::locate(bogus, None, path, debian), None);
    assert_eq!(
        browser::locate(None, None, None, have(&["/usr/bin/chromium"])),
        None
    );
}

#[test]
fn a_png_header_gives_its_size_and_an_excerpt_is_marked() {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    png.extend_from_slice(&1280u32.to_be_bytes());
    png.extend_from_slice(&900u32.to_be_bytes());
    assert_eq!(browser::png_size(&png), Some((1280, 900)));
    assert_eq!(browser::png_size(b"GIF89a"), None);
    assert_eq!(browser::png_size(&png[..20]), None);
    assert_eq!(browser::excerpt("héllo", 2), "hé [...]");
    assert_eq!(browser::excerpt("héllo", 5), "héllo");
}
