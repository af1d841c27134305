//! Benchmark: N AzureAppRegistrations or EmailChannels created at once against the local control
//! plane and the simulators, with Graph's documented limits (3,000 writes per 150 s and 3,500
//! resource units per 10 s per app and tenant, 429 + Retry-After beyond) and 80–150 ms latency.
//! The operator is the release binary in its own process (so its RSS and CPU are its own), with
//! its production defaults (delta drift detection). Prints a markdown table; asserts nothing.
//!
//!     scripts/bench 1000 registrations     # or: channels, memory (no limits, RSS only), wave
//!
//! `wave`: N registrations whose secrets all fall due for renewal in the same second (the
//! rotation wave of registrations created together); see `rotation_wave`.
//!
//! Phases: creation until all Ready; then a simulated idle hour per drift mode: the operator is
//! restarted with every periodic interval divided by TIME_SCALE, its start-up wave is left to
//! finish, and the external calls of 3600/TIME_SCALE seconds are counted.
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use connect_email_operator::api::{AzureAppRegistration, EmailChannel};
use connect_email_sim::{AutoForwardingMode, CallRecord, SimOptions, routes};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::operator::{CONNECT_ORG, CONNECT_TOKEN, Harness, OPERATOR_CLIENT_ID, OPERATOR_SECRET, TENANT, TENANT_REF};
use support::timeline::Timeline;

/// Periodic intervals are divided by this in the idle phase: 3 minutes stand for an hour.
const TIME_SCALE: u64 = 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Registrations,
    Channels,
    /// Registrations with no Graph limits and little latency: only the operator's memory.
    Memory,
    /// Registrations created, then all due for renewal at once.
    Wave,
}

struct Operator {
    child: Child,
    metrics: String,
}

impl Operator {
    fn spawn(h: &Harness, args: &[String]) -> Operator {
        let dir = std::env::temp_dir().join(format!("ceo-bench-{}", h.ns.name));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, format!("{}\n{}", h.sim.ca_pem(), h.connect.ca_pem())).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // The release binary next to this example (target/release/examples/scale).
        let exe = std::env::current_exe().unwrap();
        let binary: PathBuf = exe.parent().unwrap().parent().unwrap().join("connect-email-operator");
        let log = std::fs::File::create(dir.join("operator.log")).unwrap();
        let child = Command::new(&binary)
            .args(["run", "--namespace", &h.ns.name, "--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(["--authority-host", &h.sim.url(), "--graph-endpoint", &h.sim.url()])
            .args(["--exchange-endpoint", &h.sim.url(), "--connect-endpoint", &h.connect.url()])
            .arg("--extra-ca-file")
            .arg(&ca)
            .args(args)
            .env("KUBECONFIG", support::kubeconfig_path())
            // Its own namespace (mailbox claims): the benchmark's.
            .env("POD_NAMESPACE", &h.ns.name)
            .env("AZURE_CLIENT_ID", OPERATOR_CLIENT_ID)
            .env("AZURE_CLIENT_SECRET", OPERATOR_SECRET)
            .env_remove("AZURE_FEDERATED_TOKEN_FILE")
            .env("RUST_LOG", "info,kube=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e} (build it with cargo build --release)", binary.display()));
        Operator { child, metrics: format!("http://127.0.0.1:{port}/metrics") }
    }

    fn proc_field(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    }

    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
        let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
            + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
        ticks / 100.0
    }

    /// Sum of a counter over all its label sets.
    async fn counter(&self, name: &str) -> f64 {
        let Ok(response) = reqwest::get(&self.metrics).await else { return 0.0 };
        let text = response.text().await.unwrap_or_default();
        text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The secret lifetime of the wave's registrations: the API's minimum (1h) while creating them and
/// the wave fit in it with room to spare, longer beyond (10,000 registrations take about 40
/// minutes to create at Graph's write bound). The estimate is from the measured runs: creation
/// 0.24 s, the lead before T 0.06 s and the wave 0.12 s per registration; the lifetime is twice
/// that, in whole hours. The renew window at T is what is left of it; the figures report both.
fn wave_secret_hours(n: usize) -> u64 {
    let estimate = 60.0 + 0.42 * n as f64;
    ((2.0 * estimate / 3600.0).ceil() as u64).max(1)
}

/// How long the creation phase may take before the benchmark gives up waiting for Ready.
fn creation_deadline(n: usize) -> Duration {
    Duration::from_secs(3600.max(n as u64 / 2))
}

fn manifest(kind: Kind, i: usize, n: usize) -> serde_json::Value {
    let name = format!("r{i}");
    match kind {
        Kind::Channels => json!({
            "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel", "metadata": {"name": name},
            "spec": {"mailbox": format!("user{i}@contoso.com"), "azure": {"tenantRef": {"name": TENANT_REF}},
                     "connect": {"mode": "Api", "region": "us", "tenantHost": "acme.us.webexconnect.io",
                                 "assetName": name, "organizationId": CONNECT_ORG,
                                 "credentialsSecretRef": {"name": "webex-connect-api"}}}
        }),
        // The shortest lifetime that fits (1h, the API's minimum, up to 2,000), and the previous key
        // revoked as soon as its successor is verified, so that the wave is both of its writes
        // (addPassword, removePassword).
        Kind::Wave => json!({
            "apiVersion": "connectemail.dev/v1alpha1", "kind": "AzureAppRegistration", "metadata": {"name": name},
            "spec": {"tenantRef": {"name": TENANT_REF}, "displayName": name,
                     "redirectUris": ["https://acme.us.webexconnect.io/callback"],
                     "permissions": [{"resource": "Office 365 Exchange Online", "delegated": ["SMTP.Send"]}],
                     "clientSecret": {"secretName": format!("{name}-credentials"), "duration": format!("{}h", wave_secret_hours(n)), "revokeAfter": "0s"}}
        }),
        _ => json!({
            "apiVersion": "connectemail.dev/v1alpha1", "kind": "AzureAppRegistration", "metadata": {"name": name},
            "spec": {"tenantRef": {"name": TENANT_REF}, "displayName": name,
                     "redirectUris": ["https://acme.us.webexconnect.io/callback"],
                     "permissions": [{"resource": "Office 365 Exchange Online", "delegated": ["SMTP.Send"]}],
                     "clientSecret": {"secretName": format!("{name}-credentials")}}
        }),
    }
}

/// How many resources of `kind` are Ready, kept up to date from a watch: listing every resource
/// twice a second would load the apiserver (and the cores the operator shares) more than the
/// operator itself at N = 1,000.
fn ready_counter(h: &Harness, kind: Kind) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    use kube::runtime::{WatchStreamExt, watcher};
    fn ready(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> bool {
        conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
    }
    fn track<K>(api: Api<K>, count: std::sync::Arc<std::sync::atomic::AtomicUsize>, is_ready: fn(&K) -> bool)
    where
        K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        tokio::spawn(async move {
            let mut ready = std::collections::HashSet::new();
            let mut events =
                std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff().applied_objects());
            // A watch error (the apiserver ending a long watch) is retried by the backoff: skip
            // it rather than stop counting.
            while let Some(event) = events.next().await {
                let Ok(obj) = event else { continue };
                let name = obj.meta().name.clone().unwrap_or_default();
                if is_ready(&obj) {
                    ready.insert(name)
                } else {
                    ready.remove(&name)
                };
                count.store(ready.len(), std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    if kind == Kind::Channels {
        let api = Api::<EmailChannel>::namespaced(h.client.clone(), &h.ns.name);
        track(api, count.clone(), |c| c.status.as_ref().is_some_and(|s| ready(&s.conditions)));
    } else {
        let api = Api::<AzureAppRegistration>::namespaced(h.client.clone(), &h.ns.name);
        track(api, count.clone(), |c| c.status.as_ref().is_some_and(|s| ready(&s.conditions)));
    }
    count
}

/// (Graph writes, Graph reads, token requests, Exchange calls, 429 answers)
fn tally(calls: &[CallRecord]) -> (usize, usize, usize, usize, usize) {
    let token = calls.iter().filter(|c| c.route == routes::TOKEN).count();
    let exchange = calls.iter().filter(|c| c.route == routes::INVOKE_COMMAND).count();
    let graph: Vec<_> =
        calls.iter().filter(|c| c.route != routes::TOKEN && c.route != routes::INVOKE_COMMAND).collect();
    let writes = graph.iter().filter(|c| c.method != "GET").count();
    let throttled = calls.iter().filter(|c| c.status == 429).count();
    (writes, graph.len() - writes, token, exchange, throttled)
}

/// "route status: count" for every write, most frequent first.
fn writes_by_route(calls: &[CallRecord]) -> String {
    let mut counts: BTreeMap<(String, u16), usize> = BTreeMap::new();
    for c in calls.iter().filter(|c| c.method != "GET" && c.route != routes::TOKEN && c.route != routes::INVOKE_COMMAND)
    {
        *counts.entry((c.route.to_string(), c.status)).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    counts.iter().map(|((route, status), n)| format!("{route} {status}: {n}")).collect::<Vec<_>>().join("; ")
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100);
    let kind = match args.get(1).map(String::as_str) {
        Some("channels") => Kind::Channels,
        Some("memory") => Kind::Memory,
        Some("wave") => Kind::Wave,
        _ => Kind::Registrations,
    };
    let idle = !matches!(kind, Kind::Memory | Kind::Wave) && !args.iter().any(|a| a == "--no-idle");
    let mut options = SimOptions::default().tenant(TENANT);
    if kind != Kind::Memory {
        options = options.latency(Duration::from_millis(80), Duration::from_millis(150));
    }
    let h = Harness::without_operator_with("bench", options).await;
    if kind != Kind::Memory {
        h.sim.faults().set_write_rate_limit(3000, Duration::from_secs(150));
        h.sim.faults().set_resource_unit_limit(3500, Duration::from_secs(10));
    }
    h.sim.exchange().set_outbound_policy_mode(TENANT, "Default", AutoForwardingMode::On);
    if kind == Kind::Channels {
        for i in 0..n {
            h.sim.exchange().add_mailbox(TENANT, &format!("user{i}@contoso.com"));
        }
        let token: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "webex-connect-api"}, "stringData": {"token": CONNECT_TOKEN}
        }))
        .unwrap();
        Api::<Secret>::namespaced(h.client.clone(), &h.ns.name).create(&PostParams::default(), &token).await.unwrap();
    }

    // The memory run has no Graph limits: the operator's limiter must not impose them either.
    let unlimited: Vec<String> =
        ["--graph-writes-per-150s", "10000000", "--graph-resource-units-per-10s", "10000000"].map(String::from).into();
    let ready_now = ready_counter(&h, kind);
    let timeline = if kind == Kind::Channels {
        Timeline::follow(Api::<EmailChannel>::namespaced(h.client.clone(), &h.ns.name))
    } else {
        Timeline::follow(Api::<AzureAppRegistration>::namespaced(h.client.clone(), &h.ns.name))
    };
    let operator = Operator::spawn(&h, if kind == Kind::Memory { &unlimited } else { &[] });
    let started = Instant::now();
    // Ready resources every 30 s from the start (creation included), sampled by its own task.
    let samples = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sampler = {
        let (samples, ready_now) = (samples.clone(), ready_now.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + Duration::from_secs(30),
                Duration::from_secs(30),
            );
            for i in 1.. {
                tick.tick().await;
                let ready = ready_now.load(std::sync::atomic::Ordering::Relaxed);
                samples.lock().unwrap().push(format!("{}: {ready}", 30 * i));
                eprintln!("{} s: {ready} Ready", 30 * i);
            }
        })
    };
    let params = PatchParams::apply("bench");
    futures::stream::iter(0..n)
        .for_each_concurrent(16, |i| {
            let (client, ns, params) = (h.client.clone(), h.ns.name.clone(), params.clone());
            async move {
                let object = manifest(kind, i, n);
                let name = object["metadata"]["name"].as_str().unwrap().to_string();
                let patch = Patch::Apply(&object);
                if kind == Kind::Channels {
                    Api::<EmailChannel>::namespaced(client, &ns).patch(&name, &params, &patch).await.unwrap();
                } else {
                    Api::<AzureAppRegistration>::namespaced(client, &ns).patch(&name, &params, &patch).await.unwrap();
                }
            }
        })
        .await;
    let created = started.elapsed();
    // The one step a person does per channel: sign in to the Connect asset.
    let signed_in = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let mut peak_rss = 0;
    let ready = loop {
        if kind == Kind::Channels {
            for asset in h.connect.assets(CONNECT_ORG) {
                if signed_in.lock().unwrap().insert(asset.asset_id.clone()) {
                    h.connect.complete_sign_in(&asset.asset_id);
                }
            }
        }
        peak_rss = peak_rss.max(operator.proc_field("VmHWM:"));
        let ready = ready_now.load(std::sync::atomic::Ordering::Relaxed);
        if ready == n || started.elapsed() > creation_deadline(n) {
            break ready;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let to_ready = started.elapsed();
    sampler.abort();
    let samples = samples.lock().unwrap().join(", ");
    let calls = h.sim.calls();
    let (writes, reads, tokens, exchange, throttled) = tally(&calls);
    let connect_calls = h.connect.calls().len();
    let reconciles = |kind: &str| format!("connect_email_operator_reconciliations_total{{kind=\"{kind}\"}}");
    let channel_reconciles = operator.counter(&reconciles("EmailChannel")).await;
    let registration_reconciles = operator.counter(&reconciles("AzureAppRegistration")).await;
    // Time spent inside reconciles, per controller: ÷ (concurrency × wall time) is how busy its
    // reconcile slots were (1.0: every slot busy all the time — the controller was the bottleneck).
    let busy = |kind: &str| format!("connect_email_operator_reconcile_duration_seconds_sum{{kind=\"{kind}\"}}");
    let channel_busy = operator.counter(&busy("EmailChannel")).await;
    let registration_busy = operator.counter(&busy("AzureAppRegistration")).await;
    let cpu = operator.cpu_seconds();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let steady_rss = operator.proc_field("VmRSS:");
    peak_rss = peak_rss.max(operator.proc_field("VmHWM:"));
    let window_bound = 150.0 * (writes.saturating_sub(1) / 3000) as f64;
    let rate_bound = writes as f64 / 20.0;

    let what = match kind {
        Kind::Channels => "EmailChannels (Api mode)",
        Kind::Registrations => "AzureAppRegistrations",
        Kind::Memory => "AzureAppRegistrations (no Graph limits: memory run)",
        Kind::Wave => "AzureAppRegistrations (secrets of the lifetime below, revokeAfter 0s)",
    };
    let per = |x: usize| format!("{:.1}", x as f64 / n as f64);
    let mut rows: Vec<(String, String)> = vec![
        ("resources".into(), format!("{n} {what}")),
        ("created (API calls done) after".into(), format!("{:.1} s", created.as_secs_f64())),
        ("time until all Ready".into(), format!("{:.1} s ({ready}/{n} Ready)", to_ready.as_secs_f64())),
        ("failed (not Ready)".into(), (n - ready).to_string()),
        ("Ready after 30, 60, … s".into(), samples),
    ];
    let what_short = if kind == Kind::Channels { "channels" } else { "registrations" };
    rows.extend(timeline.rows(what_short));
    if kind != Kind::Memory {
        rows.push((
            "write bound: writes ÷ 20/s (3,000 per 150 s)".into(),
            format!("{rate_bound:.1} s; achieved ratio {:.2}", rate_bound / to_ready.as_secs_f64()),
        ));
        rows.push(("sliding-window bound (first 3,000 at once)".into(), format!("{window_bound:.0} s")));
    }
    rows.extend([
        ("Graph writes per resource".into(), per(writes)),
        ("Graph reads per resource".into(), per(reads)),
        ("token requests per resource".into(), per(tokens)),
        ("Exchange calls per resource".into(), per(exchange)),
        ("Connect calls per resource".into(), per(connect_calls)),
        ("429 answers".into(), throttled.to_string()),
        (
            "reconciles per resource (of which EmailChannel / AzureAppRegistration)".into(),
            format!(
                "{:.1} ({:.1} / {:.1})",
                (channel_reconciles + registration_reconciles) / n as f64 + 0.0,
                channel_reconciles / n as f64 + 0.0,
                registration_reconciles / n as f64 + 0.0
            ),
        ),
        (
            "reconcile slots busy, EmailChannel / AzureAppRegistration (seconds in reconciles ÷ 50 slots ÷ wall time)"
                .into(),
            format!(
                "{:.2} / {:.2}",
                channel_busy / 50.0 / to_ready.as_secs_f64() + 0.0,
                registration_busy / 50.0 / to_ready.as_secs_f64() + 0.0
            ),
        ),
        ("operator CPU seconds".into(), format!("{cpu:.1}")),
        ("operator peak RSS".into(), mib(peak_rss)),
        ("operator RSS 15 s after all Ready".into(), mib(steady_rss)),
    ]);
    if kind == Kind::Wave {
        rows.extend(rotation_wave(&h, &operator, n).await);
    }
    operator.stop();

    if idle {
        let scale = |secs: u64| format!("{}s", (secs / TIME_SCALE).max(1));
        let objects = if kind == Kind::Channels { 2 * n } else { n } as f64;
        let mut per_mode = BTreeMap::new();
        for mode in ["poll", "delta"] {
            let mut flags = vec!["--drift-detection".to_string(), mode.to_string()];
            flags.extend(["--channel-resync".to_string(), scale(1800)]);
            if mode == "poll" {
                flags.extend(["--resync".to_string(), scale(600)]);
            } else {
                flags.extend(["--resync".to_string(), scale(6 * 3600), "--drift-poll-interval".into(), scale(60)]);
            }
            let operator = Operator::spawn(&h, &flags);
            // The start-up wave (every object reconciled once) is not idle time.
            let wave = Instant::now();
            while operator.counter("connect_email_operator_reconciliations_total").await < objects
                && wave.elapsed() < Duration::from_secs(900)
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            h.sim.reset_calls();
            h.connect.reset_calls();
            tokio::time::sleep(Duration::from_secs(3600 / TIME_SCALE)).await;
            let calls = h.sim.calls();
            let (w, r, t, x, th) = tally(&calls);
            let feeds = calls.iter().filter(|c| c.route.ends_with("/delta")).count();
            per_mode.insert(mode, (w, r, t, x, th, feeds, h.connect.calls().len()));
            operator.stop();
        }
        for (mode, (w, r, t, x, th, feeds, c)) in per_mode {
            rows.push((format!("idle hour, {mode}: Graph reads (of which change feeds)"), format!("{r} ({feeds})")));
            rows.push((
                format!("idle hour, {mode}: Graph writes / Exchange / Connect / token / 429"),
                format!("{w} / {x} / {c} / {t} / {th}"),
            ));
        }
        rows.push((
            "idle hour scale".into(),
            format!(
                "intervals ÷ {TIME_SCALE}: poll resync 10 min, delta feeds 1 min + per-object safety resync 6 h \
                 (not reached within one hour), channel re-check 30 min"
            ),
        ));
    }

    println!("| figure | value |\n| --- | --- |");
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
    // No operator runs any more: drop the finalizers so that the namespace can go.
    let unfinalize = json!({"metadata": {"finalizers": null}});
    let patch = Patch::Merge(&unfinalize);
    let lp = ListParams::default();
    let channels = Api::<EmailChannel>::namespaced(h.client.clone(), &h.ns.name);
    for c in channels.list_metadata(&lp).await.map(|l| l.items).unwrap_or_default() {
        let _ = channels.patch_metadata(&c.metadata.name.unwrap_or_default(), &PatchParams::default(), &patch).await;
    }
    let registrations = Api::<AzureAppRegistration>::namespaced(h.client.clone(), &h.ns.name);
    for r in registrations.list_metadata(&lp).await.map(|l| l.items).unwrap_or_default() {
        let _ =
            registrations.patch_metadata(&r.metadata.name.unwrap_or_default(), &PatchParams::default(), &patch).await;
    }
    h.ns.delete().await;
}

/// What the wave phase saw of one registration.
#[derive(Clone, Copy, Default)]
struct Rotation {
    /// The rotation's intent recorded (`status.pendingRotation`): its first reconcile started.
    started: Option<Instant>,
    /// The new key in status (and so in the Secret, written before status).
    replaced: Option<Instant>,
    /// Remaining lifetime of the old key at that moment, in seconds.
    remaining: Option<f64>,
    /// The new key verified and the old one revoked.
    done: Option<Instant>,
    /// `observedGeneration` caught up with the renewBefore change.
    observed: bool,
}

/// The rotation wave: every registration's secret falls due for renewal in the same second.
///
/// The registrations were created with 1h secrets (the shortest lifetime the API admits; longer
/// beyond 2,000 registrations, see `wave_secret_hours`) and are Ready. Each one's
/// `clientSecret.renewBefore` is then set to its own secret's remaining lifetime at a common
/// instant T (a spec change through the API, as an administrator would make it; `duration` is
/// made four times as long at the same time, for the replacement keys only), so that every
/// renewal time is T: registrations created together renew together,
/// here at the same second rather than the same hour — the harshest case. Nothing is simulated
/// on the operator's side: it runs its production binary and defaults. Measured from T: when
/// each rotation started (intent recorded), when the new key replaced the old one and how much
/// lifetime the old one still had, when the old key was revoked; Graph writes, 429s and RSS.
async fn rotation_wave(h: &Harness, operator: &Operator, n: usize) -> Vec<(String, String)> {
    use jiff::Timestamp;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    let api = Api::<AzureAppRegistration>::namespaced(h.client.clone(), &h.ns.name);
    let old: HashMap<String, (String, Timestamp)> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|r| {
            let c = r.status?.credential?;
            Some((r.metadata.name?, (c.key_id, c.not_after.0)))
        })
        .collect();
    // Time to change every spec and let the reconciles that follow settle before T.
    let lead = Duration::from_secs(60) + Duration::from_millis(60 * n as u64);
    let wave = Instant::now() + lead;
    let wave_at = Timestamp::now() + lead;
    let state: Arc<Mutex<HashMap<String, Rotation>>> = Arc::default();
    let follower = {
        let (state, old, api) = (state.clone(), old.clone(), api.clone());
        tokio::spawn(async move {
            use kube::runtime::{WatchStreamExt, watcher};
            let mut events =
                std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff().applied_objects());
            while let Some(event) = events.next().await {
                let Ok(r) = event else { continue };
                let now = Instant::now();
                let name = r.metadata.name.clone().unwrap_or_default();
                let Some((old_key, old_end)) = old.get(&name) else { continue };
                let mut state = state.lock().unwrap();
                let t = state.entry(name).or_default();
                let status = r.status.clone().unwrap_or_default();
                // Generation 1 is the creation; 2 the renewBefore change.
                t.observed |= r.metadata.generation >= Some(2) && status.observed_generation == r.metadata.generation;
                if t.started.is_none() && status.pending_rotation.is_some() {
                    t.started = Some(now);
                }
                let key = status.credential.as_ref().map(|c| c.key_id.clone());
                if t.replaced.is_none() && key.as_ref().is_some_and(|k| k != old_key) {
                    t.replaced = Some(now);
                    t.started.get_or_insert(now);
                    t.remaining = Some(old_end.duration_since(Timestamp::now()).as_secs_f64());
                }
                let verified = status.credential.as_ref().is_some_and(|c| c.verified_at.is_some());
                if t.done.is_none()
                    && t.replaced.is_some()
                    && verified
                    && status.previous_credentials.is_empty()
                    && status.pending_rotation.is_none()
                {
                    t.done = Some(now);
                }
            }
        })
    };
    let params = PatchParams::default();
    futures::stream::iter(old.clone())
        .for_each_concurrent(16, |(name, (_, not_after))| {
            let (api, params) = (api.clone(), params.clone());
            async move {
                let before = not_after.duration_since(wave_at).as_secs();
                // The replacement keys get four times the lifetime: with the old one, a key issued
                // during the wave would fall due again within minutes (its renewBefore is almost
                // its whole lifetime) and a second wave would run into the first.
                let duration = format!("{}h", 4 * wave_secret_hours(n));
                let patch =
                    json!({"spec": {"clientSecret": {"renewBefore": format!("{before}s"), "duration": duration}}});
                api.patch(&name, &params, &Patch::Merge(&patch)).await.unwrap();
            }
        })
        .await;
    let patched = lead.saturating_sub(wave.saturating_duration_since(Instant::now()));
    tokio::time::sleep_until(tokio::time::Instant::from_std(wave)).await;
    let settled = state.lock().unwrap().values().filter(|t| t.observed).count();
    h.sim.reset_calls();
    let deferrals_before = operator.counter("connect_email_operator_reconcile_deferrals_total").await;
    let cpu_before = operator.cpu_seconds();
    let mut wave_rss = 0;
    let deadline = wave + Duration::from_secs(3600);
    let mut progress = Instant::now();
    loop {
        wave_rss = wave_rss.max(operator.proc_field("VmRSS:"));
        let done = state.lock().unwrap().values().filter(|t| t.done.is_some()).count();
        if done == old.len() || Instant::now() > deadline {
            break;
        }
        if progress.elapsed() >= Duration::from_secs(30) {
            progress = Instant::now();
            eprintln!("wave, {:.0} s after T: {done} of {} rotated", wave.elapsed().as_secs_f64(), old.len());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let took = Instant::now() - wave;
    follower.abort();
    let calls = h.sim.calls();
    let (writes, reads, tokens, _, throttled) = tally(&calls);
    let deferrals = operator.counter("connect_email_operator_reconcile_deferrals_total").await - deferrals_before;
    let queue_sum = operator.counter("connect_email_operator_reconcile_queue_seconds_sum").await;
    let queue_count = operator.counter("connect_email_operator_reconcile_queue_seconds_count").await;
    let state = state.lock().unwrap().clone();
    let since_wave = |at: fn(&Rotation) -> Option<Instant>| {
        let mut d: Vec<f64> =
            state.values().filter_map(|t| at(t).map(|x| x.saturating_duration_since(wave).as_secs_f64())).collect();
        d.sort_by(f64::total_cmp);
        if d.is_empty() {
            return "none".to_string();
        }
        let p = |q: f64| d[((q * d.len() as f64).ceil() as usize).clamp(1, d.len()) - 1];
        format!("{:.1} / {:.1} / {:.1} s ({} of {n})", p(0.5), p(0.99), p(1.0), d.len())
    };
    let remaining: Vec<f64> = state.values().filter_map(|t| t.remaining).collect();
    let min_remaining = remaining.iter().copied().fold(f64::INFINITY, f64::min);
    let expired = remaining.iter().filter(|r| **r <= 0.0).count();
    let not_rotated = state.values().filter(|t| t.done.is_none()).count() + n.saturating_sub(state.len());
    let renew_window =
        old.values().map(|(_, end)| end.duration_since(wave_at).as_secs_f64()).fold(f64::INFINITY, f64::min);
    let bound = writes as f64 / 20.0;
    vec![
        ("wave: registrations due for renewal at the same second T".into(), format!("{}", old.len())),
        (
            "wave: secret lifetime (clientSecret.duration), of the replaced / the replacement keys".into(),
            format!("{}h / {}h", wave_secret_hours(n), 4 * wave_secret_hours(n)),
        ),
        (
            "wave: renewBefore changed on all, reconciles settled by T".into(),
            format!(
                "patched in {:.1} s; {settled} of {} observed before T ({:.0} s lead)",
                patched.as_secs_f64(),
                old.len(),
                lead.as_secs_f64()
            ),
        ),
        (
            "wave: time from T until every old key was replaced, verified and revoked".into(),
            format!("{:.1} s ({} of {n} done)", took.as_secs_f64(), n - not_rotated),
        ),
        (
            "wave: write bound (writes ÷ 20/s)".into(),
            format!("{bound:.1} s; achieved ratio {:.2}", bound / took.as_secs_f64()),
        ),
        (
            "wave: Graph writes / reads / token requests per registration".into(),
            format!(
                "{:.1} / {:.1} / {:.1}",
                writes as f64 / n as f64,
                reads as f64 / n as f64,
                tokens as f64 / n as f64
            ),
        ),
        ("wave: 429 answers".into(), throttled.to_string()),
        ("wave: Graph writes by route and status".into(), writes_by_route(&calls)),
        ("wave: rotation started (intent recorded) after T, p50 / p99 / max".into(), since_wave(|t| t.started)),
        ("wave: new key in place after T, p50 / p99 / max".into(), since_wave(|t| t.replaced)),
        ("wave: old key revoked after T, p50 / p99 / max".into(), since_wave(|t| t.done)),
        (
            "wave: minimum remaining lifetime of a secret when it was replaced".into(),
            format!(
                "{:.0} s of a renew window of at least {:.0} s; {expired} replaced after expiry",
                min_remaining, renew_window
            ),
        ),
        (
            "wave: reconciles deferred (pacing waits beyond the 2 s budget); mean wait for a slot since start".into(),
            format!("{deferrals:.0}; {:.2} s", if queue_count > 0.0 { queue_sum / queue_count } else { 0.0 }),
        ),
        ("wave: operator CPU seconds".into(), format!("{:.1}", operator.cpu_seconds() - cpu_before)),
        ("wave: operator peak RSS during the wave".into(), mib(wave_rss)),
    ]
}
