//! What `ccr token` does to accounts: import a Kiro token, list, remove. The store holds
//! the secrets; the index beside the data directory holds what may be shown.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use super::{AccountEntry, CredentialsError, Index, Store, Token};

/// Kiro's token file, where the IDE writes it.
pub fn default_kiro_token_path() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|d| d.home_dir().join(".aws/sso/cache/kiro-auth-token.json"))
}

/// Reads Kiro's token (and IdC client) file and stores it as account `name`.
pub fn import(
    store: &dyn Store,
    data_dir: &Path,
    from: &Path,
    name: &str,
) -> Result<AccountEntry, CredentialsError> {
    let token = Token::import(from)?;
    store.save(name, &token)?;
    let entry = AccountEntry::for_token(&token, store.kind());
    Index::update(data_dir, |index| {
        index.accounts.insert(name.to_string(), entry.clone());
        true
    })?;
    Ok(entry)
}

/// Removes account `name` from the store and the index; false if it was in neither.
pub fn remove(store: &dyn Store, data_dir: &Path, name: &str) -> Result<bool, CredentialsError> {
    let in_store = store.remove(name)?;
    let in_index = Index::update(data_dir, |index| index.accounts.remove(name).is_some())?;
    Ok(in_store || in_index)
}

/// One account as `ccr token list` shows it: never a token.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub name: String,
    pub auth_method: String,
    pub expires_at: Option<String>,
    /// Seconds until expiry; negative once expired.
    pub expires_in_secs: Option<i64>,
    pub last_refresh: Option<String>,
    pub status: String,
}

/// The accounts the index says `store` holds.
pub fn list(
    store: &dyn Store,
    data_dir: &Path,
    now: SystemTime,
) -> Result<Vec<Listed>, CredentialsError> {
    let index = Index::load(data_dir)?;
    Ok(index
        .accounts
        .into_iter()
        .filter(|(_, entry)| entry.is_in(store.kind()))
        .map(|(name, entry)| Listed {
            expires_in_secs: entry
                .expires_at
                .as_deref()
                .and_then(|at| seconds_until(at, now)),
            name,
            auth_method: entry.auth_method,
            expires_at: entry.expires_at,
            last_refresh: entry.last_refresh,
            status: entry.status,
        })
        .collect())
}

/// Seconds from `now` to an RFC 3339 time (Kiro writes e.g. `2026-11-27T12:00:00.000Z`).
pub fn seconds_until(rfc3339: &str, now: SystemTime) -> Option<i64> {
    let at = humantime::parse_rfc3339_weak(rfc3339.trim_end_matches('Z')).ok()?;
    Some(match at.duration_since(now) {
        Ok(ahead) => ahead.as_secs() as i64,
        Err(behind) => -(behind.duration().as_secs() as i64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::FileStore;
    use std::time::Duration;

    #[test]
    fn import_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let kiro = dir.path().join("kiro-auth-token.json");
        std::fs::write(&kiro, r#"{"accessToken":"aoa-1","refreshToken":"aor-1","expiresAt":"2030-01-01T00:00:00.000Z","authMethod":"social"}"#).unwrap();
        let store = FileStore::new(&dir.path().join("credentials"));
        import(&store, dir.path(), &kiro, "work").unwrap();
        let now = humantime::parse_rfc3339("2029-12-31T23:00:00Z").unwrap();
        let listed = list(&store, dir.path(), now).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].name.as_str(), listed[0].expires_in_secs),
            ("work", Some(3600))
        );
        assert!(!serde_json::to_string(&listed).unwrap().contains("aoa-1"));
        assert!(remove(&store, dir.path(), "work").unwrap());
        assert!(!remove(&store, dir.path(), "work").unwrap());
        assert!(list(&store, dir.path(), now).unwrap().is_empty());
        let later = now + Duration::from_secs(7200);
        assert_eq!(seconds_until("2030-01-01T00:00:00Z", later), Some(-3600));
    }
}
