//! The Anthropic Messages API as ccr speaks it to clients: error bodies, the request fields
//! ccr reads, usage read from a response on the side, and the local token estimate.

pub mod error;
pub mod estimate;
pub mod events;
pub mod request;
pub mod types;
pub mod usage;

pub use error::{ApiError, ErrorType};
pub use request::{MessagesRequest, RequestError};
pub use usage::{Usage, UsageScanner};
