//! The OpenAI-compatible provider (DeepSeek, OpenRouter, Groq, Ollama, vLLM, llama.cpp…):
//! converts the Messages request to Chat Completions and the streamed answer back to
//! Anthropic events as it arrives.

pub mod request;
pub mod stream;

use futures_util::future::BoxFuture;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::{Answered, BuildError, Call, Provider, ProviderError, Reply, ReplyBody, Transport};
use crate::anthropic::ApiError;
use crate::config::OpenAiConfig;
use crate::failure::Failure;

pub struct OpenAiProvider {
    name: String,
    transport: Transport,
    /// Authorization and the configured extra headers, built once.
    headers: HeaderMap,
    config: OpenAiConfig,
}

impl OpenAiProvider {
    pub fn new(name: &str, config: &OpenAiConfig, base_url: url::Url) -> Result<Self, BuildError> {
        let mut url = base_url;
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
            transport: Transport::new(
                name,
                url,
                config.timeouts,
                config.key().into_iter().cloned().collect(),
            )?,
            headers,
            config: config.clone(),
        })
    }

    async fn send_call(&self, call: Call<'_>) -> Result<Reply, ProviderError> {
        // The typed body lives only for the conversion, not while the upstream answers.
        let upstream_body = {
            let body = call
                .request
                .typed()
                .map_err(|e| super::malformed(&self.name, &e))?;
            request::to_openai(&body, call.model, &self.config.model(call.model))
                .map_err(|e| ProviderError::conversion(&self.name, e.to_string()))?
        };
        let request = self
            .transport
            .post()
            .headers(self.headers.clone())
            .body(upstream_body);
        match self.transport.send(&self.name, request).await? {
            Answered::Success {
                status,
                headers,
                body,
                timing,
            } => {
                let converter = stream::Converter::new(
                    &self.name,
                    call.request.model(),
                    call.request.input_estimate(),
                );
                Ok(Reply {
                    status,
                    headers: super::rate_limit_headers(&headers),
                    body: ReplyBody::Events(super::converted_events(body, converter, timing)),
                })
            }
            Answered::Refused {
                status,
                headers,
                body,
            } => {
                let headers = super::rate_limit_headers(&headers);
                let error = self.status_error(status, &body);
                let retry_after = super::retry_after(&headers);
                let text = String::from_utf8_lossy(&body);
                let failure = Failure::of_upstream_status(status, retry_after, &text, false);
                Err(ProviderError::api(&self.name, headers, error, failure))
            }
        }
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
