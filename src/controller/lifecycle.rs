//! What every controller does around its reconcile: the cleanup finalizer, per-object backoff, and
//! the error policy (permanent errors wait for a change or the resync; a refused operator credential
//! is re-checked every few minutes; transient ones back off).

use std::fmt::Debug;
use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event as FinalizerEvent, finalizer};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Context, Error};
use crate::api::FINALIZER;

fn key<K: Resource>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Runs `apply` (or `cleanup` when the object is being deleted) under the operator's finalizer.
pub async fn reconcile_with_finalizer<K, A, AF, C, CF>(
    obj: Arc<K>,
    ctx: &Context,
    apply: A,
    cleanup: C,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug,
    A: FnOnce(Arc<K>) -> AF,
    AF: Future<Output = Result<Action, Error>>,
    C: FnOnce(Arc<K>) -> CF,
    CF: Future<Output = Result<Action, Error>>,
{
    let ns = obj.namespace().ok_or(Error::MissingObjectKey("namespace"))?;
    let key = key(obj.as_ref());
    let started = std::time::Instant::now();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    // kube's finalizer helper adds the finalizer with a JSON patch whose `test` is the object it is
    // given. A cached copy can predate the finalizer the previous reconcile added (a second
    // trigger arrived while that one ran): the test then fails with a 422 and the reconcile is
    // reported as failed. A copy without the finalizer (normally only the first reconcile's) is
    // read fresh first.
    let obj = if obj.meta().deletion_timestamp.is_none() && !obj.finalizers().iter().any(|f| f == FINALIZER) {
        match api.get_opt(&obj.name_any()).await? {
            Some(fresh) => Arc::new(fresh),
            None => return Ok(Action::await_change()),
        }
    } else {
        obj
    };
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            FinalizerEvent::Apply(o) => apply(o).await,
            FinalizerEvent::Cleanup(o) => cleanup(o).await,
        }
    })
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    });
    let kind = K::kind(&());
    ctx.metrics.reconciled(&kind, started.elapsed());
    // A wait it could not afford: back in the queue after it, neither success nor failure.
    if let Some(action) = super::queue::deferral(&kind, &key, &ctx.metrics) {
        return Ok(action);
    }
    match &result {
        Ok(_) => ctx.reset_backoff(&key),
        Err(e) => ctx.metrics.failed(&kind, e.metric_label()),
    }
    result
}

/// The error policy of every controller.
pub fn error_policy<K: Resource>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = key(obj.as_ref());
    tracing::warn!(resource = %key, error = %error, kind = error.metric_label(), "reconcile failed");
    if error.is_operator_credential_failure() {
        Action::requeue(super::error::OPERATOR_CREDENTIAL_RECHECK.min(ctx.settings.resync))
    } else if error.is_permanent() {
        Action::requeue(ctx.settings.resync)
    } else {
        Action::requeue(ctx.backoff(&key))
    }
}
