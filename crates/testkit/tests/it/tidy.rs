//! Tidy: the dependency table in ARCHITECTURE.md is the crates' real `[dependencies]`.
//!
//! The table says which crates each crate may use (`reqwest` in `config` or `axum` in `flows`
//! would break an invariant, a workspace crate reaching "up" would break the layering). This
//! test reads that table and every `crates/*/Cargo.toml` and fails, naming the crate, the
//! dependency and the row to edit, wherever they differ in either direction, so the document
//! cannot drift from the code and a new dependency is a one-line edit of the table.
//!
//! The manifests are read line by line (the workspace has no TOML parser in its lock file, and
//! `[dependencies]` here is one `name = …` or `name.workspace = true` per line); a manifest
//! written in a form this reader does not understand fails the test rather than being skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Workspace crates are named in the table without this prefix.
const PREFIX: &str = "tessera-";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One row of the table: the crates a crate depends on, workspace and other.
#[derive(Debug, Default, PartialEq)]
struct Allowed {
    workspace: BTreeSet<String>,
    other: BTreeSet<String>,
}

/// The dependency table of ARCHITECTURE.md, by package name.
fn table(doc: &str) -> Result<BTreeMap<String, Allowed>, String> {
    let mut lines = doc
        .lines()
        .skip_while(|l| !l.starts_with("| crate | workspace crates"));
    if lines.next().is_none() {
        return Err("ARCHITECTURE.md has no table headed `| crate | workspace crates …`".into());
    }
    let mut rows = BTreeMap::new();
    for line in lines.skip(1).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [name, workspace, other] = cells[..] else {
            return Err(format!(
                "ARCHITECTURE.md: a row without three cells: {line}"
            ));
        };
        let name = backticked(name)
            .into_iter()
            .next()
            .ok_or_else(|| format!("ARCHITECTURE.md: a row without a `crate` name: {line}"))?;
        let workspace = if workspace.starts_with("nothing") {
            BTreeSet::new()
        } else {
            without_parentheses(workspace)
                .split(',')
                .filter_map(|w| w.split_whitespace().next())
                .map(|w| format!("{PREFIX}{w}"))
                .collect()
        };
        let other = backticked(other).into_iter().collect();
        rows.insert(name, Allowed { workspace, other });
    }
    Ok(rows)
}

/// The `code` spans of a cell.
fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// A cell with its `( … )` remarks taken out.
fn without_parentheses(cell: &str) -> String {
    let mut depth = 0usize;
    cell.chars()
        .filter(|c| {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ => return depth == 0,
            }
            false
        })
        .collect()
}

/// A manifest's package name and the names in its `[dependencies]` (and target-specific
/// `[target.….dependencies]`) sections.
fn manifest(text: &str) -> Result<(String, BTreeSet<String>), String> {
    let mut section = String::new();
    let mut name = None;
    let mut deps = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            section = line.to_string();
            if section.starts_with("[dependencies.") || section.contains(".dependencies.") {
                return Err(format!(
                    "{section}: a dependency as its own table; write it as one `name = {{ … }}` line"
                ));
            }
            continue;
        }
        let key = line
            .split(['=', '.'])
            .next()
            .map(str::trim)
            .unwrap_or_default();
        let is_dependencies = section == "[dependencies]"
            || (section.starts_with("[target.") && section.ends_with(".dependencies]"));
        if section == "[package]" && key == "name" {
            name = line
                .split_once('=')
                .map(|(_, v)| v.trim().trim_matches('"').to_string());
        } else if is_dependencies {
            if key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!("{section}: cannot read the line `{line}`"));
            }
            deps.insert(key.to_string());
        }
    }
    let name = name.ok_or("no `name` in [package]")?;
    Ok((name, deps))
}

/// Every difference between the manifests and the table, as messages that say what to edit.
fn differences(
    table: &BTreeMap<String, Allowed>,
    manifests: &BTreeMap<String, (PathBuf, BTreeSet<String>)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, (path, deps)) in manifests {
        let Some(allowed) = table.get(name) else {
            out.push(format!(
                "`{name}` ({}) has no row in the dependency table of ARCHITECTURE.md: add one",
                path.display()
            ));
            continue;
        };
        for dep in deps {
            let (listed, column) = if dep.starts_with(PREFIX) {
                (&allowed.workspace, "workspace crates")
            } else {
                (&allowed.other, "other crates")
            };
            if !listed.contains(dep) {
                let shown = dep.strip_prefix(PREFIX).unwrap_or(dep);
                out.push(format!(
                    "{}: `{name}` depends on `{dep}`, which its row in the dependency table of \
                     ARCHITECTURE.md does not allow. If the crate's job calls for it, add `{shown}` \
                     to the \"{column}\" cell of the `{name}` row; otherwise remove the dependency",
                    path.display()
                ));
            }
        }
        for dep in allowed.workspace.iter().chain(&allowed.other) {
            if !deps.contains(dep) {
                let shown = dep.strip_prefix(PREFIX).unwrap_or(dep);
                out.push(format!(
                    "ARCHITECTURE.md: the `{name}` row lists `{shown}`, which {} does not depend on: \
                     remove it from the row",
                    path.display()
                ));
            }
        }
    }
    for name in table.keys().filter(|n| !manifests.contains_key(*n)) {
        out.push(format!(
            "ARCHITECTURE.md: the dependency table has a row for `{name}`, which no crates/*/Cargo.toml is"
        ));
    }
    out
}

fn workspace_manifests() -> BTreeMap<String, (PathBuf, BTreeSet<String>)> {
    let mut out = BTreeMap::new();
    let crates = std::fs::read_dir(root().join("crates")).expect("read crates/");
    for entry in crates {
        let path = entry.expect("crates/ entry").path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let (name, deps) = manifest(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let shown = path.strip_prefix(root()).unwrap_or(&path).to_path_buf();
        out.insert(name, (shown, deps));
    }
    out
}

#[test]
fn every_crates_dependencies_are_the_ones_architecture_md_lists() {
    let doc =
        std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("read ARCHITECTURE.md");
    let table = table(&doc).unwrap_or_else(|e| panic!("{e}"));
    let manifests = workspace_manifests();
    assert!(manifests.len() >= 10, "found only {manifests:?}");
    let problems = differences(&table, &manifests);
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// The check fails where it should: an HTTP client in `config`'s manifest, an HTTP framework in
/// `flows`', a layer reached upwards, and a row naming what the crate does not use.
#[test]
fn a_dependency_the_table_does_not_list_is_named_with_the_row_to_edit() {
    let doc = "\
| crate | workspace crates it depends on | other crates it depends on |
|---|---|---|
| `tessera-config` | core | `serde` |
| `tessera-flows` | core, store (a note, with a comma) | `serde_json` |
";
    let table = table(doc).expect("table");
    assert_eq!(
        table["tessera-flows"].workspace,
        BTreeSet::from(["tessera-core".to_string(), "tessera-store".to_string()])
    );
    let (config, config_deps) = manifest(
        "[package]\nname = \"tessera-config\"\n\n[dependencies]\n# why\ntessera-core.workspace = true\nserde = { workspace = true }\nreqwest.workspace = true\n\n[dev-dependencies]\naxum = \"0.8\"\n",
    )
    .expect("manifest");
    let (flows, flows_deps) = manifest(
        "[package]\nname = \"tessera-flows\"\n[dependencies]\ntessera-core.workspace = true\ntessera-server.workspace = true\naxum.workspace = true\n",
    )
    .expect("manifest");
    let manifests = BTreeMap::from([
        (
            config,
            (PathBuf::from("crates/config/Cargo.toml"), config_deps),
        ),
        (
            flows,
            (PathBuf::from("crates/flows/Cargo.toml"), flows_deps),
        ),
    ]);
    let problems = differences(&table, &manifests);
    let has = |needle: &str| problems.iter().any(|p| p.contains(needle));
    assert!(
        has("crates/config/Cargo.toml: `tessera-config` depends on `reqwest`"),
        "{problems:#?}"
    );
    assert!(
        has("crates/flows/Cargo.toml: `tessera-flows` depends on `axum`"),
        "{problems:#?}"
    );
    assert!(
        has("`tessera-flows` depends on `tessera-server`")
            && has("add `server` to the \"workspace crates\" cell"),
        "{problems:#?}"
    );
    assert!(
        has("the `tessera-flows` row lists `store`"),
        "{problems:#?}"
    );
    assert!(
        has("the `tessera-flows` row lists `serde_json`"),
        "{problems:#?}"
    );
    // dev-dependencies are not checked.
    assert!(!has("`tessera-config` depends on `axum`"), "{problems:#?}");
    assert_eq!(problems.len(), 5, "{problems:#?}");
}

#[test]
fn a_dependency_written_as_its_own_table_is_refused_not_skipped() {
    let e = manifest("[package]\nname = \"x\"\n[dependencies.reqwest]\nversion = \"0.12\"\n")
        .expect_err("refused");
    assert!(e.contains("[dependencies.reqwest]"), "{e}");
}
