//! One address abusing the server, with slow bodies, partial headers, idle
//! connections or floods of connections, leaves discovery, the JWKS and
//! health to everyone else (127.0.0.2 plays "another address"; loopback only).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use super::common::{Backend, TestApp, create_admin_token};

const ATTACKER: &str = "127.0.0.1";
const BYSTANDER: &str = "127.0.0.2";

/// A TCP connection to `addr` from the loopback address `from`.
pub async fn connect_from(from: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.parse().unwrap(), 0))?;
    socket.connect(addr).await
}

/// An HTTP client whose connections come from the loopback address `from`.
pub fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// Reads until the server closes the connection; `None` if it is still open
/// after `wait`. The text read is returned.
pub async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut text = Vec::new();
    let read = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => text.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&text).into_owned())
}

const SLOW_TOKEN_REQUEST: &[u8] = b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The regression of the finding: 1,030 token requests from one address,
/// each sending its body a byte at a time and reopened when closed, used to
/// fill the global concurrency limit so that every route answered 503.
/// Now the JWKS, discovery and health stay at 200 for another address, with
/// a p99 under 50 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_from_one_address_leave_the_jwks_to_others() {
    let _alone = super::common::exclusive().await;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let addr = app.server().addr;
    let until = Instant::now() + Duration::from_secs(5);
    let mut attack = JoinSet::new();
    for _ in 0..1030 {
        attack.spawn(async move {
            let mut opened = 0u32;
            while Instant::now() < until {
                let Ok(mut s) = connect_from(ATTACKER, addr).await else {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                };
                opened += 1;
                let mut alive = s.write_all(SLOW_TOKEN_REQUEST).await.is_ok();
                while alive && Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    alive = s.write_all(b"a").await.is_ok();
                }
                // Closed on us: open another, as an attacker would (a little
                // later: attacker and server share this process's two cores).
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            opened
        });
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let bystander = client_from(BYSTANDER);
    let mut latencies = Vec::new();
    while Instant::now() + Duration::from_millis(500) < until {
        for path in [
            "/.well-known/jwks.json",
            "/.well-known/openid-configuration",
            "/healthz",
        ] {
            let started = Instant::now();
            let r = bystander
                .get(format!("{}{path}", app.base))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path} during the attack");
            r.bytes().await.unwrap();
            latencies.push(started.elapsed());
        }
    }
    let mut opened = 0;
    while let Some(n) = attack.join_next().await {
        opened += n.unwrap();
    }
    assert!(opened >= 1030, "the attack ran: {opened} connections");
    latencies.sort();
    let p99 = percentile(&latencies, 0.99);
    assert!(latencies.len() >= 30, "{} fetches", latencies.len());
    assert!(
        p99 < Duration::from_millis(50),
        "p99 {p99:?} over {} fetches",
        latencies.len()
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for reason in ["connections_per_address", "address_in_flight"] {
        assert!(
            metrics.contains(&format!(
                "nomos_issuer_refused_total{{reason=\"{reason}\"}}"
            )),
            "{reason}: {metrics}"
        );
    }
}

/// A declared body over the limit is answered 413 at once, without waiting
/// for it (it used to wait 10 s and answer 408).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_oversized_body_is_refused_at_once() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut s = TcpStream::connect(app.server().addr).await.unwrap();
    s.write_all(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000000\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let text = read_until_closed(&mut s, Duration::from_secs(3))
        .await
        .expect("answered and closed");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("exceeds 16384 bytes"), "{text}");
}

/// A body must arrive within 2 s of the headers (it used to have 10 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_must_arrive_within_two_seconds() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut s = TcpStream::connect(app.server().addr).await.unwrap();
    s.write_all(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type")
        .await
        .unwrap();
    let started = Instant::now();
    let text = read_until_closed(&mut s, Duration::from_secs(6))
        .await
        .expect("answered and closed");
    let took = started.elapsed();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("did not arrive within 2 s"), "{text}");
    assert!(
        (Duration::from_millis(1500)..Duration::from_secs(4)).contains(&took),
        "{took:?}"
    );
}

/// Connections that say nothing, send headers in part, idle between
/// requests, or open HTTP/2 and send no request are closed after the header
/// timeout (10 s) instead of staying open forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_partial_and_idle_connections_are_closed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let addr = app.server().addr;
    let openers: [&[u8]; 4] = [
        b"",
        b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Ty",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        // The HTTP/2 preface and an empty SETTINGS frame.
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    ];
    let mut waits = JoinSet::new();
    for (i, opener) in openers.into_iter().enumerate() {
        waits.spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(opener).await.unwrap();
            let started = Instant::now();
            let closed = read_until_closed(&mut s, Duration::from_secs(25)).await;
            (i, closed.map(|_| started.elapsed()))
        });
    }
    while let Some(r) = waits.join_next().await {
        let (i, took) = r.unwrap();
        let took = took.unwrap_or_else(|| panic!("connection {i} is still open after 25 s"));
        assert!(
            (Duration::from_secs(9)..Duration::from_secs(22)).contains(&took),
            "connection {i} closed after {took:?}"
        );
    }
}

/// One address holds at most its share of connections (256 by default); the
/// rest are closed at once, and other addresses still connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_every_connection() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.max_connections = 400;
        s.max_connections_per_address = 100;
    })
    .await;
    let addr = app.server().addr;
    let mut held = Vec::new();
    for _ in 0..150 {
        held.push(connect_from(ATTACKER, addr).await.unwrap());
    }
    // Closed by the server: a read finds the end at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut closed = Vec::new();
    for (i, s) in held.iter_mut().enumerate() {
        let mut buf = [0u8; 1];
        match s.try_read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok(0) | Err(_) => closed.push(i),
            Ok(_) => panic!("connection {i} was sent data"),
        }
    }
    assert_eq!(
        closed.len(),
        50,
        "the connections past 100 were closed: {closed:?}"
    );
    let r = client_from(BYSTANDER)
        .get(format!("{}/.well-known/jwks.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The listen backlog is at least 1,024 (it was 128): a burst of reconnects
/// does not make the kernel drop attempts, each of which costs a client a
/// one-second retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listen_backlog_is_at_least_1024() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let port = app.server().addr.port();
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    // State, Recv-Q, Send-Q (the backlog of a listening socket), ...
    let backlog: u32 = text
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("ss printed {text:?}"));
    assert!(backlog >= 1024, "backlog {backlog}");
}

/// Stopping does not wait on slow clients past the drain deadline (5 s):
/// here an admin request whose body trickles, and idle connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_waits_for_slow_clients_at_most_the_drain_deadline() {
    let mut app = TestApp::spawn(Backend::Sqlite).await;
    let token = create_admin_token(app.store().as_ref(), "adm_drain").await;
    let addr = app.server().addr;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(
        format!(
            "POST /admin/v1/orgs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
            token
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let trickle = tokio::spawn(async move {
        while slow.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let _idle = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    app.stop().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(7), "stop took {took:?}");
    trickle.abort();
}
