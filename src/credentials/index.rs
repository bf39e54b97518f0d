//! The non-secret index of accounts in the data directory: a keyring cannot list its
//! entries, and `ccr token list` should not need to unlock it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{CredentialsError, Token};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountEntry {
    pub auth_method: String,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub last_refresh: Option<String>,
    /// `ok`, or why the account cannot be used (a rejected refresh token).
    pub status: String,
    /// Which store holds the token (`keyring` or `file`); absent in indexes written before
    /// ccr recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

impl AccountEntry {
    pub fn for_token(token: &Token, store: &str) -> Self {
        AccountEntry {
            auth_method: token.auth_method.as_str().to_string(),
            expires_at: token.expires_at.clone(),
            last_refresh: None,
            status: "ok".into(),
            store: Some(store.to_string()),
        }
    }

    /// Whether `store` holds this account (an entry that does not say may be in either).
    pub fn is_in(&self, store: &str) -> bool {
        self.store.as_deref().is_none_or(|s| s == store)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Index {
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountEntry>,
}

impl Index {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("accounts.json")
    }

    pub fn load(data_dir: &Path) -> Result<Index, CredentialsError> {
        let path = Index::path(data_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| CredentialsError::Unreadable {
                account: "(index)".into(),
                place: path.display().to_string(),
                detail: format!("{e}: fix or delete the file, then import the accounts again"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(CredentialsError::Unreadable {
                account: "(index)".into(),
                place: path.display().to_string(),
                detail: e.to_string(),
            }),
        }
    }

    pub fn save(&self, data_dir: &Path) -> Result<(), CredentialsError> {
        let path = Index::path(data_dir);
        std::fs::create_dir_all(data_dir).map_err(|e| unwritable(&path, e))?;
        let text = serde_json::to_string_pretty(self).expect("the index serializes");
        super::atomic::replace_file(&path, text.as_bytes(), false).map_err(|e| unwritable(&path, e))
    }

    /// Loads the index, lets `change` edit it and saves it if `change` says it changed
    /// something, all under `<data dir>/accounts.json.lock`: `ccr serve` and `ccr token`
    /// commands update it concurrently, and a load-modify-save without the lock would lose
    /// one of two updates.
    pub fn update(
        data_dir: &Path,
        change: impl FnOnce(&mut Index) -> bool,
    ) -> Result<bool, CredentialsError> {
        let lock_path = data_dir.join("accounts.json.lock");
        let _lock = match super::atomic::lock_file(&lock_path, INDEX_LOCK_PATIENCE) {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                let why = format!(
                    "another ccr process held it for {} s",
                    INDEX_LOCK_PATIENCE.as_secs()
                );
                return Err(unwritable(&lock_path, why));
            }
            Err(e) => return Err(unwritable(&lock_path, e)),
        };
        let mut index = Index::load(data_dir)?;
        let changed = change(&mut index);
        if changed {
            index.save(data_dir)?;
        }
        Ok(changed)
    }
}

/// Index updates are a read and a small write: anyone holding the lock longer is stuck.
const INDEX_LOCK_PATIENCE: Duration = Duration::from_secs(10);

fn unwritable(path: &Path, detail: impl std::fmt::Display) -> CredentialsError {
    CredentialsError::Unwritable {
        account: "(index)".into(),
        place: path.display().to_string(),
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_round_trips_and_holds_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Index::load(dir.path()).unwrap().accounts.is_empty());
        let token = Token::from_json(r#"{"accessToken":"sekrit","refreshToken":"sekrit2","expiresAt":"2026-01-01T00:00:00Z"}"#).unwrap();
        let mut index = Index::default();
        index
            .accounts
            .insert("work".into(), AccountEntry::for_token(&token, "file"));
        index.save(dir.path()).unwrap();
        let text = std::fs::read_to_string(Index::path(dir.path())).unwrap();
        assert!(!text.contains("sekrit"));
        assert_eq!(
            Index::load(dir.path()).unwrap().accounts["work"]
                .expires_at
                .as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
    }

    #[test]
    fn concurrent_updates_are_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let token = Token::from_json(r#"{"accessToken":"a"}"#).unwrap();
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let (dir, token) = (dir.path().to_path_buf(), token.clone());
                std::thread::spawn(move || {
                    Index::update(&dir, |index| {
                        let entry = AccountEntry::for_token(&token, "file");
                        index.accounts.insert(format!("account-{i}"), entry);
                        true
                    })
                    .unwrap();
                })
            })
            .collect();
        writers.into_iter().for_each(|w| w.join().unwrap());
        assert_eq!(Index::load(dir.path()).unwrap().accounts.len(), 8);
    }
}
