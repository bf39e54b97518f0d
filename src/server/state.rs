//! What every connection and request of one server shares.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::browser::BrowserPolicy;
use crate::credentials::manager::TokenManager;
use crate::failures::FailureLog;
use crate::record::Sinks;
use crate::routing::{Clock, RouterCell, Sessions};
use crate::secret::Secret;

/// Shared by every connection and request; read-only after start.
pub(crate) struct State {
    /// The failure log's queue, when `failures.enabled`.
    pub(super) failure_log: Option<Arc<FailureLog>>,
    pub(super) failures_dir: std::path::PathBuf,
    pub(super) router: RouterCell,
    /// CodeWhisperer tokens, one manager for the server's life.
    pub(super) tokens: Arc<TokenManager>,
    pub(super) stats: Arc<crate::stats::Stats>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) sessions: Arc<Sessions>,
    pub(super) client_key: Option<Secret>,
    pub(super) body_limit: u64,
    pub(super) body_read_timeout: Duration,
    pub(super) browser: BrowserPolicy,
    pub(super) header_read_timeout: Duration,
    pub(super) idle_timeout: Duration,
    pub(super) ping_interval: Duration,
    pub(super) sinks: Sinks,
    /// Cancelled when shutdown's grace period ends: open streams end with an `error` event.
    pub(super) force_end: CancellationToken,
}
