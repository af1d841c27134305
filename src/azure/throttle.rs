//! Client-side admission control for Microsoft Graph, per tenant: the operator paces itself under
//! Graph's documented identity limits instead of running into them.
//!
//! Graph limits identity writes per (application, tenant) to 3,000 per 150 s and all requests to
//! 3,500–8,000 resource units per 10 s depending on tenant size (throttling-limits). The limiter
//! keeps a sliding-window log of what it sent per tenant (both budgets, with headroom) and makes
//! each request wait for room before it is sent. It adapts to what Graph reports:
//! - `x-ms-throttle-limit-percentage` (sent once more than 0.8 of a limit is used): when Graph
//!   reports more use than the log explains (other clients share the budget, or the tenant's limit
//!   is lower), the effective limits shrink;
//! - 429: the whole tenant pauses for `Retry-After` (or a backoff when absent, as identity APIs
//!   sometimes do), at most [`MAX_PAUSE`], and the limit named by `x-ms-throttle-scope` /
//!   `x-ms-throttle-information` shrinks;
//! - successful answers without the header slowly restore the limits (additive increase).
//!
//! Requests are given their time in the order they arrive, per budget (a queued write never
//! blocks reads). Inside a reconcile a wait longer than its wait budget is not slept: the request
//! is deferred (see `http::with_wait_budget`) and a deferred write keeps its time for the object.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tokio::time::Instant;

/// Limits the client plans for. Defaults: Graph's documented identity limits for the smallest
/// tenant size, used up to `headroom`.
#[derive(Clone, Debug)]
pub struct GraphLimits {
    pub writes: u32,
    pub write_window: Duration,
    pub resource_units: u32,
    pub unit_window: Duration,
    /// Fraction of the write limit the client allows itself (room for other callers and clock
    /// skew between sending and Graph's count).
    pub headroom: f64,
    /// The same for resource units: their window is short (10 s), so the delay between admission
    /// and arrival under load needs more room.
    pub unit_headroom: f64,
    /// Pause of the whole tenant after a 429 without `Retry-After` (the throttled request itself
    /// also backs off exponentially in the request path).
    pub default_pause: Duration,
}

impl Default for GraphLimits {
    fn default() -> Self {
        Self {
            writes: 3000,
            write_window: Duration::from_secs(150),
            resource_units: 3500,
            unit_window: Duration::from_secs(10),
            headroom: 0.95,
            unit_headroom: 0.85,
            default_pause: Duration::from_secs(1),
        }
    }
}

/// What one request costs, from Graph's published table of base costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    pub write: bool,
    pub units: u32,
}

impl Cost {
    /// Base resource units for an identity request (throttling-limits, "identity and access"):
    /// lists of applications, grants and app role assignments cost 2, other reads 1, writes 1
    /// resource unit plus one write.
    pub fn of(method: &reqwest::Method, path: &str) -> Cost {
        let path = path.split('?').next().unwrap_or(path).trim_matches('/');
        if *method != reqwest::Method::GET {
            return Cost { write: true, units: 1 };
        }
        let two = path == "applications"
            || path.starts_with("oauth2PermissionGrants")
            || (path.starts_with("servicePrincipals/") && path.ends_with("/appRoleAssignments"));
        Cost { write: false, units: if two { 2 } else { 1 } }
    }
}

/// Counters for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct ThrottleStats {
    /// Requests that had to wait for room.
    pub delayed: AtomicU64,
    /// Total wait, in milliseconds.
    pub waited_ms: AtomicU64,
    /// Times the limits shrank (429 or a higher reported use than expected).
    pub shrinks: AtomicU64,
    /// Requests given up because their wait did not fit a reconcile's wait budget.
    pub deferred: AtomicU64,
}

/// The limiter for every tenant one Graph client talks to.
#[derive(Debug)]
pub struct GraphThrottle {
    limits: GraphLimits,
    tenants: Mutex<HashMap<String, Arc<TenantGate>>>,
    pub stats: Arc<ThrottleStats>,
}

#[derive(Debug)]
pub struct TenantGate {
    limits: GraphLimits,
    state: Mutex<GateState>,
    stats: Arc<ThrottleStats>,
}

#[derive(Debug)]
struct GateState {
    /// When each write in the window is (or will be) sent, sorted: a request is given its time
    /// when it is admitted, possibly in the future (a reservation), so waiting needs no lock.
    writes: VecDeque<Instant>,
    units: VecDeque<(Instant, u32)>,
    unit_sum: u32,
    /// Effective limits as fractions of the documented ones (adapted).
    write_factor: f64,
    unit_factor: f64,
    paused_until: Option<Instant>,
    /// Writes deferred by a reconcile (their wait did not fit its wait budget): the time reserved
    /// for each, by what it reconciles, so that it keeps its place when it comes back instead of
    /// queueing behind everyone who asked meanwhile.
    promised: Promises,
    promises_pruned: Instant,
    /// The latest time given to a deferred write: the next one is spread at least one
    /// `write_window / write_limit` after it.
    last_promise: Option<Instant>,
}

/// The times kept for deferred writes, by object and by time. A time whose object has not come
/// for it ([`CLAIM_AFTER`] past it) may be claimed by any write; a time given up by its object is
/// kept here without one.
#[derive(Debug, Default)]
struct Promises {
    by_key: HashMap<String, (Instant, u64)>,
    by_time: BTreeMap<(Instant, u64), Option<String>>,
    seq: u64,
}

impl Promises {
    fn insert(&mut self, key: Option<String>, at: Instant) {
        self.seq += 1;
        let id = (at, self.seq);
        if let Some(k) = &key
            && let Some(old) = self.by_key.insert(k.clone(), id)
        {
            self.by_time.remove(&old);
        }
        self.by_time.insert(id, key);
    }

    /// The time kept for `key`, taken out.
    fn take(&mut self, key: &str) -> Option<Instant> {
        let id = self.by_key.remove(key)?;
        self.by_time.remove(&id);
        Some(id.0)
    }

    /// The oldest kept time in `from..=to`, taken out from whoever it was kept for.
    fn claim(&mut self, from: Instant, to: Instant) -> Option<Instant> {
        let (&id, _) = self.by_time.range((from, 0)..=(to, u64::MAX)).next()?;
        if let Some(Some(k)) = self.by_time.remove(&id) {
            self.by_key.remove(&k);
        }
        Some(id.0)
    }

    /// Forgets the times before `before`.
    fn prune(&mut self, before: Instant) {
        let keep = self.by_time.split_off(&(before, 0));
        for key in std::mem::replace(&mut self.by_time, keep).into_values().flatten() {
            self.by_key.remove(&key);
        }
    }
}

impl GraphThrottle {
    pub fn new(limits: GraphLimits) -> Self {
        Self { limits, tenants: Mutex::default(), stats: Arc::default() }
    }

    pub fn tenant(&self, tenant: &str) -> Arc<TenantGate> {
        let mut tenants = self.tenants.lock().expect("not poisoned");
        tenants
            .entry(tenant.to_ascii_lowercase())
            .or_insert_with(|| {
                Arc::new(TenantGate {
                    limits: self.limits.clone(),
                    state: Mutex::new(GateState {
                        writes: VecDeque::new(),
                        units: VecDeque::new(),
                        unit_sum: 0,
                        write_factor: self.limits.headroom,
                        unit_factor: self.limits.unit_headroom,
                        paused_until: None,
                        promised: Promises::default(),
                        promises_pruned: Instant::now(),
                        last_promise: None,
                    }),
                    stats: self.stats.clone(),
                })
            })
            .clone()
    }

    /// The effective (write, resource unit) limits of a tenant right now.
    pub fn effective_limits(&self, tenant: &str) -> (u32, u32) {
        let gate = self.tenant(tenant);
        let state = gate.state.lock().expect("not poisoned");
        (gate.write_limit(&state), gate.unit_limit(&state))
    }
}

/// Floor for adapted limits: never below a tenth of the documented limit.
const MIN_FACTOR: f64 = 0.1;

/// How late a deferred write may come back and still use the time kept for it: it is counted at
/// that time, so a later send shifts Graph's count by at most this (the headroom absorbs it). A
/// deferred object comes back through its own lane of slots (`controller::queue`), so it is late
/// by little more than the reads before its write.
const PROMISE_GRACE: Duration = Duration::from_secs(10);

/// How late past its time a deferred write's object may be before any other write may use that
/// time (still within [`PROMISE_GRACE`] of it, so Graph's count moves no more than for a late
/// owner). Objects come back late when many fall due together (10,000 registrations created at
/// once): without this, every late object gave its time back unused and took a new one at the
/// end of the line, and the tenant's writes stopped altogether while every reconcile deferred.
const CLAIM_AFTER: Duration = Duration::from_secs(2);

/// The longest a 429 pauses a tenant. Graph's `Retry-After` is seconds to a few minutes; a larger
/// value (a proxy's, a bug's) must not stop every reconcile of the tenant for hours, and an
/// unbounded one would overflow the clock while the tenant's lock is held.
pub const MAX_PAUSE: Duration = Duration::from_secs(5 * 60);

impl TenantGate {
    fn write_limit(&self, s: &GateState) -> u32 {
        ((self.limits.writes as f64 * s.write_factor).floor() as u32).max(1)
    }

    fn unit_limit(&self, s: &GateState) -> u32 {
        ((self.limits.resource_units as f64 * s.unit_factor).floor() as u32).max(2)
    }

    fn prune(&self, s: &mut GateState, now: Instant) {
        while s.writes.front().is_some_and(|t| *t + self.limits.write_window <= now) {
            s.writes.pop_front();
        }
        while let Some((t, u)) = s.units.front().copied() {
            if t + self.limits.unit_window > now {
                break;
            }
            s.units.pop_front();
            s.unit_sum -= u;
        }
        // Promises not claimed within a window are forgotten (their slots stay counted as used).
        if s.promises_pruned + self.limits.write_window <= now {
            if let Some(before) = now.checked_sub(self.limits.write_window) {
                s.promised.prune(before);
            }
            s.promises_pruned = now;
        }
    }

    /// How long until `cost` fits (zero when it fits now).
    fn wait_for(&self, s: &GateState, cost: Cost, now: Instant) -> Duration {
        let mut until = now;
        if let Some(p) = s.paused_until {
            until = until.max(p);
        }
        if cost.write && s.writes.len() as u32 >= self.write_limit(s) {
            // Room once enough of the oldest writes leave the window.
            let excess = s.writes.len() + 1 - self.write_limit(s) as usize;
            if let Some(t) = s.writes.get(excess - 1) {
                until = until.max(*t + self.limits.write_window);
            }
        }
        if s.unit_sum + cost.units > self.unit_limit(s) {
            let mut freed = 0;
            let need = s.unit_sum + cost.units - self.unit_limit(s);
            for (t, u) in &s.units {
                freed += u;
                if freed >= need {
                    until = until.max(*t + self.limits.unit_window);
                    break;
                }
            }
        }
        until.saturating_duration_since(now)
    }

    /// Records a request sent (or to be sent) at `at`, keeping the logs sorted.
    fn record(&self, s: &mut GateState, cost: Cost, at: Instant) {
        if cost.write {
            let i = s.writes.partition_point(|t| *t <= at);
            s.writes.insert(i, at);
        }
        let i = s.units.partition_point(|(t, _)| *t <= at);
        s.units.insert(i, (at, cost.units));
        s.unit_sum += cost.units;
    }

    /// Takes back a request recorded at `at` that was never sent.
    fn unrecord(&self, s: &mut GateState, cost: Cost, at: Instant) {
        if cost.write
            && let Some(i) = s.writes.iter().position(|t| *t == at)
        {
            s.writes.remove(i);
        }
        if let Some(i) = s.units.iter().position(|(t, u)| *t == at && *u == cost.units) {
            s.units.remove(i);
            s.unit_sum -= cost.units;
        }
    }

    /// Waits until the request fits the tenant's budgets, then lets it go. The request is given
    /// its time first (in the order requests arrive) and then sleeps without holding anything.
    ///
    /// Inside a reconcile the wait is charged to its wait budget (`http::charge_wait`): a wait
    /// that does not fit returns `Err(wait)` without sleeping, and a write keeps the time it was
    /// given for the object's next reconcile (which comes back after `wait`).
    pub async fn admit(&self, cost: Cost) -> Result<(), Duration> {
        let key = if cost.write { crate::http::budget_key() } else { None };
        let now = Instant::now();
        let wait = {
            let mut s = self.state.lock().expect("not poisoned");
            self.prune(&mut s, now);
            let promised = key.as_ref().and_then(|k| s.promised.take(k));
            // A kept time missed by more than the grace is given back (no request went at that
            // time) and the write takes a new one: lateness costs the object its place, never
            // Graph's budget.
            let promised = match promised {
                Some(at) if at + PROMISE_GRACE < now => {
                    self.unrecord(&mut s, cost, at);
                    None
                }
                other => other,
            };
            // A time kept for an object that did not come for it, free to use now.
            let orphan = |s: &mut GateState| {
                if !cost.write {
                    return None;
                }
                let from = now.checked_sub(PROMISE_GRACE).unwrap_or(now);
                let to = now.checked_sub(CLAIM_AFTER)?;
                s.promised.claim(from, to)
            };
            match promised {
                // The time kept for this object when its write was deferred.
                Some(at) => {
                    let wait = at.saturating_duration_since(now);
                    if !crate::http::charge_wait(wait) {
                        // Still ahead: an orphaned time now beats it, and its own goes to
                        // whoever comes then.
                        if orphan(&mut s).is_some() {
                            s.promised.insert(None, at);
                            Duration::ZERO
                        } else {
                            s.promised.insert(key.clone(), at);
                            self.stats.deferred.fetch_add(1, Ordering::Relaxed);
                            crate::http::defer(wait);
                            return Err(wait);
                        }
                    } else {
                        wait
                    }
                }
                None if orphan(&mut s).is_some() => Duration::ZERO,
                None => {
                    let wait = self.wait_for(&s, cost, now);
                    if !crate::http::charge_wait(wait) {
                        // Deferred writes are spread at the sustained rate, so that the objects
                        // coming back for them do not arrive in bursts (a burst of creations
                        // would otherwise be repeated every window) and miss their times.
                        let mut at = now + wait;
                        if cost.write {
                            let spacing = self.limits.write_window / self.write_limit(&s);
                            at = at.max(s.last_promise.map_or(now, |l| l + spacing));
                            self.record(&mut s, cost, at);
                            s.last_promise = Some(at);
                            s.promised.insert(key, at);
                        }
                        let wait = at - now;
                        self.stats.deferred.fetch_add(1, Ordering::Relaxed);
                        crate::http::defer(wait);
                        return Err(wait);
                    }
                    self.record(&mut s, cost, now + wait);
                    wait
                }
            }
        };
        if !wait.is_zero() {
            self.stats.delayed.fetch_add(1, Ordering::Relaxed);
            self.stats.waited_ms.fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
        // A 429 answered meanwhile pauses every request of the tenant, this one too.
        let paused = self.state.lock().expect("not poisoned").paused_until;
        if let Some(until) = paused.filter(|p| *p > Instant::now()) {
            let wait = until - Instant::now();
            if !crate::http::charge_wait(wait) {
                self.stats.deferred.fetch_add(1, Ordering::Relaxed);
                crate::http::defer(wait);
                return Err(wait);
            }
            self.stats.waited_ms.fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Learns from an answer: 429 pauses the tenant and shrinks the limit it names; a reported
    /// use above what the log explains shrinks both; a quiet success restores a little.
    pub fn observe(&self, status: StatusCode, headers: &HeaderMap, retry_after: Option<Duration>) {
        let now = Instant::now();
        let mut s = self.state.lock().expect("not poisoned");
        self.prune(&mut s, now);
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let pause = retry_after.unwrap_or(self.limits.default_pause).min(MAX_PAUSE);
            // Requests in flight when Graph started throttling all come back 429 together: one
            // overload is one shrink, not one per request.
            let already_paused = s.paused_until.is_some_and(|p| p > now);
            let until = now.checked_add(pause).unwrap_or(now);
            s.paused_until = Some(s.paused_until.unwrap_or(now).max(until));
            if already_paused {
                return;
            }
            let scope = header("x-ms-throttle-scope");
            let info = header("x-ms-throttle-information");
            let writes = info.contains("Write") || scope.contains("/Write/");
            let units = info.contains("ResourceUnit") || !writes;
            if writes {
                s.write_factor = (s.write_factor * 0.8).max(MIN_FACTOR);
            }
            if units {
                s.unit_factor = (s.unit_factor * 0.8).max(MIN_FACTOR);
            }
            self.stats.shrinks.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                write_limit = self.write_limit(&s),
                unit_limit = self.unit_limit(&s),
                ?pause,
                "Graph throttled: pausing tenant"
            );
            return;
        }
        if !status.is_success() {
            return;
        }
        let reported = header("x-ms-throttle-limit-percentage").trim().parse::<f64>().ok();
        match reported {
            Some(p) => {
                // Our own share of each documented limit, as Graph would count it.
                let own = (s.writes.len() as f64 / self.limits.writes as f64)
                    .max(s.unit_sum as f64 / self.limits.resource_units as f64);
                if p > own + 0.05 {
                    // Someone else uses the budget too (or the limit is lower): give way.
                    s.write_factor = (s.write_factor * 0.9).max(MIN_FACTOR);
                    s.unit_factor = (s.unit_factor * 0.9).max(MIN_FACTOR);
                    self.stats.shrinks.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(reported = p, own, "Graph reports more use than ours: slowing down");
                }
            }
            None => {
                s.write_factor = (s.write_factor + 0.002).min(self.limits.headroom);
                s.unit_factor = (s.unit_factor + 0.002).min(self.limits.unit_headroom);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(writes: u32, units: u32) -> GraphLimits {
        GraphLimits {
            writes,
            write_window: Duration::from_secs(10),
            resource_units: units,
            unit_window: Duration::from_secs(1),
            headroom: 1.0,
            unit_headroom: 1.0,
            default_pause: Duration::from_secs(3),
        }
    }

    const WRITE: Cost = Cost { write: true, units: 1 };
    const READ: Cost = Cost { write: false, units: 1 };

    #[test]
    fn costs_follow_the_published_table() {
        use reqwest::Method;
        assert_eq!(Cost::of(&Method::GET, "applications(uniqueName='x')"), READ);
        assert_eq!(Cost::of(&Method::GET, "applications?$filter=x"), Cost { write: false, units: 2 });
        assert_eq!(Cost::of(&Method::GET, "oauth2PermissionGrants?$filter=clientId eq 'x'").units, 2);
        assert_eq!(Cost::of(&Method::GET, "servicePrincipals/abc/appRoleAssignments").units, 2);
        assert_eq!(Cost::of(&Method::PATCH, "applications/abc"), WRITE);
        assert_eq!(Cost::of(&Method::POST, "applications/abc/addPassword"), WRITE);
    }

    #[tokio::test(start_paused = true)]
    async fn writes_beyond_the_window_wait_for_the_oldest_to_leave() {
        let throttle = GraphThrottle::new(limits(3, 1000));
        let gate = throttle.tenant("t");
        let start = Instant::now();
        for _ in 0..3 {
            gate.admit(WRITE).await.unwrap();
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        gate.admit(WRITE).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        assert_eq!(throttle.stats.delayed.load(Ordering::Relaxed), 1);
        // Reads are not held back by the write budget.
        let before = Instant::now();
        gate.admit(READ).await.unwrap();
        assert_eq!(before.elapsed(), Duration::ZERO);
    }

    /// Inside a reconcile (a wait budget of 2 s) a write that would wait 10 s is not slept: the
    /// reconcile gets the wait back at once, and the write keeps the time it was given, so that
    /// objects asking meanwhile queue behind it and it goes at that time when it comes back.
    #[tokio::test(start_paused = true)]
    async fn a_reconciles_long_wait_is_deferred_and_the_write_keeps_its_place() {
        use crate::http::with_wait_budget;
        let throttle = GraphThrottle::new(limits(1, 1000));
        let gate = throttle.tenant("t");
        let budget = Duration::from_secs(2);
        gate.admit(WRITE).await.unwrap();
        let start = Instant::now();
        let a = with_wait_budget("ns/a".into(), budget, gate.admit(WRITE)).await.0;
        assert_eq!(a, Err(Duration::from_secs(10)));
        assert_eq!(start.elapsed(), Duration::ZERO, "the wait was not slept");
        let b = with_wait_budget("ns/b".into(), budget, gate.admit(WRITE)).await.0;
        assert_eq!(b, Err(Duration::from_secs(20)), "behind the place kept for ns/a");
        tokio::time::sleep(Duration::from_secs(10)).await;
        let a = with_wait_budget("ns/a".into(), budget, gate.admit(WRITE)).await.0;
        assert_eq!(a, Ok(()), "ns/a's write goes at its time");
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        let c = with_wait_budget("ns/c".into(), budget, gate.admit(WRITE)).await.0;
        assert_eq!(c, Err(Duration::from_secs(20)), "behind ns/b, which asked before");
        // ns/b comes back 15 s after its time (more than the grace): that time is given back
        // (nothing was sent then). ns/c's time (30 s) is 5 s past and ns/c has not come for it:
        // ns/b takes it and goes at once.
        tokio::time::sleep(Duration::from_secs(25)).await;
        let b = with_wait_budget("ns/b".into(), budget, gate.admit(WRITE)).await.0;
        assert_eq!(b, Ok(()), "ns/b took the time ns/c did not come for");
        assert_eq!(start.elapsed(), Duration::from_secs(35));
        assert_eq!(gate.state.lock().unwrap().writes, [start + Duration::from_secs(30)], "ns/b's old time is gone");
        // ns/c comes late for a time that was used: it queues anew, one window after it.
        let c = with_wait_budget("ns/c".into(), budget, gate.admit(WRITE)).await.0;
        assert_eq!(c, Err(Duration::from_secs(5)));
        let (writes, _) = throttle.effective_limits("t");
        assert_eq!(writes, 1);
        // A wait within the budget is slept as before.
        let start = Instant::now();
        let read = with_wait_budget("ns/d".into(), budget, gate.admit(READ)).await.0;
        assert_eq!((read, start.elapsed()), (Ok(()), Duration::ZERO));
        assert_eq!(throttle.stats.deferred.load(Ordering::Relaxed), 4);
    }

    /// Registrations created together come back for their deferred writes late, all of them (at
    /// 10,000 the reconciles that fall due together wait long for a slot). Each late object used
    /// to give its time back and take a new one at the end of the line: no write went at all
    /// while every reconcile deferred. Now a time its object is late for goes to whoever writes
    /// then, and the budget is used to the end.
    #[tokio::test(start_paused = true)]
    async fn objects_that_all_come_back_late_still_use_the_whole_write_budget() {
        use crate::http::with_wait_budget;
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let throttle = GraphThrottle::new(limits(10, 1000));
        let gate = throttle.tenant("t");
        let start = Instant::now();
        let late = Duration::from_secs(15);
        let mut due: BinaryHeap<Reverse<(Instant, usize)>> = (0..200).map(|i| Reverse((start, i))).collect();
        let mut sent = Vec::new();
        while let Some(Reverse((at, i))) = due.pop() {
            if at > start + Duration::from_secs(600) {
                break;
            }
            tokio::time::sleep_until(at).await;
            match with_wait_budget(format!("ns/{i}"), Duration::from_secs(2), gate.admit(WRITE)).await.0 {
                Ok(()) => sent.push(Instant::now() - start),
                Err(wait) => due.push(Reverse((Instant::now() + wait + late, i))),
            }
        }
        let last = sent.last().copied().unwrap_or_default();
        println!("{} writes, the last after {last:?}", sent.len());
        assert_eq!(sent.len(), 200, "every object wrote");
        // 10 writes per 10 s: the first 10 at once, then 190 more need at least 190 s.
        assert!(last >= Duration::from_secs(190), "faster than the limit: {last:?}");
        assert!(last <= Duration::from_secs(240), "the budget went unused: {last:?}");
        // As Graph counts them (when sent): a time is used at most the grace after it.
        let most =
            sent.iter().map(|t| sent.iter().filter(|u| **u >= *t && **u < *t + Duration::from_secs(10)).count()).max();
        assert!(most <= Some(10 + 10), "{most:?} writes in 10 s");
    }

    /// Writes deferred together are given times spread at the sustained rate, not the shape of
    /// the burst that filled the window (which would repeat every window).
    #[tokio::test(start_paused = true)]
    async fn deferred_writes_are_spread_at_the_sustained_rate() {
        use crate::http::with_wait_budget;
        let throttle = GraphThrottle::new(limits(10, 1000));
        let gate = throttle.tenant("t");
        for _ in 0..10 {
            gate.admit(WRITE).await.unwrap();
        }
        let mut waits = Vec::new();
        for i in 0..20 {
            let wait = with_wait_budget(format!("ns/{i}"), Duration::from_secs(2), gate.admit(WRITE)).await.0;
            waits.push(wait.unwrap_err().as_secs());
        }
        assert_eq!(waits, (10..30).collect::<Vec<_>>(), "one per second from the end of the burst's window");
    }

    #[tokio::test(start_paused = true)]
    async fn resource_units_are_budgeted_per_window() {
        let throttle = GraphThrottle::new(limits(100, 4));
        let gate = throttle.tenant("t");
        let start = Instant::now();
        gate.admit(Cost { write: false, units: 2 }).await.unwrap();
        gate.admit(Cost { write: false, units: 2 }).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
        gate.admit(READ).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_the_tenant_and_shrinks_the_named_limit() {
        let throttle = GraphThrottle::new(limits(100, 1000));
        let gate = throttle.tenant("t");
        let mut headers = HeaderMap::new();
        headers.insert("x-ms-throttle-information", "WriteLimitExceeded".parse().unwrap());
        gate.observe(StatusCode::TOO_MANY_REQUESTS, &headers, Some(Duration::from_secs(7)));
        assert_eq!(throttle.effective_limits("t"), (80, 1000));
        // Other requests answered 429 by the same overload: no further shrinking.
        gate.observe(StatusCode::TOO_MANY_REQUESTS, &headers, Some(Duration::from_secs(7)));
        assert_eq!(throttle.effective_limits("t"), (80, 1000));
        let start = Instant::now();
        gate.admit(READ).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(7), "every request of the tenant waits for Retry-After");
        // Without Retry-After: the default pause.
        gate.observe(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), None);
        let start = Instant::now();
        gate.admit(READ).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        // Other tenants are unaffected.
        let start = Instant::now();
        throttle.tenant("other").admit(WRITE).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_huge_retry_after_pauses_the_tenant_for_at_most_five_minutes_and_never_panics() {
        let throttle = GraphThrottle::new(limits(100, 1000));
        let gate = throttle.tenant("t");
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", u64::MAX.to_string().parse().unwrap());
        // What `http::retry_after` makes of that header: about 585 billion years.
        let huge = crate::http::retry_after(&headers);
        assert_eq!(huge, Some(Duration::from_secs(u64::MAX)));
        gate.observe(StatusCode::TOO_MANY_REQUESTS, &headers, huge);
        gate.observe(StatusCode::TOO_MANY_REQUESTS, &headers, Some(Duration::MAX));
        let start = Instant::now();
        gate.admit(READ).await.unwrap();
        assert_eq!(start.elapsed(), MAX_PAUSE);
        // The tenant's state is still usable (no lock poisoned by a panic).
        gate.observe(StatusCode::OK, &HeaderMap::new(), None);
        let start = Instant::now();
        gate.admit(READ).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn reported_use_above_ours_slows_down_and_quiet_successes_recover() {
        let throttle = GraphThrottle::new(limits(100, 1000));
        let gate = throttle.tenant("t");
        gate.admit(WRITE).await.unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-ms-throttle-limit-percentage", "0.9".parse().unwrap());
        gate.observe(StatusCode::OK, &headers, None);
        assert_eq!(throttle.effective_limits("t"), (90, 900));
        // Graph's figure matching our own use changes nothing.
        for _ in 0..89 {
            gate.admit(WRITE).await.unwrap();
        }
        gate.observe(StatusCode::OK, &headers, None);
        assert_eq!(throttle.effective_limits("t"), (90, 900));
        for _ in 0..100 {
            gate.observe(StatusCode::OK, &HeaderMap::new(), None);
        }
        assert_eq!(throttle.effective_limits("t"), (100, 1000));
    }
}
