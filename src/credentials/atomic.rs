//! Replacing a file atomically, and holding a lock file for a bounded time. Both are shared
//! by the token files, the account index and the per-account refresh locks, which `ccr
//! serve` and any number of `ccr token` processes touch at once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A temporary name beside `path`, unique across processes (the pid) and within one (a
/// counter): two writers of the same file never write into each other's temporary file.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy());
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Writes `bytes` to a fresh temporary file beside `path` (mode 0600 when `private`), syncs
/// it and renames it over `path`, so readers see the old content or the new, never half.
pub(crate) fn replace_file(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    let temp = temp_path(path);
    let written = write_new(&temp, bytes, private).and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        // Leave no half-written file behind; it may hold a secret.
        let _ = std::fs::remove_file(&temp);
    }
    written
}

fn write_new(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    // `create_new`: a leftover of a crashed process with a recycled pid is an error, not
    // a file to write into.
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Opens (creating it and its directory) `path` and takes an exclusive advisory lock on it,
/// waiting at most `patience`. `Ok(None)` means someone else held it all that time.
pub(crate) fn lock_file(path: &Path, patience: Duration) -> std::io::Result<Option<std::fs::File>> {
    let file = open_lock_file(path)?;
    let deadline = Instant::now() + patience;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

pub(crate) fn open_lock_file(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_unique_hidden_and_beside_the_file() {
        let path = Path::new("dir/accounts.json");
        let (a, b) = (temp_path(path), temp_path(path));
        assert_ne!(a, b);
        assert_eq!(a.parent(), path.parent());
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with(".accounts.json.") && name.ends_with(".tmp"),
            "{name}"
        );
        assert!(name.contains(&std::process::id().to_string()), "{name}");
    }

    #[test]
    fn concurrent_replacements_each_land_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("work.json");
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let text = format!("{i}").repeat(10_000);
                    for _ in 0..20 {
                        replace_file(&path, text.as_bytes(), true).unwrap();
                    }
                })
            })
            .collect();
        writers.into_iter().for_each(|w| w.join().unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 10_000);
        assert!(text.chars().all(|c| c == text.chars().next().unwrap()));
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_held_lock_file_is_waited_for_a_bounded_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks/x.lock");
        let held = lock_file(&path, Duration::ZERO).unwrap().expect("free");
        assert!(
            lock_file(&path, Duration::from_millis(50))
                .unwrap()
                .is_none()
        );
        drop(held);
        assert!(lock_file(&path, Duration::ZERO).unwrap().is_some());
    }
}
