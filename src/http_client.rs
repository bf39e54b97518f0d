//! HTTP client construction, shared by the providers and ccr's own calls (token refresh,
//! the admin commands): one place that installs the TLS provider and sets the socket options.

use std::sync::Once;
use std::time::Duration;

/// The connect timeout of ccr's own calls.
const OWN_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client for {owner}: {detail}")]
pub struct ClientError {
    pub owner: String,
    pub detail: String,
}

/// A pooled client: keep-alive, `TCP_NODELAY`, HTTP/2 where offered, and the connect
/// timeout. Deadlines beyond connecting are applied per call by whoever sends.
pub fn pooled(owner: &str, connect_timeout: Duration) -> Result<reqwest::Client, ClientError> {
    install_tls_provider();
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        // A burst of streams opens as many upstream connections; keeping every one idle
        // afterwards held their buffers for 90 s. 64 serve any steady load here.
        .pool_max_idle_per_host(64)
        .build()
        .map_err(|e| ClientError {
            owner: owner.to_string(),
            detail: e.to_string(),
        })
}

/// A client for ccr's own calls (token refresh, admin requests).
pub fn plain() -> Result<reqwest::Client, ClientError> {
    pooled("ccr", OWN_CONNECT_TIMEOUT)
}

/// A client for this machine's own ccr server (`ccr code`, `ccr statusline`): no proxy
/// from the environment (a corporate proxy cannot reach loopback) and the caller's
/// deadlines, which are short.
pub fn local(connect_timeout: Duration, timeout: Duration) -> Result<reqwest::Client, ClientError> {
    install_tls_provider();
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| ClientError {
            owner: "ccr".to_string(),
            detail: e.to_string(),
        })
}

/// rustls with the `ring` provider, installed once for the process.
fn install_tls_provider() {
    static CRYPTO: Once = Once::new();
    CRYPTO.call_once(|| {
        // Another part of the process may have installed one already; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
