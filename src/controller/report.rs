//! Writing status (server-side apply under the operator's field manager) and events, for any kind.

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Error;

/// Applies `status` to the status subresource of `obj`. Fields left out are released (removed).
pub async fn apply_status<K, S>(api: &Api<K>, obj: &K, status: &S, field_manager: &str) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(&obj.name_any(), &PatchParams::apply(field_manager).force(), &Patch::Apply(&patch)).await?;
    // Every status write updates the Ready gauge (an alert on "not Ready for 30 minutes").
    let ready = patch["status"]["conditions"]
        .as_array()
        .map(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        .unwrap_or(false);
    crate::metrics::global().ready_state(
        &K::kind(&()),
        &obj.namespace().unwrap_or_default(),
        &obj.name_any(),
        Some(ready),
    );
    Ok(())
}

/// Publishes an event about `obj`; failures are logged, never fatal.
pub async fn event<K: Resource<DynamicType = ()>>(
    recorder: &Recorder,
    obj: &K,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
    if let Err(e) = recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::debug!(error = %e, "publishing event failed");
    }
}
