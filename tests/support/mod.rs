//! Shared helpers for the end-to-end tests: a client for the real kube-apiserver started by
//! `tests/cluster/up`, a fresh namespace per test, CRD installation and `eventually`.
//!
//! Tests that need the cluster fail (never skip) when it is not running, with the command to start it.
//!
//! Where to look first:
//! - [`operator`]: `Harness`, the operator's controllers in-process with both simulators, and the
//!   IDs of the test tenant and Connect organization;
//! - [`resources`]: apply a manifest, wait for a condition (with the constants of
//!   `connect_email_operator::api::conditions`), mailboxes and the Connect token Secret;
//! - [`sim_client`]: talk to the simulators directly (HTTPS client, `Reply`, the operator's clients
//!   pointed at them);
//! - [`channel`]: the reliability tests' Api-mode channel and its invariants; [`process`]: the
//!   operator as a process of its own; [`intercept`]: a kube client that answers or drops requests;
//!   [`hygiene`]: no secret in logs, events or status.
//!
//! Every test binary compiles all of it: `dead_code` is allowed below, unused imports are not.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use connect_email_operator::api;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

pub const FIELD_MANAGER: &str = "connect-email-operator-tests";

/// Repository root (the crate directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The kubeconfig written by `tests/cluster/up` (override with `TESTCLUSTER_KUBECONFIG`).
pub fn kubeconfig_path() -> PathBuf {
    std::env::var_os("TESTCLUSTER_KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/testcluster/kubeconfig"))
}

/// A client for the test cluster; panics with instructions when it is not running.
pub async fn client() -> Client {
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap_or_else(|e| {
        panic!(
            "no test cluster kubeconfig at {} ({e}); start the control plane with `tests/cluster/up` (the README's test command does this)",
            path.display()
        )
    });
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig from tests/cluster/up is valid");
    let client = Client::try_from(config).expect("client from kubeconfig");
    client.apiserver_version().await.unwrap_or_else(|e| {
        panic!("the test cluster at {} does not answer ({e}); run `tests/cluster/up`", path.display())
    });
    client
}

/// Applies both CRDs from `crds/` with server-side apply and waits until they are Established.
pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for entry in std::fs::read_dir(repo_root().join("crds")).expect("crds/ exists") {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let crd: CustomResourceDefinition = serde_yaml::from_str(&text).unwrap();
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("applying {}: {e}", path.display()));
    }
    for crd in api::crds() {
        let name = crd.metadata.name.unwrap();
        eventually(Duration::from_secs(30), || {
            let crds = crds.clone();
            let name = name.clone();
            async move {
                let crd = crds.get(&name).await.map_err(|e| e.to_string())?;
                let established = crd
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                if established { Ok(()) } else { Err(format!("{name} not Established yet")) }
            }
        })
        .await;
    }
}

/// A namespace of its own for one test, named after it.
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    pub async fn new(client: &Client, test: &str) -> Self {
        let suffix: String = format!("{:x}", rand_u32());
        let mut name = format!("t-{}-{suffix}", test.replace('_', "-"));
        name.truncate(63);
        let name = name.trim_end_matches('-').to_string();
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"connectemail.dev/test": "true"}}
        }))
        .unwrap();
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("create test namespace");
        Self { name, client: client.clone() }
    }

    /// Deletes the namespace (call at the end of a passing test; a failing test leaves it for inspection).
    pub async fn delete(self) {
        let _ = Api::<Namespace>::all(self.client).delete(&self.name, &DeleteParams::default()).await;
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    h.finish() as u32
}

/// Polls `check` until it returns Ok or `timeout` passes; then panics with the last error.
pub async fn eventually<F, Fut, T>(timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(50);
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if tokio::time::Instant::now() >= deadline => {
                panic!("condition not met within {timeout:?}: {last}")
            }
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Runs the test cluster's kubectl with the test kubeconfig; returns (success, stdout, stderr).
pub fn kubectl(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(repo_root().join("tests/cluster/kubectl"))
        .args(args)
        .env("KUBECONFIG", kubeconfig_path())
        .output()
        .expect("running tests/cluster/kubectl (build it with tests/cluster/up)");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
pub mod channel;
pub mod hygiene;
pub mod intercept;
pub mod operator;
pub mod process;
pub mod resources;
pub mod sim_client;
pub mod timeline;

/// The helm binary built by tests/tools/install-helm.
pub fn helm() -> PathBuf {
    let path = repo_root().join("target/tools/bin/helm");
    assert!(path.exists(), "helm is not built: run tests/tools/install-helm (scripts/test does)");
    path
}

/// Renders the Helm chart with `helm template` (helm from tests/tools/install-helm).
pub fn helm_template(args: &[&str]) -> String {
    let helm = helm();
    let chart = repo_root().join("charts/connect-email-operator");
    let output = std::process::Command::new(helm)
        .args(["template", "ceo"])
        .arg(chart)
        .args(["--kube-version", "v1.35.4"])
        .args(args)
        .output()
        .expect("run helm");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}
