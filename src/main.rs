//! Command-line wiring only; everything else lives in the library.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use connect_email_operator::api;
use connect_email_operator::azure::{AzureClients, OperatorCredential};
use connect_email_operator::config::{MicrosoftConfig, azure_clients};
use connect_email_operator::connect::api::ConnectClient;
use connect_email_operator::controller::drift::DriftDetection;
use connect_email_operator::controller::{self, Context, Settings, SystemClock};
use connect_email_operator::http::{HttpClient, HttpSettings};
use connect_email_operator::leader::{Elector, LeaseSettings, Outcome};

#[derive(Parser)]
#[command(
    name = "connect-email-operator",
    version,
    about = "Webex Connect email channels with Office 365 OAuth, as Kubernetes resources"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers (uses the in-cluster config or KUBECONFIG).
    Run(Box<RunArgs>),
    /// Check a channel live (token, consent, SMTP AUTH, forwarding, policy, Connect, expiry) and
    /// print a pass/fail table with fixes; exits 1 when a check fails.
    Doctor(Box<DoctorArgs>),
    /// Print what the next reconcile of NAMESPACE/NAME would change, changing nothing.
    Plan(Box<DoctorArgs>),
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD into a directory.
    Crds {
        /// Directory to write `<plural>.<group>.yaml` files into (created if missing).
        #[arg(long)]
        output_dir: Option<PathBuf>,
    },
    /// Run the Microsoft and Webex Connect simulators (local demo); writes ca.pem and operator.env.
    Sim {
        /// Directory for ca.pem and operator.env.
        #[arg(long, default_value = "target/demo")]
        state_dir: PathBuf,
    },
    /// Print the version of the operator and of the Kubernetes API it is built against.
    Version,
}

/// Where the external systems are and how the operator authenticates (shared by run and doctor).
#[derive(clap::Args)]
struct ExternalArgs {
    /// Login host for every cloud (default per cloud; AZURE_AUTHORITY_HOST is honoured).
    #[arg(long, env = "CEO_AUTHORITY_HOST")]
    authority_host: Option<url::Url>,
    /// Microsoft Graph base URL for every cloud (default per cloud).
    #[arg(long, env = "CEO_GRAPH_ENDPOINT")]
    graph_endpoint: Option<url::Url>,
    /// Exchange Online base URL for every cloud (default per cloud).
    #[arg(long, env = "CEO_EXCHANGE_ENDPOINT")]
    exchange_endpoint: Option<url::Url>,
    /// Webex Connect Digital Asset API base URL (default: https://assetmanagement.<region>.webexconnect.io).
    #[arg(long, env = "CEO_CONNECT_ENDPOINT")]
    connect_endpoint: Option<url::Url>,
    /// Extra CA certificates (PEM bundle) to trust for Microsoft and Webex endpoints, e.g. the simulators'.
    #[arg(long, env = "CEO_EXTRA_CA_FILE")]
    extra_ca_file: Option<PathBuf>,
    /// Graph writes per 150 s per tenant the client paces itself to (Graph's documented limit;
    /// raise only if Microsoft raised it for your tenant).
    #[arg(long, env = "CEO_GRAPH_WRITES_PER_150S", default_value_t = 3000)]
    graph_writes_per_150s: u32,
    /// Graph resource units per 10 s per tenant (documented: 3,500 under 50 users, 5,000 up to
    /// 500 users, 8,000 above).
    #[arg(long, env = "CEO_GRAPH_RESOURCE_UNITS_PER_10S", default_value_t = 3500)]
    graph_resource_units_per_10s: u32,
}

impl ExternalArgs {
    fn clients(&self) -> anyhow::Result<(AzureClients, ConnectClient)> {
        let mut microsoft = MicrosoftConfig::default();
        microsoft.overrides.authority_host = self.authority_host.clone();
        microsoft.overrides.graph = self.graph_endpoint.clone();
        microsoft.overrides.exchange = self.exchange_endpoint.clone();
        microsoft.authority_from_env()?;
        microsoft.graph_limits = Some(connect_email_operator::azure::throttle::GraphLimits {
            writes: self.graph_writes_per_150s,
            resource_units: self.graph_resource_units_per_10s,
            ..Default::default()
        });
        if let Some(path) = &self.extra_ca_file {
            microsoft.extra_ca_pem =
                Some(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?);
        }
        let credential = OperatorCredential::from_env()?;
        tracing::info!(credential = ?credential, "operator identity");
        let azure = azure_clients(&microsoft, credential)?;
        let http_settings = HttpSettings { extra_ca_pem: microsoft.extra_ca_pem.clone(), ..HttpSettings::default() };
        let connect = ConnectClient::new(HttpClient::new("connect", &http_settings)?, self.connect_endpoint.clone());
        Ok((azure, connect))
    }
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch only these namespaces, comma-separated (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    #[command(flatten)]
    external: ExternalArgs,
    /// Full re-check of each AzureAppRegistration against Graph, e.g. 10m (default: 10m with
    /// `--drift-detection poll`, 6h with `delta`, where the change feeds find drift).
    #[arg(long, env = "CEO_RESYNC", value_parser = parse_duration)]
    resync: Option<Duration>,
    /// Re-check of each EmailChannel's Exchange mailbox and Connect asset (they have no change feed).
    #[arg(long, env = "CEO_CHANNEL_RESYNC", default_value = "30m", value_parser = parse_duration)]
    channel_resync: Duration,
    /// How Entra-side drift is found: `delta` (Graph change feeds, three reads per tenant per
    /// poll) or `poll` (every object re-reads Graph at each resync).
    #[arg(long, env = "CEO_DRIFT_DETECTION", default_value = "delta")]
    drift_detection: DriftDetection,
    /// Reconciles running at once per controller (Graph's write limit bounds throughput, not this).
    #[arg(long, env = "CEO_CONCURRENCY", default_value_t = 50)]
    concurrency: u16,
    /// How often the change feeds are read with `--drift-detection delta`.
    #[arg(long, env = "CEO_DRIFT_POLL_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    drift_poll_interval: Duration,
    /// Log as JSON lines.
    #[arg(long, env = "CEO_LOG_JSON")]
    log_json: bool,
    /// Elect a leader on a Lease before reconciling (run two replicas safely).
    #[arg(long, env = "CEO_LEADER_ELECTION")]
    leader_election: bool,
    /// How long a standby waits after the Lease last changed before taking it over; the leader
    /// renews every fifteenth of it and stops reconciling when it could not renew for two thirds.
    #[arg(long, env = "CEO_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    lease_duration: Duration,
    /// Namespace of the Lease (default: the pod's namespace, POD_NAMESPACE).
    #[arg(long, env = "POD_NAMESPACE", default_value = "connect-email-operator")]
    lease_namespace: String,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "CEO_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,
}

#[derive(clap::Args)]
struct DoctorArgs {
    /// The EmailChannel (or AzureAppRegistration) as NAMESPACE/NAME.
    target: String,
    #[command(flatten)]
    external: ExternalArgs,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = api::duration::parse_duration(s).map_err(|e| e.to_string())?;
    Duration::try_from(d).map_err(|e| e.to_string())
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    init_tracing(args.log_json);
    tracing::info!("starting connect-email-operator {}", env!("CARGO_PKG_VERSION"));
    let (azure, connect) = args.external.clients()?;
    let client = kube::Client::try_default().await.context("connecting to Kubernetes")?;
    let resync = args.resync.unwrap_or(match args.drift_detection {
        DriftDetection::Poll => Duration::from_secs(600),
        DriftDetection::Delta => Duration::from_secs(6 * 3600),
    });
    let settings = Settings {
        resync,
        channel_resync: args.channel_resync,
        drift: args.drift_detection,
        drift_poll: args.drift_poll_interval,
        concurrency: args.concurrency,
        ..Settings::default()
    };
    let ctx = Arc::new(Context::new(client, azure, Arc::new(SystemClock), settings).with_connect(Arc::new(connect)));
    let metrics = ctx.metrics.clone();
    let metrics_addr = args.metrics_addr;
    tokio::spawn(async move {
        if let Err(e) = connect_email_operator::metrics::serve(metrics_addr, metrics).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    // A standby replica is healthy and ready (rollouts must not wait for it to lead).
    ctx.metrics.ready.store(true, std::sync::atomic::Ordering::Relaxed);
    if !args.leader_election {
        controller::run::run(ctx, args.namespace, shutdown_signal()).await;
        return Ok(());
    }
    // With leader election, wait for the Lease. Losing it aborts the controllers and exits
    // non-zero so the pod restarts as a candidate; SIGTERM stops them and releases the Lease so
    // the standby takes over at once (see `leader`).
    let identity = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("connect-email-operator-{}", std::process::id()));
    let settings = LeaseSettings::new(&args.lease_namespace, "connect-email-operator", &identity, args.lease_duration);
    tracing::info!("waiting for leadership");
    let client = ctx.client.clone();
    let namespace = args.namespace;
    let elector = Elector::new(client, settings);
    ctx.metrics.watch_leadership(elector.status());
    let outcome = elector.run(shutdown_signal(), move |stop| controller::run::run(ctx, namespace, stop)).await;
    if outcome == Outcome::Lost {
        anyhow::bail!("lost leadership");
    }
    Ok(())
}

/// Resolves on SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}

async fn doctor(args: DoctorArgs) -> anyhow::Result<bool> {
    let (namespace, name) = args.target.split_once('/').context("give the target as NAMESPACE/NAME")?;
    let (azure, connect) = args.external.clients()?;
    let client = kube::Client::try_default().await.context("connecting to Kubernetes")?;
    let checks =
        connect_email_operator::doctor::diagnose(client, &azure, &connect, namespace, name, jiff::Timestamp::now())
            .await?;
    print!("{}", connect_email_operator::doctor::render(&checks));
    Ok(!connect_email_operator::doctor::failed(&checks))
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => {
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(*args))?;
        }
        Command::Doctor(args) => {
            let ok = tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(doctor(*args))?;
            if !ok {
                std::process::exit(1);
            }
        }
        Command::Plan(args) => {
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async {
                let (namespace, name) = args.target.split_once('/').context("give the target as NAMESPACE/NAME")?;
                let (azure, _) = args.external.clients()?;
                let client = kube::Client::try_default().await.context("connecting to Kubernetes")?;
                let changes =
                    connect_email_operator::plan::plan(client, &azure, namespace, name, jiff::Timestamp::now()).await?;
                if changes.is_empty() {
                    println!("{namespace}/{name}: in sync, nothing to change");
                }
                for change in changes {
                    println!("- {change}");
                }
                anyhow::Ok(())
            })?;
        }
        Command::Sim { state_dir } => {
            init_tracing(false);
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async {
                let sims = connect_email_operator::sim::standalone::start(&state_dir).await?;
                println!("microsoft simulator: {}", sims.microsoft.url());
                println!("connect simulator:   {}", sims.connect.url());
                println!("operator settings:   {}", state_dir.join("operator.env").display());
                tokio::signal::ctrl_c().await?;
                anyhow::Ok(())
            })?;
        }
        Command::Crds { output_dir: None } => {
            for crd in api::crds() {
                print!("---\n{}", api::crd_yaml(&crd));
            }
        }
        Command::Crds { output_dir: Some(dir) } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for crd in api::crds() {
                let path = dir.join(api::crd_file_name(&crd));
                std::fs::write(&path, api::crd_yaml(&crd)).with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
        Command::Version => {
            println!("connect-email-operator {}", env!("CARGO_PKG_VERSION"));
            println!("kubernetes api {} (k8s-openapi 0.29)", connect_email_operator::KUBERNETES_API);
        }
    }
    Ok(())
}
