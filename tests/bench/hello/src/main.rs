//! `bench-hello --http 127.0.0.1:PORT`: answers every request with a fixed
//! small JSON body (the shape of a PocketBase record), keep-alive, HTTP/1.1.
//! The benchmark's ceiling: what tokio + hyper alone reach on this machine.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &[u8] = br#"{"collectionId":"pbc_1234567890","collectionName":"bench","id":"abcdefghijklmno","title":"record 1","n":1,"flag":false,"owner":"","created":"2024-01-01 00:00:00.000Z","updated":"2024-01-01 00:00:00.000Z"}"#;

async fn hello(_req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut addr: SocketAddr = "127.0.0.1:8099".parse()?;
    while let Some(a) = args.next() {
        if a == "--http" {
            addr = args.next().ok_or("--http needs an address")?.parse()?;
        }
    }
    let listener = TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await;
        });
    }
}
