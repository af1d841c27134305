//! Benchmark: N AzureAppRegistrations or EmailChannels created at once against the local control
//! plane and the simulators, with Graph's documented limits (3,000 writes per 150 s and 3,500
//! resource units per 10 s per app and tenant, 429 + Retry-After beyond) and 80–150 ms latency.
//! The operator is the release binary in its own process (so its RSS and CPU are its own), with
//! its production defaults (delta drift detection). Prints a markdown table; asserts nothing.
//!
//!     scripts/bench 1000 registrations     # or: channels, memory (no limits, RSS only)
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

/// Periodic intervals are divided by this in the idle phase: 3 minutes stand for an hour.
const TIME_SCALE: u64 = 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Registrations,
    Channels,
    /// Registrations with no Graph limits and little latency: only the operator's memory.
    Memory,
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

fn manifest(kind: Kind, i: usize) -> serde_json::Value {
    let name = format!("r{i}");
    match kind {
        Kind::Channels => json!({
            "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel", "metadata": {"name": name},
            "spec": {"mailbox": format!("user{i}@contoso.com"), "azure": {"tenantRef": {"name": TENANT_REF}},
                     "connect": {"mode": "Api", "region": "us", "tenantHost": "acme.us.webexconnect.io",
                                 "assetName": name, "organizationId": CONNECT_ORG,
                                 "credentialsSecretRef": {"name": "webex-connect-api"}}}
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
            while let Some(Ok(obj)) = events.next().await {
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
        _ => Kind::Registrations,
    };
    let idle = kind != Kind::Memory && !args.iter().any(|a| a == "--no-idle");
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
    let operator = Operator::spawn(&h, if kind == Kind::Memory { &unlimited } else { &[] });
    let started = Instant::now();
    // Ready resources every 30 s from the start (creation included), sampled by its own task.
    let timeline = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sampler = {
        let (timeline, ready_now) = (timeline.clone(), ready_now.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + Duration::from_secs(30),
                Duration::from_secs(30),
            );
            for i in 1.. {
                tick.tick().await;
                let ready = ready_now.load(std::sync::atomic::Ordering::Relaxed);
                timeline.lock().unwrap().push(format!("{}: {ready}", 30 * i));
            }
        })
    };
    let params = PatchParams::apply("bench");
    futures::stream::iter(0..n)
        .for_each_concurrent(16, |i| {
            let (client, ns, params) = (h.client.clone(), h.ns.name.clone(), params.clone());
            async move {
                let object = manifest(kind, i);
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
        if ready == n || started.elapsed() > Duration::from_secs(3600) {
            break ready;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let to_ready = started.elapsed();
    sampler.abort();
    let timeline = timeline.lock().unwrap().join(", ");
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
    };
    let per = |x: usize| format!("{:.1}", x as f64 / n as f64);
    let mut rows: Vec<(String, String)> = vec![
        ("resources".into(), format!("{n} {what}")),
        ("created (API calls done) after".into(), format!("{:.1} s", created.as_secs_f64())),
        ("time until all Ready".into(), format!("{:.1} s ({ready}/{n} Ready)", to_ready.as_secs_f64())),
        ("failed (not Ready)".into(), (n - ready).to_string()),
        ("Ready after 30, 60, … s".into(), timeline),
    ];
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
