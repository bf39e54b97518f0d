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

mod manager {
    use std::time::{Duration, Instant};

    use serde_json::json;

    use super::{REFRESH, kiro_files};
    use crate::support::mock_refresh::MockRefresh;
    use crate::support::mock_upstream::{MockUpstream, Reply, cw_event};
    use crate::support::stream_checker::check_stream;
    use crate::support::{Ccr, messages_request, run_ccr, temp_config};

    fn ok_frames(text: &str) -> Reply {
        Reply::Binary {
            chunks: vec![cw_event("assistantResponseEvent", json!({"content": text}))],
            byte_per_write: false,
            cut: false,
        }
    }

    /// Answers requests bearing `fresh` and refuses the rest with 403.
    fn only(fresh: &str) -> Reply {
        Reply::ByBearer {
            token: fresh.to_string(),
            ok: Box::new(ok_frames("ok")),
            otherwise: Box::new(Reply::Status {
                status: 403,
                headers: vec![],
                body: r#"{"message":"The bearer token included in the request is invalid."}"#
                    .into(),
            }),
        }
    }

    /// A file-store data dir with account `name` imported from a Kiro token expiring at
    /// `expires_at`.
    async fn imported(accounts: &[(&str, &str)], config: &str) -> tempfile::TempDir {
        let data = tempfile::tempdir().unwrap();
        for (name, expires_at) in accounts {
            let (kiro_dir, from) = kiro_files("social");
            let mut token: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&from).unwrap()).unwrap();
            token["expiresAt"] = json!(expires_at);
            token["accessToken"] = json!(format!("aoa-old-{name}"));
            token["refreshToken"] = json!(format!("{REFRESH}-{name}"));
            std::fs::write(&from, token.to_string()).unwrap();
            let args = [
                "--config",
                config,
                "--data-dir",
                data.path().to_str().unwrap(),
                "token",
                "import",
                "--from",
                &from,
                "--name",
                name,
            ];
            let (code, _, stderr) = run_ccr(&args, &[]).await;
            assert_eq!(code, Some(0), "{stderr}");
            drop(kiro_dir);
        }
        data
    }

    fn serve_config(
        upstream: &str,
        refresh: &MockRefresh,
        accounts: &[&str],
        data_dir: &str,
    ) -> String {
        let providers: String = accounts
            .iter()
            .map(|a| format!("  kiro-{a}: {{ type: codewhisperer, base_url: \"{upstream}\", accounts: [{a}], refresh_url: \"{}\" }}\n", refresh.social_url()))
            .collect();
        format!(
            "server: {{ host: 127.0.0.1, port: 0 }}\nproviders:\n{providers}routes:\n  default: [kiro-{}/*]\ncredentials: {{ store: file, dir: \"{data_dir}/credentials\" }}\nrouter: {{ max_attempts: 1 }}\n",
            accounts[0]
        )
    }

    fn body(model: &str) -> String {
        json!({"model": model, "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]}).to_string()
    }

    #[tokio::test]
    async fn an_expired_token_is_refreshed_before_the_first_request_uses_it() {
        let refresh = MockRefresh::start(&[&format!("{REFRESH}-work")], 3600).await;
        let upstream = MockUpstream::start(only("aoa-fresh-1")).await;
        let (_c, cli_config) = temp_config(&format!(
            "credentials: {{ store: file }}\n{}",
            "routes: { default: [a/*] }\nproviders: { a: { type: anthropic } }\n"
        ));
        let data = imported(
            &[("work", "2000-01-01T00:00:00Z")],
            cli_config.to_str().unwrap(),
        )
        .await;
        let ccr = Ccr::start(&serve_config(
            &upstream.base_url(),
            &refresh,
            &["work"],
            data.path().to_str().unwrap(),
        ))
        .await;
        let response = messages_request(&ccr, body("claude-sonnet-4-5"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        check_stream(&response.text().await.unwrap());
        assert_eq!(refresh.calls(), 1);
        assert_eq!(
            upstream.received().len(),
            1,
            "the stale token never went upstream"
        );
        let stored = std::fs::read_to_string(data.path().join("credentials/work.json")).unwrap();
        assert!(stored.contains("aoa-fresh-1"), "written back");
        ccr.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hundred_requests_refused_with_one_stale_token_cause_one_refresh() {
        let refresh = MockRefresh::start(&[&format!("{REFRESH}-work")], 3600).await;
        refresh.slow_down(Duration::from_millis(300));
        let upstream = MockUpstream::start(only("aoa-fresh-1")).await;
        let (_c, cli_config) = temp_config(
            "credentials: { store: file }\nroutes: { default: [a/*] }\nproviders: { a: { type: anthropic } }\n",
        );
        let data = imported(
            &[("work", "2099-01-01T00:00:00Z")],
            cli_config.to_str().unwrap(),
        )
        .await;
        let ccr = Ccr::start(&serve_config(
            &upstream.base_url(),
            &refresh,
            &["work"],
            data.path().to_str().unwrap(),
        ))
        .await;
        let requests: Vec<_> = (0..100)
            .map(|_| {
                let request = messages_request(&ccr, body("claude-sonnet-4-5"));
                tokio::spawn(async move {
                    let response = request.send().await.unwrap();
                    (response.status().as_u16(), response.text().await.unwrap())
                })
            })
            .collect();
        for request in requests {
            let (status, text) = request.await.unwrap();
            assert_eq!(status, 200, "{text}");
            assert_eq!(check_stream(&text).text(), "ok");
        }
        assert_eq!(
            refresh.calls(),
            1,
            "exactly one refresh for the whole burst"
        );
        ccr.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_healthy_account_does_not_wait_for_another_accounts_refresh() {
        let refresh = MockRefresh::start(&[&format!("{REFRESH}-slow")], 3600).await;
        let release = refresh.hold();
        let upstream = MockUpstream::start(Reply::ByBearer {
            token: "aoa-old-fine".into(),
            ok: Box::new(ok_frames("fine")),
            otherwise: Box::new(only("aoa-fresh-1")),
        })
        .await;
        let (_c, cli_config) = temp_config(
            "credentials: { store: file }\nroutes: { default: [a/*] }\nproviders: { a: { type: anthropic } }\n",
        );
        let data = imported(
            &[
                ("slow", "2000-01-01T00:00:00Z"),
                ("fine", "2099-01-01T00:00:00Z"),
            ],
            cli_config.to_str().unwrap(),
        )
        .await;
        let ccr = Ccr::start(&serve_config(
            &upstream.base_url(),
            &refresh,
            &["slow", "fine"],
            data.path().to_str().unwrap(),
        ))
        .await;
        // Start a request on the account whose token must be refreshed; the refresh endpoint
        // holds its answer until released...
        let slow = messages_request(&ccr, body("kiro-slow/claude-sonnet-4-5"));
        let slow = tokio::spawn(async move { slow.send().await.unwrap().text().await.unwrap() });
        let deadline = Instant::now() + crate::support::PATIENCE;
        while refresh.calls() == 0 {
            assert!(Instant::now() < deadline, "the refresh never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // ...and the other account answers meanwhile (were it waiting, this would hang).
        for _ in 0..5 {
            let text = messages_request(&ccr, body("kiro-fine/claude-sonnet-4-5"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert_eq!(check_stream(&text).text(), "fine");
        }
        assert!(!slow.is_finished(), "the held refresh was still running");
        release.release();
        assert_eq!(check_stream(&slow.await.unwrap()).text(), "ok");
        ccr.shutdown().await;
    }

    #[tokio::test]
    async fn with_an_external_refresher_serve_only_rereads_the_store() {
        let refresh = MockRefresh::start(&[&format!("{REFRESH}-work")], 3600).await;
        let upstream = MockUpstream::start(only("aoa-fresh-1")).await;
        let cli_yaml = format!(
            "credentials: {{ store: file }}\nproviders:\n  kiro-work: {{ type: codewhisperer, accounts: [work], refresh_url: \"{}\" }}\nroutes: {{ default: [kiro-work/*] }}\n",
            refresh.social_url()
        );
        let (_c, cli_config) = temp_config(&cli_yaml);
        let cli_config = cli_config.to_str().unwrap().to_string();
        let data = imported(&[("work", "2099-01-01T00:00:00Z")], &cli_config).await;
        let data_dir = data.path().to_str().unwrap().to_string();
        let yaml = serve_config(&upstream.base_url(), &refresh, &["work"], &data_dir).replace(
            "credentials: { store: file,",
            "credentials: { store: file, refresher: external,",
        );
        let ccr = Ccr::start_in(&yaml, data.path()).await;
        // The cron job refreshes; serve still holds the old token, is refused, re-reads.
        let (code, _, stderr) = run_ccr(
            &[
                "--config",
                &cli_config,
                "--data-dir",
                &data_dir,
                "token",
                "refresh",
                "work",
            ],
            &[],
        )
        .await;
        assert_eq!(code, Some(0), "{stderr}");
        let text = messages_request(&ccr, body("claude-sonnet-4-5"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(check_stream(&text).text(), "ok");
        assert_eq!(refresh.calls(), 1, "serve never refreshes on its own");
        ccr.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ccr_token_refresh_and_serve_refreshing_together_spend_the_refresh_token_once() {
        let refresh = MockRefresh::start(&[&format!("{REFRESH}-work")], 3600).await;
        let release = refresh.hold();
        let upstream = MockUpstream::start(only("aoa-fresh-1")).await;
        let cli_yaml = format!(
            "credentials: {{ store: file }}\nproviders:\n  kiro-work: {{ type: codewhisperer, accounts: [work], refresh_url: \"{}\" }}\nroutes: {{ default: [kiro-work/*] }}\n",
            refresh.social_url()
        );
        let (_c, cli_config) = temp_config(&cli_yaml);
        let cli_config = cli_config.to_str().unwrap().to_string();
        let data = imported(&[("work", "2000-01-01T00:00:00Z")], &cli_config).await;
        let data_dir = data.path().to_str().unwrap().to_string();
        let ccr = Ccr::start_in(
            &serve_config(&upstream.base_url(), &refresh, &["work"], &data_dir),
            data.path(),
        )
        .await;
        // serve refreshes the expired token for this request; its refresh call is held at
        // the mock while it holds the account's lock file.
        let request = messages_request(&ccr, body("claude-sonnet-4-5"));
        let served =
            tokio::spawn(async move { request.send().await.unwrap().text().await.unwrap() });
        let deadline = Instant::now() + crate::support::PATIENCE;
        while refresh.calls() == 0 {
            assert!(Instant::now() < deadline, "serve never started its refresh");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The command refreshes the same account meanwhile: it reads the stored token, then
        // waits for the lock. Release serve's refresh once the command is well under way.
        let args: Vec<String> = [
            "--config",
            &cli_config,
            "--data-dir",
            &data_dir,
            "token",
            "refresh",
            "work",
        ]
        .map(String::from)
        .to_vec();
        let cli = tokio::spawn(async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_ccr(&args, &[]).await
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        release.release();
        let (code, _, stderr) = cli.await.unwrap();
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(check_stream(&served.await.unwrap()).text(), "ok");
        assert_eq!(refresh.calls(), 1, "one refresh call between the two");
        let stored = std::fs::read_to_string(data.path().join("credentials/work.json")).unwrap();
        assert!(
            stored.contains("aoa-fresh-1"),
            "both end with the new token"
        );
        ccr.shutdown().await;
    }

    /// Waits until the mock has been called `n` times.
    async fn until_called(refresh: &MockRefresh, n: usize) {
        let deadline = Instant::now() + crate::support::PATIENCE;
        while refresh.calls() < n {
            assert!(Instant::now() < deadline, "the refresh never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hanging_refresh_endpoint_fails_requests_within_the_timeout() {
        let refresh = MockRefresh::start(&[&format!("{REFRESH}-work")], 3600).await;
        refresh.hang();
        let upstream = MockUpstream::start(only("aoa-fresh-1")).await;
        let (_c, cli_config) = temp_config("credentials: { store: file }\n");
        let data = imported(
            &[("work", "2000-01-01T00:00:00Z")],
            cli_config.to_str().unwrap(),
        )
        .await;
        // A refresh waits no longer than the provider's `timeouts.first_byte` (at most 15 s).
        let yaml = serve_config(
            &upstream.base_url(),
            &refresh,
            &["work"],
            data.path().to_str().unwrap(),
        )
        .replace(
            "accounts: [work],",
            "accounts: [work], timeouts: { first_byte: 1s },",
        );
        let ccr = Ccr::start_in(&yaml, data.path()).await;
        let started = Instant::now();
        let response = messages_request(&ccr, body("claude-sonnet-4-5"))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        // Generous: the request may wait for the background check's refresh, then its own.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "answered after {:?}",
            started.elapsed()
        );
        assert_eq!(status, 401, "{text}");
        assert!(
            text.contains("account `work`") && text.contains("timed out"),
            "{text}"
        );
        for hidden in [".lock", REFRESH, "aoa-old", "aor-"] {
            assert!(!text.contains(hidden), "`{hidden}` in {text}");
        }
        assert!(refresh.calls() >= 1);
        assert!(upstream.received().is_empty(), "no token went upstream");
        // The refresh that timed out holds no lock: another refresh could start at once.
        let lock = std::fs::File::open(data.path().join("locks/work.lock")).unwrap();
        lock.try_lock()
            .expect("the account's lock file is free again");
        drop(lock);
        ccr.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_leaving_during_a_refresh_does_not_lose_the_rotated_token() {
        let refresh = MockRefresh::start(&[&format!("{REFRESH}-work")], 3600).await;
        let release = refresh.hold();
        let upstream = MockUpstream::start(only("aoa-fresh-1")).await;
        let (_c, cli_config) = temp_config("credentials: { store: file }\n");
        // Far from expiry, so no background check refreshes it: the upstream's 403 makes
        // the request itself renew the token.
        let data = imported(
            &[("work", "2099-01-01T00:00:00Z")],
            cli_config.to_str().unwrap(),
        )
        .await;
        let yaml = serve_config(
            &upstream.base_url(),
            &refresh,
            &["work"],
            data.path().to_str().unwrap(),
        );
        let ccr = Ccr::start_in(&yaml, data.path()).await;
        let request = messages_request(&ccr, body("claude-sonnet-4-5"));
        let leaving = tokio::spawn(async move { request.send().await });
        until_called(&refresh, 1).await;
        // The client goes away while the endpoint is rotating its refresh token.
        leaving.abort();
        assert!(leaving.await.unwrap_err().is_cancelled());
        tokio::time::sleep(Duration::from_millis(200)).await;
        release.release();

        let stored_path = data.path().join("credentials/work.json");
        let deadline = Instant::now() + crate::support::PATIENCE;
        while !std::fs::read_to_string(&stored_path)
            .unwrap()
            .contains("aor-rotated-1")
        {
            assert!(
                Instant::now() < deadline,
                "the rotated token was never saved"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let next = messages_request(&ccr, body("claude-sonnet-4-5"))
            .send()
            .await
            .unwrap();
        assert_eq!(next.status(), 200);
        assert_eq!(check_stream(&next.text().await.unwrap()).text(), "ok");
        let received = upstream.received();
        assert_eq!(
            received.last().unwrap().headers["authorization"],
            "Bearer aoa-fresh-1"
        );
        assert_eq!(refresh.calls(), 1, "the refresh token was spent once");
        ccr.shutdown().await;
    }

    /// A file store whose saves fail while `refuse` is set (a locked keyring, a full disk).
    struct RefusingStore {
        inner: ccr::credentials::FileStore,
        refuse: std::sync::atomic::AtomicBool,
    }

    impl ccr::credentials::Store for RefusingStore {
        fn load(
            &self,
            account: &str,
        ) -> Result<Option<ccr::credentials::Token>, ccr::credentials::CredentialsError> {
            self.inner.load(account)
        }

        fn save(
            &self,
            account: &str,
            token: &ccr::credentials::Token,
        ) -> Result<(), ccr::credentials::CredentialsError> {
            if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(ccr::credentials::CredentialsError::Unwritable {
                    account: account.to_string(),
                    place: self.describe(),
                    detail: "refused by the test".into(),
                });
            }
            self.inner.save(account, token)
        }

        fn remove(&self, account: &str) -> Result<bool, ccr::credentials::CredentialsError> {
            self.inner.remove(account)
        }

        fn describe(&self) -> String {
            self.inner.describe()
        }

        fn kind(&self) -> &'static str {
            self.inner.kind()
        }
    }

    #[tokio::test]
    async fn a_failed_save_keeps_the_rotated_token_in_memory_and_saves_it_later() {
        use ccr::credentials::TokenSource;
        use ccr::credentials::manager::{Refresher, TokenManager};
        use ccr::credentials::refresh::Endpoints;

        let refresh = MockRefresh::start(&[&format!("{REFRESH}-work")], 3600).await;
        let (_c, cli_config) = temp_config("credentials: { store: file }\n");
        let data = imported(
            &[("work", "2000-01-01T00:00:00Z")],
            cli_config.to_str().unwrap(),
        )
        .await;
        let store = std::sync::Arc::new(RefusingStore {
            inner: ccr::credentials::FileStore::new(&data.path().join("credentials")),
            refuse: true.into(),
        });
        let manager = TokenManager::new(
            store.clone(),
            data.path().to_path_buf(),
            Refresher::Serve,
            crate::support::client(),
        );
        let endpoints = Endpoints {
            social: refresh.social_url(),
            ..Endpoints::default()
        };
        manager.set_accounts(vec![("work".into(), endpoints)]).await;
        let stored = || std::fs::read_to_string(data.path().join("credentials/work.json")).unwrap();

        // The expired token is refreshed; the store refuses the rotated one, which is
        // served from memory all the same, without another refresh.
        let first = manager.token("work").await.unwrap();
        assert_eq!(first.access_token.expose(), "aoa-fresh-1");
        assert!(stored().contains("aoa-old-work"), "the store refused it");
        let again = manager.token("work").await.unwrap();
        assert_eq!(again.access_token.expose(), "aoa-fresh-1");
        assert_eq!(refresh.calls(), 1);

        // Refused upstream while still unsaved: the refresh starts from the token in
        // memory (the stored refresh token is spent), and that one is kept too.
        let second = manager.rejected("work", &first).await.unwrap();
        assert_eq!(second.access_token.expose(), "aoa-fresh-2");
        assert_eq!(refresh.calls(), 2, "the rotated refresh token worked");
        assert!(stored().contains("aoa-old-work"));

        // The store takes tokens again: the next background check saves it.
        store
            .refuse
            .store(false, std::sync::atomic::Ordering::SeqCst);
        manager.save_unsaved().await;
        assert!(
            stored().contains("aoa-fresh-2") && stored().contains("aor-rotated-2"),
            "saved at last"
        );
        let index = std::fs::read_to_string(data.path().join("accounts.json")).unwrap();
        assert!(index.contains("last_refresh\": \""), "{index}");
        assert_eq!(
            manager.token("work").await.unwrap().access_token.expose(),
            "aoa-fresh-2"
        );
        assert_eq!(refresh.calls(), 2);
    }

    /// Sends requests until one is routed to `model` (the reloaded config's).
    async fn until_reloaded(url: &str, model: &str) -> reqwest::Response {
        let deadline = Instant::now() + crate::support::PATIENCE;
        loop {
            let response = crate::support::client()
                .post(url)
                .body(body("claude-sonnet-4-5"))
                .send()
                .await
                .unwrap();
            if response.headers()["x-ccr-model"] == model {
                return response;
            }
            assert!(Instant::now() < deadline, "the reload never took effect");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn sighup_keeps_a_dead_account_dead() {
        // The refresh endpoint accepts no refresh token: the expired account dies at its
        // first request.
        let refresh = MockRefresh::start(&[], 3600).await;
        let upstream = MockUpstream::start(only("aoa-never")).await;
        let (_c, cli_config) = temp_config("credentials: { store: file }\n");
        let data = imported(
            &[("work", "2000-01-01T00:00:00Z")],
            cli_config.to_str().unwrap(),
        )
        .await;
        let data_dir = data.path().to_str().unwrap();
        let yaml = serve_config(&upstream.base_url(), &refresh, &["work"], data_dir);
        let ccr = crate::support::CcrProcess::serve(Some(&yaml), &["--data-dir", data_dir]).await;
        let url = ccr.url("/v1/messages");
        let first = crate::support::client()
            .post(&url)
            .body(body("claude-sonnet-4-5"))
            .send()
            .await
            .unwrap();
        assert_eq!(first.status(), 401);
        assert_eq!(refresh.calls(), 1);

        // The same accounts, another model: the reload must not revive the account.
        let reloaded = yaml.replace("[kiro-work/*]", "[kiro-work/claude-haiku-4-5]");
        std::fs::write(ccr.config_path(), reloaded).unwrap();
        ccr.sighup();
        let after = until_reloaded(&url, "claude-haiku-4-5").await;
        assert_eq!(after.status(), 401, "still dead");
        assert_eq!(
            refresh.calls(),
            1,
            "the rejected refresh token is not spent again"
        );
        assert_eq!(upstream.received().len(), 0);
        ccr.sigterm();
        let (code, stderr) = ccr.wait().await;
        assert_eq!(code, Some(0), "{stderr}");
    }
}

#[tokio::test]
async fn refresh_through_the_os_keyring_social_and_idc() {
    let secrets = tokio::task::spawn_blocking(SecretService::start)
        .await
        .unwrap();
    let env = [("DBUS_SESSION_BUS_ADDRESS", secrets.address.as_str())];
    let mock = crate::support::mock_refresh::MockRefresh::start(&[REFRESH], 3600).await;
    let yaml = refresh_config(&mock).replace("credentials: { store: file }\n", "");
    let (_config_dir, config) = temp_config(&yaml);
    let config = config.to_str().unwrap();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    for (name, method) in [("work", "social"), ("corp", "IdC")] {
        let (_kiro, from) = kiro_files(method);
        let (code, _, stderr) = ccr(
            &["token", "import", "--from", &from, "--name", name],
            config,
            data_dir,
            &env,
        )
        .await;
        assert_eq!(code, Some(0), "{stderr}");
    }
    // Accounts go in name order: corp (IdC) spends the shared refresh token, then work
    // (social) finds its copy rejected.
    let (code, stdout, stderr) = ccr(
        &["token", "refresh", "--all", "--json"],
        config,
        data_dir,
        &env,
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert_no_secret(&stdout);
    let outcomes: Value = serde_json::from_str(&stdout).unwrap();
    let result = |name: &str| {
        outcomes
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .unwrap()["result"]
            .clone()
    };
    assert_eq!(result("corp"), "refreshed");
    assert_eq!(result("work"), "failed");
    let (_, listed, _) = ccr(&["token", "list", "--json"], config, data_dir, &env).await;
    assert_no_secret(&listed);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let corp = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "corp")
        .unwrap();
    assert!(corp["last_refresh"].is_string(), "{corp}");
    // The rotated token is in the keyring: a second refresh of corp uses it.
    let (code, _, stderr) = ccr(&["token", "refresh", "corp"], config, data_dir, &env).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(mock.calls(), 3);
    drop(secrets);
}

/// Kiro's token file for an account expiring `seconds` from now.
fn kiro_file_expiring_in(seconds: u64) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiro-auth-token.json");
    let at = std::time::SystemTime::now() + std::time::Duration::from_secs(seconds);
    let at = humantime::format_rfc3339_seconds(at).to_string();
    let token = json!({"accessToken": ACCESS, "refreshToken": REFRESH, "expiresAt": at, "authMethod": "social", "provider": "Github"});
    std::fs::write(&path, token.to_string()).unwrap();
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

/// Runs `ccr <args>` on a pseudo-terminal (util-linux `script`), as a person would.
async fn on_a_terminal(args: &[&str], home: &std::path::Path) -> String {
    let command = std::iter::once(env!("CARGO_BIN_EXE_ccr"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let out = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TERM", "dumb")
        .env("NO_COLOR", "1")
        .env("COLUMNS", "80")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n")
}

#[tokio::test]
async fn token_commands_say_what_they_did_and_list_what_the_configured_store_holds() {
    let (_config_dir, config) = temp_config("credentials: { store: file }\n");
    let (_keyring_dir, keyring_config) = temp_config("credentials: { store: keyring }\n");
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let config = config.to_str().unwrap();
    let home = tempfile::tempdir().unwrap();

    // Nothing yet: the list says where it looked and how to add one.
    let (code, empty, _) = ccr(&["token", "list"], config, data_dir, &[]).await;
    assert_eq!(code, Some(0));
    assert!(
        empty.contains("no accounts in files in") && empty.contains("ccr token import --name NAME"),
        "{empty}"
    );

    // On a terminal an import says what it did, in one line; piped it says nothing.
    let (_kiro, from) = kiro_file_expiring_in(11 * 3600 + 1800);
    let said = on_a_terminal(
        &[
            "--config",
            config,
            "--data-dir",
            data_dir,
            "token",
            "import",
            "--from",
            &from,
            "--name",
            "work",
        ],
        home.path(),
    )
    .await;
    assert_no_secret(&said);
    assert_eq!(
        said.trim(),
        format!("imported account work (social, in 11 h) into files in {data_dir}/credentials")
    );
    let (_kiro2, from2) = kiro_file_expiring_in(42 * 60 + 30);
    let (code, stdout, stderr) = ccr(
        &[
            "token",
            "import",
            "--from",
            &from2,
            "--name",
            "side-project",
        ],
        config,
        data_dir,
        &[],
    )
    .await;
    assert_eq!((code, stdout.as_str(), stderr.as_str()), (Some(0), "", ""));

    // The table, at 80 columns and with no known width.
    for (name, env) in [
        ("token_list_80_columns", vec![("COLUMNS", "80")]),
        ("token_list_unknown_width", vec![]),
    ] {
        let (code, table, stderr) = ccr(&["token", "list"], config, data_dir, &env).await;
        assert_eq!(code, Some(0), "{stderr}");
        assert!(table.lines().all(|l| l.chars().count() <= 80), "{table}");
        insta::assert_snapshot!(name, table);
    }
    let (_, json, _) = ccr(&["token", "list", "--json"], config, data_dir, &[]).await;
    let json: Value = serde_json::from_str(&json).unwrap();
    assert!(
        json[1]["expires_at"].as_str().unwrap().ends_with('Z'),
        "exact timestamps in JSON"
    );

    // A keyring config does not show the file store's accounts.
    let (code, listed, _) = ccr(
        &["token", "list"],
        keyring_config.to_str().unwrap(),
        data_dir,
        &[],
    )
    .await;
    assert_eq!(code, Some(0));
    assert!(listed.contains("no accounts in the OS keyring"), "{listed}");

    // A name that is not there is named, not answered with a store error.
    let (code, _, stderr) = ccr(&["token", "refresh", "nosuch"], config, data_dir, &[]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no account `nosuch`"), "{stderr}");
    let (code, _, stderr) = ccr(&["token", "remove", "../evil"], config, data_dir, &[]).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("is not an account name"), "{stderr}");

    let said = on_a_terminal(
        &[
            "--config",
            config,
            "--data-dir",
            data_dir,
            "token",
            "remove",
            "side-project",
        ],
        home.path(),
    )
    .await;
    assert_eq!(said.trim(), "removed `side-project`");
}
