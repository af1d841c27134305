//! The operator as a separate process (the real binary), for tests that kill it: crash failpoints,
//! restarts. Its logs go to a file so tests can check them for secrets.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use connect_email_sim::ConnectSim;
use connect_email_sim::microsoft::MicrosoftSim;

use super::kubeconfig_path;
use super::operator::{OPERATOR_CLIENT_ID, OPERATOR_SECRET};

pub struct OperatorProcess {
    child: Child,
    pub log: PathBuf,
}

impl OperatorProcess {
    /// Starts `connect-email-operator run` for one namespace against the simulator, with the
    /// given failpoints armed.
    pub fn spawn(namespace: &str, sim: &MicrosoftSim, failpoints: &[&str], log_name: &str) -> Self {
        Self::spawn_with(namespace, sim, failpoints, log_name, &[], &[])
    }

    /// As `spawn`, with Exchange Online on the Microsoft simulator and `connect` as the Webex
    /// Connect API (for EmailChannels).
    pub fn spawn_for_channels(
        namespace: &str,
        sim: &MicrosoftSim,
        connect: &ConnectSim,
        failpoints: &[&str],
        log_name: &str,
    ) -> Self {
        let exchange = sim.url();
        let connect_url = connect.url();
        let args = ["--exchange-endpoint", &exchange, "--connect-endpoint", &connect_url];
        Self::start(None, namespace, sim, Some(&connect.ca_pem()), failpoints, log_name, &args, &[])
    }

    /// As `spawn_for_channels` without failpoints, running `binary` instead of the one cargo built
    /// (the binary taken out of the image), with extra arguments (a `--metrics-addr` among them
    /// replaces the default `127.0.0.1:0`).
    pub fn spawn_binary_for_channels(
        binary: &Path,
        namespace: &str,
        sim: &MicrosoftSim,
        connect: &ConnectSim,
        log_name: &str,
        extra_args: &[&str],
    ) -> Self {
        let exchange = sim.url();
        let connect_url = connect.url();
        let mut args = vec!["--exchange-endpoint", &exchange, "--connect-endpoint", &connect_url];
        args.extend_from_slice(extra_args);
        Self::start(Some(binary), namespace, sim, Some(&connect.ca_pem()), &[], log_name, &args, &[])
    }

    /// As `spawn`, with extra arguments and environment variables.
    pub fn spawn_with(
        namespace: &str,
        sim: &MicrosoftSim,
        failpoints: &[&str],
        log_name: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Self {
        Self::start(None, namespace, sim, None, failpoints, log_name, args, envs)
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        binary: Option<&Path>,
        namespace: &str,
        sim: &MicrosoftSim,
        extra_ca_pem: Option<&str>,
        failpoints: &[&str],
        log_name: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Self {
        let dir = std::env::temp_dir().join(format!("ceo-{namespace}"));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("sim-ca.pem");
        let bundle = match extra_ca_pem {
            Some(extra) => format!("{}\n{extra}", sim.ca_pem()),
            None => sim.ca_pem(),
        };
        std::fs::write(&ca, bundle).unwrap();
        let log = dir.join(format!("{log_name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        // Integration tests get the binary cargo built for them (examples compile this module too).
        let binary = binary.map(Path::to_path_buf).unwrap_or_else(|| {
            option_env!("CARGO_BIN_EXE_connect-email-operator")
                .map(PathBuf::from)
                .unwrap_or_else(|| super::repo_root().join("target/debug/connect-email-operator"))
        });
        let metrics: &[&str] = if args.contains(&"--metrics-addr") { &[] } else { &["--metrics-addr", "127.0.0.1:0"] };
        let child = Command::new(binary)
            .args(["run", "--namespace", namespace, "--resync", "30s"])
            .args(metrics)
            .args(["--authority-host", &sim.url(), "--graph-endpoint", &sim.url()])
            .arg("--extra-ca-file")
            .arg(&ca)
            .env("KUBECONFIG", kubeconfig_path())
            // The operator's own namespace (mailbox claims, EntraTenant credentials): the test's,
            // as for the in-process harness.
            .env("POD_NAMESPACE", namespace.split(',').next().unwrap_or(namespace))
            .env("AZURE_CLIENT_ID", OPERATOR_CLIENT_ID)
            .env("AZURE_CLIENT_SECRET", OPERATOR_SECRET)
            .env_remove("AZURE_FEDERATED_TOKEN_FILE")
            .env("CEO_FAILPOINTS", failpoints.join(","))
            .args(args)
            .envs(envs.iter().copied())
            .env("RUST_LOG", "debug,kube=info,hyper=info,rustls=info,h2=info,tower=info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start the operator binary");
        Self { child, log }
    }

    /// Waits for the process to exit by itself (a failpoint), up to `timeout`. Async, so the
    /// simulator on the test's runtime keeps serving meanwhile.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// SIGTERM (what Kubernetes sends a pod it stops); does not wait.
    pub fn terminate(&mut self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "sending SIGTERM failed");
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
