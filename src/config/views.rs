//! What the commands other than `serve` read of the configuration: only their own sections,
//! so that an unset `${VAR}` in an unrelated provider is not their error. Other sections
//! are skipped unread (and so neither interpolated nor checked); `ccr serve` checks them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

use super::providers::{self, CodeWhispererConfig, ProviderKind};
use super::{ConfigError, CredentialsConfig, ServerConfig, Source, values};

/// What a client of a running server needs (`ccr stats`, `ccr replay`): its address and key.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub server: ServerConfig,
    pub source: Source,
}

impl ClientSettings {
    /// The server's base URL as a client on this machine reaches it: a server bound to
    /// every address (`0.0.0.0`, `::`) is reached on loopback.
    pub fn base_url(&self) -> String {
        let host = match self.server.host.0.as_str() {
            "0.0.0.0" => "127.0.0.1",
            "::" | "[::]" => "::1",
            host => host,
        };
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        format!("http://{host}:{}", self.server.port)
    }
}

/// What the credential commands need (`ccr token …`): the store, the data directory and
/// the codewhisperer providers' refresh URLs.
#[derive(Debug, Clone)]
pub struct CredentialSettings {
    pub credentials: CredentialsConfig,
    pub codewhisperer: BTreeMap<String, CodeWhispererConfig>,
    pub data_dir: PathBuf,
    pub source: Source,
}

impl CredentialSettings {
    /// The codewhisperer provider that lists `account`, whose refresh URLs apply to it.
    pub fn codewhisperer_for(&self, account: &str) -> Option<&CodeWhispererConfig> {
        self.codewhisperer
            .values()
            .find(|c| c.accounts.iter().any(|a| a == account))
    }

    /// Where CodeWhisperer token files live with `store: file`.
    pub fn credentials_dir(&self) -> PathBuf {
        super::credentials_dir(&self.credentials, &self.data_dir)
    }
}

#[derive(Deserialize)]
struct ClientView {
    #[serde(default)]
    server: ServerConfig,
}

#[derive(Deserialize)]
struct CredentialsView {
    #[serde(default)]
    credentials: CredentialsConfig,
    #[serde(default, deserialize_with = "codewhisperer_only")]
    providers: BTreeMap<String, CodeWhispererConfig>,
}

/// The codewhisperer entries of `providers:`; the others are skipped unread.
fn codewhisperer_only<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, CodeWhispererConfig>, D::Error> {
    struct Only;
    impl<'de> Visitor<'de> for Only {
        type Value = BTreeMap<String, CodeWhispererConfig>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of providers")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                if providers::kind_of(&name) == Some(ProviderKind::Codewhisperer) {
                    found.insert(name, map.next_value::<CodeWhispererConfig>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    deserializer.deserialize_map(Only)
}

/// Reads only the `server:` section.
pub fn load_client(path: Option<&Path>, explicit: bool) -> Result<ClientSettings, ConfigError> {
    let (text, source) = super::read(path, explicit)?;
    let view: ClientView = parse_view(&text, &source)?;
    Ok(ClientSettings {
        server: view.server,
        source,
    })
}

/// Reads only `credentials:` and the codewhisperer providers.
pub fn load_credentials(
    path: Option<&Path>,
    explicit: bool,
    data_dir: Option<PathBuf>,
) -> Result<CredentialSettings, ConfigError> {
    let (text, source) = super::read(path, explicit)?;
    let view: CredentialsView = parse_view(&text, &source)?;
    for (name, provider) in &view.providers {
        let whole = super::ProviderConfig::Codewhisperer(provider.clone());
        whole.validate().map_err(|e| ConfigError::Invalid {
            source_name: source.clone(),
            field: format!("providers.{name}.{}", e.field),
            message: e.message,
        })?;
    }
    Ok(CredentialSettings {
        credentials: view.credentials,
        codewhisperer: view.providers,
        data_dir: data_dir
            .or_else(|| super::data_dir(None))
            .unwrap_or_else(|| PathBuf::from(".")),
        source,
    })
}

fn parse_view<T: for<'de> Deserialize<'de>>(text: &str, source: &Source) -> Result<T, ConfigError> {
    // An empty file (or one holding only comments) reads as no sections at all.
    let text = match serde_norway::from_str::<serde_norway::Value>(text) {
        Ok(serde_norway::Value::Null) => "{}",
        _ => text,
    };
    values::with_env(None, || {
        providers::with_kinds_of(text, || serde_norway::from_str::<T>(text))
    })
    .map_err(|e| ConfigError::Parse {
        source_name: source.clone(),
        line: e.location().map(|l| l.line()),
        message: e.to_string(),
    })
}
