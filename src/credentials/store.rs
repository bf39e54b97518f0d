//! Where tokens are kept: the OS keyring (one entry per account, service `ccr`, user
//! `codewhisperer:<name>`) or, chosen explicitly, a 0600 JSON file per account.

use std::path::{Path, PathBuf};

use super::{CredentialsError, Token};

/// A place tokens live. Calls may block (a keyring talks to another process): async code
/// calls them from `spawn_blocking`.
pub trait Store: Send + Sync {
    fn load(&self, account: &str) -> Result<Option<Token>, CredentialsError>;
    fn save(&self, account: &str, token: &Token) -> Result<(), CredentialsError>;
    /// Returns whether there was an entry to remove.
    fn remove(&self, account: &str) -> Result<bool, CredentialsError>;
    /// Where the tokens are, for messages.
    fn describe(&self) -> String;
    /// `keyring` or `file`: which store the index says holds an account.
    fn kind(&self) -> &'static str;
}

/// `<dir>/<account>.json`, created with mode 0600 and replaced atomically.
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    pub fn new(dir: &Path) -> Self {
        FileStore {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self, account: &str) -> PathBuf {
        self.dir.join(format!("{account}.json"))
    }

    fn unwritable(&self, account: &str, detail: impl std::fmt::Display) -> CredentialsError {
        CredentialsError::Unwritable {
            account: account.to_string(),
            place: self.path(account).display().to_string(),
            detail: detail.to_string(),
        }
    }
}

impl Store for FileStore {
    fn load(&self, account: &str) -> Result<Option<Token>, CredentialsError> {
        let path = self.path(account);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CredentialsError::Unreadable {
                    account: account.to_string(),
                    place: path.display().to_string(),
                    detail: e.to_string(),
                });
            }
        };
        if readable_by_others(&path) {
            tracing::warn!(
                "{} holds a CodeWhisperer token and is readable by group or others: run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
        Token::from_json(&text)
            .map(Some)
            .map_err(|detail| CredentialsError::Unreadable {
                account: account.to_string(),
                place: path.display().to_string(),
                detail,
            })
    }

    fn save(&self, account: &str, token: &Token) -> Result<(), CredentialsError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.unwritable(account, e))?;
        super::atomic::replace_file(&self.path(account), token.to_json().as_bytes(), true)
            .map_err(|e| self.unwritable(account, e))
    }

    fn remove(&self, account: &str) -> Result<bool, CredentialsError> {
        match std::fs::remove_file(self.path(account)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.unwritable(account, e)),
        }
    }

    fn describe(&self) -> String {
        format!("files in {}", self.dir.display())
    }

    fn kind(&self) -> &'static str {
        "file"
    }
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

/// The OS keyring through the `keyring` crate, with the platform's native store compiled in
/// (see Cargo.toml: no feature, no build, rather than keyring's silent in-memory mock).
pub struct KeyringStore;

const SERVICE: &str = "ccr";

impl KeyringStore {
    fn entry(account: &str) -> Result<keyring::Entry, CredentialsError> {
        keyring::Entry::new(SERVICE, &format!("codewhisperer:{account}")).map_err(keyring_error)
    }
}

fn keyring_error(error: keyring::Error) -> CredentialsError {
    CredentialsError::NoKeyring {
        detail: error.to_string(),
    }
}

impl Store for KeyringStore {
    fn load(&self, account: &str) -> Result<Option<Token>, CredentialsError> {
        match KeyringStore::entry(account)?.get_password() {
            Ok(text) => {
                Token::from_json(&text)
                    .map(Some)
                    .map_err(|detail| CredentialsError::Unreadable {
                        account: account.to_string(),
                        place: self.describe(),
                        detail,
                    })
            }
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(error) => Err(keyring_error(error)),
        }
    }

    fn save(&self, account: &str, token: &Token) -> Result<(), CredentialsError> {
        KeyringStore::entry(account)?
            .set_password(&token.to_json())
            .map_err(keyring_error)
    }

    fn remove(&self, account: &str) -> Result<bool, CredentialsError> {
        match KeyringStore::entry(account)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(error) => Err(keyring_error(error)),
        }
    }

    fn describe(&self) -> String {
        "the OS keyring (service `ccr`)".into()
    }

    fn kind(&self) -> &'static str {
        "keyring"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_store_writes_private_files_and_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(&dir.path().join("credentials"));
        assert!(store.load("work").unwrap().is_none());
        let token =
            Token::from_json(r#"{"accessToken":"a1","refreshToken":"r1","authMethod":"social"}"#)
                .unwrap();
        store.save("work", &token).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path("work"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            store.load("work").unwrap().unwrap().access_token.expose(),
            "a1"
        );
        assert!(store.remove("work").unwrap());
        assert!(!store.remove("work").unwrap());
    }
}
