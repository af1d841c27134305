//! The control plane restarts in the middle of a rotation: this test starts its own kube-apiserver
//! and etcd (`tests/cluster/up` with its own KCP_HOME under target/tmp and free ports), runs the
//! operator in-process against it, forces a rotation and stops the control plane while Graph is
//! answering `addPassword` (the secret text arrives while the Secret cannot be written), then
//! starts it again on the same etcd data. The rotation must complete with one application, one
//! password (the one whose text was lost is removed), a working Secret, and the old password
//! revoked only after the new one was verified. Figures go to `target/reports/restart.md`.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use connect_email_operator::api::AzureAppRegistration;
use connect_email_sim::routes;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use support::operator::{Harness, TENANT};
use support::resources::{registration_settled, smtp_registration};
use support::*;

/// A control plane of this test's own, stopped and purged on drop (also when the test fails).
struct ControlPlane {
    home: PathBuf,
    ports: [u16; 3],
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl ControlPlane {
    fn new() -> Self {
        let home = repo_root().join(format!("target/tmp/restart-{}", std::process::id()));
        let bin = home.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        // The kcp binary the default instance was built into (never rebuilt here: ~11 min cold).
        let built = std::env::var_os("KCP_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target/testcluster"))
            .join("bin");
        for file in ["kcp", "kcp.hash"] {
            let (from, to) = (built.join(file), bin.join(file));
            if !to.exists() && std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to)
                    .unwrap_or_else(|e| panic!("{} missing ({e}): run tests/cluster/up once", from.display()));
            }
        }
        let mut ports = [0; 3];
        while ports.iter().collect::<std::collections::BTreeSet<_>>().len() < 3 {
            ports = [free_port(), free_port(), free_port()];
        }
        Self { home, ports }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.home.join("kubeconfig")
    }

    fn command(&self, script: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(repo_root().join("tests/cluster").join(script));
        command
            .env("KCP_HOME", &self.home)
            .env("KCP_APISERVER_PORT", self.ports[0].to_string())
            .env("KCP_ETCD_PORT", self.ports[1].to_string())
            .env("KCP_ETCD_PEER_PORT", self.ports[2].to_string())
            .kill_on_drop(true);
        command
    }

    /// `up`; with `keep_data` etcd keeps what it had (a restart, not a fresh cluster).
    async fn up(&self, keep_data: bool) {
        let mut command = self.command("up");
        if keep_data {
            command.env("KCP_KEEP_DATA", "1");
        }
        let out = command.output().await.expect("run tests/cluster/up");
        assert!(out.status.success(), "up failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }

    async fn down(&self) {
        let out = self.command("down").output().await.expect("run tests/cluster/down");
        assert!(out.status.success(), "down failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo_root().join("tests/cluster/down"))
            .arg("--purge")
            .env("KCP_HOME", &self.home)
            .output();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// The Secret's key ID, if the token endpoint accepts its client secret.
async fn secret_works(h: &Harness) -> Result<String, String> {
    channel::secret_accepted(h, "restarty-credentials").await.map(|(_, key_id)| key_id)
}

fn path_display(p: &Path) -> String {
    p.strip_prefix(repo_root()).unwrap_or(p).display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_restart_mid_rotation_converges_without_orphans_or_outage() {
    let cp = ControlPlane::new();
    cp.up(false).await;
    // The harness and its operator talk to this control plane only (one test in this binary).
    // SAFETY: set before any other thread of this test reads the environment.
    unsafe { std::env::set_var("TESTCLUSTER_KUBECONFIG", cp.kubeconfig()) };
    let h = Harness::start("restart").await;
    let api: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    api.patch(
        "restarty",
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Apply(&smtp_registration("restarty", "Restart test")),
    )
    .await
    .unwrap();
    let first = registration_settled(&h, "restarty", None, Duration::from_secs(60)).await;
    let first_key = first.status.unwrap().credential.unwrap().key_id;
    assert_eq!(secret_works(&h).await.as_deref(), Ok(first_key.as_str()));

    // Graph takes 3 s to answer the next addPassword: long enough to take the control plane down
    // after the intent is recorded and before the secret text can reach the Secret.
    h.sim.faults().on(routes::ADD_PASSWORD).latency(Duration::from_secs(3));
    let adds_before = h.sim.count(routes::ADD_PASSWORD);
    let rotate = json!({"metadata": {"annotations": {"connectemail.dev/rotate": "restart"}}});
    api.patch("restarty", &PatchParams::default(), &Patch::Merge(&rotate)).await.unwrap();
    eventually(Duration::from_secs(30), || {
        let api = api.clone();
        async move {
            let s = api.get("restarty").await.map_err(|e| e.to_string())?.status.unwrap_or_default();
            s.pending_rotation.map(drop).ok_or("no rotation intent yet".to_string())
        }
    })
    .await;
    let stopped_at = Instant::now();
    cp.down().await;
    let down_took = stopped_at.elapsed();
    // addPassword completes while nothing can be written to Kubernetes.
    eventually(Duration::from_secs(30), || async {
        let added = h.sim.count(routes::ADD_PASSWORD) > adds_before;
        if added { Ok(()) } else { Err("addPassword not answered yet".to_string()) }
    })
    .await;
    let passwords_while_down = h.sim.applications(TENANT)[0].passwords.len();
    // The operator keeps failing against the stopped apiserver for a moment.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let restarted_at = Instant::now();
    cp.up(true).await;
    let up_took = restarted_at.elapsed();

    // The same cluster came back (etcd kept its data): the resource and its first Secret.
    let back = api.get("restarty").await.expect("the resource survived the restart");
    assert_eq!(back.metadata.uid, first.metadata.uid);
    let done = registration_settled(&h, "restarty", Some(&first_key), Duration::from_secs(120)).await;
    let converged_after = restarted_at.elapsed();
    let status = done.status.unwrap();
    let new_key = status.credential.as_ref().unwrap().key_id.clone();

    let apps = h.sim.applications(TENANT);
    assert_eq!(apps.len(), 1, "one application: {apps:?}");
    let app = &apps[0];
    let keys: Vec<&str> = app.passwords.iter().map(|p| p.key_id.as_str()).collect();
    assert_eq!(keys, vec![new_key.as_str()], "no orphan and the old password revoked");
    assert_eq!(secret_works(&h).await.as_deref(), Ok(new_key.as_str()), "the Secret holds the working new secret");
    // Revocations after the last addPassword only followed a successful token request for the app.
    let calls = h.sim.calls();
    let last_add = calls.iter().rposition(|c| c.route == routes::ADD_PASSWORD).unwrap();
    for (i, call) in calls.iter().enumerate().skip(last_add) {
        if call.route == routes::REMOVE_PASSWORD {
            let verified = calls[last_add..i].iter().any(|c| {
                c.route == routes::TOKEN && c.status == 200 && c.client_id.as_deref() == Some(app.app_id.as_str())
            });
            assert!(verified, "a password was revoked before the new secret was verified");
        }
    }
    let adds = h.sim.count(routes::ADD_PASSWORD);
    let removes = h.sim.count(routes::REMOVE_PASSWORD);

    let report = format!(
        "## Control-plane restart mid-rotation (tests/restart.rs)\n\n\
         Own control plane ({home}, ports {ports:?}); stopped with `tests/cluster/down` while Graph answered addPassword, \
         restarted with `KCP_KEEP_DATA=1 tests/cluster/up` (etcd data kept).\n\n\
         | figure | value |\n| --- | --- |\n\
         | `down` took | {down:.1} s |\n| `up` (restart) took | {up:.1} s |\n\
         | passwords on the app while the apiserver was down | {while_down} |\n\
         | rotation settled after the restart | {converged:.1} s |\n\
         | addPassword / removePassword calls (whole test) | {adds} / {removes} |\n\
         | applications / passwords at the end | {apps} / {pwds} |\n\
         | Secret valid at the end, new key | yes |\n",
        home = path_display(&cp.home),
        ports = cp.ports,
        down = down_took.as_secs_f64(),
        up = up_took.as_secs_f64(),
        while_down = passwords_while_down,
        converged = converged_after.as_secs_f64(),
        apps = apps.len(),
        pwds = app.passwords.len(),
    );
    let dir = repo_root().join("target/reports");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("restart.md"), &report).unwrap();
    println!("{report}");
    h.finish().await;
}
