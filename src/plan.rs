//! `connect-email-operator plan NAMESPACE/NAME`: what the next reconcile would change, computed by
//! the same pure planning functions the controllers use, from live reads only. Changes nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use crate::api::email_channel::ConnectMode;
use crate::api::{
    ANNOTATION_CONNECT_SECRET_APPLIED, ANNOTATION_ROTATE, ANNOTATION_SECRET_ACKNOWLEDGED, AzureAppRegistration,
    EmailChannel,
};
use crate::azure::AzureClients;
use crate::controller::app_registration::reconcile::{observe_current, unique_name};
use crate::controller::app_registration::rotation::{self, Revocation, SecretPolicy};
use crate::controller::app_registration::{desired, secret};
use crate::controller::email_channel::desired as channel_desired;

/// One line per planned change; an empty plan means "in sync".
pub async fn plan(
    client: kube::Client,
    azure: &AzureClients,
    namespace: &str,
    name: &str,
    now: jiff::Timestamp,
) -> anyhow::Result<Vec<String>> {
    let mut changes = Vec::new();
    let channels: Api<EmailChannel> = Api::namespaced(client.clone(), namespace);
    let registrations: Api<AzureAppRegistration> = Api::namespaced(client.clone(), namespace);
    let channel = channels.get_opt(name).await?;
    let registration = match &channel {
        Some(c) => {
            let reg_name = match &c.spec.azure.app_registration_ref {
                Some(r) => r.name.clone(),
                None => name.to_string(),
            };
            registrations.get_opt(&reg_name).await?
        }
        None => registrations.get_opt(name).await?,
    };
    if channel.is_none() && registration.is_none() {
        anyhow::bail!("no EmailChannel or AzureAppRegistration {namespace}/{name}");
    }
    if let Some(c) = &channel
        && let Some(child) = channel_desired::child_spec(name, &c.spec)
        && registration.as_ref().is_none_or(|r| r.spec != child)
    {
        changes.push(format!("apply AzureAppRegistration {name} (the channel's child) with the desired spec"));
    }
    let Some(registration) = registration else { return Ok(changes) };
    let spec = &registration.spec;
    // Not reconciled yet: the tenant its EntraTenant names (plan only reads).
    let named = match registration.tenant() {
        Some((t, c)) => Some((t.to_string(), c)),
        None => kube::Api::<crate::api::EntraTenant>::all(client.clone())
            .get_opt(&spec.tenant_ref.name)
            .await?
            .map(|t| (t.spec.tenant_id, t.spec.cloud)),
    };
    let Some((tenant, cloud)) = named else {
        changes.push(format!("nothing in Entra ID: EntraTenant {} does not exist", spec.tenant_ref.name));
        return Ok(changes);
    };
    let tenant = tenant.as_str();
    let clients = azure.for_cloud(cloud);
    let status = registration.status.clone().unwrap_or_default();

    // Application and consent.
    let mut resources = BTreeMap::new();
    for p in &spec.permissions {
        if !resources.contains_key(&p.resource) {
            // As the reconcile: the API by its application ID (well-known names map to first-party IDs).
            let sp = match crate::policy::resource_app_id(&p.resource) {
                Some(app_id) => clients.directory.service_principal(tenant, &app_id).await?,
                None => None,
            };
            resources.insert(p.resource.clone(), sp);
        }
    }
    let resolved = desired::resolve_permissions(&spec.permissions, &resources);
    if let Err(problem) = &resolved {
        changes.push(format!("blocked: {problem}"));
    }
    let uid = registration.uid().unwrap_or_default();
    let app = match &spec.adopt {
        Some(a) => clients.directory.app_by_app_id(tenant, &a.app_id).await?,
        None => clients.directory.app_by_unique_name(tenant, &unique_name(&uid)).await?,
    };
    let desired_app = desired::desired_application(spec, resolved.as_deref().unwrap_or_default(), String::new());
    let Some(app) = app else {
        changes.push(format!(
            "create application {:?} (uniqueName {}), its service principal, consent and a client secret",
            spec.display_name,
            unique_name(&uid)
        ));
        return Ok(changes);
    };
    let drift = desired::application_drift(&app, &desired_app);
    if !drift.is_empty() && resolved.is_ok() {
        changes.push(format!("update application {}: {}", app.app_id, drift.join(", ")));
    }
    match clients.directory.service_principal(tenant, &app.app_id).await? {
        None => changes.push("create the service principal, then grant consent".into()),
        Some(sp) if spec.admin_consent && resolved.is_ok() => {
            let assignments = clients.directory.app_role_assignments(tenant, &sp.id).await?;
            let grants = clients.directory.delegated_grants(tenant, &sp.id).await?;
            let consent = desired::consent_plan(resolved.as_deref().unwrap_or_default(), &assignments, &grants, |_| {
                spec.adopt.is_none()
            });
            changes.extend(consent.assign.iter().map(|(_, _, label)| format!("grant application permission {label}")));
            changes.extend(consent.unassign.iter().map(|(_, label)| format!("withdraw {label}")));
            changes.extend(
                consent.create_grants.iter().map(|(_, scope)| format!("grant delegated {scope} for all users")),
            );
            changes.extend(
                consent.update_grants.iter().map(|(_, scope)| format!("change the delegated grant to {scope}")),
            );
            changes.extend(consent.delete_grants.iter().map(|id| format!("delete delegated grant {id}")));
        }
        Some(_) => {}
    }

    // The client secret.
    let policy = SecretPolicy::from_spec(&spec.client_secret).map_err(anyhow::Error::msg)?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let stored = secret::observe(secrets.get_opt(&spec.client_secret.secret_name).await?.as_ref());
    let current = observe_current(status.credential.as_ref(), &app, &stored);
    let rotate = registration.annotations().get(ANNOTATION_ROTATE).cloned();
    match rotation::issue_reason(&rotation::IssueInput {
        now,
        policy: &policy,
        current: current.as_ref(),
        rotate_annotation: rotate.as_deref(),
        last_rotate_request: status.last_rotate_request.as_deref(),
    }) {
        Some(reason) => changes.push(format!(
            "issue a new client secret ({}) into Secret {}",
            reason.as_str(),
            spec.client_secret.secret_name
        )),
        None => {
            if let Some(c) = &current
                && c.verified_at.is_none()
            {
                changes.push(format!("verify client secret {} at the token endpoint", c.key_id));
            }
        }
    }
    let acknowledged = registration.annotations().get(ANNOTATION_SECRET_ACKNOWLEDGED).cloned();
    if let Some(cur) = &current {
        for p in &status.previous_credentials {
            let prev = rotation::PreviousCredential { key_id: p.key_id.clone(), not_after: p.not_after.0 };
            match rotation::revocation(now, &policy, &prev, cur, acknowledged.as_deref()) {
                Revocation::Now => changes.push(format!("revoke previous client secret {}", p.key_id)),
                Revocation::At(t) => changes.push(format!("revoke previous client secret {} at {t}", p.key_id)),
                Revocation::WaitingForAcknowledgement => changes.push(format!(
                    "keep previous client secret {} until the consumer acknowledges {}",
                    p.key_id, cur.key_id
                )),
                Revocation::WaitingForVerification => {
                    changes.push(format!("keep previous client secret {} until {} is verified", p.key_id, cur.key_id))
                }
            }
        }
    }
    let passwords: Vec<(String, Option<String>)> =
        app.password_credentials.iter().map(|p| (p.key_id.clone(), p.display_name.clone())).collect();
    let mut keep: Vec<&str> = status.previous_credentials.iter().map(|p| p.key_id.as_str()).collect();
    if let Some(c) = &status.credential {
        keep.push(&c.key_id);
    }
    for orphan in rotation::orphaned_passwords(
        &passwords,
        &uid,
        &keep,
        status.pending_rotation.as_ref().map(|p| p.marker.as_str()),
    ) {
        changes.push(format!("remove orphaned operator password {orphan}"));
    }

    // The channel's mailbox and Connect.
    let Some(channel) = channel else { return Ok(changes) };
    let cspec = &channel.spec;
    let auth = clients.mailboxes.smtp_auth(tenant, &cspec.mailbox).await?;
    if let Some(disabled) = channel_desired::smtp_auth_change(auth, cspec.exchange.smtp_auth) {
        let verb = if cspec.exchange.manage { "" } else { "(not managed) " };
        changes.push(format!("{verb}Set-CASMailbox {} -SmtpClientAuthenticationDisabled {disabled:?}", cspec.mailbox));
    }
    let target = match cspec.connect.mode {
        ConnectMode::Manual => cspec.connect.forwarding_address.clone(),
        ConnectMode::Api => channel.status.as_ref().and_then(|s| s.forwarding_address.clone()),
    };
    let target = target.filter(|_| cspec.exchange.forwarding.enabled);
    let forwarding = clients.mailboxes.forwarding(tenant, &cspec.mailbox).await?;
    if channel_desired::forwarding_needs_change(&forwarding, target.as_deref(), cspec.exchange.forwarding.keep_copy) {
        changes.push(format!(
            "Set-Mailbox {} forwarding {:?} -> {target:?} (keep a copy: {})",
            cspec.mailbox, forwarding.smtp_address, cspec.exchange.forwarding.keep_copy
        ));
    }
    let current_key = current.filter(|c| c.verified_at.is_some()).map(|c| c.key_id);
    let applied = match cspec.connect.mode {
        ConnectMode::Manual => channel.annotations().get(ANNOTATION_CONNECT_SECRET_APPLIED).cloned(),
        ConnectMode::Api => channel.status.as_ref().and_then(|s| s.connect.as_ref()?.applied_key_id.clone()),
    };
    match (channel_desired::connect_secret(current_key.as_deref(), applied.as_deref()), cspec.connect.mode) {
        (channel_desired::ConnectSecret::Outdated { current, .. }, ConnectMode::Manual) => {
            changes.push(format!("wait for a person to enter secret {current} in Connect and annotate the channel"))
        }
        (channel_desired::ConnectSecret::Outdated { current, .. }, ConnectMode::Api) => {
            changes.push(format!("push client secret {current} to the Connect asset {:?}", cspec.connect.asset_name))
        }
        _ => {}
    }
    Ok(changes)
}
