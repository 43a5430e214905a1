//! The deployment files call only what the binary has.
//!
//! Every `nomos-issuer` command line in deploy/ (the Dockerfile's ENTRYPOINT and
//! CMD, `command:` of the issuer services in compose.yaml, `args:`/`command:` in
//! kubernetes/*.yaml, `Exec*=` of the systemd unit) must name existing
//! subcommands and only flags that their `--help` lists, and every
//! `NOMOS_ISSUER_*` variable those files set must be a setting that
//! `serve --help` documents as `[env: NAME=`. Comments are not read, so a
//! commented example may name a setting that does not exist yet.
//!
//! The parsing is line-based on purpose and knows these structured places only:
//! a new kind of container (another image with `args:`) fails here loudly
//! rather than being skipped, and then this file has to learn about it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_nomos-issuer");

/// Variables the binary reads that no flag mirrors: the KEK itself
/// (`NOMOS_ISSUER_KEK`, read in src/cli/mod.rs) and the log filter
/// (`NOMOS_ISSUER_LOG`, src/cli/mod.rs `init_logging`).
const ENV_WITHOUT_FLAG: &[&str] = &["NOMOS_ISSUER_KEK", "NOMOS_ISSUER_LOG"];

/// One `nomos-issuer` command line found in a deployment file.
#[derive(Debug)]
struct Invocation {
    /// `deploy/…:LINE`.
    place: String,
    /// The arguments after the program name.
    args: Vec<String>,
}

/// What `nomos-issuer [SUBCOMMAND…] --help` lists.
#[derive(Debug, Default)]
struct Help {
    subcommands: BTreeSet<String>,
    /// Long and short flags, and whether each takes a value.
    flags: BTreeMap<String, bool>,
    /// The help text with every whitespace run made one space.
    text: String,
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn place(path: &Path, line: usize) -> String {
    let rel = path
        .strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path);
    format!("{}:{}", rel.display(), line + 1)
}

/// Runs `nomos-issuer PATH… --help` with no NOMOS_ISSUER_* in its environment.
fn help(path: &[String]) -> Help {
    let mut cmd = Command::new(BIN);
    cmd.args(path).arg("--help");
    for (key, _) in std::env::vars() {
        if key.starts_with("NOMOS_ISSUER_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd.output().expect("run nomos-issuer --help");
    let stdout = String::from_utf8(out.stdout).expect("help is UTF-8");
    assert!(
        out.status.success(),
        "`nomos-issuer {} --help` failed: {}",
        path.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut help = Help {
        text: stdout.split_whitespace().collect::<Vec<_>>().join(" "),
        ..Help::default()
    };
    let mut in_commands = false;
    for line in stdout.lines() {
        let trimmed = line.trim_start();
        if line == "Commands:" {
            in_commands = true;
            continue;
        }
        if in_commands {
            match trimmed.split_whitespace().next() {
                // `  name  description`; a wrapped description is indented deeper.
                Some(name) if line.starts_with("  ") && !line.starts_with("   ") => {
                    help.subcommands.insert(name.to_owned());
                }
                _ => in_commands = false,
            }
            continue;
        }
        // An option entry: `  -h, --help`, `      --listen <ADDR>  …`.
        if trimmed.starts_with('-') {
            let words: Vec<&str> = trimmed.split_whitespace().collect();
            for (i, word) in words.iter().enumerate() {
                let flag = word.trim_end_matches(',');
                if !flag.starts_with('-') {
                    break;
                }
                let takes_value = words.get(i + 1).is_some_and(|w| w.starts_with('<'));
                help.flags.insert(flag.to_owned(), takes_value);
            }
        }
    }
    help
}

/// Checks one command line against the binary's help; returns the problems.
fn check(inv: &Invocation, helps: &mut BTreeMap<Vec<String>, Help>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut i = 0;
    while i < inv.args.len() {
        let arg = &inv.args[i];
        let h = helps.entry(path.clone()).or_insert_with(|| help(&path));
        let shown = format!("nomos-issuer {}", path.join(" "));
        if arg == "--" {
            break;
        } else if arg.starts_with('-') && arg.len() > 1 {
            let name = arg.split('=').next().unwrap_or(arg);
            match h.flags.get(name) {
                None => problems.push(format!(
                    "{}: flag {name} is not in `{} --help`",
                    inv.place,
                    shown.trim_end()
                )),
                Some(true) if !arg.contains('=') => i += 1,
                Some(_) => {}
            }
        } else if h.subcommands.contains(arg) {
            path.push(arg.clone());
        } else if !h.subcommands.is_empty() {
            problems.push(format!(
                "{}: `{}` has no subcommand {arg:?} (it has: {})",
                inv.place,
                shown.trim_end(),
                h.subcommands.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
            break;
        }
        i += 1;
    }
    if path.is_empty() && problems.is_empty() {
        problems.push(format!("{}: no subcommand in {:?}", inv.place, inv.args));
    }
    problems
}

/// A line without its YAML comment (a `#` outside quotes, at the start or
/// after a space).
fn strip_yaml_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    let quoted = s.len() >= 2
        && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\'')));
    if quoted { &s[1..s.len() - 1] } else { s }.to_owned()
}

/// The YAML list under `key:` at `lines[at]`: a flow list `[a, "b"]`, a
/// block list of `- item` lines, or a plain string split at spaces.
fn yaml_list(lines: &[&str], at: usize, key: &str) -> Vec<String> {
    let line = strip_yaml_comment(lines[at]);
    let value = line[line.find(key).expect("the key") + key.len()..].trim();
    if let Some(inner) = value.strip_prefix('[') {
        let inner = inner.trim_end().strip_suffix(']').unwrap_or(inner);
        return inner
            .split(',')
            .map(unquote)
            .filter(|s| !s.is_empty())
            .collect();
    }
    if !value.is_empty() {
        return unquote(value)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
    }
    let indent = line.len() - line.trim_start().len();
    let mut items = Vec::new();
    for next in &lines[at + 1..] {
        let next = strip_yaml_comment(next);
        let trimmed = next.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        match trimmed.strip_prefix("- ") {
            Some(item) if next.len() - trimmed.len() >= indent => items.push(unquote(item)),
            _ => break,
        }
    }
    items
}

fn is_issuer_program(program: &str) -> bool {
    program.rsplit('/').next() == Some("nomos-issuer")
}

/// ENTRYPOINT + CMD of the Dockerfile's last stage, which must use the exec form.
fn dockerfile(path: &Path, found: &mut Vec<Invocation>, problems: &mut Vec<String>) {
    let text = read(path);
    let lines: Vec<&str> = text.lines().collect();
    let last_stage = lines
        .iter()
        .rposition(|l| l.trim_start().to_uppercase().starts_with("FROM "))
        .expect("a FROM line");
    let (mut entrypoint, mut cmd) = (None, Some((0, Vec::new())));
    for (n, line) in lines.iter().enumerate().skip(last_stage) {
        let mut words = line.trim().splitn(2, char::is_whitespace);
        let instruction = words.next().unwrap_or("").to_uppercase();
        if instruction != "ENTRYPOINT" && instruction != "CMD" {
            continue;
        }
        let rest = words.next().unwrap_or("").trim();
        let Ok(list) = serde_json::from_str::<Vec<String>>(rest) else {
            problems.push(format!(
                "{}: {instruction} is not in the JSON exec form",
                place(path, n)
            ));
            if instruction == "CMD" {
                cmd = None;
            }
            continue;
        };
        if instruction == "ENTRYPOINT" {
            entrypoint = Some((n, list));
        } else {
            cmd = Some((n, list));
        }
    }
    match (entrypoint, cmd) {
        (Some((_, list)), None) if list.first().is_some_and(|p| is_issuer_program(p)) => {}
        (Some((n, list)), Some((cmd_line, cmd))) if list.first().is_some_and(|p| is_issuer_program(p)) => {
            let mut args = list[1..].to_vec();
            args.extend(cmd);
            found.push(Invocation {
                place: place(path, if args.is_empty() { n } else { cmd_line }),
                args,
            });
        }
        _ => problems.push(format!(
            "{}: the runtime stage's ENTRYPOINT is not [\"nomos-issuer\", …]; kubernetes/ relies on it",
            path.display()
        )),
    }
}

/// `command:` of every service whose `image:` is nomos-issuer's (or that has
/// no `image:` line, i.e. takes it from a merged anchor).
fn compose(path: &Path, found: &mut Vec<Invocation>) {
    let text = read(path);
    let lines: Vec<&str> = text.lines().collect();
    let mut in_services = false;
    let mut services: Vec<(usize, usize)> = Vec::new(); // [start, end) of each service block
    for (n, line) in lines.iter().enumerate() {
        let code = strip_yaml_comment(line);
        if code.trim().is_empty() {
            continue;
        }
        let indent = code.len() - code.trim_start().len();
        if indent == 0 {
            in_services = code.trim_end() == "services:";
            if let Some(last) = services.last_mut() {
                last.1 = last.1.min(n);
            }
        } else if in_services && indent == 2 {
            if let Some(last) = services.last_mut() {
                last.1 = last.1.min(n);
            }
            services.push((n, lines.len()));
        }
    }
    for (start, end) in services {
        let block = &lines[start..end];
        let image = block.iter().find_map(|l| {
            let l = strip_yaml_comment(l).trim();
            l.strip_prefix("image:").map(str::trim)
        });
        if image.is_some_and(|i| !i.contains("nomos-issuer")) {
            continue;
        }
        for (n, line) in block.iter().enumerate() {
            if strip_yaml_comment(line)
                .trim_start()
                .starts_with("command:")
            {
                found.push(Invocation {
                    place: place(path, start + n),
                    args: yaml_list(block, n, "command:"),
                });
            }
        }
    }
}

/// `args:` of every container (the image's ENTRYPOINT is nomos-issuer), and
/// `command:` lists that start with nomos-issuer. A `command:` right under
/// `exec:` (a probe or hook) is not a container's command line.
fn kubernetes(path: &Path, found: &mut Vec<Invocation>, problems: &mut Vec<String>) {
    let text = read(path);
    let lines: Vec<&str> = text.lines().collect();
    for (n, line) in lines.iter().enumerate() {
        let code = strip_yaml_comment(line).trim_start();
        let code = code.strip_prefix("- ").unwrap_or(code);
        if code.starts_with("args:") {
            found.push(Invocation {
                place: place(path, n),
                args: yaml_list(&lines, n, "args:"),
            });
        } else if code.starts_with("command:") {
            let under_exec = lines[..n]
                .iter()
                .rev()
                .map(|l| strip_yaml_comment(l).trim())
                .find(|l| !l.is_empty())
                .is_some_and(|l| l == "exec:");
            if under_exec {
                continue;
            }
            let list = yaml_list(&lines, n, "command:");
            match list.split_first() {
                Some((program, args)) if is_issuer_program(program) => found.push(Invocation {
                    place: place(path, n),
                    args: args.to_vec(),
                }),
                _ => problems.push(format!(
                    "{}: a container command {list:?} that is not nomos-issuer: teach tests/deploy.rs about it",
                    place(path, n)
                )),
            }
        }
    }
}

/// `Exec*=` lines of the unit that run nomos-issuer; ExecStart must.
fn systemd(path: &Path, found: &mut Vec<Invocation>, problems: &mut Vec<String>) {
    let text = read(path);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !key.starts_with("Exec") || line.starts_with(['#', ';']) {
            continue;
        }
        let mut words = value
            .trim_start_matches(['-', '@', ':', '+', '!', '|'])
            .split_whitespace()
            .map(str::to_owned);
        match words.next() {
            Some(program) if is_issuer_program(&program) => found.push(Invocation {
                place: place(path, n),
                args: words.collect(),
            }),
            _ if key == "ExecStart" => problems.push(format!(
                "{}: ExecStart does not run nomos-issuer",
                place(path, n)
            )),
            _ => {}
        }
    }
}

/// The files this test reads: the Dockerfile, compose.yaml, kubernetes/*.yaml
/// and the systemd unit.
fn deploy_files() -> Vec<PathBuf> {
    let dir = deploy_dir();
    let mut files = vec![
        dir.join("Dockerfile"),
        dir.join("compose.yaml"),
        dir.join("systemd/nomos-issuer.service"),
    ];
    files.extend(kubernetes_files());
    files
}

fn kubernetes_files() -> Vec<PathBuf> {
    let dir = deploy_dir().join("kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn deploy_command_lines_use_existing_subcommands_and_flags() {
    let dir = deploy_dir();
    let mut problems = Vec::new();
    let mut per_source: Vec<(&str, Vec<Invocation>)> = Vec::new();

    let mut found = Vec::new();
    dockerfile(&dir.join("Dockerfile"), &mut found, &mut problems);
    per_source.push(("Dockerfile", found));
    let mut found = Vec::new();
    compose(&dir.join("compose.yaml"), &mut found);
    per_source.push(("compose.yaml", found));
    let mut found = Vec::new();
    for file in kubernetes_files() {
        kubernetes(&file, &mut found, &mut problems);
    }
    per_source.push(("kubernetes/", found));
    let mut found = Vec::new();
    systemd(
        &dir.join("systemd/nomos-issuer.service"),
        &mut found,
        &mut problems,
    );
    per_source.push(("systemd/nomos-issuer.service", found));

    let mut helps = BTreeMap::new();
    let mut subcommands = BTreeSet::new();
    for (source, found) in &per_source {
        if found.is_empty() {
            problems.push(format!(
                "deploy/{source}: no nomos-issuer command line found"
            ));
        }
        for inv in found {
            problems.extend(check(inv, &mut helps));
            if let Some(first) = inv.args.iter().find(|a| !a.starts_with('-')) {
                subcommands.insert(first.clone());
            }
        }
    }
    for needed in ["serve", "migrate"] {
        assert!(
            subcommands.contains(needed),
            "no deployment file runs `nomos-issuer {needed}`; found {per_source:#?}"
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn deploy_environment_variables_are_documented_settings() {
    let serve = help(&["serve".to_owned()]);
    let mut problems = Vec::new();
    let mut seen = 0;
    for path in deploy_files() {
        let text = read(&path);
        let yaml = path.extension().is_some_and(|x| x == "yaml");
        for (n, line) in text.lines().enumerate() {
            let code = if yaml {
                strip_yaml_comment(line)
            } else if line.trim_start().starts_with(['#', ';']) {
                ""
            } else {
                line
            };
            let mut rest = code;
            while let Some(at) = rest.find("NOMOS_ISSUER_") {
                let tail = &rest[at..];
                let len = tail
                    .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(tail.len());
                let name = &tail[..len];
                rest = &tail[len..];
                seen += 1;
                if ENV_WITHOUT_FLAG.contains(&name) {
                    continue;
                }
                if !serve.text.contains(&format!("[env: {name}=")) {
                    problems.push(format!(
                        "{}: {name} is not a setting (`nomos-issuer serve --help` has no `[env: {name}=`)",
                        place(&path, n)
                    ));
                }
            }
        }
    }
    assert!(seen > 0, "no NOMOS_ISSUER_* variable found in deploy/");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checks_catch_a_wrong_subcommand_a_wrong_flag_and_a_commented_setting() {
    let mut helps = BTreeMap::new();
    let inv = |args: &[&str]| Invocation {
        place: "x:1".to_owned(),
        args: args.iter().map(|s| s.to_string()).collect(),
    };
    assert!(check(&inv(&["serve", "--listen", "0.0.0.0:8080"]), &mut helps).is_empty());
    assert!(check(&inv(&["--log-format=json", "keys", "list"]), &mut helps).is_empty());
    let wrong = check(&inv(&["serve", "--no-such-flag"]), &mut helps);
    assert!(
        wrong.len() == 1 && wrong[0].contains("--no-such-flag"),
        "{wrong:?}"
    );
    let wrong = check(&inv(&["migrat"]), &mut helps);
    assert!(
        wrong.len() == 1 && wrong[0].contains("\"migrat\""),
        "{wrong:?}"
    );
    let wrong = check(&inv(&["keys", "--bogus", "list"]), &mut helps);
    assert!(
        wrong.len() == 1 && wrong[0].contains("--bogus"),
        "{wrong:?}"
    );

    let yaml = [
        "    command: [\"serve\", '--migrate'] # trailing",
        "    args:",
        "      - migrate",
        "      # - --not-read",
        "      - --log-format=json",
        "    next: 1",
    ];
    assert_eq!(yaml_list(&yaml, 0, "command:"), ["serve", "--migrate"]);
    assert_eq!(
        yaml_list(&yaml, 1, "args:"),
        ["migrate", "--log-format=json"]
    );
    assert_eq!(
        strip_yaml_comment("  # NOMOS_ISSUER_TLS_CERT: /x").trim(),
        ""
    );
    assert_eq!(strip_yaml_comment("a: 'b # c' # d"), "a: 'b # c' ");
}
