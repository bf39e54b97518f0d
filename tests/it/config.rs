//! Config files as a user writes them: every error names the file, the field and, where the
//! parser knows it, the line.

use std::collections::HashMap;

use ccr::config::{self, Config, Overrides, Source};

use crate::support::{CcrProcess, client, run_ccr, temp_config};

const BASE: &str =
    "providers:\n  anthropic:\n    type: anthropic\nroutes:\n  default: [anthropic/*]\n";

fn load_err(yaml: &str) -> String {
    let (_dir, path) = temp_config(yaml);
    let err =
        config::load(Some(&path), true, &Overrides::default()).expect_err("config is rejected");
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()),
        "names the file: {text}"
    );
    text
}

#[test]
fn unknown_keys_name_the_field_and_line() {
    let text = load_err(
        "server:\n  port: 3456\n  prot: 1\nproviders:\n  anthropic:\n    type: anthropic\nroutes:\n  default: [anthropic/*]\n",
    );
    assert!(text.contains("server: unknown field `prot`"), "{text}");
    assert!(text.contains("line 3"), "{text}");
}

#[test]
fn a_route_naming_an_unknown_provider_is_rejected() {
    let text = load_err(
        "providers:\n  anthropic:\n    type: anthropic\nroutes:\n  default: [anthropic/*, deepsek/deepseek-chat]\n",
    );
    assert!(text.contains("routes.default[1]"), "{text}");
    assert!(
        text.contains("`deepsek`") && text.contains("providers: anthropic"),
        "{text}"
    );
}

#[test]
fn a_bad_url_names_the_field_and_line() {
    let text = load_err(
        "providers:\n  anthropic:\n    type: anthropic\n    base_url: api.anthropic.com\nroutes:\n  default: [anthropic/*]\n",
    );
    assert!(text.contains("providers.anthropic.base_url"), "{text}");
    assert!(
        text.contains("`api.anthropic.com` is not a valid URL"),
        "{text}"
    );
    assert!(text.contains("line 4"), "{text}");
}

#[test]
fn an_unset_variable_without_default_names_the_variable_and_field() {
    let text = load_err(
        "providers:\n  anthropic:\n    type: anthropic\n    api_key: \"${CCR_TEST_SURELY_UNSET_VAR}\"\nroutes:\n  default: [anthropic/*]\n",
    );
    assert!(text.contains("providers.anthropic.api_key"), "{text}");
    assert!(
        text.contains("`CCR_TEST_SURELY_UNSET_VAR` is not set"),
        "{text}"
    );
    assert!(text.contains("line 4"), "{text}");
}

#[test]
fn a_non_loopback_host_needs_a_client_key() {
    let text = load_err(&format!("server:\n  host: 0.0.0.0\n{BASE}"));
    assert!(
        text.contains("server.host") && text.contains("server.api_key"),
        "{text}"
    );

    // With a key it is allowed (and the anthropic provider then needs its own key).
    let keyed = "providers:\n  anthropic:\n    type: anthropic\n    api_key: \"${UP_KEY:-up}\"\nroutes:\n  default: [anthropic/*]\n";
    let (_dir, path) = temp_config(&format!(
        "server:\n  host: 0.0.0.0\n  api_key: \"${{KEY:-abc}}\"\n{keyed}"
    ));
    config::load(Some(&path), true, &Overrides::default()).unwrap();
    // An empty key (`${CCR_API_KEY:-}` unset) is no key.
    let text = load_err(&format!(
        "server:\n  host: 0.0.0.0\n  api_key: \"${{CCR_TEST_UNSET_KEY:-}}\"\n{BASE}"
    ));
    assert!(text.contains("server.api_key"), "{text}");
}

#[test]
fn a_client_key_requires_keys_for_anthropic_providers() {
    let text = load_err(&format!("server:\n  api_key: ccr-key\n{BASE}"));
    assert!(
        text.contains("providers.anthropic.api_key: is required when `server.api_key` is set"),
        "{text}"
    );
}

#[test]
fn wrong_types_and_unknown_provider_types_are_explained() {
    let text = load_err("server:\n  port: lots\nproviders: {}\nroutes:\n  default: [x/y]\n");
    assert!(
        text.contains("server.port") && text.contains("line 2"),
        "{text}"
    );
    let text = load_err("providers:\n  a:\n    type: telepathy\nroutes:\n  default: [a/*]\n");
    assert!(
        text.contains("providers.a.type")
            && text.contains("telepathy")
            && text.contains("anthropic"),
        "{text}"
    );
}

#[test]
fn variables_with_defaults_are_interpolated_inside_values() {
    let yaml = "server:\n  api_key: \"pre-${CCR_KEY_A}-${CCR_KEY_B:-fallback}\"\nproviders:\n  anthropic:\n    type: anthropic\n    base_url: \"${CCR_URL:-https://api.anthropic.com}/proxy\"\nroutes:\n  default: [anthropic/*]\n";
    let env = HashMap::from([("CCR_KEY_A".to_string(), "a#1: {x}".to_string())]);
    let config = Config::parse(yaml, &Source::Embedded, Some(env)).unwrap();
    assert_eq!(
        config.server.client_key().unwrap().expose(),
        "pre-a#1: {x}-fallback"
    );
    assert_eq!(
        config.providers["anthropic"].base_url().as_str(),
        "https://api.anthropic.com/proxy"
    );
}

#[test]
fn overrides_are_validated_too() {
    let (_dir, path) = temp_config(BASE);
    let overrides = Overrides {
        host: Some("0.0.0.0".into()),
        port: Some(0),
        data_dir: None,
    };
    let err = config::load(Some(&path), true, &overrides)
        .unwrap_err()
        .to_string();
    assert!(err.contains("server.host"), "{err}");
}

#[test]
fn a_missing_explicit_file_is_an_error_but_a_missing_default_file_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.yaml");
    let err = config::load(Some(&path), true, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("absent.yaml"), "{err}");
    let loaded = config::load(Some(&path), false, &Overrides::default()).unwrap();
    assert_eq!(loaded.source, Source::Embedded);
}

#[cfg(unix)]
#[test]
fn a_literal_secret_in_a_world_readable_file_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let yaml = "providers:\n  anthropic:\n    type: anthropic\n    api_key: sk-literal\nroutes:\n  default: [anthropic/*]\n";
    let (_dir, path) = temp_config(yaml);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loaded = config::load(Some(&path), true, &Overrides::default()).unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert!(
        loaded.warnings[0].contains("providers.anthropic.api_key")
            && loaded.warnings[0].contains("chmod 600")
    );
    assert!(
        !loaded.warnings[0].contains("sk-literal"),
        "the warning never shows the secret"
    );

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(
        config::load(Some(&path), true, &Overrides::default())
            .unwrap()
            .warnings
            .is_empty()
    );
}

#[tokio::test]
async fn the_binary_reports_config_errors_with_exit_code_2() {
    let (_dir, path) = temp_config("routes:\n  default: [nowhere/model]\n");
    let (code, stdout, stderr) = run_ccr(&["serve", "--config", path.to_str().unwrap()], &[]).await;
    assert_eq!(code, Some(2), "stderr: {stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.starts_with("error: ") && stderr.contains("routes.default[0]"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_binary_reads_ccr_config_from_the_environment() {
    let (_dir, path) = temp_config(
        "server:\n  host: 0.0.0.0\nroutes:\n  default: [anthropic/*]\nproviders:\n  anthropic: { type: anthropic }\n",
    );
    let (code, _, stderr) = run_ccr(&["serve"], &[("CCR_CONFIG", path.to_str().unwrap())]).await;
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("would expose ccr beyond this machine"),
        "{stderr}"
    );
}

#[test]
fn a_file_without_providers_and_routes_builds_on_the_embedded_default() {
    let (_dir, path) = temp_config("credentials: { store: file }\nrouter: { max_attempts: 2 }\n");
    let config = config::load(Some(&path), true, &Overrides::default())
        .unwrap()
        .config;
    assert_eq!(config.credentials.store, config::StoreKind::File);
    assert_eq!(config.router.max_attempts, 2);
    assert_eq!(config.providers.keys().collect::<Vec<_>>(), ["anthropic"]);
    assert!(
        config.providers["anthropic"].key().is_none(),
        "pass-through"
    );
    assert_eq!(
        config.routes.default.targets[0].spec.to_string(),
        "anthropic/*"
    );
}

#[test]
fn an_empty_file_is_the_embedded_default() {
    for text in ["", "\n\n", "# nothing configured yet\n"] {
        let (_dir, path) = temp_config(text);
        let loaded = config::load(Some(&path), true, &Overrides::default()).unwrap();
        assert_eq!(loaded.source, Source::File(path.clone()), "{text:?}");
        assert_eq!(loaded.config.server.port, 3456);
        assert_eq!(
            loaded.config.providers.keys().collect::<Vec<_>>(),
            ["anthropic"]
        );
    }
}

#[test]
fn providers_without_routes_say_where_to_add_them() {
    let text = load_err("providers:\n  deepseek: { type: openai, api_key: k }\n");
    assert!(
        text.contains("routes") && text.contains("default: [deepseek/*]"),
        "{text}"
    );
}

#[test]
fn routes_without_providers_use_the_default_providers() {
    let (_dir, path) = temp_config("routes:\n  default: [anthropic/claude-sonnet-4-5]\n");
    let config = config::load(Some(&path), true, &Overrides::default())
        .unwrap()
        .config;
    assert_eq!(config.providers.keys().collect::<Vec<_>>(), ["anthropic"]);
    assert_eq!(
        config.routes.default.targets[0].spec.to_string(),
        "anthropic/claude-sonnet-4-5"
    );
}

#[test]
fn errors_in_a_partial_file_still_name_the_field_and_line() {
    let text = load_err("credentials:\n  store: file\n  stor: keyring\n");
    assert!(text.contains("credentials: unknown field `stor`"), "{text}");
    assert!(text.contains("line 3"), "{text}");
}

#[tokio::test]
async fn serve_starts_from_a_file_that_only_chooses_the_file_store() {
    let ccr = CcrProcess::serve(Some("credentials: { store: file }\n"), &[]).await;
    let response = client().get(ccr.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"status":"ok"}"#);
    ccr.sigterm();
    let (code, stderr) = ccr.wait().await;
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn each_provider_type_takes_only_its_own_fields() {
    // `accounts` belongs to codewhisperer; on an openai provider it is an unknown key,
    // named with its path and line like any other.
    let text = load_err(
        "providers:\n  oa:\n    type: openai\n    api_key: k\n    accounts: [work]\nroutes:\n  default: [oa/m]\n",
    );
    assert!(
        text.contains("providers.oa: unknown field `accounts`") && text.contains("line 5"),
        "{text}"
    );
    // `type` may come after the other keys.
    let text = load_err(
        "providers:\n  up:\n    drop_beta_flags: [x]\n    models: {}\n    type: anthropic\nroutes:\n  default: [up/*]\n",
    );
    assert!(
        text.contains("providers.up: unknown field `models`") && text.contains("line 4"),
        "{text}"
    );
    let text = load_err("providers:\n  up:\n    base_url: https://x\nroutes:\n  default: [up/*]\n");
    assert!(
        text.contains("providers.up") && text.contains("missing field `type`"),
        "{text}"
    );
    let text = load_err(
        "providers:\n  kiro:\n    type: codewhisperer\n    accounts: []\nroutes:\n  default: [kiro/*]\n",
    );
    assert!(text.contains("providers.kiro.accounts"), "{text}");
}

#[test]
fn config_errors_never_echo_a_secret() {
    for yaml in [
        "providers:\n  a: { type: openai, api_key: [sk-listed-secret-value] }\nroutes:\n  default: [a/m]\n",
        "providers:\n  a: { type: openai, api_key: { k: sk-mapped-secret-value } }\nroutes:\n  default: [a/m]\n",
        "server:\n  api_key: sk-server-secret-value\n  port: nope\n",
        "providers:\n  a: { type: openai, api_key: sk-bad-header-secret\u{7f}value, api_keys: [sk-other-secret-value] }\nroutes:\n  default: [a/m]\n",
    ] {
        let text = load_err(yaml);
        assert!(
            !text.contains("secret-value") && !text.contains("secret\u{7f}"),
            "{text}"
        );
    }
}
