//! The one HTTP request path every external client uses: timeouts, bounded retries on 408, 429,
//! 5xx, connection errors and answers a client recognises as throttling by their body, waiting the larger of `Retry-After` and exponential backoff with
//! jitter (capped), and counters per external system. Callers map the final response to their own
//! typed errors; bodies are never logged (they can carry secrets).
//!
//! Inside a reconcile every wait (a retry's backoff or `Retry-After`, a client-side rate limiter)
//! is charged to the reconcile's [wait budget](with_wait_budget), and a wait the budget cannot pay
//! is not slept, so a reconcile slot is never held by a sleeping retry: a retry that does not fit
//! is not made (the failure so far is the answer, and the controller's error policy brings the
//! object back later); a rate limiter's wait that does not fit ends the request with a
//! [`TransportError`] marked `deferred` — no failure — and the object comes back after it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use tracing::Instrument as _;

/// Connection settings shared by the clients of one external system.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Whole-request timeout.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Extra trusted CAs (PEM bundle), e.g. the simulators' test CAs. Verification is never turned off.
    pub extra_ca_pem: Option<String>,
    pub retry: RetryPolicy,
    /// Where requests are counted (the operator's registry, served on `/metrics`); `None` for
    /// the command-line tools, which serve no metrics.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            extra_ca_pem: None,
            retry: RetryPolicy::default(),
            metrics: None,
        }
    }
}

/// Bounded retries with exponential backoff.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Total attempts including the first.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, base_delay: Duration::from_millis(500), max_delay: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// Backoff before attempt `attempt + 1` (attempt counts from 1): base·2^(attempt-1) with ±20%
    /// jitter, capped; a larger `Retry-After` wins (also capped, so one bad header cannot stall us).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self.base_delay.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let jitter = rand::rng().random_range(0.8..1.2);
        let backoff = exp.mul_f64(jitter).min(self.max_delay);
        retry_after.map_or(backoff, |ra| ra.min(self.max_delay).max(backoff))
    }
}

/// Whether a status is worth another attempt.
pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// Parses `Retry-After` in its delta-seconds form (what Microsoft sends).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Client-side admission for one request: waits for room before each attempt and learns from
/// each answer (see `azure::throttle`). `Err(wait)`: the room comes only after `wait`, more than
/// the caller's wait budget allows (see [`with_wait_budget`]).
#[async_trait::async_trait]
pub trait Gate: Send + Sync {
    async fn admit(&self) -> Result<(), Duration>;
    fn observe(&self, status: StatusCode, headers: &HeaderMap, retry_after: Option<Duration>);
}

/// A complete response: status, headers and body bytes.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The request could not be completed (no HTTP response after all attempts), or it was
/// deferred: the next wait did not fit the reconcile's wait budget.
#[derive(Debug, thiserror::Error)]
#[error("{system}: {operation}: {}{message}", if deferred.is_some() { String::new() } else { format!("no response after {attempts} attempt(s): ") })]
pub struct TransportError {
    pub system: &'static str,
    pub operation: &'static str,
    pub attempts: u32,
    pub message: String,
    /// Set when the request was given up because waiting this long would have held a reconcile
    /// slot: the object is reconciled again after it.
    pub deferred: Option<Duration>,
}

impl TransportError {
    /// A request given up before a wait of `wait` (`why`: what it would have waited for).
    pub fn deferred(system: &'static str, operation: &'static str, attempts: u32, wait: Duration, why: &str) -> Self {
        TransportError {
            system,
            operation,
            attempts,
            message: format!(
                "waiting {:.1} s {why} does not fit this reconcile's wait budget: deferred",
                wait.as_secs_f64()
            ),
            deferred: Some(wait),
        }
    }
}

tokio::task_local! {
    static WAIT_BUDGET: Arc<std::sync::Mutex<WaitBudget>>;
}

/// What a reconcile may still sleep, and the shortest wait it deferred.
#[derive(Debug)]
struct WaitBudget {
    key: String,
    left: Duration,
    deferred: Option<Duration>,
}

/// Runs `f` with a wait budget: the waits of the requests it makes (retry backoff, rate limiting)
/// may add up to `budget`; a wait beyond what is left is not slept (see [`charge_wait`],
/// [`defer`]). `key` names what is reconciled (a rate limiter keeps a deferred write's place
/// for it). Outside such a scope requests wait as long as they must.
/// Returns `f`'s output and the shortest wait it deferred (see [`defer`]).
pub async fn with_wait_budget<F: Future>(key: String, budget: Duration, f: F) -> (F::Output, Option<Duration>) {
    let state = Arc::new(std::sync::Mutex::new(WaitBudget { key, left: budget, deferred: None }));
    let output = WAIT_BUDGET.scope(state.clone(), f).await;
    let deferred = state.lock().expect("not poisoned").deferred;
    (output, deferred)
}

/// Charges `wait` to the current wait budget: `true` when it may be slept (always outside a
/// budget), `false` when it does not fit.
pub fn charge_wait(wait: Duration) -> bool {
    WAIT_BUDGET
        .try_with(|b| {
            let mut b = b.lock().expect("not poisoned");
            let fits = wait <= b.left;
            if fits {
                b.left -= wait;
            }
            fits
        })
        .unwrap_or(true)
}

/// Records that the current reconcile gives up a wait it could not afford, for pacing (a rate
/// limiter's, replication): not a failure, the object comes back after `wait` (see [`deferred`]).
pub fn defer(wait: Duration) {
    let _ = WAIT_BUDGET.try_with(|b| {
        let mut b = b.lock().expect("not poisoned");
        b.deferred = Some(b.deferred.map_or(wait, |d| d.min(wait)));
    });
}

/// The shortest wait deferred so far under the current wait budget, if any.
pub fn deferred() -> Option<Duration> {
    WAIT_BUDGET.try_with(|b| b.lock().expect("not poisoned").deferred).ok().flatten()
}

/// The key of the current wait budget (what is being reconciled), if any.
pub fn budget_key() -> Option<String> {
    WAIT_BUDGET.try_with(|b| b.lock().expect("not poisoned").key.clone()).ok()
}

/// Counters per external system, read by metrics and benchmarks.
#[derive(Debug, Default)]
pub struct RequestCounters {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub throttled: AtomicU64,
    pub failures: AtomicU64,
    /// Retries not made because their wait did not fit a reconcile's wait budget.
    pub deferred: AtomicU64,
}

/// HTTP client for one external system.
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    system: &'static str,
    retry: RetryPolicy,
    counters: Arc<RequestCounters>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl HttpClient {
    pub fn new(system: &'static str, settings: &HttpSettings) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .user_agent(concat!("connect-email-operator/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &settings.extra_ca_pem {
            // A bundle: the simulators each have their own throw-away CA.
            for certificate in reqwest::Certificate::from_pem_bundle(pem.as_bytes())? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        Ok(Self {
            inner: builder.build()?,
            system,
            retry: settings.retry.clone(),
            counters: Arc::default(),
            metrics: settings.metrics.clone(),
        })
    }

    pub fn reqwest(&self) -> &reqwest::Client {
        &self.inner
    }

    pub fn counters(&self) -> &RequestCounters {
        &self.counters
    }

    /// Sends the request built by `build` (called again for each attempt), retrying transient
    /// failures. Returns the last response, whatever its status: the caller maps errors.
    pub async fn send(
        &self,
        operation: &'static str,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, TransportError> {
        self.send_gated(operation, None, build).await
    }

    /// As [`HttpClient::send`], with every attempt admitted by `gate` first and its answer
    /// reported back to it (client-side rate limiting).
    pub async fn send_gated(
        &self,
        operation: &'static str,
        gate: Option<&(dyn Gate + '_)>,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, TransportError> {
        self.send_inner(operation, gate, &|_| false, build).await
    }

    /// As [`HttpClient::send`], for a service that signals throttling in the body rather than
    /// (only) in the status: an answer `is_throttled` recognises is retried like a 429, whatever
    /// its status, with the same bounded backoff.
    pub async fn send_with_throttle_rule(
        &self,
        operation: &'static str,
        is_throttled: &(dyn Fn(&Response) -> bool + Sync),
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, TransportError> {
        self.send_inner(operation, None, is_throttled, build).await
    }

    /// One span per request (all its attempts), a child of the reconcile it serves: the system,
    /// the operation, the final status and the number of attempts. Never the URL, a header or a
    /// body: they can carry tokens, secrets or user data.
    async fn send_inner(
        &self,
        operation: &'static str,
        gate: Option<&(dyn Gate + '_)>,
        is_throttled: &(dyn Fn(&Response) -> bool + Sync),
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, TransportError> {
        let span = tracing::info_span!(
            "http request",
            otel.name = %format_args!("{} {operation}", self.system),
            otel.kind = "client",
            system = self.system,
            operation,
            status = tracing::field::Empty,
            attempts = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let result = self.attempts(operation, gate, is_throttled, build).instrument(span.clone()).await;
        match &result {
            Ok(response) => {
                span.record("status", response.status.as_u16());
                if response.status.is_server_error() {
                    span.record("otel.status_code", "ERROR");
                }
            }
            Err(e) => {
                span.record("attempts", e.attempts);
                span.record("otel.status_code", "ERROR");
            }
        }
        result
    }

    async fn attempts(
        &self,
        operation: &'static str,
        gate: Option<&(dyn Gate + '_)>,
        is_throttled: &(dyn Fn(&Response) -> bool + Sync),
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, TransportError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(gate) = gate
                && let Err(wait) = gate.admit().await
            {
                tracing::debug!(system = self.system, operation, ?wait, "deferred: waiting for the rate limiter");
                return Err(TransportError::deferred(
                    self.system,
                    operation,
                    attempt - 1,
                    wait,
                    "for the rate limiter",
                ));
            }
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let started = std::time::Instant::now();
            let outcome = match build(&self.inner).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(body) => Ok(Response { status, headers, body }),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            let status = outcome.as_ref().ok().map(|r| r.status.as_u16());
            tracing::Span::current().record("attempts", attempt);
            if let Some(metrics) = &self.metrics {
                metrics.request(self.system, status, started.elapsed());
            }
            if let (Some(gate), Ok(response)) = (gate, &outcome) {
                gate.observe(response.status, &response.headers, retry_after(&response.headers));
            }
            let throttled = |r: &Response| r.status == StatusCode::TOO_MANY_REQUESTS || is_throttled(r);
            let retryable = outcome.as_ref().map_or(true, |r| is_retryable_status(r.status) || is_throttled(r));
            let wait = self.retry.delay(attempt, outcome.as_ref().ok().and_then(|r| retry_after(&r.headers)));
            // Inside a reconcile a retry is made only if its wait fits the reconcile's wait
            // budget. Otherwise the answer so far is final: the failure is reported as usual and
            // the error policy brings the object back later, instead of it sleeping in its slot.
            let retry = retryable && attempt < self.retry.max_attempts && {
                let fits = charge_wait(wait);
                if !fits {
                    tracing::debug!(
                        system = self.system,
                        operation,
                        attempt,
                        ?wait,
                        "not retried in this reconcile: the wait exceeds its budget"
                    );
                    self.counters.deferred.fetch_add(1, Ordering::Relaxed);
                }
                fits
            };
            match outcome {
                Ok(response) if retry => {
                    if throttled(&response) {
                        self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::debug!(system = self.system, operation, status = %response.status, attempt, ?wait, "retrying");
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                }
                Ok(response) => {
                    if throttled(&response) {
                        self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                    }
                    if !response.status.is_success() {
                        self.counters.failures.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(response);
                }
                // URLs are dropped from messages: query strings can carry user data.
                Err(e) if retry => {
                    let e = e.without_url();
                    tracing::debug!(system = self.system, operation, error = %e, attempt, ?wait, "retrying after transport error");
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    self.counters.failures.fetch_add(1, Ordering::Relaxed);
                    return Err(TransportError {
                        system: self.system,
                        operation,
                        attempts: attempt,
                        message: e.without_url().to_string(),
                        deferred: None,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_wins_when_larger_than_backoff() {
        let policy =
            RetryPolicy { max_attempts: 5, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(30) };
        assert_eq!(policy.delay(1, Some(Duration::from_secs(7))), Duration::from_secs(7));
        let d = policy.delay(1, None);
        assert!(d >= Duration::from_millis(80) && d <= Duration::from_millis(120), "{d:?}");
        // Retry-After is capped too.
        assert_eq!(policy.delay(1, Some(Duration::from_secs(3600))), Duration::from_secs(30));
        // Backoff grows and is capped.
        assert!(policy.delay(4, None) >= Duration::from_millis(640));
        assert!(policy.delay(30, None) <= Duration::from_secs(30));
    }
}
