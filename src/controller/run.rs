//! Starting the controllers: watches, owned Secrets (label-selected) and the shutdown signal.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::runtime::{Controller, watcher};

use super::Context;
use super::app_registration::{reconcile, secret};
use crate::api::AzureAppRegistration;

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
    Controller::new(registrations, watcher::Config::default())
        .owns(secrets, owned)
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(resource = %object, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile error"),
            }
        })
        .await;
}
