//! A private Secret Service for keyring tests: its own `dbus-daemon` and an unlocked
//! `gnome-keyring-daemon` under a temporary HOME. Only the `ccr` processes a test runs get
//! its address; the user's own keyring is never touched.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SecretService {
    pub address: String,
    dbus: Child,
    keyring: Child,
    _home: tempfile::TempDir,
}

const PACKAGES: &str = "the keyring tests need a Secret Service: install the Debian packages `dbus` and `gnome-keyring` (bash .ci/test does)";

impl SecretService {
    pub fn start() -> SecretService {
        let home = tempfile::tempdir().unwrap();
        let runtime = home.path().join("run");
        std::fs::create_dir_all(&runtime).unwrap();
        let mut dbus = Command::new("dbus-daemon")
            .args(["--session", "--print-address=1", "--nofork"])
            .env("HOME", home.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dbus-daemon ({e}): {PACKAGES}"));
        let mut address = String::new();
        BufReader::new(dbus.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        let address = address.trim().to_string();
        assert!(!address.is_empty(), "dbus-daemon printed no address");
        let mut keyring = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env_clear()
            .env("HOME", home.path())
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start gnome-keyring-daemon ({e}): {PACKAGES}"));
        // The login keyring's password, read once from stdin.
        let mut stdin = keyring.stdin.take().unwrap();
        stdin.write_all(b"test-password").unwrap();
        drop(stdin);
        let service = SecretService {
            address,
            dbus,
            keyring,
            _home: home,
        };
        service.wait_for_secrets();
        service
    }

    /// Polls the bus until `org.freedesktop.secrets` has an owner.
    fn wait_for_secrets(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let output = Command::new("dbus-send")
                .args([
                    "--session",
                    "--dest=org.freedesktop.DBus",
                    "--type=method_call",
                    "--print-reply",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.freedesktop.secrets",
                ])
                .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
                .output()
                .unwrap_or_else(|e| panic!("cannot run dbus-send ({e}): {PACKAGES}"));
            if String::from_utf8_lossy(&output.stdout).contains("boolean true") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "org.freedesktop.secrets never appeared on the test bus"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        let _ = self.keyring.kill();
        let _ = self.keyring.wait();
        let _ = self.dbus.kill();
        let _ = self.dbus.wait();
    }
}
