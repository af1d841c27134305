//! When each object of a kind was first reconciled, seen from a watch: the moment it appeared,
//! the moment the operator's finalizer appeared (the first thing its first reconcile writes), the
//! first status the operator wrote (`observedGeneration` set: the first reconcile that did real
//! work) and the first time it was Ready. Times are on the watcher's clock, so the watch's own
//! delay cancels out. Used by the load test and the benchmark to print time-to-first-reconcile
//! percentiles next to time to Ready.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connect_email_operator::api::{AzureAppRegistration, EmailChannel, FINALIZER};
use futures::StreamExt;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};

#[derive(Clone, Copy, Debug)]
pub struct Times {
    pub seen: Instant,
    pub finalizer: Option<Instant>,
    pub status: Option<Instant>,
    pub ready: Option<Instant>,
}

/// The objects of one kind in a namespace, followed until dropped.
pub struct Timeline {
    times: Arc<Mutex<BTreeMap<String, Times>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Timeline {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a timeline needs to know about a kind.
pub trait Tracked:
    kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static
{
    fn status_written(&self) -> bool;
    fn is_ready(&self) -> bool;
}

fn ready(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> bool {
    conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
}

impl Tracked for AzureAppRegistration {
    fn status_written(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.observed_generation.is_some())
    }
    fn is_ready(&self) -> bool {
        self.status.as_ref().is_some_and(|s| ready(&s.conditions))
    }
}

impl Tracked for EmailChannel {
    fn status_written(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.observed_generation.is_some())
    }
    fn is_ready(&self) -> bool {
        self.status.as_ref().is_some_and(|s| ready(&s.conditions))
    }
}

impl Timeline {
    /// Starts following `api` (start it before the objects are created).
    pub fn follow<K: Tracked>(api: Api<K>) -> Timeline {
        let times: Arc<Mutex<BTreeMap<String, Times>>> = Arc::default();
        let task = {
            let times = times.clone();
            tokio::spawn(async move {
                let mut events =
                    std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff().applied_objects());
                while let Some(event) = events.next().await {
                    let Ok(obj) = event else { continue };
                    let now = Instant::now();
                    let name = obj.meta().name.clone().unwrap_or_default();
                    let mut times = times.lock().unwrap();
                    let t =
                        times.entry(name).or_insert(Times { seen: now, finalizer: None, status: None, ready: None });
                    if t.finalizer.is_none() && obj.meta().finalizers.iter().flatten().any(|f| f == FINALIZER) {
                        t.finalizer = Some(now);
                    }
                    if t.status.is_none() && obj.status_written() {
                        t.status = Some(now);
                    }
                    if t.ready.is_none() && obj.is_ready() {
                        t.ready = Some(now);
                    }
                }
            })
        };
        Timeline { times, task }
    }

    pub fn times(&self) -> BTreeMap<String, Times> {
        self.times.lock().unwrap().clone()
    }

    /// Objects seen but never reconciled (no finalizer yet), and those without a status yet.
    pub fn unreconciled(&self) -> (Vec<String>, Vec<String>) {
        let times = self.times();
        let no_finalizer = times.iter().filter(|(_, t)| t.finalizer.is_none()).map(|(n, _)| n.clone()).collect();
        let no_status = times.iter().filter(|(_, t)| t.status.is_none()).map(|(n, _)| n.clone()).collect();
        (no_finalizer, no_status)
    }

    /// `p50 / p99 / max` of the time from appearing to `at`, over the objects that got there, and
    /// how many did (`n of m`).
    pub fn percentiles(&self, at: impl Fn(&Times) -> Option<Instant>) -> String {
        let times = self.times();
        let mut d: Vec<Duration> =
            times.values().filter_map(|t| at(t).map(|x| x.saturating_duration_since(t.seen))).collect();
        d.sort();
        if d.is_empty() {
            return format!("none of {}", times.len());
        }
        let p = |q: f64| d[((q * d.len() as f64).ceil() as usize).clamp(1, d.len()) - 1].as_secs_f64();
        format!("{:.1} / {:.1} / {:.1} s ({} of {})", p(0.5), p(0.99), p(1.0), d.len(), times.len())
    }

    /// The three figures the reports print: to the finalizer, to the first status, to Ready.
    pub fn rows(&self, what: &str) -> Vec<(String, String)> {
        vec![
            (
                format!("{what}: time to first reconcile (finalizer), p50 / p99 / max"),
                self.percentiles(|t| t.finalizer),
            ),
            (format!("{what}: time to first status write, p50 / p99 / max"), self.percentiles(|t| t.status)),
            (format!("{what}: time to Ready, p50 / p99 / max"), self.percentiles(|t| t.ready)),
        ]
    }
}
