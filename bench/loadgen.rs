//! The load generator of `bench/run`: one tool for every server measured in a
//! run (nomos-issuer, the ceilings, the peer), so the figures compare.
//!
//! - `run`: keep-alive HTTP/1.1 connections, closed loop (each connection sends
//!   its next request when the answer arrives) or open loop (`--rate`: requests
//!   are due on a fixed schedule, the connections' schedules staggered so that
//!   arrivals are evenly spaced; a request that comes due while its connection
//!   still waits on the server counts its latency from when it was due, so a
//!   slow server cannot hide its queue). Reports requests/s, p50/p99/p99.9,
//!   non-2xx answers, and the server's CPU time and peak RSS from /proc.
//! - `keygen`: a P-256 or RSA key pair as a private and a public JWK.
//! - `assertions`: N unique `private_key_jwt` client assertions, one per line.
//! - `coldstart`: how long a command takes until a URL answers 200.
//! - `crypto`: `ring`'s ES256 signing and verification time on one core, and
//!   what an RS256 or EdDSA client assertion takes to verify.
//!
//! `cargo run --release --example loadgen -- run --help`

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load a server and print one JSON line of figures
    Run(RunArgs),
    /// Print a client key pair: {"private": JWK, "public": JWK}
    Keygen {
        /// ES256 (a P-256 key) or RS256 (an RSA-2048 key)
        #[arg(long, default_value = "ES256")]
        alg: String,
    },
    /// Print N unique client-assertion request bodies (one per line), each valid
    /// for 60 s from now, signed with a private JWK (on every core)
    Assertions {
        #[arg(long)]
        jwk: PathBuf,
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        aud: String,
        #[arg(long)]
        count: usize,
    },
    /// Start COMMAND and report the milliseconds until URL answers 200 (median of --runs)
    Coldstart {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// The command and its arguments
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// Time ring on one core (one JSON line): ES256 signing and verification
    /// (what a token costs the issuer, and what an ES256 client assertion adds),
    /// and RS256 and EdDSA verification (what the other assertions add)
    Crypto {
        #[arg(long, default_value_t = 2)]
        seconds: u64,
    },
}

#[derive(Parser, Clone)]
struct RunArgs {
    /// host:port
    #[arg(long)]
    addr: String,
    /// A target WEIGHT:METHOD:PATH[:@BODYFILE]; repeat for a mix. Body lines are
    /// used in turn, each once when --unique is set.
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Open loop at this many requests/s in total
    #[arg(long)]
    rate: Option<f64>,
    /// Use each body line at most once (stop when they run out)
    #[arg(long)]
    unique: bool,
    /// The server's pid, for CPU time and peak RSS
    #[arg(long)]
    pid: Option<u32>,
    /// A label for the JSON line
    #[arg(long, default_value = "")]
    label: String,
}

struct Target {
    weight: u32,
    request_head: String,
    bodies: Vec<String>,
}

fn parse_target(spec: &str, host: &str) -> Target {
    let mut parts = spec.splitn(4, ':');
    let weight: u32 = parts.next().unwrap().parse().expect("weight");
    let method = parts.next().expect("method").to_owned();
    let path = parts.next().expect("path").to_owned();
    let bodies = match parts.next() {
        Some(f) => {
            let f = f.strip_prefix('@').expect("@BODYFILE");
            std::fs::read_to_string(f)
                .expect("body file")
                .lines()
                .map(str::to_owned)
                .collect()
        }
        None => Vec::new(),
    };
    let content_type = if bodies.is_empty() {
        ""
    } else {
        "Content-Type: application/x-www-form-urlencoded\r\n"
    };
    Target {
        weight,
        request_head: format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{content_type}"),
        bodies,
    }
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(") ")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Reads one HTTP/1.1 response; returns its status.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(status)
}

struct Shared {
    targets: Vec<Target>,
    total_weight: u32,
    next_body: std::sync::atomic::AtomicUsize,
    unique: bool,
}

async fn connection(
    shared: Arc<Shared>,
    addr: String,
    deadline: Instant,
    interval: Option<Duration>,
    id: usize,
    connections: usize,
) -> (Vec<u32>, u64, u64) {
    let mut latencies = Vec::with_capacity(200_000);
    let (mut errors, mut sent) = (0u64, 0u64);
    let Ok(mut stream) = TcpStream::connect(&addr).await else {
        return (latencies, 1, 0);
    };
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(16 * 1024);
    // Open loop: connection `id` of N is offset by id/N of the interval, so
    // requests arrive evenly spread at the rate asked for, not in bursts of N.
    let start =
        Instant::now() + interval.map_or(Duration::ZERO, |iv| iv * id as u32 / connections as u32);
    let mut i = id as u64;
    // When the previous answer arrived: a request due before then waited on the
    // server, one due after it waited only on this generator's timer.
    let mut free_at = Instant::now();
    loop {
        let due = match interval {
            Some(iv) => start + iv * sent as u32,
            None => Instant::now(),
        };
        if due >= deadline {
            break;
        }
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        // Weighted choice, deterministic across the run.
        let mut pick = (i % u64::from(shared.total_weight)) as u32;
        i += 7919;
        let target = shared
            .targets
            .iter()
            .find(|t| {
                if pick < t.weight {
                    true
                } else {
                    pick -= t.weight;
                    false
                }
            })
            .unwrap();
        let mut req = target.request_head.clone();
        if target.bodies.is_empty() {
            req.push_str("\r\n");
        } else {
            let n = shared
                .next_body
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if shared.unique && n >= target.bodies.len() {
                break;
            }
            let body = &target.bodies[n % target.bodies.len()];
            req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        }
        // Open loop counts from when the request was due if the connection was
        // still busy with the server then (the server's queue is not hidden),
        // and from the send otherwise: tokio's timer wakes up to a millisecond
        // late, and that lateness is the generator's, not the server's.
        let began = if free_at > due { due } else { Instant::now() };
        if stream.write_all(req.as_bytes()).await.is_err() {
            errors += 1;
            break;
        }
        match read_response(&mut stream, &mut buf).await {
            Ok(status) => {
                if !(200..300).contains(&status) {
                    errors += 1;
                }
                free_at = Instant::now();
                latencies.push((free_at - began).as_micros().min(u128::from(u32::MAX)) as u32);
            }
            Err(_) => {
                errors += 1;
                break;
            }
        }
        sent += 1;
    }
    (latencies, errors, sent)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

async fn run(args: RunArgs) {
    let targets: Vec<Target> = args
        .targets
        .iter()
        .map(|t| parse_target(t, &args.addr))
        .collect();
    let shared = Arc::new(Shared {
        total_weight: targets.iter().map(|t| t.weight).sum(),
        targets,
        next_body: Default::default(),
        unique: args.unique,
    });
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.connections as f64 / r));
    let cpu0 = args.pid.and_then(cpu_ticks);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let tasks: Vec<_> = (0..args.connections)
        .map(|i| {
            tokio::spawn(connection(
                shared.clone(),
                args.addr.clone(),
                deadline,
                interval,
                i,
                args.connections,
            ))
        })
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e, _) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu1 = args.pid.and_then(cpu_ticks);
    all.sort_unstable();
    let n = all.len() as f64;
    let cpu_s = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some((b - a) as f64 / 100.0),
        _ => None,
    };
    let line = json!({
        "label": args.label,
        "requests": all.len(),
        "errors": errors,
        "seconds": (elapsed * 100.0).round() / 100.0,
        "rps": (n / elapsed).round(),
        "p50_ms": percentile(&all, 0.50),
        "p99_ms": percentile(&all, 0.99),
        "p999_ms": percentile(&all, 0.999),
        "max_ms": percentile(&all, 1.0),
        "cpu_ms_per_1000": cpu_s.map(|c| ((c * 1000.0 * 1000.0 / n.max(1.0)) * 10.0).round() / 10.0),
        "peak_rss_mib": args.pid.and_then(peak_rss_kib).map(|k| ((k as f64 / 1024.0) * 10.0).round() / 10.0),
        "open_loop_rate": args.rate,
    });
    println!("{line}");
}

fn keygen(alg: &str) {
    let (public, private) = match alg {
        "ES256" => {
            let pair = josekit::jws::ES256.generate_key_pair().unwrap();
            (pair.to_jwk_public_key(), pair.to_jwk_private_key())
        }
        "RS256" => {
            let pair = josekit::jws::RS256.generate_key_pair(2048).unwrap();
            (pair.to_jwk_public_key(), pair.to_jwk_private_key())
        }
        other => panic!("keygen: unknown --alg {other} (ES256 or RS256)"),
    };
    let public = serde_json::to_value(public.as_ref()).unwrap();
    let mut private = serde_json::to_value(private.as_ref()).unwrap();
    for m in ["kty", "crv", "x", "y", "n", "e"] {
        if public.get(m).is_some() {
            private[m] = public[m].clone();
        }
    }
    println!("{}", json!({"private": private, "public": public}));
}

fn assertions(jwk: PathBuf, client_id: String, aud: String, count: usize) {
    let text = std::fs::read_to_string(jwk).unwrap();
    let signer = nomos_issuer::workload::AssertionSigner::from_jwk(&text).unwrap();
    let now = nomos_issuer::app::now();
    let prefix = format!(
        "grant_type=client_credentials&client_assertion_type={}&client_assertion=",
        url::form_urlencoded::byte_serialize(nomos_issuer::oauth::assertion::JWT_BEARER.as_bytes())
            .collect::<String>()
    );
    // RS256 signing takes ~1 ms, so the set is made on every core.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parts: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (signer, client_id, aud, prefix) = (&signer, &client_id, &aud, &prefix);
                let n = count / threads + usize::from(t < count % threads);
                scope.spawn(move || {
                    let mut part = String::new();
                    for _ in 0..n {
                        part.push_str(prefix);
                        part.push_str(&signer.assertion(client_id, aud, now));
                        part.push('\n');
                    }
                    part
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for part in parts {
        out.write_all(part.as_bytes()).unwrap();
    }
}

fn coldstart(url: String, runs: usize, command: Vec<String>) {
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let mut child = Command::new(&command[0])
            .args(&command[1..])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let addr = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let path = format!(
            "/{}",
            url.trim_start_matches("http://")
                .split_once('/')
                .map_or("", |x| x.1)
        );
        loop {
            if start.elapsed() > Duration::from_secs(10) {
                panic!("not ready within 10 s");
            }
            if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
                use std::io::Read;
                let _ = write!(
                    s,
                    "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
                );
                let mut r = String::new();
                let _ = s.read_to_string(&mut r);
                if r.starts_with("HTTP/1.1 200") {
                    break;
                }
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        let _ = child.kill();
        let _ = child.wait();
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{}",
        json!({"coldstart_ms_median": (times[times.len() / 2] * 10.0).round() / 10.0, "runs": runs, "min_ms": (times[0] * 10.0).round() / 10.0})
    );
}

fn main() {
    match Cli::parse().cmd {
        Cmd::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run(args)),
        Cmd::Keygen { alg } => keygen(&alg),
        Cmd::Assertions {
            jwk,
            client_id,
            aud,
            count,
        } => assertions(jwk, client_id, aud, count),
        Cmd::Coldstart { url, runs, command } => coldstart(url, runs, command),
        Cmd::Crypto { seconds } => crypto(seconds),
    }
}

/// Operations per second of `op`, run on this thread for `seconds`.
fn per_second(seconds: u64, mut op: impl FnMut()) -> f64 {
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        for _ in 0..100 {
            op();
        }
        n += 100;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn crypto(seconds: u64) {
    use ring::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
        UnparsedPublicKey,
    };
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let message = [b'x'; 300];
    let signature = key.sign(&rng, &message).unwrap();
    let public =
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_key().as_ref().to_vec());
    let sign = per_second(seconds, || {
        std::hint::black_box(key.sign(&rng, &message).unwrap());
    });
    let verify = per_second(seconds, || {
        public.verify(&message, signature.as_ref()).unwrap();
    });
    // What a client assertion of another algorithm costs to verify.
    let rsa = josekit::jws::RS256.generate_key_pair(2048).unwrap();
    let rsa = ring::rsa::KeyPair::from_pkcs8(&rsa.to_der_private_key()).unwrap();
    let mut rsa_sig = vec![0; rsa.public().modulus_len()];
    rsa.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &rng,
        &message,
        &mut rsa_sig,
    )
    .unwrap();
    let rsa_public = UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        rsa.public().as_ref().to_vec(),
    );
    let rs256_verify = per_second(seconds, || {
        rsa_public.verify(&message, &rsa_sig).unwrap();
    });
    let ed = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ed = ring::signature::Ed25519KeyPair::from_pkcs8(ed.as_ref()).unwrap();
    let ed_sig = ed.sign(&message);
    let ed_public =
        UnparsedPublicKey::new(&ring::signature::ED25519, ed.public_key().as_ref().to_vec());
    let eddsa_verify = per_second(seconds, || {
        ed_public.verify(&message, ed_sig.as_ref()).unwrap();
    });
    let us = |per_s: f64| (1e7 / per_s).round() / 10.0;
    println!(
        "{}",
        json!({
            "es256_sign_per_s": sign.round(),
            "es256_verify_per_s": verify.round(),
            "sign_us": us(sign),
            "verify_us": us(verify),
            "rs256_verify_us": us(rs256_verify),
            "eddsa_verify_us": us(eddsa_verify),
        })
    );
}
