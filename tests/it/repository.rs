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
