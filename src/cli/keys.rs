//! `keys list | rotate [--now] | revoke KID | rewrap`: usable while `serve`
//! runs elsewhere on the same database; every change goes through the same
//! locked plan as the scheduler.

use anyhow::Context;
use serde_json::json;

use crate::app::{now, open_store, start_keys};
use crate::config::Settings;
use crate::key_manager::KeyManager;
use crate::keys::rotation::{Request, Transition, Urgency, next_transition};

/// Examples of the `keys` group.
pub const EXAMPLES: &str = "\
Examples:
  # Which key signs, which is next, and when each changes
  nomos-issuer keys list
  # Scheduled rotation now, if the next key is in every cached JWKS
  nomos-issuer keys rotate
  # A signing key leaked: out of the JWKS at once
  nomos-issuer keys revoke KID";

/// Examples of `keys list`.
pub const LIST_EXAMPLES: &str = "\
Examples:
  nomos-issuer keys list
  # The key that signs, for a script
  nomos-issuer keys list --json | jq -r '.keys[] | select(.state == \"current\") | .kid'";

/// Examples of `keys rotate`.
pub const ROTATE_EXAMPLES: &str = "\
Examples:
  # Let the next key sign now; if it is too early, says from when it can
  nomos-issuer keys rotate
  # Emergency: a fresh key signs at once (cached verifiers may reject it for up to jwks_max_age)
  nomos-issuer keys rotate --now";

/// Examples of `keys revoke`.
pub const REVOKE_EXAMPLES: &str = "\
Examples:
  nomos-issuer keys list
  nomos-issuer keys revoke biOqYwf8Fz95zV9QAtd59xPxDj9hftoh8PsvaH4psrU";

/// Examples of `keys rewrap`.
pub const REWRAP_EXAMPLES: &str = "\
Examples:
  # Retire an old KEK: the new one active, the old one only to decrypt
  nomos-issuer --kek-file /etc/nomos-issuer/kek.new --previous-kek-file /etc/nomos-issuer/kek keys rewrap";

/// `keys` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// List signing keys: kid, algorithm, state, timestamps and the next transition
    #[command(after_help = LIST_EXAMPLES)]
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Let the next key sign now, if every cached JWKS holds it; else say when it can
    #[command(after_help = ROTATE_EXAMPLES)]
    Rotate {
        /// Emergency: a fresh key signs at once (cached verifiers may reject its
        /// tokens until they refetch the JWKS); the old key stays published
        #[arg(long)]
        now: bool,
        /// Print JSON: the transitions applied and any warnings
        #[arg(long)]
        json: bool,
    },
    /// Take a key out of the JWKS at once and destroy its private key; if it was
    /// signing, the next key takes over
    #[command(after_help = REVOKE_EXAMPLES)]
    Revoke {
        /// The key id (see `keys list`)
        kid: String,
        /// Print JSON: the transitions applied and any warnings
        #[arg(long)]
        json: bool,
    },
    /// Re-encrypt every stored private key under the active KEK (--kek-file), so
    /// that a previous KEK (--previous-kek-file) can be retired
    #[command(after_help = REWRAP_EXAMPLES)]
    Rewrap {
        /// Print JSON: {"rewrapped": N}
        #[arg(long)]
        json: bool,
    },
}

use super::time;

pub async fn run(settings: Settings, cmd: KeysCommand) -> anyhow::Result<()> {
    let store = open_store(&settings, false).await?;
    match cmd {
        KeysCommand::List { json } => list(&settings, store.as_ref(), json).await,
        KeysCommand::Rotate {
            now: emergency,
            json,
        } => {
            let (manager, _) = start_keys(store, &settings).await?;
            let request = if emergency {
                Request::RotateNow
            } else {
                Request::Rotate
            };
            let applied = apply(&manager, &request).await?;
            report(&manager, &applied, json);
            Ok(())
        }
        KeysCommand::Revoke { kid, json } => {
            let (manager, _) = start_keys(store, &settings).await?;
            let applied = apply(&manager, &Request::Revoke(kid)).await?;
            report(&manager, &applied, json);
            Ok(())
        }
        KeysCommand::Rewrap { json } => {
            let (manager, _) = start_keys(store, &settings).await?;
            let n = manager.rewrap().await?;
            if json {
                super::print_json(&json!({ "rewrapped": n }));
            } else {
                println!(
                    "re-wrapped {n} signing key(s) under the active key-encryption key; every stored key is now under it"
                );
            }
            Ok(())
        }
    }
}

async fn apply(manager: &KeyManager, request: &Request) -> anyhow::Result<Vec<Transition>> {
    manager.request(request, now()).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "the signing keys kept changing under this command; nothing was done, try again"
        )
    })
}

/// What each applied transition means: a line to print, its JSON, and a
/// warning when verifiers may notice.
fn report(manager: &KeyManager, applied: &[Transition], json: bool) {
    let p = manager.policy();
    let t = now();
    let mut lines = Vec::new();
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    for tr in applied {
        let row = match tr {
            Transition::Promote { kid, early } => {
                lines.push(format!("key {kid} signs now"));
                if *early {
                    warnings.push(format!(
                        "it was published less than {} s ago; verifiers that cached the JWKS before may reject its tokens until {}",
                        p.publish_lead(),
                        time(Some(t + p.jwks_max_age))
                    ));
                }
                json!({ "transition": "promote", "kid": kid, "early": early })
            }
            Transition::CreateCurrent { alg, urgency } => {
                lines.push(format!("a fresh {alg} key signs now"));
                if *urgency != Urgency::FirstStart {
                    warnings.push(format!(
                        "verifiers that cached the JWKS do not know this key yet and may reject its tokens until they refetch it, at the latest {} ({} s); the previous key stays published until its tokens expire",
                        time(Some(t + p.jwks_max_age)),
                        p.jwks_max_age
                    ));
                }
                json!({ "transition": "create_current", "alg": alg.as_str() })
            }
            Transition::CreateNext { alg } => {
                let from = time(Some(t + p.publish_lead()));
                lines.push(format!(
                    "a new next {alg} key is published; it can sign from {from}"
                ));
                json!({ "transition": "create_next", "alg": alg.as_str(), "can_sign_from": from })
            }
            Transition::Retire { kid } => {
                lines.push(format!(
                    "key {kid} left the JWKS; its private key is destroyed"
                ));
                json!({ "transition": "retire", "kid": kid })
            }
            Transition::Revoke { kid } => {
                lines.push(format!(
                    "key {kid} revoked: out of the JWKS now, private key destroyed; verifiers stop accepting its tokens once they refetch the JWKS (within {} s)",
                    p.jwks_max_age
                ));
                json!({ "transition": "revoke", "kid": kid })
            }
        };
        rows.push(row);
    }
    if json {
        super::print_json(&json!({ "applied": rows, "warnings": warnings }));
        return;
    }
    for line in lines {
        println!("{line}");
    }
    for w in warnings {
        println!("warning: {w}");
    }
}

async fn list(
    settings: &Settings,
    store: &dyn crate::store::Store,
    json: bool,
) -> anyhow::Result<()> {
    let keys = store
        .list_keys()
        .await
        .context("cannot list signing keys")?;
    let policy = &settings.rotation;
    if json {
        let rows: Vec<_> = keys
            .iter()
            .map(|k| {
                let next = next_transition(&keys, k, policy);
                json!({
                    "kid": k.kid, "alg": k.alg.as_str(), "state": k.state.as_str(),
                    "created_at": k.created_at, "activated_at": k.activated_at,
                    "retired_at": k.retired_at,
                    "kek_id": k.private_key.as_ref().map(|w| w.kek_id.clone()),
                    "next_transition": next.map(|(_, what)| what),
                    "next_transition_at": next.map(|(at, _)| at),
                })
            })
            .collect();
        super::print_json(&json!({ "keys": rows }));
        return Ok(());
    }
    if keys.is_empty() {
        println!(
            "No signing keys yet: `nomos-issuer serve` creates a current and a next key on first start."
        );
        return Ok(());
    }
    println!(
        "{:<43}  {:<5}  {:<8}  {:<20}  {:<20}  {:<20}  NEXT TRANSITION",
        "KID", "ALG", "STATE", "CREATED", "ACTIVATED", "RETIRED"
    );
    for k in &keys {
        let next = match next_transition(&keys, k, policy) {
            Some((at, what)) => format!("{what} {}", time(Some(at))),
            None => "-".into(),
        };
        println!(
            "{:<43}  {:<5}  {:<8}  {:<20}  {:<20}  {:<20}  {next}",
            k.kid,
            k.alg.as_str(),
            k.state.as_str(),
            time(Some(k.created_at)),
            time(k.activated_at),
            time(k.retired_at)
        );
    }
    Ok(())
}
