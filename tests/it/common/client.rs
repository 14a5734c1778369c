//! The harness's HTTP client: every answer it reads is held to the framing rules
//! (`framing.rs`) before a test sees it, and every failure names the request.

use super::bodies::PASSWORD;
use super::framing::{self, Answer, Listener};
use super::paths;
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

pub const FORM: &str = "application/x-www-form-urlencoded";
pub const JSON: &str = "application/json";

/// A client for one listener of one gatehouse; cheap to clone into threads.
#[derive(Clone)]
pub struct Http {
    client: Client,
    base: String,
    listener: Listener,
}

/// An answer that passed the framing checks.
#[derive(Debug)]
pub struct Resp {
    /// `METHOD path?query` of the request.
    pub request: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// `Null` when the body is not JSON.
    pub json: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Asserts status and the whole JSON body at once, printing both on failure.
    #[track_caller]
    pub fn expect(&self, status: u16, body: Value) -> &Self {
        assert_eq!(
            (self.status, &self.json),
            (status, &body),
            "{} -> {} {}",
            self.request,
            self.status,
            self.text
        );
        self
    }

    #[track_caller]
    pub fn expect_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "{} -> {} {}",
            self.request, self.status, self.text
        );
        self
    }

    /// A string field of the JSON body.
    #[track_caller]
    pub fn field(&self, name: &str) -> String {
        self.json[name]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no string {name:?} in {}", self.request, self.text))
            .to_string()
    }

    /// `(access, refresh)` of a token pair.
    #[track_caller]
    pub fn tokens(&self) -> (String, String) {
        (self.field("access"), self.field("refresh"))
    }

    /// The body's keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self
            .json
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    }
}

/// The `id` of a user as the API shows it.
#[track_caller]
pub fn id_of(user: &Value) -> u64 {
    user["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no numeric id in {user}"))
}

/// An error with what caused it (reqwest's own text says only "error sending request"; the
/// causes say whether the connection was refused, reset or timed out).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

impl Http {
    pub fn new(base: String, listener: Listener, pooled: bool) -> Http {
        let mut client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30));
        if !pooled {
            client = client.pool_max_idle_per_host(0);
        }
        Http {
            client: client.build().expect("client"),
            base,
            listener,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn request(&self, method: &str, path: &str) -> RequestBuilder {
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        self.client.request(m, self.url(path))
    }

    /// Sends, reads and checks the answer; panics when there is none.
    #[track_caller]
    pub fn send(&self, rb: RequestBuilder) -> Resp {
        self.try_send(rb)
            .unwrap_or_else(|e| panic!("no answer from gatehouse: {e}"))
    }

    /// As `send`, but a request that gets no (whole) answer is an `Err`: for scenarios that
    /// kill or replace the server under load. An answer that arrives is still checked.
    #[track_caller]
    pub fn try_send(&self, rb: RequestBuilder) -> Result<Resp, String> {
        let (client, request) = rb.build_split();
        let request = request.map_err(|e| format!("bad request: {e}"))?;
        let url = request.url();
        let label = format!(
            "{} {}{}",
            request.method(),
            url.path(),
            url.query().map(|q| format!("?{q}")).unwrap_or_default()
        );
        let head = request.method() == Method::HEAD;
        let r = client
            .execute(request)
            .map_err(|e| format!("{label}: {}", with_causes(&e)))?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r
            .bytes()
            .map_err(|e| format!("{label} -> {status}: reading the body: {}", with_causes(&e)))?;
        let header = |name: &str| -> Vec<String> {
            headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect()
        };
        let answer = Answer {
            request: &label,
            head,
            status,
            header: &header,
            body: &body,
        };
        framing::check(self.listener, &answer, Vec::new());
        let text = String::from_utf8_lossy(&body).into_owned();
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok(Resp {
            request: label,
            status,
            headers,
            text,
            json,
        })
    }

    /// `method path` with an optional JSON body and optional bearer token.
    #[track_caller]
    pub fn call(&self, method: &str, path: &str, body: Option<Value>, token: Option<&str>) -> Resp {
        let mut rb = self.request(method, path);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        self.send(rb)
    }

    #[track_caller]
    pub fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call("GET", path, None, token)
    }

    #[track_caller]
    pub fn post(&self, path: &str, body: Value, token: Option<&str>) -> Resp {
        self.call("POST", path, Some(body), token)
    }

    /// `method path` with one extra header.
    #[track_caller]
    pub fn with_header(&self, method: &str, path: &str, name: &str, value: &str) -> Resp {
        self.with_headers(method, path, &[(name, value)])
    }

    /// `method path` with these headers, in order.
    #[track_caller]
    pub fn with_headers(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut rb = self.request(method, path);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        self.send(rb)
    }

    /// `method path` with a body of any content type, as given.
    #[track_caller]
    pub fn with_body(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: impl Into<Vec<u8>>,
        token: Option<&str>,
    ) -> Resp {
        let mut rb = self
            .request(method, path)
            .header("Content-Type", content_type)
            .body(body.into());
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        self.send(rb)
    }

    /// A form-encoded body, as DRF accepts beside JSON.
    #[track_caller]
    pub fn form(&self, method: &str, path: &str, body: &str, token: Option<&str>) -> Resp {
        self.with_body(method, path, FORM, body, token)
    }

    // -----------------------------------------------------------------------------------------
    // The user API's steps that scenarios take on the way to what they test.

    /// Registers with these fields; the answer unchecked.
    #[track_caller]
    pub fn register_as(&self, username: &str, email: &str, password: &str) -> Resp {
        self.post(
            paths::REGISTER,
            json!({"username": username, "email": email, "password": password}),
            None,
        )
    }

    /// Registers `username` with `<username>@example.com` and `PASSWORD`; asserts 201.
    #[track_caller]
    pub fn register(&self, username: &str) -> Value {
        let r = self.register_as(username, &format!("{username}@example.com"), PASSWORD);
        r.expect_status(201);
        r.json
    }

    /// A login; the answer unchecked.
    #[track_caller]
    pub fn login_attempt(&self, username: &str, password: &str) -> Resp {
        self.post(
            paths::TOKEN,
            json!({"username": username, "password": password}),
            None,
        )
    }

    /// Logs in; asserts 200; returns (access, refresh).
    #[track_caller]
    pub fn login(&self, username: &str, password: &str) -> (String, String) {
        let r = self.login_attempt(username, password);
        r.expect_status(200);
        r.tokens()
    }

    /// Registers and logs in; returns (id, access, refresh).
    #[track_caller]
    pub fn user(&self, username: &str) -> (u64, String, String) {
        let id = id_of(&self.register(username));
        let (access, refresh) = self.login(username, PASSWORD);
        (id, access, refresh)
    }

    /// Registers and logs in; returns the access token.
    #[track_caller]
    pub fn user_token(&self, username: &str) -> String {
        self.user(username).1
    }

    #[track_caller]
    pub fn refresh(&self, refresh_token: &str) -> Resp {
        self.post(paths::REFRESH, json!({ "refresh": refresh_token }), None)
    }

    #[track_caller]
    pub fn verify(&self, token: &str) -> Resp {
        self.post(paths::VERIFY, json!({ "token": token }), None)
    }

    #[track_caller]
    pub fn logout(&self, refresh_token: &str) -> Resp {
        self.post(paths::LOGOUT, json!({ "refresh": refresh_token }), None)
    }

    /// The README's password change: `PUT` with `old_password`; the answer unchecked.
    #[track_caller]
    pub fn change_password(&self, access: &str, old: &str, new: &str) -> Resp {
        self.call(
            "PUT",
            paths::PASSWORD_CHANGE,
            Some(json!({"old_password": old, "new_password": new})),
            Some(access),
        )
    }

    /// The user of `access` soft-deletes their own account; the answer unchecked.
    #[track_caller]
    pub fn soft_delete(&self, access: &str) -> Resp {
        self.call("DELETE", paths::PROFILE_DELETE, None, Some(access))
    }

    /// A staff user restores user `id`; the answer unchecked.
    #[track_caller]
    pub fn restore(&self, staff_access: &str, id: u64) -> Resp {
        self.call("PUT", &paths::admin_restore(id), None, Some(staff_access))
    }
}
