//! Fault injection: one-shot (or N-shot) failures per route, and global behaviour switches that
//! reproduce Entra ID's eventual consistency, secret propagation, app management policy and
//! throttling.
//!
//! ```no_run
//! # async fn demo(sim: &connect_email_operator::sim::MicrosoftSim) {
//! use connect_email_operator::sim::routes;
//! use std::time::Duration;
//! sim.faults().on(routes::ADD_PASSWORD).times(2).status(429, Some(3));
//! sim.faults().on("*").latency(Duration::from_millis(200));
//! sim.faults().on(routes::TOKEN).reset();
//! sim.faults().set_replication_lag(Duration::from_millis(300));
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use super::state::{Shared, lock};

/// What a matching request gets instead of (or before) normal processing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultAction {
    /// Answer with this status and the service's error body; `Retry-After` when given.
    Status { code: u16, retry_after: Option<u64> },
    /// Delay the request, then process it normally.
    Latency(Duration),
    /// Close the connection without answering.
    Reset,
}

#[derive(Clone, Debug)]
struct FaultRule {
    route: String,
    remaining: usize,
    action: FaultAction,
}

/// Pending fault rules, consumed in the order they were added.
#[derive(Debug, Default)]
pub(crate) struct FaultTable {
    rules: Vec<FaultRule>,
}

/// The faults that apply to one request.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Triggered {
    pub latency: Duration,
    /// The first matching status/reset rule, if any.
    pub terminal: Option<FaultAction>,
}

impl FaultTable {
    /// Consumes one use of every matching latency rule and of the first matching terminal rule.
    pub fn take(&mut self, route: &str) -> Triggered {
        let mut triggered = Triggered::default();
        for rule in &mut self.rules {
            if rule.remaining == 0 || !(rule.route == "*" || rule.route == route) {
                continue;
            }
            match rule.action {
                FaultAction::Latency(d) => {
                    triggered.latency += d;
                    rule.remaining -= 1;
                }
                terminal if triggered.terminal.is_none() => {
                    triggered.terminal = Some(terminal);
                    rule.remaining -= 1;
                }
                _ => {}
            }
        }
        self.rules.retain(|r| r.remaining > 0);
        triggered
    }
}

/// Cheap, cloneable handle for injecting faults into a running [`super::MicrosoftSim`].
#[derive(Clone, Debug)]
pub struct Faults {
    pub(crate) shared: Arc<Shared>,
}

/// A fault being described: which route, how many times. Finish with [`FaultBuilder::status`],
/// [`FaultBuilder::throttled`], [`FaultBuilder::unavailable`], [`FaultBuilder::latency`] or
/// [`FaultBuilder::reset`].
#[must_use = "a fault does nothing until status(), latency() or reset() is called"]
#[derive(Debug)]
pub struct FaultBuilder {
    faults: Faults,
    route: String,
    times: usize,
}

impl Faults {
    /// Starts a fault for requests whose route template equals `route` (see [`super::routes`]),
    /// or every request with `"*"`. Applies to the next request only unless [`FaultBuilder::times`]
    /// says otherwise. Panics on a string that is not a route template (a typo would otherwise
    /// inject nothing).
    pub fn on(&self, route: &str) -> FaultBuilder {
        super::routes::assert_known(route);
        FaultBuilder { faults: self.clone(), route: route.to_string(), times: 1 }
    }

    /// Removes every pending fault rule (global settings stay).
    pub fn clear(&self) {
        lock(&self.shared.faults).rules.clear();
    }

    /// Number of fault uses not yet consumed.
    pub fn pending(&self) -> usize {
        lock(&self.shared.faults).rules.iter().map(|r| r.remaining).sum()
    }

    /// Objects younger than `lag` are invisible to reads by id/appId/uniqueName and to writes
    /// addressed by id (404 `Request_ResourceNotFound`), unknown to the token endpoint (700016),
    /// and creating a service principal for an application younger than `lag` fails with 400
    /// `NoBackingApplicationObject`. Zero turns it off.
    pub fn set_replication_lag(&self, lag: Duration) {
        lock(&self.shared.settings).replication_lag = lag;
    }

    /// A password younger than `delay` is rejected at the token endpoint with AADSTS7000215.
    pub fn set_password_propagation(&self, delay: Duration) {
        lock(&self.shared.settings).password_propagation = delay;
    }

    /// Tenant app management policy: `Some(max)` adds a `passwordLifetime` restriction with
    /// `maxLifetime` to `GET /policies/defaultAppManagementPolicy`, and `addPassword` whose
    /// end − start exceeds it fails with 400 `CredentialInvalidLifetimeAsPerAppPolicy`.
    pub fn set_password_lifetime_cap(&self, max: Option<Duration>) {
        lock(&self.shared.settings).password_lifetime_cap = max;
    }

    /// At most `writes` Graph writes (POST/PATCH/DELETE) per `per`, per tenant and calling
    /// client; beyond that 429 with `Retry-After`, Graph's throttling body and the
    /// `x-ms-throttle-*` headers. Throttled requests do not count.
    pub fn set_write_rate_limit(&self, writes: u32, per: Duration) {
        lock(&self.shared.settings).write_rate_limit = Some((writes, per));
    }

    pub fn clear_write_rate_limit(&self) {
        lock(&self.shared.settings).write_rate_limit = None;
    }

    fn add(&self, route: String, times: usize, action: FaultAction) {
        if times == 0 {
            return;
        }
        lock(&self.shared.faults).rules.push(FaultRule { route, remaining: times, action });
    }
}

impl FaultBuilder {
    /// Applies to the next `n` matching requests instead of one.
    pub fn times(mut self, n: usize) -> FaultBuilder {
        self.times = n;
        self
    }

    /// Answer with `code` and the service's error body (Graph error JSON or the identity
    /// platform's OAuth error JSON), with `Retry-After: <seconds>` when given.
    pub fn status(self, code: u16, retry_after: Option<u64>) {
        self.faults.add(self.route, self.times, FaultAction::Status { code, retry_after });
    }

    /// 429 Too Many Requests, with or without `Retry-After`.
    pub fn throttled(self, retry_after: Option<u64>) {
        self.status(429, retry_after);
    }

    /// 503 Service Unavailable without `Retry-After`.
    pub fn unavailable(self) {
        self.status(503, None);
    }

    /// Delay matching requests by `delay`, then process them normally.
    pub fn latency(self, delay: Duration) {
        self.faults.add(self.route, self.times, FaultAction::Latency(delay));
    }

    /// Drop the connection after reading the request, without any response.
    pub fn reset(self) {
        self.faults.add(self.route, self.times, FaultAction::Reset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(route: &str, remaining: usize, action: FaultAction) -> FaultRule {
        FaultRule { route: route.to_string(), remaining, action }
    }

    #[test]
    fn rules_are_consumed_in_order_and_latency_stacks() {
        let status = FaultAction::Status { code: 503, retry_after: None };
        let mut table = FaultTable {
            rules: vec![
                rule("*", 1, FaultAction::Latency(Duration::from_millis(5))),
                rule("GET /a", 2, status),
                rule("GET /a", 1, FaultAction::Reset),
            ],
        };
        assert_eq!(table.take("GET /b"), Triggered { latency: Duration::from_millis(5), terminal: None });
        assert_eq!(table.take("GET /a").terminal, Some(status));
        assert_eq!(table.take("GET /a").terminal, Some(status));
        assert_eq!(table.take("GET /a").terminal, Some(FaultAction::Reset));
        assert_eq!(table.take("GET /a"), Triggered::default());
        assert!(table.rules.is_empty());
    }
}
