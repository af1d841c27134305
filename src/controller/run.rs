//! Starting the controllers: watches, owned Secrets (label-selected) and the shutdown signal.

use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config};
use kube::runtime::{Controller, PredicateConfig, WatchStreamExt, predicates, reflector, watcher};

use super::app_registration::{reconcile, secret};
use super::email_channel::reconcile as channel;
use super::queue::Slots;
use super::{Context, lifecycle, triggers};
use crate::api::app_registration::AzureAppRegistrationStatus;
use crate::api::email_channel::EmailChannelStatus;
use crate::api::{AzureAppRegistration, EmailChannel, EntraTenant};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// Runs every controller until `shutdown` resolves, then waits for in-flight reconciles.
/// `namespace` limits the watches to one namespace, or to several given as a comma-separated list
/// (`a,b`): one pair of controllers per namespace, so namespaced RBAC (a Role in each) is enough.
///
/// Dropping this future (a leader stepping down aborts the task running it) drops the
/// controllers, whose reconcile tasks are cancelled with them (kube-runtime aborts a reconcile
/// task when its handle is dropped): no reconcile resumes past its current await. Reconciles are
/// safe to cut anywhere (see the rotation protocol), as after a crash. The change-feed follower
/// (`drift`) notices at its next poll and ends without writing anything.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let namespaces: Vec<Option<String>> = match namespace {
        Some(list) => list.split(',').map(str::trim).filter(|n| !n.is_empty()).map(|n| Some(n.to_string())).collect(),
        None => vec![None],
    };
    let shutdown = shutdown.shared();
    // Ready once the watches are set up (the controllers start on the first poll below).
    ctx.metrics.ready.store(true, std::sync::atomic::Ordering::Relaxed);
    let all = namespaces.into_iter().map(|ns| run_scope(ctx.clone(), ns, shutdown.clone()));
    futures::future::join_all(all).await;
}

async fn run_scope(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let client = ctx.client.clone();
    fn api<K>(client: &kube::Client, namespace: &Option<String>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let registrations: Api<AzureAppRegistration> = api(&client, &namespace);
    let secrets: Api<PartialObjectMeta<Secret>> = api(&client, &namespace);
    let channels: Api<EmailChannel> = api(&client, &namespace);
    let (reg_reader, reg_writer) = reflector::store();
    let reg_reader_for_metrics = reg_reader.clone();
    // Only the Secrets this operator writes, and only their metadata: the watch stays small however
    // many Secrets exist, and no secret value is cached. Any change (someone edits or deletes the
    // Secret) reconciles the owning registration, which reads the Secret itself.
    let owned = watcher::Config::default().labels(&format!("{}={}", secret::LABEL_MANAGED_BY, secret::MANAGED_BY));
    let owned_secrets = watcher(secrets, owned).default_backoff().touched_objects();
    // kube's runner is unbounded; the slots are taken first come, first served (`queue`).
    let registration_slots = Slots::new("AzureAppRegistration", ctx.settings.concurrency, ctx.metrics.clone());
    let channel_slots = Slots::new("EmailChannel", ctx.settings.concurrency, ctx.metrics.clone());
    let registration_controller = Controller::for_stream(
        slim_watch(registrations.clone(), reg_writer, cached_registration, triggers::own_change),
        reg_reader,
    )
    .with_config(Config::default());
    // Entra-side changes found by the change feeds (delta mode) reconcile just those objects.
    let drift = super::drift::triggers(ctx.clone(), registration_controller.store());
    // An EntraTenant created or changed (its spec) reconciles the registrations naming it: one
    // refused a moment ago may be admitted now, one admitted may be refused.
    let tenant_changes = watcher(Api::<EntraTenant>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .predicate_filter(predicates::generation, PredicateConfig::default());
    let registration_store = registration_controller.store();
    let registration_cache = registration_controller.store();
    let registration_controller = registration_controller
        .owns_stream(owned_secrets)
        .watches_stream(tenant_changes, move |t| triggers::registrations_of_tenant(&t, &registration_store))
        .reconcile_on(drift)
        .graceful_shutdown_on(shutdown.clone())
        .run(
            in_slot(registration_slots.clone(), registration_cache, reconcile::reconcile),
            lifecycle::error_policy,
            ctx.clone(),
        )
        .for_each(log_result);
    // A channel is reconciled again when its registration (owned, or shared through
    // appRegistrationRef) changes in what the channel reads: readiness, app ID, current secret.
    // The registrations are not cached here (the registration controller caches them).
    let (channel_reader, channel_writer) = reflector::store();
    let channel_controller = Controller::for_stream(
        slim_watch(channels, channel_writer, cached_channel, triggers::own_change),
        channel_reader,
    )
    .with_config(Config::default());
    let channel_store = channel_controller.store();
    // The per-resource gauges are read from these caches at scrape time, as long as this scope runs.
    let _exposed = ctx.metrics.watch_caches(reg_reader_for_metrics, channel_controller.store());

    let registration_changes = triggers::changes(
        watcher(registrations, watcher::Config::default()).default_backoff(),
        triggers::registration_for_channel,
    );
    let channel_tenant_changes = watcher(Api::<EntraTenant>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .predicate_filter(predicates::generation, PredicateConfig::default());
    let channels_by_tenant = channel_controller.store();
    let channel_cache = channel_controller.store();
    let channel_controller = channel_controller
        .watches_stream(registration_changes, move |reg| triggers::channels_of(&reg, &channel_store))
        .watches_stream(channel_tenant_changes, move |t| triggers::channels_of_tenant(&t, &channels_by_tenant))
        .graceful_shutdown_on(shutdown.clone())
        .run(in_slot(channel_slots.clone(), channel_cache, channel::reconcile), lifecycle::error_policy, ctx)
        .for_each(log_result);
    // On shutdown the reconciles still waiting for a slot end at once: a graceful shutdown waits
    // only for those running.
    let controllers = async { tokio::join!(registration_controller, channel_controller) };
    tokio::pin!(controllers);
    tokio::select! {
        _ = &mut controllers => {}
        () = shutdown => {
            registration_slots.close();
            channel_slots.close();
            controllers.await;
        }
    }
}

/// `reconcile` run in one of `slots` (first come, first served, under the wait budget), with the
/// object as `cache` has it when the slot is taken: kube hands the object over when it falls due,
/// and it may have changed while it waited (kube's finalizer helper, for one, patches with a test
/// of the finalizers it was given).
fn in_slot<K, F, Fut>(
    slots: Arc<Slots>,
    cache: reflector::Store<K>,
    reconcile: F,
) -> impl FnMut(Arc<K>, Arc<Context>) -> futures::future::BoxFuture<'static, Result<Action, super::Error>>
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<Context>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Action, super::Error>> + Send + 'static,
{
    move |obj, ctx| {
        let (slots, cache, reconcile) = (slots.clone(), cache.clone(), reconcile.clone());
        let key = format!("{}/{}/{}", K::kind(&()), obj.namespace().unwrap_or_default(), obj.name_any());
        Box::pin(async move {
            slots
                .run(key, move || {
                    let obj = cache.get(&reflector::ObjectRef::from_obj(obj.as_ref())).unwrap_or(obj);
                    reconcile(obj, ctx)
                })
                .await
        })
    }
}

/// The watch behind a controller's cache, without what reconciles never read from the cache
/// (managedFields, kubectl's last-applied copy): every reconcile starts from a fresh GET, so the
/// cache only triggers and feeds drift matching. This is most of the cache's size at scale.
/// `trim` drops what nobody reads from the cache. Only changes passing `predicate` start a
/// reconcile (the cache sees every change).
fn slim_watch<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    trim: fn(&mut K),
    predicate: fn(&K) -> Option<u64>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(move |o: &mut K| {
            o.managed_fields_mut().clear();
            o.annotations_mut().remove("kubectl.kubernetes.io/last-applied-configuration");
            trim(o);
        })
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicate, PredicateConfig::default())
}

/// One debug line per finished reconcile, naming the object as `Kind.version.group/name.namespace`
/// (the load test counts reconciles per object from these).
async fn log_result<K, E: std::fmt::Display>(result: Result<(reflector::ObjectRef<K>, Action), E>)
where
    K: kube::Resource<DynamicType = ()>,
{
    match result {
        Ok((object, action)) => tracing::debug!(object = %object, ?action, "reconciled"),
        Err(e) => tracing::debug!(error = %e, "reconcile error"),
    }
}

/// A registration as cached: what the change feeds match on (tenant, cloud, the Entra IDs in
/// status), what deletion reads (tenant, cloud, adopt, deletionPolicy) and what the metrics read
/// at scrape time (conditions without their messages, the current and previous keys' times);
/// reconciles read the rest from a fresh GET. At 10,000 registrations the conditions' messages
/// and the redirect URIs were most of the cache.
fn cached_registration(o: &mut AzureAppRegistration) {
    o.spec.redirect_uris = Vec::new();
    o.spec.permissions = Vec::new();
    o.spec.display_name = String::new();
    if let Some(status) = o.status.take() {
        o.status = Some(AzureAppRegistrationStatus {
            app_id: status.app_id,
            object_id: status.object_id,
            tenant_id: status.tenant_id,
            cloud: status.cloud,
            service_principal_id: status.service_principal_id,
            conditions: slim_conditions(status.conditions),
            credential: status.credential,
            previous_credentials: status.previous_credentials,
            ..Default::default()
        });
    }
}

/// A channel as cached: its spec (a shared registration's watch looks up who references it) and
/// its conditions without messages (the metrics); the status is read from a fresh GET.
fn cached_channel(o: &mut EmailChannel) {
    o.status = o
        .status
        .take()
        .map(|status| EmailChannelStatus { conditions: slim_conditions(status.conditions), ..Default::default() });
}

/// Conditions as the metrics read them: type and status (and reason), no message.
fn slim_conditions(mut conditions: Vec<Condition>) -> Vec<Condition> {
    for c in &mut conditions {
        c.message = String::new();
    }
    conditions
}
