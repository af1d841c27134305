//! Fault injection shared by the simulators: one-shot (or N-shot) failures keyed by route template
//! (or any other key a simulator matches on, such as an Exchange cmdlet name), consumed in the
//! order they were added.
//!
//! Each simulator owns a [`FaultTable`], validates the keys it accepts and hands out
//! [`FaultBuilder`]s; how a status fault is rendered (which error body) is the simulator's business.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::random;
use crate::sync::lock;

/// What a matching request gets instead of (or before) normal processing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultAction {
    /// Answer with this status and the service's error body; `Retry-After` when given.
    Status { code: u16, retry_after: Option<u64> },
    /// Delay the request, then process it normally.
    Latency(Duration),
    /// Close the connection without answering.
    Reset,
    /// Process the request, then close the connection without sending the answer.
    LoseResponse,
}

#[derive(Clone, Debug)]
struct FaultRule {
    key: String,
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
    /// Consumes one use of every latency rule and of the first terminal rule whose key is `"*"`
    /// or one of `keys` (a request can have several: its route and, for Exchange, its cmdlet).
    pub fn take(&mut self, keys: &[&str]) -> Triggered {
        let mut triggered = Triggered::default();
        for rule in &mut self.rules {
            if rule.remaining == 0 || !(rule.key == "*" || keys.contains(&rule.key.as_str())) {
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

    fn add(&mut self, key: String, times: usize, action: FaultAction) {
        if times > 0 {
            self.rules.push(FaultRule { key, remaining: times, action });
        }
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// Number of fault uses not yet consumed.
    pub fn pending(&self) -> usize {
        self.rules.iter().map(|r| r.remaining).sum()
    }
}

/// A fault being described: which key, how many times. Finish with [`FaultBuilder::status`],
/// [`FaultBuilder::throttled`], [`FaultBuilder::unavailable`], [`FaultBuilder::latency`],
/// [`FaultBuilder::reset`] or [`FaultBuilder::lose_response`].
#[must_use = "a fault does nothing until status(), latency() or reset() is called"]
#[derive(Debug)]
pub struct FaultBuilder {
    table: Arc<Mutex<FaultTable>>,
    key: String,
    times: usize,
}

impl FaultBuilder {
    /// The key must already be validated by the simulator handing the builder out.
    pub(crate) fn new(table: Arc<Mutex<FaultTable>>, key: String) -> FaultBuilder {
        FaultBuilder { table, key, times: 1 }
    }

    /// Applies to the next `n` matching requests instead of one.
    pub fn times(mut self, n: usize) -> FaultBuilder {
        self.times = n;
        self
    }

    /// Answer with `code` and the service's error body, with `Retry-After: <seconds>` when given.
    pub fn status(self, code: u16, retry_after: Option<u64>) {
        self.add(FaultAction::Status { code, retry_after });
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
        self.add(FaultAction::Latency(delay));
    }

    /// Drop the connection after reading the request, without any response.
    pub fn reset(self) {
        self.add(FaultAction::Reset);
    }

    /// Process the request normally (its change is made), then drop the connection without the
    /// answer: the caller cannot tell it succeeded and retries. The Microsoft simulator
    /// implements it; the Connect simulator answers such requests normally.
    pub fn lose_response(self) {
        self.add(FaultAction::LoseResponse);
    }

    fn add(self, action: FaultAction) {
        lock(&self.table).add(self.key, self.times, action);
    }
}

/// Sleeps for a uniformly distributed duration in `[min, max]` (the simulators' latency option).
pub(crate) async fn sleep_between(min: Duration, max: Duration) {
    let span = max.saturating_sub(min).as_millis() as u64;
    tokio::time::sleep(min + Duration::from_millis(random::below(span + 1))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(key: &str, remaining: usize, action: FaultAction) -> FaultRule {
        FaultRule { key: key.to_string(), remaining, action }
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
        assert_eq!(table.take(&["GET /b"]), Triggered { latency: Duration::from_millis(5), terminal: None });
        assert_eq!(table.take(&["GET /a"]).terminal, Some(status));
        assert_eq!(table.take(&["GET /a"]).terminal, Some(status));
        assert_eq!(table.take(&["GET /a"]).terminal, Some(FaultAction::Reset));
        assert_eq!(table.take(&["GET /a"]), Triggered::default());
        assert!(table.rules.is_empty());
    }

    #[test]
    fn a_request_matches_any_of_its_keys() {
        let mut table = FaultTable::default();
        table.add("Set-Mailbox".to_string(), 1, FaultAction::Reset);
        assert_eq!(table.take(&["POST /x", "Get-Mailbox"]).terminal, None);
        assert_eq!(table.take(&["POST /x", "Set-Mailbox"]).terminal, Some(FaultAction::Reset));
        assert_eq!(table.pending(), 0);
    }
}
