//! The module graph has no import cycles (code review §1), read from the sources under
//! `src/`. An edge is a `use crate::…`, `use super::…` or `use self::…`, or an inline
//! `crate::a::b` / `super::a` path, outside comments and string literals and before the
//! file's `#[cfg(test)]` tail. Cycles are counted as the review counts them: between the
//! top-level modules, each with its children collapsed (`config -> mail -> config`), and
//! between the sibling files of one module (`gateway::health -> gateway::live ->
//! gateway::routes -> gateway::health`). A parent and its own children referring to each
//! other is how Rust modules are built and does not count.
//!
//! Limitation: a path through a re-export (`super::Gateway`, which `gateway/mod.rs` re-exports
//! from `proxy`) counts as an edge to the module that re-exports it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// A module as its path from the crate root: `[]` is `lib.rs`, `["gateway", "health"]` is
/// `gateway/health.rs`.
type ModPath = Vec<String>;

fn show(m: &[String]) -> String {
    if m.is_empty() {
        "crate".to_string()
    } else {
        m.join("::")
    }
}

// -------------------------------------------------------------------------------------------
// Reading a file: comments and literals blanked, the test tail cut off
// -------------------------------------------------------------------------------------------

/// `code` with comments, string, byte-string and char literals replaced by spaces (newlines
/// kept, so line numbers stay right). Lifetimes (`'a`) stay.
fn blank_comments_and_literals(code: &str) -> String {
    let c: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let prev_ident = i > 0 && ident(c[i - 1]);
        // Line comment (also doc comments).
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                blank(&mut out, c[i]);
                i += 1;
            }
            continue;
        }
        // Block comment, nested.
        if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            continue;
        }
        // Raw string: r"…", r#"…"#, br#"…"# (the `b` was already copied, harmlessly).
        if c[i] == 'r' && (!prev_ident || (i > 0 && c[i - 1] == 'b' && !(i > 1 && ident(c[i - 2]))))
        {
            let mut j = i + 1;
            while c.get(j) == Some(&'#') {
                j += 1;
            }
            if c.get(j) == Some(&'"') {
                let hashes = j - i - 1;
                let mut k = j + 1;
                while k < c.len() {
                    if c[k] == '"' && (0..hashes).all(|h| c.get(k + 1 + h) == Some(&'#')) {
                        k += 1 + hashes;
                        break;
                    }
                    k += 1;
                }
                for &ch in &c[i..k.min(c.len())] {
                    blank(&mut out, ch);
                }
                i = k;
                continue;
            }
        }
        // String (and byte string): escapes skipped.
        if c[i] == '"' {
            blank(&mut out, c[i]);
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' && i + 1 < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                blank(&mut out, c[i]);
                i += 1;
            }
            if i < c.len() {
                blank(&mut out, c[i]);
                i += 1;
            }
            continue;
        }
        // Char literal ('x', '\n', '\u{..}', '"'); a lifetime ('a) has no closing quote.
        if c[i] == '\'' {
            // After a backslash the escaped char (maybe a quote) is skipped.
            let end = if c.get(i + 1) == Some(&'\\') {
                (i + 3..c.len()).find(|&k| c[k] == '\'')
            } else if c.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            if let Some(end) = end {
                for &ch in &c[i..=end] {
                    blank(&mut out, ch);
                }
                i = end + 1;
                continue;
            }
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

/// The first line whose text is `#[cfg(test)]`: by this crate's convention everything from
/// there to the end of the file is test code (checked by
/// `test_only_tails_hold_only_test_items_and_every_file_is_read`).
fn test_tail_start(blanked: &str) -> Option<usize> {
    blanked.lines().position(|l| l.trim() == "#[cfg(test)]")
}

/// Lines `from..` of `blanked` whose top-level items are not each under `#[cfg(test)]`
/// (1-based line numbers), or a `#[cfg(test)]` that is not at the top level.
fn untested_items_in_tail(blanked: &str, from: usize) -> Vec<usize> {
    let mut bad = Vec::new();
    let mut depth: i64 = 0;
    let mut under_cfg_test = false;
    for (n, line) in blanked.lines().enumerate() {
        let text = line.trim();
        if n >= from && !text.is_empty() {
            if depth == 0 {
                if text == "#[cfg(test)]" {
                    under_cfg_test = true;
                } else if text.starts_with("#[") {
                    // Another attribute of the same item.
                } else if text.starts_with('}') {
                    // The end of the item before.
                } else {
                    if !under_cfg_test {
                        bad.push(n + 1);
                    }
                    under_cfg_test = false;
                }
            } else if n == from {
                // The first #[cfg(test)] is inside an item: the rest of the file is not all
                // test code.
                bad.push(n + 1);
            }
        }
        depth += line.matches('{').count() as i64 - line.matches('}').count() as i64;
    }
    bad
}

// -------------------------------------------------------------------------------------------
// Tokens, `mod` declarations, `use` trees and inline paths
// -------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    PathSep,
    Punct(char),
}

/// Tokens with their 1-based line.
fn tokens(blanked: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = blanked.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push((Tok::Word(c[start..i].iter().collect()), line));
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push((Tok::PathSep, line));
            i += 2;
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

fn word(t: Option<&(Tok, usize)>) -> Option<&str> {
    match t {
        Some((Tok::Word(w), _)) => Some(w),
        _ => None,
    }
}

/// The paths one `use` tree names, starting at `toks[*i]` (after `use`); `*i` ends after it.
fn use_tree(toks: &[(Tok, usize)], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    while let Some((tok, _)) = toks.get(*i) {
        match tok {
            Tok::PathSep => *i += 1,
            Tok::Word(w) => {
                path.push(w.clone());
                *i += 1;
                if matches!(toks.get(*i), Some((Tok::PathSep, _))) {
                    *i += 1;
                    continue;
                }
                if word(toks.get(*i)) == Some("as") {
                    *i += 2;
                }
                if path.last().map(String::as_str) == Some("self") {
                    path.pop();
                }
                out.push(path);
                return;
            }
            Tok::Punct('*') => {
                *i += 1;
                out.push(path);
                return;
            }
            Tok::Punct('{') => {
                *i += 1;
                loop {
                    match toks.get(*i) {
                        None => return,
                        Some((Tok::Punct('}'), _)) => {
                            *i += 1;
                            return;
                        }
                        Some((Tok::Punct(','), _)) => *i += 1,
                        Some(_) => {
                            let before = *i;
                            use_tree(toks, i, path.clone(), out);
                            if *i == before {
                                *i += 1;
                            }
                        }
                    }
                }
            }
            Tok::Punct(_) => return,
        }
    }
}

/// One reference from a file to a module path, as written.
#[derive(Debug, Clone, PartialEq)]
struct Reference {
    /// The module the reference is written in (inline `mod x { }` blocks included), which
    /// `super` and `self` are relative to.
    from: ModPath,
    /// The path as written: `crate::a::B`, `super::b`, `self::c`.
    path: Vec<String>,
    line: usize,
    /// The `use` statement, whitespace collapsed; `None` for an inline path.
    statement: Option<String>,
}

/// What one file declares and refers to.
#[derive(Debug, Default)]
struct Scan {
    /// `mod x;` before the test tail.
    children: Vec<String>,
    /// `mod x;` in the test tail: files compiled only for tests.
    test_children: Vec<String>,
    references: Vec<Reference>,
}

/// The references in `blanked` (of the file `module`) up to line `tail` (0-based, exclusive).
fn scan(module: &ModPath, blanked: &str, tail: Option<usize>) -> Scan {
    let mut result = Scan::default();
    let toks = tokens(blanked);
    let in_tail = |line: usize| tail.is_some_and(|t| line > t);
    // Inline modules: (name, the brace depth inside them).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let here = |inline: &[(String, usize)]| -> ModPath {
        let mut m = module.clone();
        m.extend(inline.iter().map(|(n, _)| n.clone()));
        m
    };
    let mut i = 0;
    while i < toks.len() {
        let (tok, line) = &toks[i];
        let line = *line;
        match tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Word(w)
                if w == "mod"
                    && !matches!(toks.get(i.wrapping_sub(1)), Some((Tok::PathSep, _))) =>
            {
                if let Some(name) = word(toks.get(i + 1)) {
                    match toks.get(i + 2) {
                        Some((Tok::Punct(';'), _)) if inline.is_empty() => {
                            if in_tail(line) {
                                result.test_children.push(name.to_string());
                            } else {
                                result.children.push(name.to_string());
                            }
                        }
                        Some((Tok::Punct('{'), _)) => {
                            inline.push((name.to_string(), depth + 1));
                        }
                        _ => {}
                    }
                }
            }
            // `use` followed by a path (not `impl Trait + use<'a>`).
            Tok::Word(w)
                if w == "use"
                    && !in_tail(line)
                    && matches!(
                        toks.get(i + 1),
                        Some((Tok::Word(_) | Tok::PathSep | Tok::Punct('{'), _))
                    ) =>
            {
                let end = (i..toks.len())
                    .find(|&k| toks[k].0 == Tok::Punct(';'))
                    .unwrap_or(toks.len());
                let statement = blanked
                    .lines()
                    .skip(line - 1)
                    .take(toks.get(end).map_or(line, |t| t.1) - line + 1)
                    .collect::<Vec<_>>()
                    .join(" ");
                let statement = statement.split_whitespace().collect::<Vec<_>>().join(" ");
                let statement = statement
                    .find("use ")
                    .map_or(statement.clone(), |s| statement[s..].to_string());
                let statement = statement
                    .find(';')
                    .map_or(statement.clone(), |e| statement[..=e].to_string());
                let mut paths = Vec::new();
                let mut k = i + 1;
                use_tree(&toks[..end], &mut k, Vec::new(), &mut paths);
                for path in paths {
                    if matches!(
                        path.first().map(String::as_str),
                        Some("crate" | "super" | "self")
                    ) {
                        result.references.push(Reference {
                            from: here(&inline),
                            path,
                            line,
                            statement: Some(statement.clone()),
                        });
                    }
                }
                i = end;
                continue;
            }
            Tok::Word(w)
                if matches!(w.as_str(), "crate" | "super" | "self")
                    && !in_tail(line)
                    && matches!(toks.get(i + 1), Some((Tok::PathSep, _)))
                    && !matches!(toks.get(i.wrapping_sub(1)), Some((Tok::PathSep, _))) =>
            {
                let mut path = vec![w.clone()];
                let mut k = i + 1;
                while matches!(toks.get(k), Some((Tok::PathSep, _))) {
                    match word(toks.get(k + 1)) {
                        Some(seg) => path.push(seg.to_string()),
                        None => break,
                    }
                    k += 2;
                }
                result.references.push(Reference {
                    from: here(&inline),
                    path,
                    line,
                    statement: None,
                });
                i = k;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    result
}

/// The module path a reference names (before the longest-known-module match).
fn absolute(r: &Reference) -> Option<ModPath> {
    let mut base = r.from.clone();
    let mut rest = r.path.iter().peekable();
    match rest.next().map(String::as_str) {
        Some("crate") => base.clear(),
        Some("self") => {}
        Some("super") => {
            base.pop()?;
            while rest.peek().map(|s| s.as_str()) == Some("super") {
                rest.next();
                base.pop()?;
            }
        }
        _ => return None,
    }
    base.extend(rest.cloned());
    Some(base)
}

// -------------------------------------------------------------------------------------------
// The crate's files and graph
// -------------------------------------------------------------------------------------------

struct File {
    module: ModPath,
    /// Relative to the crate, `src/gateway/health.rs`.
    name: String,
    scan: Scan,
}

/// Every file of the library reached from `src/lib.rs` through `mod x;` outside test tails;
/// plus the files declared only in a test tail; plus problems found on the way.
struct Crate {
    files: Vec<File>,
    test_files: BTreeSet<PathBuf>,
    problems: Vec<String>,
}

fn read_crate(src: &Path) -> Crate {
    let mut files = Vec::new();
    let mut test_files = BTreeSet::new();
    let mut problems = Vec::new();
    let mut todo = vec![(src.join("lib.rs"), ModPath::new())];
    while let Some((path, module)) = todo.pop() {
        let name = path
            .strip_prefix(src.parent().unwrap_or(src))
            .unwrap_or(&path)
            .display()
            .to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{name}: cannot read it: {e}"));
                continue;
            }
        };
        let blanked = blank_comments_and_literals(&text);
        let tail = test_tail_start(&blanked);
        if let Some(from) = tail {
            for line in untested_items_in_tail(&blanked, from) {
                problems.push(format!(
                    "{name}:{line}: not test code after the file's first #[cfg(test)] (line {}); \
                     this test reads everything from there on as test-only",
                    from + 1
                ));
            }
        }
        let scan = scan(&module, &blanked, tail.map(|t| t + 1));
        // `lib.rs` and `mod.rs` own their directory; `a/b.rs` owns `a/b/`.
        let dir = match path.file_name().and_then(|f| f.to_str()) {
            Some("lib.rs" | "mod.rs") => path.parent().map(Path::to_path_buf),
            _ => path
                .parent()
                .map(|p| p.join(path.file_stem().unwrap_or_default())),
        }
        .unwrap_or_default();
        let child_file = |child: &str| {
            [
                dir.join(format!("{child}.rs")),
                dir.join(child).join("mod.rs"),
            ]
            .into_iter()
            .find(|p| p.is_file())
        };
        for child in &scan.children {
            let mut m = module.clone();
            m.push(child.clone());
            match child_file(child) {
                Some(p) => todo.push((p, m)),
                None => problems.push(format!("{name}: mod {child}: no file for it")),
            }
        }
        for child in &scan.test_children {
            if let Some(p) = child_file(child) {
                test_files.insert(p);
            }
        }
        files.push(File { module, name, scan });
    }
    files.sort_by(|a, b| a.module.cmp(&b.module));
    Crate {
        files,
        test_files,
        problems,
    }
}

/// Why `from -> to` is an edge: where, and the line.
#[derive(Debug, Clone)]
struct Evidence {
    file: String,
    line: usize,
    text: String,
}

/// Edges between siblings, by the module they are children of: `gateway -> {(health, live)}`;
/// the top-level modules are the children of the crate (`[]`). Each node is a child of the
/// key, its own children collapsed into it.
type Levels = BTreeMap<ModPath, BTreeMap<(ModPath, ModPath), Vec<Evidence>>>;

fn levels(krate: &Crate, source: &Path) -> Levels {
    let known: BTreeSet<&ModPath> = krate.files.iter().map(|f| &f.module).collect();
    let mut out = Levels::new();
    for f in &krate.files {
        let lines: Vec<String> = std::fs::read_to_string(source.join(&f.name))
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().to_string())
            .collect();
        for r in &f.scan.references {
            let Some(target) = absolute(r) else { continue };
            // The deepest file module the path goes through.
            let Some(to) = (0..=target.len())
                .rev()
                .map(|n| target[..n].to_vec())
                .find(|m| known.contains(m))
            else {
                continue;
            };
            let from = &f.module;
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            // One is the other's ancestor (or the same): a parent and its children.
            if common == from.len() || common == to.len() {
                continue;
            }
            let parent = from[..common].to_vec();
            let edge = (from[..=common].to_vec(), to[..=common].to_vec());
            let text = r
                .statement
                .clone()
                .unwrap_or_else(|| lines.get(r.line - 1).cloned().unwrap_or_default());
            out.entry(parent)
                .or_default()
                .entry(edge)
                .or_default()
                .push(Evidence {
                    file: f.name.clone(),
                    line: r.line,
                    text,
                });
        }
    }
    out
}

/// Every cycle of `edges`: for each edge inside a strongly connected component, the shortest
/// cycle through it; each cycle once, starting at its smallest node.
fn cycles(edges: &BTreeMap<(ModPath, ModPath), Vec<Evidence>>) -> Vec<Vec<ModPath>> {
    let mut next: BTreeMap<&ModPath, Vec<&ModPath>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        next.entry(a).or_default().push(b);
    }
    // Shortest path from `start` to `goal`, as the nodes after `start`.
    let path = |start: &ModPath, goal: &ModPath| -> Option<Vec<ModPath>> {
        let mut came: BTreeMap<&ModPath, &ModPath> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        let mut seen = BTreeSet::from([start]);
        while let Some(n) = queue.pop_front() {
            if n == goal {
                let mut out = vec![n.clone()];
                let mut at = n;
                while let Some(p) = came.get(at) {
                    out.push((*p).clone());
                    at = p;
                }
                out.pop();
                out.reverse();
                return Some(out);
            }
            for m in next.get(n).into_iter().flatten() {
                if seen.insert(m) {
                    came.insert(m, n);
                    queue.push_back(m);
                }
            }
        }
        None
    };
    let mut found = BTreeSet::new();
    for (a, b) in edges.keys() {
        if let Some(back) = path(b, a) {
            // a -> b -> … -> a, without the second a.
            let mut cycle = vec![a.clone(), b.clone()];
            cycle.extend(back);
            cycle.pop();
            let min = (0..cycle.len())
                .min_by_key(|&k| &cycle[k])
                .unwrap_or_default();
            cycle.rotate_left(min);
            found.insert(cycle);
        }
    }
    found.into_iter().collect()
}

/// The lines shown for one edge of a cycle.
const MAX_LINES: usize = 6;

/// The report of every cycle, each edge with the lines that make it.
fn report(levels: &Levels) -> Vec<String> {
    let mut out = Vec::new();
    for edges in levels.values() {
        for cycle in cycles(edges) {
            let mut ring = cycle.clone();
            ring.push(cycle[0].clone());
            let names: Vec<String> = ring.iter().map(|m| show(m)).collect();
            let mut text = format!("cycle: {}", names.join(" -> "));
            for pair in ring.windows(2) {
                let key = (pair[0].clone(), pair[1].clone());
                // Each line once (a `use` group names a module several times).
                let mut lines: Vec<&Evidence> = Vec::new();
                for e in edges.get(&key).into_iter().flatten() {
                    if !lines.iter().any(|l| l.file == e.file && l.line == e.line) {
                        lines.push(e);
                    }
                }
                for e in lines.iter().take(MAX_LINES) {
                    text.push_str(&format!(
                        "\n    {} -> {}: {}:{}: {}",
                        show(&pair[0]),
                        show(&pair[1]),
                        e.file,
                        e.line,
                        e.text
                    ));
                }
                if lines.len() > MAX_LINES {
                    text.push_str(&format!(
                        "\n    {} -> {}: and {} more lines",
                        show(&pair[0]),
                        show(&pair[1]),
                        lines.len() - MAX_LINES
                    ));
                }
            }
            out.push(text);
        }
    }
    out
}

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_import_cycles_between_modules_or_sibling_files() {
    let src = source_dir();
    let krate = read_crate(&src);
    assert!(krate.problems.is_empty(), "{}", krate.problems.join("\n"));
    let found = report(&levels(&krate, src.parent().unwrap_or(&src)));
    assert!(
        found.is_empty(),
        "{} import cycle(s) (code review §1; break each at one of its edges):\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn test_only_tails_hold_only_test_items_and_every_file_is_read() {
    let src = source_dir();
    let krate = read_crate(&src);
    // Problems include any item after a file's first #[cfg(test)] that is not under one.
    assert!(krate.problems.is_empty(), "{}", krate.problems.join("\n"));
    let read: BTreeSet<PathBuf> = krate
        .files
        .iter()
        .map(|f| src.parent().unwrap_or(&src).join(&f.name))
        .chain(krate.test_files.iter().cloned())
        .chain([src.join("main.rs")])
        .collect();
    let mut missed = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") && !read.contains(&p) {
                missed.push(p.display().to_string());
            }
        }
    }
    assert!(
        missed.is_empty(),
        "files under src/ that no `mod` declares (the graph would miss them): {missed:?}"
    );
    assert!(
        krate.files.len() > 50,
        "only {} files read",
        krate.files.len()
    );
}

// -------------------------------------------------------------------------------------------
// The reader itself
// -------------------------------------------------------------------------------------------

fn refs_of(module: &[&str], code: &str) -> Vec<(String, usize)> {
    let module: ModPath = module.iter().map(|s| s.to_string()).collect();
    let blanked = blank_comments_and_literals(code);
    let tail = test_tail_start(&blanked).map(|t| t + 1);
    scan(&module, &blanked, tail)
        .references
        .iter()
        .filter_map(|r| absolute(r).map(|a| (show(&a), r.line)))
        .collect()
}

#[test]
fn comments_strings_and_test_tails_are_not_edges() {
    let code = r##"
use super::live::SharedLive; // crate::commented::out
/* crate::block::comment /* nested */ crate::still::comment */
fn f<'a>(x: &'a str) -> char {
    let s = "crate::in::a::string";
    let r = r#"crate::in::raw "quote" string"#;
    let c = '"';
    let d = '\'';
    crate::metrics::MAIL_SENT.inc();
    c
}
#[cfg(test)]
mod tests {
    use crate::only::in_tests;
}
"##;
    assert_eq!(
        refs_of(&["gateway", "health"], code),
        vec![
            ("gateway::live::SharedLive".to_string(), 2),
            ("metrics::MAIL_SENT".to_string(), 9),
        ]
    );
}

#[test]
fn use_trees_groups_self_and_inline_modules_resolve() {
    let code = "\
use crate::tls::{self, LiveCert as Cert};
use crate::{a::{b, c::*}, d};
use super::super::x;
pub(crate) fn f() {}
pub mod inner {
    use super::*;
    fn g() { super::socket::parse(); }
}
fn h() { self::inner::g(); super::env::VAR; }
";
    assert_eq!(
        refs_of(&["config", "types"], code),
        vec![
            ("tls".to_string(), 1),
            ("tls::LiveCert".to_string(), 1),
            ("a::b".to_string(), 2),
            ("a::c".to_string(), 2),
            ("d".to_string(), 2),
            ("x".to_string(), 3),
            ("config::types".to_string(), 6),
            ("config::types::socket::parse".to_string(), 7),
            ("config::types::inner::g".to_string(), 9),
            ("config::env::VAR".to_string(), 9),
        ]
    );
}

#[test]
fn cycles_are_found_at_both_granularities_but_not_parent_child() {
    let m = |s: &str| -> ModPath { s.split("::").map(String::from).collect() };
    let ev = || {
        vec![Evidence {
            file: "f".into(),
            line: 1,
            text: "use".into(),
        }]
    };
    let mut edges = BTreeMap::new();
    for (a, b) in [("h", "l"), ("l", "r"), ("r", "h"), ("r", "x")] {
        edges.insert((m(a), m(b)), ev());
    }
    assert_eq!(cycles(&edges), vec![vec![m("h"), m("l"), m("r")]]);
    edges.insert((m("h"), m("r")), ev());
    assert_eq!(
        cycles(&edges),
        vec![vec![m("h"), m("l"), m("r")], vec![m("h"), m("r")]]
    );
    assert!(cycles(&BTreeMap::from([((m("a"), m("b")), ev())])).is_empty());

    // A parent and its children are not a cycle; children of different parents collapse.
    let file = |module: &str, code: &str| File {
        module: if module.is_empty() { vec![] } else { m(module) },
        name: format!("src/{module}.rs"),
        scan: scan(
            &if module.is_empty() { vec![] } else { m(module) },
            &blank_comments_and_literals(code),
            None,
        ),
    };
    let krate = Crate {
        files: vec![
            file("", "mod config; mod mail;"),
            file("config", "mod validate; use validate::x;"),
            file(
                "config::validate",
                "use super::Config; fn f() { crate::mail::valid(); }",
            ),
            file("mail", "mod sender; use crate::config::Config;"),
            file("mail::sender", "use super::Mailer;"),
        ],
        test_files: BTreeSet::new(),
        problems: Vec::new(),
    };
    let found = report(&levels(&krate, Path::new("/nonexistent")));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("cycle: config -> mail -> config\n")
            && found[0].contains("config -> mail: src/config::validate.rs:1")
            && found[0].contains("mail -> config: src/mail.rs:1: use crate::config::Config;"),
        "{}",
        found[0]
    );
}

#[test]
fn items_after_the_first_cfg_test_must_be_test_only() {
    let ok = "fn a() {}\n#[cfg(test)]\nmod fixtures {\n}\n\n#[cfg(test)]\n#[allow(dead_code)]\nfn b() {}\n";
    let blanked = blank_comments_and_literals(ok);
    assert_eq!(untested_items_in_tail(&blanked, 1), Vec::<usize>::new());
    let bad = "fn a() {}\n#[cfg(test)]\nmod tests {\n}\n\npub fn shipped() {}\n";
    let blanked = blank_comments_and_literals(bad);
    assert_eq!(untested_items_in_tail(&blanked, 1), vec![6]);
}
