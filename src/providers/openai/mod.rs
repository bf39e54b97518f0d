//! The OpenAI-compatible provider (DeepSeek, OpenRouter, Groq, Ollama, vLLM, llama.cpp…):
//! converts the Messages request to Chat Completions and the streamed answer back to
//! Anthropic events as it arrives.

pub mod request;
pub mod stream;

use std::time::Instant;

use futures_util::future::BoxFuture;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::{BuildError, Call, Provider, ProviderError, Reply, ReplyBody, http_client};
use crate::anthropic::ApiError;
use crate::config::{ProviderConfig, UpstreamTimeouts};
use crate::failure::Failure;

pub struct OpenAiProvider {
    name: String,
    url: url::Url,
    client: reqwest::Client,
    /// Authorization and the configured extra headers, built once.
    headers: HeaderMap,
    config: ProviderConfig,
    timeouts: UpstreamTimeouts,
}

impl OpenAiProvider {
    pub fn new(name: &str, config: &ProviderConfig) -> Result<Self, BuildError> {
        let mut url = config.base_url();
        let path = format!("{}/chat/completions", url.path().trim_end_matches('/'));
        url.set_path(&path);
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        for (header, value) in &config.headers {
            // Validated with the config.
            if let (Ok(header), Ok(value)) = (
                HeaderName::try_from(header.as_str()),
                HeaderValue::try_from(value.0.as_str()),
            ) {
                headers.insert(header, value);
            }
        }
        if let Some(key) = config.key() {
            let mut value =
                HeaderValue::try_from(format!("Bearer {}", key.expose())).map_err(|_| {
                    BuildError::Client {
                        provider: name.to_string(),
                        detail: "api_key is not a valid header value".into(),
                    }
                })?;
            value.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, value);
        }
        Ok(OpenAiProvider {
            name: name.to_string(),
            url,
            client: http_client(name, &config.timeouts)?,
            headers,
            config: config.clone(),
            timeouts: config.timeouts,
        })
    }

    async fn send_call(&self, call: Call<'_>) -> Result<Reply, ProviderError> {
        let started = Instant::now();
        let first_byte_deadline = started + self.timeouts.first_byte.0;
        let body = call
            .request
            .typed()
            .map_err(|e| super::malformed(&self.name, e))?;
        let upstream_body = request::to_openai(body, call.model, &self.config.model(call.model))
            .map_err(|e| ProviderError::conversion(&self.name, e.to_string()))?;
        let sent = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(upstream_body)
            .send();
        let response = tokio::time::timeout_at(first_byte_deadline.into(), sent)
            .await
            .map_err(|_| {
                super::timeout_error(&self.name, &self.url, "answer", self.timeouts.first_byte.0)
            })?
            .map_err(|e| super::request_error(&self.name, &self.url, e, self.timeouts.connect.0))?;
        let status = response.status();
        let headers = super::rate_limit_headers(response.headers());
        if !status.is_success() {
            let body = tokio::time::timeout_at(first_byte_deadline.into(), response.bytes())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            let error = self.status_error(status, &body);
            let retry_after = super::retry_after(&headers);
            let text = String::from_utf8_lossy(&body);
            let failure = Failure::of_upstream_status(status, retry_after, &text, false);
            return Err(ProviderError::api(&self.name, headers, error, failure));
        }
        let bytes = super::response_body(
            response,
            &self.name,
            &self.url,
            first_byte_deadline,
            self.timeouts.idle.0,
        );
        let converter = stream::Converter::new(
            &self.name,
            call.request.model(),
            call.request.input_estimate(),
        );
        let events = super::converted_events(bytes, converter);
        Ok(Reply {
            status,
            headers,
            body: ReplyBody::Events(events),
        })
    }

    /// An upstream error status as the Anthropic error a client understands, keeping the
    /// upstream's own message.
    fn status_error(&self, status: http::StatusCode, body: &[u8]) -> ApiError {
        let upstream_message = serde_json::from_slice::<stream::ErrorBody>(body)
            .ok()
            .and_then(|b| b.error.message)
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&body[..body.len().min(300)])
                    .trim()
                    .to_string()
            });
        let kind = super::error_type_for_status(status);
        let hint = match status.as_u16() {
            401 | 403 => " (check the provider's api_key)",
            _ => "",
        };
        ApiError::new(
            kind,
            format!(
                "{} answered {}: {upstream_message}{hint}",
                self.name,
                status.as_u16()
            ),
        )
        .with_status(status)
    }
}

impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn send<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Reply, ProviderError>> {
        Box::pin(self.send_call(call))
    }
}
