//! The consumer's view of rotation: whatever a person or a crash does to the Secret, and however
//! many channels share one registration, the key a consumer (Webex Connect) holds keeps
//! authenticating at the token endpoint until that consumer acknowledged its verified successor.
//! A probe authenticates with the consumer's key every 200 ms and must never fail.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connect_email_operator::api::conditions::{app_registration as app_cond, reason};
use connect_email_operator::api::{AzureAppRegistration, EmailChannel};
use connect_email_operator::controller::Settings;
use connect_email_sim::routes;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use support::operator::{CONNECT_ORG, Harness, TENANT, TENANT_REF};
use support::resources::{apply_channel, apply_registration, connect_token_secret, mailboxes, secret_data as data};
use support::{eventually, sim_client};

const FORWARD_TO: &str = "4f1c2a9b7e4f1c2a9b7e4f1c2a9b7e4f@mail-us.imiconnect.io";
const CALLBACK: &str = "https://acme.us.webexconnect.io/callback";

fn manual_channel(name: &str, mailbox: &str, azure: Value) -> Value {
    json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel",
        "metadata": {"name": name},
        "spec": {
            "mailbox": mailbox,
            "azure": azure,
            "connect": {"mode": "Manual", "region": "us", "tenantHost": "acme.us.webexconnect.io",
                        "assetName": format!("{name} email"), "forwardingAddress": FORWARD_TO}
        }
    })
}

async fn registration(h: &Harness, name: &str) -> AzureAppRegistration {
    Api::<AzureAppRegistration>::namespaced(h.client.clone(), &h.ns.name).get(name).await.unwrap()
}

/// The registration's verified current key, once it differs from every key in `not`.
async fn new_verified_key(h: &Harness, name: &str, not: &[&str]) -> String {
    eventually(Duration::from_secs(60), || async {
        let r = Api::<AzureAppRegistration>::namespaced(h.client.clone(), &h.ns.name)
            .get_opt(name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("not created yet")?;
        match r.status.and_then(|s| s.credential).filter(|c| c.verified_at.is_some()).map(|c| c.key_id) {
            Some(k) if !not.contains(&k.as_str()) => Ok(k),
            other => Err(format!("current verified key {other:?}")),
        }
    })
    .await
}

async fn secret_data(h: &Harness, name: &str) -> Secret {
    Api::<Secret>::namespaced(h.client.clone(), &h.ns.name).get(name).await.unwrap()
}

fn annotation(s: &Secret, key: &str) -> Option<String> {
    s.metadata.annotations.as_ref()?.get(key).cloned()
}

/// A person enters the Secret's current client secret in Connect and confirms it on the channel.
async fn person_enters_the_secret(h: &Harness, channel: &str, secret_name: &str, probe: &Probe) -> String {
    let s = secret_data(h, secret_name).await;
    let key = annotation(&s, "connectemail.dev/key-id").unwrap();
    probe.switch(data(&s, "client-secret").unwrap());
    let api: Api<EmailChannel> = Api::namespaced(h.client.clone(), &h.ns.name);
    let patch = json!({"metadata": {"annotations": {"connectemail.dev/connect-secret-applied": key}}});
    api.patch(channel, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    key
}

async fn wait_acknowledged(h: &Harness, registration_name: &str, channel: &str, key: &str) {
    eventually(Duration::from_secs(30), || async {
        let r = registration(h, registration_name).await;
        let ack = r.metadata.annotations.unwrap_or_default().get(&format!("ack.connectemail.dev/{channel}")).cloned();
        if ack.as_deref() == Some(key) { Ok(()) } else { Err(format!("acknowledged {ack:?}")) }
    })
    .await;
}

fn app_keys(h: &Harness) -> Vec<String> {
    h.sim.applications(TENANT).into_iter().flat_map(|a| a.passwords.into_iter().map(|p| p.key_id)).collect()
}

/// An Api-mode channel `name` (mailbox `<name>@contoso.com`, Secret `<name>-azure`, a 2 s grace
/// period as Connect needs: it reads the asset's secret for each new session), once Connect holds
/// its first verified key. Returns that key and the asset ID.
async fn api_channel(h: &Harness, name: &str) -> (String, String) {
    connect_token_secret(h).await;
    apply_channel(h, &json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel",
        "metadata": {"name": name},
        "spec": {
            "mailbox": format!("{name}@contoso.com"),
            "azure": {"tenantRef": {"name": TENANT_REF}, "clientSecret": {"secretName": format!("{name}-azure"), "revokeAfter": "2s"}},
            "connect": {"mode": "Api", "region": "us", "tenantHost": "acme.us.webexconnect.io", "assetName": format!("{name} email"),
                        "organizationId": CONNECT_ORG, "credentialsSecretRef": {"name": "webex-connect-api"}}
        }
    }))
    .await;
    let k0 = new_verified_key(h, name, &[]).await;
    wait_acknowledged(h, name, name, &k0).await;
    let asset_id = eventually(Duration::from_secs(30), || async {
        let c = Api::<EmailChannel>::namespaced(h.client.clone(), &h.ns.name).get(name).await.unwrap();
        c.status.and_then(|s| s.connect?.asset_id).ok_or("no asset".to_string())
    })
    .await;
    (k0, asset_id)
}

/// Until a rotation of `name` has settled (one key left, the current one, not among `not`), with
/// the probe following every push to Connect's asset. Returns the new key.
async fn settle_following_connect(h: &Harness, probe: &Probe, asset_id: &str, name: &str, not: &[&str]) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        probe.switch(h.connect.asset(asset_id).unwrap().oauth.client_secret);
        let keys = app_keys(h);
        let current = registration(h, name).await.status.and_then(|s| s.credential).map(|c| c.key_id);
        if keys.len() == 1 && current.as_ref() == keys.first() && current.as_deref().is_some_and(|c| !not.contains(&c))
        {
            return current.unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "rotation did not settle: {keys:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A consumer authenticating with the secret it holds every 200 ms.
struct Probe {
    secret: Arc<Mutex<String>>,
    attempts: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Probe {
    /// A probe holding what Connect holds for the asset.
    fn for_asset(h: &Harness, asset_id: &str) -> Self {
        let oauth = h.connect.asset(asset_id).unwrap().oauth;
        Probe::start(h, oauth.client_id, oauth.token_url, oauth.client_secret)
    }

    fn start(h: &Harness, client_id: String, token_url: String, secret: String) -> Self {
        let http = sim_client::https_client(&h.sim.ca_pem());
        let secret = Arc::new(Mutex::new(secret));
        let attempts = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (secret, attempts, failures, stop) = (secret.clone(), attempts.clone(), failures.clone(), stop.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    let held = secret.lock().unwrap().clone();
                    let form = [
                        ("grant_type", "client_credentials"),
                        ("client_id", client_id.as_str()),
                        ("client_secret", held.as_str()),
                        ("scope", "https://outlook.office365.com/.default"),
                    ];
                    let response = http.post(&token_url).form(&form).send().await.unwrap();
                    attempts.fetch_add(1, Ordering::Relaxed);
                    if !response.status().is_success() {
                        let status = response.status();
                        let body = response.text().await.unwrap_or_default();
                        let code = body
                            .split("AADSTS")
                            .nth(1)
                            .map(|c| c.chars().take_while(char::is_ascii_digit).collect::<String>());
                        failures.lock().unwrap().push(format!(
                            "{status} AADSTS{} at {}",
                            code.unwrap_or_default(),
                            jiff::Timestamp::now()
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        Self { secret, attempts, failures, stop, task }
    }

    fn switch(&self, secret: String) {
        *self.secret.lock().unwrap() = secret;
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        (self.attempts.load(Ordering::Relaxed), self.failures.lock().unwrap().clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_or_editing_the_secret_never_cuts_off_connect_in_manual_mode() {
    let h = Harness::start("cons-manual").await;
    mailboxes(&h, &["support@contoso.com"]);
    let azure = json!({"tenantRef": {"name": TENANT_REF}, "clientSecret": {"secretName": "support-azure", "revokeAfter": "0s"}});
    apply_channel(&h, &manual_channel("support", "support@contoso.com", azure)).await;
    let k0 = new_verified_key(&h, "support", &[]).await;
    let s = secret_data(&h, "support-azure").await;
    let probe =
        Probe::start(&h, data(&s, "client-id").unwrap(), data(&s, "token-url").unwrap(), "not yet entered".into());
    assert_eq!(person_enters_the_secret(&h, "support", "support-azure", &probe).await, k0);
    wait_acknowledged(&h, "support", "support", &k0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    probe.failures.lock().unwrap().clear();

    // 1. The Secret is deleted (the old advice for forcing a rotation).
    Api::<Secret>::namespaced(h.client.clone(), &h.ns.name)
        .delete("support-azure", &DeleteParams::default())
        .await
        .unwrap();
    let k1 = new_verified_key(&h, "support", &[&k0]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(app_keys(&h).contains(&k0), "Connect's key must stay until Connect holds the new one");
    let rotating = registration(&h, "support").await.status.unwrap();
    let message = &rotating.conditions.iter().find(|c| c.type_ == app_cond::ROTATING).unwrap().message;
    assert!(message.contains(&k0) && message.contains("EmailChannel support"), "{message}");

    // 2. The Secret is edited by hand: the fingerprint no longer matches.
    let patch = json!({"stringData": {"client-secret": "pasted-over-by-hand"}});
    Api::<Secret>::namespaced(h.client.clone(), &h.ns.name)
        .patch("support-azure", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let k2 = new_verified_key(&h, "support", &[&k0, &k1]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let keys = app_keys(&h);
    assert!(keys.contains(&k0), "{keys:?}");
    assert!(keys.len() <= 3, "bounded: {keys:?}");

    // 3. The person enters the newest secret: only then does Connect's old key go.
    assert_eq!(person_enters_the_secret(&h, "support", "support-azure", &probe).await, k2);
    eventually(Duration::from_secs(30), || async {
        let keys = app_keys(&h);
        if keys == vec![k2.clone()] { Ok(()) } else { Err(format!("{keys:?}")) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (attempts, failures) = probe.finish().await;
    println!("probe: {attempts} authentications, {} failures", failures.len());
    assert!(attempts > 30, "{attempts}");
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(h.sim.count(routes::ADD_PASSWORD), 3, "one key per event, no more");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_secret_never_cuts_off_connect_in_api_mode() {
    let h = Harness::start("cons-api").await;
    mailboxes(&h, &["billing@contoso.com"]);
    // Entra ID takes a moment to accept each new key: Connect gets it only after that.
    h.sim.faults().set_password_propagation(Duration::from_millis(1500));
    let (k0, asset_id) = api_channel(&h, "billing").await;
    let probe = Probe::for_asset(&h, &asset_id);
    Api::<Secret>::namespaced(h.client.clone(), &h.ns.name)
        .delete("billing-azure", &DeleteParams::default())
        .await
        .unwrap();
    // Connect's copy follows every push (what Connect would use for its next session).
    let k1 = settle_following_connect(&h, &probe, &asset_id, "billing", &[&k0]).await;
    wait_acknowledged(&h, "billing", "billing", &k1).await;
    probe.switch(h.connect.asset(&asset_id).unwrap().oauth.client_secret);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (attempts, failures) = probe.finish().await;
    println!("probe: {attempts} authentications, {} failures", failures.len());
    assert!(failures.is_empty(), "{failures:?}");
    // What was called: K0 was removed once, after Connect received K1.
    let calls = h.sim.calls();
    let removals: Vec<_> = calls.iter().filter(|c| c.route == routes::REMOVE_PASSWORD && c.status < 300).collect();
    assert_eq!(removals.len(), 1, "{removals:?}");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_channels_sharing_a_registration_each_keep_their_key_until_they_acknowledge() {
    let h = Harness::start("cons-shared").await;
    mailboxes(&h, &["a@contoso.com", "b@contoso.com"]);
    // Shared, and without requireAcknowledgement: channels acknowledge anyway.
    apply_registration(
        &h,
        &json!({
            "apiVersion": "connectemail.dev/v1alpha1", "kind": "AzureAppRegistration",
            "metadata": {"name": "shared"},
            "spec": {
                "tenantRef": {"name": TENANT_REF},
                "displayName": "Webex Connect shared",
                "redirectUris": [CALLBACK],
                "implicitGrant": {"accessTokens": true},
                "permissions": [
                    {"resource": "Office 365 Exchange Online", "delegated": ["SMTP.Send"]},
                    {"resource": "Microsoft Graph", "delegated": ["offline_access"]}
                ],
                "clientSecret": {"secretName": "shared-azure", "revokeAfter": "0s", "requireAcknowledgement": false}
            }
        }),
    )
    .await;
    let shared = json!({"appRegistrationRef": {"name": "shared"}});
    apply_channel(&h, &manual_channel("a", "a@contoso.com", shared.clone())).await;
    apply_channel(&h, &manual_channel("b", "b@contoso.com", shared)).await;
    let k0 = new_verified_key(&h, "shared", &[]).await;
    let s = secret_data(&h, "shared-azure").await;
    let (client_id, token_url) = (data(&s, "client-id").unwrap(), data(&s, "token-url").unwrap());
    let probe_a = Probe::start(&h, client_id.clone(), token_url.clone(), String::new());
    let probe_b = Probe::start(&h, client_id, token_url, String::new());
    person_enters_the_secret(&h, "a", "shared-azure", &probe_a).await;
    person_enters_the_secret(&h, "b", "shared-azure", &probe_b).await;
    wait_acknowledged(&h, "shared", "a", &k0).await;
    wait_acknowledged(&h, "shared", "b", &k0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    probe_a.failures.lock().unwrap().clear();
    probe_b.failures.lock().unwrap().clear();

    let patch = json!({"metadata": {"annotations": {"connectemail.dev/rotate": "1"}}});
    Api::<AzureAppRegistration>::namespaced(h.client.clone(), &h.ns.name)
        .patch("shared", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let k1 = new_verified_key(&h, "shared", &[&k0]).await;
    // Channel a's person is quick, b's is late.
    person_enters_the_secret(&h, "a", "shared-azure", &probe_a).await;
    wait_acknowledged(&h, "shared", "a", &k1).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(app_keys(&h).contains(&k0), "b's Connect still uses {k0}");
    let status = registration(&h, "shared").await.status.unwrap();
    let rotating = status.conditions.iter().find(|c| c.type_ == app_cond::ROTATING).unwrap();
    assert!(
        rotating.message.contains("EmailChannel b") && !rotating.message.contains("EmailChannel a"),
        "{}",
        rotating.message
    );

    person_enters_the_secret(&h, "b", "shared-azure", &probe_b).await;
    eventually(Duration::from_secs(30), || async {
        let keys = app_keys(&h);
        if keys == vec![k1.clone()] { Ok(()) } else { Err(format!("{keys:?}")) }
    })
    .await;
    let (attempts_a, failures_a) = probe_a.finish().await;
    let (attempts_b, failures_b) = probe_b.finish().await;
    println!("probes: {attempts_a} and {attempts_b} authentications");
    assert!(failures_a.is_empty() && failures_b.is_empty(), "{failures_a:?} {failures_b:?}");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_the_token_endpoint_keeps_rejecting_is_replaced_a_bounded_number_of_times() {
    let mut h = Harness::without_operator("cons-rejected").await;
    // Rejections count as final after 2 s instead of 10 minutes.
    h.settings = Some(Settings {
        resync: Duration::from_secs(2),
        channel_resync: Duration::from_secs(2),
        propagation_poll: Duration::from_millis(300),
        propagation_window: Duration::from_secs(2),
        ..Settings::default()
    });
    let client = h.client.clone();
    h.start_operator(client);
    apply_registration(
        &h,
        &json!({
            "apiVersion": "connectemail.dev/v1alpha1", "kind": "AzureAppRegistration",
            "metadata": {"name": "stubborn"},
            "spec": {
                "tenantRef": {"name": TENANT_REF},
                "displayName": "Webex Connect stubborn",
                "redirectUris": [CALLBACK],
                "permissions": [{"resource": "Office 365 Exchange Online", "delegated": ["SMTP.Send"]}],
                "clientSecret": {"secretName": "stubborn-azure", "revokeAfter": "0s"}
            }
        }),
    )
    .await;
    let k0 = new_verified_key(&h, "stubborn", &[]).await;
    let before = secret_data(&h, "stubborn-azure").await;
    let k0_text = data(&before, "client-secret").unwrap();
    // From now on no new secret reaches the token endpoint (AADSTS7000215 for each).
    h.sim.faults().set_password_propagation(Duration::from_secs(3600));
    let patch = json!({"metadata": {"annotations": {"connectemail.dev/rotate": "1"}}});
    Api::<AzureAppRegistration>::namespaced(h.client.clone(), &h.ns.name)
        .patch("stubborn", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let blocked = eventually(Duration::from_secs(60), || async {
        let r = registration(&h, "stubborn").await;
        let c = r.status.unwrap().conditions.into_iter().find(|c| c.type_ == app_cond::CREDENTIAL_READY);
        match c {
            Some(c) if c.reason == reason::SECRET_REJECTED => Ok(c.message),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(blocked.contains("rejected 3 new client secrets in a row"), "{blocked}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The forced key and two replacements; then nothing more. Each rejected key went at once;
    // the last working one stayed, in Entra ID and in the Secret.
    assert_eq!(h.sim.count(routes::ADD_PASSWORD), 4, "initial + 3");
    let keys = app_keys(&h);
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&k0));
    let s = secret_data(&h, "stubborn-azure").await;
    assert_eq!(data(&s, "previous-client-secret").as_deref(), Some(k0_text.as_str()));
    let events: Vec<String> = Api::<K8sEvent>::namespaced(h.client.clone(), &h.ns.name)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(events.iter().any(|r| r == reason::SECRET_REJECTED), "{events:?}");

    // Replication catches up: the last key is verified and the old one goes.
    h.sim.faults().set_password_propagation(Duration::ZERO);
    let k3 = new_verified_key(&h, "stubborn", &[&k0]).await;
    eventually(Duration::from_secs(30), || async {
        let keys = app_keys(&h);
        if keys == vec![k3.clone()] { Ok(()) } else { Err(format!("{keys:?}")) }
    })
    .await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_manifests_in_a_rebuilt_cluster_find_the_same_application_and_keep_connects_key() {
    let mut h = Harness::start("cons-rebuilt").await;
    mailboxes(&h, &["support@contoso.com"]);
    let azure = json!({"tenantRef": {"name": TENANT_REF}, "clientSecret": {"secretName": "support-azure", "revokeAfter": "0s"}});
    let manifest = manual_channel("support", "support@contoso.com", azure);
    apply_channel(&h, &manifest).await;
    let k0 = new_verified_key(&h, "support", &[]).await;
    let s = secret_data(&h, "support-azure").await;
    let probe = Probe::start(&h, data(&s, "client-id").unwrap(), data(&s, "token-url").unwrap(), String::new());
    person_enters_the_secret(&h, "support", "support-azure", &probe).await;
    wait_acknowledged(&h, "support", "support", &k0).await;
    let app_id = registration(&h, "support").await.status.unwrap().app_id.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    probe.failures.lock().unwrap().clear();

    // The cluster is lost: its objects vanish and nothing is cleaned up in Entra ID.
    h.stop_operator().await;
    let channels: Api<EmailChannel> = Api::namespaced(h.client.clone(), &h.ns.name);
    let registrations: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    let no_finalizers = json!({"metadata": {"finalizers": null}});
    channels.patch("support", &PatchParams::default(), &Patch::Merge(&no_finalizers)).await.unwrap();
    registrations.patch("support", &PatchParams::default(), &Patch::Merge(&no_finalizers)).await.unwrap();
    channels.delete("support", &DeleteParams::default()).await.unwrap();
    let _ = registrations.delete("support", &DeleteParams::default()).await;
    let _ =
        Api::<Secret>::namespaced(h.client.clone(), &h.ns.name).delete("support-azure", &DeleteParams::default()).await;
    eventually(Duration::from_secs(30), || async {
        let left = channels.get_opt("support").await.unwrap().is_some()
            || registrations.get_opt("support").await.unwrap().is_some();
        if left { Err("objects left".to_string()) } else { Ok(()) }
    })
    .await;

    // A new cluster, the same manifests (from Git: none of the annotations people or the operator
    // added later).
    let client = h.client.clone();
    h.start_operator(client);
    apply_channel(&h, &manifest).await;
    let k1 = new_verified_key(&h, "support", &[&k0]).await;
    let apps = h.sim.applications(TENANT);
    assert_eq!(apps.len(), 1, "no second application");
    assert_eq!(apps[0].app_id, app_id, "the same application");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(app_keys(&h).contains(&k0), "Connect's key stays until Connect holds the new one");

    assert_eq!(person_enters_the_secret(&h, "support", "support-azure", &probe).await, k1);
    eventually(Duration::from_secs(30), || async {
        let keys = app_keys(&h);
        if keys == vec![k1.clone()] { Ok(()) } else { Err(format!("{keys:?}")) }
    })
    .await;
    let (attempts, failures) = probe.finish().await;
    println!("probe: {attempts} authentications");
    assert!(failures.is_empty(), "{failures:?}");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_secret_or_a_status_that_disagrees_never_cuts_off_connect_in_api_mode() {
    let h = Harness::start("cons-api-edit").await;
    mailboxes(&h, &["sales@contoso.com"]);
    h.sim.faults().set_password_propagation(Duration::from_millis(1500));
    let (k0, asset_id) = api_channel(&h, "sales").await;
    let probe = Probe::for_asset(&h, &asset_id);
    // 1. The Secret's client secret is pasted over by hand: the pasted text never reaches Connect.
    let patch = json!({"stringData": {"client-secret": "pasted-over-by-hand"}});
    Api::<Secret>::namespaced(h.client.clone(), &h.ns.name)
        .patch("sales-azure", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let k1 = settle_following_connect(&h, &probe, &asset_id, "sales", &[&k0]).await;
    assert_ne!(h.connect.asset(&asset_id).unwrap().oauth.client_secret, "pasted-over-by-hand");

    // 2. Status and Secret disagree (status names a key the Secret does not hold).
    let status_patch = json!({"status": {"credential": {"keyId": "00000000-0000-0000-0000-000000000000"}}});
    Api::<AzureAppRegistration>::namespaced(h.client.clone(), &h.ns.name)
        .patch_status("sales", &PatchParams::default(), &Patch::Merge(&status_patch))
        .await
        .unwrap();
    let k2 = settle_following_connect(&h, &probe, &asset_id, "sales", &[&k0, &k1]).await;
    wait_acknowledged(&h, "sales", "sales", &k2).await;
    probe.switch(h.connect.asset(&asset_id).unwrap().oauth.client_secret);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (attempts, failures) = probe.finish().await;
    println!("probe: {attempts} authentications, {} failures", failures.len());
    assert!(failures.is_empty(), "{failures:?}");
    h.finish().await;
}
