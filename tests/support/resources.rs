//! The test's resources in its namespace: server-side apply of a manifest written as JSON, the
//! conditions of AzureAppRegistrations and EmailChannels and waiting for one of them, and the
//! things an EmailChannel test prepares (mailboxes, the Webex Connect token Secret).
//!
//! Condition types and reasons are the constants of `connect_email_operator::api::conditions`.

use std::time::Duration;

use connect_email_operator::api::conditions::app_registration;
use connect_email_operator::api::{AzureAppRegistration, EmailChannel};
use connect_email_sim::AutoForwardingMode;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::operator::{CONNECT_TOKEN, Harness, TENANT, TENANT_REF};
use super::{FIELD_MANAGER, eventually};

/// How long the waiters below wait for a condition.
pub const CONDITION_TIMEOUT: Duration = Duration::from_secs(90);

/// A namespaced kind the helpers here can read and apply.
pub trait Namespaced:
    kube::Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug
{
}

impl<K> Namespaced for K where
    K: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug
{
}

/// The kinds with `status.conditions`.
pub trait HasConditions {
    fn conditions(&self) -> &[Condition];

    /// The condition of type `type_`, if set.
    fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions().iter().find(|c| c.type_ == type_)
    }
}

impl HasConditions for AzureAppRegistration {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default()
    }
}

impl HasConditions for EmailChannel {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default()
    }
}

/// Whether condition `type_` is among `conditions` with status True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

/// Server-side apply (forced, as [`FIELD_MANAGER`]) of `object` in the test's namespace; returns
/// the object as the apiserver stored it.
pub async fn apply<K: Namespaced>(h: &Harness, object: &Value) -> K {
    let name = object["metadata"]["name"].as_str().expect("metadata.name");
    Api::<K>::namespaced(h.client.clone(), &h.ns.name)
        .patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(object))
        .await
        .unwrap_or_else(|e| panic!("apply {name}: {e}"))
}

pub async fn apply_registration(h: &Harness, object: &Value) -> AzureAppRegistration {
    apply(h, object).await
}

pub async fn apply_channel(h: &Harness, object: &Value) -> EmailChannel {
    apply(h, object).await
}

/// Waits (up to [`CONDITION_TIMEOUT`]) until condition `type_` of resource `name` is set and
/// `accept`ed; returns the resource and the condition.
pub async fn wait_for_condition<K>(
    h: &Harness,
    name: &str,
    type_: &str,
    accept: impl Fn(&Condition) -> bool,
) -> (K, Condition)
where
    K: Namespaced + HasConditions,
{
    let api: Api<K> = Api::namespaced(h.client.clone(), &h.ns.name);
    eventually(CONDITION_TIMEOUT, || {
        let api = api.clone();
        let accept = &accept;
        async move {
            let object = api.get(name).await.map_err(|e| e.to_string())?;
            match object.condition(type_) {
                Some(c) if accept(c) => {
                    let c = c.clone();
                    Ok((object, c))
                }
                other => Err(format!("{type_} is {other:?}; all: {:?}", object.conditions())),
            }
        }
    })
    .await
}

/// Waits until condition `type_` of registration `name` has `status`; returns the registration.
pub async fn registration_condition(h: &Harness, name: &str, type_: &str, status: &str) -> AzureAppRegistration {
    wait_for_condition(h, name, type_, |c| c.status == status).await.0
}

/// Waits until condition `type_` of channel `name` has `status`; returns the channel.
pub async fn channel_condition(h: &Harness, name: &str, type_: &str, status: &str) -> EmailChannel {
    wait_for_condition(h, name, type_, |c| c.status == status).await.0
}

/// Waits until condition `type_` of registration `name` has `status` and `reason`; returns its message.
pub async fn registration_reason(h: &Harness, name: &str, type_: &str, status: &str, reason: &str) -> String {
    let accept = |c: &Condition| c.status == status && c.reason == reason;
    wait_for_condition::<AzureAppRegistration>(h, name, type_, accept).await.1.message
}

/// Waits until condition `type_` of channel `name` has `status` and `reason`; returns its message.
pub async fn channel_reason(h: &Harness, name: &str, type_: &str, status: &str, reason: &str) -> String {
    let accept = |c: &Condition| c.status == status && c.reason == reason;
    wait_for_condition::<EmailChannel>(h, name, type_, accept).await.1.message
}

/// The verified current key ID of registration `name`, once it exists and has one.
pub async fn verified_key(h: &Harness, name: &str) -> Option<String> {
    let r = Api::<AzureAppRegistration>::namespaced(h.client.clone(), &h.ns.name).get_opt(name).await.ok()??;
    r.status?.credential.filter(|c| c.verified_at.is_some()).map(|c| c.key_id)
}

/// Waits until registration `name` is Ready with a current key other than `not_key` (when given)
/// and no rotation half done (no previous credential, no pending rotation); returns it.
pub async fn registration_settled(
    h: &Harness,
    name: &str,
    not_key: Option<&str>,
    timeout: Duration,
) -> AzureAppRegistration {
    let api: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    eventually(timeout, || {
        let api = api.clone();
        async move {
            let o = api.get(name).await.map_err(|e| e.to_string())?;
            let s = o.status.clone().unwrap_or_default();
            let ready = is_true(&s.conditions, app_registration::READY);
            let key = s.credential.as_ref().map(|c| c.key_id.as_str());
            let rotated = not_key.is_none() || (key.is_some() && key != not_key);
            let settled = s.previous_credentials.is_empty() && s.pending_rotation.is_none();
            if ready && rotated && settled { Ok(o) } else { Err(format!("{s:?}")) }
        }
    })
    .await
}

/// An AzureAppRegistration `name` asking for SMTP.Send only, its secret in Secret
/// `<name>-credentials` (720h, revoked at once when replaced).
pub fn smtp_registration(name: &str, display_name: &str) -> Value {
    json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "AzureAppRegistration",
        "metadata": {"name": name},
        "spec": {
            "tenantRef": {"name": TENANT_REF},
            "displayName": display_name,
            "redirectUris": ["https://acme.us.webexconnect.io/callback"],
            "permissions": [{"resource": "Office 365 Exchange Online", "delegated": ["SMTP.Send"]}],
            "clientSecret": {"secretName": format!("{name}-credentials"), "duration": "720h", "revokeAfter": "0s"}
        }
    })
}

/// Adds the mailboxes to the simulated tenant and lets its Default outbound policy allow
/// forwarding.
pub fn mailboxes(h: &Harness, names: &[&str]) {
    for m in names {
        h.sim.exchange().add_mailbox(TENANT, m);
    }
    h.sim.exchange().set_outbound_policy_mode(TENANT, "Default", AutoForwardingMode::On);
}

/// Creates Secret `webex-connect-api` holding the Connect access token ([`CONNECT_TOKEN`]), the
/// `credentialsSecretRef` of the tests' Api-mode channels.
pub async fn connect_token_secret(h: &Harness) {
    let token: Secret = serde_json::from_value(json!({
        "metadata": {"name": "webex-connect-api"}, "stringData": {"token": CONNECT_TOKEN}
    }))
    .unwrap();
    Api::<Secret>::namespaced(h.client.clone(), &h.ns.name).create(&PostParams::default(), &token).await.unwrap();
}

/// The text under `key` in a Secret's data.
pub fn secret_data(secret: &Secret, key: &str) -> Option<String> {
    secret.data.as_ref()?.get(key).map(|v| String::from_utf8(v.0.clone()).unwrap())
}

/// A Webex Connect host name of exactly `len` characters (labels of at most 63), ending in
/// `.us.webexconnect.io` (the test EntraTenant lists the 239-character one, the schema's longest).
pub fn long_host(len: usize) -> String {
    let suffix = ".us.webexconnect.io";
    let mut labels = Vec::new();
    let mut left = len - suffix.len();
    while left > 0 {
        // Each label but the first costs a dot.
        let room = if labels.is_empty() { left } else { left - 1 };
        let take = room.min(63);
        let take = if room - take == 1 { take - 1 } else { take };
        labels.push("a".repeat(take));
        left -= take + usize::from(labels.len() > 1);
    }
    let host = format!("{}{suffix}", labels.join("."));
    assert_eq!(host.len(), len);
    host
}
