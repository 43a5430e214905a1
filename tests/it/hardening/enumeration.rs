//! Timing does not tell an outsider which orgs and agents exist.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::common::{Backend, TestApp, create_agent, create_org};

/// One token request with a wrong secret over a kept-alive connection; the
/// time to the whole answer.
async fn probe(conn: &mut TcpStream, client_id: &str) -> Duration {
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret=nomos_cs_wrongwrongwrongwrongwrongwrongwrongwrong",
        client_id.replace('/', "%2F")
    );
    let request = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let started = Instant::now();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 2048];
    // The error body is JSON: the answer is whole at its closing brace.
    while !answer.ends_with(b"}") {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed");
        answer.extend_from_slice(&buf[..n]);
    }
    let took = started.elapsed();
    assert!(
        answer.starts_with(b"HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The regression of the finding: over 300 samples each, a known org
/// answered in a median of 350 µs, an unknown org in 632 µs and an unknown
/// agent of a known org in 938 µs (unknown subjects were not cached). Now
/// they are, and a credential is checked against a decoy when nobody
/// exists, so the medians agree within noise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_and_unknown_clients_answer_in_the_same_time() {
    let _alone = super::common::exclusive().await;
    let app = TestApp::spawn(Backend::Postgres).await;
    create_org(app.store().as_ref(), "acme").await;
    create_agent(app.store().as_ref(), "acme", "ci").await;
    let mut conn = TcpStream::connect(app.server().addr).await.unwrap();
    let probes = [
        "org/acme",
        "org/acme/agent/ci",
        "org/ghost",
        "org/acme/agent/ghost",
    ];
    let mut samples = vec![Vec::new(); probes.len()];
    // Interleaved, so that drift on the machine falls on every probe alike.
    for round in 0..600 {
        for (i, client_id) in probes.iter().enumerate() {
            let took = probe(&mut conn, client_id).await;
            if round >= 100 {
                samples[i].push(took);
            }
        }
    }
    let medians: Vec<Duration> = samples.into_iter().map(median).collect();
    let (fastest, slowest) = (
        *medians.iter().min().unwrap(),
        *medians.iter().max().unwrap(),
    );
    // Within noise: 25% of the fastest, or 60 µs, whichever is more. The
    // finding's gaps were 80-170%.
    let bound = (fastest / 4).max(Duration::from_micros(60));
    assert!(
        slowest - fastest <= bound,
        "medians for {probes:?}: {medians:?}"
    );
}
