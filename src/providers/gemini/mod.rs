//! Google's Gemini API (https://ai.google.dev/api/generate-content): converts the Messages
//! request to `generateContent` and the answer back to Anthropic events as it arrives. A
//! streaming client's request goes to `streamGenerateContent?alt=sse`, another's to
//! `generateContent`, whose one response is converted the same way and folded.

pub mod request;
mod schema;
mod signature;
pub mod stream;

use futures_util::future::BoxFuture;
use http::StatusCode;
use http::header::{HeaderMap, HeaderValue};

use super::{Answered, BuildError, Call, Provider, ProviderError, Reply, ReplyBody, Transport};
use crate::anthropic::ApiError;
use crate::config::GeminiConfig;
use crate::failure::Failure;
use request::ConvertError;
use stream::GoogleError;

pub struct GeminiProvider {
    name: String,
    transport: Transport,
    /// Where `v1beta/models/…` begins.
    base_url: url::Url,
    /// The content type and `x-goog-api-key`, built once.
    headers: HeaderMap,
    config: GeminiConfig,
}

impl GeminiProvider {
    pub fn new(name: &str, config: &GeminiConfig, base_url: url::Url) -> Result<Self, BuildError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(key) = config.key() {
            // In a header, never `?key=` in the URL: URLs end up in logs and error messages.
            let mut value =
                HeaderValue::try_from(key.expose()).map_err(|_| BuildError::Client {
                    provider: name.to_string(),
                    detail: "api_key is not a valid header value".into(),
                })?;
            value.set_sensitive(true);
            headers.insert("x-goog-api-key", value);
        }
        Ok(GeminiProvider {
            name: name.to_string(),
            transport: Transport::new(
                name,
                base_url.clone(),
                config.timeouts,
                config.key().into_iter().cloned().collect(),
            )?,
            base_url,
            headers,
            config: config.clone(),
        })
    }

    async fn send_call(&self, call: Call<'_>) -> Result<Reply, ProviderError> {
        let conversion = |e: ConvertError| ProviderError::conversion(&self.name, e.to_string());
        let streaming = call.request.stream();
        // The typed body lives only for the conversion, not while the upstream answers.
        let upstream_body = {
            let body = call
                .request
                .typed()
                .map_err(|e| super::malformed(&self.name, &e))?;
            request::to_gemini(&body, call.model, &self.config.model(call.model))
                .map_err(conversion)?
        };
        let url = endpoint(&self.base_url, call.model, streaming).map_err(conversion)?;
        let request = self
            .transport
            .post_to(&url)
            .headers(self.headers.clone())
            .body(upstream_body);
        match self.transport.send_to(&self.name, &url, request).await? {
            Answered::Success {
                status,
                headers,
                body,
                timing,
            } => {
                let (model, estimate) = (call.request.model(), call.request.input_estimate());
                let converter = match streaming {
                    true => stream::Converter::streaming(&self.name, model, estimate),
                    false => stream::Converter::whole(&self.name, model, estimate),
                };
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
            } => Err(self.refused(status, &headers, &body)),
        }
    }

    /// An error status as the Anthropic error a client understands, keeping Gemini's own
    /// message, and typed by what Gemini meant (a bad key is a 400 on its wire).
    fn refused(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ProviderError {
        let error = GoogleError::of_body(body).unwrap_or_default();
        let judged = error.judged_status(Some(status));
        let retry_after = super::retry_after(headers).or_else(|| error.retry_delay());
        let message = error.message.clone().unwrap_or_else(|| {
            String::from_utf8_lossy(&body[..body.len().min(300)])
                .trim()
                .to_string()
        });
        let failure = Failure::of_upstream_status(judged, retry_after, &message, false);
        let mut headers = super::rate_limit_headers(headers);
        // Gemini tells its delay only in the body; the client reads it from the header.
        if let Some(after) =
            retry_after.filter(|_| !headers.contains_key(http::header::RETRY_AFTER))
        {
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        let hint = match judged.as_u16() {
            401 | 403 => " (check the provider's api_key)",
            _ => "",
        };
        let error = ApiError::new(
            super::error_type_for_status(judged),
            format!(
                "{} answered {}: {message}{hint}",
                self.name,
                status.as_u16()
            ),
        )
        .with_status(judged);
        ProviderError::api(&self.name, headers, error, failure)
    }
}

/// `{base}/v1beta/models/{model}:streamGenerateContent?alt=sse`, or `…:generateContent`.
/// The model comes from the route or the client's own `provider/model`, so it is checked to
/// be a plain name: nothing in it may change the path or add a query.
fn endpoint(base: &url::Url, model: &str, streaming: bool) -> Result<url::Url, ConvertError> {
    let name = model.strip_prefix("models/").unwrap_or(model);
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && !name.starts_with('.');
    if !plain {
        return Err(ConvertError::ModelName {
            model: model.to_string(),
        });
    }
    let method = match streaming {
        true => "streamGenerateContent",
        false => "generateContent",
    };
    let mut url = base.clone();
    let path = format!(
        "{}/v1beta/models/{name}:{method}",
        url.path().trim_end_matches('/')
    );
    url.set_path(&path);
    url.set_query(streaming.then_some("alt=sse"));
    Ok(url)
}

impl Provider for GeminiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn send<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Reply, ProviderError>> {
        Box::pin(self.send_call(call))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_names_the_model_and_the_method() {
        let base = url::Url::parse("https://generativelanguage.googleapis.com").unwrap();
        let url = endpoint(&base, "gemini-2.5-pro", true).unwrap();
        assert_eq!(
            url.as_str(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
        );
        let url = endpoint(&base, "models/gemini-2.0-flash", false).unwrap();
        assert_eq!(
            url.as_str(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent"
        );
        let proxied = url::Url::parse("http://127.0.0.1:9/google/").unwrap();
        let url = endpoint(&proxied, "gemini-3-pro-preview", true).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/google/v1beta/models/gemini-3-pro-preview:streamGenerateContent?alt=sse"
        );
    }

    #[test]
    fn a_model_name_cannot_change_the_path_or_the_query() {
        let base = url::Url::parse("https://generativelanguage.googleapis.com").unwrap();
        for model in [
            "", "../x", "a/b", "m?key=x", "m#f", "m:x", "..", "m x", "m%2F",
        ] {
            assert!(
                matches!(
                    endpoint(&base, model, true),
                    Err(ConvertError::ModelName { .. })
                ),
                "{model}"
            );
        }
    }
}
