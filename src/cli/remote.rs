//! The admin API's client: the [`Backend`] of `org`, `agent` and
//! `credential` when `--addr`/`NOMOS_ADDR` names a running issuer, so that an
//! operator needs no shell on its host (no `kubectl exec`).
//!
//! Errors keep the admin API's own message; the ones a client causes itself
//! (no connection, an unknown CA, a refused token) say what to check.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::backend::Backend;
use super::input::invalid;
use crate::http::admin::views::{
    AgentList, AgentView, CreatedAgent, CreatedCredential, CreatedOrg, CredentialList,
    CredentialView, OrgPage, OrgView,
};
use crate::ids::{AgentId, Audience, OrgId, Subject};
use crate::keys::PublicJwk;
use crate::principal::session_claims::SessionClaims;
use crate::principal::{OrgPolicy, PolicyChange};
use crate::workload::{check_issuer_url, trust_ca_file};

/// How to reach a running issuer's admin API.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Acting on a running issuer")]
pub struct RemoteArgs {
    /// Act through the admin API of the issuer at this URL (its --operator-listen address if it has one) instead of opening the store
    #[arg(long, env = "NOMOS_ADDR", global = true, value_name = "URL")]
    pub addr: Option<String>,
    /// The admin token for --addr (`admin token create` on the issuer's host makes one)
    #[arg(
        long,
        env = "NOMOS_TOKEN",
        global = true,
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Extra PEM CA certificates to trust for --addr (a private CA; with serve --dev-tls, keys/dev-ca.pem)
    #[arg(long, env = "NOMOS_CA_FILE", global = true, value_name = "PEM_FILE")]
    pub ca_file: Option<PathBuf>,
}

/// How long one admin request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one issuer's admin API.
pub(super) struct Remote {
    http: reqwest::Client,
    /// `…/admin/v1`.
    base: url::Url,
    /// The address as given, for messages.
    addr: String,
    token: String,
}

impl Remote {
    /// The client `args` ask for; `None` without `--addr` (then the store is used).
    pub(super) fn from_args(args: &RemoteArgs) -> anyhow::Result<Option<Remote>> {
        let token = args
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let (addr, token) = match (args.addr.as_deref().map(str::trim), token) {
            (None | Some(""), None) => return Ok(None),
            (None | Some(""), Some(_)) => {
                return Err(invalid(
                    "an admin token is given (--token or NOMOS_TOKEN) but no issuer: set --addr or NOMOS_ADDR to the issuer's URL, or unset the token to act on the local store",
                ));
            }
            (Some(addr), None) => {
                return Err(invalid(format!(
                    "--addr {addr} needs an admin token: set NOMOS_TOKEN or --token (`nomos-issuer admin token create` on the issuer's host makes one)"
                )));
            }
            (Some(addr), Some(token)) => (addr, token),
        };
        // The admin token goes only where a client credential may go: https,
        // or plain http to this machine.
        let mut base = check_issuer_url(addr.trim_end_matches('/')).map_err(|_| {
            invalid(format!(
                "--addr {addr}: use the issuer's URL, like https://issuer.example.com; the admin token is sent only over https (plain http only to 127.0.0.1, ::1 or localhost)"
            ))
        })?;
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid(format!(
                "--addr {addr}: give the issuer's URL without a query or fragment"
            )));
        }
        if !base.path().trim_end_matches('/').ends_with("/admin/v1") {
            let path = format!("{}/admin/v1", base.path().trim_end_matches('/'));
            base.set_path(&path);
        }
        let builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            // A redirect is reported, not followed: the token goes to --addr only.
            .redirect(reqwest::redirect::Policy::none());
        let http = trust_ca_file(builder, args.ca_file.as_deref())
            .map_err(|e| invalid(format!("--ca-file: {e:#}")))?
            .build()
            .context("cannot build an HTTP client")?;
        Ok(Some(Remote {
            http,
            base,
            addr: addr.to_owned(),
            token: token.to_owned(),
        }))
    }

    /// The URL of `segments` under `/admin/v1` (each one percent-encoded).
    fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http(s) URL has a path")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// Sends one request; the body of a 2xx answer (`Null` when empty).
    async fn send(
        &self,
        method: Method,
        url: url::Url,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let response = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response
            .text()
            .await
            .map_err(|e| anyhow!("the answer of {} broke off: {e}", self.addr))?;
        if status.is_success() {
            if text.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} answered {status} with a body that is not JSON",
                    self.addr
                )
            });
        }
        if status.is_redirection() {
            return Err(anyhow!(
                "{} redirected to {}: give that address as --addr (the admin token is not sent on)",
                self.addr,
                location.as_deref().unwrap_or("nowhere")
            ));
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(anyhow!(
                "the issuer at {} refused the admin token (401): it is wrong, expired or revoked; `nomos-issuer admin token create` on the issuer's host makes a new one",
                self.addr
            ));
        }
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned));
        match message {
            Some(m) if status == StatusCode::BAD_REQUEST => Err(invalid(m)),
            Some(m) => Err(anyhow!("{m} ({} from {})", status.as_u16(), self.addr)),
            None => Err(anyhow!(
                "{} answered {status}, not as the admin API answers: is it the issuer (with --operator-listen, the admin API is served only on that address)?",
                self.addr
            )),
        }
    }

    /// A 2xx body as `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<Value>,
    ) -> anyhow::Result<T> {
        let v = self.send(method, self.url(segments), body).await?;
        serde_json::from_value(v).with_context(|| {
            format!(
                "{} answered in a form this version does not read: is it a nomos-issuer of another version?",
                self.addr
            )
        })
    }

    /// Why a request got no answer, told apart: refused, no such host, an
    /// unknown CA, a timeout.
    fn unreachable(&self, e: &reqwest::Error) -> anyhow::Error {
        let mut chain = e.to_string();
        let mut cause = std::error::Error::source(e);
        let mut refused = false;
        while let Some(c) = cause {
            chain.push_str(&format!(": {c}"));
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
            }
            cause = c.source();
        }
        let addr = &self.addr;
        let why = if refused {
            format!(
                "connection refused: nothing listens at {addr}; is the issuer running, and is this its address (or its --operator-listen address)?"
            )
        } else if chain.contains("dns error") {
            format!("the host of {addr} cannot be resolved; check --addr / NOMOS_ADDR")
        } else if chain.contains("UnknownIssuer") {
            format!(
                "the certificate of {addr} is not signed by a CA this machine trusts: give the issuer's CA with --ca-file (NOMOS_CA_FILE); with serve --dev-tls it is keys/dev-ca.pem"
            )
        } else if e.is_timeout() {
            format!("no answer from {addr} within {} s", TIMEOUT.as_secs())
        } else {
            chain
        };
        anyhow!("cannot reach the admin API at {addr}: {why}")
    }
}

/// The path of an org's or agent's resources.
fn subject_path(subject: &Subject) -> Vec<&str> {
    match subject {
        Subject::Org(o) => vec!["orgs", o.as_str()],
        Subject::Agent(o, a) => vec!["orgs", o.as_str(), "agents", a.as_str()],
    }
}

/// `segments` after the subject's path.
fn under<'a>(subject: &'a Subject, segments: &[&'a str]) -> Vec<&'a str> {
    let mut path = subject_path(subject);
    path.extend(segments);
    path
}

fn audiences(list: &[Audience]) -> Vec<&str> {
    list.iter().map(Audience::as_str).collect()
}

fn jwks(keys: &[PublicJwk]) -> Value {
    json!({"keys": keys.iter().map(PublicJwk::to_json).collect::<Vec<_>>()})
}

#[async_trait]
impl Backend for Remote {
    async fn create_org(&self, org: &OrgId, policy: &OrgPolicy) -> anyhow::Result<CreatedOrg> {
        let body = json!({
            "id": org,
            "audiences": audiences(&policy.audiences),
            "max_ttl_seconds": policy.max_ttl,
        });
        self.call(Method::POST, &["orgs"], Some(body)).await
    }

    async fn orgs(&self) -> anyhow::Result<Vec<OrgView>> {
        let mut all = Vec::new();
        let mut after: Option<OrgId> = None;
        loop {
            let mut url = self.url(&["orgs"]);
            url.query_pairs_mut().append_pair("limit", "1000");
            if let Some(a) = &after {
                url.query_pairs_mut().append_pair("after", a.as_str());
            }
            let v = self.send(Method::GET, url, None).await?;
            let page: OrgPage = serde_json::from_value(v).with_context(|| {
                format!(
                    "{} answered an org list this version does not read",
                    self.addr
                )
            })?;
            all.extend(page.orgs);
            match page.next {
                Some(next) if Some(&next) != after.as_ref() => after = Some(next),
                _ => return Ok(all),
            }
        }
    }

    async fn org(&self, org: &OrgId) -> anyhow::Result<OrgView> {
        self.call(Method::GET, &["orgs", org.as_str()], None).await
    }

    async fn update_org(&self, org: &OrgId, change: &PolicyChange) -> anyhow::Result<OrgView> {
        let mut body = json!({});
        if let Some(a) = change.audiences() {
            body["audiences"] = json!(audiences(a));
        }
        if let Some(t) = change.max_ttl() {
            body["max_ttl_seconds"] = json!(t);
        }
        self.call(Method::PATCH, &["orgs", org.as_str()], Some(body))
            .await
    }

    async fn set_session_claims(
        &self,
        subject: &Subject,
        claims: Option<&SessionClaims>,
    ) -> anyhow::Result<()> {
        let url = self.url(&under(subject, &["session-claims"]));
        match claims {
            Some(c) => self.send(Method::PUT, url, Some(json!(c))).await?,
            None => self.send(Method::DELETE, url, None).await?,
        };
        Ok(())
    }

    async fn create_agent(
        &self,
        org: &OrgId,
        agent: &AgentId,
        keys: Option<Vec<PublicJwk>>,
    ) -> anyhow::Result<CreatedAgent> {
        let mut body = json!({ "id": agent });
        if let Some(k) = keys {
            body["public_jwks"] = jwks(&k);
        }
        self.call(Method::POST, &["orgs", org.as_str(), "agents"], Some(body))
            .await
    }

    async fn agents(&self, org: &OrgId) -> anyhow::Result<Vec<AgentView>> {
        let list: AgentList = self
            .call(Method::GET, &["orgs", org.as_str(), "agents"], None)
            .await?;
        Ok(list.agents)
    }

    async fn agent(&self, org: &OrgId, agent: &AgentId) -> anyhow::Result<AgentView> {
        let path = ["orgs", org.as_str(), "agents", agent.as_str()];
        self.call(Method::GET, &path, None).await
    }

    async fn add_credential(
        &self,
        subject: &Subject,
        keys: Option<Vec<PublicJwk>>,
    ) -> anyhow::Result<CreatedCredential> {
        let body = match keys {
            Some(k) => json!({"kind": "public_key", "public_jwks": jwks(&k)}),
            None => json!({"kind": "secret"}),
        };
        self.call(Method::POST, &under(subject, &["credentials"]), Some(body))
            .await
    }

    async fn credentials(&self, subject: &Subject) -> anyhow::Result<Vec<CredentialView>> {
        let list: CredentialList = self
            .call(Method::GET, &under(subject, &["credentials"]), None)
            .await?;
        Ok(list.credentials)
    }

    async fn revoke_credential(&self, subject: &Subject, id: &str) -> anyhow::Result<()> {
        let url = self.url(&under(subject, &["credentials", id]));
        self.send(Method::DELETE, url, None).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(addr: Option<&str>, token: Option<&str>) -> RemoteArgs {
        RemoteArgs {
            addr: addr.map(str::to_owned),
            token: token.map(str::to_owned),
            ca_file: None,
        }
    }

    fn refusal(a: RemoteArgs) -> String {
        let e = Remote::from_args(&a).err().expect("refused");
        assert!(e.is::<super::super::input::InvalidInput>(), "{e}");
        e.to_string()
    }

    #[test]
    fn the_address_and_token_go_together() {
        assert!(Remote::from_args(&args(None, None)).unwrap().is_none());
        assert!(
            Remote::from_args(&args(Some(""), Some(" ")))
                .unwrap()
                .is_none()
        );
        assert!(refusal(args(None, Some("nomos_at_x"))).contains("NOMOS_ADDR"));
        assert!(refusal(args(Some("https://id.example"), None)).contains("NOMOS_TOKEN"));
    }

    #[test]
    fn the_token_goes_only_over_https_or_to_this_machine() {
        for bad in [
            "http://id.example.com",
            "id.example.com:8080",
            "ftp://id.example.com",
            "https://user:pw@id.example.com",
        ] {
            assert!(
                refusal(args(Some(bad), Some("t"))).contains("https"),
                "{bad}"
            );
        }
        assert!(refusal(args(Some("https://id.example/?x=1"), Some("t"))).contains("query"));
        for (addr, orgs) in [
            (
                "https://id.example.com",
                "https://id.example.com/admin/v1/orgs/acme",
            ),
            (
                "https://id.example.com/",
                "https://id.example.com/admin/v1/orgs/acme",
            ),
            (
                "https://id.example.com/nomos",
                "https://id.example.com/nomos/admin/v1/orgs/acme",
            ),
            (
                "https://id.example.com/admin/v1/",
                "https://id.example.com/admin/v1/orgs/acme",
            ),
            (
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8080/admin/v1/orgs/acme",
            ),
            (
                "http://localhost:8080",
                "http://localhost:8080/admin/v1/orgs/acme",
            ),
        ] {
            let r = Remote::from_args(&args(Some(addr), Some("t")))
                .unwrap()
                .unwrap();
            assert_eq!(r.url(&["orgs", "acme"]).as_str(), orgs, "{addr}");
        }
        let r = Remote::from_args(&args(Some("https://id.example.com"), Some("t")))
            .unwrap()
            .unwrap();
        assert_eq!(
            r.url(&["orgs", "acme", "credentials", "a/b?c"]).as_str(),
            "https://id.example.com/admin/v1/orgs/acme/credentials/a%2Fb%3Fc"
        );
    }
}
