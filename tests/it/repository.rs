//! The repository stands on its own: a user's clone has nothing beside it, so no tracked
//! file may read or point at a path outside the checkout.

use std::path::{Path, PathBuf};

/// Tracked files: `git ls-files` where git knows the tree, else every file under the root
/// except build output.
fn tracked_files(root: &Path) -> Vec<PathBuf> {
    let listed = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-z"])
        .output()
        .ok()
        .filter(|out| out.status.success() && !out.stdout.is_empty());
    match listed {
        Some(out) => out
            .stdout
            .split(|&b| b == 0)
            .filter(|name| !name.is_empty())
            .map(|name| root.join(String::from_utf8_lossy(name).as_ref()))
            .collect(),
        None => walk(root),
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Ways a file reaches outside the checkout: the developers' shared folder beside it, or a
/// `CARGO_MANIFEST_DIR`-relative string literal that climbs out of it. Built at run time so
/// this file does not match itself.
fn outside_patterns() -> Vec<String> {
    let up = "..";
    vec![format!("{up}/shared"), format!("\"/{up}/")]
}

#[test]
fn no_tracked_file_refers_to_a_path_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let patterns = outside_patterns();
    let files = tracked_files(root);
    assert!(
        files.iter().any(|f| f.ends_with("Cargo.toml")),
        "found the tracked files"
    );
    let mut offenders = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("Cargo.lock")) {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue; // binary or removed from the work tree
        };
        for (n, line) in text.lines().enumerate() {
            if patterns.iter().any(|p| line.contains(p.as_str())) {
                offenders.push(format!("{}:{}: {line}", file.display(), n + 1));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "these files reach outside the repository (copy what they need into it):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_fixture_the_tests_read_is_in_the_repository() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude-code-first-turn.json");
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(value["body"]["tools"].as_array().map(Vec::len), Some(24));
}

#[test]
fn the_readme_test_command_is_what_ci_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    assert!(
        readme.contains("bash .ci/test"),
        "README gives the test command"
    );
    assert!(
        ci.lines().any(|l| l.trim() == "bash .ci/test"),
        ".ci/run runs the README's test command"
    );
    for licence in ["LICENSE-MIT", "LICENSE-APACHE"] {
        assert!(
            root.join(licence).is_file(),
            "{licence} is in the repository"
        );
    }
}

/// The top-level module a file under `src/` belongs to (`None` for the crate root).
fn module_of(relative: &Path) -> Option<String> {
    let mut parts = relative.components();
    let first = parts.next()?.as_os_str().to_string_lossy().into_owned();
    match parts.next() {
        Some(_) => Some(first),
        None => {
            let name = first.strip_suffix(".rs")?.to_string();
            (name != "lib" && name != "main").then_some(name)
        }
    }
}

/// Source without comments and without `#[cfg(test)] mod … { … }` blocks (tests may reach
/// anywhere).
fn without_comments_and_tests(text: &str) -> String {
    let code: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = String::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(open) = after.find('{').filter(|&o| after[..o].contains("mod ")) else {
            out.push_str("#[cfg(test)]");
            rest = &after["#[cfg(test)]".len()..];
            continue;
        };
        let mut depth = 0;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Top-level modules named through `crate::X` or `use crate::{X, …}`.
fn crate_uses(code: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let after = &code[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        found.push(ident(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.push(ident(after));
        }
    }
    found
}

#[test]
fn the_top_level_modules_of_src_import_each_other_one_way_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files: Vec<PathBuf> = walk(&src)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "rs"))
        .collect();
    let modules: std::collections::BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_of(f.strip_prefix(&src).unwrap()))
        .collect();
    let mut edges: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for file in &files {
        let Some(from) = module_of(file.strip_prefix(&src).unwrap()) else {
            continue;
        };
        let code = without_comments_and_tests(&std::fs::read_to_string(file).unwrap());
        for to in crate_uses(&code) {
            if to != from && modules.contains(&to) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    assert!(
        edges.get("server").is_some_and(|e| e.contains("routing")),
        "the scan sees the imports: {edges:?}"
    );
    // A cycle exists when some module reaches itself.
    for start in &modules {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack: Vec<Vec<String>> = vec![vec![start.clone()]];
        while let Some(path) = stack.pop() {
            let last = path.last().unwrap();
            for next in edges.get(last).into_iter().flatten() {
                if next == start {
                    panic!(
                        "import cycle between top-level modules: {} -> {start}",
                        path.join(" -> ")
                    );
                }
                if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push(longer);
                }
            }
        }
    }
}
