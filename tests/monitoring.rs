//! The monitoring contract: the operator runs in-process against the simulators and the test
//! apiserver, drives a channel to Ready and through one rotation, and its real `/metrics` endpoint
//! (scraped over HTTP) exposes every metric that the dashboard
//! (`deploy/monitoring/grafana-dashboard.json`) and the alerts
//! (`deploy/monitoring/prometheusrule.yaml`) query. Then the operator restarts with its resources
//! paused: the per-resource gauges, computed from the controllers' caches at scrape time, are back
//! as soon as the caches are filled, without a reconcile having set them.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use connect_email_operator::api::{ANNOTATION_PAUSED, AzureAppRegistration, EmailChannel};
use connect_email_operator::metrics::{self, Metrics};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use support::channel::{self, CHANNEL};
use support::operator::Harness;
use support::*;

const PREFIX: &str = "connect_email_operator_";

/// Serves `/metrics` of `m` on a free local port; returns the URL.
async fn serve(m: Arc<Metrics>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    tokio::spawn(metrics::serve_on(listener, m));
    url
}

/// One scrape: the families declared (`# TYPE name type`) and the samples (name with labels → value).
struct Scrape {
    types: BTreeMap<String, String>,
    samples: Vec<(String, String, f64)>,
    text: String,
}

impl Scrape {
    async fn get(url: &str) -> Self {
        let response = reqwest::get(url).await.unwrap();
        assert!(response.status().is_success());
        let text = response.text().await.unwrap();
        let mut types = BTreeMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                types.insert(name.to_string(), kind.to_string());
            } else if !line.starts_with('#') && !line.is_empty() {
                let (series, value) = line.rsplit_once(' ').unwrap();
                let name = series.split('{').next().unwrap();
                let labels = series.strip_prefix(name).unwrap_or_default();
                samples.push((name.to_string(), labels.to_string(), value.parse().unwrap()));
            }
        }
        Self { types, samples, text }
    }

    /// The family a sample name of a query belongs to, if the scrape declares it with a type
    /// that has such samples (`_total` of a counter, `_bucket`/`_sum`/`_count` of a histogram).
    fn family_of(&self, name: &str) -> Option<&str> {
        if let Some((family, kind)) = self.types.get_key_value(name) {
            return (kind == "gauge").then_some(family.as_str());
        }
        let suffixes: [(&str, &str); 4] =
            [("_total", "counter"), ("_bucket", "histogram"), ("_sum", "histogram"), ("_count", "histogram")];
        suffixes.iter().find_map(|(suffix, kind)| {
            let base = name.strip_suffix(suffix)?;
            let (family, declared) = self.types.get_key_value(base)?;
            (declared == kind).then_some(family.as_str())
        })
    }

    fn has_samples(&self, name: &str) -> bool {
        self.samples.iter().any(|(n, _, _)| n == name)
    }

    /// The value of the sample `name` whose labels contain every one of `labels`.
    fn value(&self, name: &str, labels: &[&str]) -> Option<f64> {
        self.samples.iter().find(|(n, l, _)| n == name && labels.iter().all(|x| l.contains(x))).map(|(_, _, v)| *v)
    }
}

/// The metric names in a PromQL expression: identifiers starting with the operator's prefix
/// (label names, functions and `by (...)` lists never do).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut chars = expr.char_indices().peekable();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut in_string: Option<char> = None;
    while let Some((i, c)) = chars.next() {
        if let Some(quote) = in_string {
            if c == '\\' {
                chars.next();
            } else if c == quote {
                in_string = None;
            }
            continue;
        }
        if c == '"' || c == '\'' || c == '`' {
            in_string = Some(c);
            continue;
        }
        if ident(c) && !c.is_ascii_digit() {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if !ident(d) {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            let word = &expr[i..end];
            if word.starts_with(PREFIX) {
                names.insert(word.to_string());
            }
        }
    }
    names
}

/// Every PromQL expression of the dashboard (panel targets and template variable queries).
fn dashboard_expressions() -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                        ("query", Value::String(s)) if s.contains(PREFIX) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(repo_root().join("deploy/monitoring/grafana-dashboard.json")).unwrap();
    let mut out = Vec::new();
    walk(&serde_json::from_str(&text).unwrap(), &mut out);
    out
}

/// Every alert expression of the PrometheusRule.
fn alert_expressions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join("deploy/monitoring/prometheusrule.yaml")).unwrap();
    let rule: Value = serde_yaml::from_str(&text).unwrap();
    rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .map(|r| (r["alert"].as_str().unwrap().to_string(), r["expr"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn the_tokenizer_finds_metric_names_and_nothing_else() {
    let names = metric_names(
        r#"histogram_quantile(0.95, sum by (system, le) (rate(connect_email_operator_external_request_duration_seconds_bucket{name="connect_email_operator_not_a_metric"}[5m]))) / connect_email_operator_leader"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["connect_email_operator_external_request_duration_seconds_bucket", "connect_email_operator_leader"]
    );
}

/// The per-resource series of the channel's registration and of the channel.
fn per_resource_series(ns: &str) -> Vec<(&'static str, Vec<String>)> {
    let reg = vec![format!("namespace=\"{ns}\""), format!("name=\"{CHANNEL}\"")];
    let kind = |k: &str| {
        let mut l = reg.clone();
        l.push(format!("kind=\"{k}\""));
        l
    };
    vec![
        ("connect_email_operator_secret_expiration_timestamp_seconds", reg.clone()),
        ("connect_email_operator_secret_renewal_timestamp_seconds", reg.clone()),
        ("connect_email_operator_secret_in_use_expiration_timestamp_seconds", reg.clone()),
        ("connect_email_operator_acknowledgement_pending_seconds", reg.clone()),
        ("connect_email_operator_resource_ready", kind("AzureAppRegistration")),
        ("connect_email_operator_resource_ready", kind("EmailChannel")),
        ("connect_email_operator_resource_condition", {
            let mut l = kind("EmailChannel");
            l.push("condition=\"ConnectAssetSynced\"".into());
            l
        }),
        ("connect_email_operator_resource_condition", {
            let mut l = kind("AzureAppRegistration");
            l.push("condition=\"CredentialReady\"".into());
            l
        }),
    ]
}

fn missing_series(scrape: &Scrape, ns: &str) -> Vec<String> {
    per_resource_series(ns)
        .into_iter()
        .filter(|(name, labels)| {
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            scrape.value(name, &labels).is_none()
        })
        .map(|(name, labels)| format!("{name}{labels:?}"))
        .collect()
}

async fn annotate(h: &Harness, value: Option<&str>) {
    let patch = Patch::Merge(json!({"metadata": {"annotations": {ANNOTATION_PAUSED: value}}}));
    Api::<EmailChannel>::namespaced(h.client.clone(), &h.ns.name)
        .patch(CHANNEL, &PatchParams::default(), &patch)
        .await
        .unwrap();
    Api::<AzureAppRegistration>::namespaced(h.client.clone(), &h.ns.name)
        .patch(CHANNEL, &PatchParams::default(), &patch)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_and_the_alerts_query_metrics_the_operator_exposes_and_restarts_keep_them() {
    let mut h = Harness::start("monitoring").await;
    let ns = h.ns.name.clone();
    let url = serve(h.metrics.clone().expect("the operator runs")).await;
    channel::prepare(&h).await;
    channel::apply(&h).await;
    let (_, first) = channel::converged(&h, None, Duration::from_secs(90)).await;
    let first_key = first.status.unwrap().credential.unwrap().key_id;
    channel::rotate(&h, "monitoring").await;
    let (_, rotated) = channel::converged(&h, Some(&first_key), Duration::from_secs(90)).await;
    let credential = rotated.status.unwrap().credential.unwrap();

    // Every metric the dashboard and the alerts query is in the scrape.
    let scrape = eventually(Duration::from_secs(10), || async {
        let scrape = Scrape::get(&url).await;
        let expiry = scrape.value(
            "connect_email_operator_secret_expiration_timestamp_seconds",
            &[&format!("namespace=\"{ns}\""), &format!("name=\"{CHANNEL}\"")],
        );
        // The cache has caught up with the rotation.
        if expiry == Some(credential.not_after.0.as_second() as f64) { Ok(scrape) } else { Err(scrape.text) }
    })
    .await;
    let missing = missing_series(&scrape, &ns);
    assert!(missing.is_empty(), "missing {missing:?} in\n{}", scrape.text);
    let mut queried: Vec<(String, String)> =
        dashboard_expressions().into_iter().map(|e| ("the dashboard".to_string(), e)).collect();
    assert!(queried.len() >= 15, "{queried:?}");
    queried.extend(alert_expressions().into_iter().map(|(alert, e)| (format!("alert {alert}"), e)));
    let mut referenced = BTreeSet::new();
    for (source, expr) in &queried {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{source}: no metric in {expr}");
        for name in names {
            assert!(scrape.family_of(&name).is_some(), "{source} queries {name}, which /metrics does not expose");
            assert!(scrape.has_samples(&name), "{source} queries {name}, which has no sample:\n{}", scrape.text);
            referenced.insert(name);
        }
    }
    for name in [
        "connect_email_operator_secret_in_use_expiration_timestamp_seconds",
        "connect_email_operator_acknowledgement_pending_seconds",
        "connect_email_operator_secrets_issued_total",
        "connect_email_operator_leader",
        "connect_email_operator_resource_condition",
        "connect_email_operator_external_throttled_total",
        "connect_email_operator_reconcile_errors_total",
    ] {
        assert!(referenced.contains(name), "the dashboard shows {name}");
    }
    // One initial secret and one forced rotation were issued; no leader election: this process leads.
    assert!(scrape.value("connect_email_operator_secrets_issued_total", &["reason=\"Forced\""]) >= Some(1.0));
    assert_eq!(scrape.value("connect_email_operator_leader", &[]), Some(1.0));
    assert!(!scrape.text.contains(&credential.key_id), "no key ID in labels, let alone a secret");

    // Stopped, the controllers take their objects out of the scrape (a standby shows none).
    h.stop_operator().await;
    let stopped = Scrape::get(&url).await;
    assert!(!stopped.text.contains(&format!("namespace=\"{ns}\"")), "{}", stopped.text);

    // A restart with the resources paused, and metrics of its own (a new process): the paused
    // reconciles set no credential gauge, the scrape shows them from the caches.
    annotate(&h, Some("true")).await;
    // `context` builds a new registry, as a new process has.
    let ctx = h.context(h.client.clone());
    let restarted_metrics = ctx.metrics.clone();
    let url = serve(restarted_metrics.clone()).await;
    h.start_operator_with(ctx, ns.clone());
    // Every per-resource series is back once the caches are filled.
    let after = eventually(Duration::from_secs(30), || async {
        let scrape = Scrape::get(&url).await;
        let missing = missing_series(&scrape, &ns);
        if missing.is_empty() { Ok(scrape) } else { Err(format!("missing {missing:?} in\n{}", scrape.text)) }
    })
    .await;
    let reg = [format!("namespace=\"{ns}\""), format!("name=\"{CHANNEL}\"")];
    let reg: Vec<&str> = reg.iter().map(String::as_str).collect();
    assert_eq!(
        after.value("connect_email_operator_secret_expiration_timestamp_seconds", &reg),
        Some(credential.not_after.0.as_second() as f64)
    );
    // Paused, the registration is not Ready; its credential gauges stay.
    let paused = eventually(Duration::from_secs(30), || async {
        let scrape = Scrape::get(&url).await;
        let ready =
            scrape.value("connect_email_operator_resource_ready", &[reg[0], reg[1], "kind=\"AzureAppRegistration\""]);
        if ready == Some(0.0) { Ok(scrape) } else { Err(scrape.text) }
    })
    .await;
    let missing = missing_series(&paused, &ns);
    assert!(missing.is_empty(), "missing while paused {missing:?} in\n{}", paused.text);
    assert_eq!(
        paused.value("connect_email_operator_secret_expiration_timestamp_seconds", &reg),
        Some(credential.not_after.0.as_second() as f64)
    );

    annotate(&h, None).await;
    h.finish().await;
}
