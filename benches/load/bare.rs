//! The baseline: a bare pass-through proxy on one runtime thread. It streams the request body
//! to the upstream and the answer back as it arrives, parses nothing and keeps only the
//! headers a provider needs. It runs in its own process (the benchmark starts itself again
//! with [`UPSTREAM_ENV`] set) so its CPU time and memory can be read like ccr's.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Set to the upstream's base URL, the benchmark binary runs as the bare proxy.
pub const UPSTREAM_ENV: &str = "CCR_BENCH_BARE_UPSTREAM";

const FORWARDED: [&str; 5] = [
    "content-type",
    "anthropic-version",
    "x-api-key",
    "authorization",
    "accept",
];

/// Serves until killed; prints `listening on ADDR` once bound, like `ccr serve`.
pub fn serve(upstream: String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("listening on {}", listener.local_addr().expect("address"));
        let client = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .build()
            .expect("client");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (client, upstream) = (client.clone(), upstream.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let (client, upstream) = (client.clone(), upstream.clone());
                    async move { Ok::<_, Infallible>(forward(&client, &upstream, request).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

type ProxyBody = BoxBody<Bytes, reqwest::Error>;

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let url = format!("{upstream}{}", request.uri().path());
    let (parts, body) = request.into_parts();
    let mut out = client
        .post(url)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()));
    for name in FORWARDED {
        if let Some(value) = parts.headers.get(name) {
            out = out.header(name, value);
        }
    }
    let Ok(answer) = out.send().await else {
        return Response::builder()
            .status(502)
            .body(
                Full::new(Bytes::new())
                    .map_err(|never| match never {})
                    .boxed(),
            )
            .expect("response");
    };
    let mut response = Response::builder().status(answer.status());
    if let Some(value) = answer.headers().get("content-type") {
        response = response.header("content-type", value);
    }
    let stream = answer.bytes_stream().map_ok(Frame::data);
    response
        .body(StreamBody::new(stream).boxed())
        .expect("response")
}
