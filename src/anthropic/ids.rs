//! Ids ccr makes for messages and tool calls it builds itself: a per-process random part and
//! a counter, so they are unique without a random draw per id.

use std::hash::{BuildHasher, RandomState};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

static SEED: LazyLock<u64> = LazyLock::new(|| RandomState::new().hash_one(std::process::id()));
static COUNTER: AtomicU64 = AtomicU64::new(1);

fn unique() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}{:08x}", *SEED, n)
}

/// `msg_…`, the id of a message ccr assembled from another provider's answer.
pub fn message_id() -> String {
    format!("msg_ccr{}", unique())
}

/// `toolu_…`, for a tool call whose upstream gave no id.
pub fn tool_use_id() -> String {
    format!("toolu_ccr{}", unique())
}

/// `req_…`, ccr's id for one client request.
pub fn request_id() -> String {
    format!("req_{}", unique())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_and_prefixed() {
        let (a, b) = (super::message_id(), super::message_id());
        assert_ne!(a, b);
        assert!(a.starts_with("msg_") && super::tool_use_id().starts_with("toolu_"));
    }
}
