//! Dependencies point inward: every `crate::` and `super::` path in `src/`
//! names a module of the same layer or an inner one, by the list of layers
//! in `src/lib.rs`. (Unit tests, after `#[cfg(test)]`, may reach outward.)

use std::collections::BTreeMap;
use std::path::Path;

/// The layers of `src/lib.rs`: module path -> layer number.
fn layers(lib: &str) -> BTreeMap<String, usize> {
    let mut map = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.strip_prefix("//! ") else {
            continue;
        };
        let Some((number, names)) = rest.split_once(". ") else {
            continue;
        };
        let Ok(layer) = number.parse::<usize>() else {
            continue;
        };
        let names = names.split_once(": ").map_or("", |(_, n)| n);
        for name in names.split('`').skip(1).step_by(2) {
            map.insert(name.to_owned(), layer);
        }
    }
    map
}

/// The layer of a module path: the longest listed prefix decides.
fn layer_of(layers: &BTreeMap<String, usize>, path: &str) -> Option<(usize, String)> {
    layers
        .iter()
        .filter(|(name, _)| path == name.as_str() || path.starts_with(&format!("{name}::")))
        .max_by_key(|(name, _)| name.len())
        .map(|(name, layer)| (*layer, name.clone()))
}

/// The module path of a file under `src/`: `store/sql/mod.rs` -> `store::sql`.
fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap();
    let stem = file.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts.join("::")
}

/// The leading module path (lower-case segments) of `text`.
fn leading_path(text: &str) -> String {
    text.split("::")
        .map(str::trim)
        .take_while(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .collect::<Vec<_>>()
        .join("::")
}

/// Every module path a file's code (before its unit tests) refers to, resolved
/// against the file's own module path.
fn references(module: &str, code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let line = line.split("//").next().unwrap_or("");
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        for (prefix, base) in [("crate::", String::new()), ("super::", parent(module))] {
            let mut rest = line;
            while let Some(at) = rest.find(prefix) {
                // `self::super::`, `crate::super::` do not occur; a word
                // before the prefix (`my_crate::`) is another path.
                let before = rest[..at].chars().last();
                rest = &rest[at + prefix.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let (mut base, mut tail) = (base.clone(), rest);
                while let Some(t) = tail.strip_prefix("super::") {
                    base = parent(&base);
                    tail = t;
                }
                let join = |p: &str| match (base.is_empty(), p.is_empty()) {
                    (true, _) => p.to_owned(),
                    (false, true) => base.clone(),
                    (false, false) => format!("{base}::{p}"),
                };
                if let Some(group) = tail.strip_prefix('{') {
                    // `crate::{a::X, b}`: each item's leading path.
                    let mut depth = 0;
                    let mut item = String::new();
                    for c in group.chars() {
                        match c {
                            '{' => depth += 1,
                            '}' if depth == 0 => break,
                            '}' => depth -= 1,
                            ',' if depth == 0 => {
                                out.push((n + 1, join(&leading_path(&item))));
                                item.clear();
                                continue;
                            }
                            _ => {}
                        }
                        item.push(c);
                    }
                    out.push((n + 1, join(&leading_path(&item))));
                } else {
                    out.push((n + 1, join(&leading_path(tail))));
                }
            }
        }
    }
    out.retain(|(_, p)| !p.is_empty() && p != module);
    out
}

fn parent(module: &str) -> String {
    module
        .rsplit_once("::")
        .map_or(String::new(), |(p, _)| p.to_owned())
}

/// The violations in one file.
fn check(layers: &BTreeMap<String, usize>, module: &str, code: &str) -> Vec<String> {
    let Some((own, own_name)) = layer_of(layers, module) else {
        return vec![format!("{module}: not in any layer of src/lib.rs")];
    };
    let mut bad = Vec::new();
    for (line, path) in references(module, code) {
        match layer_of(layers, &path) {
            None => bad.push(format!("{module}:{line}: {path} is not in any layer")),
            Some((layer, name)) if layer > own => bad.push(format!(
                "{module}:{line} (layer {own}, `{own_name}`) uses {path} (layer {layer}, `{name}`)"
            )),
            Some(_) => {}
        }
    }
    bad
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn dependencies_point_inward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layers = layers(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    assert!(
        layers.len() >= 8,
        "the layer list in src/lib.rs: {layers:?}"
    );
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut modules = Vec::new();
    let mut bad = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        if relative == Path::new("main.rs") || relative == Path::new("lib.rs") {
            continue;
        }
        let module = module_of(relative);
        bad.extend(check(
            &layers,
            &module,
            &std::fs::read_to_string(&file).unwrap(),
        ));
        modules.push(module);
    }
    // Every listed name is a module that exists (the list stays true).
    for name in layers.keys() {
        assert!(
            modules.iter().any(|m| m == name),
            "src/lib.rs lists `{name}`, which is not a module"
        );
    }
    assert!(
        bad.is_empty(),
        "imports that point outward:\n{}",
        bad.join("\n")
    );
}

/// The check itself catches what it is for.
#[test]
fn an_outward_import_is_caught() {
    let layers = layers(
        "//! 1. values: `ids`\n//! 2. domain: `keys`, `oauth`\n//! 3. store: `store`\n//! 4. surfaces: `http`",
    );
    assert_eq!(layers.len(), 5);
    let code = "use crate::ids::OrgId;\nuse crate::{keys::Alg, http::router};\nuse super::super::super::store::Store;\nfn f() { crate::oauth::mint(); }\n#[cfg(test)]\nmod tests { use crate::http::x; }\n";
    let bad = check(&layers, "keys::rotation::plan", code);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].contains("uses http"), "{bad:?}");
    assert!(bad[1].contains("uses store"), "{bad:?}");
    assert!(check(&layers, "http::token", code).is_empty());
    assert_eq!(
        check(&layers, "nowhere", "")[0],
        "nowhere: not in any layer of src/lib.rs"
    );
    assert_eq!(module_of(Path::new("store/sql/mod.rs")), "store::sql");
    assert_eq!(module_of(Path::new("oauth/grant.rs")), "oauth::grant");
}
