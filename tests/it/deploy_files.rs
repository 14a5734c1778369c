// Deploy files (issue 7): every YAML and JSON file under deploy/ parses, and the ports, paths,
// metric names and GATEHOUSE_* variables in deploy/ agree with the code, so they cannot drift.
use crate::common;

use gatehouse::config::Config;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

/// The environment variables that are not `GATEHOUSE_<SECTION>_<KEY>` config keys.
const NON_KEY_VARS: &[&str] = &[
    "GATEHOUSE_CONFIG",
    "GATEHOUSE_JWT_SECRET",
    "GATEHOUSE_SUPERUSER_PASSWORD",
    "GATEHOUSE_STORE_URL",
    "GATEHOUSE_STORE_CA_FILE",
];

/// The standard process metrics of the Prometheus client library (README, "Metrics").
const PROCESS_METRICS: &[&str] = &[
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
    "process_threads",
];

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: &[&str] = &["instance", "job"];

/// Labels whose values in a selector must be values the code actually sets.
const CHECKED_LABEL_VALUES: &[&str] = &["kind", "result", "reason", "state"];

// ---------------------------------------------------------------------------------------------
// Files

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy_dir() -> PathBuf {
    root().join("deploy")
}

/// A file of the repository, by its path from the root.
fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

/// Every file under a directory, recursively, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).unwrap_or_else(|e| panic!("cannot list {}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

fn is_json(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()) == Some("json")
}

/// The documents of a YAML file (several, separated by `---`) or of a JSON file, as JSON values.
fn parse_file(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", rel(path)))?;
    if is_json(path) {
        return serde_json::from_str(&text)
            .map(|v| vec![v])
            .map_err(|e| format!("{}: {e}", rel(path)));
    }
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc).map_err(|e| format!("{}: {e}", rel(path)))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// The documents of one file under deploy/.
fn docs(rel_to_deploy: &str) -> Vec<Value> {
    parse_file(&deploy_dir().join(rel_to_deploy)).unwrap_or_else(|e| panic!("{e}"))
}

fn doc(rel_to_deploy: &str) -> Value {
    let mut all = docs(rel_to_deploy);
    assert_eq!(
        all.len(),
        1,
        "deploy/{rel_to_deploy}: expected one document"
    );
    all.remove(0)
}

/// Every parsed YAML/JSON document under deploy/, with the file it came from.
fn all_docs() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for path in files_under(&deploy_dir()) {
        if is_yaml(&path) || is_json(&path) {
            for d in parse_file(&path).unwrap_or_else(|e| panic!("{e}")) {
                out.push((rel(&path), d));
            }
        }
    }
    out
}

/// Every string value inside a JSON value.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// Every string under a given key, anywhere inside a JSON value.
fn strings_at_key(value: &Value, key: &str, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| strings_at_key(v, key, out)),
        Value::Object(map) => {
            for (k, v) in map {
                if k == key {
                    if let Value::String(s) = v {
                        out.push(s.clone());
                    }
                }
                strings_at_key(v, key, out);
            }
        }
        _ => {}
    }
}

fn str_of<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {value}"))
}

fn list_of<'a>(value: &'a Value, what: &str) -> &'a Vec<Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{what}: expected a list, got {value}"))
}

fn fail_on(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "deploy/ disagrees with the code:\n  {}",
        problems.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// What the code says

struct Metric {
    /// counter, gauge or histogram.
    kind: String,
    help: String,
    labels: Vec<String>,
}

/// The string at the start of `text` (which begins with `"`) and what follows it.
fn take_quoted(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('"')?;
    let mut value = String::new();
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match (escaped, c) {
            (false, '\\') => escaped = true,
            (false, '"') => return Some((value, &body[i + 1..])),
            _ => {
                value.push(c);
                escaped = false;
            }
        }
    }
    None
}

/// The quoted strings of a text, in order, with the offset of each opening quote.
fn quoted(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('"') {
        let offset = text.len() - rest.len() + at;
        match take_quoted(&rest[at..]) {
            Some((value, after)) => {
                out.push((offset, value));
                rest = after;
            }
            None => break,
        }
    }
    out
}

/// The arguments of a macro call: the text after `!(` up to its closing parenthesis
/// (parentheses inside strings do not count).
fn macro_body(after_open: &str) -> &str {
    let mut depth = 1;
    let mut rest = after_open;
    loop {
        let Some(at) = rest.find(['(', ')', '"']) else {
            return after_open;
        };
        let offset = after_open.len() - rest.len() + at;
        match rest.as_bytes()[at] {
            b'"' => match take_quoted(&rest[at..]) {
                Some((_, after)) => rest = after,
                None => return after_open,
            },
            b'(' => {
                depth += 1;
                rest = &rest[at + 1..];
            }
            _ => {
                depth -= 1;
                if depth == 0 {
                    return &after_open[..offset];
                }
                rest = &rest[at + 1..];
            }
        }
    }
}

/// Every metric registered in src/metrics.rs: name, kind, help and labels, read as text.
fn code_metrics() -> BTreeMap<String, Metric> {
    let text = read("src/metrics.rs");
    let mut metrics = BTreeMap::new();
    for (at, _) in text.match_indices("register_") {
        let macro_name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let Some(args) = text[at + macro_name.len()..].strip_prefix("!(") else {
            continue; // the `use` line
        };
        let body = macro_body(args);
        let strings = quoted(body);
        let (Some((_, name)), Some((help_at, help))) = (strings.first(), strings.get(1)) else {
            panic!("src/metrics.rs: {macro_name}! without a name and a help text");
        };
        let labels = if macro_name.ends_with("_vec") {
            let list = body[*help_at..]
                .split_once("&[")
                .and_then(|(_, l)| l.split_once(']'))
                .map(|(l, _)| l)
                .unwrap_or_else(|| panic!("src/metrics.rs: {name} has no label list"));
            quoted(list).into_iter().map(|(_, s)| s).collect()
        } else {
            Vec::new()
        };
        let kind = ["histogram", "counter", "gauge"]
            .into_iter()
            .find(|k| macro_name.contains(k))
            .unwrap_or_else(|| panic!("src/metrics.rs: unknown macro {macro_name}"));
        metrics.insert(
            name.clone(),
            Metric {
                kind: kind.to_string(),
                help: help.clone(),
                labels,
            },
        );
    }
    assert!(
        metrics.len() >= 10 && metrics.contains_key("gatehouse_http_requests_total"),
        "could not read the metrics of src/metrics.rs (found {:?})",
        metrics.keys().collect::<Vec<_>>()
    );
    metrics
}

/// Every Rust source file of src/, concatenated (label values are string literals there).
fn all_source() -> String {
    files_under(&root().join("src"))
        .into_iter()
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("rs"))
        .map(|p| std::fs::read_to_string(&p).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `[section] key` pairs that `GATEHOUSE_<SECTION>_<KEY>` can set: the tables of the default
/// config, as `apply_env` in src/config.rs sees them.
fn config_keys() -> BTreeSet<(String, String)> {
    let defaults = toml::Table::try_from(Config::default()).expect("the default config serializes");
    let mut keys = BTreeSet::new();
    for (section, value) in &defaults {
        if let toml::Value::Table(table) = value {
            for key in table.keys() {
                keys.insert((section.clone(), key.clone()));
            }
        }
    }
    assert!(keys.contains(&("server".to_string(), "metrics_listen".to_string())));
    keys
}

/// The config a deployment runs with: its TOML file plus its environment, validated.
fn effective(toml_text: &str, origin: &str, env: &[(String, String)]) -> Config {
    let env: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k != "GATEHOUSE_JWT_SECRET")
        .cloned()
        .collect();
    Config::from_toml_and_env(toml_text, origin, &env)
        .unwrap_or_else(|e| panic!("{origin} with its environment {env:?}: {e}"))
}

/// (server.listen, server.metrics_listen) ports.
fn ports(config: &Config) -> (u16, u16) {
    (
        config.server.listen.map_or(0, |a| a.port()),
        config.server.metrics_listen.port(),
    )
}

fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// A certificate and key for the TLS listener a deploy file names: the files live in the
/// container (a volume, a Secret), so check-config reads these real ones in their place.
fn stand_in_tls() -> &'static common::certs::Pair {
    static PAIR: std::sync::OnceLock<(common::certs::Ca, common::certs::Pair)> =
        std::sync::OnceLock::new();
    &PAIR
        .get_or_init(|| {
            let ca = common::certs::Ca::new("deploy files");
            let pair = ca.server(&["localhost"], 30);
            (ca, pair)
        })
        .1
}

/// `gatehouse check-config -c FILE` with exactly the given GATEHOUSE_* variables (the TLS
/// certificate and key replaced by `stand_in_tls`).
fn check_config(file: &Path, env: &[(String, String)]) -> Output {
    let mut cmd = common::clean_command();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| match k.as_str() {
            "GATEHOUSE_SERVER_TLS_CERT" => (k.clone(), stand_in_tls().cert_str()),
            "GATEHOUSE_SERVER_TLS_KEY" => (k.clone(), stand_in_tls().key_str()),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .arg("check-config")
        .arg("-c")
        .arg(file)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run gatehouse check-config")
}

fn assert_check_config_ok(file: &Path, env: &[(String, String)], what: &str) {
    let out = check_config(file, env);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("config OK"),
        "gatehouse check-config refuses {what}:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Status the operations listener (src/ops.rs) answers for a path, with a real store.
fn ops_status(paths: &[String]) -> Vec<(String, u16)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.server.data_dir = dir.path().to_path_buf();
    let app = gatehouse::app::App::open(config).expect("open an app on a temporary store");
    let ops = gatehouse::ops::Ops::new(Arc::new(app));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    paths
        .iter()
        .map(|p| (p.clone(), runtime.block_on(ops.answer(p)).0))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// PromQL, as far as these checks need it

/// A metric named in a PromQL expression, with its label matchers when it has a selector.
struct Selector {
    name: String,
    matchers: Vec<(String, String, String)>,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
}

/// Every `gatehouse_*` and `process_*` name in a text (not inside a path or a longer word).
fn metric_names(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for prefix in ["gatehouse_", "process_"] {
        for (at, _) in text.match_indices(prefix) {
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || "_/.-:".contains(c)) {
                continue;
            }
            let name: String = text[at..]
                .chars()
                .take_while(|c| is_name_char(*c))
                .collect();
            out.push((at, name));
        }
    }
    out.sort();
    out
}

/// The selectors of a PromQL expression: each metric name and its `{label op "value"}` list.
fn selectors(expr: &str) -> Result<Vec<Selector>, String> {
    let mut out = Vec::new();
    for (at, name) in metric_names(expr) {
        let after = &expr[at + name.len()..];
        let mut matchers = Vec::new();
        if let Some(body) = after.strip_prefix('{') {
            let mut rest = body;
            loop {
                rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
                if rest.starts_with('}') {
                    break;
                }
                let label: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if label.is_empty() {
                    return Err(format!("cannot read the selector of {name} in {expr:?}"));
                }
                rest = rest[label.len()..].trim_start();
                let op = ["=~", "!~", "!=", "="]
                    .into_iter()
                    .find(|op| rest.starts_with(op))
                    .ok_or_else(|| format!("no operator after {label} in {expr:?}"))?;
                let (value, after) = take_quoted(rest[op.len()..].trim_start())
                    .ok_or_else(|| format!("no quoted value for {label} in {expr:?}"))?;
                rest = after;
                matchers.push((label, op.to_string(), value));
            }
        }
        out.push(Selector { name, matchers });
    }
    Ok(out)
}

/// The labels of every `by (...)` and `without (...)` clause of an expression.
fn grouping_labels(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for keyword in ["by", "without"] {
        for (at, _) in expr.match_indices(keyword) {
            let before = expr[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let rest = expr[at + keyword.len()..].trim_start();
            let Some(list) = rest.strip_prefix('(') else {
                continue;
            };
            let list = &list[..list.find(')').unwrap_or(list.len())];
            out.extend(
                list.split(',')
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty()),
            );
        }
    }
    out
}

/// What a name in PromQL refers to: (the metric in src/metrics.rs or a process metric, whether
/// it is a histogram series with `le`). `Err` says what is wrong with it.
fn resolve<'m>(
    name: &str,
    metrics: &'m BTreeMap<String, Metric>,
    in_expr: bool,
) -> Result<(Option<&'m Metric>, bool), String> {
    if let Some(m) = metrics.get(name) {
        if in_expr && m.kind == "histogram" {
            return Err(format!(
                "{name} is a histogram: query {name}_bucket, _sum or _count"
            ));
        }
        return Ok((Some(m), false));
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if let Some(m) = metrics.get(base) {
                if m.kind == "histogram" {
                    return Ok((Some(m), suffix == "_bucket"));
                }
                return Err(format!("{name}: {base} is a {}, not a histogram", m.kind));
            }
        }
    }
    if PROCESS_METRICS.contains(&name) {
        return Ok((None, false));
    }
    Err(format!("{name} is not a metric of src/metrics.rs"))
}

/// Checks one PromQL expression against src/metrics.rs: names, selector labels, label values,
/// grouping labels and the legend's labels.
fn check_expr(
    expr: &str,
    legend: Option<&str>,
    where_: &str,
    metrics: &BTreeMap<String, Metric>,
    source: &str,
    problems: &mut Vec<String>,
) {
    let sels = match selectors(expr) {
        Ok(s) => s,
        Err(e) => {
            problems.push(format!("{where_}: {e}"));
            return;
        }
    };
    let mut known: BTreeSet<String> = TARGET_LABELS.iter().map(|s| s.to_string()).collect();
    for sel in &sels {
        let (metric, bucket) = match resolve(&sel.name, metrics, true) {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("{where_}: {e}"));
                continue;
            }
        };
        let mut labels: BTreeSet<String> = TARGET_LABELS.iter().map(|s| s.to_string()).collect();
        if let Some(m) = metric {
            labels.extend(m.labels.iter().cloned());
        }
        if bucket {
            labels.insert("le".into());
        }
        for (label, op, value) in &sel.matchers {
            if !labels.contains(label) {
                problems.push(format!(
                    "{where_}: {} has no label {label:?} (labels: {labels:?})",
                    sel.name
                ));
                continue;
            }
            if value.contains('$') || op.starts_with('!') {
                continue;
            }
            let Some(m) = metric else { continue };
            if CHECKED_LABEL_VALUES.contains(&label.as_str()) {
                for alt in value.split('|') {
                    let literal = format!("\"{alt}\"");
                    if !alt.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        || !source.contains(&literal)
                    {
                        problems.push(format!(
                            "{where_}: {}{{{label}{op}{value:?}}}: {alt:?} is not a value the code sets",
                            sel.name
                        ));
                    }
                }
            }
            if label == "status" {
                // A status class ("5xx") on the latency histogram, a code ("503") elsewhere.
                let class = m.help.contains("status class");
                let ok = value.split('|').all(|alt| {
                    if class {
                        alt.len() == 3 && alt.ends_with("xx")
                    } else {
                        alt.chars()
                            .all(|c| c.is_ascii_digit() || "[].-".contains(c))
                    }
                });
                if !ok {
                    problems.push(format!(
                        "{where_}: {}{{status{op}{value:?}}}: status is {} on this metric",
                        sel.name,
                        if class {
                            "a class like \"5xx\""
                        } else {
                            "a code like \"503\""
                        }
                    ));
                }
            }
        }
        known.extend(labels);
    }
    for label in grouping_labels(expr) {
        if !known.contains(&label) {
            problems.push(format!(
                "{where_}: grouping by {label:?}, which no metric of {expr:?} has"
            ));
        }
    }
    if let Some(legend) = legend {
        for part in legend.split("{{").skip(1) {
            let label = part.split("}}").next().unwrap_or("").trim();
            if !label.is_empty() && !known.contains(label) {
                problems.push(format!(
                    "{where_}: legend {legend:?} names {label:?}, which no metric of {expr:?} has"
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// deploy/Dockerfile

struct Image {
    env: Vec<(String, String)>,
    expose: BTreeSet<u16>,
    volume: String,
    uid: u64,
    /// (port, path) of the HEALTHCHECK URL.
    healthcheck: (u16, String),
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    /// (source in the repository, destination in the image) of the plain COPY lines.
    copies: Vec<(String, String)>,
}

/// The instructions of the final stage: (KEYWORD, arguments), continuations joined.
fn dockerfile_instructions() -> Vec<(String, String)> {
    let text = read("deploy/Dockerfile");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let (keyword, args) = current
            .split_once(char::is_whitespace)
            .unwrap_or((current.as_str(), ""));
        out.push((keyword.to_ascii_uppercase(), args.trim().to_string()));
        current.clear();
    }
    let last_from = out
        .iter()
        .rposition(|(k, _)| k == "FROM")
        .expect("deploy/Dockerfile has a FROM");
    assert!(
        out.iter().filter(|(k, _)| k == "FROM").count() >= 2,
        "deploy/Dockerfile: expected a multi-stage build"
    );
    out.split_off(last_from)
}

fn json_array(args: &str, what: &str) -> Vec<String> {
    serde_json::from_str(args)
        .unwrap_or_else(|e| panic!("deploy/Dockerfile {what}: expected a JSON array: {e}"))
}

/// `http://HOST:PORT/PATH` → (PORT, /PATH).
fn url_port_path(url: &str) -> (u16, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{url}: expected http://"));
    let (host_port, path) = rest.split_once('/').unwrap_or((rest, ""));
    let port = host_port
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("{url}: no port"));
    (port, format!("/{path}"))
}

fn image() -> Image {
    let mut image = Image {
        env: Vec::new(),
        expose: BTreeSet::new(),
        volume: String::new(),
        uid: 0,
        healthcheck: (0, String::new()),
        entrypoint: Vec::new(),
        cmd: Vec::new(),
        copies: Vec::new(),
    };
    for (keyword, args) in dockerfile_instructions() {
        match keyword.as_str() {
            "ENV" => {
                for pair in args.split_whitespace() {
                    let (k, v) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("deploy/Dockerfile: ENV {pair}: use KEY=VALUE"));
                    image.env.push((k.to_string(), v.to_string()));
                }
            }
            "EXPOSE" => image.expose.extend(args.split_whitespace().map(|p| {
                p.trim_end_matches("/tcp")
                    .parse::<u16>()
                    .unwrap_or_else(|e| panic!("deploy/Dockerfile: EXPOSE {p}: {e}"))
            })),
            "VOLUME" => image.volume = args.trim_matches(|c| "[]\" ".contains(c)).to_string(),
            "USER" => {
                image.uid = args
                    .split(':')
                    .next()
                    .and_then(|u| u.parse().ok())
                    .expect("deploy/Dockerfile: USER must be a numeric uid (for runAsNonRoot)")
            }
            "HEALTHCHECK" => {
                let cmd = args
                    .split_once("CMD")
                    .map(|(_, c)| c.trim())
                    .expect("deploy/Dockerfile: HEALTHCHECK CMD");
                let argv = json_array(cmd, "HEALTHCHECK CMD");
                let url = argv
                    .iter()
                    .find(|a| a.starts_with("http://"))
                    .expect("deploy/Dockerfile: HEALTHCHECK has no http:// URL");
                image.healthcheck = url_port_path(url);
            }
            "ENTRYPOINT" => image.entrypoint = json_array(&args, "ENTRYPOINT"),
            "CMD" => image.cmd = json_array(&args, "CMD"),
            "COPY" if !args.starts_with("--") => {
                let parts: Vec<&str> = args.split_whitespace().collect();
                if let [src, dst] = parts.as_slice() {
                    image.copies.push((src.to_string(), dst.to_string()));
                }
            }
            _ => {}
        }
    }
    image
}

/// The value after `-c` / `--config` in an argument list.
fn config_arg(args: &[String]) -> Option<String> {
    args.iter()
        .position(|a| a == "-c" || a == "--config")
        .and_then(|i| args.get(i + 1).cloned())
}

/// The config baked into the image, with the image's environment.
fn image_config() -> (Image, Config) {
    let image = image();
    let path = config_arg(&image.cmd).expect("deploy/Dockerfile: CMD passes -c FILE");
    let (src, _) = image
        .copies
        .iter()
        .find(|(_, dst)| *dst == path)
        .unwrap_or_else(|| panic!("deploy/Dockerfile: nothing is copied to {path}"));
    let config = effective(&read(src), src, &image.env);
    (image, config)
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn every_yaml_and_json_file_in_deploy_parses() {
    let required = [
        "Dockerfile",
        "compose.yaml",
        "compose/gatehouse.toml",
        "systemd/gatehouse.service",
        "k8s/statefulset.yaml",
        "k8s/service.yaml",
        "k8s/configmap.yaml",
        "k8s/secret.yaml",
        "k8s/servicemonitor.yaml",
        "prometheus/prometheus.yml",
        "prometheus/alerts.yml",
        "grafana/gatehouse.json",
        "README.md",
    ];
    for file in required {
        assert!(
            deploy_dir().join(file).is_file(),
            "deploy/{file} is missing"
        );
    }
    let mut parsed = 0;
    let mut problems = Vec::new();
    for path in files_under(&deploy_dir()) {
        if !(is_yaml(&path) || is_json(&path)) {
            continue;
        }
        match parse_file(&path) {
            Ok(d) if d.is_empty() => problems.push(format!("{}: no document", rel(&path))),
            Ok(_) => parsed += 1,
            Err(e) => problems.push(e),
        }
    }
    fail_on(problems);
    assert!(parsed >= 10, "only {parsed} YAML/JSON files under deploy/");
}

#[test]
fn metric_names_and_labels_exist_in_src_metrics() {
    let metrics = code_metrics();
    let source = all_source();
    let mut problems = Vec::new();
    let mut exprs = 0;
    for (file, d) in all_docs() {
        // A ConfigMap or Secret carries config text, not PromQL.
        if matches!(d["kind"].as_str(), Some("ConfigMap" | "Secret")) {
            continue;
        }
        // Every metric-like name in any string (expressions, descriptions, annotations).
        let mut all = Vec::new();
        strings(&d, &mut all);
        for s in &all {
            for (_, name) in metric_names(s) {
                if let Err(e) = resolve(&name, &metrics, false) {
                    problems.push(format!("{file}: {e}"));
                }
            }
        }
        // Prometheus rules and Grafana targets: whole expressions.
        check_exprs_of(&d, &file, &metrics, &source, &mut problems, &mut exprs);
    }
    fail_on(problems);
    assert!(
        exprs >= 20,
        "only {exprs} PromQL expressions found in deploy/"
    );
}

/// Walks a document for `expr` (with a sibling `legendFormat`) and Grafana variable queries.
fn check_exprs_of(
    value: &Value,
    file: &str,
    metrics: &BTreeMap<String, Metric>,
    source: &str,
    problems: &mut Vec<String>,
    count: &mut usize,
) {
    match value {
        Value::Array(items) => items
            .iter()
            .for_each(|v| check_exprs_of(v, file, metrics, source, problems, count)),
        Value::Object(map) => {
            if let Some(Value::String(expr)) = map.get("expr") {
                let legend = map.get("legendFormat").and_then(Value::as_str);
                let name = map
                    .get("alert")
                    .or_else(|| map.get("refId"))
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                let where_ = format!("{file} ({name})");
                check_expr(expr, legend, &where_, metrics, source, problems);
                *count += 1;
            }
            if let Some(Value::String(def)) = map.get("definition") {
                check_expr(def, None, file, metrics, source, problems);
            }
            map.values()
                .for_each(|v| check_exprs_of(v, file, metrics, source, problems, count));
        }
        _ => {}
    }
}

#[test]
fn the_dashboard_shows_every_metric() {
    let metrics = code_metrics();
    let dash = doc("grafana/gatehouse.json");
    let mut exprs = Vec::new();
    strings_at_key(&dash, "expr", &mut exprs);
    let used: BTreeSet<String> = exprs
        .iter()
        .flat_map(|e| metric_names(e))
        .filter_map(|(_, n)| match resolve(&n, &metrics, false) {
            Ok((Some(_), _)) => ["_bucket", "_sum", "_count"]
                .into_iter()
                .find_map(|s| n.strip_suffix(s).filter(|b| metrics.contains_key(*b)))
                .map(str::to_string)
                .or(Some(n)),
            _ => None,
        })
        .collect();
    let missing: Vec<&String> = metrics.keys().filter(|m| !used.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "deploy/grafana/gatehouse.json shows no panel for {missing:?}"
    );
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("process_resident_memory_bytes")),
        "the dashboard shows no process memory"
    );

    // Panel ids are unique; every query uses the dashboard's data source variable.
    let mut ids = BTreeSet::new();
    let mut stack: Vec<&Value> = list_of(&dash["panels"], "panels").iter().collect();
    let mut problems = Vec::new();
    while let Some(p) = stack.pop() {
        if let Some(children) = p["panels"].as_array() {
            stack.extend(children.iter());
        }
        let id = p["id"].as_u64().unwrap_or(0);
        if !ids.insert(id) {
            problems.push(format!("panel id {id} appears twice"));
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            if t["datasource"]["uid"] != "${datasource}" {
                problems.push(format!(
                    "panel {:?}: target without the ${{datasource}} variable",
                    p["title"]
                ));
            }
        }
    }
    let vars = list_of(&dash["templating"]["list"], "templating.list");
    if !vars
        .iter()
        .any(|v| v["name"] == "datasource" && v["type"] == "datasource")
    {
        problems.push("no \"datasource\" variable".into());
    }
    assert!(
        dash["uid"].as_str().is_some_and(|u| !u.is_empty()),
        "dashboard uid"
    );
    fail_on(problems);
}

#[test]
fn alert_rules_cover_the_issue_list() {
    let alerts = doc("prometheus/alerts.yml");
    let mut names = BTreeSet::new();
    let mut exprs = Vec::new();
    let mut problems = Vec::new();
    for group in list_of(&alerts["groups"], "groups") {
        for rule in list_of(&group["rules"], "rules") {
            let name = str_of(&rule["alert"], "alert").to_string();
            if !names.insert(name.clone()) {
                problems.push(format!("alert {name} appears twice"));
            }
            if !matches!(
                rule["labels"]["severity"].as_str(),
                Some("critical" | "warning" | "info")
            ) {
                problems.push(format!("alert {name}: labels.severity"));
            }
            if rule["annotations"]["summary"].as_str().is_none() {
                problems.push(format!("alert {name}: annotations.summary"));
            }
            exprs.push(str_of(&rule["expr"], "expr").replace(char::is_whitespace, ""));
        }
    }
    let wanted: &[(&str, &[&str])] = &[
        ("gatehouse down", &["up{job=\"gatehouse\"}", "==0"]),
        (
            "5xx ratio",
            &["gatehouse_http_requests_total{status=~\"5..\"}", "/"],
        ),
        (
            "auth-failure spike",
            &["gatehouse_logins_total{result=\"failure\"}"],
        ),
        (
            "throttling spike",
            &["gatehouse_logins_total{result=\"throttled\"}"],
        ),
        (
            "a replayed second-factor code",
            &["gatehouse_mfa_checks_total{result=\"replayed\"}"],
        ),
        (
            "hash queue saturation",
            &["gatehouse_password_hash_queue_depth"],
        ),
        (
            "upstream errors",
            &["gatehouse_upstream_requests_total{status=~\"0|5..\"}"],
        ),
        (
            "a certificate expiring within 14 days",
            &[
                "gatehouse_tls_certificate_expiry_timestamp_seconds",
                "-time()<14*86400",
            ],
        ),
        (
            "a refused reload",
            &["gatehouse_config_reloads_total{result=\"failure\"}"],
        ),
    ];
    for (what, needles) in wanted {
        if !exprs
            .iter()
            .any(|e| needles.iter().all(|n| e.contains(&n.replace(' ', ""))))
        {
            problems.push(format!("no alert rule for {what} (expr with {needles:?})"));
        }
    }
    fail_on(problems);
}

#[test]
fn the_image_listens_where_it_says() {
    let (image, config) = image_config();
    let defaults = Config::default();
    let (listen, metrics) = ports(&config);
    assert_eq!(
        (listen, metrics),
        ports(&defaults),
        "the image changes the default ports of src/config.rs"
    );
    assert!(
        !config.server.listen.is_some_and(|a| is_loopback(&a))
            && !is_loopback(&config.server.metrics_listen),
        "inside a container both listeners must not be on loopback"
    );
    assert_eq!(
        image.expose,
        BTreeSet::from([listen, metrics]),
        "EXPOSE vs server.listen / server.metrics_listen"
    );
    assert_eq!(
        image.healthcheck,
        (metrics, "/healthz".to_string()),
        "HEALTHCHECK must ask /healthz on the metrics port"
    );
    assert_eq!(
        Path::new(&image.volume),
        config.server.data_dir,
        "VOLUME vs server.data_dir"
    );
    assert_eq!(image.entrypoint, ["gatehouse"]);
    assert_eq!(image.cmd.first().map(String::as_str), Some("serve"));
    assert!(image.uid > 0, "the image must not run as root");
    for (src, _) in &image.copies {
        assert!(
            root().join(src).exists(),
            "deploy/Dockerfile copies {src}, which does not exist"
        );
    }
}

/// A compose service's environment, as (name, value); interpolated values are left out.
fn compose_env(service: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match &service["environment"] {
        Value::Object(map) => {
            for (k, v) in map {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => continue,
                    other => other.to_string(),
                };
                if !v.contains("${") {
                    out.push((k.clone(), v));
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                if let Some((k, v)) = item.as_str().and_then(|s| s.split_once('=')) {
                    if !v.contains("${") {
                        out.push((k.to_string(), v.to_string()));
                    }
                }
            }
        }
        _ => {}
    }
    out
}

/// Short-syntax volumes of a compose service: (source, target).
fn compose_volumes(service: &Value) -> Vec<(String, String)> {
    service["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|v| {
            let parts: Vec<&str> = v.split(':').collect();
            (
                parts.first().copied().unwrap_or("").to_string(),
                parts.get(1).copied().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn args_of(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// The host file a compose bind mount puts at `target`.
fn compose_source(service: &Value, target: &str) -> Option<PathBuf> {
    compose_volumes(service)
        .into_iter()
        .find(|(_, t)| t == target)
        .filter(|(s, _)| s.starts_with("./") || s.starts_with("../"))
        .map(|(s, _)| deploy_dir().join(s))
}

fn seconds(duration: &str) -> u64 {
    duration
        .strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{duration:?}: expected seconds like \"35s\""))
}

#[test]
fn compose_agrees_with_the_code() {
    let compose = doc("compose.yaml");
    let services = compose["services"]
        .as_object()
        .expect("compose.yaml: services");
    let g = &compose["services"]["gatehouse"];
    let (image, image_cfg) = image_config();
    let mut problems = Vec::new();

    // The build uses deploy/Dockerfile with the repository root as context.
    let context = deploy_dir().join(str_of(&g["build"]["context"], "build.context"));
    let dockerfile = context.join(str_of(&g["build"]["dockerfile"], "build.dockerfile"));
    assert_eq!(
        dockerfile.canonicalize().ok(),
        deploy_dir().join("Dockerfile").canonicalize().ok(),
        "compose.yaml builds another Dockerfile"
    );
    assert!(
        context.join("Cargo.toml").is_file(),
        "build context is not the repository root"
    );

    // Every relative bind mount of every service exists.
    for (name, service) in services {
        for (src, dst) in compose_volumes(service) {
            if (src.starts_with("./") || src.starts_with("../"))
                && !deploy_dir().join(&src).exists()
            {
                problems.push(format!(
                    "compose.yaml: {name} mounts {src} ({dst}), which is missing"
                ));
            }
        }
    }

    // gatehouse's effective config: the mounted file plus the image's and compose's environment.
    let args = {
        let a = args_of(&g["command"]);
        if a.is_empty() {
            image.cmd.clone()
        } else {
            a
        }
    };
    let config_path = config_arg(&args).expect("compose.yaml: gatehouse command -c FILE");
    let config_file = compose_source(g, &config_path)
        .unwrap_or_else(|| panic!("compose.yaml: nothing of deploy/ is mounted at {config_path}"));
    let mut env = image.env.clone();
    env.extend(compose_env(g));
    let text = std::fs::read_to_string(&config_file).expect("compose config file");
    let config = effective(&text, &rel(&config_file), &env);
    let (listen, metrics) = ports(&config);
    // The TLS listener, when the deploy file turns it on.
    let tls = config.server.tls_listen.map(|a| a.port());
    assert_eq!(
        (listen, metrics),
        ports(&image_cfg),
        "compose runs gatehouse on other ports than the image EXPOSEs"
    );
    assert_check_config_ok(&config_file, &env, "deploy/compose/gatehouse.toml");

    // Published ports: the public one; the metrics one only on the host's loopback.
    let mut published = BTreeSet::new();
    for p in g["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let parts: Vec<&str> = p.split(':').collect();
        let container: u16 = parts
            .last()
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("compose.yaml: port {p:?}"));
        published.insert(container);
        if container != listen && container != metrics && Some(container) != tls {
            problems.push(format!(
                "compose.yaml: gatehouse publishes {container}, where nothing listens"
            ));
        }
        if container == metrics && !(parts.len() == 3 && parts[0] == "127.0.0.1") {
            problems.push(format!(
                "compose.yaml: the metrics port is published beyond loopback ({p})"
            ));
        }
    }
    if !published.contains(&listen) {
        problems.push(format!(
            "compose.yaml: the public port {listen} is not published"
        ));
    }

    // Data in a named volume; with a read-only root, pid file and upgrade socket in a tmpfs.
    let volumes = compose_volumes(g);
    let named = compose["volumes"].as_object().cloned().unwrap_or_default();
    let data = config.server.data_dir.display().to_string();
    if !volumes
        .iter()
        .any(|(s, t)| *t == data && named.contains_key(s))
    {
        problems.push(format!(
            "compose.yaml: server.data_dir {data} is not a named volume"
        ));
    }
    if g["read_only"] == Value::Bool(true) {
        let writable: Vec<String> = args_of(&g["tmpfs"])
            .into_iter()
            .chain(volumes.iter().map(|(_, t)| t.clone()))
            .collect();
        for (key, file) in [
            ("server.pid_file", &config.server.pid_file),
            ("server.upgrade_sock", &config.server.upgrade_sock),
        ] {
            let dir = Path::new(file).parent().map(|p| p.display().to_string());
            if !dir.as_ref().is_some_and(|d| writable.contains(d)) {
                problems.push(format!(
                    "compose.yaml: {key} {file} is not on a writable mount"
                ));
            }
        }
    }
    let grace = g["stop_grace_period"].as_str().map(seconds).unwrap_or(10);
    if grace <= config.server.grace_period_seconds {
        problems.push(format!(
            "compose.yaml: stop_grace_period {grace} s does not cover grace_period_seconds {}",
            config.server.grace_period_seconds
        ));
    }

    // Each upstream is a compose service's fixed address, listening on that port.
    for route in &config.routes {
        for up in &route.upstreams {
            let (ip, port) = (up.host.clone(), up.port.to_string());
            let owner = services.iter().find(|(_, s)| {
                s["networks"]
                    .as_object()
                    .is_some_and(|n| n.values().any(|net| net["ipv4_address"] == ip.as_str()))
            });
            match owner {
                None => problems.push(format!(
                    "route {}: no compose service has address {ip}",
                    route.prefix
                )),
                Some((name, s)) => {
                    if !args_of(&s["command"]).contains(&port) {
                        problems.push(format!(
                            "route {}: {name} is not told to listen on port {port}",
                            route.prefix
                        ));
                    }
                }
            }
        }
    }

    // Prometheus loads deploy/prometheus/prometheus.yml and the rule files it names, and
    // scrapes gatehouse's metrics port.
    let prom = &compose["services"]["prometheus"];
    let prom_args = args_of(&prom["command"]);
    let prom_config = prom_args
        .iter()
        .find_map(|a| a.strip_prefix("--config.file="))
        .expect("compose.yaml: prometheus --config.file");
    assert_eq!(
        compose_source(prom, prom_config).and_then(|p| p.canonicalize().ok()),
        deploy_dir()
            .join("prometheus/prometheus.yml")
            .canonicalize()
            .ok(),
        "compose's Prometheus does not load deploy/prometheus/prometheus.yml"
    );
    let scrape = doc("prometheus/prometheus.yml");
    for rule_file in list_of(&scrape["rule_files"], "rule_files") {
        let rule_file = str_of(rule_file, "rule_files");
        match compose_source(prom, rule_file) {
            Some(p) if p.is_file() => {}
            _ => problems.push(format!(
                "compose.yaml: Prometheus rule file {rule_file} is not mounted"
            )),
        }
    }
    let mut targets = 0;
    for job in list_of(&scrape["scrape_configs"], "scrape_configs") {
        let path = job["metrics_path"].as_str().unwrap_or("/metrics");
        if path != "/metrics" {
            problems.push(format!("prometheus.yml: metrics_path {path}"));
        }
        for sc in job["static_configs"].as_array().into_iter().flatten() {
            for t in sc["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let (host, port) = t.rsplit_once(':').expect("host:port target");
                targets += 1;
                if host != "gatehouse" || port.parse::<u16>().ok() != Some(metrics) {
                    problems.push(format!(
                        "prometheus.yml: target {t} is not gatehouse's metrics listener (gatehouse:{metrics})"
                    ));
                }
            }
        }
    }
    assert!(targets > 0, "prometheus.yml scrapes nothing");

    // Grafana: the provider's folder is where compose mounts the dashboard; the data source
    // is compose's Prometheus.
    let grafana = &compose["services"]["grafana"];
    let provider = doc("grafana/provisioning/dashboards/gatehouse.yml");
    let folder = str_of(
        &provider["providers"][0]["options"]["path"],
        "providers[0].options.path",
    );
    let dash_target = compose_volumes(grafana)
        .into_iter()
        .find(|(s, _)| s.ends_with("grafana/gatehouse.json"))
        .map(|(_, t)| t)
        .expect("compose.yaml: grafana mounts deploy/grafana/gatehouse.json");
    if Path::new(&dash_target).parent() != Some(Path::new(folder)) {
        problems.push(format!(
            "grafana: dashboard mounted at {dash_target}, provider reads {folder}"
        ));
    }
    let datasources = doc("grafana/provisioning/datasources/prometheus.yml");
    let url = str_of(&datasources["datasources"][0]["url"], "datasources[0].url");
    if url != "http://prometheus:9090" || !services.contains_key("prometheus") {
        problems.push(format!(
            "grafana: data source {url} is not compose's Prometheus"
        ));
    }
    fail_on(problems);
}

/// Documents of deploy/k8s/, by kind.
fn k8s_docs() -> Vec<Value> {
    files_under(&deploy_dir().join("k8s"))
        .into_iter()
        .filter(|p| is_yaml(p))
        .flat_map(|p| parse_file(&p).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels[k] == *v))
}

#[test]
fn kubernetes_manifests_agree_with_the_code() {
    let all = k8s_docs();
    let of_kind =
        |kind: &str| -> Vec<&Value> { all.iter().filter(|d| d["kind"] == kind).collect() };
    let sts = *of_kind("StatefulSet")
        .first()
        .expect("deploy/k8s has a StatefulSet");
    let (image, image_cfg) = image_config();
    let mut problems = Vec::new();

    assert_eq!(
        sts["spec"]["replicas"], 1,
        "sled is single-writer: one replica"
    );
    let pod = &sts["spec"]["template"];
    let spec = &pod["spec"];
    let c = list_of(&spec["containers"], "containers")
        .iter()
        .find(|c| c["name"] == "gatehouse")
        .expect("a container named gatehouse");

    // Environment: plain values apply over the image's; secret references must resolve.
    let mut env = image.env.clone();
    for e in list_of(&c["env"], "env") {
        let name = str_of(&e["name"], "env name").to_string();
        if let Some(v) = e["value"].as_str() {
            env.push((name, v.to_string()));
        } else if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
            let secret = of_kind("Secret")
                .into_iter()
                .find(|s| s["metadata"]["name"] == r["name"]);
            let key = r["key"].as_str().unwrap_or("");
            if !secret
                .is_some_and(|s| s["stringData"].get(key).is_some() || s["data"].get(key).is_some())
            {
                problems.push(format!(
                    "env {name}: secret {:?} has no key {key:?}",
                    r["name"]
                ));
            }
        }
    }

    // The config file: -c FILE inside a ConfigMap mount.
    let args = args_of(&c["args"]);
    let config_path = config_arg(&args).expect("statefulset: args -c FILE");
    let volumes = list_of(&spec["volumes"], "volumes");
    let mounts = list_of(&c["volumeMounts"], "volumeMounts");
    let (dir, file) = config_path
        .rsplit_once('/')
        .expect("an absolute config path");
    let mount = mounts
        .iter()
        .find(|m| m["mountPath"] == dir)
        .unwrap_or_else(|| panic!("statefulset: nothing is mounted at {dir}"));
    let cm_name = volumes
        .iter()
        .find(|v| v["name"] == mount["name"])
        .and_then(|v| v["configMap"]["name"].as_str())
        .expect("the config directory is a ConfigMap volume");
    let cm = of_kind("ConfigMap")
        .into_iter()
        .find(|m| m["metadata"]["name"] == cm_name)
        .unwrap_or_else(|| panic!("no ConfigMap {cm_name}"));
    let toml_text = str_of(&cm["data"][file], "ConfigMap data");
    let config = effective(toml_text, "k8s/configmap.yaml", &env);
    let (listen, metrics) = ports(&config);
    // The TLS listener, when the deploy file turns it on.
    let tls = config.server.tls_listen.map(|a| a.port());
    assert_eq!(
        (listen, metrics),
        ports(&image_cfg),
        "the StatefulSet runs gatehouse on other ports than the image EXPOSEs"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file_path = dir.path().join(file);
    std::fs::write(&file_path, toml_text).expect("write the ConfigMap's file");
    assert_check_config_ok(&file_path, &env, "the k8s ConfigMap's gatehouse.toml");

    // The Secret's placeholder is refused (nobody signs tokens with a published secret).
    for secret in of_kind("Secret") {
        for (key, v) in secret["stringData"].as_object().into_iter().flatten() {
            let mut with_secret = env.clone();
            with_secret.push(("GATEHOUSE_JWT_SECRET".into(), str_of(v, key).to_string()));
            let out = check_config(&file_path, &with_secret);
            if out.status.success() {
                problems.push(format!(
                    "k8s/secret.yaml: the placeholder {key} is accepted as a JWT secret"
                ));
            }
        }
    }

    // Container ports and probes.
    let ports = list_of(&c["ports"], "ports");
    let resolve_port = |p: &Value| -> Option<u16> {
        match p {
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Value::String(name) => ports
                .iter()
                .find(|cp| cp["name"] == name.as_str())
                .and_then(|cp| cp["containerPort"].as_u64())
                .and_then(|n| u16::try_from(n).ok()),
            _ => None,
        }
    };
    let container_ports: BTreeSet<u16> = ports
        .iter()
        .filter_map(|p| resolve_port(&p["containerPort"]))
        .collect();
    let mut listeners = BTreeSet::from([listen, metrics]);
    listeners.extend(tls);
    if container_ports != listeners {
        problems.push(format!(
            "containerPorts {container_ports:?} vs listeners {listen} and {metrics}"
        ));
    }
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        if get["path"] != path {
            problems.push(format!("{probe}: path {} (expected {path})", get["path"]));
        }
        if resolve_port(&get["port"]) != Some(metrics) {
            problems.push(format!(
                "{probe}: port {} is not the metrics port {metrics}",
                get["port"]
            ));
        }
    }

    // Storage and writable paths under a read-only root.
    let claims: Vec<&Value> = list_of(&sts["spec"]["volumeClaimTemplates"], "volumeClaimTemplates")
        .iter()
        .map(|t| &t["metadata"]["name"])
        .collect();
    let data = config.server.data_dir.display().to_string();
    if !mounts
        .iter()
        .any(|m| m["mountPath"] == data.as_str() && claims.contains(&&m["name"]))
    {
        problems.push(format!(
            "server.data_dir {data} is not on the PersistentVolumeClaim"
        ));
    }
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    for (key, file) in [
        ("server.pid_file", &config.server.pid_file),
        ("server.upgrade_sock", &config.server.upgrade_sock),
    ] {
        let parent = Path::new(file)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if !mounts
            .iter()
            .any(|m| m["mountPath"] == parent.as_str() && m["readOnly"] != true)
        {
            problems.push(format!("{key} {file}: {parent} is not a writable mount"));
        }
    }
    let sc = &spec["securityContext"];
    if sc["runAsNonRoot"] != true || sc["runAsUser"].as_u64() != Some(image.uid) {
        problems.push(format!(
            "securityContext: runAsNonRoot and runAsUser {} (the image's uid)",
            image.uid
        ));
    }
    let termination = spec["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    if termination <= config.server.grace_period_seconds {
        problems.push(format!(
            "terminationGracePeriodSeconds {termination} does not cover grace_period_seconds {}",
            config.server.grace_period_seconds
        ));
    }

    // Services: select the pod, target real container ports with the same numbers.
    let services = of_kind("Service");
    let pod_labels = &pod["metadata"]["labels"];
    let governing = services
        .iter()
        .find(|s| s["metadata"]["name"] == sts["spec"]["serviceName"]);
    if !governing.is_some_and(|s| s["spec"]["clusterIP"] == "None") {
        problems.push("the StatefulSet's serviceName is not a headless Service".into());
    }
    for s in &services {
        let name = &s["metadata"]["name"];
        if !labels_match(&s["spec"]["selector"], pod_labels) {
            problems.push(format!("Service {name} does not select the pod"));
        }
        for p in list_of(&s["spec"]["ports"], "Service ports") {
            let target = resolve_port(&p["targetPort"]);
            if target.is_none() || p["port"].as_u64() != target.map(u64::from) {
                problems.push(format!(
                    "Service {name}: port {} -> {} is not a container port of the same number",
                    p["port"], p["targetPort"]
                ));
            }
            let public = matches!(
                s["spec"]["type"].as_str(),
                Some("LoadBalancer" | "NodePort")
            );
            if target == Some(metrics) && public {
                problems.push(format!("Service {name} exposes the metrics port publicly"));
            }
        }
    }

    // ServiceMonitor: selects the metrics Service, its metrics port, /metrics, job "gatehouse".
    let scrape = doc("prometheus/prometheus.yml");
    let job = str_of(&scrape["scrape_configs"][0]["job_name"], "job_name");
    for sm in of_kind("ServiceMonitor") {
        let selected: Vec<&&Value> = services
            .iter()
            .filter(|s| {
                labels_match(
                    &sm["spec"]["selector"]["matchLabels"],
                    &s["metadata"]["labels"],
                )
            })
            .collect();
        let [svc] = selected.as_slice() else {
            problems.push(format!(
                "ServiceMonitor selects {} Services, not one",
                selected.len()
            ));
            continue;
        };
        if let Some(label) = sm["spec"]["jobLabel"].as_str() {
            if svc["metadata"]["labels"][label] != job {
                problems.push(format!(
                    "ServiceMonitor: job label {label} is {}, the alerts expect job={job:?}",
                    svc["metadata"]["labels"][label]
                ));
            }
        } else {
            problems.push("ServiceMonitor: set jobLabel so that job is \"gatehouse\"".into());
        }
        for ep in list_of(&sm["spec"]["endpoints"], "endpoints") {
            let port = list_of(&svc["spec"]["ports"], "ports")
                .iter()
                .find(|p| p["name"] == ep["port"])
                .and_then(|p| resolve_port(&p["targetPort"]));
            if port != Some(metrics) {
                problems.push(format!(
                    "ServiceMonitor: port {} is not the metrics port",
                    ep["port"]
                ));
            }
            if ep["path"].as_str().unwrap_or("/metrics") != "/metrics" {
                problems.push(format!("ServiceMonitor: path {}", ep["path"]));
            }
        }
    }

    // NetworkPolicy: only real ports; the metrics port only from a selected source.
    for np in of_kind("NetworkPolicy") {
        for rule in np["spec"]["ingress"].as_array().into_iter().flatten() {
            for p in rule["ports"].as_array().into_iter().flatten() {
                let port = resolve_port(&p["port"]);
                if port != Some(listen) && port != Some(metrics) && port != tls {
                    problems.push(format!("NetworkPolicy: port {} is no listener", p["port"]));
                }
                if port == Some(metrics) && rule["from"].as_array().is_none_or(|f| f.is_empty()) {
                    problems.push("NetworkPolicy: the metrics port is open to everyone".into());
                }
            }
        }
    }

    // kustomization.yaml lists every manifest of the directory, and only those.
    if let Some(k) = all.iter().find(|d| d["kind"] == "Kustomization") {
        let listed: BTreeSet<String> = args_of(&k["resources"]).into_iter().collect();
        let present: BTreeSet<String> = files_under(&deploy_dir().join("k8s"))
            .into_iter()
            .filter(|p| is_yaml(p))
            .filter_map(|p| p.file_name().map(|f| f.to_string_lossy().to_string()))
            .filter(|f| f != "kustomization.yaml")
            .collect();
        if listed != present {
            problems.push(format!(
                "kustomization.yaml lists {listed:?}, the directory has {present:?}"
            ));
        }
    }
    fail_on(problems);
}

/// `Key=Value` lines of a systemd unit (every value of a repeated key, in order).
fn unit_entries(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with('#') && !l.starts_with(';') && !l.starts_with('[')
        })
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn the_systemd_unit_agrees_with_the_code() {
    let text = read("deploy/systemd/gatehouse.service");
    let entries = unit_entries(&text);
    let get = |key: &str| -> Vec<&str> {
        entries
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let one = |key: &str| -> &str {
        get(key)
            .last()
            .copied()
            .unwrap_or_else(|| panic!("gatehouse.service: no {key}="))
    };
    let mut problems = Vec::new();
    let env: Vec<(String, String)> = get("Environment")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .map(|a| a.trim_matches('"'))
        .filter_map(|a| a.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();

    // ExecStart: `gatehouse serve -c FILE`, the same FILE as GATEHOUSE_CONFIG.
    let exec: Vec<String> = one("ExecStart")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert!(
        exec.first().is_some_and(|b| b.ends_with("/gatehouse"))
            && exec.get(1).map(String::as_str) == Some("serve"),
        "ExecStart must run `gatehouse serve`: {exec:?}"
    );
    let config_path = config_arg(&exec).expect("ExecStart: -c FILE");
    if let Some((_, v)) = env.iter().find(|(k, _)| k == "GATEHOUSE_CONFIG") {
        if *v != config_path {
            problems.push(format!(
                "GATEHOUSE_CONFIG {v} vs ExecStart -c {config_path}"
            ));
        }
    }

    // The installed config is conf/gatehouse.toml; with the unit's environment it must load.
    let config = effective(&read("conf/gatehouse.toml"), "conf/gatehouse.toml", &env);
    let state = format!("/var/lib/{}", one("StateDirectory"));
    let runtime = format!("/run/{}/", one("RuntimeDirectory"));
    if config.server.data_dir != Path::new(&state) {
        problems.push(format!(
            "server.data_dir {} is not the StateDirectory {state}",
            config.server.data_dir.display()
        ));
    }
    for (key, file) in [
        ("server.pid_file", &config.server.pid_file),
        ("server.upgrade_sock", &config.server.upgrade_sock),
    ] {
        if !file.starts_with(&runtime) {
            problems.push(format!(
                "{key} {file} is not under the RuntimeDirectory {runtime}"
            ));
        }
    }
    let pid_file = one("PIDFile");
    if !pid_file.starts_with(&runtime) || pid_file == config.server.pid_file {
        problems.push(format!(
            "PIDFile {pid_file}: under {runtime}, and not server.pid_file (gatehouse rewrites that one)"
        ));
    }

    // ExecReload: the helper shipped in deploy/systemd, given $MAINPID and the PIDFile; the
    // variables the helper reads are set by the unit.
    let reload: Vec<&str> = one("ExecReload").split_whitespace().collect();
    let helper_name = reload
        .first()
        .and_then(|p| p.rsplit('/').next())
        .unwrap_or_default();
    let helper = deploy_dir().join("systemd").join(helper_name);
    if !helper.is_file() || reload.get(1) != Some(&"$MAINPID") || reload.get(2) != Some(&pid_file) {
        problems.push(format!(
            "ExecReload {reload:?}: expected deploy/systemd/<helper> $MAINPID {pid_file}"
        ));
    } else {
        let script = std::fs::read_to_string(&helper).expect("read the helper");
        for (at, _) in script.match_indices("${GATEHOUSE_") {
            let var: String = script[at + 2..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !env.iter().any(|(k, _)| *k == var) {
                problems.push(format!(
                    "{helper_name} reads {var}, which the unit does not set"
                ));
            }
        }
    }

    let stop: u64 = one("TimeoutStopSec")
        .parse()
        .expect("TimeoutStopSec in seconds");
    if stop <= config.server.grace_period_seconds {
        problems.push(format!(
            "TimeoutStopSec {stop} does not cover grace_period_seconds {}",
            config.server.grace_period_seconds
        ));
    }
    for (key, value) in [
        ("Type", "simple"),
        ("KillSignal", "SIGTERM"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("CapabilityBoundingSet", ""),
    ] {
        if get(key).last() != Some(&value) {
            problems.push(format!("gatehouse.service: expected {key}={value}"));
        }
    }
    if get("User").is_empty() && get("DynamicUser") != ["yes"] {
        problems.push("gatehouse.service: no dedicated user".into());
    }
    if !get("EnvironmentFile").iter().any(|f| !f.is_empty()) {
        problems.push("gatehouse.service: no EnvironmentFile for the secret".into());
    }
    fail_on(problems);
}

#[test]
fn every_gatehouse_variable_in_deploy_is_a_config_key() {
    let keys = config_keys();
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for path in files_under(&deploy_dir()) {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for (at, _) in text.match_indices("GATEHOUSE_") {
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let var: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let wildcard = text[at + var.len()..].starts_with('*');
            let var = var.trim_end_matches('_');
            let Some(rest) = var.strip_prefix("GATEHOUSE_") else {
                continue; // `GATEHOUSE_<SECTION>_<KEY>` in prose
            };
            if wildcard {
                // `GATEHOUSE_SERVER_*` in prose: the section must exist.
                let section = rest.to_ascii_lowercase();
                if !keys.iter().any(|(s, _)| *s == section) {
                    problems.push(format!("{}: {var}_* names no section", rel(&path)));
                }
                continue;
            }
            seen.insert(var.to_string());
            if NON_KEY_VARS.contains(&var) {
                continue;
            }
            let known = rest.split_once('_').is_some_and(|(section, key)| {
                keys.contains(&(section.to_ascii_lowercase(), key.to_ascii_lowercase()))
            });
            if !known {
                problems.push(format!(
                    "{}: {var} is neither GATEHOUSE_<SECTION>_<KEY> of src/config.rs nor one of {NON_KEY_VARS:?}",
                    rel(&path)
                ));
            }
        }
    }
    fail_on(problems);
    for var in [
        "GATEHOUSE_SERVER_LISTEN",
        "GATEHOUSE_SERVER_METRICS_LISTEN",
        "GATEHOUSE_SERVER_DATA_DIR",
        "GATEHOUSE_JWT_SECRET",
    ] {
        assert!(seen.contains(var), "deploy/ never sets {var}");
    }
}

#[test]
fn probe_and_scrape_paths_are_served_by_ops() {
    let (image, _) = image_config();
    let mut paths = vec![image.healthcheck.1.clone()];
    for d in k8s_docs() {
        let mut found = Vec::new();
        strings_at_key(&d, "path", &mut found);
        paths.extend(found.into_iter().filter(|p| p.starts_with('/')));
    }
    let scrape = doc("prometheus/prometheus.yml");
    for job in list_of(&scrape["scrape_configs"], "scrape_configs") {
        paths.push(
            job["metrics_path"]
                .as_str()
                .unwrap_or("/metrics")
                .to_string(),
        );
    }
    for wanted in ["/healthz", "/readyz", "/metrics"] {
        assert!(
            paths.iter().any(|p| p == wanted),
            "no deploy file uses {wanted}"
        );
    }
    paths.sort();
    paths.dedup();
    let answers = ops_status(&paths);
    let wrong: Vec<_> = answers.iter().filter(|(_, s)| *s != 200).collect();
    assert!(
        wrong.is_empty(),
        "paths in deploy/ that the metrics listener (src/ops.rs) does not answer 200: {wrong:?}"
    );
}

/// The image ships what `make release` builds: the builder stage runs the same script
/// (deploy/pgo-build.sh, the profile-guided build), installs the binary it names, and copies
/// everything that script needs past deploy/Dockerfile.dockerignore.
#[test]
fn the_image_and_make_release_build_with_the_same_script() {
    let docker = read("deploy/Dockerfile");
    let makefile = read("Makefile");
    let script = read("deploy/pgo-build.sh");
    let release = makefile
        .split("\nrelease:")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("the Makefile has a release target");
    assert!(
        release.contains("bash deploy/pgo-build.sh"),
        "make release does not run deploy/pgo-build.sh:{release}"
    );
    assert!(
        docker.contains("bash deploy/pgo-build.sh"),
        "deploy/Dockerfile does not build with deploy/pgo-build.sh"
    );
    assert!(
        script.contains("OUT=${OUT:-$ROOT/target/pgo-use}")
            && docker.contains("install -m 0755 target/pgo-use/release/gatehouse"),
        "the image does not install the binary deploy/pgo-build.sh makes"
    );
    // Each COPY of the builder stage survives the ignore file (`name` excluded, `!path` back).
    let ignore = read("deploy/Dockerfile.dockerignore");
    let rules: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let kept = |path: &str| {
        let mut kept = true;
        for rule in &rules {
            let (back, pattern) = match rule.strip_prefix('!') {
                Some(p) => (true, p),
                None => (false, *rule),
            };
            if path == pattern || path.starts_with(&format!("{pattern}/")) {
                kept = back;
            }
        }
        kept
    };
    let builder = docker
        .split("\nFROM ${RUNTIME_IMAGE}")
        .next()
        .expect("a builder stage");
    let copies: Vec<&str> = builder
        .lines()
        .filter_map(|l| l.trim().strip_prefix("COPY "))
        .flat_map(|args| {
            let parts: Vec<&str> = args.split_whitespace().collect();
            parts[..parts.len().saturating_sub(1)].to_vec()
        })
        .collect();
    // Every directory Cargo.toml names by path (the patched crates of [patch.crates-io], the
    // binary's source) is part of the build.
    let manifest = read("Cargo.toml");
    let local_dirs: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.split("path = \"").nth(1)?.split('/').next())
        .filter(|dir| *dir != "deploy")
        .collect();
    assert!(
        local_dirs.contains(&"vendor"),
        "Cargo.toml patches Pingora from vendor/"
    );
    for needed in [
        "deploy/pgo-build.sh",
        "deploy/pgo-train",
        "src",
        "Cargo.lock",
    ]
    .into_iter()
    .chain(local_dirs)
    {
        assert!(
            copies.contains(&needed),
            "the builder stage does not COPY {needed}"
        );
    }
    for copied in copies {
        assert!(
            kept(copied),
            "deploy/Dockerfile.dockerignore keeps {copied} out of the context"
        );
    }
}
