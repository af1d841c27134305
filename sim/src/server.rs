//! HTTPS plumbing shared by the simulators: a listener on loopback, TLS with the test CA, HTTP/1.1,
//! whole-body requests handed to a plain async function, and the ability to drop a connection
//! without answering (to simulate resets).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Largest request body a simulator accepts (Graph's own limit is 4 MB; ours only protects tests).
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A client that connects but never finishes the TLS handshake is dropped after this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One fully read request.
#[derive(Debug, Clone)]
pub struct SimRequest {
    pub method: Method,
    /// The raw (still percent-encoded) path, without the query string.
    pub path: String,
    /// The raw query string, without the `?`.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl SimRequest {
    /// A header as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The token of an `Authorization: Bearer <token>` header (scheme in any case), if any.
    pub fn bearer(&self) -> Option<&str> {
        let (scheme, token) = self.header("authorization")?.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
    }
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct SimResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl SimResponse {
    pub fn new(status: StatusCode) -> SimResponse {
        SimResponse { status, headers: HeaderMap::new(), body: Bytes::new() }
    }

    pub fn json(status: StatusCode, body: &serde_json::Value, content_type: &str) -> SimResponse {
        let mut response = SimResponse::new(status);
        response.body = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        response.set_header("content-type", content_type);
        response
    }

    /// Sets (replaces) a header; names and values are produced by the simulators themselves, so an
    /// invalid one is a bug and is skipped rather than panicking inside the server.
    pub fn set_header(&mut self, name: &str, value: &str) {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            self.headers.insert(name, value);
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> SimResponse {
        self.set_header(name, value);
        self
    }
}

/// What a handler decides to do with a request.
#[derive(Debug)]
pub enum Outcome {
    Respond(SimResponse),
    /// Close the connection without sending a response.
    Reset,
}

/// The running listener; dropping it stops accepting and closes every open connection.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// `https://HOST:PORT` for clients; an unspecified listen address becomes loopback.
    pub fn url(&self) -> String {
        let host = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
            IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_string(),
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        format!("https://{host}:{}", self.addr.port())
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug)]
struct ConnectionReset;

impl std::fmt::Display for ConnectionReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by the simulator (injected fault)")
    }
}

impl std::error::Error for ConnectionReset {}

/// Binds `listen` and serves HTTPS with `tls`, calling `handler` for every request.
pub async fn serve<F, Fut>(
    listen: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    handler: F,
) -> std::io::Result<ServerHandle>
where
    F: Fn(SimRequest) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let task = tokio::spawn(async move {
        // Connections live in the JoinSet so that aborting this task aborts them too.
        let mut connections = JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let (tcp, _peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "simulator accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let handler = handler.clone();
            connections.spawn(async move {
                let tls_stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "simulator TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let handler = handler.clone();
                    async move { respond(request, handler).await }
                });
                if let Err(error) = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(tls_stream), service)
                    .await
                {
                    tracing::debug!(%error, "simulator connection ended");
                }
            });
        }
    });
    Ok(ServerHandle { addr, task })
}

async fn respond<F, Fut>(request: Request<Incoming>, handler: F) -> Result<Response<Full<Bytes>>, ConnectionReset>
where
    F: Fn(SimRequest) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"request body too large or unreadable")));
            *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            return Ok(response);
        }
    };
    let request = SimRequest {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
    };
    match handler(request).await {
        Outcome::Respond(sim) => {
            let mut response = Response::new(Full::new(sim.body));
            *response.status_mut() = sim.status;
            *response.headers_mut() = sim.headers;
            Ok(response)
        }
        Outcome::Reset => Err(ConnectionReset),
    }
}
