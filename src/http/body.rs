//! Reading a request body within limits: a declared length over the limit is
//! refused before anything is read, and the whole body must arrive within
//! [`BODY_DEADLINE`], so that a client sending slowly holds its slot briefly.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// The longest a request body may take to arrive after its headers.
pub const BODY_DEADLINE: Duration = Duration::from_secs(2);

/// Why a body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// It is (or says it is) longer than the limit.
    TooLarge,
    /// It did not arrive within [`BODY_DEADLINE`].
    TimedOut,
    /// The connection failed or the framing was invalid.
    Unreadable,
}

/// Reads `body` whole, at most `limit` bytes.
pub async fn read(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, BodyError> {
    if let Some(declared) = headers.get(header::CONTENT_LENGTH) {
        let declared: u64 = declared
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or(BodyError::Unreadable)?;
        if declared > limit as u64 {
            return Err(BodyError::TooLarge);
        }
    }
    match tokio::time::timeout(BODY_DEADLINE, Limited::new(body, limit).collect()).await {
        Err(_) => Err(BodyError::TimedOut),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge),
        Ok(Err(_)) => Err(BodyError::Unreadable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declaring(len: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, len.parse().unwrap());
        h
    }

    #[tokio::test]
    async fn limits_hold_before_and_while_reading() {
        let ok = read(&declaring("3"), Body::from("a=b"), 16).await.unwrap();
        assert_eq!(&ok[..], b"a=b");
        // A declared length over the limit: refused without reading.
        let e = read(&declaring("100000000"), Body::empty(), 16).await;
        assert_eq!(e.unwrap_err(), BodyError::TooLarge);
        // No declared length, but too much arrives.
        let e = read(&HeaderMap::new(), Body::from("x".repeat(17)), 16).await;
        assert_eq!(e.unwrap_err(), BodyError::TooLarge);
        assert_eq!(
            read(&declaring("x"), Body::empty(), 16).await.unwrap_err(),
            BodyError::Unreadable
        );
    }

    #[tokio::test]
    async fn a_body_that_never_finishes_times_out() {
        let (_sender, body) = http_body_util::Channel::<Bytes, std::io::Error>::new(1);
        let e = read(&HeaderMap::new(), Body::new(body), 16).await;
        assert_eq!(e.unwrap_err(), BodyError::TimedOut);
    }
}
