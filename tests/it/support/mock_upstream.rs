//! A mock upstream on a loopback port — the Anthropic Messages API or an OpenAI-compatible
//! Chat Completions API, by what its scripted replies say: real HTTP/1.1 through hyper,
//! answering each request with the next scripted reply and recording what it received.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

/// How the mock answers one request.
#[derive(Clone)]
pub enum Reply {
    /// `200 text/event-stream` with these bytes; `byte_per_write` sends each byte as its own
    /// write, a millisecond apart.
    Sse { body: String, byte_per_write: bool },
    /// `200 application/json`.
    Json(String),
    /// Any status with extra headers and a body.
    Status {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Headers and `before`, then silence until `release` is notified, then `after`.
    StallMidStream {
        before: String,
        after: String,
        release: Arc<Notify>,
    },
    /// Nothing at all (no status line) until `release` is notified, then the reply.
    StallBeforeHeaders {
        release: Arc<Notify>,
        then: Box<Reply>,
    },
    /// Headers and `before`, then the connection is cut without ending the body.
    CutAfter { before: String },
    /// Nothing for `delay`, then the reply.
    Delayed { delay: Duration, then: Box<Reply> },
    /// `ok` for requests bearing `Authorization: Bearer <token>`, `otherwise` for the rest.
    ByBearer {
        token: String,
        ok: Box<Reply>,
        otherwise: Box<Reply>,
    },
    /// `200 application/vnd.amazon.eventstream`: each chunk its own write (a millisecond
    /// apart), or one byte per write; `cut` then breaks the connection instead of ending.
    Binary {
        chunks: Vec<Vec<u8>>,
        byte_per_write: bool,
        cut: bool,
    },
    /// `200 application/vnd.amazon.eventstream`: the chunks in one write, then silence until
    /// `release` is notified, then the body ends.
    BinaryStall {
        chunks: Vec<Vec<u8>>,
        release: Arc<Notify>,
    },
}

/// One request as the mock received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    fallback: Option<Reply>,
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct MockUpstream {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
}

impl MockUpstream {
    /// Starts the mock on a free loopback port; it answers every request with `reply` unless
    /// replies were queued with [`MockUpstream::then`].
    pub async fn start(reply: Reply) -> MockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(Script {
            fallback: Some(reply),
            ..Script::default()
        }));
        let shared = script.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let _ = stream.set_nodelay(true);
                let script = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(script.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        MockUpstream { addr, script }
    }

    /// Queues a reply for the next request, before the fallback is used.
    pub fn then(&self, reply: Reply) -> &Self {
        self.script.lock().unwrap().replies.push_back(reply);
        self
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }
}

type MockBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

async fn answer(
    script: Arc<Mutex<Script>>,
    request: Request<Incoming>,
) -> Result<Response<MockBody>, Infallible> {
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers = request.headers().clone();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut reply = {
        let mut script = script.lock().unwrap();
        script.received.push(Received {
            path_and_query,
            headers,
            body,
        });
        script
            .replies
            .pop_front()
            .or_else(|| script.fallback.clone())
            .expect("a scripted reply")
    };
    while let Reply::ByBearer {
        token,
        ok,
        otherwise,
    } = reply
    {
        reply = if bearer == format!("Bearer {token}") {
            *ok
        } else {
            *otherwise
        };
    }
    Ok(respond(reply).await)
}

async fn respond(reply: Reply) -> Response<MockBody> {
    match reply {
        Reply::Sse {
            body,
            byte_per_write,
        } => {
            let (tx, body_out) = channel_body();
            tokio::spawn(async move {
                if byte_per_write {
                    for byte in body.into_bytes() {
                        if tx.send(Ok(Bytes::from(vec![byte]))).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                } else {
                    let _ = tx.send(Ok(Bytes::from(body))).await;
                }
            });
            sse_response(body_out)
        }
        Reply::Json(body) => {
            let mut response = Response::new(full(body));
            response
                .headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            response
        }
        Reply::Status {
            status,
            headers,
            body,
        } => {
            let mut response = Response::new(full(body));
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            response
                .headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        Reply::StallMidStream {
            before,
            after,
            release,
        } => {
            let (tx, body_out) = channel_body();
            tokio::spawn(async move {
                let _ = tx.send(Ok(Bytes::from(before))).await;
                release.notified().await;
                let _ = tx.send(Ok(Bytes::from(after))).await;
            });
            sse_response(body_out)
        }
        Reply::StallBeforeHeaders { release, then } => {
            release.notified().await;
            Box::pin(respond(*then)).await
        }
        Reply::Binary {
            chunks,
            byte_per_write,
            cut,
        } => {
            let (tx, body_out) = channel_body();
            tokio::spawn(async move {
                let writes: Vec<Vec<u8>> = match byte_per_write {
                    true => chunks.concat().into_iter().map(|b| vec![b]).collect(),
                    false => chunks,
                };
                for write in writes {
                    if tx.send(Ok(Bytes::from(write))).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                if cut {
                    let _ = tx
                        .send(Err(std::io::Error::other("mock cuts the connection")))
                        .await;
                }
            });
            binary_response(body_out)
        }
        Reply::BinaryStall { chunks, release } => {
            let (tx, body_out) = channel_body();
            tokio::spawn(async move {
                // One write, so nothing but the stall itself is a pause in the body.
                if tx.send(Ok(Bytes::from(chunks.concat()))).await.is_ok() {
                    release.notified().await;
                }
            });
            binary_response(body_out)
        }
        Reply::ByBearer { .. } => unreachable!("resolved in answer()"),
        Reply::Delayed { delay, then } => {
            tokio::time::sleep(delay).await;
            Box::pin(respond(*then)).await
        }
        Reply::CutAfter { before } => {
            let (tx, body_out) = channel_body();
            tokio::spawn(async move {
                let _ = tx.send(Ok(Bytes::from(before))).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = tx
                    .send(Err(std::io::Error::other("mock cuts the connection")))
                    .await;
            });
            sse_response(body_out)
        }
    }
}

fn full(body: String) -> MockBody {
    http_body_util::Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed()
}

fn channel_body() -> (mpsc::Sender<Result<Bytes, std::io::Error>>, MockBody) {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item.map(Frame::data), rx))
    });
    (tx, StreamBody::new(stream).boxed())
}

fn binary_response(body: MockBody) -> Response<MockBody> {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        "content-type",
        "application/vnd.amazon.eventstream".parse().unwrap(),
    );
    response
}

fn sse_response(body: MockBody) -> Response<MockBody> {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        "text/event-stream; charset=utf-8".parse().unwrap(),
    );
    headers.insert("cache-control", "no-cache".parse().unwrap());
    headers.insert("request-id", "req_upstream_1".parse().unwrap());
    headers.insert(
        "anthropic-ratelimit-requests-remaining",
        "99".parse().unwrap(),
    );
    headers.insert("x-upstream-private", "not-for-clients".parse().unwrap());
    response
}

/// A complete Anthropic stream: one text block and the usage figures given.
pub fn sse_stream(text: &str, input_tokens: u64, output_tokens: u64) -> String {
    let text = serde_json::to_string(text).unwrap();
    format!(
        concat!(
            "event: message_start\n",
            "data: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-upstream\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{{\"input_tokens\":{input},\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}}}}\n\n",
            "event: content_block_start\n",
            "data: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n",
            "event: ping\n",
            "data: {{\"type\": \"ping\"}}\n\n",
            "event: content_block_delta\n",
            "data: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{text}}}}}\n\n",
            "event: content_block_stop\n",
            "data: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n",
            "event: message_delta\n",
            "data: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{output}}}}}\n\n",
            "event: message_stop\n",
            "data: {{\"type\":\"message_stop\"}}\n\n",
        ),
        input = input_tokens,
        output = output_tokens,
        text = text,
    )
}

/// An upstream that sends the first half of a stream (up to the text delta), then stalls
/// until the returned `Notify` is notified. Returns the mock, the release, the whole stream
/// and where it stalls.
pub async fn stalled_mid_stream() -> (MockUpstream, Arc<Notify>, String, usize) {
    let full = sse_stream("stalled", 3, 4);
    let split = full.find("event: content_block_delta").unwrap();
    let release = Arc::new(Notify::new());
    let upstream = MockUpstream::start(Reply::StallMidStream {
        before: full[..split].to_string(),
        after: full[split..].to_string(),
        release: release.clone(),
    })
    .await;
    (upstream, release, full, split)
}

/// An OpenAI-compatible stream: each chunk as a `data:` line, then `data: [DONE]`.
pub fn openai_stream(chunks: &[serde_json::Value]) -> String {
    let mut out = String::new();
    for chunk in chunks {
        out.push_str("data: ");
        out.push_str(&chunk.to_string());
        out.push_str("\n\n");
    }
    out.push_str("data: [DONE]\n\n");
    out
}

/// One CodeWhisperer event frame, encoded with AWS's own codec.
pub fn cw_event(event_type: &str, payload: serde_json::Value) -> Vec<u8> {
    cw_frame(
        &[
            (":message-type", "event"),
            (":event-type", event_type),
            (":content-type", "application/json"),
        ],
        &payload.to_string(),
    )
}

/// A CodeWhisperer exception frame.
pub fn cw_exception(exception_type: &str, message: &str) -> Vec<u8> {
    let payload = serde_json::json!({ "message": message }).to_string();
    cw_frame(
        &[
            (":message-type", "exception"),
            (":exception-type", exception_type),
        ],
        &payload,
    )
}

fn cw_frame(headers: &[(&str, &str)], payload: &str) -> Vec<u8> {
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let mut message = Message::new(payload.as_bytes().to_vec());
    for (name, value) in headers {
        message = message.add_header(Header::new(
            name.to_string(),
            HeaderValue::String(value.to_string().into()),
        ));
    }
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut out).unwrap();
    out
}
