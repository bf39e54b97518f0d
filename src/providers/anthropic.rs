//! The Anthropic provider: a byte pass-through. The client's body goes upstream unchanged
//! except for `model`; the upstream's bytes come back unchanged as they arrive.

use bytes::Bytes;
use http::StatusCode;

use futures_util::future::BoxFuture;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::transport::ERROR_BODY_LIMIT;
use super::{
    Answer, Answered, BuildError, Call, Provider, ProviderError, Reply, ReplyBody, Transport,
};
use crate::anthropic::ApiError;
use crate::anthropic::UsageScanner;
use crate::config::AnthropicConfig;
use crate::failure::Failure;
use crate::secret::Secret;

pub struct AnthropicProvider {
    name: String,
    transport: Transport,
    key: Option<Secret>,
    drop_beta_flags: Vec<String>,
}

/// Client headers never forwarded as they are: hop-by-hop headers, those reqwest sets itself,
/// credentials (handled on their own) and `Accept-Encoding` (ccr reads the bodies).
const NOT_FORWARDED: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "accept-encoding",
    "x-api-key",
    "authorization",
    "anthropic-beta",
];

/// Upstream response headers a client is given back: the body's type and the upstream's
/// request id, `retry-after` and rate limits.
fn passed_back(upstream: &HeaderMap) -> HeaderMap {
    let mut headers = super::rate_limit_headers(upstream);
    for name in [header::CONTENT_TYPE, header::CACHE_CONTROL] {
        if let Some(value) = upstream.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    headers
}

impl AnthropicProvider {
    pub fn new(
        name: &str,
        config: &AnthropicConfig,
        base_url: url::Url,
    ) -> Result<Self, BuildError> {
        let mut url = base_url;
        let path = format!("{}/v1/messages", url.path().trim_end_matches('/'));
        url.set_path(&path);
        Ok(AnthropicProvider {
            name: name.to_string(),
            transport: Transport::new(
                name,
                url,
                config.timeouts,
                config.key().into_iter().cloned().collect(),
            )?,
            key: config.key().cloned(),
            drop_beta_flags: config.drop_beta_flags.clone(),
        })
    }

    fn upstream_headers(&self, client: &HeaderMap, forward_client_auth: bool) -> HeaderMap {
        let mut out = HeaderMap::with_capacity(client.len() + 1);
        for (name, value) in client {
            if !NOT_FORWARDED.contains(&name.as_str()) && !name.as_str().starts_with("x-ccr-") {
                out.append(name.clone(), value.clone());
            }
        }
        if let Some(key) = &self.key {
            if let Ok(mut value) = HeaderValue::from_str(key.expose()) {
                value.set_sensitive(true);
                out.insert("x-api-key", value);
            }
        } else if forward_client_auth {
            for name in ["x-api-key", "authorization"] {
                for value in client.get_all(name) {
                    out.append(HeaderName::from_static(name), value.clone());
                }
            }
        }
        for value in client.get_all("anthropic-beta") {
            if let Some(value) = self.filter_beta(value) {
                out.append(HeaderName::from_static("anthropic-beta"), value);
            }
        }
        out
    }

    /// Removes the configured flags from one `anthropic-beta` value.
    fn filter_beta(&self, value: &HeaderValue) -> Option<HeaderValue> {
        if self.drop_beta_flags.is_empty() {
            return Some(value.clone());
        }
        let text = value.to_str().ok()?;
        let kept: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|flag| !flag.is_empty() && !self.drop_beta_flags.iter().any(|d| d == flag))
            .collect();
        if kept.is_empty() {
            None
        } else {
            HeaderValue::from_str(&kept.join(",")).ok()
        }
    }

    async fn send_call(&self, call: Call<'_>) -> Result<Reply, ProviderError> {
        let request = self
            .transport
            .post()
            .headers(self.upstream_headers(call.client_headers, call.forward_client_auth))
            .body(call.request.body_for_anthropic(call.model));
        match self.transport.send(&self.name, request).await? {
            Answered::Success {
                status,
                headers,
                body,
                ..
            } => {
                let headers = passed_back(&headers);
                let content_type = headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok());
                let usage = UsageScanner::for_content_type(content_type);
                Ok(Reply {
                    status,
                    headers,
                    body: ReplyBody::Bytes {
                        stream: body,
                        usage,
                    },
                })
            }
            Answered::Refused {
                status,
                headers,
                body,
            } => Err(self.refused(
                status,
                passed_back(&headers),
                body,
                call.forward_client_auth,
            )),
        }
    }

    /// An upstream error status, passed back to the client as sent (unless it is too big to
    /// hold, when ccr describes it).
    fn refused(
        &self,
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        forward_client_auth: bool,
    ) -> ProviderError {
        // The client's own key refused is the client's fault, not this upstream's.
        let client_credential = self.key.is_none() && forward_client_auth;
        let failure = Failure::of_upstream_status(
            status,
            super::retry_after(&headers),
            &String::from_utf8_lossy(&body),
            client_credential,
        );
        if body.len() >= ERROR_BODY_LIMIT {
            let error = ApiError::new(
                super::error_type_for_status(status),
                format!(
                    "{} answered {} with an error body over {ERROR_BODY_LIMIT} bytes; it begins: {}",
                    self.name,
                    status.as_u16(),
                    String::from_utf8_lossy(&body[..300]).trim()
                ),
            )
            .with_status(status);
            return ProviderError::api(&self.name, headers, error, failure);
        }
        ProviderError {
            provider: self.name.clone(),
            failure,
            answer: Answer::Upstream {
                status,
                headers,
                body,
            },
        }
    }
}

impl Provider for AnthropicProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn send<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Reply, ProviderError>> {
        Box::pin(self.send_call(call))
    }
}
