//! Liveness and readiness.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::app::{App, now};
use crate::metrics::Snapshot;

/// `GET /healthz`: the process answers.
pub async fn healthz(State(app): State<Arc<App>>) -> Json<Value> {
    app.metrics.request("healthz");
    Json(json!({"status": "ok"}))
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    let published = app.keys.get();
    let body = app.metrics.render(&Snapshot {
        keys: &published.keys,
        policy: &app.settings.rotation,
        audit_queued: app.audit.queued(),
        pools: app.store.pool_stats(),
        now: now(),
    });
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

/// `GET /readyz`: the store answers within 2 s and keys are loaded.
pub async fn readyz(State(app): State<Arc<App>>) -> (StatusCode, Json<Value>) {
    app.metrics.request("readyz");
    let store_ok = matches!(
        tokio::time::timeout(Duration::from_secs(2), app.store.ping()).await,
        Ok(Ok(()))
    );
    let keys = app.keys.get().kids.len();
    let ready = store_ok && keys > 0;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "not ready" },
            "store": if store_ok { "ok" } else { "unreachable" },
            "published_keys": keys,
        })),
    )
}
