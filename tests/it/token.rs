//! `ccr token import/list/remove` with the real binary, against a private Secret Service and
//! against the file store.

use serde_json::{Value, json};

use crate::support::mock_upstream::{MockUpstream, Reply, cw_event};
use crate::support::secret_service::SecretService;
use crate::support::stream_checker::check_stream;
use crate::support::{CcrProcess, client, run_ccr, temp_config};

const ACCESS: &str = "aoa-ACCESS-never-print-me";
const REFRESH: &str = "aor-REFRESH-never-print-me";

/// Kiro's token file in a temp dir, social or IdC (with the client file beside it).
fn kiro_files(method: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiro-auth-token.json");
    let mut token = json!({"accessToken": ACCESS, "refreshToken": REFRESH, "expiresAt": "2099-01-01T00:00:00.000Z", "profileArn": "arn:aws:codewhisperer:us-east-1:1:profile/P", "authMethod": method, "provider": "Github"});
    if method == "IdC" {
        token["clientIdHash"] = json!("hash1");
        token["region"] = json!("us-east-1");
        std::fs::write(
            dir.path().join("hash1.json"),
            json!({"clientId": "cid", "clientSecret": "csecret-never-print"}).to_string(),
        )
        .unwrap();
    }
    std::fs::write(&path, token.to_string()).unwrap();
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

fn assert_no_secret(output: &str) {
    for secret in [ACCESS, REFRESH, "csecret-never-print"] {
        assert!(!output.contains(secret), "a secret was printed: {output}");
    }
}

/// Runs `ccr <args>` with the config and data dir given.
async fn ccr(
    args: &[&str],
    config: &str,
    data_dir: &str,
    env: &[(&str, &str)],
) -> (Option<i32>, String, String) {
    let mut all = vec!["--config", config, "--data-dir", data_dir];
    all.extend_from_slice(args);
    run_ccr(&all, env).await
}

async fn import_list_remove(config_yaml: &str, env: &[(&str, &str)]) -> tempfile::TempDir {
    let (_config_dir, config) = temp_config(config_yaml);
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let config = config.to_str().unwrap();
    for (name, method) in [("work", "social"), ("corp", "IdC")] {
        let (_kiro, from) = kiro_files(method);
        let (code, stdout, stderr) = ccr(
            &["token", "import", "--from", &from, "--name", name],
            config,
            data_dir,
            env,
        )
        .await;
        assert_eq!(code, Some(0), "import {name}: {stderr}");
        assert_no_secret(&(stdout + &stderr));
    }
    let (code, table, stderr) = ccr(&["token", "list"], config, data_dir, env).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_no_secret(&table);
    assert!(
        table.contains("work") && table.contains("corp") && table.contains("IdC"),
        "{table}"
    );
    assert!(table.starts_with('+'), "ASCII borders when piped: {table}");
    let (_, listed, _) = ccr(&["token", "list", "--json"], config, data_dir, env).await;
    assert_no_secret(&listed);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(listed[1]["expires_in_secs"].as_i64().unwrap() > 0);

    let (code, _, _) = ccr(&["token", "remove", "corp"], config, data_dir, env).await;
    assert_eq!(code, Some(0));
    let (code, _, stderr) = ccr(&["token", "remove", "corp"], config, data_dir, env).await;
    assert_eq!(code, Some(1), "removing twice is a reported failure");
    assert!(stderr.contains("no account `corp`"), "{stderr}");
    data
}

#[tokio::test]
async fn token_commands_with_the_file_store_keep_files_private() {
    let data = import_list_remove("credentials: { store: file }\nroutes: { default: [anthropic/*] }\nproviders: { anthropic: { type: anthropic } }\n", &[]).await;
    let file = data.path().join("credentials/work.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(
        !data.path().join("credentials/corp.json").exists(),
        "removed"
    );
    let index = std::fs::read_to_string(data.path().join("accounts.json")).unwrap();
    assert_no_secret(&index);
}

#[tokio::test]
async fn token_commands_with_the_os_keyring_and_serve_reading_it() {
    let secrets = tokio::task::spawn_blocking(SecretService::start)
        .await
        .unwrap();
    let env = [("DBUS_SESSION_BUS_ADDRESS", secrets.address.as_str())];
    let data = import_list_remove(
        "routes: { default: [anthropic/*] }\nproviders: { anthropic: { type: anthropic } }\n",
        &env,
    )
    .await;
    assert!(
        !data.path().join("credentials").exists(),
        "the keyring store writes no token files"
    );
    assert_no_secret(&std::fs::read_to_string(data.path().join("accounts.json")).unwrap());

    // `ccr serve` reads the imported token from the same keyring.
    let upstream = MockUpstream::start(Reply::Binary {
        chunks: vec![cw_event(
            "assistantResponseEvent",
            json!({"content": "from the keyring"}),
        )],
        byte_per_write: false,
        cut: false,
    })
    .await;
    let yaml = format!(
        "server: {{ host: 127.0.0.1, port: 0 }}\nproviders:\n  kiro: {{ type: codewhisperer, base_url: \"{}\", accounts: [work], refresh_url: \"http://127.0.0.1:9/refreshToken\" }}\nroutes:\n  default: [kiro/*]\n",
        upstream.base_url()
    );
    let data_dir = data.path().to_str().unwrap();
    let ccr = CcrProcess::serve_with_env(Some(&yaml), &["--data-dir", data_dir], &env).await;
    let response = client()
        .post(ccr.url("/v1/messages"))
        .body(json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        check_stream(&response.text().await.unwrap()).text(),
        "from the keyring"
    );
    assert_eq!(
        upstream.received()[0].headers["authorization"],
        format!("Bearer {ACCESS}").as_str()
    );
    ccr.sigterm();
    let (code, stderr) = ccr.wait().await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_no_secret(&stderr);
    drop(secrets);
}

#[tokio::test]
async fn without_a_reachable_keyring_the_error_names_the_file_store() {
    let (_config_dir, config) = temp_config(
        "routes: { default: [anthropic/*] }\nproviders: { anthropic: { type: anthropic } }\n",
    );
    let data = tempfile::tempdir().unwrap();
    let (_kiro, from) = kiro_files("social");
    let env = [(
        "DBUS_SESSION_BUS_ADDRESS",
        "unix:path=/nonexistent/ccr-test-bus",
    )];
    let (code, _, stderr) = ccr(
        &["token", "import", "--from", &from, "--name", "work"],
        config.to_str().unwrap(),
        data.path().to_str().unwrap(),
        &env,
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("credentials.store: file"), "{stderr}");
}

fn refresh_config(mock: &crate::support::mock_refresh::MockRefresh) -> String {
    format!(
        "credentials: {{ store: file }}\nproviders:\n  kiro: {{ type: codewhisperer, accounts: [work, corp], refresh_url: \"{}\", idc_refresh_url: \"{}\" }}\nroutes: {{ default: [kiro/*] }}\n",
        mock.social_url(),
        mock.idc_url()
    )
}

#[tokio::test]
async fn refresh_social_and_idc_rotates_tokens_and_a_revoked_one_says_to_reimport() {
    let mock = crate::support::mock_refresh::MockRefresh::start(&[REFRESH], 3600).await;
    let (_config_dir, config) = temp_config(&refresh_config(&mock));
    let config = config.to_str().unwrap();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    for (name, method) in [("work", "social"), ("corp", "IdC")] {
        let (_kiro, from) = kiro_files(method);
        let (code, _, stderr) = ccr(
            &["token", "import", "--from", &from, "--name", name],
            config,
            data_dir,
            &[],
        )
        .await;
        assert_eq!(code, Some(0), "{stderr}");
    }

    // Far from expiry: nothing to do.
    let (code, stdout, _) = ccr(
        &["token", "refresh", "--all", "--if-expiring-within", "10m"],
        config,
        data_dir,
        &[],
    )
    .await;
    assert_eq!((code, stdout.as_str(), mock.calls()), (Some(0), "", 0));

    // Both share the refresh token the mock accepts once: work (social) rotates it first,
    // so corp's (IdC) copy is then spent, as after a rotation elsewhere.
    let (code, stdout, stderr) = ccr(
        &["token", "refresh", "work", "--json"],
        config,
        data_dir,
        &[],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_no_secret(&stdout);
    let outcomes: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(outcomes[0]["result"], "refreshed");
    let stored = std::fs::read_to_string(data.path().join("credentials/work.json")).unwrap();
    assert!(
        stored.contains("aoa-fresh-1") && stored.contains("aor-rotated-1"),
        "written back"
    );

    let (code, stdout, stderr) = ccr(&["token", "refresh", "corp"], config, data_dir, &[]).await;
    assert_eq!(code, Some(1), "a rejected refresh is a failure");
    assert!(stdout.is_empty(), "piped: errors only on stderr");
    assert!(stderr.contains("ccr token import --name corp"), "{stderr}");
    let (_, listed, _) = ccr(&["token", "list", "--json"], config, data_dir, &[]).await;
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let corp = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "corp")
        .unwrap();
    assert!(
        corp["status"].as_str().unwrap().starts_with("dead"),
        "{corp}"
    );
    assert_eq!(mock.calls(), 2);

    // The rotated token refreshes again (IdC path with the client id and secret).
    let mock_idc = crate::support::mock_refresh::MockRefresh::start(&[REFRESH], 3600).await;
    let (_c, idc_config) = temp_config(&refresh_config(&mock_idc));
    let (_kiro, from) = kiro_files("IdC");
    ccr(
        &["token", "import", "--from", &from, "--name", "corp"],
        idc_config.to_str().unwrap(),
        data_dir,
        &[],
    )
    .await;
    let (code, _, stderr) = ccr(
        &["token", "refresh", "corp"],
        idc_config.to_str().unwrap(),
        data_dir,
        &[],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(mock_idc.calls(), 1);
}
