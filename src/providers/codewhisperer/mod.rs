//! The CodeWhisperer (Kiro) provider: converts the Messages request to
//! `generateAssistantResponse` and reads the binary AWS event stream back as Anthropic
//! events. One provider per Kiro account; each is its own routing target (`kiro:work`).

pub mod eventstream;
pub mod request;
pub mod stream;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::StatusCode;
use http::header::{HeaderMap, HeaderValue};

use super::{Answered, BuildError, Call, Provider, ProviderError, Reply, ReplyBody, Transport};
use crate::anthropic::{ApiError, ErrorType};
use crate::config::CodeWhispererConfig;
use crate::credentials::TokenSource;
use crate::failure::{Class, Failure, Retry};

/// Tool descriptions are cut to this many characters (longer ones draw a 400).
const MAX_DESCRIPTION_CHARS: usize = 10_000;

/// Client model names → CodeWhisperer ids known to work; `model_ids` in the config adds
/// to and overrides these.
const KNOWN_MODEL_IDS: &[(&str, &str)] = &[
    ("claude-sonnet-4-20250514", "CLAUDE_SONNET_4_20250514_V1_0"),
    ("claude-sonnet-4-5", "CLAUDE_SONNET_4_5_20250929_V1_0"),
    (
        "claude-sonnet-4-5-20250929",
        "CLAUDE_SONNET_4_5_20250929_V1_0",
    ),
    (
        "claude-3-7-sonnet-20250219",
        "CLAUDE_3_7_SONNET_20250219_V1_0",
    ),
    ("claude-opus-4-5", "claude-opus-4.5"),
    ("claude-haiku-4-5", "claude-haiku-4.5"),
    ("claude-haiku-4-5-20251001", "claude-haiku-4.5"),
];

pub struct CodeWhispererProvider {
    name: String,
    account: String,
    transport: Transport,
    model_ids: BTreeMap<String, String>,
    tokens: Arc<dyn TokenSource>,
}

impl CodeWhispererProvider {
    /// `config` names exactly one account (see `ProviderConfig::per_key`).
    pub fn new(
        name: &str,
        config: &CodeWhispererConfig,
        base_url: url::Url,
        tokens: Arc<dyn TokenSource>,
    ) -> Result<Self, BuildError> {
        let account = config
            .accounts
            .first()
            .cloned()
            .ok_or_else(|| BuildError::Client {
                provider: name.to_string(),
                detail: "a codewhisperer provider needs an account".into(),
            })?;
        let mut url = base_url;
        let path = format!(
            "{}/generateAssistantResponse",
            url.path().trim_end_matches('/')
        );
        url.set_path(&path);
        let mut model_ids: BTreeMap<String, String> = KNOWN_MODEL_IDS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        model_ids.extend(config.model_ids.clone());
        Ok(CodeWhispererProvider {
            name: name.to_string(),
            account,
            transport: Transport::new(name, url, config.timeouts, Vec::new())?,
            model_ids,
            tokens,
        })
    }

    fn label(&self) -> String {
        format!("{}:{}", self.name, self.account)
    }

    /// The CodeWhisperer id for a client model name; an unknown name is sent as it is.
    fn model_id<'a>(&'a self, model: &'a str) -> &'a str {
        self.model_ids.get(model).map_or(model, String::as_str)
    }

    /// Sends with the account's current token. If CodeWhisperer refuses it (401/403), the
    /// token is renewed here — one refresh however many requests saw the same refusal —
    /// and the failure says whether the same target may now succeed: routing retries it
    /// only then, and otherwise moves on and blacklists the account.
    async fn send_call(&self, call: Call<'_>) -> Result<Reply, ProviderError> {
        let body = call
            .request
            .typed()
            .map_err(|e| super::malformed(&self.label(), &e))?;
        let token = self.tokens.token(&self.account).await.map_err(|e| {
            self.refused(
                ErrorType::Authentication,
                StatusCode::UNAUTHORIZED,
                e.to_string(),
                Failure::upstream(Class::Auth),
            )
        })?;
        let conversation_id = uuid_v4();
        let options = request::Options {
            model_id: self.model_id(call.model),
            profile_arn: token.profile_arn_for_requests(),
            conversation_id: &conversation_id,
            max_description_chars: MAX_DESCRIPTION_CHARS,
        };
        let upstream_body = request::to_codewhisperer(&body, &options)
            .map_err(|e| ProviderError::conversion(&self.label(), e.to_string()))?;
        // The typed copy is not kept while the upstream answers (it was a third copy of a
        // large body per stream).
        drop(body);
        match self
            .send_with(call, upstream_body, &conversation_id, &token)
            .await
        {
            Err(mut error) if matches!(error.status().map(|s| s.as_u16()), Some(401 | 403)) => {
                if self.tokens.rejected(&self.account, &token).await.is_ok() {
                    error.failure.retry = Retry::SameTargetNow;
                    error.failure.out_for = Some(Duration::ZERO);
                }
                Err(error)
            }
            other => other,
        }
    }

    async fn send_with(
        &self,
        call: Call<'_>,
        upstream_body: Vec<u8>,
        conversation_id: &str,
        token: &crate::credentials::Token,
    ) -> Result<Reply, ProviderError> {
        let mut authorization =
            HeaderValue::try_from(format!("Bearer {}", token.access_token.expose())).map_err(
                |_| {
                    self.refused(
                        ErrorType::Authentication,
                        StatusCode::UNAUTHORIZED,
                        "the stored token is not a valid header value: re-import it".into(),
                        Failure::upstream(Class::Auth),
                    )
                },
            )?;
        authorization.set_sensitive(true);
        let request = self
            .transport
            .post()
            .header(http::header::AUTHORIZATION, authorization)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/vnd.amazon.eventstream")
            .header("amz-sdk-invocation-id", conversation_id)
            .body(upstream_body);
        let label = self.label();
        match self
            .transport
            .send_with_secret(&label, request, Some(&token.access_token))
            .await?
        {
            Answered::Success {
                headers,
                body,
                timing,
                ..
            } => {
                let converter = stream::Converter::new(
                    &label,
                    call.request.model(),
                    call.request.input_estimate(),
                );
                Ok(Reply {
                    status: StatusCode::OK,
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
                let retry_after = super::retry_after(&headers);
                let text = String::from_utf8_lossy(&body);
                let failure = Failure::of_upstream_status(status, retry_after, &text, false);
                let error = self.status_error(status, &body);
                Err(ProviderError::api(&label, headers, error, failure))
            }
        }
    }

    fn refused(
        &self,
        kind: ErrorType,
        status: StatusCode,
        message: String,
        failure: Failure,
    ) -> ProviderError {
        let error = ApiError::new(kind, format!("{}: {message}", self.label())).with_status(status);
        ProviderError::api(&self.label(), HeaderMap::new(), error, failure)
    }

    /// Upstream error statuses, with what to do about the two that are the user's to fix.
    fn status_error(&self, status: StatusCode, body: &[u8]) -> ApiError {
        let text = String::from_utf8_lossy(&body[..body.len().min(500)])
            .trim()
            .to_string();
        let label = self.label();
        let message = match status.as_u16() {
            403 => format!(
                "{label} answered 403: the account's token is invalid or expired: run `ccr token refresh {}` (or re-import it with `ccr token import {}`) ({text})",
                self.account, self.account
            ),
            400 if text.contains("Improperly formed request") => format!(
                "{label} answered 400 Improperly formed request: CodeWhisperer rejected the shape of the converted request (very large histories and tool descriptions are common causes; try compacting the conversation) ({text})"
            ),
            code => format!("{label} answered {code}: {text}"),
        };
        ApiError::new(super::error_type_for_status(status), message).with_status(status)
    }
}

impl Provider for CodeWhispererProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn send<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Reply, ProviderError>> {
        Box::pin(self.send_call(call))
    }
}

/// A random UUID v4, for `conversationId` and the invocation id.
fn uuid_v4() -> String {
    use std::hash::{BuildHasher, RandomState};
    let high = RandomState::new().hash_one(0u8);
    let low = RandomState::new().hash_one(1u8);
    let bytes =
        ((u128::from(high) << 64) | u128::from(low)) & !(0xf000u128 << 64) & !(0xc000u128 << 48);
    let bytes = bytes | (0x4000u128 << 64) | (0x8000u128 << 48);
    let hex = format!("{bytes:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuids_look_like_v4() {
        let id = super::uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(id, super::uuid_v4());
    }
}
