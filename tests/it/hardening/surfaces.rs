//! What each listener serves, and input the token endpoint refuses rather
//! than quietly reinterprets.

use std::net::SocketAddr;

use super::common::{Backend, TestApp, create_org};

/// With `--operator-listen`, `/metrics` and `/admin` answer only there; the
/// public listener answers 404 for them (it used to show org names and
/// per-org counts to anyone). Health answers on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_endpoints_live_only_on_the_operator_listener() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.operator_listen = Some("127.0.0.1:0".parse::<SocketAddr>().unwrap());
    })
    .await;
    let secret = create_org(app.store().as_ref(), "acme").await;
    app.token_ok("org/acme", &secret).await;
    let operator = format!("http://{}", app.server().operator_addr.unwrap());
    let status = |base: String, path: &'static str| {
        let http = app.http.clone();
        async move {
            http.get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for path in ["/metrics", "/admin/v1/orgs", "/admin/v1/openapi.json"] {
        assert_eq!(status(app.base.clone(), path).await, 404, "public {path}");
    }
    assert_eq!(status(operator.clone(), "/admin/v1/orgs").await, 401);
    assert_eq!(
        status(operator.clone(), "/admin/v1/openapi.json").await,
        200
    );
    let metrics = app
        .http
        .get(format!("{operator}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("org=\"acme\""), "{metrics}");
    for path in ["/healthz", "/readyz"] {
        assert_eq!(status(app.base.clone(), path).await, 200, "public {path}");
        assert_eq!(status(operator.clone(), path).await, 200, "operator {path}");
    }
    // Tokens and keys are public only.
    assert_eq!(
        status(operator.clone(), "/.well-known/jwks.json").await,
        404
    );
    assert_eq!(
        status(app.base.clone(), "/.well-known/jwks.json").await,
        200
    );
}

/// Without it, everything is on the one listener, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_operator_listener_everything_is_on_one() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert!(app.server().operator_addr.is_none());
    assert_eq!(app.get("/metrics").await.status(), 200);
    assert_eq!(app.get("/admin/v1/orgs").await.status(), 401);
}

/// Percent-encoded invalid UTF-8 is refused (it was replaced with U+FFFD and
/// accepted), and `scope` and `resource` are refused rather than ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_refuses_what_it_would_misread() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let secret = create_org(app.store().as_ref(), "acme").await;
    for (extra, says) in [
        ("&x=%FF", "UTF-8"),
        ("&audience=sts.amazonaws.com%C3", "UTF-8"),
        ("&scope=openid", "scope"),
        ("&resource=https%3A%2F%2Fapi.example", "resource"),
    ] {
        let r = app.token_basic("org/acme", &secret, extra).await;
        assert_eq!(r.status(), 400, "{extra}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_request", "{extra}");
        let d = v["error_description"].as_str().unwrap();
        assert!(d.contains(says), "{extra}: {d}");
    }
    // Valid percent-encoded UTF-8 is fine.
    let r = app.token_basic("org/acme", &secret, "&x=%C3%A9").await;
    assert_eq!(r.status(), 200);
}

/// A caller's `X-Request-Id` is kept only when it is made of safe characters
/// (it was adopted with quotes and backslashes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_safe_request_ids_are_adopted() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (id, kept) in [
        ("trace-123", true),
        ("Root=1-5759e988-bd862e3fe1be46a994272793", true),
        ("a/b+c@d.e:f_g", true),
        ("a\"b", false),
        ("a\\b", false),
        ("a b", false),
        ("a;b", false),
        ("{\"x\":1}", false),
    ] {
        let r = app
            .http
            .get(format!("{}/healthz", app.base))
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
        let echoed = r.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(echoed == id, kept, "{id} -> {echoed}");
    }
}
