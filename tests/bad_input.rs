//! Bad input: references to things that do not exist get a condition that says what to fix;
//! references to other namespaces cannot be written at all; fields at their maximum size are
//! accepted and reconciled, one past it is rejected at admission with a clear message.

mod support;

use std::time::Duration;

use connect_email_operator::api::conditions::{app_registration as app_cond, email_channel as ch_cond, reason};
use connect_email_operator::api::{AzureAppRegistration, EmailChannel};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::operator::{CONNECT_ORG, CONNECT_TOKEN, Harness, TENANT, TENANT_REF};
use support::resources::{long_host, mailboxes, registration_condition, wait_for_condition};
use support::*;

fn api_channel(name: &str, mailbox: &str, credentials: &str) -> Value {
    json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel",
        "metadata": {"name": name},
        "spec": {
            "mailbox": mailbox,
            "azure": {"tenantRef": {"name": TENANT_REF}},
            "connect": {"mode": "Api", "region": "us", "tenantHost": "acme.us.webexconnect.io", "assetName": "Bad input",
                        "organizationId": CONNECT_ORG, "credentialsSecretRef": {"name": credentials}}
        }
    })
}

fn manual_channel(name: &str, mailbox: &str, tenant_host: &str, asset_name: &str) -> Value {
    json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel",
        "metadata": {"name": name},
        "spec": {
            "mailbox": mailbox,
            "azure": {"tenantRef": {"name": TENANT_REF}},
            "connect": {"mode": "Manual", "region": "us", "tenantHost": tenant_host, "assetName": asset_name,
                        "forwardingAddress": "4f1c2a9b7e@mail-us.imiconnect.io"}
        }
    })
}

fn registration(name: &str, redirect_uris: Vec<String>) -> Value {
    json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "AzureAppRegistration",
        "metadata": {"name": name},
        "spec": {
            "tenantRef": {"name": TENANT_REF},
            "displayName": "R".repeat(120),
            "redirectUris": redirect_uris,
            "permissions": [{"resource": "Office 365 Exchange Online", "delegated": ["SMTP.Send"]}],
            "clientSecret": {"secretName": format!("{name}-credentials")}
        }
    })
}

/// `https://<host>/cb-<i>-…`, exactly `len` characters long.
fn redirect_uri(i: usize, len: usize) -> String {
    let mut uri = format!("https://acme.us.webexconnect.io/cb-{i}-");
    let pad = len - uri.len();
    uri.push_str(&"x".repeat(pad));
    uri
}

/// A mailbox address of exactly `len` characters.
fn long_mailbox(len: usize) -> String {
    let domain = "@contoso.com";
    format!("{}{domain}", "m".repeat(len - domain.len()))
}

async fn apply<K>(h: &Harness, object: &Value) -> Result<K, kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(h.client.clone(), &h.ns.name);
    let name = object["metadata"]["name"].as_str().unwrap();
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force().validation_strict(), &Patch::Apply(object)).await
}

/// Waits for condition `type_` of channel `name` to have `status` and a message containing `text`.
async fn channel_condition(h: &Harness, name: &str, type_: &str, status: &str, text: &str) -> Condition {
    let accept = |c: &Condition| c.status == status && c.message.contains(text);
    wait_for_condition::<EmailChannel>(h, name, type_, accept).await.1
}

fn rejection(result: Result<impl std::fmt::Debug, kube::Error>) -> String {
    match result {
        Ok(o) => panic!("admitted: {o:?}"),
        Err(kube::Error::Api(e)) => e.message,
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test]
async fn a_missing_connect_credentials_secret_or_key_is_reported_with_the_fix() {
    let h = Harness::start("bad-creds").await;
    mailboxes(&h, &["creds@contoso.com"]);
    apply::<EmailChannel>(&h, &api_channel("creds", "creds@contoso.com", "webex-token")).await.unwrap();
    let ns = &h.ns.name;

    let c = channel_condition(&h, "creds", ch_cond::CONNECT_ASSET_SYNCED, "False", "does not exist").await;
    assert_eq!(c.reason, reason::INVALID_SPEC);
    assert_eq!(
        c.message,
        format!(
            "Secret {ns}/webex-token (connect.credentialsSecretRef) does not exist: create it with the Webex access token under key token, or fix connect.credentialsSecretRef"
        )
    );
    // Ready names the failing condition, so `kubectl get` users see it too.
    let ready = channel_condition(&h, "creds", ch_cond::READY, "False", ch_cond::CONNECT_ASSET_SYNCED).await;
    assert!(ready.message.contains("webex-token"), "{}", ready.message);

    // The Secret, but the token under another key.
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), ns);
    let wrong_key: Secret = serde_json::from_value(json!({
        "metadata": {"name": "webex-token"}, "stringData": {"access-token": CONNECT_TOKEN}
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &wrong_key).await.unwrap();
    let c = channel_condition(&h, "creds", ch_cond::CONNECT_ASSET_SYNCED, "False", "has no non-empty key token").await;
    assert!(c.message.contains("fix connect.credentialsSecretRef"), "{}", c.message);

    // Fixed: the asset gets created.
    let patch = json!({"stringData": {"token": CONNECT_TOKEN}});
    secrets.patch("webex-token", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    channel_condition(&h, "creds", ch_cond::CONNECT_ASSET_SYNCED, "True", "holds client secret").await;
    h.finish().await;
}

#[tokio::test]
async fn a_reference_to_a_missing_app_registration_is_reported_with_the_fix() {
    // Resyncs of an hour: what happens within the test is driven by watches alone.
    let settings = connect_email_operator::controller::Settings {
        resync: Duration::from_secs(3600),
        channel_resync: Duration::from_secs(3600),
        propagation_poll: Duration::from_millis(300),
        ..Default::default()
    };
    let options = connect_email_sim::SimOptions::default().tenant(TENANT);
    let h = Harness::start_with_settings("bad-ref", options, settings).await;
    let mut object = manual_channel("byref", "ref@contoso.com", "acme.us.webexconnect.io", "Ref");
    object["spec"]["azure"] = json!({"appRegistrationRef": {"name": "shared-app"}});
    apply::<EmailChannel>(&h, &object).await.unwrap();
    let c = channel_condition(&h, "byref", ch_cond::APP_REGISTRATION_READY, "False", "does not exist").await;
    assert_eq!(
        c.message,
        format!(
            "AzureAppRegistration shared-app does not exist in namespace {}: create it, or fix azure.appRegistrationRef",
            h.ns.name
        )
    );
    // Creating it is noticed through the registration watch (a channel waiting only on its
    // registration is not polled, and the resync is an hour away).
    let shared = registration("shared-app", vec!["https://acme.us.webexconnect.io/callback".into()]);
    apply::<AzureAppRegistration>(&h, &shared).await.unwrap();
    channel_condition(&h, "byref", ch_cond::APP_REGISTRATION_READY, "True", "shared-app: application").await;
    h.finish().await;
}

/// Every reference is namespace-local by schema: a `namespace` field is not part of it, and a
/// strict apply (kubectl's default) is refused instead of silently dropping it.
#[tokio::test]
async fn references_to_other_namespaces_cannot_be_written() {
    let h = Harness::without_operator("bad-xns").await;
    let mut secret_elsewhere = api_channel("xns", "x@contoso.com", "webex-token");
    secret_elsewhere["spec"]["connect"]["credentialsSecretRef"]["namespace"] = json!("kube-system");
    let message = rejection(apply::<EmailChannel>(&h, &secret_elsewhere).await);
    assert!(
        message.contains(".spec.connect.credentialsSecretRef.namespace: field not declared in schema"),
        "{message}"
    );

    let mut registration_elsewhere = manual_channel("xns2", "x@contoso.com", "acme.us.webexconnect.io", "X");
    registration_elsewhere["spec"]["azure"] = json!({"appRegistrationRef": {"name": "a", "namespace": "other"}});
    let message = rejection(apply::<EmailChannel>(&h, &registration_elsewhere).await);
    assert!(message.contains(".spec.azure.appRegistrationRef.namespace: field not declared in schema"), "{message}");
    h.ns.delete().await;
}

#[tokio::test]
async fn redirect_uris_at_the_limit_pass_the_schema_and_only_connect_callbacks_are_admitted() {
    let h = Harness::start("bad-uris").await;
    // 256 URIs of 256 characters each: the most the schema (and Entra ID) allows. They are not
    // Webex Connect callbacks, so the EntraTenant refuses them and nothing reaches Entra ID.
    let uris: Vec<String> = (0..256).map(|i| redirect_uri(i, 256)).collect();
    apply::<AzureAppRegistration>(&h, &registration("biggest", uris.clone())).await.expect("the schema admits it");
    let refused = registration_condition(&h, "biggest", app_cond::ADMITTED, "False").await;
    let admitted = refused.status.unwrap().conditions.into_iter().find(|c| c.type_ == app_cond::ADMITTED).unwrap();
    assert_eq!(admitted.reason, reason::NOT_ADMITTED);
    assert!(admitted.message.contains("is not a Webex Connect callback"), "{}", admitted.message);
    assert!(h.sim.applications(TENANT).is_empty(), "nothing was created");
    // The longest callback the schema allows (a 239-character Connect host) is reconciled.
    let host = long_host(239);
    let callback = format!("https://{host}/callback");
    assert_eq!(callback.len(), 256);
    let mut longest = registration("longest-uri", vec![callback.clone()]);
    longest["spec"]["displayName"] = json!("R".repeat(120));
    apply::<AzureAppRegistration>(&h, &longest).await.expect("admitted");
    registration_condition(&h, "longest-uri", app_cond::READY, "True").await;
    let app = h.sim.applications(TENANT).remove(0);
    assert_eq!(app.redirect_uris, vec![callback]);
    assert_eq!(app.display_name.len(), 120);

    let too_many: Vec<String> = (0..257).map(|i| redirect_uri(i, 40)).collect();
    let message = rejection(apply::<AzureAppRegistration>(&h, &registration("too-many", too_many)).await);
    assert!(message.contains("spec.redirectUris: Too many: 257: must have at most 256 items"), "{message}");

    let message =
        rejection(apply::<AzureAppRegistration>(&h, &registration("too-long", vec![redirect_uri(0, 257)])).await);
    assert!(message.contains("spec.redirectUris[0]: Too long: may not be more than 256 bytes"), "{message}");

    let mut long_name = registration("long-name", vec![redirect_uri(0, 40)]);
    long_name["spec"]["displayName"] = json!("R".repeat(121));
    let message = rejection(apply::<AzureAppRegistration>(&h, &long_name).await);
    assert!(message.contains("spec.displayName: Too long: may not be more than 120 bytes"), "{message}");
    h.finish().await;
}

#[tokio::test]
async fn channel_fields_at_their_maximum_are_reconciled_and_past_it_are_refused() {
    let h = Harness::start("bad-long").await;
    let (mailbox, host, asset) = (long_mailbox(254), long_host(239), "A".repeat(100));
    mailboxes(&h, &[&mailbox]);
    apply::<EmailChannel>(&h, &manual_channel("longest", &mailbox, &host, &asset)).await.expect("admitted");
    // The child registration fits its own bounds (displayName cut to 120, callback URL of 256).
    channel_condition(&h, "longest", ch_cond::APP_REGISTRATION_READY, "True", "").await;
    channel_condition(&h, "longest", ch_cond::MAILBOX_CONFIGURED, "True", "").await;
    let app = h.sim.applications(TENANT).remove(0);
    assert_eq!(app.redirect_uris, vec![format!("https://{host}/callback")]);
    assert_eq!(app.redirect_uris[0].len(), 256);
    assert_eq!(app.display_name.chars().count(), 120);
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns.name);
    assert!(secrets.get("longest-azure").await.is_ok());

    let cases = [
        (
            manual_channel("m", &long_mailbox(255), "acme.us.webexconnect.io", "A"),
            "spec.mailbox: Too long: may not be more than 254 bytes",
        ),
        (
            manual_channel("t", "a@contoso.com", &long_host(240), "A"),
            "spec.connect.tenantHost: Too long: may not be more than 239 bytes",
        ),
        (
            manual_channel("a", "a@contoso.com", "acme.us.webexconnect.io", &"A".repeat(101)),
            "spec.connect.assetName: Too long: may not be more than 100 bytes",
        ),
    ];
    for (object, expected) in cases {
        let message = rejection(apply::<EmailChannel>(&h, &object).await);
        assert!(message.contains(expected), "{message}");
    }
    h.finish().await;
}
