//! Runs the operator's controllers in-process against the test cluster, with the Microsoft
//! simulator as Entra ID / Graph. Each harness watches only its own namespace.

use std::sync::Arc;
use std::time::Duration;

use connect_email_operator::api::{AzureAppRegistration, EmailChannel};
use connect_email_operator::azure::OperatorCredential;
use connect_email_operator::azure::graph::LagRetry;
use connect_email_operator::clients::{MicrosoftClients, MicrosoftConfig};
use connect_email_operator::connect::api::ConnectClient;
use connect_email_operator::controller::{self, Context, Settings, SystemClock};
use connect_email_operator::http::{HttpClient, HttpSettings};
use connect_email_sim::microsoft::{MicrosoftSim, SimOptions};
use connect_email_sim::{ConnectOptions, ConnectSim};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams};
use url::Url;

use super::{TestNamespace, client, install_crds, sim_client};

pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
/// The EntraTenant every test namespace may use (labelled `connectemail.dev/test=true`), applied
/// by each harness: the tenant above, the mailboxes and permissions the tests use, adoption allowed.
pub const TENANT_REF: &str = "test-tenant";
pub const OPERATOR_CLIENT_ID: &str = "0e0e0e0e-1111-2222-3333-444444444444";
pub const OPERATOR_SECRET: &str = "operator-test-secret~not-a-real-one";

pub const CONNECT_ORG: &str = "0f3c8a55-6b8e-4c0e-9d1c-3d9f0f3f0a11";
pub const CONNECT_TOKEN: &str = "webex-access-token-for-tests";

pub struct Harness {
    pub sim: MicrosoftSim,
    /// Webex Connect (tenant host `acme.us.webexconnect.io`).
    pub connect: ConnectSim,
    pub client: Client,
    pub ns: TestNamespace,
    /// The in-process operator's metrics, once started.
    pub metrics: Option<Arc<connect_email_operator::metrics::Metrics>>,
    /// Whole-request timeout of the in-process operator's Microsoft and Connect clients (default
    /// 30 s); set before `start_operator` to test requests that outlast it.
    pub client_timeout: Option<Duration>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Settings for the in-process operator instead of the test defaults.
    pub settings: Option<Settings>,
}

impl Harness {
    pub async fn start(test: &str) -> Self {
        Self::start_with(test, SimOptions { tenants: vec![TENANT.into()], ..SimOptions::default() }).await
    }

    /// The simulator, the cluster and a namespace, without controllers (tests that run the
    /// operator as a process, or under another identity, start it themselves).
    pub async fn without_operator(test: &str) -> Self {
        Self::without_operator_with(test, SimOptions { tenants: vec![TENANT.into()], ..SimOptions::default() }).await
    }

    pub async fn without_operator_with(test: &str, options: SimOptions) -> Self {
        super::hygiene::capture_logs();
        let sim = MicrosoftSim::start(options).await.expect("simulator starts");
        sim.add_operator_client_secret(TENANT, OPERATOR_CLIENT_ID, OPERATOR_SECRET);
        let client = client().await;
        install_crds(&client).await;
        apply_test_tenant(&client).await;
        let ns = TestNamespace::new(&client, test).await;
        let connect = start_connect().await;
        Self { sim, client, ns, connect, metrics: None, client_timeout: None, stop: None, task: None, settings: None }
    }

    /// As `start_with`, the operator running with `settings`.
    pub async fn start_with_settings(test: &str, options: SimOptions, settings: Settings) -> Self {
        let mut h = Self::without_operator_with(test, options).await;
        h.settings = Some(settings);
        h.start_operator(h.client.clone());
        h
    }

    pub async fn start_with(test: &str, options: SimOptions) -> Self {
        let mut h = Self::without_operator_with(test, options).await;
        h.start_operator(h.client.clone());
        h
    }

    /// Runs the controllers in-process for this namespace, talking to Kubernetes as `client`.
    pub fn start_operator(&mut self, client: Client) {
        let namespace = self.ns.name.clone();
        self.start_operator_for(client, namespace);
    }

    /// As `start_operator`, watching `namespaces` (comma-separated, as `--namespace` takes them).
    pub fn start_operator_for(&mut self, client: Client, namespaces: String) {
        let ctx = self.context(client);
        self.start_operator_with(ctx, namespaces);
    }

    /// Runs the controllers in-process with `ctx` (e.g. with metrics of their own), watching
    /// `namespaces`.
    pub fn start_operator_with(&mut self, ctx: Arc<Context>, namespaces: String) {
        self.metrics = Some(ctx.metrics.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            controller::run::run(ctx, Some(namespaces), async move {
                let _ = stopped.await;
            })
            .await
        });
        self.stop = Some(stop);
        self.task = Some(task);
    }

    /// Stops the in-process controllers as a restart would (in-flight reconciles finish), leaving
    /// every resource in place.
    pub async fn stop_operator(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
        }
    }

    /// The context the in-process operator runs with (to call one reconcile directly), with a
    /// metrics registry of its own (as a new process has).
    pub fn context(&self, client: Client) -> Arc<Context> {
        let metrics = Arc::new(connect_email_operator::metrics::Metrics::default());
        let bundle = format!("{}\n{}", self.sim.ca_pem(), self.connect.ca_pem());
        let config = MicrosoftConfig {
            overrides: sim_client::overrides(&self.sim),
            extra_ca_pem: Some(bundle.clone()),
            lag_retry: Some(LagRetry { attempts: 20, delay: Duration::from_millis(100) }),
            request_timeout: self.client_timeout,
            graph_limits: None,
            metrics: Some(metrics.clone()),
        };
        let credential = OperatorCredential::ClientSecret {
            client_id: OPERATOR_CLIENT_ID.into(),
            secret: OPERATOR_SECRET.to_string().into(),
        };
        // EntraTenant credential Secrets are read from the test's namespace (the operator's own).
        let azure = MicrosoftClients::new(config, Ok(credential), self.ns.name.clone()).expect("clients");
        // A short resync so drift made behind the operator's back is repaired within the test.
        let settings = self.settings.clone().unwrap_or(Settings {
            resync: Duration::from_secs(2),
            channel_resync: Duration::from_secs(2),
            propagation_poll: Duration::from_millis(300),
            ..Settings::default()
        });
        let mut http_settings =
            HttpSettings { extra_ca_pem: Some(bundle), metrics: Some(metrics.clone()), ..HttpSettings::default() };
        if let Some(timeout) = self.client_timeout {
            http_settings.timeout = timeout;
        }
        let http = HttpClient::new("connect", &http_settings).unwrap();
        let connect_client = ConnectClient::new(http, Some(Url::parse(&self.connect.url()).unwrap()));
        Arc::new(Context::new(client, azure, Arc::new(connect_client), Arc::new(SystemClock), settings, metrics))
    }

    /// The operator's Microsoft clients pointed at the simulator (for `plan` / `doctor` in tests).
    pub fn azure_clients(&self) -> MicrosoftClients {
        let config = MicrosoftConfig {
            overrides: sim_client::overrides(&self.sim),
            extra_ca_pem: Some(self.sim.ca_pem()),
            lag_retry: None,
            request_timeout: None,
            graph_limits: None,
            metrics: None,
        };
        let credential = OperatorCredential::ClientSecret {
            client_id: OPERATOR_CLIENT_ID.into(),
            secret: OPERATOR_SECRET.to_string().into(),
        };
        MicrosoftClients::new(config, Ok(credential), self.ns.name.clone()).unwrap()
    }

    /// A Graph client with the operator's identity, for out-of-band changes ("someone in the portal").
    pub fn portal(&self) -> std::sync::Arc<dyn connect_email_operator::azure::Directory> {
        self.azure_clients()
            .for_cloud(connect_email_operator::api::Cloud::AzurePublic)
            .expect("ambient identity")
            .directory
    }

    /// No secret value issued by the simulators (client secrets, access tokens, secrets pushed to
    /// Connect) appears in the operator's logs, the namespace's events or any status.
    pub async fn assert_no_secret_leaked(&self) {
        use k8s_openapi::api::events::v1::Event;
        let mut secrets = self.sim.issued_secrets();
        secrets.extend(self.sim.issued_tokens());
        secrets.extend(self.connect.pushed_secrets());
        secrets.extend([OPERATOR_SECRET.to_string(), CONNECT_TOKEN.to_string()]);
        // Secret data travels base64-encoded in Kubernetes objects: look for that form too.
        use base64::Engine;
        let encoded: Vec<String> =
            secrets.iter().map(|s| base64::engine::general_purpose::STANDARD.encode(s.as_bytes())).collect();
        secrets.extend(encoded);
        let ns = &self.ns.name;
        let events = Api::<Event>::namespaced(self.client.clone(), ns).list(&ListParams::default()).await.unwrap();
        let registrations = Api::<AzureAppRegistration>::namespaced(self.client.clone(), ns)
            .list(&ListParams::default())
            .await
            .unwrap();
        let channels =
            Api::<EmailChannel>::namespaced(self.client.clone(), ns).list(&ListParams::default()).await.unwrap();
        let statuses: Vec<String> = registrations
            .items
            .iter()
            .map(|r| serde_json::to_string(&r.status).unwrap())
            .chain(channels.items.iter().map(|c| serde_json::to_string(&c.status).unwrap()))
            .collect();
        let logs = super::hygiene::logs();
        if self.metrics.is_some() {
            assert!(logs.contains("reconcil"), "the operator's logs were not captured");
        }
        super::hygiene::assert_no_secret_in(
            &secrets,
            &[
                ("the operator's logs", logs),
                ("events", serde_json::to_string(&events.items).unwrap()),
                ("status", statuses.join("\n")),
            ],
        );
    }

    /// Deletes the test's resources while the controllers still run (so finalizers complete),
    /// stops the controllers and deletes the namespace.
    pub async fn finish(mut self) {
        self.assert_no_secret_leaked().await;
        let channels: Api<EmailChannel> = Api::namespaced(self.client.clone(), &self.ns.name);
        let _ = channels.delete_collection(&DeleteParams::default(), &ListParams::default()).await;
        let registrations: Api<AzureAppRegistration> = Api::namespaced(self.client.clone(), &self.ns.name);
        let _ = registrations.delete_collection(&DeleteParams::default(), &ListParams::default()).await;
        let _ = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let channels_left = channels.list(&ListParams::default()).await.map(|l| l.items.len()).unwrap_or(0);
                let registrations_left =
                    registrations.list(&ListParams::default()).await.map(|l| l.items.len()).unwrap_or(0);
                if channels_left + registrations_left == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
        }
        self.ns.delete().await;
    }
}

/// Applies the shared EntraTenant [`TENANT_REF`] (server-side apply: every harness applies the same).
pub async fn apply_test_tenant(client: &Client) {
    use connect_email_operator::api::EntraTenant;
    use kube::api::{Patch, PatchParams};
    let tenant = serde_json::json!({
        "apiVersion": "connectemail.dev/v1alpha1",
        "kind": "EntraTenant",
        "metadata": {"name": TENANT_REF},
        "spec": {
            "tenantId": TENANT,
            "namespaceSelector": {"matchLabels": {"connectemail.dev/test": "true"}},
            "mailboxes": ["*@contoso.com", "*@*.contoso.com", "*@fabrikam.com"],
            // The Connect organisations of the tests (the long one: the schema's longest tenantHost).
            "connect": {"tenantHosts": ["acme.us.webexconnect.io", "acme.eu.webexconnect.io", "contoso.us.webexconnect.io",
                                        "contoso.eu.webexconnect.io", super::resources::long_host(239)]},
            "forwarding": {"allowedDestinations": ["*@mail-us.imiconnect.io", "*@b.io"]},
            // Bare registrations of the rotation, crash and fault suites consent for every user,
            // as the portal does; channels consent for their mailbox's user (tests/security.rs
            // covers tenants that do not allow tenant-wide consent).
            "permissions": {"tenantWideConsent": true, "allowed": [
                // "Mail.Sendd": a typo an administrator could allow, so that the tenant's own
                // answer to an unknown permission stays tested.
                {"resourceAppId": "00000002-0000-0ff1-ce00-000000000000", "delegated": ["SMTP.Send"], "application": ["Mail.Send", "Mail.Sendd"]},
                {"resourceAppId": "00000003-0000-0000-c000-000000000000", "delegated": ["offline_access"]},
            ]},
            "adoption": {"allowed": true},
        },
    });
    Api::<EntraTenant>::all(client.clone())
        .patch(TENANT_REF, &PatchParams::apply(super::FIELD_MANAGER).force(), &Patch::Apply(&tenant))
        .await
        .expect("apply the test EntraTenant");
}

async fn start_connect() -> ConnectSim {
    let connect = ConnectSim::start(ConnectOptions::default().region("us").tenant_host("acme"))
        .await
        .expect("Connect simulator starts");
    connect.add_org(CONNECT_ORG, CONNECT_TOKEN);
    connect
}
