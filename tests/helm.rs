//! The Helm chart: `helm lint`, `helm template` accepted by the real apiserver (restricted Pod
//! Security, server-side apply, idempotent), values.schema.json rejecting bad values, the CRDs
//! templated from the generated copy and upgraded by `helm upgrade`. helm is built from its Go
//! module by tests/tools/install-helm (scripts/test and .ci/run run it).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use connect_email_operator::api;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use support::*;

fn chart() -> String {
    repo_root().join("charts/connect-email-operator").to_str().unwrap().to_string()
}

/// A fresh directory under the system temp directory.
fn scratch_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("ceo-helm-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs helm against the test cluster, with its cache, config and data in a scratch directory.
fn run_helm(args: &[&str]) -> (bool, String, String) {
    let home = std::env::temp_dir().join(format!("ceo-helm-home-{}", std::process::id()));
    let output = Command::new(helm())
        .args(args)
        .env("KUBECONFIG", kubeconfig_path())
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("run helm");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into(),
        String::from_utf8_lossy(&output.stderr).into(),
    )
}

/// `helm template` of `chart` with `args` (e.g. `--set`); panics when helm refuses.
fn render_chart(chart: &str, args: &[&str]) -> Vec<Value> {
    // helm template has no cluster to ask; the chart requires >= 1.30.
    let mut all = vec!["template", "ceo", chart, "--namespace", "ceo-system", "--kube-version", "v1.35.4"];
    all.extend_from_slice(args);
    let (ok, out, err) = run_helm(&all);
    assert!(ok, "helm template {args:?}: {err}");
    documents(&out)
}

fn render(args: &[&str]) -> Vec<Value> {
    render_chart(&chart(), args)
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| <Value as serde::Deserialize>::deserialize(doc).unwrap())
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The one rendered object of `kind`, or None (panics when there are several).
fn find<'a>(docs: &'a [Value], kind: &str) -> Option<&'a Value> {
    let mut found = docs.iter().filter(|d| d["kind"] == kind);
    let first = found.next();
    assert!(found.next().is_none(), "more than one {kind}");
    first
}

/// Copies the chart into `to`, with `connectemail.dev` replaced by `group` everywhere, so that
/// install and upgrade tests own CRDs of their own and never touch the ones other tests use.
fn copy_chart(to: &Path, group: &str) {
    fn copy(from: &Path, to: &Path, group: &str) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target, group);
            } else {
                let text = std::fs::read_to_string(entry.path()).unwrap();
                std::fs::write(target, text.replace(api::GROUP, group)).unwrap();
            }
        }
    }
    copy(Path::new(&chart()), to, group);
}

/// Removes `spec.smtp` from the EmailChannel CRD at `path`: the "previous" schema of upgrade tests.
fn remove_smtp_field(path: &Path) {
    let mut crd: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let spec = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert!(spec.as_object_mut().unwrap().remove("smtp").is_some(), "{}: no spec.smtp", path.display());
    std::fs::write(path, serde_yaml::to_string(&crd).unwrap()).unwrap();
}

/// A CRD as the apiserver serves it; None when it does not exist.
fn served_crd(name: &str) -> Option<Value> {
    let (ok, out, err) = kubectl(&["get", "crd", name, "-o", "json"]);
    if !ok {
        assert!(err.contains("NotFound"), "{err}");
        return None;
    }
    Some(serde_json::from_str(&out).unwrap())
}

fn has_smtp(crd: &Value) -> bool {
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"].get("smtp").is_some()
}

#[test]
fn the_chart_lints() {
    let (ok, out, err) = run_helm(&["lint", &chart()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("0 chart(s) failed"), "{out}");
}

/// Each case is a helm flag, its argument, and a fragment of the schema error helm must print.
fn assert_rejected(cases: &[(&str, &str, &str)]) {
    for (flag, value, fragment) in cases {
        let (ok, out, err) = run_helm(&["template", "ceo", &chart(), "--kube-version", "v1.35.4", flag, value]);
        assert!(!ok, "{flag} {value} was accepted:\n{out}");
        assert!(err.contains(fragment), "{flag} {value}: {err}");
    }
}

#[test]
fn values_outside_the_schema_are_rejected() {
    assert_rejected(&[
        ("--set", "replicas=0", "replicas"),
        ("--set", "endpoints.graph=http://graph.example.com", "graph"),
        ("--set", "workloadIdentity.clientId=not-a-guid", "clientId"),
        ("--set", "unknownSetting=1", "unknownSetting"),
        ("--set", "crds.enabled=maybe", "crds.enabled"),
        ("--set", "crds.keep=1", "crds.keep"),
        ("--set", "nameOverride=Not_A_Name", "nameOverride"),
        ("--set", "fullnameOverride=Upper.Case", "fullnameOverride"),
        ("--set", "imagePullSecrets[0]=regcred", "imagePullSecrets"),
        ("--set", "podAnnotations.checksum=1", "podAnnotations"),
        ("--set", "podLabels.team=true", "podLabels"),
        ("--set", "podSecurityContext=runAsNonRoot", "podSecurityContext"),
        ("--set", "securityContext=privileged", "securityContext"),
        ("--set", "priorityClassName=1", "priorityClassName"),
        ("--set", "topologySpreadConstraints[0].maxSkew=1", "topologyKey"),
        (
            "--set-json",
            r#"topologySpreadConstraints=[{"maxSkew":0,"topologyKey":"zone","whenUnsatisfiable":"ScheduleAnyway"}]"#,
            "maxSkew",
        ),
        ("--set", "nodeSelector.zone=1", "nodeSelector"),
        ("--set", "tolerations[0]=master", "tolerations"),
        ("--set", "affinity=zone", "affinity"),
        ("--set", "extraArgs[0]=concurrency=5", "extraArgs"),
        ("--set", "extraEnv[0].value=x", "extraEnv.0: name is required"),
        ("--set", "volumes[0].secret.secretName=s", "volumes"),
        ("--set", "volumeMounts[0].name=credential", "mountPath"),
        ("--set", "volumeMounts[0].mountPath=relative", "mountPath"),
        ("--set", "logLevel=verbose", "logLevel"),
        ("--set", "podDisruptionBudget.maxUnavailable=0", "maxUnavailable"),
        ("--set", "podDisruptionBudget.maxUnavailable=half", "maxUnavailable"),
        ("--set", "metrics.serviceMonitor.labels.release=1", "labels.release"),
        ("--set", "metrics.serviceMonitor.interval=soon", "interval"),
        ("--set", "metrics.prometheusRule.enabled=yes", "prometheusRule.enabled"),
        ("--set", "metrics.prometheusRule.labels=kps", "prometheusRule.labels"),
        ("--set", "grafanaDashboard.enabled=yes", "grafanaDashboard.enabled"),
        ("--set", "grafanaDashboard.namespace=Monitoring", "grafanaDashboard.namespace"),
        ("--set", "grafanaDashboard.annotations.grafana_folder=1", "grafanaDashboard.annotations"),
        ("--set", "networkPolicy.enabled=on", "networkPolicy.enabled"),
        ("--set", "networkPolicy.dnsPorts[0]=domain", "dnsPorts"),
        ("--set", "networkPolicy.apiServer.ports=null", "ports is required"),
        ("--set", "networkPolicy.apiServer.ports[0]=0", "ports.0"),
        ("--set", "networkPolicy.apiServer.cidrs[0]=10.0.0.1", "cidrs"),
        ("--set", "networkPolicy.metricsFrom[0]=monitoring", "metricsFrom"),
        ("--set", "networkPolicy.extraEgress=proxy", "extraEgress"),
        ("--set", "test.enabled=sure", "test.enabled"),
        ("--set", "test.image=", "test.image"),
        ("--set", "test.podSecurityContext=root", "test.podSecurityContext"),
    ]);
}

/// Every value of values.yaml set to something a user would set; `helm lint` and `helm template`
/// accept them and the apiserver too (the_rendered_chart_is_accepted_by_the_apiserver…).
const GOOD_VALUES: &str = r#"
nameOverride: mail
imagePullSecrets: [{name: regcred}]
logLevel: debug
extraArgs: [--concurrency=20, --channel-resync=1h]
extraEnv:
  - {name: AZURE_CLIENT_CERTIFICATE_PATH, value: /var/run/secrets/operator/tls.pem}
volumes: [{name: operator-credential, secret: {secretName: operator-credential}}]
volumeMounts: [{name: operator-credential, mountPath: /var/run/secrets/operator, readOnly: true}]
podAnnotations: {example.com/owner: platform}
podLabels: {team: platform}
podSecurityContext: {fsGroup: 65532}
securityContext: {runAsNonRoot: true}
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: operators, effect: NoSchedule}]
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector: {matchLabels: {app.kubernetes.io/name: mail}}
topologySpreadConstraints:
  - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway}
podDisruptionBudget: {maxUnavailable: 1}
metrics:
  serviceMonitor: {labels: {release: kube-prometheus-stack}}
  prometheusRule: {labels: {release: kube-prometheus-stack}}
grafanaDashboard: {enabled: true, labels: {release: kube-prometheus-stack}, annotations: {grafana_folder: Operators}}
networkPolicy:
  enabled: true
  dnsPorts: [53, 5353]
  apiServer: {ports: [6443], cidrs: [10.0.0.10/32, "fd00::1/128"]}
  metricsFrom: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]
  extraEgress: [{to: [{ipBlock: {cidr: 10.1.0.0/16}}], ports: [{port: 3128, protocol: TCP}]}]
"#;

fn good_values_file(name: &str) -> PathBuf {
    let file = scratch_dir(name).join("values.yaml");
    std::fs::write(&file, GOOD_VALUES).unwrap();
    file
}

#[test]
fn every_value_lints_and_renders_where_it_belongs() {
    let values = good_values_file("good");
    let file = values.to_str().unwrap();
    let (ok, out, err) = run_helm(&["lint", &chart(), "--strict", "--kube-version", "v1.35.4", "-f", file]);
    assert!(ok && out.contains("0 chart(s) failed"), "{out}{err}");
    let docs = render(&["-f", file, "--set", "priorityClassName=operators"]);
    let deployment = find(&docs, "Deployment").unwrap();
    assert_eq!(deployment["metadata"]["name"], "ceo-mail");
    let template = &deployment["spec"]["template"];
    let labels = &template["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/name"], "mail", "{labels}");
    assert_eq!(labels["team"], "platform", "{labels}");
    assert_eq!(template["metadata"]["annotations"], json!({"example.com/owner": "platform"}));
    let pod = &template["spec"];
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "regcred"}]));
    assert_eq!(pod["priorityClassName"], "operators");
    // Maps merge with the defaults.
    assert_eq!(
        pod["securityContext"],
        json!({"fsGroup": 65532, "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(pod["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    assert_eq!(pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"], 100);
    assert_eq!(
        pod["topologySpreadConstraints"][0]["labelSelector"],
        json!({"matchLabels": {"app.kubernetes.io/name": "mail", "app.kubernetes.io/instance": "ceo"}}),
        "a constraint without labelSelector gets the selector labels"
    );
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], "operator-credential");
    let container = &pod["containers"][0];
    assert_eq!(container["volumeMounts"][0]["mountPath"], "/var/run/secrets/operator");
    let args = container["args"].as_array().unwrap();
    assert!(args.ends_with(&[json!("--concurrency=20"), json!("--channel-resync=1h")]), "{args:?}");
    let env = container["env"].as_array().unwrap();
    assert!(env.contains(&json!({"name": "RUST_LOG", "value": "debug"})), "{env:?}");
    assert!(
        env.contains(&json!({"name": "AZURE_CLIENT_CERTIFICATE_PATH", "value": "/var/run/secrets/operator/tls.pem"}))
    );
    assert_eq!(container["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["capabilities"], json!({"drop": ["ALL"]}));
    let pdb = find(&docs, "PodDisruptionBudget").unwrap();
    assert_eq!(
        pdb["spec"],
        json!({"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "mail", "app.kubernetes.io/instance": "ceo"}}})
    );

    let docs = render(&["--set", "fullnameOverride=ceo-operator"]);
    assert!(
        docs.iter()
            .filter(|d| d["kind"] != "CustomResourceDefinition")
            .all(|d| { d["metadata"]["name"].as_str().unwrap().starts_with("ceo-operator") })
    );
    std::fs::remove_dir_all(values.parent().unwrap()).unwrap();
}

#[test]
fn the_default_pod_is_restricted_without_a_fixed_user() {
    let docs = render(&[]);
    let pod = &find(&docs, "Deployment").unwrap()["spec"]["template"]["spec"];
    // No runAsUser: the image runs as 65532 and OpenShift's restricted SCC assigns its own.
    assert_eq!(pod["securityContext"], json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}));
    assert_eq!(
        pod["containers"][0]["securityContext"],
        json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}})
    );
    let env = pod["containers"][0]["env"].as_array().unwrap();
    assert!(env.contains(&json!({"name": "RUST_LOG", "value": "info,kube=warn"})), "{env:?}");
    for key in ["imagePullSecrets", "priorityClassName", "topologySpreadConstraints", "volumes"] {
        assert!(pod.get(key).is_none(), "{key} rendered by default");
    }
}

#[test]
fn a_single_replica_gets_no_disruption_budget_that_would_block_drains() {
    let pdb = |args: &[&str]| find(&render(args), "PodDisruptionBudget").map(|p| p["spec"].clone());
    assert_eq!(pdb(&[]).unwrap()["minAvailable"], 1, "two replicas by default, one may go");
    assert!(pdb(&["--set", "replicas=1"]).is_none());
    let spec = pdb(&["--set", "replicas=1", "--set", "podDisruptionBudget.maxUnavailable=1"]).unwrap();
    assert_eq!(spec["maxUnavailable"], 1);
    assert!(spec.get("minAvailable").is_none());
    assert_eq!(pdb(&["--set", "podDisruptionBudget.maxUnavailable=50%"]).unwrap()["maxUnavailable"], "50%");
    assert!(pdb(&["--set", "podDisruptionBudget.enabled=false"]).is_none());
    let (ok, _, err) = run_helm(&[
        "template",
        "ceo",
        &chart(),
        "--kube-version",
        "v1.35.4",
        "--set",
        "replicas=2",
        "--set",
        "podDisruptionBudget.minAvailable=2",
    ]);
    assert!(!ok && err.contains("minAvailable must be below replicas"), "{err}");
}

/// `helm template` of release `release` with `args`, applied to `ns` server-side: accepted with no
/// Pod Security warning, and a second apply would change nothing. Returns the rendered objects.
fn apply_and_diff(ns: &str, release: &str, args: &[&str]) -> Vec<Value> {
    // helm template has no cluster to ask; the chart requires >= 1.30.
    let chart = chart();
    let mut all = vec!["template", release, &chart, "--namespace", ns, "--kube-version", "v1.35.4"];
    all.extend_from_slice(args);
    let (ok, rendered, err) = run_helm(&all);
    assert!(ok, "{err}");
    let file = std::env::temp_dir().join(format!("{ns}-{release}-chart.yaml"));
    std::fs::write(&file, &rendered).unwrap();
    let path = file.to_str().unwrap();
    let (ok, out, err) = kubectl(&["apply", "--server-side", "--force-conflicts", "-n", ns, "-f", path]);
    assert!(ok, "{out}{err}");
    assert!(!err.contains("PodSecurity"), "{err}");
    let (same, diff, err) = kubectl(&["diff", "--server-side", "--force-conflicts", "-n", ns, "-f", path]);
    assert!(same, "{diff}{err}");
    std::fs::remove_file(file).unwrap();
    documents(&rendered)
}

/// Deletes the cluster-scoped objects a rendered release created.
fn delete_cluster_scoped(docs: &[Value]) {
    for doc in docs.iter().filter(|d| ["ClusterRole", "ClusterRoleBinding"].contains(&d["kind"].as_str().unwrap())) {
        let kind = doc["kind"].as_str().unwrap().to_lowercase();
        let _ = kubectl(&["delete", &kind, doc["metadata"]["name"].as_str().unwrap()]);
    }
}

#[tokio::test]
async fn the_rendered_chart_is_accepted_by_the_apiserver_and_reapplying_changes_nothing() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "helm").await;
    // The namespace enforces the restricted Pod Security standard, as a careful cluster would.
    let label = serde_json::json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}});
    Api::<Namespace>::all(client.clone())
        .patch(&ns.name, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap();
    let docs = apply_and_diff(
        &ns.name,
        "ceo",
        // The `helm test` pod is applied too: admitted under restricted Pod Security (it never runs
        // here, the test control plane has no kubelet).
        &["--set", "workloadIdentity.clientId=0e0e0e0e-1111-2222-3333-444444444444"],
    );
    for kind in [
        "deployment/ceo-connect-email-operator",
        "poddisruptionbudget/ceo-connect-email-operator",
        "serviceaccount/ceo-connect-email-operator",
        "pod/ceo-connect-email-operator-test-healthz",
    ] {
        let (ok, _, err) = kubectl(&["get", "-n", &ns.name, kind]);
        assert!(ok, "{kind}: {err}");
    }
    delete_cluster_scoped(&docs);
    // Every value set (the CRDs are the same as above, left out).
    let values = good_values_file("apply");
    let docs = apply_and_diff(&ns.name, "other", &["-f", values.to_str().unwrap(), "--set", "crds.enabled=false"]);
    let (ok, _, err) = kubectl(&["get", "-n", &ns.name, "deployment/other-mail", "poddisruptionbudget/other-mail"]);
    assert!(ok, "{err}");
    delete_cluster_scoped(&docs);
    std::fs::remove_dir_all(values.parent().unwrap()).unwrap();
    ns.delete().await;
}

#[test]
fn the_templated_crds_are_the_generated_ones_with_the_release_labels_and_keep() {
    let generated = api::crds();
    let rendered = render(&["--show-only", "templates/crds.yaml"]);
    assert_eq!(rendered.len(), generated.len(), "one template per generated CRD, no stale file in files/crds");
    for doc in rendered {
        // Typed, as the apiserver reads it (helm's fromYaml/toYaml writes 1.0 as 1).
        let mut crd: CustomResourceDefinition = serde_json::from_value(doc).unwrap();
        let labels = crd.metadata.labels.take().unwrap_or_default();
        assert_eq!(labels.get("app.kubernetes.io/managed-by").map(String::as_str), Some("Helm"), "{labels:?}");
        assert_eq!(labels.get("app.kubernetes.io/instance").map(String::as_str), Some("ceo"), "{labels:?}");
        let annotations = crd.metadata.annotations.take().unwrap_or_default();
        assert_eq!(annotations, BTreeMap::from([("helm.sh/resource-policy".to_string(), "keep".to_string())]));
        let name = crd.metadata.name.clone().unwrap();
        let expected = generated.iter().find(|c| c.metadata.name.as_deref() == Some(&name)).unwrap();
        assert!(&crd == expected, "{name}: the chart renders a CRD other than the generated one");
    }
    let rendered = render(&["--show-only", "templates/crds.yaml", "--set", "crds.keep=false"]);
    assert!(rendered.iter().all(|crd| crd["metadata"].get("annotations").is_none()), "{rendered:?}");
    let rendered = render(&["--set", "crds.enabled=false"]);
    assert!(find(&rendered, "CustomResourceDefinition").is_none() && find(&rendered, "Deployment").is_some());
}

/// `helm install` of the previous chart; its EmailChannel CRD has no `spec.smtp`.
fn install_previous(ns: &str, previous: &Path, group: &str) {
    let (ok, out, err) =
        run_helm(&["install", "ceo", previous.to_str().unwrap(), "-n", ns, "--set", "rbac.create=false"]);
    assert!(ok, "helm install of the previous chart: {out}{err}");
    let before = served_crd(&format!("emailchannels.{group}")).expect("the previous chart installed the CRDs");
    assert!(!has_smtp(&before), "the previous chart's CRD has no spec.smtp");
}

/// `helm upgrade` to the current chart (with `extra` flags) adds `spec.smtp` to the served CRD and
/// creates an EntraTenant from `tenants:`; `helm uninstall` then keeps the CRDs. Deletes them at the end.
fn upgrade_adds_the_field_and_uninstall_keeps_the_crds(ns: &str, current: &Path, group: &str, extra: &[&str]) {
    let crd = format!("emailchannels.{group}");
    let tenant = json!([{"name": ns, "spec": {
        "tenantId": "11111111-2222-3333-4444-555555555555", "namespaceSelector": {}, "mailboxes": ["*@contoso.com"]
    }}]);
    let tenants = format!("tenants={tenant}");
    let mut args = vec!["upgrade", "ceo", current.to_str().unwrap(), "-n", ns, "--set", "rbac.create=false"];
    // EntraTenants come with an upgrade: the CRDs exist by then.
    args.extend(["--set-json", &tenants]);
    args.extend_from_slice(extra);
    let (ok, out, err) = run_helm(&args);
    assert!(ok, "helm upgrade to the current chart: {out}{err}");
    let after = served_crd(&crd).unwrap();
    assert!(has_smtp(&after), "helm upgrade did not add spec.smtp to the served CRD");
    let annotations = &after["metadata"]["annotations"];
    assert_eq!(annotations["helm.sh/resource-policy"], "keep", "{annotations}");
    assert_eq!(annotations["meta.helm.sh/release-name"], "ceo", "{annotations}");
    let (ok, _, err) = kubectl(&["get", &format!("entratenants.{group}"), ns]);
    assert!(ok, "the EntraTenant from tenants: {err}");
    // helm uninstall keeps the CRDs (resource-policy keep), so no resource and no Secret is lost.
    let (ok, out, err) = run_helm(&["uninstall", "ceo", "-n", ns]);
    assert!(ok, "{out}{err}");
    assert!(served_crd(&crd).is_some(), "helm uninstall deleted the CRD despite crds.keep");
    let names = ["azureappregistrations", "emailchannels", "entratenants"].map(|plural| format!("{plural}.{group}"));
    let (ok, out, err) = kubectl(&["delete", "crd", &names[0], &names[1], &names[2]]);
    assert!(ok, "{out}{err}");
}

/// A test-owned API group: `connectemail.dev` with the test namespace's name in front.
fn test_group(ns: &str) -> String {
    format!("{ns}.{}", api::GROUP)
}

#[tokio::test]
async fn helm_upgrade_upgrades_the_crds_and_uninstall_keeps_them() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "helm-upgrade").await;
    let group = test_group(&ns.name);
    let dir = scratch_dir("upgrade");
    let current = dir.join("current");
    copy_chart(&current, &group);
    let previous = dir.join("previous");
    copy_chart(&previous, &group);
    remove_smtp_field(&previous.join(format!("files/crds/emailchannels.{}.yaml", api::GROUP)));

    // Helm maps every kind before it creates anything: EntraTenants cannot come with the release
    // that first creates their CRD (values.yaml says so), and nothing is left behind.
    let tenant = r#"tenants=[{"name":"t","spec":{"tenantId":"11111111-2222-3333-4444-555555555555","namespaceSelector":{},"mailboxes":["*@contoso.com"]}}]"#;
    let (ok, _, err) = run_helm(&["install", "fresh", current.to_str().unwrap(), "-n", &ns.name, "--set-json", tenant]);
    assert!(!ok && err.contains("ensure CRDs are installed first"), "{err}");
    assert!(served_crd(&format!("emailchannels.{group}")).is_none());

    install_previous(&ns.name, &previous, &group);
    upgrade_adds_the_field_and_uninstall_keeps_the_crds(&ns.name, &current, &group, &[]);
    std::fs::remove_dir_all(dir).unwrap();
    ns.delete().await;
}

#[tokio::test]
async fn an_install_of_the_crds_directory_chart_upgrades_with_take_ownership() {
    // Chart 0.1.0 shipped the CRDs in crds/, which Helm installs once, never upgrades and does not
    // own. The upgrade to the templated CRDs adopts them with --take-ownership (README).
    let client = client().await;
    let ns = TestNamespace::new(&client, "helm-adopt").await;
    let group = test_group(&ns.name);
    let dir = scratch_dir("adopt");
    let current = dir.join("current");
    copy_chart(&current, &group);
    let previous = dir.join("previous");
    copy_chart(&previous, &group);
    std::fs::remove_file(previous.join("templates/crds.yaml")).unwrap();
    std::fs::rename(previous.join("files/crds"), previous.join("crds")).unwrap();
    remove_smtp_field(&previous.join(format!("crds/emailchannels.{}.yaml", api::GROUP)));

    install_previous(&ns.name, &previous, &group);
    let (ok, _, err) =
        run_helm(&["upgrade", "ceo", current.to_str().unwrap(), "-n", &ns.name, "--set", "rbac.create=false"]);
    assert!(!ok && err.contains("invalid ownership metadata"), "upgrade without --take-ownership: {err}");
    upgrade_adds_the_field_and_uninstall_keeps_the_crds(&ns.name, &current, &group, &["--take-ownership"]);
    std::fs::remove_dir_all(dir).unwrap();
    ns.delete().await;
}

#[test]
fn monitoring_objects_carry_their_labels_and_the_alerts_of_deploy_monitoring() {
    let chart_copy =
        std::fs::read_to_string(repo_root().join("charts/connect-email-operator/files/prometheusrule.yaml"));
    let original = std::fs::read_to_string(repo_root().join("deploy/monitoring/prometheusrule.yaml")).unwrap();
    assert!(chart_copy.unwrap() == original, "copy deploy/monitoring/prometheusrule.yaml to the chart's files/");
    let docs = render(&[]);
    assert!(find(&docs, "ServiceMonitor").is_none() && find(&docs, "PrometheusRule").is_none());
    let docs = render(&[
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.serviceMonitor.labels.release=kps",
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.prometheusRule.labels.release=kps",
    ]);
    let monitor = find(&docs, "ServiceMonitor").unwrap();
    assert_eq!(monitor["metadata"]["labels"]["release"], "kps");
    assert_eq!(monitor["spec"]["endpoints"], json!([{"port": "metrics", "interval": "60s"}]));
    let rule = find(&docs, "PrometheusRule").unwrap();
    assert_eq!(rule["metadata"]["labels"]["release"], "kps");
    let original: Value = serde_yaml::from_str(&original).unwrap();
    assert_eq!(rule["spec"], original["spec"], "the rules, with Prometheus' {{ $labels }} left alone");
    assert!(rule["spec"].to_string().contains("{{ $labels.namespace }}"));
}

#[test]
fn the_grafana_dashboard_configmap_is_optional_and_holds_the_dashboard_of_deploy_monitoring() {
    let original = std::fs::read_to_string(repo_root().join("deploy/monitoring/grafana-dashboard.json")).unwrap();
    let chart_copy =
        std::fs::read_to_string(repo_root().join("charts/connect-email-operator/files/grafana-dashboard.json"));
    assert!(chart_copy.unwrap() == original, "copy deploy/monitoring/grafana-dashboard.json to the chart's files/");
    assert!(find(&render(&[]), "ConfigMap").is_none(), "off by default");
    let docs = render(&[
        "--set",
        "grafanaDashboard.enabled=true",
        "--set",
        "grafanaDashboard.namespace=monitoring",
        "--set",
        "grafanaDashboard.annotations.grafana_folder=Operators",
    ]);
    let map = find(&docs, "ConfigMap").unwrap();
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1", "what the Grafana sidecar selects");
    assert_eq!(map["metadata"]["namespace"], "monitoring");
    assert_eq!(map["metadata"]["annotations"]["grafana_folder"], "Operators");
    let data = map["data"]["connect-email-operator.json"].as_str().unwrap();
    let rendered: Value = serde_json::from_str(data).unwrap();
    assert_eq!(rendered, serde_json::from_str::<Value>(&original).unwrap());
    assert!(data.contains("{{namespace}}/{{name}}"), "Grafana's legend templates left alone");
}

#[test]
fn the_network_policy_allows_dns_the_apiserver_https_out_and_metrics_in() {
    assert!(find(&render(&[]), "NetworkPolicy").is_none(), "off by default");
    let policy = find(&render(&["--set", "networkPolicy.enabled=true"]), "NetworkPolicy").unwrap().clone();
    let spec = &policy["spec"];
    assert_eq!(spec["podSelector"]["matchLabels"]["app.kubernetes.io/instance"], "ceo");
    assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(spec["ingress"], json!([{"ports": [{"port": 8080, "protocol": "TCP"}]}]), "metrics, from anyone");
    assert_eq!(
        spec["egress"],
        json!([
            {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
            {"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]},
            {"ports": [{"port": 443, "protocol": "TCP"}]},
        ])
    );
    let values = good_values_file("netpol");
    let docs = render(&["-f", values.to_str().unwrap()]);
    let spec = &find(&docs, "NetworkPolicy").unwrap()["spec"];
    assert_eq!(
        spec["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
    assert_eq!(
        spec["egress"][1]["to"],
        json!([{"ipBlock": {"cidr": "10.0.0.10/32"}}, {"ipBlock": {"cidr": "fd00::1/128"}}])
    );
    assert_eq!(spec["egress"][3]["ports"], json!([{"port": 3128, "protocol": "TCP"}]));
    // With a restricted metricsFrom the `helm test` pod may still ask for /healthz.
    assert_eq!(
        spec["ingress"][0]["from"][1],
        json!({"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "ceo", "app.kubernetes.io/component": "helm-test"}}})
    );
    std::fs::remove_dir_all(values.parent().unwrap()).unwrap();
}

#[test]
fn helm_test_fetches_healthz_from_the_metrics_service() {
    // Render-tested only: the test control plane has no kubelet and no nodes, so `helm test` could
    // create the pod but it would never run.
    let docs = render(&["--set", "metrics.port=9090"]);
    let pod = docs.iter().find(|d| d["kind"] == "Pod").expect("the helm test pod");
    assert_eq!(pod["metadata"]["annotations"]["helm.sh/hook"], "test");
    let service = find(&docs, "Service").unwrap();
    let url = format!("http://{}.ceo-system.svc:9090/healthz", service["metadata"]["name"].as_str().unwrap());
    let command = pod["spec"]["containers"][0]["command"].as_array().unwrap();
    assert_eq!(command.first(), Some(&json!("wget")));
    assert_eq!(command.last(), Some(&json!(url)), "{command:?}");
    // Not one of the operator's pods: the Service, PodDisruptionBudget and NetworkPolicy select
    // app.kubernetes.io/name, which the test pod does not carry.
    let labels = pod["metadata"]["labels"].as_object().unwrap();
    assert!(service["spec"]["selector"].get("app.kubernetes.io/name").is_some());
    assert!(!labels.contains_key("app.kubernetes.io/name"), "{labels:?}");
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["spec"]["containers"][0]["securityContext"]["capabilities"], json!({"drop": ["ALL"]}));
    assert!(render(&["--set", "test.enabled=false"]).iter().all(|d| d["kind"] != "Pod"));
}

#[test]
fn the_chart_renders_as_a_dependency_of_a_parent_chart_with_global_values() {
    // Helm passes the parent's `global:` (and the dependency's `condition` key, by convention
    // `<name>.enabled`) to the subchart, whose schema must accept them.
    let dir = scratch_dir("parent");
    let parent = dir.join("platform");
    std::fs::create_dir_all(parent.join("charts")).unwrap();
    std::fs::write(
        parent.join("Chart.yaml"),
        "apiVersion: v2\nname: platform\nversion: 1.0.0\ndependencies:\n  - name: connect-email-operator\n    \
         version: \">=0.1.0\"\n    condition: connect-email-operator.enabled\n",
    )
    .unwrap();
    std::fs::write(
        parent.join("values.yaml"),
        "global:\n  imageRegistry: registry.example.com\n  labels: {team: platform}\n\
         connect-email-operator:\n  enabled: true\n  replicas: 3\n",
    )
    .unwrap();
    copy_chart(&parent.join("charts/connect-email-operator"), api::GROUP);
    let parent_chart = parent.to_str().unwrap();
    let (ok, out, err) = run_helm(&["lint", parent_chart, "--kube-version", "v1.35.4"]);
    assert!(ok, "{out}{err}");
    let docs = render_chart(parent_chart, &[]);
    assert_eq!(find(&docs, "Deployment").unwrap()["spec"]["replicas"], 3);
    let crds = docs.iter().filter(|d| d["kind"] == "CustomResourceDefinition").count();
    assert_eq!(crds, api::crds().len(), "the subchart's files/crds are found");
    let docs = render_chart(parent_chart, &["--set", "connect-email-operator.enabled=false"]);
    assert!(find(&docs, "Deployment").is_none());
    // The subchart's own schema still holds under the parent.
    let (ok, _, err) = run_helm(&[
        "template",
        "ceo",
        parent_chart,
        "--kube-version",
        "v1.35.4",
        "--set",
        "connect-email-operator.replicas=0",
    ]);
    assert!(!ok && err.contains("replicas"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_otlp_endpoint_value_sets_the_exporter_environment() {
    let env_of = |docs: &[Value]| {
        find(docs, "Deployment").unwrap()["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .clone()
    };
    let env = env_of(&render(&[]));
    assert!(!env.iter().any(|e| e["name"] == "OTEL_EXPORTER_OTLP_ENDPOINT"), "off by default: {env:?}");
    let env = env_of(&render(&["--set", "tracing.otlpEndpoint=http://otel-collector.monitoring:4318"]));
    assert!(
        env.contains(&json!({"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector.monitoring:4318"})),
        "{env:?}"
    );
    assert_rejected(&[
        ("--set", "tracing.otlpEndpoint=otel-collector:4318", "otlpEndpoint"),
        ("--set", "tracing.otlpEndpoint=1", "otlpEndpoint"),
        ("--set", "tracing.sampler=always", "sampler"),
    ]);
}

#[test]
fn no_tenant_in_the_environment_the_operator_would_not_read() {
    // src/ reads AZURE_CLIENT_ID and the credential variables, never AZURE_TENANT_ID: each token is
    // requested in the EntraTenant's spec.tenantId. An old tenantId value is accepted and ignored.
    let (ok, out, err) = run_helm(&[
        "install",
        "no-tenant",
        &chart(),
        // Rendered against the test cluster (for NOTES.txt, which helm template leaves out); creates
        // nothing. No cluster-scoped objects, which other tests' releases may hold.
        "--dry-run=server",
        "-n",
        "default",
        "--set",
        "crds.enabled=false",
        "--set",
        "rbac.create=false",
        "--set",
        "workloadIdentity.tenantId=11111111-2222-3333-4444-555555555555",
    ]);
    assert!(ok, "{err}");
    assert!(!out.contains("AZURE_TENANT_ID"), "{out}");
    assert!(out.contains("workloadIdentity.tenantId is ignored"), "NOTES say so:\n{out}");
    for file in ["deploy/base/deployment.yaml", "deploy/argocd/application.yaml"] {
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        assert!(!text.contains("AZURE_TENANT_ID") && !text.contains("tenantId"), "{file}");
    }
}
