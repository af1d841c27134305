//! Benchmark: N AzureAppRegistrations (or EmailChannels) created at once against the local control
//! plane and the simulators with realistic Graph latency, and Graph's write limit modelled. Prints
//! figures; asserts nothing. Run (with `tests/cluster/up` running):
//!
//!     cargo run --release --example scale -- 100            # registrations
//!     cargo run --release --example scale -- 100 channels   # email channels
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use connect_email_operator::api::{AzureAppRegistration, EmailChannel};
use connect_email_operator::sim::{AutoForwardingMode, SimOptions, routes};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use support::operator::{Harness, TENANT};

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100);
    let channels = args.get(1).is_some_and(|a| a == "channels");
    let options = SimOptions::default().tenant(TENANT).latency(Duration::from_millis(80), Duration::from_millis(150));
    let h = Harness::start_with("bench", options).await;
    // Graph's documented identity write limit per app and tenant: 3,000 writes per 150 s.
    h.sim.faults().set_write_rate_limit(3000, Duration::from_secs(150));
    h.sim.exchange().set_outbound_policy_mode(TENANT, "Default", AutoForwardingMode::On);
    let started = Instant::now();
    let cpu_start = cpu_seconds();
    let params = PatchParams::apply("bench");
    for i in 0..n {
        let name = format!("r{i}");
        if channels {
            let mailbox = format!("user{i}@contoso.com");
            h.sim.exchange().add_mailbox(TENANT, &mailbox);
            let object = json!({
                "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel", "metadata": {"name": name},
                "spec": {"mailbox": mailbox, "azure": {"tenantId": TENANT},
                         "connect": {"region": "us", "tenantHost": "acme.us.webexconnect.io", "assetName": name,
                                     "forwardingAddress": format!("f{i}@mail-us.imiconnect.io")}}
            });
            Api::<EmailChannel>::namespaced(h.client.clone(), &h.ns.name)
                .patch(&name, &params, &Patch::Apply(&object))
                .await
                .unwrap();
        } else {
            let object = json!({
                "apiVersion": "connectemail.dev/v1alpha1", "kind": "AzureAppRegistration", "metadata": {"name": name},
                "spec": {"tenantId": TENANT, "displayName": name, "redirectUris": ["https://acme.us.webexconnect.io/callback"],
                         "permissions": [{"resource": "Office 365 Exchange Online", "delegated": ["SMTP.Send"]}],
                         "clientSecret": {"secretName": format!("{name}-credentials")}}
            });
            Api::<AzureAppRegistration>::namespaced(h.client.clone(), &h.ns.name)
                .patch(&name, &params, &Patch::Apply(&object))
                .await
                .unwrap();
        }
    }
    let registrations: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    let condition = if channels { "AppRegistrationReady" } else { "Ready" };
    loop {
        let ready = if channels {
            let list = Api::<EmailChannel>::namespaced(h.client.clone(), &h.ns.name)
                .list(&ListParams::default())
                .await
                .unwrap();
            list.items
                .iter()
                .filter(|c| {
                    c.status
                        .as_ref()
                        .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == condition && c.status == "True"))
                })
                .count()
        } else {
            let list = registrations.list(&ListParams::default()).await.unwrap();
            list.items
                .iter()
                .filter(|c| {
                    c.status
                        .as_ref()
                        .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == condition && c.status == "True"))
                })
                .count()
        };
        if ready == n || started.elapsed() > Duration::from_secs(1800) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let to_ready = started.elapsed();
    let calls = h.sim.calls();
    let graph: Vec<_> =
        calls.iter().filter(|c| c.route != routes::TOKEN && c.route != routes::INVOKE_COMMAND).collect();
    let writes = graph.iter().filter(|c| c.method != "GET").count();
    let reads = graph.len() - writes;
    let throttled = calls.iter().filter(|c| c.status == 429).count();
    let metrics = connect_email_operator::metrics::global().encode();
    let reconciles: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("connect_email_operator_reconciliations_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    // Lower bound from the write limit alone: the first 3,000 writes fit the window, the rest come
    // at 3,000 per 150 s (20 per second).
    let bound = writes.saturating_sub(3000) as f64 / 20.0;
    println!("| figure | value |\n| --- | --- |");
    println!("| resources | {n} {} |", if channels { "EmailChannels" } else { "AzureAppRegistrations" });
    println!("| time until all {condition} | {:.1} s |", to_ready.as_secs_f64());
    println!("| write-limit lower bound | {bound:.1} s (achieved ratio {:.2}) |", bound / to_ready.as_secs_f64());
    println!("| Graph writes per resource | {:.1} |", writes as f64 / n as f64);
    println!("| Graph reads per resource | {:.1} |", reads as f64 / n as f64);
    println!("| 429 answers | {throttled} |");
    println!("| reconciles per object | {:.1} |", reconciles / n as f64);
    println!("| operator CPU seconds (process, incl. simulators) | {:.1} |", cpu_seconds() - cpu_start);
    println!("| peak RSS (process, incl. simulators) | {} MiB |", rss_kib("VmHWM:") / 1024);
    h.finish().await;
}
