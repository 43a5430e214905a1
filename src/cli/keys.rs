//! `keys list | rotate [--now] | revoke KID | rewrap`: usable while `serve`
//! runs elsewhere on the same database; every change goes through the same
//! locked plan as the scheduler.

use anyhow::Context;
use serde_json::json;

use crate::app::{now, open_store, start_keys};
use crate::config::Settings;
use crate::key_manager::KeyManager;
use crate::keys::rotation::{Request, Transition, Urgency, next_transition};

/// `keys` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// List signing keys: kid, algorithm, state, timestamps and the next transition
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Let the next key sign now, if every cached JWKS holds it; else say when it can
    Rotate {
        /// Emergency: a fresh key signs at once (cached verifiers may reject its
        /// tokens until they refetch the JWKS); the old key stays published
        #[arg(long)]
        now: bool,
    },
    /// Take a key out of the JWKS at once and destroy its private key; if it was
    /// signing, the next key takes over
    Revoke {
        /// The key id (see `keys list`)
        kid: String,
    },
    /// Re-encrypt every stored private key under the active KEK (--kek-file), so
    /// that a previous KEK (--previous-kek-file) can be retired
    Rewrap,
}

use super::time;

pub async fn run(settings: Settings, cmd: KeysCommand) -> anyhow::Result<()> {
    let store = open_store(&settings, false).await?;
    match cmd {
        KeysCommand::List { json } => list(&settings, store.as_ref(), json).await,
        KeysCommand::Rotate { now: emergency } => {
            let (manager, _) = start_keys(store, &settings).await?;
            let request = if emergency {
                Request::RotateNow
            } else {
                Request::Rotate
            };
            let applied = apply(&manager, &request).await?;
            report(&manager, &applied);
            Ok(())
        }
        KeysCommand::Revoke { kid } => {
            let (manager, _) = start_keys(store, &settings).await?;
            let applied = apply(&manager, &Request::Revoke(kid)).await?;
            report(&manager, &applied);
            Ok(())
        }
        KeysCommand::Rewrap => {
            let (manager, _) = start_keys(store, &settings).await?;
            let n = manager.rewrap().await?;
            println!(
                "re-wrapped {n} signing key(s) under the active key-encryption key; every stored key is now under it"
            );
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

fn report(manager: &KeyManager, applied: &[Transition]) {
    let p = manager.policy();
    let t = now();
    for tr in applied {
        match tr {
            Transition::Promote { kid, early } => {
                println!("key {kid} signs now");
                if *early {
                    println!(
                        "warning: it was published less than {} s ago; verifiers that cached the JWKS before may reject its tokens until {}",
                        p.publish_lead(),
                        time(Some(t + p.jwks_max_age))
                    );
                }
            }
            Transition::CreateCurrent { alg, urgency } => {
                println!("a fresh {alg} key signs now");
                if *urgency != Urgency::FirstStart {
                    println!(
                        "warning: verifiers that cached the JWKS do not know this key yet and may reject its tokens until they refetch it, at the latest {} ({} s); the previous key stays published until its tokens expire",
                        time(Some(t + p.jwks_max_age)),
                        p.jwks_max_age
                    );
                }
            }
            Transition::CreateNext { alg } => {
                println!(
                    "a new next {alg} key is published; it can sign from {}",
                    time(Some(t + p.publish_lead()))
                );
            }
            Transition::Retire { kid } => {
                println!("key {kid} left the JWKS; its private key is destroyed");
            }
            Transition::Revoke { kid } => {
                println!(
                    "key {kid} revoked: out of the JWKS now, private key destroyed; verifiers stop accepting its tokens once they refetch the JWKS (within {} s)",
                    p.jwks_max_age
                );
            }
        }
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
