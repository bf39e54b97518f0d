//! The YAML configuration: schema, defaults, `${VAR}` interpolation, validation, and where the
//! file and the data directory live. Every error names the field path, and the file and
//! line where the parser knows them.

mod providers;
mod routes;
mod values;
mod views;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use providers::{
    AnthropicConfig, CodeWhispererConfig, GeminiConfig, GeminiModelConfig, ModelConfig,
    OpenAiConfig, ProviderConfig, ProviderKind, UpstreamTimeouts, is_account_name,
};
pub use routes::{
    BlacklistConfig, Route, RouterConfig, RoutesConfig, SessionsConfig, Strategy, TargetSpec,
    WeightedTarget,
};
pub use values::{ConfigString, HttpUrl, Seconds, Secret};
pub use views::{ClientSettings, CredentialSettings, load_client, load_credentials};

/// The configuration used when no file exists.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.yaml");

/// Where a configuration came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Embedded,
    File(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Embedded => f.write_str("the embedded default config"),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The parser's message already holds the field path and `at line L column C`.
    #[error("{source_name}: {message}")]
    Parse {
        source_name: Source,
        message: String,
        line: Option<usize>,
    },
    #[error("{source_name}: {field}: {message}")]
    Invalid {
        source_name: Source,
        field: String,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "ConfigFile")]
pub struct Config {
    pub server: ServerConfig,
    pub providers: BTreeMap<String, ProviderConfig>,
    pub routes: RoutesConfig,
    pub router: RouterConfig,
    pub credentials: CredentialsConfig,
    pub stats: StatsConfig,
    pub failures: FailuresConfig,
    /// The data directory (`--data-dir`, `CCR_DATA_DIR`, else the platform's), set by the
    /// loader; not a YAML key.
    pub data_dir: Option<PathBuf>,
}

/// The file as written: every section may be left out. A file without `providers` and
/// `routes` builds on the embedded default's Anthropic pass-through, so a file that only
/// says `credentials: { store: file }` is a working config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default, deserialize_with = "providers::deserialize_providers")]
    providers: Option<BTreeMap<String, ProviderConfig>>,
    routes: Option<RoutesConfig>,
    #[serde(default)]
    router: RouterConfig,
    #[serde(default)]
    credentials: CredentialsConfig,
    #[serde(default)]
    stats: StatsConfig,
    #[serde(default)]
    failures: FailuresConfig,
}

impl TryFrom<ConfigFile> for Config {
    type Error = String;

    fn try_from(file: ConfigFile) -> Result<Config, String> {
        let (providers, routes) = match (file.providers, file.routes) {
            (providers, Some(routes)) => (providers.unwrap_or_else(default_providers), routes),
            (None, None) => (default_providers(), default_routes()),
            (Some(providers), None) => {
                let first = providers.keys().next().map_or("anthropic", String::as_str);
                return Err(format!(
                    "routes: missing: a file that lists `providers` must say where requests go, e.g. `routes: {{ default: [{first}/*] }}`"
                ));
            }
        };
        Ok(Config {
            server: file.server,
            providers,
            routes,
            router: file.router,
            credentials: file.credentials,
            stats: file.stats,
            failures: file.failures,
            data_dir: None,
        })
    }
}

/// The embedded default's section, for a file that leaves it out.
fn embedded_file() -> ConfigFile {
    // Embedded text that names no variable, checked by the unit tests.
    providers::with_kinds_of(EMBEDDED_DEFAULT, || {
        serde_norway::from_str(EMBEDDED_DEFAULT)
    })
    .expect("the embedded default config parses")
}

fn default_providers() -> BTreeMap<String, ProviderConfig> {
    embedded_file().providers.unwrap_or_default()
}

fn default_routes() -> RoutesConfig {
    embedded_file()
        .routes
        .expect("the embedded default has routes")
}

/// `stats:` — the periodic stats log line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsConfig {
    /// How often a stats line is logged; 0 turns it off.
    pub log_interval: Seconds,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            log_interval: Seconds(Duration::from_secs(300)),
        }
    }
}

/// `failures:` — the failure log in `<data dir>/failures/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailuresConfig {
    pub enabled: bool,
    /// Days of files kept; older ones are deleted by the writer.
    pub keep_days: u32,
    /// Records waiting for the writer at most; beyond it a record is dropped and counted,
    /// so a request never waits on the disk.
    pub queue: usize,
}

impl Default for FailuresConfig {
    fn default() -> Self {
        FailuresConfig {
            enabled: true,
            keep_days: 14,
            queue: 4096,
        }
    }
}

/// `credentials:` — where CodeWhisperer tokens are kept, and who refreshes them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CredentialsConfig {
    pub store: StoreKind,
    /// For `store: file`: a directory of `<account>.json` files (mode 0600); default
    /// `<data dir>/credentials`.
    pub dir: Option<PathBuf>,
    /// Who refreshes tokens: `serve` (in the background, ahead of expiry) or `external`
    /// (`ccr token refresh` from cron; serve only re-reads the store).
    pub refresher: RefresherKind,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefresherKind {
    #[default]
    Serve,
    External,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// The OS keyring (Secret Service, Keychain, Credential Manager).
    #[default]
    Keyring,
    /// 0600 JSON files, for machines without a keyring; never chosen silently.
    File,
}

impl Config {
    /// The data directory, falling back to the current one when no home is known.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .or_else(|| data_dir(None))
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// The codewhisperer provider that lists `account`, whose refresh URLs apply to it.
    pub fn codewhisperer_for(&self, account: &str) -> Option<&CodeWhispererConfig> {
        self.providers.values().find_map(|p| match p {
            ProviderConfig::Codewhisperer(c) if c.accounts.iter().any(|a| a == account) => Some(c),
            _ => None,
        })
    }

    /// Where CodeWhisperer token files live with `store: file`.
    pub fn credentials_dir(&self) -> PathBuf {
        credentials_dir(&self.credentials, &self.data_dir())
    }
}

/// `credentials.dir`, else `<data dir>/credentials`.
fn credentials_dir(credentials: &CredentialsConfig, data_dir: &Path) -> PathBuf {
    credentials
        .dir
        .clone()
        .unwrap_or_else(|| data_dir.join("credentials"))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub host: ConfigString,
    pub port: u16,
    /// When set, clients must present it (`x-api-key` or `Authorization: Bearer`) and their
    /// own credential is never forwarded upstream. Empty (e.g. `${CCR_API_KEY:-}`) is unset.
    pub api_key: Option<Secret>,
    /// Largest request body accepted, in bytes.
    pub body_limit: u64,
    /// Time a client has to send a request's headers.
    pub header_read_timeout: Seconds,
    /// A client connection with no request in flight is closed after this long.
    pub idle_timeout: Seconds,
    /// On SIGINT/SIGTERM, in-flight requests get this long to finish; streams still open
    /// then end with an `error` event.
    pub shutdown_grace: Seconds,
    /// A converted stream sends a `ping` event after this long without upstream events.
    pub ping_interval: Seconds,
    /// Time a client has to send a request's body once its headers arrived (408 after).
    pub body_read_timeout: Seconds,
    /// Open client connections at most; beyond it new ones wait to be accepted.
    pub max_connections: usize,
    /// Web origins (`https://app.example`) whose pages may call ccr; any other `Origin`
    /// but the server's own is refused.
    pub allowed_origins: Vec<String>,
    /// `Host` values accepted beside loopback names and `server.host` while no client key is
    /// set (a defence against DNS rebinding).
    pub allowed_hosts: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: ConfigString("127.0.0.1".into()),
            port: 3456,
            api_key: None,
            body_limit: 32 * 1024 * 1024,
            header_read_timeout: Seconds(Duration::from_secs(30)),
            idle_timeout: Seconds(Duration::from_secs(300)),
            shutdown_grace: Seconds(Duration::from_secs(30)),
            ping_interval: Seconds(Duration::from_secs(15)),
            body_read_timeout: Seconds(Duration::from_secs(60)),
            max_connections: 4096,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

impl ServerConfig {
    /// The client key, if one is configured and non-empty.
    pub fn client_key(&self) -> Option<&Secret> {
        self.api_key.as_ref().filter(|k| !k.is_empty())
    }
}

/// A parsed and validated configuration, with what the loader noticed on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub source: Source,
    pub warnings: Vec<String>,
}

/// Overrides given on the command line; applied before validation so they are checked too.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// Parses YAML text; interpolation reads `env` when given, else the process environment.
    pub fn parse(
        text: &str,
        source: &Source,
        env: Option<HashMap<String, String>>,
    ) -> Result<Config, ConfigError> {
        // An empty file (or one holding only comments) is the embedded default.
        let text = match serde_norway::from_str::<serde_norway::Value>(text) {
            Ok(serde_norway::Value::Null) => EMBEDDED_DEFAULT,
            _ => text,
        };
        let parsed: Result<Config, serde_norway::Error> = values::with_env(env, || {
            providers::with_kinds_of(text, || serde_norway::from_str(text))
        });
        parsed.map_err(|e| ConfigError::Parse {
            source_name: source.clone(),
            line: e.location().map(|l| l.line()),
            message: e.to_string(),
        })
    }

    /// Checks what no single field can check alone.
    pub fn validate(&self, source: &Source) -> Result<(), ConfigError> {
        let invalid = |field: String, message: String| ConfigError::Invalid {
            source_name: source.clone(),
            field,
            message,
        };
        for (scenario, route) in self.routes.all() {
            let targets: Vec<&TargetSpec> = route.targets.iter().map(|t| &t.spec).collect();
            if targets.is_empty() {
                return Err(invalid(
                    format!("routes.{scenario}"),
                    "needs at least one target such as `anthropic/*`".into(),
                ));
            }
            for (i, target) in targets.iter().enumerate() {
                if !self.providers.contains_key(&target.provider) {
                    let known: Vec<&str> = self.providers.keys().map(String::as_str).collect();
                    return Err(invalid(
                        format!("routes.{scenario}[{i}]"),
                        format!(
                            "`{target}` names provider `{}`, which is not configured (providers: {}): add it under `providers:` or fix the name",
                            target.provider,
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                }
            }
        }
        let host = self.server.host.0.as_str();
        match host_is_loopback(host) {
            None => {
                return Err(invalid(
                    "server.host".into(),
                    format!("`{host}` is not an IP address or `localhost`"),
                ));
            }
            Some(false) if self.server.client_key().is_none() => {
                return Err(invalid(
                    "server.host".into(),
                    format!(
                        "binding to `{host}` would expose ccr beyond this machine without a client key: set `server.api_key` (e.g. `\"${{CCR_API_KEY}}\"`) or bind to 127.0.0.1"
                    ),
                ));
            }
            Some(_) => {}
        }
        for (name, provider) in &self.providers {
            provider
                .validate()
                .map_err(|e| invalid(format!("providers.{name}.{}", e.field), e.message))?;
        }
        if self.server.client_key().is_some() {
            let keyless = self
                .providers
                .iter()
                .find(|(_, p)| p.kind() == ProviderKind::Anthropic && p.key().is_none());
            if let Some((name, _)) = keyless {
                return Err(invalid(
                    format!("providers.{name}.api_key"),
                    "is required when `server.api_key` is set: clients then send ccr's key, which is never forwarded, so this provider would have no credential (e.g. `api_key: \"${ANTHROPIC_API_KEY}\"`)".into(),
                ));
            }
        }
        if self.server.ping_interval.0.is_zero() {
            return Err(invalid(
                "server.ping_interval".into(),
                "must be greater than 0".into(),
            ));
        }
        if self.server.max_connections == 0 {
            return Err(invalid(
                "server.max_connections".into(),
                "must be greater than 0".into(),
            ));
        }
        if self.server.body_limit == 0 {
            return Err(invalid(
                "server.body_limit".into(),
                "must be greater than 0".into(),
            ));
        }
        Ok(())
    }

    fn literal_secret_fields(&self) -> Vec<String> {
        let mut fields = Vec::new();
        if self.server.api_key.as_ref().is_some_and(Secret::is_literal) {
            fields.push("server.api_key".to_string());
        }
        for (name, provider) in &self.providers {
            let (key, keys) = match provider {
                ProviderConfig::Anthropic(c) => (&c.api_key, &c.api_keys),
                ProviderConfig::Openai(c) => (&c.api_key, &c.api_keys),
                ProviderConfig::Gemini(c) => (&c.api_key, &c.api_keys),
                ProviderConfig::Codewhisperer(_) => continue,
            };
            if key.as_ref().is_some_and(Secret::is_literal) {
                fields.push(format!("providers.{name}.api_key"));
            }
            if keys.iter().any(Secret::is_literal) {
                fields.push(format!("providers.{name}.api_keys"));
            }
        }
        fields
    }
}

/// `Some(true)` for loopback addresses and `localhost`, `Some(false)` for other addresses,
/// `None` for something that is not an address.
pub fn host_is_loopback(host: &str) -> Option<bool> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(true);
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok()
        .map(|ip| ip.is_loopback())
}

pub use crate::paths::{data_dir, default_path};

/// Loads the configuration. An explicit `path` must exist; the default path falls back to
/// the embedded default when there is no file.
pub fn load(
    path: Option<&Path>,
    explicit: bool,
    overrides: &Overrides,
) -> Result<Loaded, ConfigError> {
    let (text, source) = read(path, explicit)?;
    let mut config = Config::parse(&text, &source, None)?;
    if let Some(host) = &overrides.host {
        config.server.host = ConfigString(host.clone());
    }
    if let Some(port) = overrides.port {
        config.server.port = port;
    }
    config.data_dir = overrides.data_dir.clone().or_else(|| data_dir(None));
    config.validate(&source)?;
    let warnings = match &source {
        Source::File(path) => literal_secret_warnings(&config, path),
        Source::Embedded => Vec::new(),
    };
    Ok(Loaded {
        config,
        source,
        warnings,
    })
}

/// The config text: the file at `path`, or the embedded default when the default path has
/// no file. An explicit `path` must exist.
fn read(path: Option<&Path>, explicit: bool) -> Result<(String, Source), ConfigError> {
    match path {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Ok((text, Source::File(path.to_path_buf()))),
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
                Ok((EMBEDDED_DEFAULT.to_string(), Source::Embedded))
            }
            Err(error) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                error,
            }),
        },
        None => Ok((EMBEDDED_DEFAULT.to_string(), Source::Embedded)),
    }
}

fn literal_secret_warnings(config: &Config, path: &Path) -> Vec<String> {
    let fields = config.literal_secret_fields();
    if fields.is_empty() || !readable_by_others(path) {
        return Vec::new();
    }
    vec![format!(
        "{} holds a literal secret in {} and is readable by group or others: run `chmod 600 {}` or use `${{ENV_VAR}}` references",
        path.display(),
        fields.join(", "),
        path.display()
    )]
}

#[cfg(unix)]
fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

#[cfg(not(unix))]
fn readable_by_others(_path: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let source = Source::File("test.yaml".into());
        let config = Config::parse(text, &source, Some(HashMap::new()))?;
        config.validate(&source)?;
        Ok(config)
    }

    #[test]
    fn embedded_default_is_valid_and_passes_through() {
        let config = parse(EMBEDDED_DEFAULT).unwrap();
        assert_eq!(config.server.port, 3456);
        assert_eq!(config.server.host.0, "127.0.0.1");
        let default = &config.routes.default;
        assert_eq!(default.strategy, Strategy::RoundRobin);
        assert_eq!(
            default.targets[0].spec,
            TargetSpec {
                provider: "anthropic".into(),
                model: None
            }
        );
        assert!(config.providers["anthropic"].key().is_none());
    }

    #[test]
    fn loopback_detection() {
        assert_eq!(host_is_loopback("127.0.0.1"), Some(true));
        assert_eq!(host_is_loopback("::1"), Some(true));
        assert_eq!(host_is_loopback("localhost"), Some(true));
        assert_eq!(host_is_loopback("0.0.0.0"), Some(false));
        assert_eq!(host_is_loopback("example.com"), None);
    }

    #[test]
    fn a_gemini_provider_reads_its_keys_models_and_default_url() {
        let config = parse(
            "providers:\n  gm:\n    type: gemini\n    api_keys: [k-one-123456, k-two-123456]\n    models:\n      gemini-3-pro-preview: { parameters_json_schema: true, max_thinking_budget: 32768 }\nroutes:\n  default: [gm/gemini-2.5-pro]\n",
        )
        .unwrap();
        let gm = &config.providers["gm"];
        assert_eq!(gm.kind(), ProviderKind::Gemini);
        assert_eq!(
            gm.base_url().as_str(),
            "https://generativelanguage.googleapis.com/"
        );
        let labels: Vec<String> = gm.per_key("gm").into_iter().map(|(l, _)| l).collect();
        assert_eq!(labels, ["gm#1", "gm#2"]);
        let ProviderConfig::Gemini(c) = gm else {
            panic!()
        };
        let model = c.model("gemini-3-pro-preview");
        assert!(model.parameters_json_schema);
        assert_eq!(model.max_thinking_budget, Some(32768));
        assert!(!c.model("gemini-2.5-pro").parameters_json_schema);

        let err = parse("providers:\n  gm:\n    type: gemini\nroutes:\n  default: [gm/m]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("providers.gm.api_key"), "{err}");
        let err = parse("providers:\n  gm:\n    type: gemini\n    api_key: k\n    headers: {}\nroutes:\n  default: [gm/m]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("headers"), "{err}");
    }

    #[test]
    fn unknown_key_names_path_and_line() {
        let err = parse("routes:\n  default: [anthropic/*]\nproviders:\n  anthropic:\n    type: anthropic\n    bas_url: https://x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("test.yaml"), "{err}");
        assert!(err.contains("providers.anthropic"), "{err}");
        assert!(err.contains("bas_url"), "{err}");
        assert!(err.contains("line 6"), "{err}");
    }
}
