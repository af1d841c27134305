//! The Helm chart: `helm lint`, `helm template` accepted by the real apiserver (restricted Pod
//! Security, server-side apply, idempotent), values.schema.json rejecting bad values. helm is
//! built from its Go module by tests/tools/install-helm (scripts/test and .ci/run run it).

mod support;

use std::path::PathBuf;
use std::process::Command;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use support::*;

fn helm() -> PathBuf {
    let path = repo_root().join("target/tools/bin/helm");
    assert!(path.exists(), "helm is not built: run tests/tools/install-helm (scripts/test does)");
    path
}

fn chart() -> String {
    repo_root().join("charts/connect-email-operator").to_str().unwrap().to_string()
}

fn run_helm(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(helm()).args(args).output().expect("run helm");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into(),
        String::from_utf8_lossy(&output.stderr).into(),
    )
}

#[test]
fn the_chart_lints() {
    let (ok, out, err) = run_helm(&["lint", &chart()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("0 chart(s) failed"), "{out}");
}

#[test]
fn values_outside_the_schema_are_rejected() {
    for (value, fragment) in [
        ("replicas=0", "replicas"),
        ("endpoints.graph=http://graph.example.com", "graph"),
        ("workloadIdentity.clientId=not-a-guid", "clientId"),
        ("unknownSetting=1", "unknownSetting"),
    ] {
        let (ok, out, err) = run_helm(&["template", "ceo", &chart(), "--kube-version", "v1.35.4", "--set", value]);
        assert!(!ok, "{value} was accepted:\n{out}");
        assert!(err.contains(fragment), "{value}: {err}");
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
    let (ok, rendered, err) = run_helm(&[
        "template",
        "ceo",
        &chart(),
        "--namespace",
        &ns.name,
        "--include-crds",
        // helm template has no cluster to ask; the chart requires >= 1.30.
        "--kube-version",
        "v1.35.4",
        "--set",
        "workloadIdentity.clientId=0e0e0e0e-1111-2222-3333-444444444444",
        "--set",
        "workloadIdentity.tenantId=11111111-2222-3333-4444-555555555555",
    ]);
    assert!(ok, "{err}");
    let file = std::env::temp_dir().join(format!("{}-chart.yaml", ns.name));
    std::fs::write(&file, &rendered).unwrap();
    let file = file.to_str().unwrap();
    let (ok, out, err) = kubectl(&["apply", "--server-side", "--force-conflicts", "-n", &ns.name, "-f", file]);
    assert!(ok, "{out}{err}");
    assert!(!err.contains("PodSecurity"), "{err}");
    for kind in [
        "deployment/ceo-connect-email-operator",
        "poddisruptionbudget/ceo-connect-email-operator",
        "serviceaccount/ceo-connect-email-operator",
    ] {
        let (ok, _, err) = kubectl(&["get", "-n", &ns.name, kind]);
        assert!(ok, "{kind}: {err}");
    }
    let (same, diff, err) = kubectl(&["diff", "--server-side", "--force-conflicts", "-n", &ns.name, "-f", file]);
    assert!(same, "{diff}{err}");
    let _ = kubectl(&["delete", "clusterrole,clusterrolebinding", "ceo-connect-email-operator"]);
    ns.delete().await;
}
