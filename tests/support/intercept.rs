//! A client for the test cluster whose requests pass through the test's hands first, to answer some
//! itself (a 409 Conflict in the fault matrix) or to hold them forever (a network cut in the leader
//! election tests).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use kube::client::{Body, ClientBuilder, DynBody};
use tower::BoxError;

use super::kubeconfig_path;

/// What happens to one request to the apiserver.
pub enum Verdict {
    /// It goes to the apiserver.
    Pass,
    /// The apiserver seems to answer this status with this JSON body.
    Answer(StatusCode, serde_json::Value),
    /// No answer ever comes, as if the network were cut.
    Hang,
}

/// A client for the test cluster that asks `decide` about every request before sending it.
pub async fn intercepted_client<F>(decide: F) -> kube::Client
where
    F: Fn(&Request<Body>) -> Verdict + Clone + Send + Sync + 'static,
{
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig_path()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(&tower::layer::layer_fn(move |inner| Intercept { inner, decide: decide.clone() }))
        .build()
}

struct Intercept<S, F> {
    inner: S,
    decide: F,
}

type BoxResponse = Response<Box<DynBody>>;

impl<S, F> tower::Service<Request<Body>> for Intercept<S, F>
where
    S: tower::Service<Request<Body>, Response = BoxResponse, Error = BoxError>,
    S::Future: Send + 'static,
    F: Fn(&Request<Body>) -> Verdict,
{
    type Response = BoxResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<BoxResponse, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        match (self.decide)(&request) {
            Verdict::Pass => Box::pin(self.inner.call(request)),
            Verdict::Hang => Box::pin(futures::future::pending()),
            Verdict::Answer(status, body) => {
                let body: Box<DynBody> =
                    Box::new(Full::new(Bytes::from(body.to_string())).map_err(|never| -> BoxError { match never {} }));
                let response =
                    Response::builder().status(status).header("content-type", "application/json").body(body).unwrap();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}
