//! `/orgs/{org}[/agents/{agent}]/session-claims`: the AWS session claims of
//! an org's tokens, or of one agent's (`org|agent set-claims`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::error::{AdminError, Result};
use super::extract::{JsonBody, SubjectInPath};
use crate::app::App;
use crate::principal::session_claims::SessionClaims;

/// `PUT`: replaces the whole setting. An org's agents without a setting of
/// their own follow it.
pub(super) async fn set_session_claims(
    State(app): State<Arc<App>>,
    SubjectInPath(subject): SubjectInPath,
    JsonBody(claims): JsonBody<SessionClaims>,
) -> Result<Json<SessionClaims>> {
    claims
        .validate_for(&subject)
        .map_err(AdminError::bad_request)?;
    app.store
        .set_session_claims(&subject, Some(&claims))
        .await?;
    // Before answering: the next token of this replica carries the new claims
    // (`org/ORG` drops the org's agents too).
    app.tokens.principals.forget(&subject);
    tracing::info!(%subject, "session claims set through the admin API");
    Ok(Json(claims))
}

/// `DELETE`: an org's tokens carry no session claims; an agent's follow its
/// org's again.
pub(super) async fn clear_session_claims(
    State(app): State<Arc<App>>,
    SubjectInPath(subject): SubjectInPath,
) -> Result<StatusCode> {
    app.store.set_session_claims(&subject, None).await?;
    app.tokens.principals.forget(&subject);
    tracing::info!(%subject, "session claims cleared through the admin API");
    Ok(StatusCode::NO_CONTENT)
}
