//! Client authentication against ccr's own `server.api_key`.

use http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// True when the request carries the expected key as `x-api-key` or `Authorization: Bearer`.
/// The comparison takes the same time wherever the keys differ.
pub(crate) fn presented_key_matches(headers: &HeaderMap, expected: &Secret) -> bool {
    let expected = expected.expose().as_bytes();
    let x_api_key = headers.get("x-api-key").map(|v| v.as_bytes());
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    [x_api_key, bearer]
        .into_iter()
        .flatten()
        .any(|presented| bool::from(presented.ct_eq(expected)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_either_header() {
        let key = Secret::new("k-123");
        let mut h = HeaderMap::new();
        assert!(!presented_key_matches(&h, &key));
        h.insert("x-api-key", "k-124".parse().unwrap());
        assert!(!presented_key_matches(&h, &key));
        h.insert("authorization", "Bearer k-123".parse().unwrap());
        assert!(presented_key_matches(&h, &key));
        h.remove("authorization");
        h.insert("x-api-key", "k-123".parse().unwrap());
        assert!(presented_key_matches(&h, &key));
    }
}
