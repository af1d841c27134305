//! The AzureAppRegistration reconcile pipeline:
//!
//! ```text
//! paused? ─▶ admitted by the EntraTenant? ─▶ Secret not someone else's? ─▶ resolve permissions
//!         ─▶ application (upsert by uniqueName / adopt) ─▶ service principal ─▶ credential
//!         (recover intent, rotate, verify, revoke, orphans) ─▶ consent ─▶ status
//! ```
//! Every decision is made by the pure functions of [`super::desired`], [`super::rotation`] and
//! [`super::credential`]; this module only observes, executes and reports. The credential step runs
//! before consent so that a consent problem never delays a rotation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use secrecy::SecretString;

use super::credential::{self, Retire, Step};
use super::desired::{self, ConsentFor, ResolvedPermission};
use super::rotation::{self, IssueReason, Revocation, SecretPolicy, VerifyOutcome};
use super::secret::{self, ObservedSecret};
use crate::api::Cloud;
use crate::api::app_registration::{
    AzureAppRegistrationStatus, CredentialStatus, DeletionPolicy, PendingRotation, PreviousCredential,
};
use crate::api::conditions::{app_registration as cond, reason};
use crate::api::{
    ANNOTATION_PAUSED, ANNOTATION_ROTATE, ANNOTATION_SECRET_ACKNOWLEDGED, AzureAppRegistration, EmailChannel,
    Permission,
};
use crate::azure::AzureError;
use crate::azure::error::aadsts;
use crate::azure::model::Application;
use crate::clients::CloudClients;
use crate::controller::{Context, Error, admission};
use crate::controller::{conditions, lifecycle, report};
use crate::failpoint;
use crate::policy::{self, Refusal};

/// The uniqueName of the application the operator creates for a resource: derived from the
/// operator instance (`--instance`), the namespace and the name — never the UID — so a restart, a
/// re-list, a restore from backup or the same manifests applied to a rebuilt cluster find the same
/// application instead of creating a second one. (Each operator instance sharing a tenant needs
/// its own instance name.)
pub fn application_key(instance: &str, namespace: &str, name: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{instance}/{namespace}/{name}").as_bytes());
    let hex: String = digest.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{UNIQUE_NAME_PREFIX}{hex}")
}

/// The owner stamp the operator writes on every application it creates or claims (its `notes`):
/// the resource's namespace and name. Namespace users cannot write an Entra application, so the
/// stamp, unlike anything in the resource's status, is proof of whom the application serves.
pub fn owner_stamp(namespace: &str, name: &str) -> String {
    format!("Managed by connect-email-operator from {namespace}/{name}")
}

fn stamped(app: &Application, namespace: &str, name: &str) -> bool {
    app.notes.as_deref() == Some(owner_stamp(namespace, name).as_str())
}

/// The uniqueName a resource's status records, when it differs from [`application_key`]
/// (resources created by earlier versions keep their UID-derived name). A hint only: status is
/// writable by namespace users, so it is used only for an application carrying this resource's
/// [`owner_stamp`].
fn recorded_key(obj: &AzureAppRegistration, derived: &str) -> Option<String> {
    obj.status
        .as_ref()
        .and_then(|s| s.unique_name.clone())
        .filter(|u| u.starts_with(UNIQUE_NAME_PREFIX) && u != derived)
}

/// The resource's own application (not adopted) and the uniqueName it goes by: the one status
/// records if the application holding it carries this resource's stamp, else [`application_key`].
pub async fn own_application(
    directory: &dyn crate::azure::Directory,
    tenant: &str,
    obj: &AzureAppRegistration,
    instance: &str,
) -> Result<(String, Option<Application>), AzureError> {
    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    let derived = application_key(instance, &ns, &name);
    if let Some(recorded) = recorded_key(obj, &derived)
        && let Some(app) = directory.app_by_unique_name(tenant, &recorded).await?
        && stamped(&app, &ns, &name)
    {
        return Ok((recorded, Some(app)));
    }
    let app = directory.app_by_unique_name(tenant, &derived).await?;
    Ok((derived, app))
}

/// The uniqueName an adopted application goes by once claimed: the one status records if the
/// application already holds it and carries this resource's stamp, else [`application_key`].
pub fn adopted_key(app: &Application, obj: &AzureAppRegistration, instance: &str) -> String {
    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    let derived = application_key(instance, &ns, &name);
    match recorded_key(obj, &derived) {
        Some(recorded) if app.unique_name.as_deref() == Some(recorded.as_str()) && stamped(app, &ns, &name) => recorded,
        _ => derived,
    }
}

/// The prefix of every uniqueName the operator gives an application.
pub const UNIQUE_NAME_PREFIX: &str = "connect-email-operator-";

pub async fn reconcile(obj: Arc<AzureAppRegistration>, ctx: Arc<Context>) -> Result<Action, Error> {
    lifecycle::reconcile_with_finalizer(obj, &ctx, |o| apply(o, &ctx), |o| cleanup(o, &ctx)).await
}

fn is_paused(obj: &AzureAppRegistration) -> bool {
    obj.annotations().get(ANNOTATION_PAUSED).is_some_and(|v| v == "true")
}

/// Working state of one reconcile: the status being built and what happened.
struct Run<'a> {
    obj: &'a AzureAppRegistration,
    ctx: &'a Context,
    /// The tenant (from the admitting EntraTenant) and its cloud.
    tenant: String,
    cloud: Cloud,
    /// The admitting EntraTenant, and the Microsoft clients with its operator credential.
    admitted: Option<admission::Tenant>,
    clients: Option<CloudClients>,
    api: Api<AzureAppRegistration>,
    status: AzureAppRegistrationStatus,
    now: Timestamp,
    /// Earliest time something must be re-checked.
    requeue: Duration,
}

impl Run<'_> {
    fn condition(&mut self, type_: &str, ok: bool, reason: &str, message: impl Into<String>) {
        let generation = self.obj.meta().generation;
        conditions::set(&mut self.status.conditions, type_, ok, reason, message, generation, self.now);
    }

    fn requeue_within(&mut self, d: Duration) {
        self.requeue = self.requeue.min(d);
    }

    fn requeue_at(&mut self, at: Timestamp) {
        let d = at.duration_since(self.now).max(jiff::SignedDuration::from_secs(1));
        self.requeue_within(Duration::try_from(d).unwrap_or(Duration::from_secs(1)));
    }

    async fn write_status(&self) -> Result<(), Error> {
        report::apply_status(&self.api, self.obj, &self.status, &self.ctx.settings.field_manager).await
    }

    async fn event(&self, type_: EventType, reason: &str, action: &str, note: String) {
        report::event(&self.ctx.recorder, self.obj, type_, reason, action, note).await
    }
}

async fn apply(cached: Arc<AzureAppRegistration>, ctx: &Context) -> Result<Action, Error> {
    let ns = cached.namespace().ok_or(Error::MissingObjectKey("namespace"))?;
    // The watch cache can lag behind our own last status write (a Secret event may arrive first);
    // acting on a stale status could rotate twice or revoke a secret consumers just received.
    // Status is the rotation's journal, so every reconcile starts from a fresh read.
    let api: Api<AzureAppRegistration> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(obj) = api.get_opt(&cached.name_any()).await? else { return Ok(Action::await_change()) };
    let mut run = Run {
        obj: &obj,
        ctx,
        tenant: String::new(),
        cloud: Cloud::default(),
        admitted: None,
        clients: None,
        api,
        status: obj.status.clone().unwrap_or_default(),
        now: ctx.clock.now(),
        requeue: ctx.settings.resync,
    };
    run.status.observed_generation = obj.meta().generation;
    if is_paused(&obj) {
        run.condition(
            cond::READY,
            false,
            reason::PAUSED,
            format!("{ANNOTATION_PAUSED} is set: external systems are left untouched"),
        );
        run.write_status().await?;
        return Ok(Action::await_change());
    }
    // The trust boundary first: no external call for a resource its EntraTenant does not admit.
    let resources = match admit(&obj, ctx, &ns).await? {
        Ok((tenant, resources)) => {
            run.tenant = tenant.tenant_id().to_string();
            run.cloud = tenant.cloud();
            run.admitted = Some(tenant.clone());
            run.condition(
                cond::ADMITTED,
                true,
                reason::ADMITTED,
                format!("EntraTenant {} admits this resource (tenant {})", tenant.name, run.tenant),
            );
            resources
        }
        Err(refusal) => {
            let message = refusal.to_string();
            run.condition(cond::ADMITTED, false, reason::NOT_ADMITTED, message.clone());
            run.condition(cond::READY, false, reason::NOT_ADMITTED, message);
            run.write_status().await?;
            // The administrator may admit it: look again within a minute.
            return Ok(Action::requeue(ctx.settings.resync.min(Duration::from_secs(60))));
        }
    };
    // The operator's identity in this tenant (the EntraTenant's credential Secret is read here):
    // when it is missing nothing was called, and nothing is recorded for deletion to clean up.
    let admitted = run.admitted.clone().ok_or(Error::MissingObjectKey("admitting EntraTenant"))?;
    match ctx.microsoft(&admitted).await {
        Ok(clients) => run.clients = Some(clients),
        Err(e) => {
            let e = Error::Azure(e);
            let (why, message) = describe_failure(&e);
            run.condition(cond::READY, false, why, message);
            run.write_status().await?;
            return Err(e);
        }
    }
    // Recorded before the first external call, so that deletion knows where to clean up even if
    // the operator stops right after creating the application.
    if run.status.tenant_id.is_none() {
        run.status.tenant_id = Some(run.tenant.clone());
        run.status.cloud = Some(run.cloud);
        run.write_status().await?;
    }
    let outcome = apply_steps(&mut run, &resources).await;
    // A deferred wait is no failure: Ready stays as it was until the object comes back.
    if let Err(e) = &outcome
        && !e.is_deferred()
    {
        let (why, message) = describe_failure(e);
        run.condition(cond::READY, false, why, message);
    }
    run.write_status().await?;
    outcome?;
    Ok(Action::requeue(jitter(run.requeue)))
}

/// Whether the resource's EntraTenant admits it, and the application IDs its permissions resolve by.
async fn admit(
    obj: &AzureAppRegistration,
    ctx: &Context,
    ns: &str,
) -> Result<Result<(admission::Tenant, policy::ResourceIds), Refusal>, Error> {
    let tenant = match admission::tenant(ctx, ns, &obj.spec.tenant_ref).await? {
        Ok(t) => t,
        Err(refusal) => return Ok(Err(refusal)),
    };
    // The application lives where it was created: an EntraTenant recreated with another tenant ID
    // under the same name must not send this resource's calls to another tenant.
    if let Some(recorded) = obj.status.as_ref().and_then(|s| s.tenant_id.as_deref())
        && !recorded.eq_ignore_ascii_case(tenant.tenant_id())
    {
        return Ok(Err(Refusal {
            rule: "tenantRef",
            message: format!(
                "the application was created in tenant {recorded}, but EntraTenant {} now names tenant {}: restore the EntraTenant, or create a new resource",
                tenant.name,
                tenant.tenant_id()
            ),
        }));
    }
    Ok(policy::admit_registration(&tenant.name, &tenant.spec, &obj.spec).map(|ids| (tenant, ids)))
}

/// Condition reason and user-facing message for an error (no secret ever appears in these).
fn describe_failure(e: &Error) -> (&'static str, String) {
    match e {
        Error::Refused { reason, message } => (reason, message.clone()),
        Error::InvalidSpec(m) => (reason::INVALID_SPEC, m.clone()),
        Error::Azure(a) if a.is_operator_credential_failure() => (
            reason::OPERATOR_CREDENTIAL_FAILED,
            format!("{a}: the operator's own identity in this tenant must be fixed by an administrator"),
        ),
        Error::Azure(a) if a.is_permission_denied() => (
            reason::PERMISSION_DENIED,
            format!("{a}: grant the operator's identity the Graph permissions listed in the README"),
        ),
        Error::Azure(a) if a.is_throttled() => (reason::THROTTLED, format!("{a}; retrying with backoff")),
        other => (reason::EXTERNAL_ERROR, other.to_string()),
    }
}

/// Up to 2% later than asked, so that many resources created together do not renew in lockstep.
fn jitter(d: Duration) -> Duration {
    use rand::Rng;
    d + d.mul_f64(rand::rng().random_range(0.0..0.02))
}

async fn apply_steps(run: &mut Run<'_>, resources: &policy::ResourceIds) -> Result<(), Error> {
    let obj = run.obj;
    let spec = &obj.spec;
    let uid = obj.uid().ok_or(Error::MissingObjectKey("uid"))?;
    let clients = run.clients.clone().ok_or(Error::MissingObjectKey("Microsoft clients"))?;
    let tenant_id = run.tenant.clone();
    let tenant = tenant_id.as_str();
    let policy = SecretPolicy::from_spec(&spec.client_secret).map_err(Error::InvalidSpec)?;

    // A Secret this resource did not create is never written to, and no password is issued for it:
    // checked before any call to Graph, so nothing is half-applied.
    if let Some(existing) = read_secret(run).await?
        && !secret::owned_by(&existing, &uid)
    {
        let message = format!(
            "Secret {} already exists and was not created for this resource: choose another clientSecret.secretName, or delete that Secret if it is not in use",
            spec.client_secret.secret_name
        );
        run.condition(cond::CREDENTIAL_READY, false, reason::SECRET_CONFLICT, message.clone());
        return Err(Error::Refused { reason: reason::SECRET_CONFLICT, message });
    }

    // Permissions by application ID → permission ids. A bad name leaves the application untouched
    // (nothing half-applied) but does not stop credential management of an existing application.
    // A Graph error while resolving is a consent problem too: it never delays credential
    // management of an existing application (it is returned, for a retry, after the credential).
    let mut resolve_error = None;
    let resolved = match resolve(&clients, tenant, &spec.permissions, resources).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(problem)) => {
            run.condition(cond::CONSENT_GRANTED, false, reason::UNKNOWN_PERMISSION, problem.clone());
            Err(problem)
        }
        Err(e) => {
            let (why, message) = describe_failure(&e);
            let problem = format!("resolving permissions: {message}");
            if !e.is_deferred() {
                run.condition(cond::CONSENT_GRANTED, false, why, problem.clone());
            }
            resolve_error = Some(e);
            Err(problem)
        }
    };

    // Application.
    let notes = owner_stamp(&obj.namespace().unwrap_or_default(), &obj.name_any());
    let mut desired = desired::desired_application(spec, resolved.as_deref().unwrap_or_default(), notes);
    let instance = run.ctx.settings.instance.clone();
    let (key, existing) = match &spec.adopt {
        Some(adopt) => {
            let app = clients.directory.app_by_app_id(tenant, &adopt.app_id).await?.ok_or_else(|| {
                Error::InvalidSpec(format!(
                    "adopt.appId {} was not found in tenant {tenant}: check the application (client) ID",
                    adopt.app_id
                ))
            })?;
            let key = adopted_key(&app, obj, &instance);
            let ns = obj.namespace().unwrap_or_default();
            if let Err(message) = desired::may_adopt(&app, &key, &ns, &obj.name_any()) {
                return Err(Error::Refused { reason: reason::ADOPTION_REFUSED, message });
            }
            (key, Some(app))
        }
        None => own_application(clients.directory.as_ref(), tenant, obj, &instance).await?,
    };
    let app = match (existing, &resolved) {
        (None, Err(_)) if resolve_error.is_some() => return Err(resolve_error.take().expect("checked")),
        (None, Err(problem)) => {
            return Err(Error::InvalidSpec(format!(
                "the application is not created until permissions resolve: {problem}"
            )));
        }
        (None, Ok(_)) => match clients.directory.upsert_app(tenant, &key, &desired).await {
            Ok(app) => {
                run.event(
                    EventType::Normal,
                    "ApplicationCreated",
                    "Create",
                    format!("Created Entra application {} (appId {})", spec.display_name, app.app_id),
                )
                .await;
                app
            }
            // The uniqueName is taken although no live application has it: a deleted one (Entra
            // keeps them 30 days) of a resource of the same namespace/name, deleted and created
            // again. Restored when its stamp names this resource: the same appId, so Connect keeps
            // its client ID; anything else holding the name is never touched.
            Err(e) if e.has_graph_code("Request_MultipleObjectsWithSameKeyValue") => {
                let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
                match clients.directory.deleted_app_by_unique_name(tenant, &key).await? {
                    Some(deleted) if stamped(&deleted, &ns, &name) => {
                        let app = clients.directory.restore_deleted_app(tenant, &deleted.id).await?;
                        run.event(
                            EventType::Normal,
                            "ApplicationRestored",
                            "Create",
                            format!(
                                "Restored Entra application {} (appId {}) from deleted items: this resource was deleted and created again under the same name",
                                spec.display_name, app.app_id
                            ),
                        )
                        .await;
                        clients.directory.update_app(tenant, &app.id, &desired).await?;
                        app
                    }
                    Some(deleted) => {
                        return Err(Error::Refused {
                            reason: reason::ADOPTION_REFUSED,
                            message: format!(
                                "uniqueName {key} is held by deleted application {} (appId {}), which another resource created: restore or permanently delete it in the Entra admin center (Deleted applications)",
                                deleted.id, deleted.app_id
                            ),
                        });
                    }
                    None => return Err(Error::Azure(e)),
                }
            }
            Err(e) => return Err(Error::Azure(e)),
        },
        (Some(app), Ok(_)) => {
            let drift = desired::application_drift(&app, &desired);
            // Adopting: claim the app with our uniqueName when it has none (it can be set only once).
            if spec.adopt.is_some() && app.unique_name.is_none() {
                desired.unique_name = Some(key.clone());
            }
            if !drift.is_empty() || desired.unique_name.is_some() {
                clients.directory.update_app(tenant, &app.id, &desired).await?;
                if !drift.is_empty() {
                    run.event(
                        EventType::Normal,
                        "ApplicationUpdated",
                        "Update",
                        format!("Repaired {} on the Entra application", drift.join(", ")),
                    )
                    .await;
                }
            }
            app
        }
        (Some(app), Err(_)) => app,
    };
    run.status.unique_name =
        desired.unique_name.clone().or(app.unique_name.clone()).or_else(|| spec.adopt.is_none().then(|| key.clone()));
    run.status.app_id = Some(app.app_id.clone());
    run.status.object_id = Some(app.id.clone());

    // Service principal: needed before the token endpoint issues tokens for the app in its tenant.
    let sp = match clients.directory.service_principal(tenant, &app.app_id).await? {
        Some(sp) => sp,
        None => clients.directory.ensure_service_principal(tenant, &app.app_id).await?,
    };
    run.status.service_principal_id = Some(sp.id.clone());

    // Credential.
    manage_credential(run, &clients, &policy, &app, &uid).await?;

    // Consent (errors reported, and returned after status is written).
    let consent = match &resolved {
        Ok(resolved) => match consent_users(run, &clients).await {
            Ok(Some(users)) => match manage_consent(run, &clients, resolved, ConsentFor::Users(&users), &sp.id).await {
                Ok(()) => restrict_sign_in(run, &clients, &sp, &users).await,
                Err(e) => Err(e),
            },
            Ok(None) => manage_consent(run, &clients, resolved, ConsentFor::Everyone, &sp.id).await,
            Err(e) => Err(e),
        },
        Err(_) => Ok(()),
    };

    let ready = conditions::is_true(&run.status.conditions, cond::CREDENTIAL_READY)
        && (conditions::is_true(&run.status.conditions, cond::CONSENT_GRANTED) || !spec.admin_consent)
        && resolved.is_ok();
    let message = if ready {
        format!("application {} ready; secret in Secret {}", app.app_id, spec.client_secret.secret_name)
    } else {
        let failing: Vec<String> = run
            .status
            .conditions
            .iter()
            .filter(|c| c.type_ != cond::READY && c.type_ != cond::ROTATING && c.status != "True")
            .filter(|c| spec.admin_consent || c.type_ != cond::CONSENT_GRANTED)
            .map(|c| format!("{}: {}", c.type_, c.message))
            .collect();
        failing.join("; ")
    };
    let why = if ready { reason::RECONCILED } else { reason::IN_PROGRESS };
    run.condition(cond::READY, ready, why, message);
    match resolve_error {
        Some(e) => Err(e),
        None => consent,
    }
}

/// Resource service principals are looked up by application ID only (the admission resolved
/// display names of well-known APIs to their first-party IDs).
async fn resolve(
    clients: &CloudClients,
    tenant: &str,
    permissions: &[Permission],
    app_ids: &policy::ResourceIds,
) -> Result<Result<Vec<ResolvedPermission>, String>, Error> {
    let mut resources = BTreeMap::new();
    for p in permissions {
        if !resources.contains_key(&p.resource) {
            let app_id = app_ids.get(&p.resource).ok_or(Error::MissingObjectKey("admitted resource app ID"))?;
            let sp = clients.directory.service_principal(tenant, app_id).await?;
            resources.insert(p.resource.clone(), sp);
        }
    }
    Ok(desired::resolve_permissions(permissions, &resources))
}

/// The users delegated consent is for: the Entra users of `consentFor`'s mailboxes (read from
/// Exchange, at most once an hour per mailbox; never taken from status, which a namespace user
/// can write), or None
/// for every user (admitted only where the EntraTenant allows tenant-wide consent). A mailbox
/// without a user stops consent: nothing is granted, nothing withdrawn.
async fn consent_users(run: &mut Run<'_>, clients: &CloudClients) -> Result<Option<Vec<String>>, Error> {
    let spec = &run.obj.spec;
    if spec.consent_for.is_empty() {
        return Ok(None);
    }
    if !spec.admin_consent {
        return Ok(Some(Vec::new()));
    }
    match user_ids(clients.mailboxes.as_ref(), &run.tenant, &spec.consent_for, Some(run.ctx)).await {
        Ok(users) => Ok(Some(users)),
        Err((mailbox, crate::exchange::ExchangeError::MailboxNotFound(_))) => {
            let message = format!(
                "consentFor: Exchange Online has no mailbox {mailbox} with an Entra user in tenant {}: check the address; no consent is granted until it resolves",
                run.tenant
            );
            run.condition(cond::CONSENT_GRANTED, false, reason::PRINCIPAL_NOT_FOUND, message.clone());
            Err(Error::Refused { reason: reason::PRINCIPAL_NOT_FOUND, message })
        }
        Err((mailbox, e)) => {
            let error = Error::Exchange(e);
            if !error.is_deferred() {
                run.condition(
                    cond::CONSENT_GRANTED,
                    false,
                    reason::EXTERNAL_ERROR,
                    format!("looking up the Entra user of {mailbox}: {error}"),
                );
            }
            Err(error)
        }
    }
}

/// The Entra object IDs of the users of `mailboxes`, sorted and without repeats: read from
/// Exchange, or from the reconciles' in-memory cache when `known` is given. On failure, the first
/// mailbox that failed and why. (`plan` calls it without the cache.)
pub async fn user_ids(
    exchange: &dyn crate::exchange::MailboxAdmin,
    tenant: &str,
    mailboxes: &[String],
    known: Option<&Context>,
) -> Result<Vec<String>, (String, crate::exchange::ExchangeError)> {
    let mut users = Vec::new();
    for mailbox in mailboxes {
        if let Some(id) = known.and_then(|ctx| ctx.known_principal(tenant, mailbox)) {
            users.push(id);
            continue;
        }
        let id = exchange.user_object_id(tenant, mailbox).await.map_err(|e| (mailbox.clone(), e))?;
        if let Some(ctx) = known {
            ctx.principal_read(tenant, mailbox, &id);
        }
        users.push(id);
    }
    users.sort();
    users.dedup();
    Ok(users)
}

/// Sign-in by the consented users only, where the EntraTenant asks for it
/// (`permissions.assignedUsersOnly`): assign them, then require assignment, then remove anyone
/// else's assignment. Only on the operator's own application.
async fn restrict_sign_in(
    run: &mut Run<'_>,
    clients: &CloudClients,
    sp: &crate::azure::model::ServicePrincipal,
    users: &[String],
) -> Result<(), Error> {
    let wanted = run.admitted.as_ref().is_some_and(|t| t.spec.permissions.assigned_users_only);
    let spec = &run.obj.spec;
    if !wanted || spec.adopt.is_some() || !spec.admin_consent || users.is_empty() {
        return Ok(());
    }
    let tenant = run.tenant.clone();
    let tenant = tenant.as_str();
    let step = async {
        let assigned = clients.directory.assigned_to(tenant, &sp.id).await?;
        let plan = desired::assignment_plan(users, sp.app_role_assignment_required, &assigned);
        for user in &plan.assign {
            clients.directory.assign_app_role(tenant, user, &sp.id, desired::DEFAULT_ACCESS_ROLE_ID).await?;
        }
        if plan.require {
            clients.directory.set_assignment_required(tenant, &sp.id, true).await?;
        }
        for (assignment, _) in &plan.unassign {
            clients.directory.unassign_from(tenant, &sp.id, assignment).await?;
        }
        Ok::<_, AzureError>(plan)
    };
    match step.await {
        Ok(plan) => {
            if let Some(c) = run.status.conditions.iter_mut().find(|c| c.type_ == cond::CONSENT_GRANTED)
                && !c.message.contains("sign-in by assigned users only")
            {
                c.message.push_str("; sign-in by assigned users only");
            }
            if !plan.is_empty() {
                run.event(
                    EventType::Normal,
                    "SignInRestricted",
                    "Consent",
                    format!(
                        "sign-in restricted to assigned users: {} assigned, assignment {}, {} other assignment(s) removed",
                        plan.assign.len(),
                        if plan.require { "now required" } else { "already required" },
                        plan.unassign.len()
                    ),
                )
                .await;
            }
            Ok(())
        }
        Err(e) => {
            let error = Error::Azure(e);
            if !error.is_deferred() {
                let (why, message) = describe_failure(&error);
                let message = format!(
                    "restricting sign-in to the assigned users (EntraTenant permissions.assignedUsersOnly, which needs the operator's AppRoleAssignment.ReadWrite.All): {message}"
                );
                run.condition(cond::CONSENT_GRANTED, false, why, message);
            }
            Err(error)
        }
    }
}

async fn manage_consent(
    run: &mut Run<'_>,
    clients: &CloudClients,
    resolved: &[ResolvedPermission],
    consent_for: ConsentFor<'_>,
    sp_id: &str,
) -> Result<(), Error> {
    let spec = &run.obj.spec;
    let tenant = run.tenant.clone();
    let tenant = tenant.as_str();
    if !spec.admin_consent {
        run.condition(
            cond::CONSENT_GRANTED,
            false,
            reason::NOT_MANAGED,
            "adminConsent is false: grant consent in the Entra admin center if needed",
        );
        return Ok(());
    }
    // Observe, plan (pair by pair; on an adopted application only the operator's own pairs may
    // be withdrawn), journal what will be the operator's before granting it, act.
    let observed = async {
        let assignments = clients.directory.app_role_assignments(tenant, sp_id).await?;
        let grants = clients.directory.delegated_grants(tenant, sp_id).await?;
        Ok::<_, AzureError>((assignments, grants))
    };
    let plan = match observed.await {
        Ok((assignments, grants)) => {
            let owned = spec.adopt.is_some().then_some(run.status.granted_consent.as_slice());
            Ok(desired::consent_plan(resolved, consent_for, &assignments, &grants, owned))
        }
        Err(e) => Err(e),
    };
    if let Ok(plan) = &plan
        && spec.adopt.is_some()
        && !plan.is_empty()
    {
        // A crash after granting must not leave the grant looking like a person's.
        let mut journal = run.status.granted_consent.clone();
        for add in &plan.owned_after {
            match journal.iter_mut().find(|g| g.resource_id == add.resource_id && g.principal_id == add.principal_id) {
                Some(g) => {
                    for r in &add.app_role_ids {
                        if !g.app_role_ids.contains(r) {
                            g.app_role_ids.push(r.clone());
                        }
                    }
                    for sc in &add.scopes {
                        if !g.scopes.contains(sc) {
                            g.scopes.push(sc.clone());
                        }
                    }
                }
                None => journal.push(add.clone()),
            }
        }
        if journal != run.status.granted_consent {
            run.status.granted_consent = journal;
            run.write_status().await?;
        }
    }
    let step = async {
        let plan = plan?;
        for (resource_id, role_id, _) in &plan.assign {
            clients.directory.assign_app_role(tenant, sp_id, resource_id, role_id).await?;
        }
        for (assignment_id, _) in &plan.unassign {
            clients.directory.unassign_app_role(tenant, sp_id, assignment_id).await?;
        }
        for grant in &plan.create_grants {
            let user = grant.principal_id.as_deref();
            clients.directory.create_delegated_grant(tenant, sp_id, &grant.resource_id, user, &grant.scope).await?;
        }
        for (grant_id, scope) in &plan.update_grants {
            clients.directory.update_delegated_grant(tenant, grant_id, scope).await?;
        }
        for (grant_id, _) in &plan.delete_grants {
            clients.directory.delete_delegated_grant(tenant, grant_id).await?;
        }
        Ok::<_, AzureError>(plan)
    };
    match step.await {
        Ok(plan) => {
            run.status.granted_consent = plan.owned_after.clone();
            run.status.granted_permissions = resolved
                .iter()
                .map(|r| Permission {
                    resource: r.resource.clone(),
                    application: r.roles.iter().map(|(v, _)| v.clone()).collect(),
                    delegated: r.scopes.iter().map(|(v, _)| v.clone()).collect(),
                })
                .collect();
            let summary: Vec<String> = run
                .status
                .granted_permissions
                .iter()
                .map(|p| {
                    let names: Vec<&str> = p.application.iter().chain(&p.delegated).map(String::as_str).collect();
                    format!("{}: {}", p.resource, names.join(" "))
                })
                .collect();
            let whom = match consent_for {
                ConsentFor::Users(_) => format!("for the users of {} only", spec.consent_for.join(", ")),
                ConsentFor::Everyone => "for every user of the tenant".to_string(),
            };
            run.condition(
                cond::CONSENT_GRANTED,
                true,
                reason::RECONCILED,
                format!("admin consent granted ({}) {whom}", summary.join("; ")),
            );
            if plan.narrows_to_users() {
                run.event(
                    EventType::Normal,
                    "ConsentNarrowed",
                    "Consent",
                    format!(
                        "replaced consent for every user of the tenant by consent {whom}: the new grants were created first, then the tenant-wide ones removed"
                    ),
                )
                .await;
            }
            if !plan.is_empty() {
                run.event(
                    EventType::Normal,
                    "ConsentUpdated",
                    "Consent",
                    format!(
                        "admin consent: {} role(s) assigned, {} removed, {} grant(s) created, {} updated, {} deleted",
                        plan.assign.len(),
                        plan.unassign.len(),
                        plan.create_grants.len(),
                        plan.update_grants.len(),
                        plan.delete_grants.len()
                    ),
                )
                .await;
            }
            Ok(())
        }
        Err(e) => {
            let error = Error::Azure(e);
            if !error.is_deferred() {
                let (why, message) = describe_failure(&error);
                run.condition(cond::CONSENT_GRANTED, false, why, message);
            }
            Err(error)
        }
    }
}

async fn read_secret(run: &Run<'_>) -> Result<Option<Secret>, Error> {
    let ns = run.obj.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(run.ctx.client.clone(), &ns);
    Ok(api.get_opt(&run.obj.spec.client_secret.secret_name).await?)
}

/// Who must acknowledge a successor before a previous key goes: every channel using this
/// registration (each with its own annotation), or else, with `requireAcknowledgement`, whoever
/// sets the shared annotation. Listed only when a rotation is under way.
async fn observe_consumers(run: &Run<'_>, policy: &SecretPolicy) -> Result<Vec<credential::Consumer>, Error> {
    let ns = run.obj.namespace().unwrap_or_default();
    let channels: Api<EmailChannel> = Api::namespaced(run.ctx.client.clone(), &ns);
    let channels = channels.list(&Default::default()).await?.items;
    Ok(consumers(run.obj, &channels, policy.require_acknowledgement))
}

/// The consumers of a registration among the namespace's channels (pure; `plan` uses it too).
pub fn consumers(
    registration: &AzureAppRegistration,
    channels: &[EmailChannel],
    require_acknowledgement: bool,
) -> Vec<credential::Consumer> {
    let shared = registration.annotations().get(ANNOTATION_SECRET_ACKNOWLEDGED).cloned();
    let mut consumers: Vec<credential::Consumer> = channels
        .iter()
        .filter(|c| channel_uses(c, registration))
        .map(|c| {
            let channel = c.name_any();
            let own = registration.annotations().get(&credential::acknowledgement_annotation(&channel)).cloned();
            // A channel that has not acknowledged for itself yet (written before this record
            // existed) counts with the shared annotation.
            credential::Consumer {
                name: format!("EmailChannel {channel}"),
                acknowledged: own.or_else(|| shared.clone()),
            }
        })
        .collect();
    if consumers.is_empty() && require_acknowledgement {
        consumers.push(credential::Consumer {
            name: format!("annotation {ANNOTATION_SECRET_ACKNOWLEDGED}"),
            acknowledged: shared,
        });
    }
    consumers.sort_by(|a, b| a.name.cmp(&b.name));
    consumers
}

/// Whether the channel uses this registration: its own child, or a shared one it names.
pub fn channel_uses(channel: &EmailChannel, registration: &AzureAppRegistration) -> bool {
    match &channel.spec.azure.app_registration_ref {
        Some(r) => r.name == registration.name_any(),
        None => {
            channel.name_any() == registration.name_any()
                && registration.owner_references().iter().any(|o| Some(&o.uid) == channel.uid().as_ref())
        }
    }
}

/// Observe → plan → act for the client secret. Every decision is in [`credential::plan`].
async fn manage_credential(
    run: &mut Run<'_>,
    clients: &CloudClients,
    policy: &SecretPolicy,
    app: &Application,
    uid: &str,
) -> Result<(), Error> {
    // Observe.
    let tenant = run.tenant.clone();
    let mut stored = secret::observe(read_secret(run).await?.as_ref());
    let keys = stored.keys();
    let verification = match &run.status.credential {
        Some(c)
            if c.verified_at.is_none()
                && run.status.pending_rotation.is_none()
                && keys.key_id.as_deref() == Some(c.key_id.as_str())
                && let Some(text) = &stored.secret =>
        {
            let window = jiff::SignedDuration::try_from(run.ctx.settings.propagation_window)
                .unwrap_or(rotation::PROPAGATION_WINDOW);
            Some(verify(clients, &tenant, &app.app_id, text, run.now, c.not_before.0, window).await?)
        }
        _ => None,
    };
    let rotate_annotation = run.obj.annotations().get(ANNOTATION_ROTATE).cloned();
    let status = run.status.clone();
    let mut input = credential::Input {
        now: run.now,
        policy,
        uid,
        status: &status,
        passwords: &app.password_credentials,
        stored: &keys,
        rotate_annotation: rotate_annotation.as_deref(),
        consumers: None,
        verification,
    };
    let consumers =
        if credential::wants_consumers(&input) { Some(observe_consumers(run, policy).await?) } else { None };
    input.consumers = consumers.as_deref();
    // Plan.
    let plan = credential::plan(&input);
    // Act.
    act(run, clients, policy, app, uid, &plan, &mut stored, rotate_annotation).await?;
    // Report.
    report_credential(run, policy, &plan, verification).await;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn act(
    run: &mut Run<'_>,
    clients: &CloudClients,
    policy: &SecretPolicy,
    app: &Application,
    uid: &str,
    plan: &credential::Plan,
    stored: &mut ObservedSecret,
    rotate_annotation: Option<String>,
) -> Result<(), Error> {
    let tenant = run.tenant.clone();
    let mut revoked = Vec::new();
    for step in &plan.steps {
        match step {
            Step::RemoveLostPassword { key_id } => {
                tracing::info!(key_id = %key_id, "removing a password whose text was lost before reaching the Secret");
                clients.directory.remove_password(&tenant, &app.id, key_id).await?;
                run.event(
                    EventType::Warning,
                    "OrphanRemoved",
                    "Rotate",
                    format!("Removed password {key_id}: its text was lost before reaching the Secret"),
                )
                .await;
            }
            Step::AdoptStored { key_id } => adopt_stored(run, app, key_id, policy),
            Step::JournalPrevious { key_id, not_after } => {
                if !run.status.previous_credentials.iter().any(|p| &p.key_id == key_id) {
                    run.status.previous_credentials.push(PreviousCredential {
                        key_id: key_id.clone(),
                        not_after: Time(*not_after),
                        revoke_at: None,
                    });
                }
            }
            Step::MarkVerified { key_id } => {
                if let Some(c) = run.status.credential.as_mut() {
                    c.verified_at = Some(Time(run.now));
                }
                run.status.rejected_in_a_row = 0;
                run.event(
                    EventType::Normal,
                    "SecretVerified",
                    "Verify",
                    format!("The token endpoint accepts client secret {key_id}"),
                )
                .await;
            }
            Step::Issue { reason, retire } => {
                run.status.rejected_in_a_row = plan.rejected_in_a_row;
                issue(run, clients, policy, app, uid, *reason, retire, stored, rotate_annotation.clone()).await?;
                if let Retire::Remove { key_id } = retire {
                    tracing::info!(key_id = %key_id, "removing the replaced client secret, which never worked");
                    clients.directory.remove_password(&tenant, &app.id, key_id).await?;
                }
            }
            Step::Revoke { key_id, why } => {
                failpoint::hit("app-registration/before-revoke");
                tracing::info!(key_id = %key_id, why = why.as_str(), "revoking a previous client secret");
                clients.directory.remove_password(&tenant, &app.id, key_id).await?;
                failpoint::hit("app-registration/after-revoke");
                run.status.previous_credentials.retain(|p| &p.key_id != key_id);
                // Drop it from the Secret too: consumers must not fall back to a dead credential.
                if stored.previous_key_id.as_deref() == Some(key_id.as_str()) {
                    stored.previous_key_id = None;
                    stored.previous_secret = None;
                    write_secret(run, app, stored).await?;
                }
                revoked.push(format!("{key_id} ({})", why.as_str()));
            }
            Step::RemoveOrphan { key_id } => {
                tracing::info!(key_id = %key_id, "removing an orphaned operator password");
                clients.directory.remove_password(&tenant, &app.id, key_id).await?;
            }
        }
    }
    run.status.rejected_in_a_row = plan.rejected_in_a_row;
    run.status.previous_credentials = plan
        .kept
        .iter()
        .map(|k| PreviousCredential {
            key_id: k.key_id.clone(),
            not_after: Time(k.not_after),
            revoke_at: match k.wait {
                Revocation::At(t) => Some(Time(t)),
                _ => None,
            },
        })
        .collect();
    if !revoked.is_empty() {
        run.event(
            EventType::Normal,
            "SecretRevoked",
            "Revoke",
            format!("Revoked previous client secret(s) {}", revoked.join(", ")),
        )
        .await;
    }
    Ok(())
}

async fn report_credential(
    run: &mut Run<'_>,
    policy: &SecretPolicy,
    plan: &credential::Plan,
    verification: Option<VerifyOutcome>,
) {
    if let Some(at) = credential::next_revocation(plan) {
        run.requeue_at(at);
    }
    // From the spec as it is now: a changed renewBefore moves the renewal of the current key
    // (status showed, and the requeue waited for, the time computed when it was issued).
    let credential = run.status.credential.as_mut().map(|c| {
        c.renewal_time = Time(policy.renewal_time(c.not_before.0, c.not_after.0));
        c.clone()
    });
    if let Some(blocked) = &plan.blocked {
        let already = conditions::get(&run.status.conditions, cond::CREDENTIAL_READY)
            .is_some_and(|c| c.reason == reason::SECRET_REJECTED);
        run.condition(cond::CREDENTIAL_READY, false, reason::SECRET_REJECTED, blocked.clone());
        if !already {
            run.event(EventType::Warning, reason::SECRET_REJECTED, "Rotate", blocked.clone()).await;
        }
        // Replication can be very slow: keep checking whether the key works after all.
        run.requeue_within(Duration::from_secs(30 * 60));
    } else {
        match &credential {
            Some(c) if c.verified_at.is_some() => {
                let message = format!(
                    "client secret {} valid until {}, renewal at {}",
                    c.key_id, c.not_after.0, c.renewal_time.0
                );
                run.condition(cond::CREDENTIAL_READY, true, reason::SECRET_VERIFIED, message);
                run.requeue_at(c.renewal_time.0);
            }
            Some(c) => {
                if verification == Some(VerifyOutcome::NotYetPropagated) && plan.issues().is_none() {
                    run.condition(
                        cond::CREDENTIAL_READY,
                        false,
                        reason::WAITING_FOR_PROPAGATION,
                        format!(
                            "client secret {} is not accepted by the token endpoint yet (Entra ID replication); retrying",
                            c.key_id
                        ),
                    );
                } else if plan.issues().is_some()
                    || !conditions::get(&run.status.conditions, cond::CREDENTIAL_READY)
                        .is_some_and(|c| c.reason == reason::WAITING_FOR_PROPAGATION && c.status == "False")
                {
                    run.condition(
                        cond::CREDENTIAL_READY,
                        false,
                        reason::SECRET_ISSUED,
                        format!("client secret {} issued; verifying at the token endpoint", c.key_id),
                    );
                }
                run.requeue_within(run.ctx.settings.propagation_poll);
            }
            None => run.condition(cond::CREDENTIAL_READY, false, reason::IN_PROGRESS, "no client secret yet"),
        }
    }
    let rotating = !plan.kept.is_empty() || run.status.pending_rotation.is_some();
    let message = match plan.kept.first() {
        Some(k) => match &k.wait {
            Revocation::At(at) => format!("previous secret {} will be revoked at {at}", k.key_id),
            Revocation::WaitingForAcknowledgement => format!(
                "previous secret {} is kept until {} acknowledge{} the new key{}",
                k.key_id,
                if k.pending.is_empty() { "every consumer".to_string() } else { k.pending.join(", ") },
                if k.pending.len() == 1 { "s" } else { "" },
                if policy.require_acknowledgement || !k.pending.is_empty() { "" } else { " (or until revokeAfter)" }
            ),
            Revocation::WaitingForVerification | Revocation::Now => {
                format!("previous secret {} is kept until the new one is verified", k.key_id)
            }
        },
        None => "no rotation in progress".into(),
    };
    let why = if rotating { reason::WAITING_FOR_ACKNOWLEDGEMENT } else { reason::RECONCILED };
    run.condition(cond::ROTATING, rotating, why, message);
}

/// Status caught up with a Secret written before a crash: the key becomes current, the one it
/// replaced is journalled (the plan decides what happens to it).
fn adopt_stored(run: &mut Run<'_>, app: &Application, key_id: &str, policy: &SecretPolicy) {
    let Some(p) = app.password_credentials.iter().find(|p| p.key_id == key_id) else {
        return;
    };
    let (Some(nb), Some(na)) = (p.start_date_time, p.end_date_time) else {
        return;
    };
    if let Some(old) = run.status.credential.take()
        && old.key_id != key_id
        && app.password_credentials.iter().any(|p| p.key_id == old.key_id)
        && !run.status.previous_credentials.iter().any(|p| p.key_id == old.key_id)
    {
        run.status.previous_credentials.push(PreviousCredential {
            key_id: old.key_id,
            not_after: old.not_after,
            revoke_at: None,
        });
    }
    run.status.credential = Some(CredentialStatus {
        key_id: key_id.into(),
        hint: p.hint.clone(),
        not_before: Time(nb),
        not_after: Time(na),
        renewal_time: Time(policy.renewal_time(nb, na)),
        verified_at: None,
    });
    // The intent was completed: a forced rotation must not run a second time.
    if run.status.pending_rotation.as_ref().is_some_and(|p| p.reason == IssueReason::Forced.as_str()) {
        run.status.last_rotate_request = run.obj.annotations().get(ANNOTATION_ROTATE).cloned();
    }
    run.status.pending_rotation = None;
}

/// Verifies a key at the token endpoint and classifies the answer (also used by `plan`).
pub async fn verify(
    clients: &CloudClients,
    tenant: &str,
    app_id: &str,
    secret: &SecretString,
    now: Timestamp,
    issued_at: Timestamp,
    window: jiff::SignedDuration,
) -> Result<VerifyOutcome, Error> {
    match clients.verifier.verify(tenant, app_id, secret).await {
        Ok(()) => Ok(VerifyOutcome::Accepted),
        Err(e) if e.has_aadsts(aadsts::EXPIRED_SECRET) => Ok(VerifyOutcome::Expired),
        // A brand-new app or secret may not have replicated to the token endpoint yet.
        Err(e) if e.has_aadsts(aadsts::INVALID_SECRET) || e.has_aadsts(aadsts::APP_NOT_FOUND) => {
            Ok(rotation::classify_rejection(now, issued_at, false, window))
        }
        Err(e) => Err(e.into()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn issue(
    run: &mut Run<'_>,
    clients: &CloudClients,
    policy: &SecretPolicy,
    app: &Application,
    uid: &str,
    why: IssueReason,
    retire: &Retire,
    stored: &mut ObservedSecret,
    rotate_annotation: Option<String>,
) -> Result<(), Error> {
    let tenant = run.tenant.clone();
    // 1. Intent first: Graph returns the secret text once, so a crash after addPassword must be
    //    recognisable (the marker) and recoverable (see recover_pending).
    let marker = match &run.status.pending_rotation {
        Some(p) => p.marker.clone(),
        None => {
            failpoint::hit("app-registration/before-intent");
            let marker = rotation::password_marker(&policy.description, uid, run.now, rand::random());
            run.status.pending_rotation = Some(PendingRotation {
                marker: marker.clone(),
                requested_at: Time(run.now),
                reason: why.as_str().into(),
            });
            run.write_status().await?;
            failpoint::hit("app-registration/after-intent");
            marker
        }
    };
    // 2. addPassword, lifetime clamped to the tenant policy.
    let cap = clients.directory.password_lifetime_cap(&tenant).await?;
    let (lifetime, clamped) = policy.lifetime(cap);
    let new = clients.directory.add_password(&tenant, &app.id, &marker, run.now + lifetime).await?;
    // Logged once it is issued: a deferred addPassword (Graph's pacing) is attempted again later.
    tracing::info!(reason = why.as_str(), key_id = %new.key_id, "issued a new client secret");
    run.ctx.metrics.issued(why.as_str());
    failpoint::hit("app-registration/after-add-password");
    // 3. The Secret at once. The key it replaces stays readable there while the plan keeps it
    //    (when the Secret still holds its text; a deleted or edited Secret lost it, but the key
    //    stays on the application for whoever already has it).
    let kept = match retire {
        Retire::Keep { key_id, not_after } => Some((key_id.clone(), *not_after)),
        _ => None,
    };
    match &kept {
        Some((k, _)) if stored.key_id.as_deref() == Some(k.as_str()) && stored.secret.is_some() => {
            stored.previous_key_id = Some(k.clone());
            stored.previous_secret = stored.secret.take();
        }
        // The Secret's previous key stays as long as the plan keeps it.
        Some(_) | None
            if stored
                .previous_key_id
                .as_ref()
                .is_some_and(|p| run.status.previous_credentials.iter().any(|c| &c.key_id == p)) => {}
        _ => {
            stored.previous_key_id = None;
            stored.previous_secret = None;
        }
    }
    stored.key_id = Some(new.key_id.clone());
    stored.secret = Some(new.secret_text.clone());
    let credential = CredentialStatus {
        key_id: new.key_id.clone(),
        hint: new.hint.clone(),
        not_before: Time(new.start),
        not_after: Time(new.end),
        renewal_time: Time(policy.renewal_time(new.start, new.end)),
        verified_at: None,
    };
    // Status is written even when a reconcile fails (to report why): it must never claim a key
    // the Secret does not hold, or the key consumers use would look like an orphan later.
    let before = run.status.credential.replace(credential);
    if let Err(e) = write_secret(run, app, stored).await {
        run.status.credential = before;
        return Err(e);
    }
    failpoint::hit("app-registration/after-secret-write");
    // 4. Status: new current, the retired key journalled, intent done.
    if let Some((key_id, not_after)) = kept
        && !run.status.previous_credentials.iter().any(|p| p.key_id == key_id)
    {
        run.status.previous_credentials.push(PreviousCredential {
            key_id,
            not_after: Time(not_after),
            revoke_at: None,
        });
    }
    run.status.pending_rotation = None;
    if why == IssueReason::Forced {
        run.status.last_rotate_request = rotate_annotation;
    }
    if clamped {
        run.event(
            EventType::Warning,
            reason::LIFETIME_CLAMPED,
            "Rotate",
            format!(
                "The tenant's app management policy caps secret lifetime: requested {}, issued until {}",
                crate::api::duration::format_duration(policy.duration),
                new.end
            ),
        )
        .await;
    }
    run.write_status().await?;
    failpoint::hit("app-registration/after-status-write");
    run.event(
        EventType::Normal,
        "SecretIssued",
        "Rotate",
        format!(
            "Issued client secret {} ({}), valid until {}; stored in Secret {}",
            new.key_id,
            why.as_str(),
            new.end,
            run.obj.spec.client_secret.secret_name
        ),
    )
    .await;
    Ok(())
}
async fn write_secret(run: &Run<'_>, app: &Application, stored: &ObservedSecret) -> Result<(), Error> {
    let (Some(key_id), Some(text), Some(cred)) = (&stored.key_id, &stored.secret, &run.status.credential) else {
        return Ok(());
    };
    let spec = &run.obj.spec;
    let endpoints = &run.ctx.azure.endpoints(run.cloud);
    let previous = match (&stored.previous_key_id, &stored.previous_secret) {
        (Some(k), Some(s)) => Some((k.as_str(), s)),
        _ => None,
    };
    let object = secret::build(
        run.obj,
        &secret::Contents {
            client_id: &app.app_id,
            tenant_id: &run.tenant,
            authority: endpoints.authority(&run.tenant),
            token_url: endpoints.token_url(&run.tenant),
            key_id,
            secret: text,
            not_after: cred.not_after.0,
            previous,
        },
    );
    let api: Api<Secret> = Api::namespaced(run.ctx.client.clone(), &run.obj.namespace().unwrap_or_default());
    let params = PatchParams::apply(&run.ctx.settings.field_manager).force();
    api.patch(&spec.client_secret.secret_name, &params, &Patch::Apply(&object)).await?;
    Ok(())
}

/// Deletion: remove what the operator created in Entra ID, per `deletionPolicy`. Idempotent;
/// 404 counts as done. The Secret goes with its owner reference.
///
/// Deletion never wedges a namespace on Graph: a resource that never reached Entra ID goes at
/// once; with `Orphan` (or an adopted application) the application stays anyway, so taking back
/// the operator's passwords is attempted once and, if Graph cannot be reached, given up with a
/// warning naming them; only `Delete` waits for Graph (condition `Ready=False`, reason
/// `DeletionPending`, retried with backoff) because it must not leave an application behind.
async fn cleanup(obj: Arc<AzureAppRegistration>, ctx: &Context) -> Result<Action, Error> {
    if is_paused(&obj) {
        return Err(Error::InvalidSpec(format!(
            "{ANNOTATION_PAUSED} is set: remove it to let deletion clean up Entra ID"
        )));
    }
    // Only what this resource created or adopted is cleaned up, in the tenant it was created in.
    // A resource that never got that far (never admitted, a mistyped EntraTenant) has nothing
    // outside the cluster: it goes at once, without a call to Graph.
    let status = obj.status.clone().unwrap_or_default();
    let Some(tenant) = status.tenant_id.clone() else {
        return Ok(Action::await_change());
    };
    let deletes_app = obj.spec.adopt.is_none() && obj.spec.deletion_policy == DeletionPolicy::Delete;
    match cleanup_entra(&obj, ctx, &tenant, status.cloud.unwrap_or_default(), deletes_app).await {
        Ok(()) => Ok(Action::await_change()),
        // (A deferred wait is not Graph being unreachable: it is tried again after the wait.)
        Err(e) if !deletes_app && !e.is_deferred() => {
            let uid = obj.uid().unwrap_or_default();
            let note = format!(
                "Graph could not be reached to remove this resource's client secrets from application {} (deletionPolicy Orphan or adopted: the application stays); remove the passwords whose name contains [cem {uid} in the Entra admin center: {e}",
                status.app_id.as_deref().unwrap_or("?")
            );
            tracing::warn!(resource = %format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()), "{note}");
            report::event(&ctx.recorder, obj.as_ref(), EventType::Warning, "CleanupIncomplete", "Delete", note).await;
            Ok(Action::await_change())
        }
        Err(e) => {
            let ns = obj.namespace().unwrap_or_default();
            let api: Api<AzureAppRegistration> = Api::namespaced(ctx.client.clone(), &ns);
            let mut status = status;
            let (_, message) = describe_failure(&e);
            conditions::set(
                &mut status.conditions,
                cond::READY,
                false,
                reason::DELETION_PENDING,
                format!("deleting application {} waits for Graph: {message}", status.app_id.as_deref().unwrap_or("?")),
                obj.meta().generation,
                ctx.clock.now(),
            );
            if let Err(write) = report::apply_status(&api, obj.as_ref(), &status, &ctx.settings.field_manager).await {
                tracing::debug!(error = %write, "could not report the pending deletion");
            }
            Err(e)
        }
    }
}

async fn cleanup_entra(
    obj: &AzureAppRegistration,
    ctx: &Context,
    tenant: &str,
    cloud: Cloud,
    deletes_app: bool,
) -> Result<(), Error> {
    let spec = &obj.spec;
    let uid = obj.uid().ok_or(Error::MissingObjectKey("uid"))?;
    let clients = ctx.microsoft_recorded(&spec.tenant_ref.name, tenant, cloud).await?;
    // Only an application this resource can prove is its own: adopted by it (its appId, claimed
    // with its stamp), or its own found by a uniqueName that is derived or stamped.
    let app = match &spec.adopt {
        Some(adopt) => clients.directory.app_by_app_id(tenant, &adopt.app_id).await?.filter(|app| {
            let key = adopted_key(app, obj, &ctx.settings.instance);
            desired::may_adopt(app, &key, &obj.namespace().unwrap_or_default(), &obj.name_any()).is_ok()
        }),
        None => own_application(clients.directory.as_ref(), tenant, obj, &ctx.settings.instance).await?.1,
    };
    let Some(app) = app else {
        return Ok(());
    };
    if deletes_app {
        // The operator's passwords go first: a deleted application stays restorable for 30 days,
        // and must not carry a working secret meanwhile.
        for p in
            app.password_credentials.iter().filter(|p| rotation::is_operator_password(p.display_name.as_deref(), &uid))
        {
            clients.directory.remove_password(tenant, &app.id, &p.key_id).await?;
        }
        clients.directory.delete_app(tenant, &app.id).await?;
    } else {
        // Orphaned or adopted: leave the application, take back only our own passwords.
        for p in
            app.password_credentials.iter().filter(|p| rotation::is_operator_password(p.display_name.as_deref(), &uid))
        {
            clients.directory.remove_password(tenant, &app.id, &p.key_id).await?;
        }
    }
    Ok(())
}
