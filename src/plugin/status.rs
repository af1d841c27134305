//! `kubectl connectemail status` (alias `trace`): what the operator reports about a channel or a
//! registration, as one tree, with the key IDs in use, who has not acknowledged the current key,
//! and the next step a person must take.
//!
//! Reads: the EmailChannel, its AzureAppRegistration, the channels of the namespace (the
//! registration's consumers) and the Secret's **metadata** (`get` with the metadata-only
//! representation: the Secret's data never reaches the plugin). [`gather`] reads, [`build`] and
//! [`render`] are pure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde::Serialize;

use super::{Failure, Kind, Target};
use crate::api::conditions::{app_registration as reg_cond, email_channel as ch_cond, reason};
use crate::api::email_channel::ConnectMode;
use crate::api::{ANNOTATION_CONNECT_SECRET_APPLIED, ANNOTATION_PAUSED, AzureAppRegistration, EmailChannel};
use crate::controller::app_registration::reconcile::consumers;
use crate::controller::app_registration::secret::{
    ANNOTATION_KEY_ID, ANNOTATION_NOT_AFTER, ANNOTATION_PREVIOUS_KEY_ID,
};

/// What `status` prints (`-o json` / `-o yaml` serialize this).
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Every node of the tree is Ready.
    pub ready: bool,
    pub tree: Node,
    /// The registration's keys (IDs only), its consumers and their acknowledgements.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialView>,
    /// What a person must do next (empty: nothing).
    pub next_steps: Vec<String>,
}

/// One object in the tree.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// EmailChannel, AzureAppRegistration, Secret, EntraApplication, Mailbox or ConnectAsset.
    pub kind: String,
    pub name: String,
    pub state: State,
    /// One line for the tree.
    pub summary: String,
    /// Everything known about it (wide output).
    pub fields: BTreeMap<String, String>,
    pub conditions: Vec<ConditionView>,
    pub children: Vec<Node>,
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ready,
    NotReady,
    /// The operator has not reported on it (yet), or not on the latest spec.
    Pending,
    Paused,
    Missing,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::NotReady => "NotReady",
            Self::Pending => "Pending",
            Self::Paused => "Paused",
            Self::Missing => "Missing",
        }
    }
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
}

impl From<&Condition> for ConditionView {
    fn from(c: &Condition) -> Self {
        Self {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            last_transition_time: c.last_transition_time.0.to_string(),
        }
    }
}

#[derive(Serialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct CredentialView {
    pub registration: String,
    /// status.credential: the key the operator issued last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<KeyView>,
    /// What the Secret's annotations say it holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretKeys>,
    /// Earlier keys still valid, waiting to be revoked.
    pub previous_keys: Vec<PreviousKeyView>,
    /// Who must acknowledge a new key before the previous one is revoked.
    pub consumers: Vec<ConsumerView>,
    /// Consumers whose acknowledgement is not the current key.
    pub pending_acknowledgements: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_rotation: Option<String>,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    pub key_id: String,
    pub verified: bool,
    pub not_after: String,
    pub renewal_time: String,
    /// `not_after` relative to now, e.g. "in 179d 23h".
    pub expires: String,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeys {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PreviousKeyView {
    pub key_id: String,
    pub not_after: String,
    pub expires: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoke_at: Option<String>,
    /// Consumers whose acknowledgement still names this key.
    pub in_use_by: Vec<String>,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerView {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_key_id: Option<String>,
    /// Its acknowledgement names the current key.
    pub current: bool,
}

/// Everything `status` read.
pub struct Observed {
    pub namespace: String,
    pub channel: Option<EmailChannel>,
    /// The registration the channel uses (or the target).
    pub registration_name: String,
    pub registration: Option<AzureAppRegistration>,
    /// The Secret's metadata, `None` when it does not exist (or was not looked up).
    pub secret: Option<ObjectMeta>,
    /// The channels of the namespace (the registration's consumers are among them).
    pub channels: Vec<EmailChannel>,
}

/// The registration an EmailChannel uses: the one its status names, else its reference, else its child.
pub fn registration_of(channel: &EmailChannel) -> String {
    channel
        .status
        .as_ref()
        .and_then(|s| s.app_registration.clone())
        .or_else(|| channel.spec.azure.app_registration_ref.as_ref().map(|r| r.name.clone()))
        .unwrap_or_else(|| channel.name_any())
}

/// Reads what `target` needs and builds the report.
pub async fn gather(
    client: &kube::Client,
    namespace: &str,
    target: &Target,
    now: Timestamp,
) -> Result<Report, Failure> {
    let channels: Api<EmailChannel> = Api::namespaced(client.clone(), namespace);
    let registrations: Api<AzureAppRegistration> = Api::namespaced(client.clone(), namespace);
    let channel = match target.kind {
        Some(Kind::EmailChannel) | None => channels.get_opt(&target.name).await?,
        Some(Kind::AzureAppRegistration) => None,
    };
    let (registration_name, registration) = match &channel {
        Some(c) => {
            let name = registration_of(c);
            let registration = registrations.get_opt(&name).await?;
            (name, registration)
        }
        None if target.kind == Some(Kind::EmailChannel) => {
            return Err(Failure::NotFound(format!(
                "emailchannel {:?} not found in namespace {namespace}",
                target.name
            )));
        }
        None => match registrations.get_opt(&target.name).await? {
            Some(r) => (target.name.clone(), Some(r)),
            None => {
                return Err(Failure::NotFound(match target.kind {
                    Some(_) => format!("azureappregistration {:?} not found in namespace {namespace}", target.name),
                    None => format!(
                        "no EmailChannel or AzureAppRegistration named {:?} in namespace {namespace}",
                        target.name
                    ),
                }));
            }
        },
    };
    let mut secret = None;
    let mut all_channels = Vec::new();
    if let Some(r) = &registration {
        // Metadata only: the key IDs are annotations; the secret values are never fetched.
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        secret = secrets.get_metadata_opt(&r.spec.client_secret.secret_name).await?.map(|m| m.metadata);
        all_channels = channels.list(&ListParams::default()).await?.items;
    }
    let observed = Observed {
        namespace: namespace.to_string(),
        channel,
        registration_name,
        registration,
        secret,
        channels: all_channels,
    };
    Ok(build(&observed, now))
}

fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

fn is_false(conditions: &[Condition], type_: &str) -> bool {
    condition(conditions, type_).is_some_and(|c| c.status == "False")
}

fn views(conditions: &[Condition], types: &[&str]) -> Vec<ConditionView> {
    types.iter().filter_map(|t| condition(conditions, t)).map(ConditionView::from).collect()
}

fn paused(meta: &ObjectMeta) -> bool {
    meta.annotations.as_ref().and_then(|a| a.get(ANNOTATION_PAUSED)).is_some_and(|v| v == "true")
}

/// Ready-condition state of a channel or registration.
fn ready_state(meta: &ObjectMeta, conditions: Option<&[Condition]>, observed_generation: Option<i64>) -> State {
    let Some(ready) = conditions.and_then(|c| condition(c, "Ready")) else { return State::Pending };
    if ready.reason == reason::PAUSED {
        return State::Paused;
    }
    if let (Some(generation), Some(seen)) = (meta.generation, observed_generation)
        && seen < generation
    {
        return State::Pending;
    }
    if ready.status == "True" { State::Ready } else { State::NotReady }
}

/// State from conditions that should all be True (absent: not reported yet).
fn all_true(conditions: &[Condition], types: &[&str]) -> State {
    let present: Vec<&Condition> = types.iter().filter_map(|t| condition(conditions, t)).collect();
    if present.is_empty() {
        State::Pending
    } else if present.iter().any(|c| c.status != "True") {
        State::NotReady
    } else if present.len() < types.len() {
        State::Pending
    } else {
        State::Ready
    }
}

/// `t` relative to `now`: "in 3d 4h", "2h 5m ago".
pub fn relative(now: Timestamp, t: Timestamp) -> String {
    let d = t.duration_since(now);
    let secs = d.as_secs().unsigned_abs();
    let (days, hours, minutes) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    let span = if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m")
    } else {
        format!("{secs}s")
    };
    if d.is_negative() { format!("{span} ago") } else { format!("in {span}") }
}

fn annotation(meta: &ObjectMeta, key: &str) -> Option<String> {
    meta.annotations.as_ref()?.get(key).cloned()
}

/// Builds the report from what was read (pure).
pub fn build(o: &Observed, now: Timestamp) -> Report {
    let ns = &o.namespace;
    let registration_node = registration_node(o, now);
    let credential = o.registration.as_ref().map(|r| credential_view(o, r, now));
    let (kind, name, tree) = match &o.channel {
        Some(ch) => {
            let status = ch.status.clone().unwrap_or_default();
            let conds = &status.conditions;
            let spec = &ch.spec;
            let mode = match spec.connect.mode {
                ConnectMode::Manual => "Manual",
                ConnectMode::Api => "Api",
            };
            let mut fields = BTreeMap::new();
            fields.insert("mailbox".into(), spec.mailbox.clone());
            fields.insert("connectMode".into(), mode.into());
            fields.insert("appRegistration".into(), o.registration_name.clone());
            if let Some(g) = ch.metadata.generation {
                fields.insert("generation".into(), g.to_string());
            }
            if let Some(g) = status.observed_generation {
                fields.insert("observedGeneration".into(), g.to_string());
            }
            if paused(&ch.metadata) {
                fields.insert("paused".into(), "true".into());
            }
            if let Some(t) = &spec.azure.tenant_ref {
                fields.insert("entraTenant".into(), t.name.clone());
            }
            // The mailbox.
            let mut mailbox_fields = BTreeMap::new();
            mailbox_fields.insert("manage".into(), spec.exchange.manage.to_string());
            mailbox_fields.insert("smtpAuth".into(), spec.exchange.smtp_auth.to_string());
            mailbox_fields.insert("forwarding".into(), spec.exchange.forwarding.enabled.to_string());
            if let Some(a) = &status.forwarding_address {
                mailbox_fields.insert("forwardingAddress".into(), a.clone());
            }
            if let Some(m) = &status.mailbox {
                mailbox_fields.insert("tenantId".into(), m.tenant_id.clone());
                if let Some(f) = m.applied_forwarding.as_ref().and_then(|f| f.smtp_address.clone()) {
                    mailbox_fields.insert("appliedForwarding".into(), f);
                }
                if let Some(v) = m.applied_smtp_auth_disabled {
                    mailbox_fields.insert("appliedSmtpAuth".into(), format!("{v:?}").to_lowercase());
                }
            }
            let mailbox_types = [ch_cond::MAILBOX_CONFIGURED, ch_cond::OUTBOUND_FORWARDING_ALLOWED];
            let mailbox_summary = match &status.forwarding_address {
                Some(a) if spec.exchange.forwarding.enabled => format!("forwards to {a}"),
                _ if spec.exchange.forwarding.enabled => "forwarding address not known yet".into(),
                _ => "no forwarding".into(),
            };
            let mailbox = Node {
                kind: "Mailbox".into(),
                name: spec.mailbox.clone(),
                state: all_true(conds, &mailbox_types),
                summary: mailbox_summary,
                fields: mailbox_fields,
                conditions: views(conds, &mailbox_types),
                children: Vec::new(),
            };
            // The Connect asset.
            let connect = status.connect.clone().unwrap_or_default();
            let mut connect_fields = BTreeMap::new();
            connect_fields.insert("mode".into(), mode.into());
            connect_fields.insert("region".into(), spec.connect.region.as_str().into());
            connect_fields.insert("tenantHost".into(), spec.connect.tenant_host.clone());
            if let Some(v) = &connect.asset_id {
                connect_fields.insert("assetId".into(), v.clone());
            }
            if let Some(v) = &connect.applied_key_id {
                connect_fields.insert("appliedKeyId".into(), v.clone());
            }
            if let Some(v) = &status.callback_url {
                connect_fields.insert("callbackUrl".into(), v.clone());
            }
            if let Some(v) = &connect.authorize_url {
                connect_fields.insert("authorizeUrl".into(), v.clone());
            }
            let connect_types = [ch_cond::CONNECT_ASSET_SYNCED, ch_cond::CONNECT_AUTHORIZED];
            let mut connect_state = all_true(conds, &connect_types);
            if condition(conds, ch_cond::CONNECT_SECRET_OUTDATED).is_some_and(|c| c.status == "True") {
                connect_state = State::NotReady;
            }
            let connect_node = Node {
                kind: "ConnectAsset".into(),
                name: spec.connect.asset_name.clone(),
                state: connect_state,
                summary: format!(
                    "{mode} mode, holds key {}",
                    connect.applied_key_id.as_deref().unwrap_or("(none confirmed yet)")
                ),
                fields: connect_fields,
                conditions: views(
                    conds,
                    &[ch_cond::CONNECT_ASSET_SYNCED, ch_cond::CONNECT_AUTHORIZED, ch_cond::CONNECT_SECRET_OUTDATED],
                ),
                children: Vec::new(),
            };
            let own_types = [ch_cond::READY, ch_cond::ADMITTED, ch_cond::APP_REGISTRATION_READY];
            let mut own = views(conds, &own_types);
            // Any condition a newer operator adds is shown on the channel.
            let known = [
                ch_cond::READY,
                ch_cond::ADMITTED,
                ch_cond::APP_REGISTRATION_READY,
                ch_cond::MAILBOX_CONFIGURED,
                ch_cond::OUTBOUND_FORWARDING_ALLOWED,
                ch_cond::CONNECT_ASSET_SYNCED,
                ch_cond::CONNECT_AUTHORIZED,
                ch_cond::CONNECT_SECRET_OUTDATED,
            ];
            own.extend(conds.iter().filter(|c| !known.contains(&c.type_.as_str())).map(ConditionView::from));
            let node = Node {
                kind: "EmailChannel".into(),
                name: ch.name_any(),
                state: ready_state(
                    &ch.metadata,
                    ch.status.as_ref().map(|s| s.conditions.as_slice()),
                    status.observed_generation,
                ),
                summary: format!("mailbox {}, Connect {mode} mode", spec.mailbox),
                fields,
                conditions: own,
                children: vec![registration_node, mailbox, connect_node],
            };
            ("EmailChannel", ch.name_any(), node)
        }
        None => ("AzureAppRegistration", o.registration_name.clone(), registration_node),
    };
    let ready = every_node_ready(&tree);
    let mut report =
        Report { kind: kind.into(), namespace: ns.clone(), name, ready, tree, credential, next_steps: Vec::new() };
    report.next_steps = next_steps(o, &report, now);
    report
}

fn every_node_ready(node: &Node) -> bool {
    node.state == State::Ready && node.children.iter().all(every_node_ready)
}

fn registration_node(o: &Observed, now: Timestamp) -> Node {
    let Some(r) = &o.registration else {
        let conditions = o.channel.as_ref().and_then(|c| c.status.as_ref()).map(|s| s.conditions.as_slice());
        let why = match conditions {
            Some(c) if is_false(c, ch_cond::ADMITTED) => "not created: the channel is not admitted".to_string(),
            Some(c) => condition(c, ch_cond::APP_REGISTRATION_READY)
                .filter(|c| c.status != "True")
                .map(|c| c.message.clone())
                .unwrap_or_else(|| "not found".into()),
            None => "not found".into(),
        };
        return Node {
            kind: "AzureAppRegistration".into(),
            name: o.registration_name.clone(),
            state: State::Missing,
            summary: why,
            fields: BTreeMap::new(),
            conditions: Vec::new(),
            children: Vec::new(),
        };
    };
    let status = r.status.clone().unwrap_or_default();
    let conds = &status.conditions;
    let mut fields = BTreeMap::new();
    fields.insert("entraTenant".into(), r.spec.tenant_ref.name.clone());
    fields.insert("displayName".into(), r.spec.display_name.clone());
    fields.insert("secretName".into(), r.spec.client_secret.secret_name.clone());
    fields.insert("requireAcknowledgement".into(), r.spec.client_secret.require_acknowledgement.to_string());
    if let Some(g) = r.metadata.generation {
        fields.insert("generation".into(), g.to_string());
    }
    if let Some(g) = status.observed_generation {
        fields.insert("observedGeneration".into(), g.to_string());
    }
    if paused(&r.metadata) {
        fields.insert("paused".into(), "true".into());
    }
    if let Some(v) = annotation(&r.metadata, crate::api::ANNOTATION_ROTATE) {
        fields.insert("rotateRequest".into(), v);
    }
    // The Entra application.
    let mut app_fields = BTreeMap::new();
    for (k, v) in [
        ("appId", &status.app_id),
        ("objectId", &status.object_id),
        ("servicePrincipalId", &status.service_principal_id),
        ("tenantId", &status.tenant_id),
        ("uniqueName", &status.unique_name),
    ] {
        if let Some(v) = v {
            app_fields.insert(k.to_string(), v.clone());
        }
    }
    if let Some(c) = status.cloud {
        app_fields.insert("cloud".into(), format!("{c:?}"));
    }
    let granted: Vec<String> = status
        .granted_permissions
        .iter()
        .map(|p| {
            let names: Vec<&str> = p.delegated.iter().chain(p.application.iter()).map(String::as_str).collect();
            format!("{}: {}", p.resource, names.join(" "))
        })
        .collect();
    if !granted.is_empty() {
        app_fields.insert("grantedPermissions".into(), granted.join("; "));
    }
    let consent = condition(conds, reg_cond::CONSENT_GRANTED);
    let app_state = match (&status.app_id, consent) {
        (None, _) => State::Pending,
        (Some(_), Some(c)) if c.status != "True" && c.reason != reason::NOT_MANAGED => State::NotReady,
        (Some(_), _) => State::Ready,
    };
    let app = Node {
        kind: "EntraApplication".into(),
        name: status.app_id.clone().unwrap_or_else(|| "(not created yet)".into()),
        state: app_state,
        summary: match (&status.tenant_id, &status.app_id) {
            (Some(t), Some(_)) => format!("{} in tenant {t}", r.spec.display_name),
            _ => r.spec.display_name.clone(),
        },
        fields: app_fields,
        conditions: views(conds, &[reg_cond::CONSENT_GRANTED]),
        children: Vec::new(),
    };
    // The Secret (metadata only).
    let secret_name = r.spec.client_secret.secret_name.clone();
    let current = status.credential.as_ref();
    let secret = match &o.secret {
        None => Node {
            kind: "Secret".into(),
            name: secret_name,
            state: if current.is_some() { State::Missing } else { State::Pending },
            summary: "does not exist (yet)".into(),
            fields: BTreeMap::new(),
            conditions: views(conds, &[reg_cond::CREDENTIAL_READY, reg_cond::ROTATING]),
            children: Vec::new(),
        },
        Some(meta) => {
            let key = annotation(meta, ANNOTATION_KEY_ID);
            let mut fields = BTreeMap::new();
            for (k, a) in [
                ("keyId", ANNOTATION_KEY_ID),
                ("previousKeyId", ANNOTATION_PREVIOUS_KEY_ID),
                ("notAfter", ANNOTATION_NOT_AFTER),
            ] {
                if let Some(v) = annotation(meta, a) {
                    fields.insert(k.to_string(), v);
                }
            }
            let credential_ready = condition(conds, reg_cond::CREDENTIAL_READY);
            let state = match (current, credential_ready) {
                (None, _) | (_, None) => State::Pending,
                (Some(c), Some(ready)) if ready.status == "True" && key.as_deref() == Some(c.key_id.as_str()) => {
                    State::Ready
                }
                _ => State::NotReady,
            };
            let mut summary = match &key {
                Some(k) => format!("key {k}"),
                None => "no key-id annotation".into(),
            };
            if let Some(na) = annotation(meta, ANNOTATION_NOT_AFTER) {
                match na.parse::<Timestamp>() {
                    Ok(t) => write!(summary, ", expires {na} ({})", relative(now, t)).unwrap(),
                    Err(_) => write!(summary, ", expires {na}").unwrap(),
                }
            }
            if let Some(p) = annotation(meta, ANNOTATION_PREVIOUS_KEY_ID) {
                write!(summary, "; previous key {p} still readable").unwrap();
            }
            Node {
                kind: "Secret".into(),
                name: secret_name,
                state,
                summary,
                fields,
                conditions: views(conds, &[reg_cond::CREDENTIAL_READY, reg_cond::ROTATING]),
                children: Vec::new(),
            }
        }
    };
    let summary = match &current {
        Some(c) => format!(
            "key {}{}, renewal {} ({})",
            c.key_id,
            if c.verified_at.is_some() { " verified" } else { " not verified yet" },
            c.renewal_time.0,
            relative(now, c.renewal_time.0)
        ),
        None => "no client secret yet".into(),
    };
    let known = [reg_cond::CONSENT_GRANTED, reg_cond::CREDENTIAL_READY, reg_cond::ROTATING];
    Node {
        kind: "AzureAppRegistration".into(),
        name: r.name_any(),
        state: ready_state(&r.metadata, r.status.as_ref().map(|s| s.conditions.as_slice()), status.observed_generation),
        summary,
        fields,
        conditions: conds.iter().filter(|c| !known.contains(&c.type_.as_str())).map(ConditionView::from).collect(),
        children: vec![app, secret],
    }
}

fn credential_view(o: &Observed, r: &AzureAppRegistration, now: Timestamp) -> CredentialView {
    let status = r.status.clone().unwrap_or_default();
    let current_key = status.credential.as_ref().map(|c| c.key_id.clone());
    let list = consumers(r, &o.channels, r.spec.client_secret.require_acknowledgement);
    let consumers: Vec<ConsumerView> = list
        .iter()
        .map(|c| ConsumerView {
            name: c.name.clone(),
            acknowledged_key_id: c.acknowledged.clone(),
            current: current_key.is_some() && c.acknowledged == current_key,
        })
        .collect();
    let pending = match &current_key {
        Some(_) => consumers.iter().filter(|c| !c.current).map(|c| c.name.clone()).collect(),
        None => Vec::new(),
    };
    CredentialView {
        registration: r.name_any(),
        current: status.credential.as_ref().map(|c| KeyView {
            key_id: c.key_id.clone(),
            verified: c.verified_at.is_some(),
            not_after: c.not_after.0.to_string(),
            renewal_time: c.renewal_time.0.to_string(),
            expires: relative(now, c.not_after.0),
        }),
        secret: o.secret.as_ref().map(|meta| SecretKeys {
            name: r.spec.client_secret.secret_name.clone(),
            key_id: annotation(meta, ANNOTATION_KEY_ID),
            previous_key_id: annotation(meta, ANNOTATION_PREVIOUS_KEY_ID),
            not_after: annotation(meta, ANNOTATION_NOT_AFTER),
        }),
        previous_keys: status
            .previous_credentials
            .iter()
            .map(|p| PreviousKeyView {
                key_id: p.key_id.clone(),
                not_after: p.not_after.0.to_string(),
                expires: relative(now, p.not_after.0),
                revoke_at: p.revoke_at.as_ref().map(|t| t.0.to_string()),
                in_use_by: consumers
                    .iter()
                    .filter(|c| c.acknowledged_key_id.as_deref() == Some(p.key_id.as_str()))
                    .map(|c| c.name.clone())
                    .collect(),
            })
            .collect(),
        consumers,
        pending_acknowledgements: pending,
        pending_rotation: status
            .pending_rotation
            .as_ref()
            .map(|p| format!("{} rotation requested at {}", p.reason, p.requested_at.0)),
    }
}

/// What a person must do, most important first.
fn next_steps(o: &Observed, report: &Report, now: Timestamp) -> Vec<String> {
    let ns = &o.namespace;
    let mut steps: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !steps.contains(&s) {
            steps.push(s);
        }
    };
    let channel_status = o.channel.as_ref().map(|c| c.status.clone().unwrap_or_default());
    if let (Some(ch), Some(status)) = (&o.channel, &channel_status) {
        let name = ch.name_any();
        if paused(&ch.metadata) {
            push(format!("the channel is paused; resume it: kubectl connectemail resume emailchannel/{name} -n {ns}"));
        }
        if ch.status.is_none() || report.tree.state == State::Pending {
            push(format!(
                "wait for the operator to reconcile EmailChannel {name} (no status for its latest generation yet: is the operator running?)"
            ));
        }
        if let Some(c) = condition(&status.conditions, ch_cond::ADMITTED).filter(|c| c.status == "False") {
            push(format!("the channel is not admitted: {}", c.message));
        }
        if o.registration.is_none()
            && !is_false(&status.conditions, ch_cond::ADMITTED)
            && let Some(c) =
                condition(&status.conditions, ch_cond::APP_REGISTRATION_READY).filter(|c| c.status == "False")
        {
            push(c.message.clone());
        }
    }
    if let Some(r) = &o.registration {
        let rname = r.name_any();
        let status = r.status.clone().unwrap_or_default();
        let conds = &status.conditions;
        if paused(&r.metadata) {
            push(format!(
                "AzureAppRegistration {rname} is paused; resume it: kubectl connectemail resume azureappregistration/{rname} -n {ns}"
            ));
        }
        if r.status.is_none()
            || matches!((r.metadata.generation, status.observed_generation), (Some(g), Some(s)) if s < g)
        {
            push(format!("wait for the operator to reconcile AzureAppRegistration {rname} (is the operator running?)"));
        }
        if let Some(c) = condition(conds, reg_cond::ADMITTED).filter(|c| c.status == "False") {
            push(format!("AzureAppRegistration {rname} is not admitted: {}", c.message));
        }
        if let Some(c) = condition(conds, reg_cond::CREDENTIAL_READY).filter(|c| c.status == "False") {
            match c.reason.as_str() {
                reason::SECRET_REJECTED => push(format!(
                    "{}; once fixed: kubectl connectemail rotate azureappregistration/{rname} -n {ns}",
                    c.message
                )),
                reason::SECRET_ISSUED | reason::WAITING_FOR_PROPAGATION | reason::IN_PROGRESS => push(format!(
                    "wait: the operator is issuing or verifying a new client secret for {rname} ({})",
                    c.message
                )),
                _ => push(format!("CredentialReady: {}", c.message)),
            }
        }
        if let Some(c) = condition(conds, reg_cond::CONSENT_GRANTED)
            .filter(|c| c.status == "False" && c.reason != reason::NOT_MANAGED)
        {
            push(format!("ConsentGranted: {}", c.message));
        }
        if o.secret.is_none() && status.credential.is_some() {
            push(format!(
                "Secret {} is missing: the operator issues a new client secret on its next reconcile",
                r.spec.client_secret.secret_name
            ));
        }
    }
    if let (Some(ch), Some(status), Some(r)) = (&o.channel, &channel_status, &o.registration) {
        let name = ch.name_any();
        let spec = &ch.spec;
        let reg_status = r.status.clone().unwrap_or_default();
        let verified = reg_status.credential.as_ref().filter(|c| c.verified_at.is_some());
        let conds = &status.conditions;
        match spec.connect.mode {
            ConnectMode::Manual => {
                let applied = annotation(&ch.metadata, ANNOTATION_CONNECT_SECRET_APPLIED);
                if let Some(current) = verified
                    && applied.as_deref() != Some(current.key_id.as_str())
                {
                    let app_id = reg_status.app_id.as_deref().unwrap_or("?");
                    let secret = &r.spec.client_secret.secret_name;
                    let what = if applied.is_none() {
                        format!(
                            "enter the client ID {app_id} and the client secret from Secret {secret} (key client-secret) in Webex Connect → Assets → Apps → {}, click Generate Token and sign in as {}",
                            spec.connect.asset_name, spec.mailbox
                        )
                    } else {
                        format!(
                            "enter the new client secret from Secret {secret} (key client-secret) in Webex Connect → Assets → Apps → {} (client ID {app_id})",
                            spec.connect.asset_name
                        )
                    };
                    push(format!(
                        "{what}, then run: kubectl connectemail ack {name} -n {ns} --key-id {}",
                        current.key_id
                    ));
                }
            }
            ConnectMode::Api => {
                if let Some(c) = condition(conds, ch_cond::CONNECT_AUTHORIZED)
                    .filter(|c| c.status == "False" && c.reason == reason::SIGN_IN_REQUIRED)
                {
                    push(format!(
                        "sign in once: in Webex Connect open Assets → Apps → {}, click Generate Token and sign in as {} ({})",
                        spec.connect.asset_name, spec.mailbox, c.message
                    ));
                }
                if let Some(c) = condition(conds, ch_cond::CONNECT_ASSET_SYNCED)
                    .filter(|c| c.status == "False" && c.reason != reason::DEPENDENCY_NOT_READY)
                {
                    push(format!("ConnectAssetSynced: {}", c.message));
                }
            }
        }
        for t in [ch_cond::MAILBOX_CONFIGURED, ch_cond::OUTBOUND_FORWARDING_ALLOWED] {
            if let Some(c) =
                condition(conds, t).filter(|c| c.status == "False" && c.reason != reason::DEPENDENCY_NOT_READY)
            {
                push(format!("{t}: {}", c.message));
            }
        }
    }
    // Other consumers of the registration that hold up the revocation of an earlier key.
    if let (Some(view), Some(r)) = (&report.credential, &o.registration) {
        let own = o.channel.as_ref().map(|c| format!("EmailChannel {}", c.name_any()));
        let current = view.current.as_ref().filter(|k| k.verified);
        if let Some(current) = current
            && !view.previous_keys.is_empty()
        {
            for consumer in view.pending_acknowledgements.iter().filter(|c| Some(*c) != own.as_ref()) {
                match consumer.strip_prefix("EmailChannel ") {
                    Some(channel) => push(format!(
                        "the previous key is kept until {consumer} acknowledges key {}: kubectl connectemail status emailchannel/{channel} -n {ns}",
                        current.key_id
                    )),
                    None => push(format!(
                        "the previous key is kept until the consumers of Secret {} use key {}; then annotate AzureAppRegistration {} with {}={}",
                        r.spec.client_secret.secret_name,
                        current.key_id,
                        r.name_any(),
                        crate::api::ANNOTATION_SECRET_ACKNOWLEDGED,
                        current.key_id
                    )),
                }
            }
        }
    }
    if steps.is_empty() && !report.ready {
        collect_false(&report.tree, &mut steps);
    }
    if steps.is_empty() && !report.ready {
        steps.push("wait for the operator (nothing is reported as failing)".into());
    }
    if steps.is_empty() {
        let renewal = o
            .registration
            .as_ref()
            .and_then(|r| r.status.as_ref()?.credential.as_ref())
            .map(|c| format!("; the next rotation is at {} ({})", c.renewal_time.0, relative(now, c.renewal_time.0)))
            .unwrap_or_default();
        steps.push(format!("none: everything is Ready{renewal}"));
    }
    steps
}

fn collect_false(node: &Node, steps: &mut Vec<String>) {
    for c in &node.conditions {
        let bad = match c.type_.as_str() {
            reg_cond::ROTATING => false,
            ch_cond::CONNECT_SECRET_OUTDATED => c.status == "True",
            "Ready" => false,
            _ => c.status == "False",
        };
        let line = format!("{}: {}", c.type_, c.message);
        if bad && !steps.contains(&line) {
            steps.push(line);
        }
    }
    for child in &node.children {
        collect_false(child, steps);
    }
}

/// The tree as text; `wide` adds every field and every condition's reason and message.
pub fn render(report: &Report, wide: bool) -> String {
    let mut out = String::new();
    writeln!(out, "Namespace: {}", report.namespace).unwrap();
    render_node(&mut out, &report.tree, "", "", wide);
    if let Some(c) = &report.credential {
        out.push('\n');
        writeln!(out, "Keys of AzureAppRegistration {}:", c.registration).unwrap();
        match &c.current {
            Some(k) => writeln!(
                out,
                "  current   {}  {}, expires {} ({}), renewal {}",
                k.key_id,
                if k.verified { "verified" } else { "not verified yet" },
                k.not_after,
                k.expires,
                k.renewal_time
            )
            .unwrap(),
            None => writeln!(out, "  current   none yet").unwrap(),
        }
        if let Some(s) = &c.secret {
            let key = s.key_id.as_deref().unwrap_or("(no key-id annotation)");
            let mark = match (&c.current, &s.key_id) {
                (Some(k), Some(sk)) if *sk != k.key_id => "  (differs from status: the operator is catching up)",
                _ => "",
            };
            writeln!(out, "  in Secret {key}{mark}").unwrap();
        }
        for p in &c.previous_keys {
            let used = if p.in_use_by.is_empty() {
                "acknowledged by nobody".to_string()
            } else {
                format!("still used by {}", p.in_use_by.join(", "))
            };
            let revoke = p.revoke_at.as_deref().map(|r| format!(", revoke at {r}")).unwrap_or_default();
            writeln!(out, "  previous  {}  expires {} ({}){revoke}; {used}", p.key_id, p.not_after, p.expires).unwrap();
        }
        if let Some(p) = &c.pending_rotation {
            writeln!(out, "  pending   {p}").unwrap();
        }
        for consumer in &c.consumers {
            let state = match (&consumer.acknowledged_key_id, consumer.current) {
                (_, true) => "acknowledged the current key".to_string(),
                (Some(k), false) => format!("NOT acknowledged (still on {k})"),
                (None, false) => "NOT acknowledged (no key yet)".to_string(),
            };
            writeln!(out, "  consumer  {}: {state}", consumer.name).unwrap();
        }
        if c.consumers.is_empty() {
            writeln!(out, "  consumers none that acknowledge (applications read the Secret)").unwrap();
        }
    }
    out.push('\n');
    match report.next_steps.as_slice() {
        [one] => writeln!(out, "Next step: {one}").unwrap(),
        many => {
            writeln!(out, "Next steps:").unwrap();
            for (i, s) in many.iter().enumerate() {
                writeln!(out, "  {}. {s}", i + 1).unwrap();
            }
        }
    }
    out
}

fn render_node(out: &mut String, node: &Node, lead: &str, child_lead: &str, wide: bool) {
    writeln!(out, "{lead}{}/{}  [{}]  {}", node.kind, node.name, node.state.as_str(), node.summary).unwrap();
    let has_children = !node.children.is_empty();
    let detail_lead = format!("{child_lead}{}", if has_children { "│    " } else { "     " });
    if wide {
        for (k, v) in &node.fields {
            writeln!(out, "{detail_lead}{k}: {v}").unwrap();
        }
        for c in &node.conditions {
            writeln!(
                out,
                "{detail_lead}{}={}  {}: {}  (since {})",
                c.type_, c.status, c.reason, c.message, c.last_transition_time
            )
            .unwrap();
        }
    } else {
        let (fine, mut notable): (Vec<&ConditionView>, Vec<&ConditionView>) =
            node.conditions.iter().partition(|c| healthy(c));
        // Ready summarises the others: it comes last, so their messages are the ones shown.
        notable.sort_by_key(|c| c.type_ == "Ready");
        if !fine.is_empty() {
            let list: Vec<String> = fine.iter().map(|c| format!("{}={}", c.type_, c.status)).collect();
            writeln!(out, "{detail_lead}{}", list.join("  ")).unwrap();
        }
        // A Ready condition that is only in progress repeats the others' messages; a message
        // already shown on this node is not repeated (wide output shows everything).
        let mut shown: Vec<&str> = Vec::new();
        for c in notable {
            if (c.type_ == "Ready" && c.reason == reason::IN_PROGRESS) || shown.contains(&c.message.as_str()) {
                writeln!(out, "{detail_lead}{}={} {}", c.type_, c.status, c.reason).unwrap();
            } else {
                writeln!(out, "{detail_lead}{}={} {}: {}", c.type_, c.status, c.reason, c.message).unwrap();
                shown.push(&c.message);
            }
        }
    }
    let n = node.children.len();
    for (i, child) in node.children.iter().enumerate() {
        let last = i + 1 == n;
        let lead = format!("{child_lead}{}", if last { "└─ " } else { "├─ " });
        let next = format!("{child_lead}{}", if last { "   " } else { "│  " });
        render_node(out, child, &lead, &next, wide);
    }
}

/// A condition whose status is the good one (shown compactly).
fn healthy(c: &ConditionView) -> bool {
    match c.type_.as_str() {
        reg_cond::ROTATING | ch_cond::CONNECT_SECRET_OUTDATED => c.status == "False",
        _ => c.status == "True",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY1: &str = "aaaaaaaa-0000-0000-0000-000000000001";
    const KEY2: &str = "aaaaaaaa-0000-0000-0000-000000000002";

    fn now() -> Timestamp {
        "2026-03-01T00:00:00Z".parse().unwrap()
    }

    fn cond(type_: &str, status: &str, reason: &str, message: &str) -> serde_json::Value {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastTransitionTime": "2026-02-28T00:00:00Z"})
    }

    fn channel(annotations: serde_json::Value, conditions: Vec<serde_json::Value>) -> EmailChannel {
        serde_json::from_value(json!({
            "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel",
            "metadata": {"name": "support", "namespace": "team", "uid": "u-ch", "generation": 1, "annotations": annotations},
            "spec": {"mailbox": "support@contoso.com", "azure": {"tenantRef": {"name": "contoso"}},
                     "connect": {"mode": "Manual", "region": "us", "tenantHost": "acme.us.webexconnect.io",
                                 "assetName": "Support email", "forwardingAddress": "ab@mail-us.imiconnect.io"}},
            "status": {"observedGeneration": 1, "appRegistration": "support", "conditions": conditions}
        }))
        .unwrap()
    }

    fn registration(annotations: serde_json::Value, verified: bool, previous: bool) -> AzureAppRegistration {
        let mut credential = json!({"keyId": KEY2, "notBefore": "2026-02-01T00:00:00Z", "notAfter": "2026-08-01T00:00:00Z",
                                    "renewalTime": "2026-06-01T00:00:00Z"});
        if verified {
            credential["verifiedAt"] = json!("2026-02-01T00:01:00Z");
        }
        let rotating = if previous { "True" } else { "False" };
        let previous = if previous { json!([{"keyId": KEY1, "notAfter": "2026-04-01T00:00:00Z"}]) } else { json!([]) };
        serde_json::from_value(json!({
            "apiVersion": "connectemail.dev/v1alpha1", "kind": "AzureAppRegistration",
            "metadata": {"name": "support", "namespace": "team", "generation": 1, "annotations": annotations,
                         "ownerReferences": [{"apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel",
                                               "name": "support", "uid": "u-ch", "controller": true}]},
            "spec": {"tenantRef": {"name": "contoso"}, "displayName": "Webex Connect support@contoso.com",
                     "clientSecret": {"secretName": "support-azure", "requireAcknowledgement": true}},
            "status": {"observedGeneration": 1, "appId": "app-1", "tenantId": "tenant-1",
                       "credential": credential, "previousCredentials": previous,
                       "conditions": [cond("Ready", "True", "Reconciled", "ready"),
                                      cond("Admitted", "True", "Admitted", "ok"),
                                      cond("CredentialReady", "True", "SecretVerified", "ok"),
                                      cond("ConsentGranted", "True", "Reconciled", "ok"),
                                      cond("Rotating", rotating, "WaitingForAcknowledgement", "kept")]}
        }))
        .unwrap()
    }

    fn secret_meta(key: &str, previous: Option<&str>) -> ObjectMeta {
        let mut annotations =
            json!({"connectemail.dev/key-id": key, "connectemail.dev/not-after": "2026-08-01T00:00:00Z"});
        if let Some(p) = previous {
            annotations["connectemail.dev/previous-key-id"] = json!(p);
        }
        serde_json::from_value(json!({"name": "support-azure", "annotations": annotations})).unwrap()
    }

    fn observed(ch: EmailChannel, reg: Option<AzureAppRegistration>, secret: Option<ObjectMeta>) -> Observed {
        Observed {
            namespace: "team".into(),
            channels: vec![ch.clone()],
            channel: Some(ch),
            registration_name: "support".into(),
            registration: reg,
            secret,
        }
    }

    fn ready_conditions() -> Vec<serde_json::Value> {
        [
            "Ready",
            "Admitted",
            "AppRegistrationReady",
            "MailboxConfigured",
            "OutboundForwardingAllowed",
            "ConnectAssetSynced",
            "ConnectAuthorized",
        ]
        .iter()
        .map(|t| cond(t, "True", "Reconciled", "ok"))
        .chain([cond("ConnectSecretOutdated", "False", "Reconciled", "ok")])
        .collect()
    }

    #[test]
    fn a_ready_channel_is_ready_all_the_way_down_and_says_when_it_rotates() {
        let ch = channel(json!({"connectemail.dev/connect-secret-applied": KEY2}), ready_conditions());
        let reg = registration(json!({"ack.connectemail.dev/support": KEY2}), true, false);
        let report = build(&observed(ch, Some(reg), Some(secret_meta(KEY2, None))), now());
        assert!(report.ready, "{report:#?}");
        assert_eq!(report.next_steps.len(), 1);
        assert!(report.next_steps[0].starts_with("none: everything is Ready; the next rotation is at 2026-06-01"));
        let text = render(&report, false);
        assert!(text.contains("EmailChannel/support  [Ready]"), "{text}");
        assert!(text.contains("Secret/support-azure  [Ready]  key aaaaaaaa-0000-0000-0000-000000000002"), "{text}");
        assert!(text.contains("consumer  EmailChannel support: acknowledged the current key"), "{text}");
        let wide = render(&report, true);
        assert!(wide.contains("appId: app-1") && wide.contains("(since 2026-02-28T00:00:00Z)"), "{wide}");
    }

    #[test]
    fn a_manual_rotation_waiting_for_the_person_asks_for_ack_with_the_key() {
        let mut conditions = ready_conditions();
        conditions[0] = cond("Ready", "False", "InProgress", "ConnectAssetSynced: enter");
        conditions[5] = cond("ConnectAssetSynced", "False", "WaitingForAcknowledgement", "enter the secret");
        conditions[7] = cond("ConnectSecretOutdated", "True", "WaitingForAcknowledgement", "enter the secret");
        let ch = channel(json!({"connectemail.dev/connect-secret-applied": KEY1}), conditions);
        let reg = registration(json!({"ack.connectemail.dev/support": KEY1}), true, true);
        let report = build(&observed(ch, Some(reg), Some(secret_meta(KEY2, Some(KEY1)))), now());
        assert!(!report.ready);
        assert_eq!(report.next_steps.len(), 1, "{:?}", report.next_steps);
        let step = &report.next_steps[0];
        assert!(step.contains("enter the new client secret from Secret support-azure"), "{step}");
        assert!(step.ends_with(&format!("kubectl connectemail ack support -n team --key-id {KEY2}")), "{step}");
        let credential = report.credential.as_ref().unwrap();
        assert_eq!(credential.pending_acknowledgements, vec!["EmailChannel support".to_string()]);
        assert_eq!(credential.previous_keys[0].in_use_by, vec!["EmailChannel support".to_string()]);
        let text = render(&report, false);
        assert!(
            text.contains(&format!("previous  {KEY1}")) && text.contains("still used by EmailChannel support"),
            "{text}"
        );
        assert!(text.contains(&format!("NOT acknowledged (still on {KEY1})")), "{text}");
        assert!(text.contains("ConnectAsset/Support email  [NotReady]"), "{text}");
    }

    #[test]
    fn a_channel_its_tenant_refuses_names_the_refusal_and_the_missing_registration() {
        let conditions = vec![
            cond("Ready", "False", "NotAdmitted", "EntraTenant contoso does not allow mailbox x@northwind.com"),
            cond("Admitted", "False", "NotAdmitted", "EntraTenant contoso does not allow mailbox x@northwind.com"),
        ];
        let ch = channel(json!({}), conditions);
        let report = build(&observed(ch, None, None), now());
        assert!(!report.ready);
        assert_eq!(report.tree.children[0].state, State::Missing);
        assert!(report.credential.is_none());
        assert_eq!(report.next_steps.len(), 1, "{:?}", report.next_steps);
        assert!(report.next_steps[0].contains("not admitted: EntraTenant contoso does not allow mailbox"));
    }

    #[test]
    fn no_status_yet_means_waiting_for_the_operator() {
        let mut ch = channel(json!({}), vec![]);
        ch.status = None;
        let report = build(&observed(ch, None, None), now());
        assert_eq!(report.tree.state, State::Pending);
        assert!(report.next_steps[0].starts_with("wait for the operator to reconcile EmailChannel support"));
    }

    #[test]
    fn relative_times_read_naturally() {
        let t: Timestamp = "2026-03-02T03:00:00Z".parse().unwrap();
        assert_eq!(relative(now(), t), "in 1d 3h");
        assert_eq!(relative(t, now()), "1d 3h ago");
        assert_eq!(relative(now(), "2026-03-01T00:05:00Z".parse().unwrap()), "in 5m");
    }
}
