//! The Anthropic Messages API as ccr speaks it to clients: error bodies, the request fields
//! ccr reads, usage read from a response on the side, and the local token estimate.

pub mod builder;
pub mod error;
pub mod estimate;
pub mod events;
pub mod framing;
pub mod ids;
pub mod request;
pub mod sse;
pub mod types;
pub mod usage;

pub use error::{ApiError, ErrorType, Failed};

/// Prefix of the signatures ccr puts on thinking blocks it builds from other providers'
/// reasoning. Anthropic rejects signatures it did not make, so such blocks are removed from
/// a history before it goes to an Anthropic upstream.
pub const CCR_SIGNATURE_PREFIX: &str = "ccr-sig:";
pub use request::{MessagesRequest, RequestError, RoutingFacts};
pub use usage::{Usage, UsageScanner};
