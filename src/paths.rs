//! Where ccr's files live by default: the config file and the data directory, from the
//! platform's conventions (`directories`). A leaf module.

use std::path::{Path, PathBuf};

/// The config file path used without `--config` / `CCR_CONFIG`: the platform config
/// directory's `ccr/config.yaml`.
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "ccr").map(|d| d.config_dir().join("config.yaml"))
}

/// The data directory: the override (`--data-dir`, `CCR_DATA_DIR`), else the platform data
/// directory's `ccr/`.
pub fn data_dir(env_override: Option<&Path>) -> Option<PathBuf> {
    env_override.map(Path::to_path_buf).or_else(|| {
        directories::ProjectDirs::from("", "", "ccr").map(|d| d.data_dir().to_path_buf())
    })
}
