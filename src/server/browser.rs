//! The defence of a local server against the web pages its user opens: any page can send
//! requests to 127.0.0.1, so ccr refuses what only a browser would send — a foreign
//! `Origin`, a `Host` that is not this server's (DNS rebinding), a body that is not JSON.
//! Claude Code, the SDKs and curl send none of these.

use http::header::{self, HeaderMap};
use http::{Method, StatusCode};

use crate::anthropic::{ApiError, ErrorType};

/// What a request must look like to be served.
pub(crate) struct BrowserPolicy {
    /// Origins allowed beside the server's own (`server.allowed_origins`).
    pub allowed_origins: Vec<String>,
    /// Hosts allowed beside loopback names and the configured host (`server.allowed_hosts`).
    pub allowed_hosts: Vec<String>,
    /// `server.host`, as configured.
    pub configured_host: String,
    /// A client key is set: a page cannot use the server without it, and a team server
    /// behind a load balancer sees any `Host`.
    pub keyed: bool,
}

impl BrowserPolicy {
    /// Why the request is refused, if it is.
    pub fn refusal(&self, method: &Method, headers: &HeaderMap) -> Option<ApiError> {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            let own = !host.is_empty()
                && (origin == format!("http://{host}") || origin == format!("https://{host}"));
            let allowed = self.allowed_origins.iter().any(|o| o == origin);
            if !own && !allowed {
                return Some(forbidden(format!(
                    "requests from the web page at `{}` are refused: add its origin to `server.allowed_origins` to allow it",
                    shortened(origin)
                )));
            }
        }
        if !self.keyed && !self.host_is_ours(host) {
            return Some(forbidden(format!(
                "`Host: {}` is not this server: use 127.0.0.1 or localhost, or add it to `server.allowed_hosts`",
                shortened(host)
            )));
        }
        if method == Method::POST && !is_json(headers) {
            return Some(
                ApiError::new(
                    ErrorType::InvalidRequest,
                    "request bodies must be JSON: send `Content-Type: application/json`",
                )
                .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            );
        }
        None
    }

    fn host_is_ours(&self, host: &str) -> bool {
        let name = host_name(host);
        name.is_empty()
            || crate::config::host_is_loopback(name) == Some(true)
            || name.eq_ignore_ascii_case(host_name(&self.configured_host))
            || self
                .allowed_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(host) || h.eq_ignore_ascii_case(name))
    }
}

/// The host part of a `Host` value: `[::1]:3456` → `::1`, `localhost:3456` → `localhost`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// A missing `Content-Type` is accepted (HTTP/1.1 clients such as `curl --data-binary`
/// with a header file); a cross-site browser request carries one, and an `Origin` anyway.
fn is_json(headers: &HeaderMap) -> bool {
    match headers.get(header::CONTENT_TYPE) {
        None => true,
        Some(value) => value
            .to_str()
            .map(|v| {
                let essence = v.split(';').next().unwrap_or("").trim();
                essence.eq_ignore_ascii_case("application/json")
            })
            .unwrap_or(false),
    }
}

fn forbidden(message: String) -> ApiError {
    ApiError::new(ErrorType::Permission, message).with_status(StatusCode::FORBIDDEN)
}

/// What a refusal repeats of a client's value: enough to recognise it, never a megabyte.
fn shortened(value: &str) -> String {
    const SHOWN: usize = 100;
    match value.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(keyed: bool) -> BrowserPolicy {
        BrowserPolicy {
            allowed_origins: vec!["https://app.example".into()],
            allowed_hosts: vec!["ccr.internal".into()],
            configured_host: "127.0.0.1".into(),
            keyed,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn what_a_browser_sends_is_refused_and_what_clients_send_is_served() {
        let open = policy(false);
        let post = Method::POST;
        let json = ("content-type", "application/json");
        let ok = |h: &[(&'static str, &str)]| open.refusal(&post, &headers(h)).is_none();
        assert!(ok(&[("host", "127.0.0.1:3456"), json]));
        assert!(ok(&[("host", "localhost:3456"), json]));
        assert!(ok(&[("host", "[::1]:3456"), json]));
        assert!(ok(&[("host", "ccr.internal:3456"), json]));
        assert!(ok(&[
            ("host", "127.0.0.1:3456"),
            ("origin", "http://127.0.0.1:3456"),
            json
        ]));
        assert!(ok(&[
            ("host", "127.0.0.1:3456"),
            ("origin", "https://app.example"),
            json
        ]));
        assert!(ok(&[
            ("host", "127.0.0.1:3456"),
            ("content-type", "application/json; charset=utf-8")
        ]));
        let refused =
            |h: &[(&'static str, &str)]| open.refusal(&post, &headers(h)).unwrap().status.as_u16();
        assert_eq!(
            refused(&[
                ("host", "127.0.0.1:3456"),
                ("origin", "http://evil.test"),
                json
            ]),
            403
        );
        assert_eq!(
            refused(&[
                ("host", "evil.test:3456"),
                ("origin", "http://evil.test:3456"),
                json
            ]),
            403
        );
        assert_eq!(refused(&[("host", "evil.test:3456"), json]), 403);
        assert_eq!(
            refused(&[("host", "127.0.0.1:3456"), ("content-type", "text/plain")]),
            415
        );
        // With a key, any Host (a load balancer's) is fine; a foreign Origin still is not.
        let keyed = policy(true);
        assert!(
            keyed
                .refusal(&post, &headers(&[("host", "ccr.example.com"), json]))
                .is_none()
        );
        assert!(
            keyed
                .refusal(
                    &post,
                    &headers(&[
                        ("host", "ccr.example.com"),
                        ("origin", "http://evil.test"),
                        json
                    ])
                )
                .is_some()
        );
    }
}
