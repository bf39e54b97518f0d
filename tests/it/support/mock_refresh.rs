//! A mock of Kiro's social refresh endpoint (`POST /refreshToken`) and AWS's OIDC token
//! endpoint (`POST /token`): each refresh token works once (rotation), and calls are counted.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

#[derive(Default)]
struct State {
    valid: Mutex<HashSet<String>>,
    calls: AtomicUsize,
    issued: AtomicUsize,
    /// Each answer waits this long, to make refreshes overlap with other work.
    delay: Mutex<std::time::Duration>,
    /// While set, answers wait until it is notified.
    gate: Mutex<Option<Arc<tokio::sync::Notify>>>,
}

#[derive(Clone)]
pub struct MockRefresh {
    base: String,
    state: Arc<State>,
}

impl MockRefresh {
    /// Starts the mock; `valid` are the refresh tokens it accepts at first.
    pub async fn start(valid: &[&str], expires_in: u64) -> MockRefresh {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State::default());
        state
            .valid
            .lock()
            .unwrap()
            .extend(valid.iter().map(|s| s.to_string()));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(state.clone(), expires_in, req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        MockRefresh { base, state }
    }

    pub fn social_url(&self) -> String {
        format!("{}/refreshToken", self.base)
    }

    pub fn idc_url(&self) -> String {
        format!("{}/token", self.base)
    }

    /// Makes every later answer wait `delay`.
    pub fn slow_down(&self, delay: std::time::Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    /// Holds every answer until the returned `Notify` is notified (`notify_waiters`).
    pub fn hold(&self) -> Arc<tokio::sync::Notify> {
        let gate = Arc::new(tokio::sync::Notify::new());
        *self.state.gate.lock().unwrap() = Some(gate.clone());
        gate
    }

    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }
}

async fn answer(
    state: Arc<State>,
    expires_in: u64,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let delay = *state.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let gate = state.gate.lock().unwrap().clone();
    if let Some(gate) = gate {
        gate.notified().await;
    }
    let idc = request.uri().path() == "/token";
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let refresh = body["refreshToken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let client_ok = !idc
        || (body["clientId"] == "cid"
            && body["clientSecret"] == "csecret-never-print"
            && body["grantType"] == "refresh_token");
    let accepted = client_ok && state.valid.lock().unwrap().remove(&refresh);
    if !accepted {
        let mut response = Response::new(Full::new(Bytes::from_static(
            br#"{"error":"invalid_grant"}"#,
        )));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return Ok(response);
    }
    let n = state.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let new_refresh = format!("aor-rotated-{n}");
    state.valid.lock().unwrap().insert(new_refresh.clone());
    let answer = json!({"accessToken": format!("aoa-fresh-{n}"), "refreshToken": new_refresh, "expiresIn": expires_in});
    Ok(Response::new(Full::new(Bytes::from(answer.to_string()))))
}
