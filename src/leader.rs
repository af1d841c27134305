//! Leader election on a `coordination.k8s.io/v1` Lease, so that two replicas never reconcile at
//! once, with client-go's semantics (`leaderelection` with `ReleaseOnCancel`):
//!
//! - **Expiry on the candidate's own monotonic clock.** A candidate never compares the holder's
//!   `renewTime` with its own wall clock (replicas' clocks differ). It remembers the record it last
//!   saw (spec and resourceVersion) and when, by its monotonic clock, that record last changed; it
//!   takes the Lease over only once the same record has stood unchanged for `leaseDurationSeconds`.
//!   The Lease's times are written for people reading it, never read for decisions.
//! - **Optimistic concurrency.** Every write carries the resourceVersion that was read, so of two
//!   candidates acting on the same record one gets a 409 and stays a candidate.
//! - **Renew deadline shorter than the lease.** The leader renews every `retry_period`, each call
//!   bounded by the time left before its deadline; when it has not renewed for `renew_deadline`
//!   it aborts its work (every in-flight reconcile) and steps down. A renewal counts from the
//!   moment its request was started, before any candidate can have seen it, so the work has
//!   stopped at least `lease_duration - renew_deadline` before anyone else can take the Lease.
//! - **Release on shutdown.** On SIGTERM the leader stops its work (in-flight reconciles get
//!   [`LeaseSettings::stop_grace`], then are aborted) and then releases the Lease (no holder,
//!   `leaseDurationSeconds: 1`); standbys watch the Lease (and poll every `retry_period`), so one
//!   takes over at once instead of after a whole lease duration.
//!
//! `kube-lease-manager` was evaluated and not used: it decides expiry from the holder's
//! `renewTime` against the local wall clock, the clock-skew problem this module avoids.
//!
//! For tests, `CEO_LEADER_CLOCK_OFFSET` (a signed duration such as `+5m` or `-30s`, read only
//! here) shifts the wall clock this candidate writes into the Lease, to prove that skew does not
//! matter. It changes nothing else and is not meant for production.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::time::Instant;

/// Environment variable with the test-only wall-clock offset (see the module documentation).
pub const CLOCK_OFFSET_ENV: &str = "CEO_LEADER_CLOCK_OFFSET";

#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This candidate's identity (the pod name).
    pub identity: String,
    /// How long a candidate waits, on its own clock, after it last saw the Lease change before
    /// taking it over (written as `leaseDurationSeconds`).
    pub lease_duration: Duration,
    /// The leader steps down when it has not renewed for this long; shorter than `lease_duration`.
    pub renew_deadline: Duration,
    /// Time between renewals (leader) and attempts (candidates): a released Lease is taken over
    /// within one period.
    pub retry_period: Duration,
    /// On shutdown, how long in-flight work may finish before it is aborted and the Lease released.
    pub stop_grace: Duration,
    /// Added to the wall clock written into the Lease (tests of clock skew).
    pub clock_offset: SignedDuration,
}

impl LeaseSettings {
    /// client-go's proportions for the renew deadline (two thirds of the lease), a retry period of
    /// a fifteenth (1 s for the default 15 s, so a rollout hands over within about a second), a
    /// one-second stop grace, and the clock offset from [`CLOCK_OFFSET_ENV`].
    pub fn new(namespace: &str, name: &str, identity: &str, lease_duration: Duration) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration,
            renew_deadline: lease_duration * 2 / 3,
            retry_period: lease_duration / 15,
            stop_grace: Duration::from_secs(1),
            clock_offset: clock_offset_from_env(),
        }
    }
}

/// The test-only wall-clock offset from [`CLOCK_OFFSET_ENV`] (zero when unset or unreadable).
pub fn clock_offset_from_env() -> SignedDuration {
    let Ok(text) = std::env::var(CLOCK_OFFSET_ENV) else { return SignedDuration::ZERO };
    let text = text.trim();
    match text.strip_prefix('+').unwrap_or(text).parse::<SignedDuration>() {
        Ok(offset) => {
            tracing::warn!(%offset, "leader election: wall clock offset for tests is set");
            offset
        }
        Err(e) => {
            tracing::warn!(value = text, error = %e, "leader election: ignoring an unreadable {CLOCK_OFFSET_ENV}");
            SignedDuration::ZERO
        }
    }
}

/// How a leader's term, or a candidacy, ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Shutdown was requested (before leading, or the work was stopped and the Lease released).
    Shutdown,
    /// The work ended by itself; the Lease was released.
    WorkEnded,
    /// Renewal failed past the deadline, or another holder was found: the work was aborted.
    Lost,
}

/// What a leader's work gets: resolves when the work should stop gracefully (shutdown).
pub struct StopSignal(tokio::sync::oneshot::Receiver<()>);

impl Future for StopSignal {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}

/// Times of one candidate's leadership, on the monotonic clock (for tests and logs).
#[derive(Debug, Default)]
pub struct LeaderStatus {
    leading: AtomicBool,
    times: Mutex<Times>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Times {
    /// When the request that won the Lease was started.
    pub acquired: Option<Instant>,
    /// When the last successful renewal's request was started.
    pub renewed: Option<Instant>,
    /// When the work had stopped after leadership ended.
    pub stepped_down: Option<Instant>,
}

impl LeaderStatus {
    /// True from winning the Lease until the work has stopped.
    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    pub fn times(&self) -> Times {
        *self.times.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut Times)) {
        f(&mut self.times.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// What one acquire-or-renew attempt found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    /// This candidate holds the Lease (acquired or renewed).
    Holding,
    /// Another candidate holds a Lease that has not expired on this candidate's clock.
    HeldByAnother,
    /// The Lease changed between read and write (409): someone else wrote first.
    Conflict,
}

/// The Lease record as last seen, and when (monotonic) it last changed.
struct Observed {
    spec: Option<LeaseSpec>,
    resource_version: Option<String>,
    since: Instant,
}

/// One candidate.
pub struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    observed: Mutex<Option<Observed>>,
    status: std::sync::Arc<LeaderStatus>,
}

impl Elector {
    pub fn new(client: kube::Client, settings: LeaseSettings) -> Self {
        assert!(settings.renew_deadline < settings.lease_duration, "the renew deadline must be shorter than the lease");
        assert!(settings.retry_period < settings.renew_deadline, "the retry period must be shorter than the deadline");
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: Mutex::default(),
            status: std::sync::Arc::default(),
        }
    }

    pub fn settings(&self) -> &LeaseSettings {
        &self.settings
    }

    /// This candidate's leadership, readable while [`Elector::run`] runs.
    pub fn status(&self) -> std::sync::Arc<LeaderStatus> {
        self.status.clone()
    }

    fn wall_clock(&self) -> MicroTime {
        let now = Timestamp::now();
        MicroTime(now.checked_add(self.settings.clock_offset).unwrap_or(now))
    }

    /// Remembers `lease` as seen now; returns since when its record has been unchanged.
    fn observe(&self, lease: &Lease) -> Instant {
        let mut observed = self.observed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match observed.as_ref() {
            Some(o) if o.spec == lease.spec && o.resource_version == lease.metadata.resource_version => o.since,
            _ => {
                let since = Instant::now();
                *observed = Some(Observed {
                    spec: lease.spec.clone(),
                    resource_version: lease.metadata.resource_version.clone(),
                    since,
                });
                since
            }
        }
    }

    /// One attempt to acquire or renew. Ok(true) while this candidate holds the lease.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        Ok(self.attempt().await? == Attempt::Holding)
    }

    async fn attempt(&self) -> Result<Attempt, kube::Error> {
        let s = &self.settings;
        let now = self.wall_clock();
        let spec = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
            holder_identity: Some(s.identity.clone()),
            lease_duration_seconds: Some(s.lease_duration.as_secs().max(1) as i32),
            acquire_time: acquired.or(Some(now.clone())),
            renew_time: Some(now.clone()),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        };
        let Some(mut lease) = self.api.get_opt(&s.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(s.name.clone()), ..ObjectMeta::default() },
                spec: Some(spec(0, None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created);
                    Ok(Attempt::Holding)
                }
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Conflict),
                Err(e) => Err(e),
            };
        };
        let unchanged_since = self.observe(&lease);
        let current = lease.spec.clone().unwrap_or_default();
        let holder = current.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(s.identity.as_str());
        if holder.is_some() && !ours {
            // The holder's own duration, measured from when *we* saw its last renewal.
            let lease_for = current
                .lease_duration_seconds
                .map(|secs| Duration::from_secs(secs.max(1) as u64))
                .unwrap_or(s.lease_duration);
            if unchanged_since.elapsed() < lease_for {
                return Ok(Attempt::HeldByAnother);
            }
        }
        let transitions = current.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let acquired = if ours { current.acquire_time.clone() } else { None };
        lease.spec = Some(spec(transitions, acquired));
        // replace() carries the resourceVersion we read: a concurrent winner makes this a 409.
        match self.api.replace(&s.name, &PostParams::default(), &lease).await {
            Ok(written) => {
                self.observe(&written);
                Ok(Attempt::Holding)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Conflict),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up if this candidate holds it: no holder and a one-second duration, so
    /// candidates take it at their next attempt. Ok(true) when it was released.
    pub async fn release(&self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else { return Ok(false) };
        let current = lease.spec.clone().unwrap_or_default();
        if current.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(false);
        }
        let now = self.wall_clock();
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: current.lease_transitions,
            ..LeaseSpec::default()
        });
        match self.api.replace(&self.settings.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn release_logged(&self) {
        match tokio::time::timeout(self.settings.renew_deadline, self.release()).await {
            Ok(Ok(true)) => tracing::info!(lease = %self.settings.name, "released the Lease"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "leader election: could not release the Lease"),
            Err(_) => tracing::warn!("leader election: releasing the Lease timed out"),
        }
    }

    /// Campaigns until this candidate leads, then runs `work` (spawned) while renewing. Ends when
    /// `shutdown` resolves (the work is asked to stop, aborted after the stop grace, and the Lease
    /// released), when the work ends (the Lease is released), or when leadership is lost (the
    /// work is aborted before the lease could pass to another candidate).
    pub async fn run<W, F>(self, shutdown: impl Future<Output = ()>, work: W) -> Outcome
    where
        W: FnOnce(StopSignal) -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        let s = self.settings.clone();
        tokio::pin!(shutdown);

        // Campaign. A watch on the Lease wakes the candidate as soon as it changes (a release),
        // so a handover does not wait for the next retry period.
        let changed = std::sync::Arc::new(tokio::sync::Notify::new());
        let watch = AbortOnDrop(tokio::spawn(watch_lease(self.api.clone(), s.name.clone(), changed.clone())));
        let mut renewed = loop {
            let started = Instant::now();
            let attempt = tokio::time::timeout(s.renew_deadline, self.attempt());
            let won = tokio::select! {
                biased;
                () = &mut shutdown => {
                    // An attempt cut short may have won on the server: give it back if so.
                    self.release_logged().await;
                    return Outcome::Shutdown;
                }
                result = attempt => match result {
                    Ok(Ok(found)) => found == Attempt::Holding,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "leader election: cannot read or write the Lease");
                        false
                    }
                    Err(_) => {
                        tracing::warn!("leader election: the Lease request timed out");
                        false
                    }
                },
            };
            if won {
                break started;
            }
            tokio::select! {
                biased;
                () = &mut shutdown => return Outcome::Shutdown,
                () = changed.notified() => {}
                () = tokio::time::sleep(s.retry_period) => {}
            }
        };
        drop(watch);
        self.status.leading.store(true, Ordering::SeqCst);
        self.status.update(|t| {
            t.acquired = Some(renewed);
            t.renewed = Some(renewed);
            t.stepped_down = None;
        });
        tracing::info!(identity = %s.identity, lease = %s.name, "became the leader");

        // Lead.
        let (stop, stop_signal) = tokio::sync::oneshot::channel();
        let mut task = tokio::spawn(work(StopSignal(stop_signal)));
        let outcome = loop {
            let deadline = renewed + s.renew_deadline;
            let renewal = async {
                tokio::time::sleep(s.retry_period).await;
                let started = Instant::now();
                // Bounded by the deadline: a hung request cannot carry the leader past it.
                (started, tokio::time::timeout_at(deadline, self.attempt()).await)
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break Outcome::Shutdown,
                ended = &mut task => {
                    if let Err(e) = ended {
                        tracing::error!(error = %e, "the leader's work failed");
                    }
                    break Outcome::WorkEnded;
                }
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(deadline = ?s.renew_deadline, "leader election: could not renew the Lease in time");
                    break Outcome::Lost;
                }
                (started, result) = renewal => match result {
                    Ok(Ok(Attempt::Holding)) => {
                        renewed = started;
                        self.status.update(|t| t.renewed = Some(started));
                    }
                    Ok(Ok(Attempt::HeldByAnother)) => {
                        tracing::warn!("leader election: the Lease has another holder");
                        break Outcome::Lost;
                    }
                    // Someone wrote the Lease between our read and write (a person editing it, or a
                    // successor): the next attempt reads who holds it, within the deadline.
                    Ok(Ok(Attempt::Conflict)) => tracing::warn!("leader election: conflict renewing the Lease, retrying"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "leader election: renewal failed, retrying"),
                    Err(_) => {
                        tracing::warn!(deadline = ?s.renew_deadline, "leader election: could not renew the Lease in time");
                        break Outcome::Lost;
                    }
                },
            }
        };

        // Step down: the work stops before the Lease is given up (or could be taken).
        match outcome {
            Outcome::Shutdown => {
                let _ = stop.send(());
                // Never past the renew deadline: nobody renews while the work winds down.
                let until = (Instant::now() + s.stop_grace).min(renewed + s.renew_deadline);
                if tokio::time::timeout_at(until, &mut task).await.is_err() {
                    tracing::info!("in-flight reconciles did not finish within the stop grace: aborting them");
                    task.abort();
                    let _ = (&mut task).await;
                }
            }
            Outcome::Lost => {
                task.abort();
                let _ = (&mut task).await;
            }
            Outcome::WorkEnded => {}
        }
        self.status.leading.store(false, Ordering::SeqCst);
        self.status.update(|t| t.stepped_down = Some(Instant::now()));
        match outcome {
            Outcome::Lost => tracing::warn!("lost leadership: every reconcile is stopped"),
            _ => {
                tracing::info!("stopped leading");
                self.release_logged().await;
            }
        }
        outcome
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Notifies `changed` on every change of the Lease `name`, re-watching when a watch ends. Only
/// the `watch` verb is needed; without it (older RBAC) candidates just poll.
async fn watch_lease(api: Api<Lease>, name: String, changed: std::sync::Arc<tokio::sync::Notify>) {
    use futures::StreamExt;
    let params = kube::api::WatchParams::default().fields(&format!("metadata.name={name}")).timeout(290);
    loop {
        match api.watch(&params, "0").await {
            Ok(events) => {
                let mut events = std::pin::pin!(events);
                while let Some(Ok(_)) = events.next().await {
                    changed.notify_one();
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "leader election: cannot watch the Lease; polling only");
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_offset_reads_signed_durations() {
        for (text, expected) in [("+5m", 300), ("5m", 300), ("-30s", -30), ("PT1H", 3600)] {
            let parsed = text.strip_prefix('+').unwrap_or(text).parse::<SignedDuration>().unwrap();
            assert_eq!(parsed, SignedDuration::from_secs(expected), "{text}");
        }
    }

    #[test]
    fn defaults_keep_client_gos_proportions() {
        let s = LeaseSettings::new("ns", "lease", "me", Duration::from_secs(15));
        assert_eq!(s.renew_deadline, Duration::from_secs(10));
        assert_eq!(s.retry_period, Duration::from_secs(1));
    }
}
