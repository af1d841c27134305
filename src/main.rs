//! Command-line wiring only; everything else lives in the library.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use connect_email_operator::api;
use connect_email_operator::azure::OperatorCredential;
use connect_email_operator::clients::{MicrosoftClients, MicrosoftConfig};
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
    /// Prepare Microsoft for the operator from an administrator's sign-in (idempotent).
    #[command(subcommand)]
    Setup(SetupCommand),
    /// Read-only: print one Connect asset or one Exchange mailbox as the raw JSON the service
    /// answers, secrets masked, to check the provisional field mappings against a real tenant.
    #[command(subcommand)]
    Inspect(InspectCommand),
    /// Print the version of the operator and of the Kubernetes API it is built against.
    Version,
}

#[derive(Subcommand)]
enum InspectCommand {
    /// GET one Webex Connect email asset (Digital Asset API).
    Connect {
        /// Webex Connect region: us, eu, uk, ca, au, sg or in.
        #[arg(long)]
        region: String,
        /// Webex organization ID (x-organization-id).
        #[arg(long)]
        org: String,
        /// Asset ID.
        #[arg(long)]
        asset: String,
        /// File holding the Webex access token (e.g. a mounted Secret key); default: CEO_CONNECT_TOKEN.
        #[arg(long)]
        token_file: Option<PathBuf>,
        #[command(flatten)]
        external: Box<ExternalArgs>,
    },
    /// Get-Mailbox and Get-CASMailbox for one mailbox (Exchange Online), as the operator's identity.
    Exchange {
        /// Microsoft Entra tenant ID.
        #[arg(long)]
        tenant: String,
        /// Mailbox address.
        #[arg(long)]
        mailbox: String,
        /// AzurePublic, AzureUSGovernment or AzureChina.
        #[arg(long, default_value = "AzurePublic", value_parser = parse_cloud)]
        cloud: connect_email_operator::api::Cloud,
        #[command(flatten)]
        external: Box<ExternalArgs>,
    },
}

async fn inspect(command: InspectCommand) -> anyhow::Result<()> {
    use connect_email_operator::inspect;
    let text = match command {
        InspectCommand::Connect { region, org, asset, token_file, external } => {
            let token = match token_file {
                Some(path) => std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
                None => std::env::var("CEO_CONNECT_TOKEN").context("give --token-file or set CEO_CONNECT_TOKEN")?,
            };
            let connect = connect_email_operator::clients::connect_client(
                &external.microsoft()?,
                external.connect_endpoint.clone(),
            )?;
            inspect::connect_asset(&connect, &region, &org, &asset, token.trim().to_string().into()).await?
        }
        InspectCommand::Exchange { tenant, mailbox, cloud, external } => {
            let credential = OperatorCredential::from_env()?;
            let exchange = connect_email_operator::clients::exchange_client(&external.microsoft()?, credential, cloud)?;
            inspect::exchange_mailbox(&exchange, &tenant, &mailbox).await?
        }
    };
    println!("{text}");
    Ok(())
}

#[derive(Subcommand)]
enum SetupCommand {
    /// Create (or find) the operator's application, its service principal, a federated credential
    /// for the cluster's service account, the Graph and Exchange application permissions with
    /// admin consent and Exchange RBAC limited to the allowed mailboxes; print the EntraTenant and
    /// Helm values. Every object is looked up first and created only when missing.
    Tenant(Box<SetupTenantArgs>),
}

#[derive(clap::Args)]
struct SetupTenantArgs {
    /// Directory (tenant) ID.
    #[arg(long)]
    tenant_id: String,
    /// AzurePublic, AzureUSGovernment or AzureChina.
    #[arg(long, default_value = "AzurePublic", value_parser = parse_cloud)]
    cloud: connect_email_operator::api::Cloud,
    /// The cluster's service-account issuer URL (`kubectl get --raw /.well-known/openid-configuration`).
    #[arg(long)]
    issuer: url::Url,
    /// Namespace the operator runs in.
    #[arg(long, default_value = "connect-email-operator")]
    namespace: String,
    /// The operator's service account. With the Helm chart it is the release's fullname (the
    /// release name, or `<release>-connect-email-operator` when the release name does not contain
    /// the chart name) unless `serviceAccount.name` is set.
    #[arg(long, default_value = "connect-email-operator")]
    service_account: String,
    /// Mailboxes the operator may manage: `support@contoso.com`, `*@contoso.com`, `*@*.contoso.com`
    /// (repeat or comma-separate).
    #[arg(long = "mailbox", required = true, value_delimiter = ',')]
    mailboxes: Vec<String>,
    /// The application's uniqueName and display name.
    #[arg(long, default_value = "connect-email-operator")]
    app_name: String,
    /// Name of the EntraTenant to print.
    #[arg(long, default_value = "default")]
    entra_tenant: String,
    /// Skip Exchange Online (no SMTP AUTH or forwarding management: no Exchange.ManageAsApp, no
    /// Exchange RBAC).
    #[arg(long)]
    no_exchange: bool,
    /// Allow adopting applications the operator does not own (Application.ReadWrite.All).
    #[arg(long)]
    adopt: bool,
    /// Allow granting application permissions (AppRoleAssignment.ReadWrite.All, which can grant
    /// any application permission): only if an EntraTenant will list application permissions.
    #[arg(long)]
    application_permissions: bool,
    /// Sign-in to each channel's application by its mailbox's user only (EntraTenant
    /// permissions.assignedUsersOnly): also grants AppRoleAssignment.ReadWrite.All, the only
    /// permission Microsoft lists for assigning users, which can grant any application permission.
    #[arg(long)]
    assigned_users_only: bool,
    /// A Webex Connect tenant host of your organisation (contoso.us.webexconnect.io), for the
    /// printed EntraTenant's connect.tenantHosts; repeat for several.
    #[arg(long = "connect-host")]
    connect_hosts: Vec<String>,
    /// Leave out the optional Policy.Read.All.
    #[arg(long)]
    no_policy_read: bool,
    /// Print every change and its equivalent az / Exchange PowerShell command; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write entratenant.yaml and values.yaml here instead of printing them.
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// The administrator's Microsoft Graph access token
    /// (`az account get-access-token --resource https://graph.microsoft.com --query accessToken -o tsv`).
    #[arg(long, env = "CEO_SETUP_GRAPH_TOKEN", hide_env_values = true)]
    graph_token: Option<String>,
    /// The administrator's Exchange Online access token
    /// (`az account get-access-token --resource https://outlook.office365.com --query accessToken -o tsv`).
    #[arg(long, env = "CEO_SETUP_EXCHANGE_TOKEN", hide_env_values = true)]
    exchange_token: Option<String>,
    /// Read the tokens from standard input: the Graph token on the first line, the Exchange token
    /// on the second.
    #[arg(long)]
    tokens_from_stdin: bool,
    /// Sign in with the device code flow instead of given tokens.
    #[arg(long)]
    device_code: bool,
    /// Public client for the device code sign-in (default: the Azure CLI's).
    #[arg(long, default_value = connect_email_operator::setup::AZURE_CLI_CLIENT_ID)]
    client_id: String,
    /// Login host (default per cloud).
    #[arg(long, env = "CEO_AUTHORITY_HOST")]
    authority_host: Option<url::Url>,
    /// Microsoft Graph base URL (default per cloud).
    #[arg(long, env = "CEO_GRAPH_ENDPOINT")]
    graph_endpoint: Option<url::Url>,
    /// Exchange Online base URL (default per cloud).
    #[arg(long, env = "CEO_EXCHANGE_ENDPOINT")]
    exchange_endpoint: Option<url::Url>,
    /// Extra CA certificates (PEM bundle) to trust, e.g. the simulator's.
    #[arg(long, env = "CEO_EXTRA_CA_FILE")]
    extra_ca_file: Option<PathBuf>,
}

fn parse_cloud(s: &str) -> Result<connect_email_operator::api::Cloud, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| format!("unknown cloud {s:?}: AzurePublic, AzureUSGovernment or AzureChina"))
}

async fn setup_tenant(args: SetupTenantArgs) -> anyhow::Result<()> {
    use connect_email_operator::azure::{EndpointOverrides, Endpoints};
    use connect_email_operator::setup::{self, TenantSetup};
    let spec = TenantSetup {
        tenant_id: args.tenant_id.clone(),
        cloud: args.cloud,
        issuer: args.issuer.as_str().trim_end_matches('/').to_string(),
        namespace: args.namespace,
        service_account: args.service_account,
        unique_name: args.app_name,
        mailboxes: args.mailboxes,
        exchange: !args.no_exchange,
        adopt: args.adopt,
        application_permissions: args.application_permissions,
        assigned_users_only: args.assigned_users_only,
        connect_hosts: args.connect_hosts,
        policy_read: !args.no_policy_read,
        entra_tenant: args.entra_tenant,
    };
    let overrides = EndpointOverrides {
        authority_host: args.authority_host,
        graph: args.graph_endpoint,
        exchange: args.exchange_endpoint,
    };
    let endpoints = overrides.apply(Endpoints::for_cloud(spec.cloud));
    let extra_ca_pem = match &args.extra_ca_file {
        Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?),
        None => None,
    };
    let http = HttpClient::new("setup", &HttpSettings { extra_ca_pem, ..HttpSettings::default() })?;
    let sign_in = if args.device_code {
        setup::SignInWith::DeviceCode { client_id: args.client_id }
    } else if args.tokens_from_stdin {
        setup::SignInWith::Stdin
    } else {
        setup::SignInWith::Tokens { graph: args.graph_token, exchange: args.exchange_token }
    };
    let (graph_token, exchange_token) = setup::admin_tokens(sign_in, &http, &endpoints, &spec).await?;
    let (graph, exchange) = setup::admin_clients(http, endpoints, graph_token, exchange_token);
    let report = setup::run(&spec, &graph, spec.exchange.then_some(&exchange), args.dry_run).await?;
    print!("{}", report.render(args.dry_run));
    print!("{}", setup::write_outputs(&spec, &report, args.output_dir.as_deref(), args.dry_run)?);
    Ok(())
}

/// Where the external systems are and how the operator authenticates (shared by run and doctor).
#[derive(clap::Args)]
struct ExternalArgs {
    /// This installation's name among operators sharing a Microsoft tenant: part of every
    /// application's uniqueName, so the same manifests applied to a rebuilt cluster find the same
    /// applications. Give each installation sharing a tenant its own.
    #[arg(long, env = "CEO_INSTANCE", default_value = "default")]
    instance: String,
    /// The operator's own namespace: EntraTenant credential Secrets (`spec.credential.secretRef`)
    /// are read only from here, and the leader election Lease lives here.
    #[arg(long, env = "POD_NAMESPACE", default_value = "connect-email-operator")]
    operator_namespace: String,
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
    /// The external clients; requests are counted in `metrics` when given (`run`).
    fn clients(
        &self,
        metrics: Option<Arc<connect_email_operator::metrics::Metrics>>,
    ) -> anyhow::Result<(MicrosoftClients, ConnectClient)> {
        let mut microsoft = self.microsoft()?;
        microsoft.metrics = metrics;
        let credential = OperatorCredential::from_env();
        match &credential {
            Ok(credential) => tracing::info!(credential = ?credential, "operator identity"),
            Err(e) => tracing::warn!(
                "the operator has no identity of its own ({e}): only EntraTenants with spec.credential can be served"
            ),
        }
        let connect = connect_email_operator::clients::connect_client(&microsoft, self.connect_endpoint.clone())?;
        let azure = MicrosoftClients::new(microsoft, credential, self.operator_namespace.clone())?;
        Ok((azure, connect))
    }

    fn microsoft(&self) -> anyhow::Result<MicrosoftConfig> {
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
        Ok(microsoft)
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
    /// Export OpenTelemetry traces (one per reconcile) to this OTLP/HTTP collector, e.g.
    /// http://otel-collector:4318 (needs a build with the `telemetry` feature).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Elect a leader on a Lease before reconciling (run two replicas safely).
    #[arg(long, env = "CEO_LEADER_ELECTION")]
    leader_election: bool,
    /// How long a standby waits after the Lease last changed before taking it over; the leader
    /// renews every fifteenth of it and stops reconciling when it could not renew for two thirds.
    #[arg(long, env = "CEO_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    lease_duration: Duration,
    /// Namespace of the Lease (default: the operator's namespace).
    #[arg(long)]
    lease_namespace: Option<String>,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "CEO_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,
}

#[derive(clap::Args)]
struct DoctorArgs {
    /// The EmailChannel (or AzureAppRegistration) as NAMESPACE/NAME; `entratenant/NAME` checks
    /// the operator's own identity and Microsoft permissions in that EntraTenant's tenant.
    target: String,
    #[command(flatten)]
    external: ExternalArgs,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = api::duration::parse_duration(s).map_err(|e| e.to_string())?;
    Duration::try_from(d).map_err(|e| e.to_string())
}

/// Keeps the trace exporter (if any) until the process ends, then sends its last spans.
struct Telemetry {
    #[cfg(feature = "telemetry")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        #[cfg(feature = "telemetry")]
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("exporting the last traces failed: {e}");
        }
    }
}

fn init_tracing(json: bool, otlp_endpoint: Option<&str>) -> anyhow::Result<Telemetry> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let otlp_endpoint = otlp_endpoint.filter(|e| !e.is_empty());
    let tracing_on = cfg!(feature = "telemetry") && otlp_endpoint.is_some();
    // kube-runtime's `reconciling object` spans (object.ref, object.reason) are the traces' roots.
    let default_filter = if tracing_on { "info,kube=warn,kube_runtime::controller=info" } else { "info,kube=warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    #[cfg(feature = "telemetry")]
    let (otel, provider) = match otlp_endpoint {
        Some(endpoint) => {
            let provider = connect_email_operator::telemetry::provider(endpoint)?;
            (Some(connect_email_operator::telemetry::layer(&provider)), Some(provider))
        }
        None => (None, None),
    };
    #[cfg(not(feature = "telemetry"))]
    let otel = Option::<tracing_subscriber::layer::Identity>::None;
    // Colour only on a terminal: log files and collectors get plain text.
    let fmt = tracing_subscriber::fmt::layer().with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let fmt = if json {
        #[cfg(feature = "telemetry")]
        let fmt = fmt
            .json()
            .event_format(connect_email_operator::telemetry::WithTraceId(tracing_subscriber::fmt::format().json()));
        #[cfg(not(feature = "telemetry"))]
        let fmt = fmt.json();
        fmt.boxed()
    } else {
        fmt.boxed()
    };
    tracing_subscriber::registry().with(filter).with(otel).with(fmt).try_init()?;
    if otlp_endpoint.is_some() && !tracing_on {
        tracing::warn!("--otlp-endpoint is ignored: this build has no `telemetry` feature");
    }
    Ok(Telemetry {
        #[cfg(feature = "telemetry")]
        provider,
    })
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let _telemetry = init_tracing(args.log_json, args.otlp_endpoint.as_deref())?;
    tracing::info!("starting connect-email-operator {}", env!("CARGO_PKG_VERSION"));
    let metrics = Arc::new(connect_email_operator::metrics::Metrics::default());
    let (azure, connect) = args.external.clients(Some(metrics.clone()))?;
    let client = kube::Client::try_default().await.context("connecting to Kubernetes")?;
    let resync = args.resync.unwrap_or(match args.drift_detection {
        DriftDetection::Poll => Duration::from_secs(600),
        DriftDetection::Delta => Duration::from_secs(6 * 3600),
    });
    let settings = Settings {
        instance: args.external.instance.clone(),
        resync,
        channel_resync: args.channel_resync,
        drift: args.drift_detection,
        drift_poll: args.drift_poll_interval,
        concurrency: args.concurrency,
        ..Settings::default()
    };
    let ctx =
        Arc::new(Context::new(client, azure, Arc::new(connect), Arc::new(SystemClock), settings, metrics.clone()));
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
    let lease_namespace = args.lease_namespace.as_deref().unwrap_or(&args.external.operator_namespace);
    let settings = LeaseSettings::new(lease_namespace, "connect-email-operator", &identity, args.lease_duration);
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
    let (namespace, name) =
        args.target.split_once('/').context("give the target as NAMESPACE/NAME or entratenant/NAME")?;
    let (azure, connect) = args.external.clients(None)?;
    let client = kube::Client::try_default().await.context("connecting to Kubernetes")?;
    if namespace.eq_ignore_ascii_case("entratenant") {
        let checks = connect_email_operator::doctor::diagnose_tenant(client, &azure, name).await?;
        print!("{}", connect_email_operator::doctor::render(&checks));
        return Ok(!connect_email_operator::doctor::failed(&checks));
    }
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
                let (azure, _) = args.external.clients(None)?;
                let client = kube::Client::try_default().await.context("connecting to Kubernetes")?;
                let changes = connect_email_operator::plan::plan(
                    client,
                    &azure,
                    &args.external.instance,
                    namespace,
                    name,
                    jiff::Timestamp::now(),
                )
                .await?;
                if changes.is_empty() {
                    println!("{namespace}/{name}: in sync, nothing to change");
                }
                for change in changes {
                    println!("- {change}");
                }
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
        Command::Setup(SetupCommand::Tenant(args)) => {
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(setup_tenant(*args))?;
        }
        Command::Inspect(command) => {
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(inspect(command))?;
        }
        Command::Version => {
            println!("connect-email-operator {}", env!("CARGO_PKG_VERSION"));
            println!("kubernetes api {} (k8s-openapi 0.29)", connect_email_operator::KUBERNETES_API);
        }
    }
    Ok(())
}
