//! Baseline servers for `bench/run`: the ceilings nomos-issuer is measured
//! against in the same run, on the same machine, by the same load generator.
//!
//! - `GET /static`: a fixed 1 KB JSON document (the ceiling for discovery/JWKS);
//! - `POST /sign`: signs one ES256 JWT with `ring` per request and returns it
//!   (the ceiling for minting: no authentication, no store, no audit).
//!
//! Usage: `cargo run --release --example ceiling -- PORT`

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

struct Ceiling {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    header: String,
    body: &'static str,
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(18090);
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let body: &'static str = Box::leak(
        format!(
            "{{\"keys\":[{{\"kty\":\"EC\",\"pad\":\"{}\"}}]}}",
            "x".repeat(990)
        )
        .into_boxed_str(),
    );
    let state = Arc::new(Ceiling {
        key,
        rng,
        header: B64.encode(r#"{"alg":"ES256","typ":"JWT","kid":"ceiling"}"#),
        body,
    });
    let app = Router::new()
        .route(
            "/static",
            get(|axum::extract::State(s): axum::extract::State<Arc<Ceiling>>| async move {
                ([("content-type", "application/json")], s.body)
            }),
        )
        .route(
            "/sign",
            post(|axum::extract::State(s): axum::extract::State<Arc<Ceiling>>| async move {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let claims = format!(
                    r#"{{"iss":"http://127.0.0.1","sub":"org/acme","aud":"sts.amazonaws.com","iat":{now},"nbf":{now},"exp":{},"jti":"{now}"}}"#,
                    now + 300
                );
                let input = format!("{}.{}", s.header, B64.encode(claims));
                let sig = s.key.sign(&s.rng, input.as_bytes()).unwrap();
                let token = format!("{input}.{}", B64.encode(sig.as_ref()));
                (
                    [("content-type", "application/json")],
                    format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":300}}"#),
                )
            }),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    println!("ceiling listening on http://127.0.0.1:{port}");
    axum::serve(listener, app).await.unwrap();
}
