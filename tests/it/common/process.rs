//! The real binary as a child process: one-shot commands and `serve`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::bin;

/// Runs the binary in `dir` with extra environment.
pub fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin())
        .current_dir(dir)
        .args(args)
        .env_remove("NOMOS_ISSUER_KEK")
        .env_remove("NOMOS_ISSUER_DATABASE_URL")
        // The store in `dir`, unless a test names an issuer.
        .env_remove("NOMOS_ADDR")
        .env_remove("NOMOS_TOKEN")
        .env_remove("NOMOS_CA_FILE")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn json_out(o: &Output) -> Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `serve` as a child process; the address is read from its log.
pub struct Serve {
    pub child: Child,
    pub base: String,
    pub log: Arc<Mutex<String>>,
}

impl Serve {
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Serve, String> {
        let mut child = Command::new(bin())
            .current_dir(dir)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("NOMOS_ISSUER_KEK")
            .env_remove("NOMOS_ISSUER_DATABASE_URL")
            // Tests mint fast from one address; the limits have tests of their own.
            .env("NOMOS_ISSUER_AUTH_FAILURE_LIMIT", "0")
            .env("NOMOS_ISSUER_ADDRESS_RATE_LIMIT", "0")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut base = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            log.lock().unwrap().push_str(&format!("{line}\n"));
            // Text (`addr=…`) or JSON (`"addr":"…"`) logs.
            let addr = match (line.find("addr="), line.find("\"addr\":\"")) {
                (Some(i), _) => line[i + 5..].split_whitespace().next(),
                (None, Some(i)) => line[i + 8..].split('"').next(),
                (None, None) => None,
            };
            if let Some(addr) = addr {
                let tls = line.contains("tls=true") || line.contains("\"tls\":true");
                let scheme = if tls { "https" } else { "http" };
                base = Some(format!("{scheme}://{addr}"));
                break;
            }
            if Instant::now() > deadline {
                break;
            }
        }
        let Some(base) = base else {
            let status = child.wait().unwrap();
            return Err(format!("{status}: {}", log.lock().unwrap()));
        };
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Ok(Serve { child, base, log })
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let log = self.log.lock().unwrap().clone();
        (status, log)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn try_token(
    base: &str,
    client_id: &str,
    secret: &str,
) -> reqwest::Result<reqwest::Response> {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    reqwest::Client::new()
        .post(format!("{base}/oauth2/token"))
        .basic_auth(enc(client_id), Some(enc(secret)))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
}

pub async fn token(base: &str, client_id: &str, secret: &str) -> reqwest::Response {
    try_token(base, client_id, secret).await.unwrap()
}
