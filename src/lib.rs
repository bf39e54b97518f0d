//! ccr: a local router that lets Anthropic Messages API clients use other model providers.
//! The core library; the `ccr` binary in `commands/` is a thin CLI over it.

pub mod admin;
pub mod anthropic;
pub mod background;
pub mod config;
pub mod credentials;
pub mod deadline;
pub mod failure;
pub mod failures;
pub mod http_client;
pub mod launch;
pub mod paths;
pub mod probe;
pub mod providers;
pub mod record;
pub mod routing;
pub mod secret;
pub mod server;
pub mod stats;
pub mod statusline;
