//! Help that teaches: `-h` shows a command's own flags and a note on the
//! global ones, every command has examples, defaults are said once, and
//! completion scripts and the manual page come from the same definitions.

use std::process::Command;

use crate::common::bin;
use crate::common::process::{run, stderr};

/// Command groups whose files other work owns; their examples come with it
/// (the pattern is in `src/cli/mod.rs`). Remove a group once it has them.
const EXAMPLES_LATER: &[&str] = &[];

/// Arguments that state their default in their help and also set it as a
/// clap default (so it prints twice), in files other work owns.
const DEFAULT_TWICE_LATER: &[&str] = &[];

/// Every command of the binary with its short (`-h`) and long (`--help`) help.
fn every_command() -> Vec<(String, String, String)> {
    fn walk(cmd: &mut clap::Command, path: &str, out: &mut Vec<(String, String, String)>) {
        let short = cmd.render_help().to_string();
        let long = cmd.render_long_help().to_string();
        out.push((path.to_owned(), short, long));
        for sub in cmd.get_subcommands_mut() {
            if sub.get_name() == "help" {
                continue;
            }
            let path = format!("{path} {}", sub.get_name()).trim().to_owned();
            walk(sub, &path, out);
        }
    }
    let mut cmd = nomos_issuer::cli::command();
    cmd.build();
    let mut out = Vec::new();
    walk(&mut cmd, "", &mut out);
    out
}

/// `aws lint -h` was 54 lines of configuration flags, none of them lint's.
#[test]
fn short_help_shows_the_commands_own_flags_and_a_note_on_the_global_ones() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &["aws", "lint", "-h"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let short = String::from_utf8(o.stdout).unwrap();
    assert!(short.lines().count() <= 24, "{short}");
    assert!(!short.contains("--database-url <URL>"), "{short}");
    assert!(
        short.contains("Global options: the configuration flags")
            && short.contains("--help lists them"),
        "{short}"
    );
    let o = run(dir.path(), &["aws", "lint", "--help"], &[]);
    let long = String::from_utf8(o.stdout).unwrap();
    assert!(long.contains("\nGlobal options:\n"), "{long}");
    assert!(long.contains("--database-url <URL>") && long.contains("NOMOS_ISSUER_DATABASE_URL"));
    for (path, short, _) in every_command() {
        for global in [
            "--listen <ADDR>",
            "--token-ttl <DURATION>",
            "--config <FILE>",
        ] {
            assert!(
                !short.contains(global),
                "`{path} -h` lists {global}:\n{short}"
            );
        }
        assert!(
            short.contains("Global options: "),
            "`{path} -h` has no note:\n{short}"
        );
    }
}

#[test]
fn every_command_has_examples() {
    let mut missing = Vec::new();
    for (path, short, long) in every_command() {
        let group = path.split(' ').next().unwrap_or("");
        if EXAMPLES_LATER.contains(&group) {
            continue;
        }
        if !(short.contains("\nExamples:\n  ") && long.contains("\nExamples:\n  ")) {
            missing.push(if path.is_empty() {
                "nomos-issuer".into()
            } else {
                path
            });
        }
    }
    assert!(missing.is_empty(), "commands without examples: {missing:?}");
}

/// `[default: …]` in a help text and a clap default printed it twice.
#[test]
fn defaults_are_said_once() {
    let mut cmd = nomos_issuer::cli::command();
    cmd.build();
    fn walk(cmd: &clap::Command, path: &str, twice: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|h| h.to_string());
            let stated = help.is_some_and(|h| h.contains("[default:"));
            if stated && !arg.get_default_values().is_empty() {
                let name = arg.get_long().unwrap_or(arg.get_id().as_str());
                twice.push(format!("{path} --{name}").trim().to_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, format!("{path} {}", sub.get_name()).trim(), twice);
        }
    }
    let mut twice = Vec::new();
    walk(&cmd, "", &mut twice);
    twice.retain(|t| !DEFAULT_TWICE_LATER.contains(&t.as_str()));
    assert!(twice.is_empty(), "defaults said twice: {twice:?}");
}

/// The `token` group was described as local-only; two of its three commands
/// talk to a running issuer.
#[test]
fn the_token_group_says_what_it_holds() {
    let token = every_command()
        .into_iter()
        .find(|(path, ..)| path == "token")
        .unwrap();
    let top = &every_command()[0].1;
    let line = top
        .lines()
        .find(|l| l.trim_start().starts_with("token "))
        .unwrap();
    assert!(
        line.contains("mint") && line.contains("fetch from a running issuer"),
        "{line}"
    );
    assert!(!line.contains("locally"), "{line}");
    assert!(token.2.contains("token watch"), "{}", token.2);
}

#[test]
fn completion_scripts_and_the_manual_page_come_from_the_same_definitions() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete -F _nomos__issuer"),
        ("zsh", "#compdef nomos-issuer"),
        ("fish", "complete -c nomos-issuer"),
    ] {
        // No configuration is read: an invalid setting does not stop it.
        let o = run(
            dir.path(),
            &["completion", shell],
            &[("NOMOS_ISSUER_TOKEN_TTL", "forever")],
        );
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let script = String::from_utf8(o.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {script}");
        for word in ["rotate", "config", "check", "token-ttl", "dev-tls"] {
            assert!(script.contains(word), "{shell} completes {word}");
        }
    }
    let o = run(dir.path(), &["completion", "tcsh"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("[possible values: bash"),
        "{}",
        stderr(&o)
    );
    let o = run(dir.path(), &["man"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = String::from_utf8(o.stdout).unwrap();
    assert!(page.starts_with(".ie") || page.starts_with(".TH"), "{page}");
    assert!(page.contains(".TH nomos-issuer 1"), "{page}");
    assert!(
        page.contains("GLOBAL OPTIONS") && page.contains("Examples:"),
        "{page}"
    );
    let o = run(dir.path(), &["man", "--dir", "man1"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rotate =
        std::fs::read_to_string(dir.path().join("man1/nomos-issuer-keys-rotate.1")).unwrap();
    assert!(rotate.contains("\\-\\-now"), "{rotate}");
}

/// `--version` names the commit it was built from.
#[test]
fn version_carries_the_git_commit() {
    let o = Command::new(bin()).arg("--version").output().unwrap();
    let version = String::from_utf8(o.stdout).unwrap();
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_owned());
    let commit = head.unwrap_or_else(|| "unknown".into());
    assert_eq!(
        version.trim(),
        format!(
            "nomos-issuer {} (commit {commit})",
            env!("CARGO_PKG_VERSION")
        )
    );
}
