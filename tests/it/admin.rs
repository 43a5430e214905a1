//! The admin API (`/admin/v1`) on both backends: bearer tokens, orgs, agents,
//! credential rotation without downtime, signing keys and audit queries, and
//! the errors the OpenAPI document promises.

use crate::common;

use std::time::Duration;

use common::{Backend, TestApp, claims, mint_post};
use serde_json::{Value, json};

/// A server and an admin token for it.
struct Admin {
    app: TestApp,
    token: String,
    token_id: String,
}

impl Admin {
    async fn spawn(backend: Backend) -> Self {
        let app = TestApp::spawn(backend).await;
        let token = common::create_admin_token(app.store().as_ref(), "adm_test").await;
        Admin {
            app,
            token,
            token_id: "adm_test".into(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/admin/v1{path}", self.app.base)
    }

    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .app
            .http
            .request(method.parse().unwrap(), self.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        if status != 204 {
            assert_eq!(
                r.headers()["content-type"],
                "application/json",
                "{method} {path}"
            );
        }
        let text = r.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, v)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, Some(body)).await
    }
}

async fn token_status(app: &TestApp, client_id: &str, secret: &str) -> u16 {
    app.token_basic(client_id, secret, "")
        .await
        .status()
        .as_u16()
}

async fn bearer_tokens_guard_everything_but_the_document(backend: Backend) {
    let a = Admin::spawn(backend).await;
    let http = &a.app.http;
    // No token, a malformed header, a wrong token, another scheme: 401 with a challenge.
    for auth in [
        None,
        Some("Bearer".to_owned()),
        Some("Bearer nomos_at_wrong".to_owned()),
        Some(format!("Basic {}", a.token)),
        Some(format!("Bearer {}x", a.token)),
    ] {
        let mut req = http.get(a.url("/orgs"));
        if let Some(v) = &auth {
            req = req.header("authorization", v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert_eq!(
            r.headers()["www-authenticate"],
            r#"Bearer realm="nomos-issuer admin""#
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "unauthorized");
    }
    let (status, _) = a.get("/orgs").await;
    assert_eq!(status, 200);
    // The scheme is case-insensitive.
    let r = http
        .get(a.url("/keys"))
        .header("authorization", format!("bearer {}", a.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The document needs no token and is the checked-in file.
    let r = http.get(a.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let served: Value = r.json().await.unwrap();
    let file: Value =
        serde_json::from_str(include_str!("../../docs/openapi.json")).expect("docs/openapi.json");
    assert_eq!(served, file);
    // A revoked token stops working at once.
    a.app
        .store()
        .revoke_admin_token(&a.token_id, nomos_issuer::app::now())
        .await
        .unwrap();
    let (status, _) = a.get("/orgs").await;
    assert_eq!(status, 401);
}

async fn orgs_and_agents_are_created_listed_and_used(backend: Backend) {
    let a = Admin::spawn(backend).await;
    let (status, v) = a
        .post(
            "/orgs",
            json!({"id": "acme", "audiences": ["sts.amazonaws.com", "api.example"], "max_ttl_seconds": 600}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["client_id"], "org/acme");
    assert_eq!(v["org"]["max_ttl_seconds"], 600);
    assert_eq!(v["credential"]["kind"], "secret");
    let secret = v["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("nomos_cs_"));
    let token = mint_post(&a.app.http, &a.app.base, "org/acme", &secret).await;
    assert_eq!(claims(&token)["sub"], "org/acme");

    let (status, v) = a.post("/orgs", json!({"id": "acme"})).await;
    assert_eq!((status, v["error"].as_str()), (409, Some("conflict")));
    for bad in [
        json!({"id": "Acme"}),
        json!({"id": "acme-", "audiences": []}),
        json!({"id": "beta", "audiences": []}),
        json!({"id": "beta", "max_ttl_seconds": 3601}),
        json!({"id": "beta", "audiences": ["a", "b", "a"]}),
        json!({"id": "beta", "audiences": (0..=100).map(|i| format!("a{i}")).collect::<Vec<_>>()}),
        json!({"id": "beta", "max_ttl_seconds": -1}),
        json!({"id": "beta", "unknown": 1}),
        json!({"audiences": ["x"]}),
        json!([1, 2]),
        json!(["x"]),
    ] {
        let (status, v) = a.post("/orgs", bad.clone()).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some("bad_request")),
            "{bad}"
        );
    }

    for id in ["beta", "gamma", "delta"] {
        assert_eq!(a.post("/orgs", json!({ "id": id })).await.0, 201);
    }
    let (_, page) = a.get("/orgs?limit=2").await;
    let ids: Vec<&str> = page["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme", "beta"]);
    assert_eq!(page["next"], "beta");
    let (_, page) = a.get("/orgs?limit=2&after=beta").await;
    assert_eq!(page["orgs"][0]["id"], "delta");
    assert_eq!(page["orgs"][1]["id"], "gamma");
    let (_, page) = a.get("/orgs?limit=2&after=gamma").await;
    assert_eq!(page, json!({"orgs": [], "next": null}));
    assert_eq!(a.get("/orgs?limit=0").await.0, 400);
    assert_eq!(a.get("/orgs?limit=x").await.0, 400);
    assert_eq!(a.get("/orgs?after=NOPE").await.0, 400);

    let (status, org) = a.get("/orgs/acme").await;
    assert_eq!(status, 200);
    assert_eq!(
        org["audiences"],
        json!(["sts.amazonaws.com", "api.example"])
    );
    assert_eq!(a.get("/orgs/nobody").await.0, 404);
    assert_eq!(a.get("/orgs/NOT%20AN%20ID").await.0, 404);

    // Agents: one with a secret, one with a public key.
    let (status, v) = a.post("/orgs/acme/agents", json!({"id": "deployer"})).await;
    assert_eq!(status, 201, "{v}");
    let agent_secret = v["client_secret"].as_str().unwrap().to_owned();
    let token = mint_post(
        &a.app.http,
        &a.app.base,
        "org/acme/agent/deployer",
        &agent_secret,
    )
    .await;
    assert_eq!(claims(&token)["agent_id"], "deployer");
    let key = common::client_key();
    let (status, v) = a
        .post(
            "/orgs/acme/agents",
            json!({"id": "ci", "public_jwks": {"keys": [key.public]}}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["client_secret"], Value::Null);
    assert_eq!(v["credential"]["kind"], "public_key");
    assert_eq!(v["credential"]["kids"].as_array().unwrap().len(), 1);
    let (status, v) = a
        .post(
            "/orgs/acme/agents",
            json!({"id": "bad", "public_jwks": {"kty": "oct", "k": "AAAA"}}),
        )
        .await;
    assert_eq!((status, v["error"].as_str()), (400, Some("bad_request")));
    assert_eq!(
        a.post("/orgs/nobody/agents", json!({"id": "x"})).await.0,
        404
    );
    assert_eq!(
        a.post("/orgs/acme/agents", json!({"id": "deployer"}))
            .await
            .0,
        409
    );
    let (_, agents) = a.get("/orgs/acme/agents").await;
    let ids: Vec<&str> = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ci", "deployer"]);
    assert_eq!(a.get("/orgs/acme/agents/ci").await.1["org_id"], "acme");
    assert_eq!(a.get("/orgs/acme/agents/nobody").await.0, 404);
    assert_eq!(a.get("/orgs/nobody/agents").await.0, 404);
}

async fn secrets_rotate_without_downtime(backend: Backend) {
    let a = Admin::spawn(backend).await;
    let (_, v) = a.post("/orgs", json!({"id": "acme"})).await;
    let old = v["client_secret"].as_str().unwrap().to_owned();
    let old_id = v["credential"]["id"].as_str().unwrap().to_owned();
    // A second secret: both work.
    let (status, v) = a
        .post("/orgs/acme/credentials", json!({"kind": "secret"}))
        .await;
    assert_eq!(status, 201, "{v}");
    let new = v["client_secret"].as_str().unwrap().to_owned();
    // The replica that added it knows at once.
    assert_eq!(token_status(&a.app, "org/acme", &new).await, 200);
    assert_eq!(token_status(&a.app, "org/acme", &old).await, 200);
    // A third is refused until one is revoked.
    let (status, v) = a
        .post("/orgs/acme/credentials", json!({"kind": "secret"}))
        .await;
    assert_eq!((status, v["error"].as_str()), (409, Some("conflict")));
    // Revoke the old one: it stops working, the new one keeps working.
    let (status, _) = a
        .send("DELETE", &format!("/orgs/acme/credentials/{old_id}"), None)
        .await;
    assert_eq!(status, 204);
    // The replica that revoked it refuses it from the 204 on (it used to
    // mint for up to a third of a second): not one token after the answer.
    let mut minted = 0;
    for _ in 0..30 {
        if token_status(&a.app, "org/acme", &old).await != 401 {
            minted += 1;
        }
    }
    assert_eq!(minted, 0, "tokens minted with a revoked secret");
    assert_eq!(token_status(&a.app, "org/acme", &new).await, 200);
    let (status, _) = a
        .send("DELETE", &format!("/orgs/acme/credentials/{old_id}"), None)
        .await;
    assert_eq!(status, 404, "revoking twice");
    let (_, list) = a.get("/orgs/acme/credentials").await;
    let list = list["credentials"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    for c in &list {
        assert_eq!(c["revoked_at"].is_i64(), c["id"] == old_id.as_str(), "{c}");
    }

    // Bad credential bodies.
    for bad in [
        json!({"kind": "password"}),
        json!({"kind": "public_key"}),
        json!({"kind": "secret", "public_jwks": {}}),
        json!({}),
    ] {
        assert_eq!(
            a.post("/orgs/acme/credentials", bad.clone()).await.0,
            400,
            "{bad}"
        );
    }
    assert_eq!(
        a.post("/orgs/nobody/credentials", json!({"kind": "secret"}))
            .await
            .0,
        404
    );

    // An agent registers a public key, then it is removed.
    a.post("/orgs/acme/agents", json!({"id": "ci"})).await;
    let key = common::client_key();
    let (status, v) = a
        .post(
            "/orgs/acme/agents/ci/credentials",
            json!({"kind": "public_key", "public_jwks": key.public}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let key_cred = v["credential"]["id"].as_str().unwrap().to_owned();
    let token_endpoint = format!("{}/oauth2/token", a.app.issuer());
    let assertion =
        |jti: &str| common::assertion(&key, "org/acme/agent/ci", &token_endpoint, 60, jti);
    let mut ok = false;
    for i in 0..50 {
        if common::assertion_status(&a.app, &assertion(&format!("a{i}"))).await == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the registered key authenticates");
    let (status, _) = a
        .send(
            "DELETE",
            &format!("/orgs/acme/agents/ci/credentials/{key_cred}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let mut refused = false;
    for i in 0..50 {
        if common::assertion_status(&a.app, &assertion(&format!("b{i}"))).await == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "a removed key no longer authenticates");
    // The org's credentials are not the agent's.
    assert_eq!(
        a.send(
            "DELETE",
            &format!("/orgs/acme/credentials/{key_cred}"),
            None
        )
        .await
        .0,
        404
    );
}

async fn keys_are_listed_rotated_and_revoked(backend: Backend) {
    let a = Admin::spawn(backend).await;
    let (status, v) = a.get("/keys").await;
    assert_eq!(status, 200);
    let keys = v["keys"].as_array().unwrap();
    let current = keys.iter().find(|k| k["state"] == "current").unwrap();
    let current_kid = current["kid"].as_str().unwrap().to_owned();
    assert_eq!(current["public_jwk"]["kid"], current_kid.as_str());
    // The next key is too fresh for a safe rotation: 409 says when.
    let (status, v) = a.post("/keys/rotate", json!({})).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("conflict")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("can sign safely"));
    // An emergency rotation: a fresh key signs at once, served by this replica now.
    let (status, v) = a.post("/keys/rotate", json!({"now": true})).await;
    assert_eq!(status, 200, "{v}");
    let new_current = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "current")
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_current, current_kid);
    assert_eq!(a.app.server().app.keys.get().signer.kid(), new_current);
    // Revoke the old one: out of the JWKS at once.
    let (status, v) = a
        .send("POST", &format!("/keys/{current_kid}/revoke"), None)
        .await;
    assert_eq!(status, 200, "{v}");
    let jwks = a.app.jwks().await;
    assert!(
        !jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == current_kid.as_str())
    );
    let (status, _) = a
        .send("POST", &format!("/keys/{current_kid}/revoke"), None)
        .await;
    assert_eq!(status, 409, "revoking twice");
    let (status, _) = a.send("POST", "/keys/nokid/revoke", None).await;
    assert_eq!(status, 404);
    // Bodies: empty is fine, a wrong type or field is not.
    let r = a
        .app
        .http
        .post(a.url("/keys/rotate"))
        .bearer_auth(&a.token)
        .header("content-type", "text/plain")
        .body("now")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(a.post("/keys/rotate", json!({"now": "yes"})).await.0, 400);
    assert_eq!(a.post("/keys/rotate", json!([true])).await.0, 400);
    let r = a
        .app
        .http
        .post(a.url("/keys/rotate"))
        .bearer_auth(&a.token)
        .header("content-type", "application/json")
        .body(vec![b' '; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/json");
}

async fn audit_is_queried_by_org_agent_time_and_jti(backend: Backend) {
    let a = Admin::spawn(backend).await;
    let (_, v) = a.post("/orgs", json!({"id": "acme"})).await;
    let acme = v["client_secret"].as_str().unwrap().to_owned();
    let (_, v) = a.post("/orgs", json!({"id": "beta"})).await;
    let beta = v["client_secret"].as_str().unwrap().to_owned();
    let (_, v) = a.post("/orgs/acme/agents", json!({"id": "ci"})).await;
    let ci = v["client_secret"].as_str().unwrap().to_owned();
    let mut jtis = Vec::new();
    for (client, secret) in [
        ("org/acme", &acme),
        ("org/acme", &acme),
        ("org/beta", &beta),
        ("org/acme/agent/ci", &ci),
        ("org/acme/agent/ci", &ci),
    ] {
        let t = mint_post(&a.app.http, &a.app.base, client, secret).await;
        jtis.push(claims(&t)["jti"].as_str().unwrap().to_owned());
    }
    let (status, v) = a.get("/audit").await;
    assert_eq!(status, 200);
    assert_eq!(v["tokens"].as_array().unwrap().len(), 5);
    assert_eq!(v["next"], Value::Null);
    let (_, v) = a.get("/audit?org=acme").await;
    assert_eq!(v["tokens"].as_array().unwrap().len(), 4);
    let (_, v) = a.get("/audit?org=acme&agent=ci").await;
    let rows = v["tokens"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["subject"] == "org/acme/agent/ci"));
    // Paging with the cursor visits every record once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/audit?limit=2".to_owned(),
            Some(c) => format!("/audit?limit=2&before={c}"),
        };
        let (status, v) = a.get(&path).await;
        assert_eq!(status, 200, "{v}");
        for r in v["tokens"].as_array().unwrap() {
            seen.push(r["jti"].as_str().unwrap().to_owned());
        }
        match v["next"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    seen.sort();
    let mut want = jtis.clone();
    want.sort();
    assert_eq!(seen, want);
    // Time bounds.
    let now = nomos_issuer::app::now();
    let (_, v) = a.get(&format!("/audit?since={}", now + 10)).await;
    assert_eq!(v["tokens"], json!([]));
    let (_, v) = a.get(&format!("/audit?until={}", now + 10)).await;
    assert_eq!(v["tokens"].as_array().unwrap().len(), 5);
    // One record by jti.
    let (status, v) = a.get(&format!("/audit/{}", jtis[2])).await;
    assert_eq!(status, 200);
    assert_eq!(v["subject"], "org/beta");
    assert_eq!(v["auth_method"], "client_secret_post");
    assert_eq!(a.get("/audit/unknown").await.0, 404);
    // Bad filters.
    for bad in [
        "/audit?agent=ci",
        "/audit?org=ACME",
        "/audit?since=yesterday",
        "/audit?before=nonsense",
        "/audit?limit=1001",
        "/audit?color=red",
    ] {
        let (status, v) = a.get(bad).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some("bad_request")),
            "{bad}"
        );
    }
}

async fn bad_requests_get_json_errors(backend: Backend) {
    let a = Admin::spawn(backend).await;
    let http = &a.app.http;
    // Wrong method: 405 in the same JSON shape.
    let (status, v) = a.send("PUT", "/orgs", Some(json!({}))).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    // Unknown path under the API.
    assert_eq!(a.get("/nothing").await.0, 404);
    // Not JSON, broken JSON, a huge body.
    let post = |ct: &'static str, body: Vec<u8>| {
        http.post(a.url("/orgs"))
            .bearer_auth(&a.token)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = post("text/plain", b"{}".to_vec()).await.unwrap();
    assert_eq!(r.status(), 415);
    let r = post("application/json", b"{\"id\":".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let huge = format!("{{\"id\": \"{}\"}}", "a".repeat(100 * 1024));
    let r = post("application/json", huge.into_bytes()).await.unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "payload_too_large");
}

/// Writes behind the store's back, as a bug or a hand edit would.
async fn tamper(app: &TestApp, sql: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    sqlx::query(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

async fn a_corrupt_row_is_an_internal_error_that_tells_nothing(backend: Backend) {
    let a = Admin::spawn(backend).await;
    assert_eq!(a.post("/orgs", json!({"id": "acme"})).await.0, 201);
    tamper(
        &a.app,
        "UPDATE orgs SET audiences = 'marker-in-the-row' WHERE id = 'acme'",
    )
    .await;
    for path in ["/orgs/acme", "/orgs"] {
        let r = a
            .app
            .http
            .get(a.url(path))
            .bearer_auth(&a.token)
            .header("x-request-id", "corrupt-row-1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 500, "{path}");
        // Not an outage: nothing tells the client to retry.
        assert!(r.headers().get("retry-after").is_none(), "{path}");
        assert_eq!(r.headers()["content-type"], "application/json");
        let text = r.text().await.unwrap();
        // Exactly this: no row, column, org or store message reaches the client.
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            json!({
                "error": "internal",
                "message": "an internal error occurred; the server log has the cause (request id corrupt-row-1)",
            }),
            "{path}"
        );
        for leak in ["marker", "audiences", "corrupt row", "acme"] {
            assert!(!text.contains(leak), "{path}: {text}");
        }
    }
}

async fn org_policies_are_updated_and_reach_the_token_endpoint_at_once(backend: Backend) {
    let a = Admin::spawn(backend).await;
    let (_, v) = a
        .post(
            "/orgs",
            json!({"id": "acme", "audiences": ["sts.amazonaws.com", "api.example"]}),
        )
        .await;
    let secret = v["client_secret"].as_str().unwrap().to_owned();
    let mint = |aud: &'static str| {
        let (app, secret) = (&a.app, secret.clone());
        async move {
            let r = app
                .token_basic("org/acme", &secret, &format!("&audience={aud}"))
                .await;
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(mint("api.example").await.0, 200, "cached with the audience");
    let (status, v) = a
        .send(
            "PATCH",
            "/orgs/acme",
            Some(json!({"audiences": ["sts.amazonaws.com"]})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["audiences"], json!(["sts.amazonaws.com"]));
    assert_eq!(v["max_ttl_seconds"], 900, "the rest is kept");
    // This replica follows at once: not one more token for the removed audience.
    let (status, v) = mint("api.example").await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_target")));
    assert_eq!(mint("sts.amazonaws.com").await.0, 200);
    // The longest lifetime, too.
    let (status, v) = a
        .send("PATCH", "/orgs/acme", Some(json!({"max_ttl_seconds": 60})))
        .await;
    assert_eq!((status, v["max_ttl_seconds"].as_u64()), (200, Some(60)));
    let (_, t) = mint("sts.amazonaws.com").await;
    let c = claims(t["access_token"].as_str().unwrap());
    assert!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap() <= 60,
        "{c}"
    );
    assert_eq!(a.get("/orgs/acme").await.1["max_ttl_seconds"], 60);

    for bad in [
        json!({}),
        json!({"audiences": []}),
        json!({"audiences": ["a", "a"]}),
        json!({"audiences": ["a b"]}),
        json!({"max_ttl_seconds": 0}),
        json!({"max_ttl_seconds": 3601}),
        json!({"max_ttl_seconds": null}),
        json!({"audiences": null, "max_ttl_seconds": 60}),
        json!({"id": "acme"}),
        json!({"session_claims": {}}),
    ] {
        let (status, v) = a.send("PATCH", "/orgs/acme", Some(bad.clone())).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some("bad_request")),
            "{bad}"
        );
    }
    let (_, v) = a.send("PATCH", "/orgs/acme", Some(json!({}))).await;
    assert!(v["message"].as_str().unwrap().contains("nothing to change"));
    let (_, v) = a
        .send("PATCH", "/orgs/acme", Some(json!({"max_ttl_seconds": 0})))
        .await;
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("max_ttl_seconds:"),
        "{v}"
    );
    let patch = Some(json!({"max_ttl_seconds": 60}));
    assert_eq!(a.send("PATCH", "/orgs/nobody", patch.clone()).await.0, 404);
    assert_eq!(a.send("PATCH", "/orgs/NOPE", patch).await.0, 404);
}

async fn session_claims_are_set_and_cleared_for_orgs_and_agents(backend: Backend) {
    let a = Admin::spawn(backend).await;
    a.post("/orgs", json!({"id": "acme"})).await;
    let (_, v) = a.post("/orgs/acme/agents", json!({"id": "ci"})).await;
    let secret = v["client_secret"].as_str().unwrap().to_owned();
    let tags = || async {
        claims(&a.app.token_ok("org/acme/agent/ci", &secret).await)
            .get(nomos_issuer::aws::session::TAGS_CLAIM)
            .cloned()
    };
    assert_eq!(tags().await, None, "off by default (and now cached)");
    let (status, v) = a
        .send(
            "PUT",
            "/orgs/acme/session-claims",
            Some(json!({"tags": true, "extra_tags": {"team": "blue"}})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["extra_tags"], json!({"team": "blue"}));
    // The agent inherits its org's setting, from the next token on.
    let t = tags().await.expect("session tags");
    assert_eq!(t["principal_tags"]["team"], json!(["blue"]));
    // Its own setting wins; DELETE makes it inherit again.
    let (status, _) = a
        .send(
            "PUT",
            "/orgs/acme/agents/ci/session-claims",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(tags().await, None);
    let (status, _) = a
        .send("DELETE", "/orgs/acme/agents/ci/session-claims", None)
        .await;
    assert_eq!(status, 204);
    assert!(tags().await.is_some());
    // DELETE on the org turns them off.
    let (status, _) = a.send("DELETE", "/orgs/acme/session-claims", None).await;
    assert_eq!(status, 204);
    assert_eq!(tags().await, None);

    for bad in [
        json!({"extra_tags": {"team": "blue"}}),
        json!({"tags": true, "extra_tags": {"aws:x": "y"}}),
        json!({"tags": true, "transitive": ["nope"]}),
        json!({"tags": "yes"}),
        json!({"colour": "red"}),
    ] {
        let (status, v) = a
            .send("PUT", "/orgs/acme/session-claims", Some(bad.clone()))
            .await;
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some("bad_request")),
            "{bad}"
        );
    }
    // A source identity must fit AWS's 2-64 characters.
    let long = "a".repeat(63);
    a.post("/orgs", json!({ "id": long })).await;
    let (status, v) = a
        .send(
            "PUT",
            &format!("/orgs/{long}/session-claims"),
            Some(json!({"source_identity": true})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    a.post(&format!("/orgs/{long}/agents"), json!({ "id": "ci" }))
        .await;
    let (status, v) = a
        .send(
            "PUT",
            &format!("/orgs/{long}/agents/ci/session-claims"),
            Some(json!({"source_identity": true})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("2-64"), "{v}");
    for path in [
        "/orgs/nobody/session-claims",
        "/orgs/acme/agents/nobody/session-claims",
    ] {
        assert_eq!(a.send("PUT", path, Some(json!({}))).await.0, 404, "{path}");
        assert_eq!(a.send("DELETE", path, None).await.0, 404, "{path}");
    }
}

async fn expired_admin_tokens_are_refused(backend: Backend) {
    let a = Admin::spawn(backend).await;
    let secret = nomos_issuer::principal::ClientSecret::with_prefix("nomos_at_");
    let now = nomos_issuer::app::now();
    let t = nomos_issuer::store::AdminToken {
        id: "adm_short".into(),
        name: "short-lived".into(),
        created_at: now - 10,
        revoked_at: None,
        expires_at: Some(now - 1),
    };
    a.app
        .store()
        .create_admin_token(&t, &secret.hash())
        .await
        .unwrap();
    let r = a
        .app
        .http
        .get(a.url("/orgs"))
        .bearer_auth(secret.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "unauthorized");
}

/// `GET /audit/decisions`: the refusals of the token endpoint, filtered and
/// paged like `/audit`, written moments after the answers.
async fn decisions_are_queried_by_org_client_and_time(backend: Backend) {
    let a = Admin::spawn(backend).await;
    let (_, acme) = a.post("/orgs", json!({"id": "acme"})).await;
    let secret = acme["client_secret"].as_str().unwrap().to_owned();
    a.post("/orgs", json!({"id": "beta"})).await;
    let wrong = format!("{secret}x");
    for (client, secret) in [
        ("org/acme", wrong.as_str()),
        ("org/acme/agent/nobody", wrong.as_str()),
        ("org/beta", secret.as_str()),
        ("org/acme", secret.as_str()),
    ] {
        token_status(&a.app, client, secret).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let all = loop {
        let (status, page) = a.get("/audit/decisions").await;
        assert_eq!(status, 200, "{page}");
        if page["decisions"].as_array().unwrap().len() == 3 {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let reasons = |page: &Value| -> Vec<(String, String)> {
        page["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let client = r["client_id"].as_str().unwrap().to_owned();
                (client, r["reason"].as_str().unwrap().to_owned())
            })
            .collect()
    };
    let mut got = reasons(&all);
    got.sort();
    let want = [
        ("org/acme", "wrong_secret"),
        ("org/acme/agent/nobody", "unknown_client"),
        ("org/beta", "wrong_secret"),
    ];
    assert_eq!(
        got,
        want.map(|(c, r)| (c.to_owned(), r.to_owned())),
        "{all}"
    );
    let at = all["decisions"][0]["at"].as_i64().unwrap();
    for (query, n) in [
        ("?org=acme", 2),
        ("?org=beta", 1),
        ("?org=nobody", 0),
        ("?client_id=org/acme/agent/nobody", 1),
        ("?org=beta&client_id=org/acme", 0),
        (&format!("?since={}", at + 10) as &str, 0),
        (&format!("?until={}", at + 10), 3),
        ("?limit=1", 1),
    ] {
        let (status, page) = a.get(&format!("/audit/decisions{query}")).await;
        assert_eq!(status, 200, "{query}: {page}");
        assert_eq!(
            page["decisions"].as_array().unwrap().len(),
            n,
            "{query}: {page}"
        );
    }
    // Paging with the cursor visits each record once.
    let (_, first) = a.get("/audit/decisions?limit=2").await;
    let next = first["next"].as_str().unwrap().to_owned();
    let (_, rest) = a
        .get(&format!("/audit/decisions?limit=2&before={next}"))
        .await;
    assert_eq!(rest["decisions"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next"], Value::Null);
    for bad in [
        "?client_id=acme",
        "?client_id=org/Acme",
        "?org=Acme",
        "?limit=0",
        "?before=nonsense",
        "?agent=ci",
    ] {
        let (status, v) = a.get(&format!("/audit/decisions{bad}")).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some("bad_request")),
            "{bad}"
        );
    }
    let r = a
        .app
        .http
        .get(a.url("/audit/decisions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

both_backends!(
    decisions_are_queried_by_org_client_and_time,
    org_policies_are_updated_and_reach_the_token_endpoint_at_once,
    session_claims_are_set_and_cleared_for_orgs_and_agents,
    expired_admin_tokens_are_refused,
    bearer_tokens_guard_everything_but_the_document,
    orgs_and_agents_are_created_listed_and_used,
    secrets_rotate_without_downtime,
    keys_are_listed_rotated_and_revoked,
    audit_is_queried_by_org_agent_time_and_jti,
    bad_requests_get_json_errors,
    a_corrupt_row_is_an_internal_error_that_tells_nothing,
);

/// Concurrent additions cannot pass the limit of two active secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_secret_additions_stop_at_two() {
    let a = Admin::spawn(Backend::Postgres).await;
    a.post("/orgs", json!({"id": "acme"})).await;
    let (x, y) = tokio::join!(
        a.post("/orgs/acme/credentials", json!({"kind": "secret"})),
        a.post("/orgs/acme/credentials", json!({"kind": "secret"})),
    );
    let mut statuses = [x.0, y.0];
    statuses.sort();
    assert_eq!(statuses, [201, 409]);
}
