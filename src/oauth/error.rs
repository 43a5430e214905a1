//! OAuth 2.0 errors (RFC 6749 §5.2). Rendered to HTTP in one place: `http::error`.

use std::borrow::Cow;

/// An RFC 6749 §5.2 error code (plus RFC 8707's `invalid_target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Malformed request: missing, repeated or invalid parameters.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The grant is invalid.
    InvalidGrant,
    /// The client may not use this grant.
    UnauthorizedClient,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// The requested audience is not allowed for this client.
    InvalidTarget,
    /// The issuer cannot serve now (store unreachable); retry later.
    TemporarilyUnavailable,
    /// Too many requests from this client or address (429 with `Retry-After`).
    SlowDown,
    /// The body is over the limit (413; rendered as `invalid_request`).
    PayloadTooLarge,
    /// The body did not arrive in time (408; rendered as `invalid_request`).
    BodyTimeout,
}

impl ErrorCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::PayloadTooLarge | ErrorCode::BodyTimeout => "invalid_request",
        }
    }
}

/// An error answered to an OAuth client. The description is safe to show:
/// it never carries secrets, keys or internals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The error code.
    pub code: ErrorCode,
    /// A human-readable description.
    pub description: Cow<'static, str>,
    /// Seconds the client should wait before retrying (503 and 429).
    pub retry_after: Option<u64>,
}

impl OAuthError {
    /// Builds an error.
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        let retry_after = match code {
            ErrorCode::TemporarilyUnavailable => Some(1),
            _ => None,
        };
        OAuthError {
            code,
            description: description.into(),
            retry_after,
        }
    }

    /// `invalid_request`.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_client`.
    pub fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, description)
    }

    /// `temporarily_unavailable`, for store outages.
    pub fn unavailable() -> Self {
        Self::new(
            ErrorCode::TemporarilyUnavailable,
            "the issuer cannot issue tokens right now; retry shortly",
        )
    }
}

impl OAuthError {
    /// `slow_down` (429): a rate limit was hit; retry after `seconds`.
    pub fn slow_down(what: &str, seconds: u64) -> Self {
        OAuthError {
            code: ErrorCode::SlowDown,
            description: format!("too many token requests from this {what}; retry in {seconds} s")
                .into(),
            retry_after: Some(seconds),
        }
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}
