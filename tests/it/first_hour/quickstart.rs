//! The README as a new user reads it: its quick start run as a script against
//! the built binary, its "Two commands" kept, and no document citing a file
//! that is not in the repository.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{bin, free_port};

/// The marker line before the README's quick-start block.
const MARKER: &str = "<!-- quick-start:";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).unwrap()
}

/// The fenced block after `marker`, without its fences.
fn block_after(text: &str, marker: &str) -> String {
    let rest = &text[text.find(marker).expect("the README has the marker")..];
    let open = rest
        .find("```sh\n")
        .expect("a ```sh block follows the marker")
        + 6;
    let len = rest[open..].find("```\n").expect("the block ends");
    rest[open..open + len].to_owned()
}

/// The quick start, exactly as the README has it, in an empty directory with
/// the built binary first on PATH. Only the port changes (8080 may be taken
/// on a test machine), in the script and through NOMOS_ISSUER_LISTEN alike.
#[test]
fn the_readme_quick_start_runs_as_written() {
    let script = block_after(&readme(), MARKER);
    assert!(script.contains("nomos-issuer serve &"), "{script}");
    let port = free_port();
    let script = script.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(bin()).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The background serve stops with the script, whatever happens.
    let wrapped =
        format!("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}");
    let out = Command::new("bash")
        .arg("-c")
        .arg(&wrapped)
        .current_dir(dir.path())
        .env("PATH", path)
        .env("NOMOS_ISSUER_LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("NOMOS_ISSUER_DATABASE_URL")
        .env_remove("NOMOS_ISSUER_KEK")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let answer: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("the last command prints the token response: {e}\n{stdout}\n{stderr}")
    });
    assert_eq!(answer["token_type"], "Bearer", "{answer}");
    let claims = crate::common::claims(answer["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "org/acme");
    assert!(dir.path().join("keys/kek").exists() && dir.path().join("data").exists());
}

/// One command runs the issuer on its embedded default, one the test suite.
#[test]
fn the_two_commands_stay_at_the_top() {
    let text = readme();
    let two = block_after(&text, "## Two commands");
    let lines: Vec<&str> = two.lines().collect();
    assert_eq!(lines.len(), 2, "{two}");
    assert!(
        lines[0].starts_with("cargo run --release -- serve"),
        "{two}"
    );
    assert!(lines[1].starts_with("bash tests/run"), "{two}");
    assert!(text.find("## Two commands") < text.find("## Install"));
    assert!(text.contains("cargo install --path ."), "how to install");
    // After the two commands, the binary is called by its name.
    let after = &text[text.find("## Install").unwrap()..];
    assert!(
        !after.contains("cargo run --release -- org"),
        "nomos-issuer, not cargo run"
    );
    assert!(
        text.contains("--dev-tls")
            && text
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .contains("switches the default issuer to https"),
        "the README says --dev-tls switches the default issuer"
    );
    assert!(!text.contains("machine kind"), "internal jargon");
}

/// Every file a document names in a link or as a backticked path exists
/// (`docs/aws.md` cited `shared/AWS.md`, which is not in the repository).
#[test]
fn documents_cite_only_files_in_the_repository() {
    let mut missing = Vec::new();
    for doc in ["README.md", "docs/aws.md"] {
        let text = std::fs::read_to_string(repo().join(doc)).unwrap();
        let base = repo().join(doc).parent().unwrap().to_path_buf();
        let mut cited = Vec::new();
        for link in text.split("](").skip(1) {
            let target = link.split(')').next().unwrap().split('#').next().unwrap();
            let path_like = target
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c));
            if !target.is_empty() && path_like {
                cited.push(base.join(target));
            }
        }
        for (i, quoted) in text.split('`').enumerate() {
            let looks_like_file = quoted.ends_with(".md") && !quoted.contains(' ');
            if i % 2 == 1 && looks_like_file {
                // A path in backticks is from the repository root.
                cited.push(repo().join(quoted));
            }
        }
        for path in cited {
            if !path.exists() {
                missing.push(format!("{doc}: {}", path.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "cited but not in the repository: {missing:?}"
    );
}
