//! CodeWhisperer credentials: each Kiro account's token, kept in a store (the OS keyring, or
//! a 0600 file per account chosen explicitly), a non-secret index of the accounts beside it,
//! and the interface providers read tokens through.

pub mod accounts;
mod atomic;
pub mod index;
pub mod manager;
pub mod refresh;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

pub use index::{AccountEntry, Index};
pub use store::{FileStore, KeyringStore, Store};

/// The store the `credentials:` settings name: the OS keyring, or 0600 files in `dir`.
pub fn open_store(
    settings: &crate::config::CredentialsConfig,
    dir: &std::path::Path,
) -> Arc<dyn Store> {
    match settings.store {
        crate::config::StoreKind::Keyring => Arc::new(KeyringStore),
        crate::config::StoreKind::File => Arc::new(FileStore::new(dir)),
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "no credentials for CodeWhisperer account `{account}`: import them with `ccr token import --name {account}`"
    )]
    Missing { account: String },
    #[error("cannot read credentials for account `{account}` from {place}: {detail}")]
    Unreadable {
        account: String,
        place: String,
        detail: String,
    },
    #[error("cannot write credentials for account `{account}` to {place}: {detail}")]
    Unwritable {
        account: String,
        place: String,
        detail: String,
    },
    #[error(
        "the OS keyring is not reachable ({detail}): start a Secret Service (e.g. gnome-keyring) or set `credentials.store: file` to keep tokens in 0600 files instead"
    )]
    NoKeyring { detail: String },
    #[error("cannot read {path}: {detail}")]
    Import { path: PathBuf, detail: String },
    /// The token had to be renewed and could not be; `detail` is fit for API clients (it
    /// names the account, never a token, a lock file or a URL's query).
    #[error("cannot renew the token of CodeWhisperer account `{account}`: {detail}")]
    Renewal { account: String, detail: String },
}

/// How an account signed in; it decides whether requests carry a `profileArn` and which
/// endpoint refreshes the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthMethod {
    /// GitHub or Google through Kiro.
    #[serde(rename = "social")]
    Social,
    /// AWS IAM Identity Center or Builder ID.
    #[serde(rename = "IdC")]
    Idc,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Social => "social",
            AuthMethod::Idc => "IdC",
        }
    }
}

/// One account's token. Secrets are `Secret`s: they never print and have no `Serialize`;
/// only [`Token::to_json`] writes them, for the store.
#[derive(Debug, Clone)]
pub struct Token {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    /// RFC 3339, as Kiro writes it.
    pub expires_at: Option<String>,
    pub profile_arn: Option<String>,
    pub auth_method: AuthMethod,
    pub region: Option<String>,
    /// IdC only: the OIDC client that refreshes the token.
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
}

/// The stored form: Kiro's token JSON, plus the IdC client fields.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenJson {
    access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    profile_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    #[serde(default, skip_serializing)]
    client_id_hash: Option<String>,
}

/// Kiro's IdC client file (`~/.aws/sso/cache/<clientIdHash>.json`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClientFile {
    client_id: String,
    client_secret: String,
}

impl Token {
    /// Parses Kiro's token JSON (or ccr's stored form, which is the same plus client fields).
    pub fn from_json(text: &str) -> Result<Token, String> {
        let file: TokenJson =
            serde_json::from_str(text).map_err(|e| format!("not Kiro's token JSON: {e}"))?;
        Ok(Token::from_parts(file))
    }

    fn from_parts(file: TokenJson) -> Token {
        let auth_method = match file.auth_method.as_deref() {
            Some(m) if m.eq_ignore_ascii_case("idc") => AuthMethod::Idc,
            _ => AuthMethod::Social,
        };
        Token {
            access_token: Secret::new(file.access_token),
            refresh_token: file.refresh_token.map(Secret::new),
            expires_at: file.expires_at,
            profile_arn: file.profile_arn,
            auth_method,
            region: file.region,
            client_id: file.client_id,
            client_secret: file.client_secret.map(Secret::new),
        }
    }

    /// The JSON kept in the store; the only place secrets are written out.
    pub fn to_json(&self) -> String {
        let file = TokenJson {
            access_token: self.access_token.expose().to_string(),
            refresh_token: self.refresh_token.as_ref().map(|s| s.expose().to_string()),
            expires_at: self.expires_at.clone(),
            profile_arn: self.profile_arn.clone(),
            auth_method: Some(self.auth_method.as_str().to_string()),
            region: self.region.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.as_ref().map(|s| s.expose().to_string()),
            client_id_hash: None,
        };
        serde_json::to_string(&file).expect("a token serializes")
    }

    /// Reads Kiro's token file and, for IdC logins, the client file beside it.
    pub fn import(path: &std::path::Path) -> Result<Token, CredentialsError> {
        let import_error = |detail: String| CredentialsError::Import {
            path: path.to_path_buf(),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|e| import_error(e.to_string()))?;
        let file: TokenJson = serde_json::from_str(&text)
            .map_err(|e| import_error(format!("not Kiro's token JSON: {e}")))?;
        let client_hash = file.client_id_hash.clone();
        let mut token = Token::from_parts(file);
        if token.auth_method == AuthMethod::Idc
            && token.client_id.is_none()
            && let Some(hash) = client_hash
        {
            {
                let client_path = path.with_file_name(format!("{hash}.json"));
                let client_text = std::fs::read_to_string(&client_path).map_err(|e| {
                    CredentialsError::Import {
                        path: client_path.clone(),
                        detail: format!("{e} (the IdC client file Kiro writes beside its token)"),
                    }
                })?;
                let client: ClientFile =
                    serde_json::from_str(&client_text).map_err(|e| CredentialsError::Import {
                        path: client_path.clone(),
                        detail: e.to_string(),
                    })?;
                token.client_id = Some(client.client_id);
                token.client_secret = Some(Secret::new(client.client_secret));
            }
        }
        Ok(token)
    }

    /// The `profileArn` to send: social logins need it, IdC ones must not send it.
    pub fn profile_arn_for_requests(&self) -> Option<&str> {
        match self.auth_method {
            AuthMethod::Social => self.profile_arn.as_deref(),
            AuthMethod::Idc => None,
        }
    }
}

/// Where a provider gets an account's current token. Reading takes no lock; only a token
/// that must be renewed makes its own account's requests wait.
pub trait TokenSource: Send + Sync {
    /// The account's usable token (renewed first if it has expired).
    fn token<'a>(&'a self, account: &'a str)
    -> BoxFuture<'a, Result<Arc<Token>, CredentialsError>>;
    /// The upstream refused `token` (401/403): a renewed one, refreshed at most once however
    /// many requests report the same token.
    fn rejected<'a>(
        &'a self,
        account: &'a str,
        token: &'a Arc<Token>,
    ) -> BoxFuture<'a, Result<Arc<Token>, CredentialsError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_know_who_needs_a_profile_arn() {
        let social = Token::from_json(
            r#"{"accessToken":"aoa-secret","refreshToken":"aor-secret","expiresAt":"2026-11-27T12:00:00Z","profileArn":"arn:aws:codewhisperer:us-east-1:1:profile/X","authMethod":"social","provider":"Github"}"#,
        )
        .unwrap();
        assert!(social.profile_arn_for_requests().is_some());
        assert!(
            !format!("{social:?}").contains("aoa-secret"),
            "tokens never print"
        );
        let again = Token::from_json(&social.to_json()).unwrap();
        assert_eq!(again.access_token.expose(), "aoa-secret");
        assert_eq!(again.refresh_token.unwrap().expose(), "aor-secret");
        let idc = Token::from_json(r#"{"accessToken":"t","authMethod":"IdC","profileArn":"arn"}"#)
            .unwrap();
        assert_eq!(idc.profile_arn_for_requests(), None);
    }

    #[test]
    fn import_reads_the_idc_client_file_beside_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let token_path = dir.path().join("kiro-auth-token.json");
        std::fs::write(&token_path, r#"{"accessToken":"a","refreshToken":"r","authMethod":"IdC","region":"eu-west-1","clientIdHash":"abc123"}"#).unwrap();
        std::fs::write(
            dir.path().join("abc123.json"),
            r#"{"clientId":"cid","clientSecret":"csecret","expiresAt":"x"}"#,
        )
        .unwrap();
        let token = Token::import(&token_path).unwrap();
        assert_eq!(token.client_id.as_deref(), Some("cid"));
        assert_eq!(token.client_secret.unwrap().expose(), "csecret");
        assert_eq!(token.region.as_deref(), Some("eu-west-1"));
        std::fs::remove_file(dir.path().join("abc123.json")).unwrap();
        let err = Token::import(&token_path).unwrap_err().to_string();
        assert!(
            err.contains("abc123.json") && err.contains("IdC client file"),
            "{err}"
        );
    }
}
