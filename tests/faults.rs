//! The fault matrix: an Api-mode EmailChannel is created (or its secret rotated) while one
//! external system misbehaves — Graph, Exchange Online or Webex Connect answering 429 with and
//! without `Retry-After`, a 5xx burst, a request outlasting the client timeout, a connection reset,
//! Entra ID replication lag — or while the Kubernetes API answers writes with 409 Conflict and
//! another writer edits the Secret. Each row asserts that the faulted call was really made and
//! retried, that the channel ends Ready, and the same invariants as the crash matrix. Prints a table
//! and writes it to `target/reports/fault-matrix.md`.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connect_email_sim::connect::routes as connect_routes;
use connect_email_sim::{CallRecord, routes};
use hyper::{Method, StatusCode};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use support::channel::{self, CHANNEL_SECRET, Invariants, Mark};
use support::intercept::{Verdict, intercepted_client};
use support::operator::Harness;
use support::*;

/// The in-process operator's client timeout in every row; the timeout rows delay a request longer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
const OUTLASTING: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum System {
    Graph,
    Exchange,
    Connect,
    Kubernetes,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// A storm of 429s, longer than one request's retry budget (5 attempts).
    Throttled { times: usize, retry_after: Option<u64> },
    /// A burst of 503s.
    Unavailable { times: usize },
    /// One request delayed past the client timeout (the server still processes it).
    Timeout,
    /// Connections closed without an answer.
    Reset { times: usize },
    /// Objects younger than this are invisible to Graph reads and the token endpoint.
    ReplicationLag(Duration),
    /// 409 on the operator's writes (Secret, statuses, registration) while another writer edits the Secret.
    Conflict { times: usize },
}

impl Fault {
    fn label(self) -> String {
        match self {
            Fault::Throttled { times, retry_after: Some(s) } => format!("429 x{times}, Retry-After {s}s"),
            Fault::Throttled { times, retry_after: None } => format!("429 x{times}, no Retry-After"),
            Fault::Unavailable { times } => format!("503 x{times}"),
            Fault::Timeout => format!("{}s latency > {}s timeout", OUTLASTING.as_secs(), CLIENT_TIMEOUT.as_secs()),
            Fault::Reset { times } => format!("connection reset x{times}"),
            Fault::ReplicationLag(d) => format!("replication lag {}s", d.as_secs()),
            Fault::Conflict { times } => format!("409 Conflict x{times} per write + concurrent writer"),
        }
    }

    /// How many faulted answers the row must see.
    fn planned(self) -> Option<usize> {
        match self {
            Fault::Throttled { times, .. } | Fault::Unavailable { times } | Fault::Reset { times } => Some(times),
            Fault::Timeout => Some(1),
            Fault::ReplicationLag(_) => None,
            Fault::Conflict { times } => Some(times * CONFLICT_PATHS.len()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Creation,
    Rotation,
}

/// Which call each system's faults target: the write that matters in the phase where it happens.
fn target(system: System, fault: Fault) -> (&'static str, Phase) {
    match system {
        System::Graph if matches!(fault, Fault::ReplicationLag(_)) => ("reads of new objects, token", Phase::Creation),
        System::Graph => (routes::ADD_PASSWORD, Phase::Rotation),
        System::Exchange => ("Set-Mailbox (forwarding)", Phase::Creation),
        System::Connect => (connect_routes::UPDATE_ASSET, Phase::Rotation),
        System::Kubernetes => ("PATCH Secret, statuses, registration", Phase::Rotation),
    }
}

fn scenarios() -> Vec<(System, Fault)> {
    let mut all = Vec::new();
    for system in [System::Graph, System::Exchange, System::Connect] {
        all.extend([
            (system, Fault::Throttled { times: 6, retry_after: Some(1) }),
            (system, Fault::Throttled { times: 6, retry_after: None }),
            (system, Fault::Unavailable { times: 3 }),
            (system, Fault::Timeout),
            (system, Fault::Reset { times: 2 }),
        ]);
    }
    all.push((System::Graph, Fault::ReplicationLag(Duration::from_secs(3))));
    all.push((System::Kubernetes, Fault::Conflict { times: 2 }));
    all
}

fn inject(h: &Harness, system: System, fault: Fault, conflicts: &Conflicts) {
    use connect_email_sim::FaultBuilder;
    let builder = || -> FaultBuilder {
        match system {
            System::Graph => h.sim.faults().on(routes::ADD_PASSWORD),
            System::Exchange => h.sim.faults().on_cmdlet("Set-Mailbox"),
            System::Connect => h.connect.faults().on(connect_routes::UPDATE_ASSET),
            System::Kubernetes => unreachable!("Kubernetes faults are injected by the client wrapper"),
        }
    };
    match fault {
        Fault::Throttled { times, retry_after } => builder().times(times).throttled(retry_after),
        Fault::Unavailable { times } => builder().times(times).unavailable(),
        Fault::Timeout => builder().latency(OUTLASTING),
        Fault::Reset { times } => builder().times(times).reset(),
        Fault::ReplicationLag(lag) => h.sim.faults().set_replication_lag(lag),
        Fault::Conflict { times } => conflicts.arm(times),
    }
}

/// The calls to the faulted target in the phase, and how many of them got the fault's answer.
fn attempts(
    h: &Harness,
    system: System,
    fault: Fault,
    since: Mark,
    conflicts: &Conflicts,
    errors_before: usize,
) -> (usize, usize, bool) {
    let faulted = |c: &CallRecord| match fault {
        Fault::Throttled { .. } => c.status == 429,
        Fault::Unavailable { .. } => c.status == 503,
        Fault::Reset { .. } => c.status == 0,
        _ => false,
    };
    let calls: Vec<CallRecord> = match system {
        System::Graph => {
            channel::microsoft_calls(h, &since).into_iter().filter(|c| c.route == routes::ADD_PASSWORD).collect()
        }
        System::Exchange => channel::microsoft_calls(h, &since)
            .into_iter()
            .filter(|c| c.cmdlet.as_deref() == Some("Set-Mailbox"))
            .collect(),
        System::Connect => {
            channel::connect_calls(h, &since).into_iter().filter(|c| c.route == connect_routes::UPDATE_ASSET).collect()
        }
        System::Kubernetes => {
            let (seen, injected) = conflicts.counts();
            return (seen, injected, seen > injected);
        }
    };
    if let Fault::ReplicationLag(_) = fault {
        // Every Graph read of a young object and token request for a young app answered "not found".
        let all = channel::microsoft_calls(h, &since);
        let lagged = all
            .iter()
            .filter(|c| c.status == 404 || (c.route == routes::TOKEN && c.status == 400 && c.client_id.is_some()))
            .count();
        return (all.len(), lagged, lagged > 0);
    }
    let injected = match fault {
        // The client gave up (a transport error in its metrics); the simulator drops the request
        // when the client disconnects, so it never shows in the call log.
        Fault::Timeout => transport_errors(h, system) - errors_before,
        _ => calls.iter().filter(|c| faulted(c)).count(),
    };
    // Retried: a successful call on the target after the last faulted one.
    let last_fault = calls.iter().rposition(faulted);
    let succeeded_after = calls.iter().enumerate().any(|(i, c)| c.status < 300 && last_fault.is_none_or(|f| i > f));
    let retried = match fault {
        Fault::Timeout => injected > 0 && succeeded_after,
        _ => succeeded_after && calls.len() > injected,
    };
    (calls.len(), injected, retried)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_of_every_system_ends_ready_with_the_invariants_intact() {
    let mut header =
        vec!["system", "fault", "phase", "faulted call", "calls", "faulted answers", "retried", "time to Ready"];
    header.extend(Invariants::HEADER);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    // FAULT_ONLY=<substring of "system fault"> runs matching rows (for debugging).
    let only = std::env::var("FAULT_ONLY").ok();
    for (system, fault) in scenarios() {
        let name = format!("{system:?} {}", fault.label());
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let (row, problems) = run(system, fault).await;
        rows.push(row);
        if !problems.is_empty() {
            failures.push(format!("{name}: {}", problems.join("; ")));
        }
    }
    let report = format!(
        "Fault matrix (EmailChannel, Api mode; client timeout {}s, 5 attempts per request; a storm longer than that fails the reconcile, which backs off and retries):\n{}\n",
        CLIENT_TIMEOUT.as_secs(),
        channel::table(&header, &rows)
    );
    println!("\n{report}");
    let dir = repo_root().join("target/reports");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("fault-matrix.md"), &report).unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

async fn run(system: System, fault: Fault) -> (Vec<String>, Vec<String>) {
    let (target_call, phase) = target(system, fault);
    let test =
        format!("faults-{system:?}-{}", fault.label()).to_lowercase().replace(|c: char| !c.is_alphanumeric(), "-");
    let mut h = Harness::without_operator(&test).await;
    h.client_timeout = Some(CLIENT_TIMEOUT);
    let conflicts = Conflicts::new(&h.ns.name);
    let operator_client = if system == System::Kubernetes { conflicts.client().await } else { h.client.clone() };
    h.start_operator(operator_client);
    channel::prepare(&h).await;

    let mut not_key = None;
    if phase == Phase::Rotation {
        channel::apply(&h).await;
        let (_, registration) = channel::converged(&h, None, Duration::from_secs(90)).await;
        not_key = registration.status.and_then(|s| s.credential).map(|c| c.key_id);
    }
    let since = channel::mark(&h);
    let errors_before = transport_errors(&h, system);
    inject(&h, system, fault, &conflicts);
    let writer = (system == System::Kubernetes).then(|| ConcurrentWriter::start(&h));
    let started = Instant::now();
    match phase {
        Phase::Creation => channel::apply(&h).await,
        Phase::Rotation => channel::rotate(&h, "fault").await,
    }
    // No outage while the fault lasts: the Secret keeps a working credential (checked while waiting).
    let mut outage = false;
    let converged = loop {
        if phase == Phase::Rotation && !channel::secret_works_or_absent(&h).await {
            outage = true;
        }
        match channel::converged_now(&h, not_key.as_deref()).await {
            Ok(done) => break done,
            Err(e) if started.elapsed() > Duration::from_secs(150) => {
                panic!("{system:?} {}: not Ready: {e}", fault.label())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let to_ready = started.elapsed();
    let writer_ok = match writer {
        Some(w) => w.stop().await,
        None => true,
    };
    let (calls, injected, retried) = attempts(&h, system, fault, since.clone(), &conflicts, errors_before);
    let invariants = Invariants::check(&h, converged, phase == Phase::Rotation, since, &hygiene::logs()).await;

    let mut problems = invariants.problems.clone();
    if let Some(planned) = fault.planned()
        && injected != planned
    {
        problems.push(format!("{injected} faulted answers on {target_call}, planned {planned}"))
    }
    if !retried {
        problems.push(format!("{target_call} was not retried to success ({calls} calls, {injected} faulted)"))
    }
    if outage {
        problems.push("the Secret held no working credential while the fault lasted".into())
    }
    if !writer_ok {
        problems.push("the concurrent writer's change to the Secret was lost".into())
    }
    let mut row = vec![
        format!("{system:?}"),
        fault.label(),
        format!("{phase:?}"),
        target_call.to_string(),
        calls.to_string(),
        injected.to_string(),
        retried.to_string(),
        format!("{:.1}s", to_ready.as_secs_f64()),
    ];
    row.extend(invariants.cells());
    h.sim.faults().clear();
    h.connect.faults().clear();
    h.sim.faults().set_replication_lag(Duration::ZERO);
    h.finish().await;
    (row, problems)
}

/// Requests of `system` that got no HTTP answer (timeouts, resets), from the in-process operator's
/// metrics.
fn transport_errors(h: &Harness, system: System) -> usize {
    let label = format!("system=\"{}\"", format!("{system:?}").to_lowercase());
    h.metrics
        .as_ref()
        .expect("the operator runs")
        .encode()
        .lines()
        .filter(|l| l.starts_with("connect_email_operator_external_requests") && l.contains(&label))
        .filter(|l| l.contains("code=\"error\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize
}

/// Another writer (a backup tool, a person with kubectl) that keeps adding an annotation to the
/// channel's Secret while the operator rotates it. Its change must survive the operator's writes.
struct ConcurrentWriter {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<usize>,
    secrets: Api<Secret>,
}

impl ConcurrentWriter {
    fn start(h: &Harness) -> ConcurrentWriter {
        let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns.name);
        let stop = Arc::new(AtomicBool::new(false));
        let (api, flag) = (secrets.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut writes = 0;
            while !flag.load(Ordering::Relaxed) {
                let patch = json!({"metadata": {"annotations": {"backup.example.com/seen": writes.to_string()}}});
                if api.patch(CHANNEL_SECRET, &PatchParams::default(), &Patch::Merge(&patch)).await.is_ok() {
                    writes += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            writes
        });
        ConcurrentWriter { stop, task, secrets }
    }

    /// Stops writing; true when it wrote and its last value is still on the Secret.
    async fn stop(self) -> bool {
        self.stop.store(true, Ordering::Relaxed);
        let writes = self.task.await.unwrap();
        let secret = self.secrets.get(CHANNEL_SECRET).await.unwrap();
        let seen = secret.metadata.annotations.unwrap_or_default().get("backup.example.com/seen").cloned();
        writes > 0 && seen == Some((writes - 1).to_string())
    }
}

/// The paths of the operator's writes that get a 409 (relative to the namespace).
const CONFLICT_PATHS: [&str; 4] = [
    "secrets/reliable-azure",
    "azureappregistrations/reliable/status",
    "azureappregistrations/reliable",
    "emailchannels/reliable/status",
];

/// Answers the operator's next PATCHes of [`CONFLICT_PATHS`] with 409 Conflict, as the apiserver
/// does when a write loses a race with another writer. (The operator writes with server-side apply
/// under force and merge patches, so a real concurrent writer alone cannot make the apiserver
/// answer 409; this wrapper injects it in the operator's own client.)
#[derive(Clone)]
struct Conflicts {
    namespace: String,
    remaining: Arc<Mutex<Vec<(String, usize)>>>,
    seen: Arc<AtomicUsize>,
    injected: Arc<AtomicUsize>,
}

impl Conflicts {
    fn new(namespace: &str) -> Conflicts {
        Conflicts {
            namespace: namespace.to_string(),
            remaining: Arc::default(),
            seen: Arc::default(),
            injected: Arc::default(),
        }
    }

    fn arm(&self, times: usize) {
        let ns = &self.namespace;
        let mut remaining = self.remaining.lock().unwrap();
        for path in CONFLICT_PATHS {
            remaining.push((format!("/namespaces/{ns}/{path}"), times));
        }
    }

    /// (PATCHes of the armed paths seen, 409s injected).
    fn counts(&self) -> (usize, usize) {
        (self.seen.load(Ordering::Relaxed), self.injected.load(Ordering::Relaxed))
    }

    fn take(&self, method: &Method, path: &str) -> bool {
        if method != Method::PATCH {
            return false;
        }
        let mut remaining = self.remaining.lock().unwrap();
        let Some(rule) = remaining.iter_mut().find(|(p, _)| path.ends_with(p.as_str())) else { return false };
        self.seen.fetch_add(1, Ordering::Relaxed);
        if rule.1 == 0 {
            return false;
        }
        rule.1 -= 1;
        self.injected.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// A client for the test cluster whose PATCHes of the armed paths get a 409 Conflict.
    async fn client(&self) -> kube::Client {
        let conflicts = self.clone();
        intercepted_client(move |request| {
            if !conflicts.take(request.method(), request.uri().path()) {
                return Verdict::Pass;
            }
            let name = request.uri().path().rsplit('/').find(|s| *s != "status").unwrap_or_default().to_string();
            Verdict::Answer(
                StatusCode::CONFLICT,
                json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Conflict", "code": 409,
                    "message": format!("Operation cannot be fulfilled on {name}: the object has been modified; please apply your changes to the latest version and try again"),
                }),
            )
        })
        .await
    }
}
