//! Starting the controllers: watches, owned Secrets (label-selected) and the shutdown signal.

use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::runtime::{Controller, watcher};

use super::app_registration::{reconcile, secret};
use super::email_channel::reconcile as channel;
use super::{Context, lifecycle};
use crate::api::{AzureAppRegistration, EmailChannel};

/// Runs every controller until `shutdown` resolves. `namespace` limits the watch to one namespace.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let (registrations, secrets): (Api<AzureAppRegistration>, Api<Secret>) = match &namespace {
        Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    // Only the Secrets this operator writes: the watch stays small however many Secrets exist.
    let owned = watcher::Config::default().labels(&format!("{}={}", secret::LABEL_MANAGED_BY, secret::MANAGED_BY));
    let channels: Api<EmailChannel> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let shutdown = shutdown.shared();
    // Ready once the watches are set up (the controllers start on the first poll below).
    ctx.metrics.ready.store(true, std::sync::atomic::Ordering::Relaxed);
    let registration_controller = Controller::new(registrations.clone(), watcher::Config::default())
        .owns(secrets, owned)
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile::reconcile, lifecycle::error_policy, ctx.clone())
        .for_each(log_result);
    // A channel is reconciled again when its child registration changes (status, rotation).
    let channel_controller = Controller::new(channels, watcher::Config::default())
        .owns(registrations, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(channel::reconcile, lifecycle::error_policy, ctx)
        .for_each(log_result);
    tokio::join!(registration_controller, channel_controller);
}

async fn log_result<K: std::fmt::Debug, E: std::fmt::Display>(result: Result<K, E>) {
    match result {
        Ok(object) => tracing::debug!(resource = ?object, "reconciled"),
        Err(e) => tracing::debug!(error = %e, "reconcile error"),
    }
}
