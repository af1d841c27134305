//! The operator's event recorder (`src/controller/report.rs`) against the real apiserver: a
//! repeated event becomes a series on the first Event object, a different note a new object.

mod support;

use connect_email_operator::controller::report::Recorder;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::Api;
use kube::runtime::events::{Event, EventType};
use support::operator::Harness;

#[tokio::test]
async fn repeated_events_become_a_series_and_different_notes_stay_apart() {
    let h = Harness::without_operator("events").await;
    let recorder = Recorder::new(h.client.clone(), "connect-email-operator-test".into(), None);
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: Some("subject".into()),
        namespace: Some(h.ns.name.clone()),
        uid: Some("00000000-0000-0000-0000-000000000001".into()),
        ..Default::default()
    };
    let event = |note: &str| Event {
        type_: EventType::Normal,
        reason: "Tested".into(),
        note: Some(note.into()),
        action: "Test".into(),
        secondary: None,
    };
    for note in ["same", "same", "same", "other"] {
        recorder.publish(&event(note), &reference).await.unwrap();
    }
    let events: Api<K8sEvent> = Api::namespaced(h.client.clone(), &h.ns.name);
    let mut seen: Vec<(String, i32)> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| (e.note.unwrap_or_default(), e.series.map(|s| s.count).unwrap_or(1)))
        .collect();
    seen.sort();
    assert_eq!(seen, vec![("other".to_string(), 1), ("same".to_string(), 3)]);
    assert_eq!(recorder.remembered(), 2, "one entry per distinct event, not per publish");
    h.ns.delete().await;
}
