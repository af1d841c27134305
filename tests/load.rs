//! Load held: N EmailChannels (Api mode) created at once while Graph, Exchange and Connect answer
//! with random 429s (with and without Retry-After) and 503s, a forced rotation on every fifth
//! channel in the middle of it, and a probe that keeps authenticating with every channel's Secret
//! at the token endpoint. Checks: all Ready, one application per channel, each channel's status,
//! Secret and Connect asset belong to its own application, the probe never failed once a Secret
//! existed, nothing secret leaked. Figures go to `target/reports/load.md`.
//!
//! N comes from `CEO_LOAD_CHANNELS` (default 40).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use connect_email_operator::api::{AzureAppRegistration, EmailChannel};
use connect_email_sim::{AutoForwardingMode, routes};
use futures::future::join_all;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::operator::{CONNECT_ORG, CONNECT_TOKEN, Harness, TENANT, TENANT_REF};
use support::timeline::Timeline;
use support::*;

/// Graph routes the operator uses for a channel; the token endpoint is left alone because the
/// probe authenticates there (faults on it would be the probe's failures, not the operator's).
const GRAPH_ROUTES: &[&str] = &[
    routes::GET_APPLICATION_BY_UNIQUE_NAME,
    routes::UPSERT_APPLICATION,
    routes::UPDATE_APPLICATION,
    routes::ADD_PASSWORD,
    routes::REMOVE_PASSWORD,
    routes::LIST_SERVICE_PRINCIPALS,
    routes::GET_SERVICE_PRINCIPAL_BY_APP_ID,
    routes::UPSERT_SERVICE_PRINCIPAL,
    routes::LIST_GRANTS,
    routes::CREATE_GRANT,
    routes::GET_DEFAULT_APP_MANAGEMENT_POLICY,
];
const EXCHANGE_ROUTES: &[&str] = &[routes::INVOKE_COMMAND];
const CONNECT_ROUTES: &[&str] = &[
    connect_email_sim::connect::routes::CREATE_ASSET,
    connect_email_sim::connect::routes::LIST_ASSETS,
    connect_email_sim::connect::routes::GET_ASSET,
    connect_email_sim::connect::routes::UPDATE_ASSET,
];

fn channel(i: usize) -> serde_json::Value {
    json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel",
        "metadata": {"name": format!("ch{i:03}")},
        "spec": {
            "mailbox": mailbox(i),
            "azure": {"tenantRef": {"name": TENANT_REF}, "clientSecret": {"secretName": format!("ch{i:03}-azure"), "revokeAfter": "5s"}},
            "connect": {"mode": "Api", "region": "us", "tenantHost": "acme.us.webexconnect.io",
                        "assetName": format!("Load {i:03}"), "organizationId": CONNECT_ORG,
                        "credentialsSecretRef": {"name": "webex-connect-api"}}
        }
    })
}

fn mailbox(i: usize) -> String {
    format!("load{i:03}@contoso.com")
}

fn data(secret: &Secret, key: &str) -> Option<String> {
    secret.data.as_ref()?.get(key).map(|v| String::from_utf8_lossy(&v.0).into_owned())
}

fn key_id(secret: &Secret) -> Option<String> {
    secret.metadata.annotations.as_ref()?.get("connectemail.dev/key-id").cloned()
}

fn is_ready(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> bool {
    conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
}

#[derive(Default)]
struct Probe {
    attempts: AtomicU64,
    failures: std::sync::Mutex<Vec<String>>,
}

/// Authenticates with every channel Secret that exists, over and over, until `stop`.
async fn probe(h: Arc<Harness>, probe: Arc<Probe>, stop: Arc<AtomicBool>) {
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns.name);
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(h.sim.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    while !stop.load(Ordering::Relaxed) {
        let Ok(list) = secrets.list(&ListParams::default()).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let attempts = list.items.iter().filter(|s| data(s, "client-secret").is_some()).map(|s| {
            let http = http.clone();
            let probe = probe.clone();
            async move {
                let (Some(client_id), Some(secret), Some(url)) =
                    (data(s, "client-id"), data(s, "client-secret"), data(s, "token-url"))
                else {
                    return;
                };
                probe.attempts.fetch_add(1, Ordering::Relaxed);
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", secret.as_str()),
                    ("scope", "https://graph.microsoft.com/.default"),
                ];
                let outcome = http.post(url).form(&form).send().await.map(|r| r.status());
                if !matches!(outcome, Ok(s) if s.is_success()) {
                    let name = s.metadata.name.clone().unwrap_or_default();
                    let what = format!("{name} (key {:?}): {:?}", key_id(s), outcome.map_err(|e| e.to_string()));
                    probe.failures.lock().unwrap().push(what);
                }
            }
        });
        join_all(attempts).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Adds one random fault every few milliseconds until `budget` faults were added or `stop`.
async fn inject_faults(h: Arc<Harness>, budget: usize, stop: Arc<AtomicBool>) {
    for _ in 0..budget {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let kind = rand::random_range(0..3);
        let pick = |routes: &[&'static str]| routes[rand::random_range(0..routes.len())];
        let builder = match rand::random_range(0..3) {
            0 => h.sim.faults().on(pick(GRAPH_ROUTES)),
            1 => h.sim.faults().on(pick(EXCHANGE_ROUTES)),
            _ => h.connect.faults().on(pick(CONNECT_ROUTES)),
        };
        match kind {
            0 => builder.throttled(Some(1)),
            1 => builder.throttled(None),
            _ => builder.unavailable(),
        }
        tokio::time::sleep(Duration::from_millis(rand::random_range(20..80))).await;
    }
}

/// Reconciles per object of `kind` so far, from the operator's "reconciled" debug lines
/// (`object=Kind.version.group/name.namespace`).
fn reconciles_per_object(logs: &str, kind: &str, ns: &str, names: &[String]) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<String, usize> = names.iter().map(|n| (n.clone(), 0)).collect();
    let prefix = format!("object={kind}.");
    for line in logs.lines().filter(|l| l.contains(" reconciled") && l.contains(&prefix)) {
        let Some(rest) = line.split(&prefix).nth(1) else { continue };
        let Some(object) = rest.split_whitespace().next() else { continue };
        let Some(name) = object.split('/').nth(1).and_then(|n| n.strip_suffix(&format!(".{ns}"))) else { continue };
        if let Some(c) = counts.get_mut(name) {
            *c += 1;
        }
    }
    counts.into_iter().collect()
}

/// min / median / max and how many had none, of per-object reconcile counts.
fn spread(counts: &[(String, usize)]) -> String {
    let mut v: Vec<usize> = counts.iter().map(|(_, c)| *c).collect();
    v.sort();
    if v.is_empty() {
        return "none".into();
    }
    let zero = v.iter().filter(|c| **c == 0).count();
    format!("min {} / median {} / max {} ({} never)", v[0], v[v.len() / 2], v[v.len() - 1], zero)
}

/// Every minute: how far the objects got, and how evenly the operator's reconciles are spread
/// over them (a starved object shows as "never" while others are reconciled again and again).
async fn progress(
    h: Arc<Harness>,
    n: usize,
    channels: Arc<Timeline>,
    registrations: Arc<Timeline>,
    stop: Arc<AtomicBool>,
) {
    let started = Instant::now();
    let names: Vec<String> = (0..n).map(|i| format!("ch{i:03}")).collect();
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..60 {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let count =
            |t: &Timeline, at: fn(&support::timeline::Times) -> bool| t.times().values().filter(|x| at(x)).count();
        let logs = support::hygiene::logs();
        let reg = reconciles_per_object(&logs, "AzureAppRegistration", &h.ns.name, &names);
        let ch = reconciles_per_object(&logs, "EmailChannel", &h.ns.name, &names);
        let throttle = h.sim.calls().iter().filter(|c| c.status == 429).count();
        println!(
            "[load {:>4}s] channels Ready {}/{n}, reconciled {} (status {}); registrations Ready {}, reconciled {} (status {}); \
             reconciles per registration {}; per channel {}; 429s so far {throttle}",
            started.elapsed().as_secs(),
            count(&channels, |t| t.ready.is_some()),
            count(&channels, |t| t.finalizer.is_some()),
            count(&channels, |t| t.status.is_some()),
            count(&registrations, |t| t.ready.is_some()),
            count(&registrations, |t| t.finalizer.is_some()),
            count(&registrations, |t| t.status.is_some()),
            spread(&reg),
            spread(&ch),
        );
    }
}

/// The person's one sign-in per asset ("Generate Token"), played as soon as the asset exists.
async fn sign_in_everywhere(h: Arc<Harness>, stop: Arc<AtomicBool>) {
    let mut signed = BTreeSet::new();
    while !stop.load(Ordering::Relaxed) {
        for asset in h.connect.assets(CONNECT_ORG) {
            if signed.insert(asset.asset_id.clone()) {
                h.connect.complete_sign_in(&asset.asset_id);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_channels_under_faults_converge_without_duplicates_lost_updates_or_outage() {
    let n: usize = std::env::var("CEO_LOAD_CHANNELS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let h = Arc::new(Harness::start("load").await);
    for i in 0..n {
        h.sim.exchange().add_mailbox(TENANT, &mailbox(i));
    }
    h.sim.exchange().set_outbound_policy_mode(TENANT, "Default", AutoForwardingMode::On);
    let token: Secret = serde_json::from_value(json!({
        "metadata": {"name": "webex-connect-api"}, "stringData": {"token": CONNECT_TOKEN}
    }))
    .unwrap();
    Api::<Secret>::namespaced(h.client.clone(), &h.ns.name).create(&PostParams::default(), &token).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let probe_state = Arc::new(Probe::default());
    let probe_task = tokio::spawn(probe(h.clone(), probe_state.clone(), stop.clone()));
    let faults_task = tokio::spawn(inject_faults(h.clone(), 3 * n, stop.clone()));
    let sign_in_task = tokio::spawn(sign_in_everywhere(h.clone(), stop.clone()));

    // All channels at once.
    let started = Instant::now();
    let channels: Api<EmailChannel> = Api::namespaced(h.client.clone(), &h.ns.name);
    let registrations: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    let channel_timeline = Arc::new(Timeline::follow(channels.clone()));
    let registration_timeline = Arc::new(Timeline::follow(registrations.clone()));
    let progress_task =
        tokio::spawn(progress(h.clone(), n, channel_timeline.clone(), registration_timeline.clone(), stop.clone()));
    join_all((0..n).map(|i| {
        let channels = channels.clone();
        async move {
            let object = channel(i);
            let name = object["metadata"]["name"].as_str().unwrap().to_string();
            channels.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&object)).await.unwrap();
        }
    }))
    .await;

    // A forced rotation on every fifth channel as soon as its first secret is verified, while
    // the others are still converging.
    let rotated: Vec<String> = (0..n).step_by(5).map(|i| format!("ch{i:03}")).collect();
    let first_keys: Arc<tokio::sync::Mutex<BTreeMap<String, String>>> = Arc::default();
    let timeout = Duration::from_secs(120 + 3 * n as u64);
    eventually(timeout, || {
        let registrations = registrations.clone();
        let rotated = rotated.clone();
        let first_keys = first_keys.clone();
        async move {
            let mut first_keys = first_keys.lock().await;
            for name in &rotated {
                if first_keys.contains_key(name) {
                    continue;
                }
                let Some(r) = registrations.get_opt(name).await.map_err(|e| e.to_string())? else { continue };
                let key = r.status.and_then(|s| s.credential).filter(|c| c.verified_at.is_some()).map(|c| c.key_id);
                if let Some(key) = key {
                    let patch = json!({"metadata": {"annotations": {"connectemail.dev/rotate": "load"}}});
                    registrations.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
                    first_keys.insert(name.clone(), key);
                }
            }
            if first_keys.len() == rotated.len() {
                Ok(())
            } else {
                Err(format!("{} rotations started", first_keys.len()))
            }
        }
    })
    .await;
    let first_keys = first_keys.lock().await.clone();

    // Everything Ready and settled: rotations done, previous secrets revoked.
    eventually(timeout, || {
        let channels = channels.clone();
        let registrations = registrations.clone();
        let first_keys = first_keys.clone();
        async move {
            let list = channels.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
            let not_ready: Vec<String> = list
                .items
                .iter()
                .filter(|c| !is_ready(&c.status.clone().unwrap_or_default().conditions))
                .filter_map(|c| c.metadata.name.clone())
                .collect();
            if list.items.len() != n || !not_ready.is_empty() {
                return Err(format!("{} of {n} channels not Ready: {not_ready:?}", not_ready.len()));
            }
            let regs = registrations.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
            let unsettled: Vec<String> = regs
                .items
                .iter()
                .filter(|r| {
                    let s = r.status.clone().unwrap_or_default();
                    let name = r.metadata.name.clone().unwrap_or_default();
                    let key = s.credential.as_ref().map(|c| c.key_id.clone());
                    let rotation_pending = first_keys.get(&name).is_some_and(|first| key.as_ref() == Some(first));
                    !s.previous_credentials.is_empty() || s.pending_rotation.is_some() || rotation_pending
                })
                .filter_map(|r| r.metadata.name.clone())
                .collect();
            if unsettled.is_empty() { Ok(()) } else { Err(format!("rotation not finished: {unsettled:?}")) }
        }
    })
    .await;
    let time_to_ready = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::join!(probe_task, faults_task, sign_in_task, progress_task);
    h.sim.faults().clear();
    h.connect.faults().clear();

    // One application per channel, and each channel's status, Secret and asset belong to it.
    let apps = h.sim.applications(TENANT);
    // Applications beyond one per channel (each registration's own count is checked below).
    let duplicates = apps.len().saturating_sub(n);
    let mut problems = Vec::new();
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns.name);
    let mut leftover_passwords = 0;
    for c in channels.list(&ListParams::default()).await.unwrap().items {
        let name = c.metadata.name.clone().unwrap();
        let cs = c.status.clone().unwrap_or_default();
        let r = registrations.get(&name).await.unwrap();
        let rs = r.status.clone().unwrap_or_default();
        let mine: Vec<_> = apps.iter().filter(|a| a.unique_name.is_some() && a.unique_name == rs.unique_name).collect();
        let [app] = mine.as_slice() else {
            problems.push(format!("{name}: {} applications for its registration", mine.len()));
            continue;
        };
        leftover_passwords += app.passwords.len().saturating_sub(1);
        let credential = rs.credential.clone().unwrap();
        let secret = secrets.get(&format!("{name}-azure")).await.unwrap();
        let password = app.passwords.iter().find(|p| p.key_id == credential.key_id);
        let asset = h.connect.asset(cs.connect.as_ref().and_then(|c| c.asset_id.as_deref()).unwrap_or_default());
        let checks = [
            ("registration appId", rs.app_id.as_deref() == Some(app.app_id.as_str())),
            ("channel appId", cs.app_id.as_deref() == Some(app.app_id.as_str())),
            ("Secret client-id", data(&secret, "client-id").as_deref() == Some(app.app_id.as_str())),
            ("Secret key-id", key_id(&secret).as_deref() == Some(credential.key_id.as_str())),
            ("Secret text", password.is_some_and(|p| data(&secret, "client-secret") == Some(p.secret_text.clone()))),
            ("one password", app.passwords.len() == 1),
            ("Connect client ID", asset.as_ref().is_some_and(|a| a.oauth.client_id == app.app_id)),
            (
                "Connect secret",
                asset.as_ref().is_some_and(|a| password.is_some_and(|p| a.oauth.client_secret == p.secret_text)),
            ),
            (
                "Connect applied key",
                cs.connect.as_ref().and_then(|c| c.applied_key_id.as_deref()) == Some(&credential.key_id),
            ),
            ("rotated", first_keys.get(&name).is_none_or(|first| first != &credential.key_id)),
        ];
        for (what, ok) in checks {
            if !ok {
                problems.push(format!("{name}: {what} does not match its own application"));
            }
        }
    }

    // Figures.
    let ms_calls = h.sim.calls();
    let connect_calls = h.connect.calls();
    let count = |status: u16| {
        ms_calls.iter().filter(|c| c.status == status).count()
            + connect_calls.iter().filter(|c| c.status == status).count()
    };
    let logs = support::hygiene::logs();
    let retries = logs.lines().filter(|l| l.contains("retrying")).count();
    let probe_failures = probe_state.failures.lock().unwrap().clone();
    let names: Vec<String> = (0..n).map(|i| format!("ch{i:03}")).collect();
    let reconciled = |kind: &str| spread(&reconciles_per_object(&logs, kind, &h.ns.name, &names));
    let mut rows: Vec<(String, String)> = [
        ("channels (N)", n.to_string()),
        ("time to all Ready and rotations settled", format!("{:.1} s", time_to_ready.as_secs_f64())),
        ("forced rotations during the load", rotated.len().to_string()),
        ("429 injected (with and without Retry-After)", count(429).to_string()),
        ("503 injected", count(503).to_string()),
        ("operator HTTP retries (log lines \"retrying\")", retries.to_string()),
        ("Graph + token + Exchange requests", ms_calls.len().to_string()),
        ("Connect requests", connect_calls.len().to_string()),
        ("addPassword calls", h.sim.count(routes::ADD_PASSWORD).to_string()),
        ("probe token requests", probe_state.attempts.load(Ordering::Relaxed).to_string()),
        ("probe failures", probe_failures.len().to_string()),
        ("applications in Entra ID", apps.len().to_string()),
        ("duplicate applications", duplicates.to_string()),
        ("passwords left beyond one per application", leftover_passwords.to_string()),
        ("lost updates (status/Secret/asset not matching its app)", problems.len().to_string()),
        ("reconciles deferred (a pacing wait beyond the 2 s budget), channel / registration", {
            let deferred = |kind: &str| {
                let labels = connect_email_operator::metrics::KindLabels { kind: kind.into() };
                h.metrics.as_ref().map_or(0, |m| m.reconcile_deferrals.get_or_create(&labels).get())
            };
            format!("{} / {}", deferred("EmailChannel"), deferred("AzureAppRegistration"))
        }),
        ("reconciles per channel", reconciled("EmailChannel")),
        ("reconciles per registration", reconciled("AzureAppRegistration")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // Time to first reconcile next to time to Ready (the operator's FIFO admission bounds the
    // first; see docs/performance.md).
    rows.extend(channel_timeline.rows("channels"));
    rows.extend(registration_timeline.rows("registrations"));
    let mut report = String::from(
        "## Load held (tests/load.rs)\n\nApi-mode EmailChannels created at once with random 429s (Retry-After 1 s or none) and 503s on Graph, Exchange InvokeCommand and Connect, a forced rotation on every fifth channel, and a probe authenticating with every Secret throughout.\n\n| figure | value |\n| --- | --- |\n",
    );
    for (k, v) in &rows {
        report.push_str(&format!("| {k} | {v} |\n"));
    }
    let dir = repo_root().join("target/reports");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("load.md"), &report).unwrap();
    println!("{report}");

    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(apps.len(), n, "one application per channel");
    assert_eq!(duplicates, 0);
    assert!(probe_failures.is_empty(), "the probe failed with a Secret the operator wrote: {probe_failures:#?}");
    assert!(probe_state.attempts.load(Ordering::Relaxed) > 0, "the probe never ran");
    assert!(count(429) + count(503) > 0, "no fault was injected");
    let h = Arc::into_inner(h).expect("background tasks finished");
    h.finish().await;
}
