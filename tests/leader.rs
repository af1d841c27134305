//! Leader election on a Lease against the real apiserver: one winner among concurrent candidates,
//! no takeover while the holder renews (even by a candidate whose wall clock is minutes ahead),
//! takeover once the lease has expired on the candidate's own clock, a leader cut off from the
//! apiserver stopping its work before anyone can take over, and a SIGTERM handing over at once.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connect_email_operator::api::conditions::app_registration as app_cond;
use connect_email_operator::leader::{Elector, LeaderStatus, LeaseSettings, Outcome};
use jiff::SignedDuration;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use support::intercept::{Verdict, intercepted_client};
use support::resources::is_true;
use support::*;
use tokio::time::Instant;

const LEASE: &str = "connect-email-operator";

fn candidate(client: &kube::Client, ns: &str, identity: &str) -> Elector {
    let mut settings = LeaseSettings::new(ns, LEASE, identity, Duration::from_secs(2));
    settings.retry_period = Duration::from_millis(200);
    Elector::new(client.clone(), settings)
}

/// A candidate with a 3 s lease (2 s renew deadline, 200 ms retry period) and a wall clock
/// shifted by `skew`.
fn skewed(client: &kube::Client, ns: &str, identity: &str, skew: SignedDuration) -> Elector {
    let mut settings = LeaseSettings::new(ns, LEASE, identity, Duration::from_secs(3));
    settings.clock_offset = skew;
    Elector::new(client.clone(), settings)
}

/// Runs `elector` with work that lasts until it is stopped or aborted; `shutdown` ends it.
fn campaign(elector: Elector) -> (tokio::task::JoinHandle<Outcome>, tokio::sync::oneshot::Sender<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(elector.run(
        async move {
            let _ = stopped.await;
        },
        |stop| stop,
    ));
    (task, stop)
}

/// The candidates a [`Sampler`] watches, by name.
type Watched = Arc<Mutex<Vec<(String, Arc<LeaderStatus>)>>>;

/// Checks every 50 ms that at most one of `candidates` leads; the count of samples and of
/// samples with a leader.
struct Sampler {
    candidates: Watched,
    violations: Arc<Mutex<Vec<String>>>,
    counts: Arc<Mutex<(usize, usize)>>,
    done: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start() -> Self {
        let candidates: Watched = Arc::default();
        let violations: Arc<Mutex<Vec<String>>> = Arc::default();
        let counts: Arc<Mutex<(usize, usize)>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (candidates, violations, counts, done) =
                (candidates.clone(), violations.clone(), counts.clone(), done.clone());
            async move {
                let started = Instant::now();
                while !done.load(Ordering::SeqCst) {
                    let leading: Vec<String> = candidates
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|(_, s)| s.is_leading())
                        .map(|(name, _)| name.clone())
                        .collect();
                    {
                        let mut c = counts.lock().unwrap();
                        c.0 += 1;
                        c.1 += usize::from(!leading.is_empty());
                    }
                    if leading.len() > 1 {
                        violations.lock().unwrap().push(format!("{:?}: {leading:?}", started.elapsed()));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        Self { candidates, violations, counts, done, task }
    }

    fn watch(&self, name: &str, elector: &Elector) {
        self.candidates.lock().unwrap().push((name.to_string(), elector.status()));
    }

    async fn finish(self) -> (usize, usize) {
        self.done.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        let violations = self.violations.lock().unwrap().clone();
        assert!(violations.is_empty(), "two candidates led at once: {violations:?}");
        *self.counts.lock().unwrap()
    }
}

async fn wait_leading(status: &LeaderStatus, within: Duration) {
    eventually(within, || async { if status.is_leading() { Ok(()) } else { Err("not leading".to_string()) } }).await;
}

async fn holder(client: &kube::Client, ns: &str) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), ns).get(LEASE).await.unwrap();
    lease.spec.and_then(|s| s.holder_identity)
}

/// A client whose requests can be made to hang, as if the network to the apiserver were cut.
#[derive(Clone, Default)]
struct Partition(Arc<AtomicBool>);

impl Partition {
    fn cut(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    async fn client(&self) -> kube::Client {
        let cut = self.0.clone();
        intercepted_client(move |_| if cut.load(Ordering::SeqCst) { Verdict::Hang } else { Verdict::Pass }).await
    }
}

#[tokio::test]
async fn exactly_one_candidate_leads_and_another_takes_over_after_the_lease_expires() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "leader").await;

    // Five candidates at once on a fresh Lease: exactly one wins.
    let candidates: Vec<Elector> = (0..5).map(|i| candidate(&client, &ns.name, &format!("replica-{i}"))).collect();
    let results = futures::future::join_all(candidates.iter().map(|c| c.try_acquire_or_renew())).await;
    let winners: Vec<usize> =
        results.iter().enumerate().filter(|(_, r)| matches!(r, Ok(true))).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let leader = winners[0];
    let other = (leader + 1) % 5;

    // While the leader renews, nobody else gets in.
    for _ in 0..5 {
        assert!(candidates[leader].try_acquire_or_renew().await.unwrap());
        assert!(!candidates[other].try_acquire_or_renew().await.unwrap());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The leader stops renewing (killed): after the lease duration another candidate takes over.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(candidates[other].try_acquire_or_renew().await.unwrap());
    assert!(!candidates[leader].try_acquire_or_renew().await.unwrap(), "the old leader must not steal it back");
    let lease = Api::<Lease>::namespaced(client.clone(), &ns.name).get(LEASE).await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(format!("replica-{other}").as_str()));
    assert_eq!(spec.lease_transitions, Some(1));
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_whose_clock_is_five_minutes_ahead_never_leads_at_the_same_time_as_the_holder() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "leader-skew").await;
    let partition = Partition::default();
    let a = skewed(&partition.client().await, &ns.name, "replica-a", SignedDuration::ZERO);
    let b = skewed(&client, &ns.name, "replica-b", SignedDuration::from_mins(5));
    let lease_duration = a.settings().lease_duration;
    let (a_status, b_status) = (a.status(), b.status());
    let sampler = Sampler::start();
    sampler.watch("replica-a", &a);
    sampler.watch("replica-b", &b);
    let (a_task, _a_stop) = campaign(a);
    wait_leading(&a_status, Duration::from_secs(10)).await;
    // B's clock says A's renewTime is five minutes old: it must still wait for A's record to stand
    // unchanged for a lease duration on its own clock, which never happens while A renews.
    let (b_task, b_stop) = campaign(b);
    tokio::time::sleep(lease_duration * 3).await;
    assert!(a_status.is_leading() && !b_status.is_leading());
    assert_eq!(holder(&client, &ns.name).await.as_deref(), Some("replica-a"));

    // A is cut off: it steps down by itself, and B takes over once A's last record has stood for a
    // lease duration on B's clock.
    partition.cut();
    wait_leading(&b_status, Duration::from_secs(15)).await;
    assert_eq!(a_task.await.unwrap(), Outcome::Lost);
    let (a_times, b_times) = (a_status.times(), b_status.times());
    let takeover = b_times.acquired.unwrap();
    assert!(takeover >= a_times.renewed.unwrap() + lease_duration, "B took over before A's lease could expire");

    // A comes back as a new candidate with a correct clock: B's renewTime, five minutes in A's
    // future, does not keep A waiting once B stops, and A does not take over while B renews.
    let a2 = skewed(&client, &ns.name, "replica-a-2", SignedDuration::ZERO);
    let a2_status = a2.status();
    sampler.watch("replica-a-2", &a2);
    let (a2_task, a2_stop) = campaign(a2);
    tokio::time::sleep(lease_duration * 2).await;
    assert!(b_status.is_leading() && !a2_status.is_leading());
    let _ = b_stop.send(());
    assert_eq!(b_task.await.unwrap(), Outcome::Shutdown);
    wait_leading(&a2_status, Duration::from_secs(5)).await;
    let _ = a2_stop.send(());
    assert_eq!(a2_task.await.unwrap(), Outcome::Shutdown);

    let (samples, with_leader) = sampler.finish().await;
    println!("skew: {samples} samples every 50 ms, {with_leader} with a leader, never two");
    assert!(samples > 100 && with_leader > samples / 2, "{samples} samples, {with_leader} with a leader");
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_apiserver_stops_its_work_before_its_lease_can_be_taken() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "leader-partition").await;
    let partition = Partition::default();
    let a = skewed(&partition.client().await, &ns.name, "replica-a", SignedDuration::ZERO);
    let b = skewed(&client, &ns.name, "replica-b", SignedDuration::ZERO);
    let lease_duration = a.settings().lease_duration;
    let (a_status, b_status) = (a.status(), b.status());
    // A's "reconciles": a tick every 10 ms while its work runs.
    let last_tick = Arc::new(Mutex::new(None::<Instant>));
    let (stop_a, stopped_a) = tokio::sync::oneshot::channel::<()>();
    let a_task = tokio::spawn(a.run(
        async move {
            let _ = stopped_a.await;
        },
        {
            let last_tick = last_tick.clone();
            move |_stop| async move {
                loop {
                    *last_tick.lock().unwrap() = Some(Instant::now());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        },
    ));
    wait_leading(&a_status, Duration::from_secs(10)).await;
    let (b_task, b_stop) = campaign(b);
    tokio::time::sleep(lease_duration).await;

    partition.cut();
    let cut_at = Instant::now();
    wait_leading(&b_status, Duration::from_secs(15)).await;
    assert_eq!(a_task.await.unwrap(), Outcome::Lost);
    drop(stop_a);
    let a_times = a_status.times();
    let stepped_down = a_times.stepped_down.unwrap();
    let takeover_possible = a_times.renewed.unwrap() + lease_duration;
    let took_over = b_status.times().acquired.unwrap();
    let last = last_tick.lock().unwrap().unwrap();
    println!(
        "partition: cut at 0 ms, A stepped down at {} ms, takeover possible from {} ms, B took over at {} ms",
        (stepped_down - cut_at).as_millis(),
        takeover_possible.saturating_duration_since(cut_at).as_millis(),
        (took_over - cut_at).as_millis(),
    );
    assert!(last <= stepped_down, "A's work ran after it stepped down");
    assert!(stepped_down < takeover_possible, "A stepped down only after its lease could be taken");
    assert!(stepped_down < took_over);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(*last_tick.lock().unwrap(), Some(last), "A's work kept running after it stepped down");

    let _ = b_stop.send(());
    assert_eq!(b_task.await.unwrap(), Outcome::Shutdown);
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_the_leader_process_hands_the_lease_over_in_under_two_seconds() {
    use support::operator::Harness;
    use support::process::OperatorProcess;

    let h = Harness::without_operator("leader-sigterm").await;
    let ns = h.ns.name.clone();
    // The default 15 s lease: a handover that waited for expiry would take at least 15 s.
    let args = ["--leader-election", "--lease-namespace", ns.as_str()];
    let spawn = |name: &str| OperatorProcess::spawn_with(&ns, &h.sim, &[], name, &args, &[("POD_NAME", name)]);
    let mut replicas =
        vec![("replica-0".to_string(), spawn("replica-0")), ("replica-1".to_string(), spawn("replica-1"))];
    let leases: Api<Lease> = Api::namespaced(h.client.clone(), &ns);
    let current =
        || async { leases.get_opt(LEASE).await.ok().flatten().and_then(|l| l.spec).and_then(|s| s.holder_identity) };
    let mut figures = Vec::new();
    for round in 0..3 {
        let leader = eventually(Duration::from_secs(60), || async {
            current().await.filter(|h| replicas.iter().any(|(n, _)| n == h)).ok_or_else(|| "no leader".to_string())
        })
        .await;
        // Both replicas are up (the standby is campaigning) before the leader is stopped.
        eventually(Duration::from_secs(30), || async {
            let standby = replicas.iter().find(|(n, _)| *n != leader).unwrap();
            if standby.1.logs().contains("waiting for leadership") { Ok(()) } else { Err("standby not up".to_string()) }
        })
        .await;
        let index = replicas.iter().position(|(n, _)| *n == leader).unwrap();
        let (_, mut process) = replicas.remove(index);
        let signalled = Instant::now();
        process.terminate();
        let successor = loop {
            if let Some(h) = current().await.filter(|h| *h != leader && !h.is_empty()) {
                break h;
            }
            assert!(signalled.elapsed() < Duration::from_secs(20), "no successor after SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let handover = signalled.elapsed();
        println!("round {round}: SIGTERM to {leader}, {successor} leads after {} ms", handover.as_millis());
        figures.push(handover);
        let status = process.wait_exit(Duration::from_secs(10)).await.expect("the old leader exits");
        assert!(status.success(), "{status:?}");
        let logs = process.logs();
        assert!(logs.contains("released the Lease"), "{logs}");
        let name = format!("replica-{}", round + 2);
        replicas.push((name.clone(), spawn(&name)));
    }
    println!("handover after SIGTERM: {:?}", figures.iter().map(|d| d.as_millis()).collect::<Vec<_>>());
    for handover in &figures {
        assert!(*handover < Duration::from_secs(2), "handover took {handover:?}");
    }
    for (_, mut process) in replicas {
        process.kill();
    }
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_operator_processes_only_the_leader_reconciles_and_the_other_takes_over_when_it_dies() {
    use connect_email_operator::api::AzureAppRegistration;
    use kube::api::{Patch, PatchParams};
    use support::operator::{Harness, TENANT, TENANT_REF};
    use support::process::OperatorProcess;

    let h = Harness::without_operator("leader-failover").await;
    let ns = h.ns.name.clone();
    let args = ["--leader-election", "--lease-duration", "3s", "--lease-namespace", ns.as_str()];
    let mut a = OperatorProcess::spawn_with(&ns, &h.sim, &[], "replica-a", &args, &[("POD_NAME", "replica-a")]);
    let mut b = OperatorProcess::spawn_with(&ns, &h.sim, &[], "replica-b", &args, &[("POD_NAME", "replica-b")]);
    let api: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &ns);
    let object = serde_json::json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "AzureAppRegistration",
        "metadata": {"name": "ha"},
        "spec": {"tenantRef": {"name": TENANT_REF}, "displayName": "HA", "redirectUris": ["https://acme.us.webexconnect.io/callback"],
                 "clientSecret": {"secretName": "ha-credentials", "revokeAfter": "0s"}}
    });
    api.patch("ha", &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&object)).await.unwrap();
    let ready = |api: Api<AzureAppRegistration>, rotated: Option<String>| async move {
        let o = api.get("ha").await.map_err(|e| e.to_string())?;
        let s = o.status.unwrap_or_default();
        let ok = is_true(&s.conditions, app_cond::READY);
        let key = s.credential.map(|c| c.key_id);
        match key {
            Some(key) if ok && Some(&key) != rotated.as_ref() => Ok(key),
            _ => Err("not ready".to_string()),
        }
    };
    let first = eventually(Duration::from_secs(60), || ready(api.clone(), None)).await;
    let leases: Api<Lease> = Api::namespaced(h.client.clone(), &ns);
    let holder = leases.get(LEASE).await.unwrap().spec.unwrap().holder_identity.unwrap();
    let (leader, standby) = if holder == "replica-a" { (&mut a, &mut b) } else { (&mut b, &mut a) };
    assert!(standby.logs().contains("waiting for leadership"));
    assert!(!standby.logs().contains("issued a new client secret"), "the standby reconciled");
    assert!(leader.logs().contains("issued a new client secret"));

    // The leader dies; the standby takes over within the lease duration and carries on.
    leader.kill();
    let rotate = serde_json::json!({"metadata": {"annotations": {"connectemail.dev/rotate": "after-failover"}}});
    api.patch("ha", &PatchParams::default(), &Patch::Merge(&rotate)).await.unwrap();
    eventually(Duration::from_secs(60), || ready(api.clone(), Some(first.clone()))).await;
    let new_holder = leases.get(LEASE).await.unwrap().spec.unwrap().holder_identity.unwrap();
    assert_ne!(new_holder, holder);
    assert!(standby.logs().contains("became the leader"));
    assert_eq!(h.sim.applications(TENANT).len(), 1);

    api.delete("ha", &Default::default()).await.unwrap();
    eventually(Duration::from_secs(30), || async {
        if api.get_opt("ha").await.unwrap().is_none() { Ok(()) } else { Err("still there".to_string()) }
    })
    .await;
    standby.kill();
    h.finish().await;
}
