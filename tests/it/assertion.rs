use crate::common;

// Signed identity for upstreams (SPEC §11): with `identity_assertion = true` the upstream gets
// `X-Gatehouse-Assertion`, a JWT it can verify with any JOSE library against gatehouse's JWKS.
// Verified here by PyJWT, an independent implementation.

use common::upstream::Upstream;
use common::*;
use gatehouse::config::{Config, RouteConfig};
use serde_json::{json, Value};

fn verify(jwks: &Value, token: &str, audience: &str) -> Value {
    common::django::run_script(
        "verify_assertion.py",
        &json!({"jwks": jwks, "token": token, "audience": audience, "issuer": "gatehouse"}),
    )
}

fn routes(up: &Upstream) -> impl FnOnce(&mut Config) {
    let addr = up.addr;
    move |c| {
        c.routes = vec![
            RouteConfig {
                identity_assertion: true,
                audience: Some("orders-service".into()),
                ..route("/orders/", &[addr])
            },
            route("/plain/", &[addr]),
        ]
    }
}

#[test]
fn upstreams_get_an_assertion_that_pyjwt_verifies_and_that_follows_the_user_state() {
    let up = Upstream::start();
    let g = Gatehouse::new().with_config(routes(&up)).start();
    let token = g.user_token("ursula");
    let id = g.get("/api/auth/profile/", Some(&token)).json["id"].clone();
    let jwks = g.get("/.well-known/jwks.json", None);
    jwks.expect_status(200);
    let jwks = jwks.json;
    assert_eq!(
        jwks["keys"][0]["kty"], "OKP",
        "an Ed25519 key for HS256 tokens: {jwks}"
    );
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "no private part is published"
    );

    // A client's own copy never reaches the upstream; gatehouse's does.
    let forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.";
    g.send(
        g.request("GET", "/orders/7")
            .bearer_auth(&token)
            .header("X-Gatehouse-Assertion", forged),
    )
    .expect_status(200);
    let sent = up.last().header_values("x-gatehouse-assertion");
    assert_eq!(sent.len(), 1, "exactly one assertion: {sent:?}");
    assert_ne!(sent[0], forged);
    let first = sent[0].clone();

    // The same user and state within 30 s: the same signature, not a new one per request.
    // Asked at once, before the slow PyJWT checks below, so a busy machine stays within 30 s.
    g.get("/orders/8", Some(&token)).expect_status(200);
    assert_eq!(
        up.last().header("x-gatehouse-assertion"),
        Some(first.clone())
    );

    let verified = verify(&jwks, &first, "orders-service");
    let claims = &verified["claims"];
    assert!(claims.is_object(), "PyJWT verifies it: {verified}");
    assert_eq!(claims["sub"], json!(id.to_string()));
    assert_eq!(claims["username"], "ursula");
    assert_eq!(claims["is_staff"], false);
    assert_eq!(claims["groups"], json!([]));
    assert_eq!(claims["iss"], "gatehouse");
    assert_eq!(claims["aud"], "orders-service");
    let lifetime = claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat");
    assert_eq!(lifetime, 60);
    assert_eq!(claims["jti"].as_str().map(str::len), Some(32));

    // Another audience, or a tampered assertion, does not verify.
    let wrong = verify(&jwks, &first, "billing-service");
    assert!(
        wrong["error"]
            .as_str()
            .is_some_and(|e| e.contains("Audience")),
        "{wrong}"
    );
    let mut parts: Vec<String> = first.split('.').map(str::to_string).collect();
    let payload = b64(br#"{"sub":"1","username":"root","is_staff":true,"aud":"orders-service","iss":"gatehouse","exp":9999999999,"iat":1}"#);
    parts[1] = payload;
    let tampered = verify(&jwks, &parts.join("."), "orders-service");
    assert!(
        tampered["error"]
            .as_str()
            .is_some_and(|e| e.contains("Signature")),
        "{tampered}"
    );

    // A change of the user's state changes the next assertion at once.
    g.call(
        "PATCH",
        "/api/auth/profile/",
        Some(json!({"username": "ursula2"})),
        Some(&token),
    )
    .expect_status(200);
    g.get("/orders/9", Some(&token)).expect_status(200);
    let renewed = up
        .last()
        .header("x-gatehouse-assertion")
        .expect("assertion");
    assert_ne!(renewed, first);
    assert_eq!(
        verify(&jwks, &renewed, "orders-service")["claims"]["username"],
        "ursula2"
    );

    // A route without identity_assertion sends none (and strips the client's).
    g.send(
        g.request("GET", "/plain/x")
            .bearer_auth(&token)
            .header("X-Gatehouse-Assertion", forged),
    )
    .expect_status(200);
    assert!(up.last().header_values("x-gatehouse-assertion").is_empty());
}

#[test]
fn forward_auth_hands_the_assertion_to_the_ingress_and_the_key_survives_a_restart() {
    let up = Upstream::start();
    let mut g = Gatehouse::new()
        .with_config(routes(&up))
        .with_config(|c| c.forward_auth.enabled = true)
        .start();
    let token = g.user_token("victor");
    let jwks = g.get("/.well-known/jwks.json", None).json;
    let r = g.send(
        g.request("GET", "/_gatehouse/auth")
            .bearer_auth(&token)
            .header("X-Original-URI", "/orders/1"),
    );
    r.expect_status(200);
    let assertion = r
        .header("x-gatehouse-assertion")
        .expect("assertion for the ingress");
    assert_eq!(
        verify(&jwks, &assertion, "orders-service")["claims"]["username"],
        "victor"
    );
    // The generated key is kept in the data directory (0600) and reused after a restart.
    let key = g.data_dir.join("assertion_ed25519.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    g.restart();
    assert_eq!(
        g.get("/.well-known/jwks.json", None).json,
        jwks,
        "the same public key"
    );
}
