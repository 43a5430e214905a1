//! Serving one listener: accept within the connection limits, the TLS
//! handshake, HTTP/1.1 and HTTP/2 with read and idle timeouts, and a drain
//! with a deadline when the issuer stops.
//!
//! The timeouts are hyper's own where it has them (`header_read_timeout` for
//! HTTP/1, keep-alive pings for HTTP/2). hyper has no idle timeout for
//! HTTP/2 and none for a connection that has not yet said which protocol it
//! speaks, so a small watchdog per connection closes one that has started no
//! request for a while.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tower::Service;

use super::layers::Hardened;
use super::limits::{Held, Limits, Refusal};
use crate::metrics::Metrics;

/// The longest a client may take to finish its TLS handshake, and then to
/// send a request's headers: from connecting, and on a kept-alive HTTP/1
/// connection from the end of the previous response (so it is also how long
/// an idle HTTP/1 connection stays open).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP/2 connection that starts no request for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// After the issuer is told to stop, connections have this long to finish
/// their requests; then they are closed and the audit is flushed. Short
/// enough to fit in a container runtime's default 10 s stop timeout.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Connection attempts the kernel queues while the issuer is busy accepting.
/// (Linux caps it at `net.core.somaxconn`, 4096 by default.) A dropped
/// attempt costs a client a one-second SYN retry.
pub const LISTEN_BACKLOG: u32 = 1024;

/// Binds `addr` with [`LISTEN_BACKLOG`].
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Requests a connection has started and has in flight, for its idle watchdog.
#[derive(Debug, Default)]
pub struct Activity {
    started: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    /// Counts a request as started and in flight until the result is dropped.
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }
}

/// A request in flight on a connection.
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How one listener serves.
#[derive(Clone)]
pub struct Listening {
    /// Every request passes this service.
    pub service: Hardened<axum::Router>,
    /// HTTPS when set.
    pub tls: Option<Arc<ServerConfig>>,
    /// Open connections, in total and per source address.
    pub connections: Limits,
    /// Where refusals are counted.
    pub metrics: Arc<Metrics>,
}

/// hyper's view of the service: the router cloned per request (one `Arc`),
/// the body adapted.
#[derive(Clone)]
struct Http(Hardened<axum::Router>);

impl hyper::service::Service<hyper::Request<Incoming>> for Http {
    type Response = Response;
    type Error = Infallible;
    type Future = <Hardened<axum::Router> as Service<Request>>::Future;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        // A router is ready at all times: no poll_ready needed.
        self.0.answer(req.map(Body::new), self.0.inner().clone())
    }
}

fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_headers(super::layers::MAX_HEADERS + 16);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(10))
        .max_concurrent_streams(128)
        .max_header_list_size(2 * super::layers::MAX_HEADER_BYTES as u32);
    builder
}

/// Serves `listener` until `shutdown` resolves; then stops accepting, lets
/// open connections finish for up to [`DRAIN_TIMEOUT`], and closes the rest.
pub async fn serve(
    listener: TcpListener,
    listening: Listening,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let builder = Arc::new(builder());
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off a little.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let held = match listening.connections.admit(Some(peer.ip())) {
                    Ok(held) => held,
                    Err(refusal) => {
                        // Closed at once: nothing is read from it.
                        listening.metrics.refused(match refusal {
                            Refusal::Total => "connections_total",
                            Refusal::Address => "connections_per_address",
                        });
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                connections.spawn(connection(
                    stream,
                    peer,
                    held,
                    listening.clone(),
                    builder.clone(),
                    stopping.clone(),
                ));
            }
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "connections still open after the {} s drain; closing them",
            DRAIN_TIMEOUT.as_secs()
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// One connection, from the handshake to its end.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    _held: Held,
    listening: Listening,
    builder: Arc<auto::Builder<TokioExecutor>>,
    mut stopping: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::default());
    let service = Http(listening.service.for_connection(peer, activity.clone()));
    match listening.tls {
        None => drive(&builder, stream, service, &activity, stopping).await,
        Some(config) => {
            let deadline = tokio::time::Instant::now() + HEADER_READ_TIMEOUT;
            let mut first = [0u8; 1];
            let peeked = tokio::select! {
                r = tokio::time::timeout_at(deadline, stream.peek(&mut first)) => r,
                _ = stopping.changed() => return,
            };
            match peeked {
                Ok(Ok(1..)) if first[0] != TLS_HANDSHAKE => {
                    listening.metrics.refused("plain_http");
                    refuse_plain_http(stream).await;
                    return;
                }
                Ok(Ok(1..)) => {}
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            }
            let handshake =
                tokio::time::timeout_at(deadline, TlsAcceptor::from(config).accept(stream));
            let tls = tokio::select! {
                r = handshake => r,
                _ = stopping.changed() => return,
            };
            match tls {
                Ok(Ok(tls)) => drive(&builder, tls, service, &activity, stopping).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

/// The first byte of a TLS connection: a handshake record (the ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

/// What plain HTTP sent to the TLS port gets: one line that says what to do,
/// where a TLS handshake failure would leave curl or a browser with a bare
/// reset or garbage.
const PLAIN_HTTP_ANSWER: &str = "This port serves HTTPS: use https:// instead of http://\n";

/// Answers plain HTTP on the TLS port with a 400 and closes the connection.
async fn refuse_plain_http(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{PLAIN_HTTP_ANSWER}",
        PLAIN_HTTP_ANSWER.len()
    );
    // The request is read (what has arrived of it) before answering and
    // drained after: a socket closed with unread data sends a reset, which
    // may reach the client before the answer does.
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(CLOSE_GRACE, stream.read(&mut buf)).await;
    if tokio::time::timeout(CLOSE_GRACE, stream.write_all(answer.as_bytes()))
        .await
        .is_err()
    {
        return;
    }
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while matches!(stream.read(&mut buf).await, Ok(1..)) {}
    })
    .await;
}

/// Serves HTTP on `io` until the client leaves, the connection idles out, or
/// the listener stops.
async fn drive<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: Http,
    activity: &Activity,
    mut stopping: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    // The first request must start within the header timeout; after that
    // the connection may idle for IDLE_TIMEOUT between requests.
    let mut check = tokio::time::interval_at(
        tokio::time::Instant::now() + HEADER_READ_TIMEOUT,
        IDLE_TIMEOUT,
    );
    let mut seen = 0;
    // Once closing, a client that does not finish its part of a graceful
    // close (an HTTP/2 peer that never answers the GOAWAY's ping) is cut off.
    let mut cut_off = std::pin::pin!(tokio::time::sleep(Duration::MAX));
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = &mut cut_off => return,
            _ = stopping.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = check.tick(), if !closing => {
                let started = activity.started.load(Ordering::Relaxed);
                if started == seen && activity.in_flight.load(Ordering::Relaxed) == 0 {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                    cut_off
                        .as_mut()
                        .reset(tokio::time::Instant::now() + CLOSE_GRACE);
                }
                seen = started;
            }
        }
    }
}

/// How long an idle connection being closed may take to close gracefully.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The most connections the file-descriptor limit leaves room for: it is
/// raised to its hard maximum first (as Go's runtime does), and 256
/// descriptors stay free for the database, files and the listeners.
pub fn connection_budget(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        // Unsafe because libc's functions are: there is no safe wrapper in the
        // standard library. SAFETY: getrlimit and setrlimit read and write a
        // plain struct we own.
        #[allow(unsafe_code)]
        unsafe {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                if limit.rlim_cur < limit.rlim_max {
                    let raised = libc::rlimit {
                        rlim_cur: limit.rlim_max,
                        rlim_max: limit.rlim_max,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                        limit.rlim_cur = limit.rlim_max;
                    }
                }
                let room = usize::try_from(limit.rlim_cur)
                    .unwrap_or(usize::MAX)
                    .saturating_sub(256);
                return wanted.min(room.max(16));
            }
        }
    }
    wanted
}
