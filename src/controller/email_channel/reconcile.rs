//! The EmailChannel reconcile pipeline:
//!
//! ```text
//! paused? ─▶ admitted by the EntraTenant? ─▶ app registration (apply the child, or read the
//!         referenced one) ─▶ Connect (Manual: wait for the person's acknowledgement; Api: push)
//!         ─▶ acknowledge the secret to the registration ─▶ Exchange mailbox (SMTP AUTH,
//!         forwarding) ─▶ outbound forwarding policy ─▶ status
//! ```
//! Exchange comes after Connect because in Api mode the forwarding address comes from the asset.
//! The client secret is rotated by the AzureAppRegistration controller, so nothing that fails
//! here (Exchange, Connect) can delay a rotation; this controller only decides when the previous
//! secret may go, by acknowledging the key Connect holds.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::desired::{self, ConnectSecret};
use crate::api::conditions::{app_registration as app_cond, email_channel as cond, reason};
use crate::api::email_channel::{
    ConnectMode, ConnectStatus, EmailChannelStatus, ForwardingValue, MailboxStatus, SmtpAuthValue,
};
use crate::api::{ANNOTATION_CONNECT_SECRET_APPLIED, ANNOTATION_PAUSED, AzureAppRegistration, EmailChannel};
use crate::controller::app_registration::credential::acknowledgement_annotation;
use crate::controller::claims::{self, Claim};
use crate::controller::{Context, Error, admission, conditions, lifecycle, report};
use crate::exchange::{AutoForwardingMode, ExchangeError, MailboxAdmin};
use crate::policy::{self, Refusal};
use crate::{connect, failpoint};

pub async fn reconcile(obj: Arc<EmailChannel>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Kubernetes children go with their owner references; nothing external to undo in Manual mode.
    // (Api mode leaves the Connect asset: deleting a channel must not silently break mail flow
    // that a person may have re-pointed.)
    lifecycle::reconcile_with_finalizer(obj, &ctx, |o| apply(o, &ctx), |o| cleanup(o, &ctx)).await
}

/// Deletion: restore the mailbox settings the operator changed, unless someone changed them again
/// since (their value wins). Nothing is called when the operator never changed the mailbox.
async fn cleanup(cached: Arc<EmailChannel>, ctx: &Context) -> Result<Action, Error> {
    let action = restore_mailbox(&cached, ctx).await?;
    // The mailbox is free for another channel only once its settings are restored.
    claims::release(ctx, &cached).await?;
    Ok(action)
}

async fn restore_mailbox(cached: &EmailChannel, ctx: &Context) -> Result<Action, Error> {
    // The cache holds no status: the record of what was changed comes from a fresh read.
    let ns = cached.namespace().ok_or(Error::MissingObjectKey("namespace"))?;
    let api: Api<EmailChannel> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(obj) = api.get_opt(&cached.name_any()).await? else { return Ok(Action::await_change()) };
    let Some(record) = obj.status.as_ref().and_then(|s| s.mailbox.clone()) else {
        return Ok(Action::await_change());
    };
    if obj.annotations().get(ANNOTATION_PAUSED).is_some_and(|v| v == "true") {
        return Err(Error::InvalidSpec(format!(
            "{ANNOTATION_PAUSED} is set: remove it to let deletion restore the mailbox settings"
        )));
    }
    // The record is status, which namespace users can write: it is acted on only as far as the
    // channel's EntraTenant allows today — the tenant it names, a mailbox it lists, and (for
    // forwarding) a destination it allows; otherwise nothing is restored and deletion goes on.
    let policy = match restore_policy(&obj, ctx, &ns, &record).await? {
        Ok(policy) => policy,
        Err(refusal) => {
            let note = format!("Mailbox {} not restored: {refusal}", record.address);
            report::event(&ctx.recorder, &obj, EventType::Warning, "MailboxNotRestored", "Delete", note).await;
            return Ok(Action::await_change());
        }
    };
    let exchange = ctx.microsoft(&policy).await?.mailboxes;
    let (tenant, mailbox) = (record.tenant_id.as_str(), record.address.as_str());
    // Exchange's own classification: a 503 while restoring backs off like any transient error.
    let exchange_error = Error::Exchange;
    let mut restored = Vec::new();
    let allowed_forwarding = |previous: &ForwardingValue| match &previous.smtp_address {
        // An allowed destination, or a mailbox of the organisation the EntraTenant lists (the
        // archive address someone had set before the channel).
        Some(to) => {
            let to = to.strip_prefix("smtp:").or_else(|| to.strip_prefix("SMTP:")).unwrap_or(to);
            policy::admit_forwarding(&policy.name, &policy.spec, to).is_ok()
                || policy::admit_mailbox(&policy.name, &policy.spec, to).is_ok()
        }
        None => true,
    };
    if let (Some(applied), Some(previous)) = (&record.applied_forwarding, &record.previous_forwarding) {
        // A recorded destination today's EntraTenant does not allow: switched off, not restored.
        let allowed = allowed_forwarding(previous);
        if !allowed {
            let note = format!(
                "Mailbox {mailbox}: the recorded earlier forwarding destination is not one EntraTenant {} allows today: forwarding is switched off instead of restored",
                policy.name
            );
            report::event(&ctx.recorder, &obj, EventType::Warning, "MailboxNotRestored", "Delete", note).await;
        }
        let (target, keep_copy) =
            if allowed { (previous.smtp_address.as_deref(), previous.keep_copy) } else { (None, false) };
        let now = exchange.forwarding(tenant, mailbox).await.map_err(exchange_error)?;
        let still_ours = now.address.is_none()
            && now.smtp_address.as_deref().map(str::to_lowercase)
                == applied.smtp_address.as_deref().map(str::to_lowercase);
        if still_ours {
            exchange.set_forwarding(tenant, mailbox, target, keep_copy).await.map_err(exchange_error)?;
            restored.push(match target {
                Some(a) => format!("forwarding to {a}"),
                None => "no forwarding".to_string(),
            });
            if let (true, Some(internal)) = (allowed, &previous.internal_address) {
                restored.push(format!("(forwarding to the internal recipient {internal} must be restored by hand)"));
            }
        }
    }
    if let (Some(applied), Some(previous)) = (record.applied_smtp_auth_disabled, record.previous_smtp_auth_disabled) {
        let now = exchange.smtp_auth(tenant, mailbox).await.map_err(exchange_error)?;
        if SmtpAuthValue::from_disabled(now.mailbox_disabled) == applied {
            exchange.set_smtp_auth_disabled(tenant, mailbox, previous.as_disabled()).await.map_err(exchange_error)?;
            restored.push(format!("SMTP AUTH {previous:?}").to_lowercase());
        }
    }
    if !restored.is_empty() {
        let note = format!("Restored mailbox {mailbox}: {}", restored.join(", "));
        report::event(&ctx.recorder, &obj, EventType::Normal, "MailboxRestored", "Delete", note).await;
    }
    Ok(Action::await_change())
}

/// The EntraTenant that governs a channel's deletion: the one its spec names (or its shared
/// registration's), if it still admits the namespace, names the recorded tenant and lists the
/// recorded mailbox.
async fn restore_policy(
    obj: &EmailChannel,
    ctx: &Context,
    ns: &str,
    record: &MailboxStatus,
) -> Result<Result<admission::Tenant, Refusal>, Error> {
    let tenant_ref = match (&obj.spec.azure.tenant_ref, &obj.spec.azure.app_registration_ref) {
        (Some(t), _) => t.clone(),
        (None, Some(r)) => {
            let registrations: Api<AzureAppRegistration> = Api::namespaced(ctx.client.clone(), ns);
            match registrations.get_opt(&r.name).await? {
                Some(reg) => reg.spec.tenant_ref,
                None => {
                    return Ok(Err(Refusal {
                        rule: "azure.appRegistrationRef",
                        message: format!("AzureAppRegistration {} is gone: its EntraTenant cannot be read", r.name),
                    }));
                }
            }
        }
        (None, None) => return Ok(Err(Refusal { rule: "azure", message: "no EntraTenant named".into() })),
    };
    let tenant = match admission::tenant(ctx, ns, &tenant_ref).await? {
        Ok(t) => t,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if !tenant.tenant_id().eq_ignore_ascii_case(&record.tenant_id) {
        return Ok(Err(Refusal {
            rule: "status.mailbox.tenantId",
            message: format!(
                "EntraTenant {} names tenant {}, not the recorded {}",
                tenant.name,
                tenant.tenant_id(),
                record.tenant_id
            ),
        }));
    }
    Ok(policy::admit_mailbox(&tenant.name, &tenant.spec, &record.address).map(|()| tenant))
}

struct Run<'a> {
    obj: &'a EmailChannel,
    ctx: &'a Context,
    status: EmailChannelStatus,
    now: Timestamp,
}

impl Run<'_> {
    fn condition(&mut self, type_: &str, ok: bool, reason: &str, message: impl Into<String>) {
        let generation = self.obj.meta().generation;
        conditions::set(&mut self.status.conditions, type_, ok, reason, message, generation, self.now);
    }
}

async fn apply(cached: Arc<EmailChannel>, ctx: &Context) -> Result<Action, Error> {
    let ns = cached.namespace().ok_or(Error::MissingObjectKey("namespace"))?;
    let api: Api<EmailChannel> = Api::namespaced(ctx.client.clone(), &ns);
    // As for registrations: status records which key Connect holds, so act on a fresh read, not a
    // watch cache that may lag behind our own last status write (it made Api mode push twice).
    let Some(obj) = api.get_opt(&cached.name_any()).await? else { return Ok(Action::await_change()) };
    let mut run = Run { obj: &obj, ctx, status: obj.status.clone().unwrap_or_default(), now: ctx.clock.now() };
    run.status.observed_generation = obj.meta().generation;
    if obj.annotations().get(ANNOTATION_PAUSED).is_some_and(|v| v == "true") {
        run.condition(
            cond::READY,
            false,
            reason::PAUSED,
            format!("{ANNOTATION_PAUSED} is set: external systems are left untouched"),
        );
        report::apply_status(&api, &obj, &run.status, &ctx.settings.field_manager).await?;
        return Ok(Action::await_change());
    }
    let outcome = steps(&mut run, &ns).await;
    // A deferred wait is no failure: Ready stays as it was until the channel comes back.
    if let Err(e) = &outcome
        && !e.is_deferred()
    {
        run.condition(cond::READY, false, reason::EXTERNAL_ERROR, e.to_string());
    }
    report::apply_status(&api, &obj, &run.status, &ctx.settings.field_manager).await?;
    let applied_key = |s: Option<&EmailChannelStatus>| s.and_then(|s| s.connect.as_ref()?.applied_key_id.clone());
    if applied_key(Some(&run.status)) != applied_key(obj.status.as_ref()) {
        failpoint::hit("email-channel/after-status-write");
    }
    outcome?;
    // Look again soon only while waiting on something that cannot notify us (a person signing in
    // to Connect, a throttled or failing Exchange or Connect); waiting on the registration needs no
    // polling, its watch reconciles this channel when it changes. Otherwise: the periodic resync.
    let resync = ctx.settings.channel_resync;
    // Refused by its EntraTenant: an administrator may admit it (EntraTenant changes are not
    // watched), so look again within a minute, as for registrations.
    if conditions::get(&run.status.conditions, cond::ADMITTED).is_some_and(|c| c.status != "True") {
        return Ok(Action::requeue(resync.min(Duration::from_secs(60))));
    }
    let failing =
        REQUIRED.iter().filter_map(|t| conditions::get(&run.status.conditions, t)).filter(|c| c.status != "True");
    let reasons: Vec<&str> = failing.map(|c| c.reason.as_str()).collect();
    if !desired::poll_soon(&reasons) {
        return Ok(Action::requeue(resync));
    }
    // A sign-in in Connect usually follows soon after the asset was pushed (the person has the
    // portal open): look more often at first, then every 30 s.
    let signing_in = conditions::get(&run.status.conditions, cond::CONNECT_AUTHORIZED)
        .filter(|c| {
            c.status != "True" && c.reason == reason::SIGN_IN_REQUIRED && obj.spec.connect.mode == ConnectMode::Api
        })
        .map(|c| Duration::try_from(run.now.duration_since(c.last_transition_time.0)).unwrap_or_default());
    Ok(Action::requeue(resync.min(desired::poll_interval(signing_in))))
}

async fn steps(run: &mut Run<'_>, ns: &str) -> Result<(), Error> {
    let obj = run.obj;
    let spec = &obj.spec;
    let name = obj.name_any();
    let registrations: Api<AzureAppRegistration> = Api::namespaced(run.ctx.client.clone(), ns);
    let callback = connect::callback_url(&spec.connect.tenant_host);
    run.status.callback_url = Some(callback.clone());

    // 0. The trust boundary: the EntraTenant (the channel's own, or its shared registration's) must
    //    admit the namespace, the mailbox, the forwarding destination and the child's permissions;
    //    otherwise nothing is created and no external system is called.
    let referenced = match &spec.azure.app_registration_ref {
        Some(r) => registrations.get_opt(&r.name).await?,
        None => None,
    };
    let tenant_ref = match (&spec.azure.tenant_ref, &referenced) {
        (Some(t), _) => t.clone(),
        (None, Some(reg)) => reg.spec.tenant_ref.clone(),
        (None, None) => {
            let reference = spec.azure.app_registration_ref.as_ref().map(|r| r.name.clone()).unwrap_or_default();
            run.status.app_registration = Some(reference.clone());
            run.condition(
                cond::APP_REGISTRATION_READY,
                false,
                reason::DEPENDENCY_NOT_READY,
                format!("AzureAppRegistration {reference} does not exist in namespace {ns}: create it, or fix azure.appRegistrationRef"),
            );
            return finish(run);
        }
    };
    let tenant = match admit(run, ns, &tenant_ref).await? {
        Ok(tenant) => tenant,
        Err(refusal) => {
            let message = refusal.to_string();
            run.condition(cond::ADMITTED, false, reason::NOT_ADMITTED, message.clone());
            run.condition(cond::READY, false, reason::NOT_ADMITTED, message);
            return Ok(());
        }
    };
    // One channel per mailbox, cluster-wide: a second claim makes no external call at all.
    if let Claim::Taken { by } = claims::claim(run.ctx, obj, &spec.mailbox).await? {
        let message = format!(
            "mailbox {} is managed by EmailChannel {by}: one channel per mailbox; ask its owner, or the cluster administrator, to delete that channel first",
            spec.mailbox
        );
        run.condition(cond::ADMITTED, false, reason::MAILBOX_CLAIMED, message.clone());
        run.condition(cond::READY, false, reason::MAILBOX_CLAIMED, message);
        return Ok(());
    }
    run.condition(
        cond::ADMITTED,
        true,
        reason::ADMITTED,
        format!("EntraTenant {} admits this channel (tenant {})", tenant.name, tenant.tenant_id()),
    );

    // 1. The app registration.
    let (registration_name, registration) = match desired::child_spec(&name, spec) {
        Some(child_spec) => {
            let existing = registrations.get_opt(&name).await?;
            if let Some(existing) = &existing
                && !existing.owner_references().iter().any(|o| Some(&o.uid) == obj.uid().as_ref())
            {
                return Err(Error::InvalidSpec(format!(
                    "an AzureAppRegistration named {name} already exists and is not owned by this channel: use azure.appRegistrationRef to share it, or rename one of them"
                )));
            }
            // Apply only when something differs: an unchanged apply is a no-op for the apiserver
            // but still costs it a managed-fields merge on every channel reconcile.
            let current = existing.filter(|e| {
                e.spec == child_spec && e.labels().get(LABEL_EMAIL_CHANNEL).map(String::as_str) == Some(name.as_str())
            });
            let child = match current {
                Some(child) => child,
                None => {
                    let child = serde_json::json!({
                        "apiVersion": "connectemail.dev/v1alpha1",
                        "kind": "AzureAppRegistration",
                        "metadata": {
                            "name": name,
                            "ownerReferences": [obj.controller_owner_ref(&())],
                            "labels": {LABEL_EMAIL_CHANNEL: name},
                        },
                        "spec": child_spec,
                    });
                    let params = PatchParams::apply(&run.ctx.settings.field_manager).force();
                    registrations.patch(&name, &params, &Patch::Apply(&child)).await?
                }
            };
            (name.clone(), Some(child))
        }
        None => {
            let reference = spec.azure.app_registration_ref.as_ref().map(|r| r.name.clone()).unwrap_or_default();
            (reference, referenced)
        }
    };
    run.status.app_registration = Some(registration_name.clone());
    let Some(registration) = registration else {
        run.condition(
            cond::APP_REGISTRATION_READY,
            false,
            reason::DEPENDENCY_NOT_READY,
            format!("AzureAppRegistration {registration_name} does not exist in namespace {ns}: create it, or fix azure.appRegistrationRef"),
        );
        return finish(run);
    };
    if !registration.spec.redirect_uris.contains(&callback) {
        run.condition(
            cond::APP_REGISTRATION_READY,
            false,
            reason::INVALID_SPEC,
            format!(
                "AzureAppRegistration {registration_name} must list the Connect callback URL {callback} in redirectUris"
            ),
        );
    } else {
        let reg_status = registration.status.clone().unwrap_or_default();
        let ready = conditions::get(&reg_status.conditions, app_cond::READY);
        let message = ready
            .map(|c| c.message.clone())
            .unwrap_or_else(|| "waiting for the app registration to be reconciled".into());
        let ok = ready.is_some_and(|c| c.status == "True");
        run.condition(
            cond::APP_REGISTRATION_READY,
            ok,
            if ok { reason::RECONCILED } else { reason::DEPENDENCY_NOT_READY },
            format!("{registration_name}: {message}"),
        );
    }
    let reg_status = registration.status.clone().unwrap_or_default();
    run.status.app_id = reg_status.app_id.clone();
    run.status.secret_name = Some(registration.spec.client_secret.secret_name.clone());
    run.status.secret_not_after = reg_status.credential.as_ref().map(|c| c.not_after.clone());
    let cloud = tenant.cloud();
    let policy = tenant.clone();
    let tenant = tenant.tenant_id().to_string();
    let clients = run.ctx.microsoft(&policy).await?;
    let current_key = reg_status.credential.as_ref().filter(|c| c.verified_at.is_some()).map(|c| c.key_id.clone());

    // 3. Connect.
    let authorize_url = clients.endpoints.authorize_url(&tenant);
    let applied = match spec.connect.mode {
        ConnectMode::Manual => obj.annotations().get(ANNOTATION_CONNECT_SECRET_APPLIED).cloned(),
        ConnectMode::Api => run.status.connect.as_ref().and_then(|c| c.applied_key_id.clone()),
    };
    match spec.connect.mode {
        ConnectMode::Manual => {
            let secret_name = registration.spec.client_secret.secret_name.clone();
            match desired::connect_secret(current_key.as_deref(), applied.as_deref()) {
                ConnectSecret::Current => {
                    run.condition(
                        cond::CONNECT_ASSET_SYNCED,
                        true,
                        reason::RECONCILED,
                        "Connect holds the current client secret (confirmed by annotation)",
                    );
                    run.condition(
                        cond::CONNECT_SECRET_OUTDATED,
                        false,
                        reason::RECONCILED,
                        "Connect holds the current client secret",
                    );
                    acknowledge(run, &registrations, &registration, current_key.as_deref()).await?;
                }
                ConnectSecret::Outdated { current, .. } => {
                    let message = format!(
                        "enter the client secret from Secret {secret_name} (key client-secret) in Webex Connect → Assets → Apps → {} (client ID {}), then run: kubectl annotate emailchannel {name} -n {ns} --overwrite {ANNOTATION_CONNECT_SECRET_APPLIED}={current}",
                        spec.connect.asset_name,
                        reg_status.app_id.as_deref().unwrap_or("?"),
                    );
                    run.condition(
                        cond::CONNECT_ASSET_SYNCED,
                        false,
                        reason::WAITING_FOR_ACKNOWLEDGEMENT,
                        message.clone(),
                    );
                    run.condition(cond::CONNECT_SECRET_OUTDATED, true, reason::WAITING_FOR_ACKNOWLEDGEMENT, message);
                }
                ConnectSecret::NotIssued => {
                    run.condition(
                        cond::CONNECT_ASSET_SYNCED,
                        false,
                        reason::DEPENDENCY_NOT_READY,
                        "the app registration has no verified client secret yet",
                    );
                }
            }
            // Manual mode cannot observe Connect's token: a person confirming the secret is taken as
            // having run "Generate Token" once, which the message asks for.
            if applied.is_some() {
                run.condition(cond::CONNECT_AUTHORIZED, true, reason::RECONCILED, "confirmed by the connect-secret-applied annotation; if Connect reports SMTP Authentication Failed (7553), run Generate Token again");
            } else {
                run.condition(cond::CONNECT_AUTHORIZED, false, reason::SIGN_IN_REQUIRED, format!(
                    "after entering the values in Connect, click Generate Token and sign in as {} (authorization URL {authorize_url})", spec.mailbox
                ));
            }
        }
        ConnectMode::Api => {
            match push_to_connect(run, ns, &registration, (&tenant, cloud), current_key.as_deref(), &authorize_url)
                .await
            {
                Ok(Some(key)) => acknowledge(run, &registrations, &registration, Some(&key)).await?,
                Ok(None) => {}
                // Deferred (a wait beyond the reconcile's budget): the condition stays as it was.
                Err(e) if e.is_deferred() => {}
                Err(e) => {
                    let (why, message) = connect_problem(&e, &spec.connect, ns, &name);
                    run.condition(cond::CONNECT_ASSET_SYNCED, false, why, message);
                }
            }
        }
    }
    if spec.connect.mode == ConnectMode::Manual {
        run.status.connect = Some(ConnectStatus {
            asset_id: None,
            applied_key_id: applied,
            token_url: Some(clients.endpoints.token_url(&tenant)),
            scope: Some(connect::scope(cloud).to_string()),
            authorize_url: Some(authorize_url),
            creating_asset_name: None,
        });
    }

    // 4. Exchange Online (after Connect: in Api mode the forwarding address comes from the asset).
    let forwarding_address = match spec.connect.mode {
        ConnectMode::Manual => spec.connect.forwarding_address.clone(),
        ConnectMode::Api => run.status.forwarding_address.clone(),
    };
    run.status.forwarding_address = forwarding_address.clone();
    // Api mode learns the forwarding address from the asset, which waits for a verified secret:
    // configure the mailbox once, with the address, rather than re-reading Exchange meanwhile.
    if spec.connect.mode == ConnectMode::Api && spec.exchange.forwarding.enabled && forwarding_address.is_none() {
        let waiting = "waiting for the forwarding address Connect generates for the asset (the asset is created once the app registration has a verified client secret)";
        run.condition(cond::MAILBOX_CONFIGURED, false, reason::DEPENDENCY_NOT_READY, waiting);
        run.condition(
            cond::OUTBOUND_FORWARDING_ALLOWED,
            false,
            reason::DEPENDENCY_NOT_READY,
            "checked once the mailbox forwards to Connect",
        );
        return finish(run);
    }
    // A channel reconciles again when its registration becomes ready or rotates; if the mailbox was
    // checked recently with the same inputs and found right, skip Exchange until the next channel
    // resync (Exchange has no change feed; drift is found at that resync).
    let uid = run.obj.uid().unwrap_or_default();
    let inputs =
        format!("{tenant}|{}|{forwarding_address:?}|{:?}|{:?}", spec.mailbox, spec.exchange, run.obj.meta().generation);
    let fresh_for = run.ctx.settings.channel_resync.mul_f64(0.9);
    let configured = |run: &Run<'_>| {
        conditions::is_true(&run.status.conditions, cond::MAILBOX_CONFIGURED)
            && conditions::is_true(&run.status.conditions, cond::OUTBOUND_FORWARDING_ALLOWED)
    };
    // The destination Connect gave (Api mode) is checked as the one a person typed (Manual mode).
    if spec.exchange.forwarding.enabled
        && let Some(address) = &forwarding_address
        && let Err(refusal) = policy::admit_forwarding(&policy.name, &policy.spec, address)
    {
        run.condition(cond::MAILBOX_CONFIGURED, false, reason::NOT_ADMITTED, refusal.to_string());
        run.condition(
            cond::OUTBOUND_FORWARDING_ALLOWED,
            false,
            reason::NOT_ADMITTED,
            "checked once the forwarding destination is allowed",
        );
        return finish(run);
    }
    if configured(run) && run.ctx.mailbox_checked_recently(&uid, &inputs, fresh_for) {
        return finish(run);
    }
    let mailboxes = clients.mailboxes.clone();
    let target =
        Target { tenant: &tenant, cloud, tenant_object: &policy, forwarding_address: forwarding_address.as_deref() };
    mailbox(run, ns, mailboxes.as_ref(), &target).await?;
    run.ctx.mailbox_checked(&uid, configured(run).then_some(inputs));
    finish(run)
}

/// Whether the channel's EntraTenant admits it: namespace, mailbox, the forwarding address typed
/// in Manual mode, and the child registration's permissions.
async fn admit(
    run: &Run<'_>,
    ns: &str,
    reference: &crate::api::TenantReference,
) -> Result<Result<admission::Tenant, Refusal>, Error> {
    let spec = &run.obj.spec;
    let tenant = match admission::tenant(run.ctx, ns, reference).await? {
        Ok(t) => t,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let checks = || {
        policy::admit_mailbox(&tenant.name, &tenant.spec, &spec.mailbox)?;
        // Connect's forwarding address and its callback belong to this organisation only.
        policy::admit_tenant_host(&tenant.name, &tenant.spec, &spec.connect.tenant_host)?;
        if spec.exchange.forwarding.enabled
            && spec.connect.mode == ConnectMode::Manual
            && let Some(address) = &spec.connect.forwarding_address
        {
            policy::admit_forwarding(&tenant.name, &tenant.spec, address)?;
        }
        if let Some(child) = desired::child_spec(&run.obj.name_any(), spec) {
            policy::admit_registration(&tenant.name, &tenant.spec, &child)?;
        }
        Ok(())
    };
    Ok(checks().map(|()| tenant.clone()))
}

/// Label naming the channel on its child registration.
const LABEL_EMAIL_CHANNEL: &str = "connectemail.dev/email-channel";

/// Api mode: create or update the asset with the current settings and secret. Returns the key ID
/// Connect now holds, once it holds the current verified one.
async fn push_to_connect(
    run: &mut Run<'_>,
    ns: &str,
    registration: &AzureAppRegistration,
    (tenant, cloud): (&str, crate::api::Cloud),
    current_key: Option<&str>,
    authorize_url: &str,
) -> Result<Option<String>, Error> {
    use crate::connect::api::{AssetSettings, Org};
    use k8s_openapi::api::core::v1::Secret;
    let spec = &run.obj.spec;
    let secrets: Api<Secret> = Api::namespaced(run.ctx.client.clone(), ns);
    let read = |secret: Option<Secret>, key: &str| -> Option<secrecy::SecretString> {
        let bytes = secret?.data?.get(key)?.0.clone();
        String::from_utf8(bytes).ok().filter(|s| !s.is_empty()).map(Into::into)
    };
    let Some(creds) = &spec.connect.credentials_secret_ref else { return Ok(None) };
    let credentials = secrets.get_opt(&creds.name).await?;
    let found = credentials.is_some();
    let Some(token) = read(credentials, &creds.key) else {
        let problem = if found { format!("has no non-empty key {}", creds.key) } else { "does not exist".into() };
        run.condition(
            cond::CONNECT_ASSET_SYNCED,
            false,
            reason::INVALID_SPEC,
            format!(
                "Secret {ns}/{} (connect.credentialsSecretRef) {problem}: create it with the Webex access token under key {}, or fix connect.credentialsSecretRef",
                creds.name, creds.key
            ),
        );
        return Ok(None);
    };
    let org = Org {
        region: spec.connect.region,
        organization_id: spec.connect.organization_id.as_deref().unwrap_or_default(),
        token: &token,
    };
    let connect = run.ctx.connect.clone();
    let applied = run.status.connect.as_ref().and_then(|c| c.applied_key_id.clone());
    let (Some(key), Some(client_id)) = (current_key, registration.status.as_ref().and_then(|s| s.app_id.clone()))
    else {
        run.condition(
            cond::CONNECT_ASSET_SYNCED,
            false,
            reason::DEPENDENCY_NOT_READY,
            "waiting for a verified client secret",
        );
        return Ok(None);
    };
    // The secret to push: the registration's current verified one, read from its Secret.
    // Decoded by the one reader the registration controller uses: a client secret edited by hand
    // (its fingerprint no longer matches) is never pushed.
    let stored = crate::controller::app_registration::secret::observe(
        secrets.get_opt(&registration.spec.client_secret.secret_name).await?.as_ref(),
    );
    let (true, Some(client_secret)) = (stored.key_id.as_deref() == Some(key), stored.secret) else {
        run.condition(
            cond::CONNECT_ASSET_SYNCED,
            false,
            reason::DEPENDENCY_NOT_READY,
            "the Secret does not hold the current client secret yet",
        );
        return Ok(None);
    };
    // The asset this channel created, by ID; listing (every asset of the organisation, a cost
    // growing with the number of channels) only to find it the first time or if it was deleted.
    let known = run.status.connect.as_ref().and_then(|c| c.asset_id.clone());
    let by_id = match &known {
        Some(id) => {
            connect.get(&org, id).await?.filter(|a| a.asset_name.eq_ignore_ascii_case(&spec.connect.asset_name))
        }
        None => None,
    };
    // Ownership of an asset found by name is checked, never assumed. No public source documents a
    // free-text field (description, tag) of an email asset that could carry a marker, so the
    // operator's marker is its own status: the asset ID it recorded, or the asset name it recorded
    // just before its create call (`creatingAssetName`: a crash between the create and the status
    // write loses the ID, not the claim). Any other asset of that name was made by someone else:
    // it is taken over only once a person sets its ID in status (the condition says how).
    let creating = run.status.connect.as_ref().and_then(|c| c.creating_asset_name.clone());
    let existing = match by_id {
        Some(asset) => Some(asset),
        None => match connect.find(&org, &spec.connect.asset_name).await? {
            Some(asset) if creating.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&asset.asset_name)) => {
                Some(asset)
            }
            Some(asset) => {
                let name = run.obj.name_any();
                run.condition(
                    cond::CONNECT_ASSET_SYNCED,
                    false,
                    reason::ADOPTION_REFUSED,
                    format!(
                        "Webex Connect already has an email asset named '{}' (asset ID {}) that this channel did not create: the operator does not take it over. To let this channel manage it (its settings and client secret will be overwritten), set its ID: kubectl patch emailchannel {name} -n {ns} --subresource=status --type=merge -p '{{\"status\":{{\"connect\":{{\"assetId\":\"{}\"}}}}}}'; or choose another connect.assetName",
                        asset.asset_name, asset.asset_id, asset.asset_id
                    ),
                );
                return Ok(None);
            }
            None => None,
        },
    };
    let endpoints = &run.ctx.azure.endpoints(cloud);
    let settings = AssetSettings {
        asset_name: spec.connect.asset_name.clone(),
        email_id: spec.mailbox.clone(),
        smtp_server: spec.smtp.server.clone(),
        smtp_port: spec.smtp.port,
        smtp_security: connect::security_label(spec.smtp.security).to_uppercase(),
        smtp_username: spec.mailbox.clone(),
        client_id,
        client_secret,
        authorization_url: endpoints.authorize_url(tenant),
        token_url: endpoints.token_url(tenant),
        scope: connect::scope(cloud).to_string(),
    };
    let asset = match existing {
        None => {
            // The claim first (see above), then the create call.
            let name = spec.connect.asset_name.clone();
            if creating.as_deref() != Some(name.as_str()) {
                let mut status = run.status.connect.clone().unwrap_or_default();
                status.creating_asset_name = Some(name);
                run.status.connect = Some(status);
                let api: Api<EmailChannel> = Api::namespaced(run.ctx.client.clone(), ns);
                report::apply_status(&api, run.obj, &run.status, &run.ctx.settings.field_manager).await?;
            }
            failpoint::hit("email-channel/before-connect-push");
            let asset = match connect.create(&org, &settings).await {
                Ok(asset) => asset,
                Err(e) => {
                    // 409: someone else created an asset of that name meanwhile; it is not ours.
                    if e.status() == Some(409)
                        && let Some(status) = run.status.connect.as_mut()
                    {
                        status.creating_asset_name = None;
                    }
                    return Err(e.into());
                }
            };
            failpoint::hit("email-channel/after-connect-push");
            let note = format!("Created Connect email asset {} ({})", asset.asset_name, asset.asset_id);
            report::event(&run.ctx.recorder, run.obj, EventType::Normal, "ConnectAssetCreated", "Create", note).await;
            asset
        }
        Some(asset) if !settings.matches(&asset) || applied.as_deref() != Some(key) => {
            failpoint::hit("email-channel/before-connect-push");
            let asset = connect.update(&org, &asset.asset_id, &settings).await?;
            failpoint::hit("email-channel/after-connect-push");
            let note = format!("Pushed client ID, secret {key} and settings to Connect asset {}", asset.asset_id);
            report::event(&run.ctx.recorder, run.obj, EventType::Normal, "ConnectAssetUpdated", "Update", note).await;
            asset
        }
        Some(asset) => asset,
    };
    let callback = connect::callback_url(&spec.connect.tenant_host);
    match asset.callback_url.as_deref() {
        Some(reported) if reported != callback => run.condition(
            cond::CONNECT_ASSET_SYNCED,
            false,
            reason::INVALID_SPEC,
            format!("Connect reports the callback URL {reported}, but connect.tenantHost gives {callback}: fix connect.tenantHost"),
        ),
        _ => run.condition(
            cond::CONNECT_ASSET_SYNCED,
            true,
            reason::RECONCILED,
            format!("asset {} holds client secret {key} (Api mode is experimental: its Connect field mapping is provisional)", asset.asset_id),
        ),
    }
    if asset.is_authorized() {
        run.condition(
            cond::CONNECT_AUTHORIZED,
            true,
            reason::RECONCILED,
            "Connect holds a refresh token for the mailbox",
        );
    } else {
        run.condition(
            cond::CONNECT_AUTHORIZED,
            false,
            reason::SIGN_IN_REQUIRED,
            format!(
                "a person must sign in once: Webex Connect → Assets → Apps → {} → Generate Token, signing in as {} (authorization URL {authorize_url})",
                spec.connect.asset_name, spec.mailbox
            ),
        );
    }
    run.status.forwarding_address = asset.forwarding_address.clone();
    run.status.connect = Some(ConnectStatus {
        asset_id: Some(asset.asset_id.clone()),
        applied_key_id: Some(key.to_string()),
        token_url: None,
        scope: None,
        authorize_url: Some(authorize_url.to_string()),
        creating_asset_name: None,
    });
    Ok(Some(key.to_string()))
}

/// Tells the app registration that Connect holds `key`, so its previous secret may be revoked.
async fn acknowledge(
    run: &Run<'_>,
    registrations: &Api<AzureAppRegistration>,
    registration: &AzureAppRegistration,
    key: Option<&str>,
) -> Result<(), Error> {
    let Some(key) = key else { return Ok(()) };
    // Each channel acknowledges for itself: on a shared registration one channel's Connect
    // holding the new key says nothing about another's.
    let annotation = acknowledgement_annotation(&run.obj.name_any());
    if registration.annotations().get(&annotation).map(String::as_str) == Some(key) {
        return Ok(());
    }
    let patch = serde_json::json!({"metadata": {"annotations": {annotation: key}}});
    registrations.patch(&registration.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    failpoint::hit("email-channel/after-acknowledge");
    report::event(
        &run.ctx.recorder,
        run.obj,
        EventType::Normal,
        "SecretAcknowledged",
        "Acknowledge",
        format!("Connect holds client secret {key}; acknowledged on AzureAppRegistration {}", registration.name_any()),
    )
    .await;
    Ok(())
}

/// The reason and message for a failed push to Connect: a refused token and a missing list
/// operation say what a person must do; only throttling, server errors and no answer are
/// Throttled.
fn connect_problem(
    e: &Error,
    settings: &crate::api::email_channel::ConnectSettings,
    ns: &str,
    name: &str,
) -> (&'static str, String) {
    // Connect's descriptions end with a full stop; the advice follows after a colon.
    let what = |c: &crate::connect::api::ConnectError| c.to_string().trim_end_matches('.').to_string();
    match e {
        Error::Connect(c) if c.is_unauthorized() => {
            let secret = settings.credentials_secret_ref.as_ref().map_or_else(
                || "the Secret named by connect.credentialsSecretRef".to_string(),
                |r| format!("Secret {ns}/{} key {} (connect.credentialsSecretRef)", r.name, r.key),
            );
            let message = if c.status() == Some(403) {
                format!(
                    "{}: check connect.organizationId and put an access token of a Webex user who may manage that organization's Connect assets in {secret}; Webex personal access tokens last about 12 hours",
                    what(c)
                )
            } else {
                format!(
                    "{}: put a current Webex access token in {secret}; Webex personal access tokens last about 12 hours",
                    what(c)
                )
            };
            (reason::CONNECT_UNAUTHORIZED, message)
        }
        Error::Connect(c) if c.is_list_unavailable() => {
            let message = format!(
                "{}: the operator cannot look the asset '{}' up by name; create it in Webex Connect if it does not exist, then set its asset ID: kubectl patch emailchannel {name} -n {ns} --subresource=status --type=merge -p '{{\"status\":{{\"connect\":{{\"assetId\":\"<asset ID>\"}}}}}}'",
                what(c),
                settings.asset_name
            );
            (reason::EXTERNAL_ERROR, message)
        }
        Error::Azure(a) if a.is_operator_credential_failure() => (
            reason::OPERATOR_CREDENTIAL_FAILED,
            format!("{a}: the operator's own identity in this tenant must be fixed by an administrator"),
        ),
        Error::Connect(c) if c.is_transient() => (reason::THROTTLED, format!("{c}; retrying")),
        Error::Connect(c) => (reason::EXTERNAL_ERROR, c.to_string()),
        other if other.is_permanent() => (reason::EXTERNAL_ERROR, other.to_string()),
        other => (reason::THROTTLED, other.to_string()),
    }
}

fn exchange_problem(e: &ExchangeError) -> (&'static str, String) {
    match e {
        ExchangeError::AccessDenied { .. } => (reason::PERMISSION_DENIED, e.to_string()),
        ExchangeError::MailboxNotFound(_) => (reason::INVALID_SPEC, format!("{e}: check spec.mailbox")),
        other if other.is_transient() => (reason::THROTTLED, format!("{other}; retrying")),
        other => (reason::EXTERNAL_ERROR, other.to_string()),
    }
}

/// Where the mailbox lives and what it may be forwarded to.
struct Target<'a> {
    tenant: &'a str,
    cloud: crate::api::Cloud,
    tenant_object: &'a admission::Tenant,
    forwarding_address: Option<&'a str>,
}

/// A mailbox setting the operator may not change: the condition to report.
struct InUse(String);

/// SMTP AUTH and forwarding on the mailbox, then the outbound policy. Exchange errors become
/// conditions: the rest of the channel (and the secret rotation) carries on.
///
/// A setting the operator did not make is left alone unless the EntraTenant allows taking it
/// over; before the first change the earlier values are saved in status (written before the
/// change, so a crash cannot lose them) and restored when the channel is deleted.
async fn mailbox(run: &mut Run<'_>, ns: &str, exchange: &dyn MailboxAdmin, target: &Target<'_>) -> Result<(), Error> {
    let spec = run.obj.spec.clone();
    let tenant = target.tenant;
    let settings = spec.exchange.clone();
    let take_over = target.tenant_object.spec.mailbox_settings.take_over;
    let forward_to = if settings.forwarding.enabled { target.forwarding_address } else { None };
    let mut record = run.status.mailbox.clone().unwrap_or_else(|| MailboxStatus {
        address: spec.mailbox.clone(),
        tenant_id: tenant.to_string(),
        cloud: target.cloud,
        ..MailboxStatus::default()
    });
    let configured = async {
        let mut changed = Vec::new();
        let mut problems = Vec::new();
        let auth = exchange.smtp_auth(tenant, &spec.mailbox).await?;
        if let Some(disabled) = desired::smtp_auth_change(auth, settings.smtp_auth) {
            if !settings.manage {
                problems.push(format!(
                    "SMTP AUTH is {} (exchange.manage is false)",
                    if auth.effective_enabled() { "on" } else { "off" }
                ));
            } else if let Err(why) =
                desired::may_change_smtp_auth(auth, record.applied_smtp_auth_disabled.is_some(), take_over)
            {
                return Ok(Err(InUse(why)));
            } else {
                if record.applied_smtp_auth_disabled.is_none() {
                    record.previous_smtp_auth_disabled = Some(SmtpAuthValue::from_disabled(auth.mailbox_disabled));
                }
                record.applied_smtp_auth_disabled = Some(SmtpAuthValue::from_disabled(disabled));
                save_mailbox_record(run, ns, &record).await?;
                failpoint::hit("email-channel/before-set-smtp-auth");
                exchange.set_smtp_auth_disabled(tenant, &spec.mailbox, disabled).await?;
                failpoint::hit("email-channel/after-set-smtp-auth");
                changed.push(if settings.smtp_auth { "SMTP AUTH enabled" } else { "SMTP AUTH disabled" });
            }
        }
        let forwarding = exchange.forwarding(tenant, &spec.mailbox).await?;
        if settings.forwarding.enabled && forward_to.is_none() {
            problems.push("no Connect forwarding address is known yet".to_string());
        } else if desired::forwarding_needs_change(&forwarding, forward_to, settings.forwarding.keep_copy) {
            if !settings.manage {
                problems.push(format!(
                    "forwarding is {}, expected {} (exchange.manage is false)",
                    forwarding.smtp_address.as_deref().unwrap_or("off"),
                    forward_to.unwrap_or("off")
                ));
            } else if let Err(why) =
                desired::may_change_forwarding(&forwarding, record.applied_forwarding.is_some(), take_over)
            {
                return Ok(Err(InUse(why)));
            } else {
                if record.applied_forwarding.is_none() {
                    record.previous_forwarding = Some(ForwardingValue {
                        smtp_address: forwarding.smtp_address.clone(),
                        internal_address: forwarding.address.clone(),
                        keep_copy: forwarding.deliver_to_mailbox_and_forward,
                    });
                }
                record.applied_forwarding = Some(ForwardingValue {
                    smtp_address: forward_to.map(str::to_string),
                    internal_address: None,
                    keep_copy: forward_to.is_some() && settings.forwarding.keep_copy,
                });
                save_mailbox_record(run, ns, &record).await?;
                failpoint::hit("email-channel/before-set-forwarding");
                exchange.set_forwarding(tenant, &spec.mailbox, forward_to, settings.forwarding.keep_copy).await?;
                failpoint::hit("email-channel/after-set-forwarding");
                changed.push(if forward_to.is_some() { "forwarding set" } else { "forwarding removed" });
            }
        }
        Ok::<_, MailboxStepError>(Ok((changed, problems)))
    };
    let outcome = configured.await;
    if record.applied_forwarding.is_some() || record.applied_smtp_auth_disabled.is_some() {
        run.status.mailbox = Some(record);
    }
    let settings = spec.exchange.clone();
    let target = forward_to;
    let outcome = match outcome {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(InUse(why))) => {
            let message = format!(
                "{why}: remove it in Exchange Online, or ask the cluster administrator to set spec.mailboxSettings.takeOver on EntraTenant {} (the earlier value is then restored when this channel is deleted)",
                target_name(run)
            );
            run.condition(cond::MAILBOX_CONFIGURED, false, reason::MAILBOX_SETTING_IN_USE, message);
            run.condition(
                cond::OUTBOUND_FORWARDING_ALLOWED,
                false,
                reason::DEPENDENCY_NOT_READY,
                "checked once the mailbox is configured",
            );
            return Ok(());
        }
        Err(MailboxStepError::Kube(e)) => return Err(e),
        Err(MailboxStepError::Exchange(e)) => Err(e),
    };
    let configured = async { outcome };
    match configured.await {
        Ok((changed, problems)) if problems.is_empty() => {
            let what = match target {
                Some(t) => format!(
                    "SMTP AUTH {}, forwarding to {t}{}",
                    if settings.smtp_auth { "on" } else { "off" },
                    if settings.forwarding.keep_copy { " (keeping a copy)" } else { "" }
                ),
                None => format!("SMTP AUTH {}, no forwarding", if settings.smtp_auth { "on" } else { "off" }),
            };
            run.condition(cond::MAILBOX_CONFIGURED, true, reason::RECONCILED, what);
            if !changed.is_empty() {
                report::event(
                    &run.ctx.recorder,
                    run.obj,
                    EventType::Normal,
                    "MailboxConfigured",
                    "Configure",
                    format!("{}: {}", spec.mailbox, changed.join(", ")),
                )
                .await;
            }
        }
        Ok((_, problems)) => run.condition(cond::MAILBOX_CONFIGURED, false, reason::NOT_MANAGED, problems.join("; ")),
        Err(e) if is_deferred(&e) => {}
        Err(e) => {
            let (why, message) = exchange_problem(&e);
            run.condition(cond::MAILBOX_CONFIGURED, false, why, message);
        }
    }

    if !settings.forwarding.enabled {
        run.condition(cond::OUTBOUND_FORWARDING_ALLOWED, true, reason::NOT_MANAGED, "forwarding is not requested");
        return Ok(());
    }
    match exchange.outbound_forwarding(tenant, &spec.mailbox).await {
        Ok(o) if o.allows_external_forwarding() => {
            let by = o.rule.as_deref().map(|r| format!(" (rule {r})")).unwrap_or_default();
            run.condition(
                cond::OUTBOUND_FORWARDING_ALLOWED,
                true,
                reason::RECONCILED,
                format!("outbound spam policy {}{by} allows automatic forwarding", o.policy),
            );
        }
        Ok(o) => {
            let cause = if o.mode != AutoForwardingMode::On {
                format!(
                    "outbound spam policy {} has AutoForwardingMode {:?}{}: external forwarding is blocked. Fix: Set-HostedOutboundSpamFilterPolicy -Identity '{}' -AutoForwardingMode On, or create an outbound policy with AutoForwardingMode On and a rule for {} (Defender portal → Policies → Anti-spam)",
                    o.policy,
                    o.mode,
                    if o.mode == AutoForwardingMode::Automatic { " (now behaves as Off)" } else { "" },
                    o.policy,
                    spec.mailbox
                )
            } else {
                "the Default remote domain has AutoForwardEnabled false. Fix: Set-RemoteDomain Default -AutoForwardEnabled $true".into()
            };
            let note = if o.unevaluated_group_rules.is_empty() {
                String::new()
            } else {
                format!(" (group-scoped rules not evaluated: {})", o.unevaluated_group_rules.join(", "))
            };
            run.condition(
                cond::OUTBOUND_FORWARDING_ALLOWED,
                false,
                reason::FORWARDING_BLOCKED,
                format!("{cause}{note}"),
            );
        }
        Err(e) if is_deferred(&e) => {}
        Err(e) => {
            let (why, message) = exchange_problem(&e);
            run.condition(cond::OUTBOUND_FORWARDING_ALLOWED, false, why, message);
        }
    }
    Ok(())
}

/// An Exchange request given up because its wait did not fit the reconcile's wait budget: the
/// channel is reconciled again after the wait, and its condition stays as it was meanwhile.
fn is_deferred(e: &ExchangeError) -> bool {
    match e {
        ExchangeError::Transport(t) => t.deferred.is_some(),
        ExchangeError::Token(a) => matches!(a.as_ref(), crate::azure::AzureError::Transport(t) if t.deferred.is_some()),
        _ => false,
    }
}

/// The EntraTenant a channel was admitted by, for messages.
fn target_name(run: &Run<'_>) -> String {
    admitted_by(&run.status.conditions).unwrap_or_else(|| "(the channel's)".into())
}

/// The EntraTenant named by an `Admitted=True` condition ("EntraTenant NAME admits …").
fn admitted_by(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> Option<String> {
    conditions::get(conditions, cond::ADMITTED)
        .filter(|c| c.status == "True")
        .and_then(|c| c.message.strip_prefix("EntraTenant ").and_then(|m| m.split(' ').next()).map(str::to_string))
}

/// Errors of the mailbox step: Kubernetes (saving the earlier values) stops the reconcile,
/// Exchange ones become conditions.
enum MailboxStepError {
    Kube(Error),
    Exchange(ExchangeError),
}

impl From<ExchangeError> for MailboxStepError {
    fn from(e: ExchangeError) -> Self {
        Self::Exchange(e)
    }
}

impl From<Error> for MailboxStepError {
    fn from(e: Error) -> Self {
        Self::Kube(e)
    }
}

/// Saves the mailbox record in status before the change it describes is made.
async fn save_mailbox_record(run: &Run<'_>, ns: &str, record: &MailboxStatus) -> Result<(), Error> {
    if run.status.mailbox.as_ref() == Some(record) {
        return Ok(());
    }
    let mut status = run.status.clone();
    status.mailbox = Some(record.clone());
    let api: Api<EmailChannel> = Api::namespaced(run.ctx.client.clone(), ns);
    report::apply_status(&api, run.obj, &status, &run.ctx.settings.field_manager).await
}

/// The conditions Ready aggregates.
const REQUIRED: [&str; 5] = [
    cond::APP_REGISTRATION_READY,
    cond::MAILBOX_CONFIGURED,
    cond::OUTBOUND_FORWARDING_ALLOWED,
    cond::CONNECT_ASSET_SYNCED,
    cond::CONNECT_AUTHORIZED,
];

/// Ready aggregates the conditions that apply to this channel's spec.
fn finish(run: &mut Run<'_>) -> Result<(), Error> {
    let failing: Vec<String> = REQUIRED
        .iter()
        .filter_map(|t| match conditions::get(&run.status.conditions, t) {
            Some(c) if c.status == "True" => None,
            Some(c) => Some(format!("{}: {}", c.type_, c.message)),
            None => Some(format!("{t}: not evaluated yet")),
        })
        .collect();
    if failing.is_empty() {
        run.condition(cond::READY, true, reason::RECONCILED, "the channel is configured end to end");
    } else {
        run.condition(cond::READY, false, reason::IN_PROGRESS, failing.join("; "));
    }
    Ok(())
}
