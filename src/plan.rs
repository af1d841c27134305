//! `connect-email-operator plan NAMESPACE/NAME`: what the next reconcile would change, computed by
//! the same pure planning functions the controllers use, from live reads only. Changes nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use crate::api::email_channel::ConnectMode;
use crate::api::{ANNOTATION_CONNECT_SECRET_APPLIED, ANNOTATION_ROTATE, AzureAppRegistration, EmailChannel};
use crate::clients::MicrosoftClients;
use crate::controller::app_registration::credential::{self, Retire, Step};
use crate::controller::app_registration::reconcile::{adopted_key, consumers, own_application, user_ids, verify};
use crate::controller::app_registration::rotation::{self, Revocation, SecretPolicy};
use crate::controller::app_registration::{desired, secret};
use crate::controller::email_channel::desired as channel_desired;

/// One line per planned change; an empty plan means "in sync".
pub async fn plan(
    client: kube::Client,
    azure: &MicrosoftClients,
    instance: &str,
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
    let clients = azure.for_recorded(&client, &spec.tenant_ref.name, tenant, cloud).await?;
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
    let (key, app) = match &spec.adopt {
        Some(a) => {
            let app = clients.directory.app_by_app_id(tenant, &a.app_id).await?;
            let key = app.as_ref().map(|app| adopted_key(app, &registration, instance)).unwrap_or_default();
            (key, app)
        }
        None => own_application(clients.directory.as_ref(), tenant, &registration, instance).await?,
    };
    let desired_app = desired::desired_application(spec, resolved.as_deref().unwrap_or_default(), String::new());
    let Some(app) = app else {
        changes.push(format!(
            "create application {:?} (uniqueName {}), its service principal, consent and a client secret",
            spec.display_name, key
        ));
        return Ok(changes);
    };
    if spec.adopt.is_some() && app.unique_name.is_none() {
        changes.push(format!("claim the adopted application {} with uniqueName {}", app.app_id, key));
    }
    let drift = desired::application_drift(&app, &desired_app);
    if !drift.is_empty() && resolved.is_ok() {
        changes.push(format!("update application {}: {}", app.app_id, drift.join(", ")));
    }
    match clients.directory.service_principal(tenant, &app.app_id).await? {
        None => changes.push("create the service principal, then grant consent".into()),
        Some(sp) if spec.admin_consent && resolved.is_ok() => {
            let assignments = clients.directory.app_role_assignments(tenant, &sp.id).await?;
            let grants = clients.directory.delegated_grants(tenant, &sp.id).await?;
            let owned = spec.adopt.is_some().then_some(status.granted_consent.as_slice());
            let users = match user_ids(clients.mailboxes.as_ref(), tenant, &spec.consent_for, None).await {
                Ok(users) => users,
                Err((mailbox, e)) => {
                    changes.push(format!("no consent change: the Entra user of {mailbox} is not found ({e})"));
                    return Ok(changes);
                }
            };
            let consent_for = if spec.consent_for.is_empty() {
                desired::ConsentFor::Everyone
            } else {
                desired::ConsentFor::Users(&users)
            };
            let consent = desired::consent_plan(
                resolved.as_deref().unwrap_or_default(),
                consent_for,
                &assignments,
                &grants,
                owned,
            );
            changes.extend(consent.assign.iter().map(|(_, _, label)| format!("grant application permission {label}")));
            changes.extend(consent.unassign.iter().map(|(_, label)| format!("withdraw {label}")));
            changes.extend(consent.create_grants.iter().map(|g| match &g.principal_id {
                Some(user) => format!("grant delegated {} for user {user} only", g.scope),
                None => format!("grant delegated {} for all users", g.scope),
            }));
            changes.extend(
                consent.update_grants.iter().map(|(_, scope)| format!("change the delegated grant to {scope}")),
            );
            changes
                .extend(consent.delete_grants.iter().map(|(id, what)| format!("delete delegated grant {id} ({what})")));
        }
        Some(_) => {}
    }

    // The client secret: the reconcile's own plan (credential::plan), printed.
    let policy = SecretPolicy::from_spec(&spec.client_secret).map_err(anyhow::Error::msg)?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let observed_secret = secret::observe(secrets.get_opt(&spec.client_secret.secret_name).await?.as_ref());
    let stored = observed_secret.keys();
    // As the reconcile observes it: a key not verified yet is tried at the token endpoint (a token
    // request changes nothing in Entra ID).
    let verification = match (&status.credential, &observed_secret.secret) {
        (Some(c), Some(text))
            if c.verified_at.is_none()
                && status.pending_rotation.is_none()
                && stored.key_id.as_deref() == Some(c.key_id.as_str()) =>
        {
            Some(
                verify(&clients, tenant, &app.app_id, text, now, c.not_before.0, rotation::PROPAGATION_WINDOW)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            )
        }
        _ => None,
    };
    let rotate = registration.annotations().get(ANNOTATION_ROTATE).cloned();
    let namespace_channels = channels.list(&Default::default()).await?.items;
    let consumers = consumers(&registration, &namespace_channels, policy.require_acknowledgement);
    let input = credential::Input {
        now,
        policy: &policy,
        uid: &uid,
        status: &status,
        passwords: &app.password_credentials,
        stored: &stored,
        rotate_annotation: rotate.as_deref(),
        consumers: Some(&consumers),
        verification,
    };
    let credential_plan = credential::plan(&input);
    changes.extend(describe_credential_plan(&credential_plan, &spec.client_secret.secret_name));

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
    let current_key = status.credential.as_ref().filter(|c| c.verified_at.is_some()).map(|c| c.key_id.clone());
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

/// One line per step of the credential plan, in the order the reconcile applies them, then what
/// each kept key waits for.
pub fn describe_credential_plan(plan: &credential::Plan, secret_name: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for step in &plan.steps {
        lines.push(match step {
            Step::RemoveLostPassword { key_id } => {
                format!("remove password {key_id}, whose text was lost before reaching the Secret")
            }
            Step::AdoptStored { key_id } => format!("record client secret {key_id}, which the Secret already holds"),
            Step::JournalPrevious { key_id, .. } => format!("journal previous client secret {key_id} again"),
            Step::MarkVerified { key_id } => format!("mark client secret {key_id} verified"),
            Step::Issue { reason, retire } => {
                let then = match retire {
                    Retire::Keep { key_id, .. } => {
                        format!("; keep {key_id} until its successor is verified and acknowledged")
                    }
                    Retire::Remove { key_id } => format!("; remove {key_id}, which does not work"),
                    Retire::Nothing => String::new(),
                };
                format!("issue a new client secret ({}) into Secret {secret_name}{then}", reason.as_str())
            }
            Step::Revoke { key_id, why } => format!("revoke previous client secret {key_id}: {}", why.as_str()),
            Step::RemoveOrphan { key_id } => format!("remove orphaned operator password {key_id}"),
        });
    }
    for k in &plan.kept {
        lines.push(match &k.wait {
            Revocation::At(t) => format!("revoke previous client secret {} at {t}", k.key_id),
            Revocation::WaitingForAcknowledgement => format!(
                "keep previous client secret {} until {} acknowledge the new key",
                k.key_id,
                if k.pending.is_empty() { "the consumers".to_string() } else { k.pending.join(", ") }
            ),
            Revocation::WaitingForVerification | Revocation::Now => {
                format!("keep previous client secret {} until the new key is verified", k.key_id)
            }
        });
    }
    if let Some(blocked) = &plan.blocked {
        lines.push(format!("blocked: {blocked}"));
    }
    lines
}
