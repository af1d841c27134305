//! Writing status (server-side apply under the operator's field manager) and events, for any kind.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::{Client, Resource, ResourceExt};
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

/// How long a published event can grow into a series (kube's and client-go's six minutes).
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// Publishes `events.k8s.io/v1` Events; an event repeated (same object, type, reason, action and
/// note) within [`SERIES_WINDOW`] updates the first one's series count instead of adding another.
///
/// Used instead of kube's `Recorder`, which keeps a full copy of every event it published for six
/// minutes and scans that whole cache on every publish: during a wave of 10,000 new registrations
/// (about four events each) that was the largest part of the operator's memory and a quadratic
/// CPU cost. This keeps a hash and the event's name per entry, pruned at most every 30 seconds.
pub struct Recorder {
    client: Client,
    controller: String,
    instance: String,
    series: Mutex<Series>,
}

struct Series {
    entries: HashMap<u64, SeriesEntry>,
    pruned: Instant,
}

struct SeriesEntry {
    name: String,
    count: i32,
    last: Instant,
}

impl Recorder {
    pub fn new(client: Client, controller: String, instance: Option<String>) -> Self {
        let instance = instance.unwrap_or_else(|| controller.clone());
        let series = Mutex::new(Series { entries: HashMap::new(), pruned: Instant::now() });
        Self { client, controller, instance, series }
    }

    /// Events remembered for series (for tests and the benchmark's accounting).
    pub fn remembered(&self) -> usize {
        self.series.lock().unwrap_or_else(|e| e.into_inner()).entries.len()
    }

    fn key(ev: &Event, regarding: &ObjectReference) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&regarding.uid, &regarding.kind, &regarding.namespace, &regarding.name).hash(&mut h);
        (matches!(ev.type_, EventType::Warning), &ev.reason, &ev.action, &ev.note).hash(&mut h);
        h.finish()
    }

    pub async fn publish(&self, ev: &Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let key = Self::key(ev, regarding);
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".into());
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
        let now = Instant::now();
        let repeat = {
            let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
            if now.duration_since(series.pruned) >= Duration::from_secs(30) {
                series.entries.retain(|_, e| now.duration_since(e.last) < SERIES_WINDOW);
                series.pruned = now;
            }
            series.entries.get_mut(&key).filter(|e| now.duration_since(e.last) < SERIES_WINDOW).map(|e| {
                e.count += 1;
                e.last = now;
                (e.name.clone(), e.count)
            })
        };
        let stamp = MicroTime(jiff::Timestamp::now());
        if let Some((name, count)) = repeat {
            let series = serde_json::json!({"series": EventSeries { count, last_observed_time: stamp.clone() }});
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(&series)).await {
                Ok(_) => return Ok(()),
                // Gone already (events expire): publish it anew below.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or(&self.controller),
            jiff::Timestamp::now().as_nanosecond()
        );
        let event = K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(stamp),
            regarding: Some(regarding.clone()),
            note: ev.note.clone(),
            metadata: ObjectMeta { namespace: Some(namespace), name: Some(name.clone()), ..Default::default() },
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(match ev.type_ {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            related: ev.secondary.clone(),
            ..Default::default()
        };
        api.create(&PostParams::default(), &event).await?;
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series.entries.insert(key, SeriesEntry { name, count: 1, last: now });
        Ok(())
    }
}
