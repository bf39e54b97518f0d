//! CodeWhisperer credentials: the token of each account, read through one small interface.
//! The first store is a 0600 JSON file per account in the data directory; the OS keyring
//! and the refreshing token manager come behind the same interface.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::config::Secret;

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "no credentials for CodeWhisperer account `{account}` in {path}: import them with `ccr token import {account}` (or put Kiro's token JSON there, mode 0600)"
    )]
    Missing { account: String, path: PathBuf },
    #[error("cannot read credentials for account `{account}` from {path}: {detail}")]
    Unreadable {
        account: String,
        path: PathBuf,
        detail: String,
    },
}

/// How an account signed in; it decides whether requests carry a `profileArn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// GitHub or Google through Kiro.
    Social,
    /// AWS IAM Identity Center or Builder ID.
    Idc,
}

/// One account's token. Secrets are `Secret`s: they never print.
#[derive(Debug, Clone)]
pub struct Token {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub expires_at: Option<String>,
    pub profile_arn: Option<String>,
    pub auth_method: AuthMethod,
}

/// Kiro's token file, `kiro-auth-token.json`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenFile {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    profile_arn: Option<String>,
    #[serde(default)]
    auth_method: Option<String>,
}

impl Token {
    /// Parses Kiro's token JSON.
    pub fn from_json(text: &str) -> Result<Token, String> {
        let file: TokenFile =
            serde_json::from_str(text).map_err(|e| format!("not Kiro's token JSON: {e}"))?;
        let auth_method = match file.auth_method.as_deref() {
            Some(m) if m.eq_ignore_ascii_case("idc") => AuthMethod::Idc,
            _ => AuthMethod::Social,
        };
        Ok(Token {
            access_token: Secret::new(file.access_token),
            refresh_token: file.refresh_token.map(Secret::new),
            expires_at: file.expires_at,
            profile_arn: file.profile_arn,
            auth_method,
        })
    }

    /// The `profileArn` to send: social logins need it, IdC ones must not send it.
    pub fn profile_arn_for_requests(&self) -> Option<&str> {
        match self.auth_method {
            AuthMethod::Social => self.profile_arn.as_deref(),
            AuthMethod::Idc => None,
        }
    }
}

/// Where a provider gets an account's current token. Reading never waits on a refresh.
pub trait TokenSource: Send + Sync {
    fn token(&self, account: &str) -> Result<Arc<Token>, CredentialsError>;
}

/// Tokens read once from `<dir>/<account>.json` when the provider is built (and again on a
/// config reload), never per request.
pub struct FileStore {
    dir: PathBuf,
    tokens: HashMap<String, Result<Arc<Token>, String>>,
}

impl FileStore {
    pub fn load(dir: &Path, accounts: &[String]) -> FileStore {
        let tokens = accounts
            .iter()
            .map(|account| {
                (
                    account.clone(),
                    read_token(&dir.join(format!("{account}.json"))),
                )
            })
            .collect();
        FileStore {
            dir: dir.to_path_buf(),
            tokens,
        }
    }

    fn path(&self, account: &str) -> PathBuf {
        self.dir.join(format!("{account}.json"))
    }
}

fn read_token(path: &Path) -> Result<Arc<Token>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    if readable_by_others(path) {
        tracing::warn!(
            "{} holds a CodeWhisperer token and is readable by group or others: run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    Token::from_json(&text).map(Arc::new)
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

impl TokenSource for FileStore {
    fn token(&self, account: &str) -> Result<Arc<Token>, CredentialsError> {
        match self.tokens.get(account) {
            Some(Ok(token)) => Ok(token.clone()),
            Some(Err(detail))
                if detail.contains("No such file") || detail.contains("os error 2") =>
            {
                Err(CredentialsError::Missing {
                    account: account.to_string(),
                    path: self.path(account),
                })
            }
            Some(Err(detail)) => Err(CredentialsError::Unreadable {
                account: account.to_string(),
                path: self.path(account),
                detail: detail.clone(),
            }),
            None => Err(CredentialsError::Missing {
                account: account.to_string(),
                path: self.path(account),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kiro_tokens_and_knows_who_needs_a_profile_arn() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("work.json"),
            r#"{"accessToken":"aoa-secret","refreshToken":"aor-secret","expiresAt":"2026-11-27T12:00:00Z","profileArn":"arn:aws:codewhisperer:us-east-1:1:profile/X","authMethod":"social","provider":"Github"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("corp.json"),
            r#"{"accessToken":"t","authMethod":"IdC","profileArn":"arn"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("broken.json"), "{").unwrap();
        let accounts = ["work", "corp", "broken", "absent"].map(String::from);
        let store = FileStore::load(dir.path(), &accounts);
        let work = store.token("work").unwrap();
        assert_eq!(work.access_token.expose(), "aoa-secret");
        assert!(work.profile_arn_for_requests().is_some());
        assert!(
            !format!("{work:?}").contains("aoa-secret"),
            "tokens never print"
        );
        assert_eq!(
            store.token("corp").unwrap().profile_arn_for_requests(),
            None
        );
        let broken = store.token("broken").unwrap_err().to_string();
        assert!(broken.contains("not Kiro's token JSON"), "{broken}");
        let absent = store.token("absent").unwrap_err().to_string();
        assert!(absent.contains("ccr token import absent"), "{absent}");
    }
}
