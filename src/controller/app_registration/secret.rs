//! The Kubernetes Secret that carries the client credentials: reading what it holds and building
//! the object to apply. Pure.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Resource;
use kube::api::ObjectMeta;
use secrecy::{ExposeSecret, SecretString};

use crate::api::AzureAppRegistration;

pub const KEY_CLIENT_ID: &str = "client-id";
pub const KEY_CLIENT_SECRET: &str = "client-secret";
pub const KEY_TENANT_ID: &str = "tenant-id";
pub const KEY_AUTHORITY: &str = "authority";
pub const KEY_TOKEN_URL: &str = "token-url";
/// The previous secret, kept readable until it is revoked so consumers can switch without downtime.
pub const KEY_PREVIOUS_CLIENT_SECRET: &str = "previous-client-secret";

pub const ANNOTATION_KEY_ID: &str = "connectemail.dev/key-id";
pub const ANNOTATION_NOT_AFTER: &str = "connectemail.dev/not-after";
pub const ANNOTATION_PREVIOUS_KEY_ID: &str = "connectemail.dev/previous-key-id";
/// A short SHA-256 fingerprint of `client-secret` (not the secret): detects a Secret edited by hand.
pub const ANNOTATION_FINGERPRINT: &str = "connectemail.dev/secret-fingerprint";

/// First 16 hex digits of SHA-256(secret).
pub fn fingerprint(secret: &SecretString) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret.expose_secret().as_bytes());
    digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}
/// Label on every Secret the operator writes (lets it watch only those).
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "connect-email-operator";

/// Whether `secret` was written for the resource with this UID (its owner reference): the only
/// Secrets the operator writes to. A Secret someone else created is never merged into or adopted.
pub fn owned_by(secret: &Secret, uid: &str) -> bool {
    secret.metadata.owner_references.iter().flatten().any(|o| o.uid == uid)
}

/// What the Secret currently holds.
#[derive(Default)]
pub struct ObservedSecret {
    pub exists: bool,
    pub key_id: Option<String>,
    pub secret: Option<SecretString>,
    pub previous_key_id: Option<String>,
    pub previous_secret: Option<SecretString>,
}

impl ObservedSecret {
    /// The key IDs it holds, for planning (the texts stay here).
    pub fn keys(&self) -> super::credential::StoredKeys {
        super::credential::StoredKeys {
            key_id: self.key_id.clone(),
            holds_secret: self.secret.is_some(),
            previous_key_id: self.previous_key_id.clone(),
            holds_previous: self.previous_secret.is_some(),
        }
    }
}

fn text(data: &BTreeMap<String, ByteString>, key: &str) -> Option<SecretString> {
    let value = data.get(key)?;
    let s = String::from_utf8(value.0.clone()).ok()?;
    (!s.is_empty()).then(|| s.into())
}

pub fn observe(secret: Option<&Secret>) -> ObservedSecret {
    let Some(secret) = secret else {
        return ObservedSecret::default();
    };
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    // A client secret that no longer matches its fingerprint was edited: treat it as missing.
    let secret = text(data, KEY_CLIENT_SECRET)
        .filter(|s| annotations.get(ANNOTATION_FINGERPRINT).is_none_or(|f| *f == fingerprint(s)));
    ObservedSecret {
        exists: true,
        key_id: annotations.get(ANNOTATION_KEY_ID).cloned(),
        secret,
        previous_key_id: annotations.get(ANNOTATION_PREVIOUS_KEY_ID).cloned(),
        previous_secret: text(data, KEY_PREVIOUS_CLIENT_SECRET),
    }
}

/// Everything the Secret should hold.
pub struct Contents<'a> {
    pub client_id: &'a str,
    pub tenant_id: &'a str,
    pub authority: String,
    pub token_url: String,
    pub key_id: &'a str,
    pub secret: &'a SecretString,
    pub not_after: jiff::Timestamp,
    pub previous: Option<(&'a str, &'a SecretString)>,
}

/// The Secret to server-side apply: owned by the resource (garbage-collected with it), labelled
/// and annotated from `secretTemplate`. Omitting `previous-client-secret` removes it.
pub fn build(owner: &AzureAppRegistration, contents: &Contents<'_>) -> Secret {
    let spec = &owner.spec.client_secret;
    let template = spec.secret_template.clone().unwrap_or_default();
    let mut labels = template.labels;
    labels.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
    let mut annotations = template.annotations;
    annotations.insert(ANNOTATION_KEY_ID.into(), contents.key_id.into());
    annotations.insert(ANNOTATION_NOT_AFTER.into(), contents.not_after.to_string());
    annotations.insert(ANNOTATION_FINGERPRINT.into(), fingerprint(contents.secret));
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    let mut data = BTreeMap::from([
        (KEY_CLIENT_ID.to_string(), bytes(contents.client_id)),
        (KEY_CLIENT_SECRET.to_string(), bytes(contents.secret.expose_secret())),
        (KEY_TENANT_ID.to_string(), bytes(contents.tenant_id)),
        (KEY_AUTHORITY.to_string(), bytes(&contents.authority)),
        (KEY_TOKEN_URL.to_string(), bytes(&contents.token_url)),
    ]);
    if let Some((key_id, secret)) = contents.previous {
        annotations.insert(ANNOTATION_PREVIOUS_KEY_ID.into(), key_id.into());
        data.insert(KEY_PREVIOUS_CLIENT_SECRET.into(), bytes(secret.expose_secret()));
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(spec.secret_name.clone()),
            namespace: owner.meta().namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: owner.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edited_client_secret_reads_as_missing() {
        let owner: AzureAppRegistration = serde_json::from_value(serde_json::json!({
            "apiVersion": "connectemail.dev/v1alpha1", "kind": "AzureAppRegistration",
            "metadata": {"name": "a", "namespace": "n", "uid": "u1"},
            "spec": {"tenantRef": {"name": "t"}, "displayName": "A",
                     "clientSecret": {"secretName": "a-credentials"}}
        }))
        .unwrap();
        let secret: SecretString = "s3cr3t~value".to_string().into();
        let built = build(
            &owner,
            &Contents {
                client_id: "app",
                tenant_id: "t",
                authority: "https://login/t".into(),
                token_url: "https://login/t/oauth2/v2.0/token".into(),
                key_id: "k1",
                secret: &secret,
                not_after: "2027-01-01T00:00:00Z".parse().unwrap(),
                previous: None,
            },
        );
        assert!(observe(Some(&built)).secret.is_some());
        let fp = &built.metadata.annotations.as_ref().unwrap()[ANNOTATION_FINGERPRINT];
        assert!(!fp.contains("s3cr3t") && fp.len() == 16);
        let mut edited = built.clone();
        edited.data.as_mut().unwrap().insert(KEY_CLIENT_SECRET.into(), ByteString(b"pasted-by-hand".to_vec()));
        let observed = observe(Some(&edited));
        assert!(observed.secret.is_none());
        assert_eq!(observed.key_id.as_deref(), Some("k1"));
    }
}
