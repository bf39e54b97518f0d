//! A mock of Kiro's social refresh endpoint (`POST /refreshToken`) and AWS's OIDC token
//! endpoint (`POST /token`): each refresh token works once (rotation), and calls are counted.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    /// While set, answers wait until it opens.
    gate: Mutex<Option<tokio::sync::watch::Receiver<bool>>>,
    /// Calls are counted and never answered.
    hanging: AtomicBool,
}

/// Answers held by [`MockRefresh::hold`] go out once this is released. Unlike a `Notify`,
/// an answer that reaches the gate after the release passes it too: no lost wake-up.
pub struct Gate(tokio::sync::watch::Sender<bool>);

impl Gate {
    pub fn release(&self) {
        self.0.send_replace(true);
    }
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

    /// Holds every answer until the returned gate is released.
    pub fn hold(&self) -> Gate {
        let (open, opened) = tokio::sync::watch::channel(false);
        *self.state.gate.lock().unwrap() = Some(opened);
        Gate(open)
    }

    /// Never answers again: each call is counted, then hangs (as a stuck endpoint does).
    pub fn hang(&self) {
        self.state.hanging.store(true, Ordering::SeqCst);
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
    if state.hanging.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    let gate = state.gate.lock().unwrap().clone();
    if let Some(mut gate) = gate {
        let _ = gate.wait_for(|open| *open).await;
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
