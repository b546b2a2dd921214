//! The import picture of `src/`, and the rule it must keep: dependencies run one way, in the
//! order of the flow (ARCHITECTURE.md, "Dependencies run one way").
//!
//! Every `crate::…` and `super::…` path in every source file is an edge from the module of the
//! file to the module the path names. A module here is a top-level module of the crate, or for
//! `ingest` and `uplink` each source and each uplink (`ingest::mqtt`, `uplink::influx`, …).
//! Test code (`#[cfg(test)]` items and the files they declare) is left out: tests may build
//! their inputs through the config composer. The test fails on a circle between modules, and on
//! an edge against the flow (from a module to one of a later layer, or to a sibling of the same
//! layer) that is not on [`ALLOWED`] with its reason. `tests/import-picture.sh` prints the picture (this file, with `IMPORT_PICTURE=1`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, from the bottom. A module may use modules of lower layers only.
const LAYERS: &[&[&str]] = &[
    // Diagnostics and the types everything speaks.
    &[
        "diag",
        "model",
        "backoff",
        "signing",
        "log_limit",
        "shutdown",
        "http_error",
    ],
    // Shared services: token hashing, TLS and the MQTT client settings, counters, HTTP limits.
    &["auth", "tls", "metrics"],
    &["broker", "http_limits"],
    // The flow: sources, rules, lanes, uplinks.
    &["ingest::codes"],
    &["ingest::mqtt", "ingest::modbus"],
    &["rules"],
    &["outbox"],
    &["uplink::refused", "uplink::influx"],
    &["uplink::central", "uplink::linefile"],
    // The config file composes the settings of every module above.
    &["config"],
    // What runs the flow, and what runs beside it.
    &["api"],
    &["gateway"],
    &["sim", "central"],
    &["demo"],
    &["main"],
];

/// Edges against the flow that stay, each with its reason. None today: a new one needs its
/// reason here, and one that no longer exists fails the test until it is removed.
const ALLOWED: &[(&str, &str, &str)] = &[];

#[derive(Default)]
struct Picture {
    /// module → module → number of paths
    edges: BTreeMap<String, BTreeMap<String, usize>>,
    modules: BTreeSet<String>,
}

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/ingest/mqtt/mod.rs` → `[ingest, mqtt]`.
fn file_module(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The module a path names, at the grain of the picture.
fn unit(src: &Path, path: &[String]) -> Option<String> {
    let first = path.first()?;
    if first == "main" {
        return Some("main".into());
    }
    let is_module = |p: &Path| p.with_extension("rs").is_file() || p.join("mod.rs").is_file();
    if !is_module(&src.join(first)) {
        return None;
    }
    if first == "ingest" || first == "uplink" {
        // `ingest` and `uplink` only hold their modules: a path that names no module of
        // theirs is within the file it stands in (a `super::*` in a test module).
        let second = path.get(1)?;
        return is_module(&src.join(first).join(second)).then(|| format!("{first}::{second}"));
    }
    Some(first.clone())
}

/// The text of a file without comments, string literals and char literals.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'r' && matches!(b.get(i + 1), Some(b'"' | b'#')) && !ident_before(b, i) {
            // raw string r"…", r#"…"#
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            i = j + close.len();
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' {
            // a char literal ('a', '\n', '\u{1F}'), or a lifetime ('a)
            let end = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|&c| c == b'\'')
                    .map(|p| i + 2 + p)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 2)
            } else {
                text[i + 1..]
                    .chars()
                    .next()
                    .filter(|c| !c.is_ascii())
                    .map(|c| i + 1 + c.len_utf8())
                    .filter(|&e| b.get(e) == Some(&b'\''))
            };
            match end {
                Some(e) => {
                    out.push_str("' '");
                    i = e + 1;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let len = text[i..].chars().next().unwrap().len_utf8();
            out.push_str(&text[i..i + len]);
            i += len;
        }
    }
    out
}

/// The code without its `#[cfg(test)]` items, and the names of the test modules it declares
/// as files (`#[cfg(test)] mod tests;`).
fn without_tests(code: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut test_files = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at + "#[cfg(test)]".len()..];
        let (brace, semi) = (item.find('{'), item.find(';'));
        match (brace, semi) {
            (_, Some(s)) if brace.is_none_or(|b| s < b) => {
                if let Some(name) = item[..s].trim().strip_prefix("mod ") {
                    test_files.push(name.trim().to_string());
                }
                rest = &item[s + 1..];
            }
            (Some(b), _) => {
                let mut depth = 0;
                let mut end = item.len();
                for (i, c) in item[b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &item[end..];
            }
            _ => rest = "",
        }
    }
    out.push_str(rest);
    (out, test_files)
}

fn ident_before(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// The paths that follow a `crate::` or `super::` at `at`, expanded over `{…}` groups (only
/// as deep as the picture needs: two segments).
fn paths_from(code: &str, mut at: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let b = code.as_bytes();
    let mut path = prefix;
    loop {
        while at < b.len() && b[at].is_ascii_whitespace() {
            at += 1;
        }
        if b.get(at) == Some(&b'{') {
            // a group: each member is a path of its own
            at += 1;
            loop {
                while at < b.len() && (b[at].is_ascii_whitespace() || b[at] == b',') {
                    at += 1;
                }
                if at >= b.len() || b[at] == b'}' {
                    break;
                }
                let start = at;
                let mut depth = 0;
                while at < b.len() {
                    match b[at] {
                        b'{' => depth += 1,
                        b'}' if depth == 0 => break,
                        b'}' => depth -= 1,
                        b',' if depth == 0 => break,
                        _ => {}
                    }
                    at += 1;
                }
                paths_from(&code[..at], start, path.clone(), out);
            }
            return;
        }
        let start = at;
        while at < b.len() && (b[at].is_ascii_alphanumeric() || b[at] == b'_') {
            at += 1;
        }
        if start == at {
            break;
        }
        path.push(code[start..at].to_string());
        if code[at..].starts_with("::") {
            at += 2;
        } else {
            break;
        }
    }
    out.push(path);
}

fn picture() -> Picture {
    // Another tree's sources can be pictured too (`tests/import-picture.sh DIR`).
    let src = std::env::var_os("IMPORT_PICTURE_SRC").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        PathBuf::from,
    );
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let mut pic = Picture::default();
    let mut test_files = Vec::new();
    for file in &files {
        let (_, tests) = without_tests(&code_only(&std::fs::read_to_string(file).unwrap()));
        let dir = match file.file_stem().unwrap().to_str().unwrap() {
            "mod" | "lib" | "main" => file.parent().unwrap().to_path_buf(),
            stem => file.parent().unwrap().join(stem),
        };
        for name in tests {
            test_files.push(dir.join(format!("{name}.rs")));
            test_files.push(dir.join(name).join("mod.rs"));
        }
    }
    for file in files.iter().filter(|f| !test_files.contains(f)) {
        let here = file_module(&src, file);
        let Some(from) = unit(&src, &here).or_else(|| here.is_empty().then(|| "lib".into())) else {
            continue;
        };
        if from == "lib" {
            continue;
        }
        pic.modules.insert(from.clone());
        let (code, _) = without_tests(&code_only(&std::fs::read_to_string(file).unwrap()));
        let mut paths = Vec::new();
        for (at, _) in code.match_indices("crate::") {
            if !ident_before(code.as_bytes(), at) {
                paths_from(&code, at + "crate::".len(), Vec::new(), &mut paths);
            }
        }
        // `super::` from a file: its parent module (a `mod tests` block inside a file is
        // counted as the file itself, which is the same module at this grain).
        for (at, _) in code.match_indices("super::") {
            if ident_before(code.as_bytes(), at) || code[..at].ends_with("::") {
                continue;
            }
            let mut base = here.clone();
            base.pop();
            let mut rest = at + "super::".len();
            while code[rest..].starts_with("super::") {
                base.pop();
                rest += "super::".len();
            }
            paths_from(&code, rest, base, &mut paths);
        }
        for path in paths {
            if let Some(to) = unit(&src, &path) {
                if to != from {
                    *pic.edges
                        .entry(from.clone())
                        .or_default()
                        .entry(to)
                        .or_default() += 1;
                }
            }
        }
    }
    pic
}

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Every circle (strongly connected set of more than one module), by Tarjan's algorithm; an
/// allowed edge closes no circle (its reason says why it stays).
fn circles(pic: &Picture) -> Vec<Vec<String>> {
    struct State<'a> {
        pic: &'a Picture,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        let pic = s.pic;
        for w in pic.edges.get(v).into_iter().flat_map(|m| m.keys()) {
            let w = w.as_str();
            if ALLOWED.iter().any(|(f, t, _)| *f == v && *t == w) {
                continue;
            }
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut set = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on_stack.remove(w);
                set.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if set.len() > 1 {
                set.sort();
                s.found.push(set);
            }
        }
    }
    let mut s = State {
        pic,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    let all: BTreeSet<&str> = pic
        .modules
        .iter()
        .map(String::as_str)
        .chain(
            pic.edges
                .values()
                .flat_map(|m| m.keys().map(String::as_str)),
        )
        .collect();
    for v in all {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.found
}

/// The edges against the flow: (from, to, paths, allowed reason).
fn back_edges(pic: &Picture) -> Vec<(String, String, usize, Option<&'static str>)> {
    let mut out = Vec::new();
    for (from, tos) in &pic.edges {
        for (to, &n) in tos {
            let against = match (layer(from), layer(to)) {
                (Some(a), Some(b)) => b >= a,
                _ => true,
            };
            if against {
                let reason = ALLOWED
                    .iter()
                    .find(|(f, t, _)| f == from && t == to)
                    .map(|(_, _, r)| *r);
                out.push((from.clone(), to.clone(), n, reason));
            }
        }
    }
    out
}

fn render(pic: &Picture) -> String {
    let mut text = String::from("Modules by layer, from the bottom, with what each uses:\n");
    let mut listed = BTreeSet::new();
    let line = |m: &str, text: &mut String| {
        let uses: Vec<String> = pic
            .edges
            .get(m)
            .into_iter()
            .flat_map(|tos| tos.iter().map(|(t, n)| format!("{t}({n})")))
            .collect();
        text.push_str(&format!("  {m:<17} → {}\n", uses.join(" ")));
    };
    for (i, l) in LAYERS.iter().enumerate() {
        for m in l.iter().filter(|m| pic.modules.contains(**m)) {
            text.push_str(&format!("{i:>2}"));
            line(m, &mut text);
            listed.insert(m.to_string());
        }
    }
    for m in pic.modules.iter().filter(|m| !listed.contains(*m)) {
        text.push_str(" ?");
        line(m, &mut text);
    }
    let circles = circles(pic);
    text.push_str(&format!("Circles: {}\n", circles.len()));
    for c in &circles {
        text.push_str(&format!("  {}\n", c.join(" ↔ ")));
    }
    let back = back_edges(pic);
    text.push_str(&format!("Edges against the flow: {}\n", back.len()));
    for (from, to, n, reason) in &back {
        let why = reason.map_or("NOT ALLOWED".to_string(), |r| format!("allowed: {r}"));
        text.push_str(&format!("  {from} → {to} ({n}): {why}\n"));
    }
    text
}

#[test]
fn dependencies_run_one_way() {
    let pic = picture();
    let text = render(&pic);
    if std::env::var_os("IMPORT_PICTURE").is_some() {
        println!("{text}");
    }
    let unplaced: Vec<_> = pic.modules.iter().filter(|m| layer(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "modules in no layer of tests/imports.rs: {unplaced:?}"
    );
    assert!(circles(&pic).is_empty(), "circles between modules:\n{text}");
    let refused: Vec<_> = back_edges(&pic)
        .into_iter()
        .filter(|e| e.3.is_none())
        .collect();
    assert!(
        refused.is_empty(),
        "edges against the flow not on the allow-list: {refused:?}\n{text}"
    );
    for (from, to, _) in ALLOWED {
        assert!(
            pic.edges.get(*from).is_some_and(|t| t.contains_key(*to)),
            "allowed edge {from} → {to} no longer exists: remove it from ALLOWED"
        );
    }
}

#[test]
fn the_reader_finds_paths_in_groups_and_ignores_comments_and_strings() {
    let code = code_only(
        "use crate::{a::b, c::{d, e::f}};\n// crate::x\nlet s = \"crate::y\"; let c = '{';\
         fn f<'a>() { super::g::h(); crate::z(); }",
    );
    let mut paths = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        paths_from(&code, at + 7, Vec::new(), &mut paths);
    }
    let heads: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(heads, ["a::b", "c::d", "c::e::f", "z"]);
}

#[test]
fn test_code_is_left_out() {
    let (code, files) = without_tests(
        "use crate::a;\n#[cfg(test)]\nmod tests;\n#[cfg(test)]\nmod inline {\n use crate::b; { }\n}\nfn f() {}",
    );
    assert!(code.contains("crate::a") && !code.contains("crate::b") && code.contains("fn f"));
    assert_eq!(files, ["tests"]);
}
