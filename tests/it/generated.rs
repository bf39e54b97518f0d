//! The committed `completions/` and `man/` are what the binary generates from its clap
//! definition today, and the shells and `mandoc` accept them.

use std::path::Path;

const REGENERATE: &str = "cargo run -- generate --out .";

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn completions_and_man_pages_are_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let (code, _, stderr) =
        crate::support::run_ccr(&["generate", "--out", out.path().to_str().unwrap()], &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    for dir in ["completions", "man"] {
        let (fresh, committed) = (out.path().join(dir), root.join(dir));
        assert_eq!(
            files(&fresh),
            files(&committed),
            "{dir}/ has other files than the binary generates: run `{REGENERATE}`"
        );
        for name in files(&fresh) {
            assert!(
                std::fs::read(fresh.join(&name)).unwrap()
                    == std::fs::read(committed.join(&name)).unwrap(),
                "{dir}/{name} is stale: run `{REGENERATE}` and commit the result"
            );
        }
    }
}

#[tokio::test]
async fn the_completions_command_prints_the_committed_script() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (code, script, stderr) = crate::support::run_ccr(&["completions", "bash"], &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let committed = std::fs::read_to_string(root.join("completions/ccr.bash")).unwrap();
    assert_eq!(script.trim_end(), committed.trim_end());
    let (code, _, _) = crate::support::run_ccr(&["completions", "tcsh"], &[]).await;
    assert_eq!(code, Some(2), "an unknown shell is a usage error");
}

/// Runs a shell command line; the tools are installed by `.ci/test`.
fn sh(program: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed ({e}): bash .ci/test installs it"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_shells_load_the_completions_and_mandoc_reads_the_pages() {
    let (ok, text) = sh("bash", &["-n", "completions/ccr.bash"]);
    assert!(ok, "bash: {text}");
    let (ok, text) = sh(
        "zsh",
        &[
            "-c",
            "autoload -U compinit; compinit -u; source completions/_ccr",
        ],
    );
    assert!(ok, "zsh: {text}");
    let (ok, text) = sh(
        "fish",
        &["-c", "source completions/ccr.fish; complete -C 'ccr tok'"],
    );
    assert!(ok && text.contains("token"), "fish: {text}");
    let pages: Vec<String> = files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("man"))
        .into_iter()
        .map(|p| format!("man/{p}"))
        .collect();
    assert!(
        pages.iter().any(|p| p == "man/ccr-token-refresh.1"),
        "{pages:?}"
    );
    let mut args = vec!["-T", "lint", "-W", "error"];
    args.extend(pages.iter().map(String::as_str));
    let (ok, text) = sh("mandoc", &args);
    assert!(ok, "mandoc: {text}");
}

/// What the shell gets when it asks `COMPLETE=fish ccr -- <words>` (fish's protocol: one
/// candidate per line, a tab before its help).
async fn dynamic_candidates(config: &Path, words: &[&str]) -> Vec<String> {
    let config = config.to_str().unwrap();
    let mut args = vec!["--", "ccr"];
    args.extend_from_slice(words);
    let (code, out, err) =
        crate::support::run_ccr(&args, &[("COMPLETE", "fish"), ("CCR_CONFIG", config)]).await;
    assert_eq!(code, Some(0), "{err}");
    out.lines()
        .map(|line| line.split('\t').next().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn provider_and_account_names_complete_from_the_config() {
    let (_dir, path) = crate::support::temp_config(
        "credentials:\n  store: file\nproviders:\n  kiro:\n    type: codewhisperer\n    accounts: [work, home]\n  deepseek:\n    type: openai\n    base_url: http://127.0.0.1:9/v1\nroutes:\n  default: [kiro/claude-sonnet-4-5]\n",
    );
    let providers = dynamic_candidates(&path, &["providers", "test", ""]).await;
    assert!(
        providers.contains(&"kiro".to_string()) && providers.contains(&"deepseek".to_string()),
        "{providers:?}"
    );
    let accounts = dynamic_candidates(&path, &["token", "refresh", ""]).await;
    assert!(
        accounts.contains(&"work".to_string()) && accounts.contains(&"home".to_string()),
        "{accounts:?}"
    );
    assert!(!accounts.contains(&"deepseek".to_string()), "{accounts:?}");
    let replay = dynamic_candidates(&path, &["replay", "--provider", ""]).await;
    assert!(replay.contains(&"deepseek".to_string()), "{replay:?}");
}
