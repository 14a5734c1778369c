use crate::common;

// CSRF as Django 5 does it (SPEC §15), checked against the real Django of the tests' virtualenv:
// tokens masked by either side are accepted by the other for the same secret and refused for
// another, and Django's `CsrfViewMiddleware`, driven with a `RequestFactory`, refuses the same
// requests as `gatehouse::auth::csrf::check` with the same reason, byte for byte.

use gatehouse::auth::csrf::{self, CsrfInput, Refused};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

/// Configures Django with the request's `trusted` origins, then answers: `masked` (Django's
/// `_mask_cipher_secret` of each of `mask`), `matches` (`_check_token_format` +
/// `_does_token_match` of each `{token, secret}`), `fresh` (a secret and token from
/// `get_token`), `reasons` (what `CsrfViewMiddleware.process_view` refuses each request for, as
/// DRF's `CSRFCheck` reads it; null when it passes).
const DJANGO: &str = r#"
import json, sys
import django
from django.conf import settings

req = json.load(sys.stdin)
settings.configure(
    SECRET_KEY="gatehouse-csrf-parity",
    ALLOWED_HOSTS=["*"],
    CSRF_TRUSTED_ORIGINS=req["trusted"],
    USE_TZ=True,
    LOGGING_CONFIG=None,
)
django.setup()

from django.middleware.csrf import (
    CsrfViewMiddleware, InvalidTokenFormat, _check_token_format, _does_token_match,
    _mask_cipher_secret, get_token,
)
from django.test import RequestFactory


class Check(CsrfViewMiddleware):
    def _reject(self, request, reason):
        return reason


def view(request):
    return None


def matches(token, secret):
    try:
        _check_token_format(token)
    except InvalidTokenFormat:
        return False
    return _does_token_match(token, secret)


rf = RequestFactory()
out = {
    "masked": [_mask_cipher_secret(s) for s in req["mask"]],
    "matches": [matches(c["token"], c["secret"]) for c in req["match"]],
}
r = rf.get("/")
token = get_token(r)
out["fresh"] = {"secret": r.META["CSRF_COOKIE"], "token": token}

reasons = []
for c in req["requests"]:
    extra = {"HTTP_HOST": c["host"]}
    for key, name in [("origin", "HTTP_ORIGIN"), ("referer", "HTTP_REFERER"), ("header", "HTTP_X_CSRFTOKEN")]:
        if c.get(key) is not None:
            extra[name] = c[key]
    if c.get("cookie") is not None:
        extra["HTTP_COOKIE"] = "csrftoken=" + c["cookie"]
    if c["method"] == "POST" and c.get("form") is not None:
        r = rf.post("/", data={"csrfmiddlewaretoken": c["form"]}, secure=c["secure"], **extra)
    else:
        r = rf.generic(c["method"], "/", secure=c["secure"], **extra)
    check = Check(lambda r: None)
    check.process_request(r)
    reasons.append(check.process_view(r, view, (), {}))
out["reasons"] = reasons
print(json.dumps(out))
"#;

fn django(request: &Value) -> Value {
    let mut child = Command::new(common::django::python())
        .arg("-c")
        .arg(DJANGO)
        .env_remove("DJANGO_SETTINGS_MODULE")
        .env_remove("PYTHONPATH")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the virtualenv's python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write the request");
    let out = child.wait_with_output().expect("python runs");
    assert!(
        out.status.success(),
        "the Django CSRF script failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

const TRUSTED: [&str; 2] = ["https://*.example.org", "https://partner.test"];
const HOST: &str = "www.example.com";

/// One request, as both sides see it.
#[derive(Clone, Copy)]
struct Case<'a> {
    method: &'a str,
    secure: bool,
    origin: Option<&'a str>,
    referer: Option<&'a str>,
    cookie: Option<&'a str>,
    form: Option<&'a str>,
    header: Option<&'a str>,
}

impl Case<'_> {
    fn json(&self) -> Value {
        json!({
            "method": self.method, "secure": self.secure, "host": HOST,
            "origin": self.origin, "referer": self.referer, "cookie": self.cookie,
            "form": self.form, "header": self.header,
        })
    }

    fn ours(&self) -> Option<String> {
        let method = http::Method::from_bytes(self.method.as_bytes()).expect("a method");
        let scheme = if self.secure { "https" } else { "http" };
        let own_origin = format!("{scheme}://{HOST}");
        let trusted: Vec<String> = TRUSTED.iter().map(|t| t.to_string()).collect();
        let input = CsrfInput {
            method: &method,
            secure: self.secure,
            own_origin: &own_origin,
            origin: self.origin,
            referer: self.referer,
            cookie: self.cookie,
            form_token: self.form,
            header_token: self.header,
        };
        csrf::check(&input, &trusted).err().map(|Refused(r)| r)
    }
}

#[test]
fn tokens_masked_by_either_side_work_on_the_other_and_refusals_read_as_djangos() {
    let ours = csrf::new_secret();
    let other = csrf::new_secret();
    let our_token = csrf::mask(&ours);
    let legacy_cookie = csrf::mask(&ours);
    let a32 = "a".repeat(32);
    let a33 = "a".repeat(33);
    let stars = "*".repeat(64);
    let accented = format!("é{}", "a".repeat(31));
    let at_cookie = "@".repeat(32);
    let other_token = csrf::mask(&other);

    let good = Case {
        method: "POST",
        secure: true,
        origin: None,
        referer: Some("https://www.example.com/form/"),
        cookie: Some(&ours),
        form: Some(&our_token),
        header: None,
    };
    #[rustfmt::skip]
    let cases = [
        // Passing.
        good,
        Case { form: None, header: Some(&our_token), ..good },
        Case { form: Some(&ours), ..good },
        Case { cookie: Some(&legacy_cookie), ..good },
        Case { form: Some(""), header: Some(&our_token), ..good },
        Case { method: "PUT", form: None, header: Some(&our_token), ..good },
        Case { method: "DELETE", form: None, header: Some(&ours), ..good },
        Case { origin: Some("https://www.example.com"), referer: None, ..good },
        Case { origin: Some("https://a.example.org"), referer: None, ..good },
        Case { origin: Some("https://partner.test"), referer: None, ..good },
        Case { referer: Some("https://b.example.org/x"), ..good },
        Case { secure: false, referer: None, ..good },
        Case { method: "GET", cookie: None, form: None, referer: None, ..good },
        Case { method: "OPTIONS", origin: Some("https://evil.test"), ..good },
        // The cookie.
        Case { cookie: None, ..good },
        Case { cookie: Some(""), ..good },
        Case { cookie: Some(&a33), ..good },
        Case { cookie: Some(&at_cookie), ..good },
        // The token.
        Case { form: None, ..good },
        Case { form: Some(""), ..good },
        Case { method: "PUT", ..good },
        Case { form: Some("abc"), ..good },
        Case { form: Some(&stars), ..good },
        Case { form: Some(&accented), ..good },
        Case { form: Some(&a32), ..good },
        Case { form: Some(&other_token), ..good },
        Case { form: None, header: Some(""), ..good },
        Case { form: None, header: Some(&a33), ..good },
        Case { form: None, header: Some(&stars[..32]), ..good },
        Case { form: None, header: Some(&a32), ..good },
        Case { form: None, header: Some(&other_token), ..good },
        Case { method: "PATCH", form: None, header: Some(&other), ..good },
        // Origin.
        Case { origin: Some("https://evil.test"), ..good },
        Case { origin: Some("http://www.example.com"), ..good },
        Case { origin: Some("null"), ..good },
        Case { origin: Some("https://example.org.evil.test"), ..good },
        Case { origin: Some("http://a.example.org"), ..good },
        Case { secure: false, origin: Some("https://evil.test"), ..good },
        // Referer, over HTTPS without Origin.
        Case { referer: None, ..good },
        Case { referer: Some(""), ..good },
        Case { referer: Some("not a url"), ..good },
        Case { referer: Some("https://[::1"), ..good },
        Case { referer: Some("http://www.example.com/form/"), ..good },
        Case { referer: Some("https://evil.test/page?"), ..good },
        Case { referer: Some("HTTPS://evil.test/a;?q#"), ..good },
        Case { referer: Some("https://user@www.example.com/"), ..good },
        Case { referer: Some("https://www.example.com:8443/"), ..good },
        Case { referer: Some("https://www.example.com.evil.test/"), ..good },
    ];

    let request = json!({
        "trusted": TRUSTED,
        "mask": [&ours, &other],
        "match": [
            {"token": &our_token, "secret": &ours},
            {"token": &our_token, "secret": &other},
            {"token": &ours, "secret": &ours},
            {"token": csrf::mask(&other), "secret": &other},
            {"token": csrf::mask(&other), "secret": &ours},
        ],
        "requests": cases.iter().map(Case::json).collect::<Vec<_>>(),
    });
    let answer = django(&request);

    // Gatehouse's tokens in Django.
    assert_eq!(answer["matches"], json!([true, false, true, true, false]));

    // Django's tokens in gatehouse.
    let check_header = |secret: &str, token: &str| {
        Case {
            form: None,
            header: Some(token),
            cookie: Some(secret),
            ..good
        }
        .ours()
    };
    let masked = answer["masked"].as_array().expect("masked tokens");
    let (for_ours, for_other) = (
        masked[0].as_str().expect("a token"),
        masked[1].as_str().expect("a token"),
    );
    assert_eq!(check_header(&ours, for_ours), None);
    assert_eq!(check_header(&other, for_other), None);
    assert_eq!(
        check_header(&ours, for_other).as_deref(),
        Some("CSRF token from the 'X-Csrftoken' HTTP header incorrect.")
    );
    let fresh_secret = answer["fresh"]["secret"].as_str().expect("a secret");
    let fresh_token = answer["fresh"]["token"].as_str().expect("a token");
    assert_eq!(
        csrf::cookie_secret(fresh_secret).as_deref(),
        Some(fresh_secret)
    );
    assert_eq!(check_header(fresh_secret, fresh_token), None);
    assert_eq!(
        Case {
            form: Some(fresh_token),
            cookie: Some(fresh_secret),
            ..good
        }
        .ours(),
        None
    );

    // The same refusals, word for word.
    let reasons = answer["reasons"].as_array().expect("reasons");
    assert_eq!(reasons.len(), cases.len());
    let mut refused = 0;
    for (case, django) in cases.iter().zip(reasons) {
        let django = django.as_str().map(str::to_string);
        refused += usize::from(django.is_some());
        assert_eq!(case.ours(), django, "request {}", case.json());
    }
    // The first 14 cases pass; every other one is refused, by both.
    assert_eq!(
        refused,
        cases.len() - 14,
        "Django refused {refused} requests"
    );
}

#[test]
fn a_refusal_renders_as_drf_does() {
    let body = csrf::json_detail(&Refused("CSRF cookie not set.".into()));
    let parsed: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        parsed,
        json!({"detail": "CSRF Failed: CSRF cookie not set."})
    );
}
