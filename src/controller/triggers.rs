//! Which watch events start a reconcile. Pure functions over the watched objects.
//!
//! A controller reacts to every change of its watched objects by default, including its own status
//! writes: an AzureAppRegistration used to be reconciled about five times until Ready and its
//! channel about fourteen times, each reconcile re-reading Kubernetes, Graph, Exchange and Connect
//! to find nothing to do. These predicates let through only what a reconcile reads:
//! - an object's own changes: spec (generation), labels, annotations (paused, acknowledgements,
//!   force-rotate), finalizers and deletion — not its status, which the reconcile itself wrote;
//! - a child registration seen from its channel: spec, readiness, the app ID and the current
//!   credential — not the registration's intermediate progress.
//!
//! Periodic work (rotation deadlines, propagation polls, the resync) is requeued explicitly by each
//! reconcile, so nothing depends on a status write echoing back.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use super::conditions;
use crate::api::conditions::app_registration as app_cond;
use crate::api::{AzureAppRegistration, EmailChannel, EntraTenant};

/// Predicate for a controller's own objects: everything but status.
pub fn own_change<K: Resource>(obj: &K) -> Option<u64> {
    let meta = obj.meta();
    let mut h = DefaultHasher::new();
    meta.generation.hash(&mut h);
    meta.labels.hash(&mut h);
    meta.annotations.hash(&mut h);
    meta.finalizers.hash(&mut h);
    meta.deletion_timestamp.as_ref().map(|t| t.0.to_string()).hash(&mut h);
    Some(h.finish())
}

/// Predicate for a registration as its channels see it: what the channel reconcile reads.
pub fn registration_for_channel(reg: &AzureAppRegistration) -> Option<u64> {
    let meta = reg.meta();
    let mut h = DefaultHasher::new();
    meta.generation.hash(&mut h);
    meta.deletion_timestamp.as_ref().map(|t| t.0.to_string()).hash(&mut h);
    let status = reg.status.as_ref();
    let ready = status.and_then(|s| conditions::get(&s.conditions, app_cond::READY));
    ready.map(|c| (&c.status, &c.reason, &c.message)).hash(&mut h);
    status.and_then(|s| s.app_id.as_ref()).hash(&mut h);
    let credential = status.and_then(|s| s.credential.as_ref());
    credential
        .map(|c| (&c.key_id, c.not_after.0.to_string(), c.verified_at.as_ref().map(|t| t.0.to_string())))
        .hash(&mut h);
    Some(h.finish())
}

/// The channels a registration change concerns: the channel owning it, or else every channel in
/// its namespace referencing it through `azure.appRegistrationRef` (a shared registration).
pub fn channels_of(reg: &AzureAppRegistration, channels: &Store<EmailChannel>) -> Vec<ObjectRef<EmailChannel>> {
    let ns = reg.meta().namespace.clone();
    let owners: Vec<ObjectRef<EmailChannel>> = reg
        .meta()
        .owner_references
        .iter()
        .flatten()
        .filter(|o| o.kind == EmailChannel::kind(&()) && o.api_version == EmailChannel::api_version(&()))
        .map(|o| ObjectRef::new(&o.name).within(ns.as_deref().unwrap_or_default()))
        .collect();
    if !owners.is_empty() {
        return owners;
    }
    let name = reg.meta().name.as_deref().unwrap_or_default();
    channels
        .state()
        .iter()
        .filter(|c| c.meta().namespace == ns)
        .filter(|c| c.spec.azure.app_registration_ref.as_ref().is_some_and(|r| r.name == name))
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// The registrations an EntraTenant change concerns: those naming it in `tenantRef`.
pub fn registrations_of_tenant(
    tenant: &EntraTenant,
    registrations: &Store<AzureAppRegistration>,
) -> Vec<ObjectRef<AzureAppRegistration>> {
    let name = tenant.meta().name.as_deref().unwrap_or_default();
    registrations
        .state()
        .iter()
        .filter(|r| r.spec.tenant_ref.name == name)
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// The channels an EntraTenant change concerns: those naming it in `azure.tenantRef` (a channel
/// on a shared registration follows that registration's admission through its watch).
pub fn channels_of_tenant(tenant: &EntraTenant, channels: &Store<EmailChannel>) -> Vec<ObjectRef<EmailChannel>> {
    let name = tenant.meta().name.as_deref().unwrap_or_default();
    channels
        .state()
        .iter()
        .filter(|c| c.spec.azure.tenant_ref.as_ref().is_some_and(|t| t.name == name))
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// Predicate hashes by namespace and name.
type Hashes = HashMap<(Option<String>, Option<String>), u64>;

fn key<K: Resource>(obj: &K) -> (Option<String>, Option<String>) {
    (obj.meta().namespace.clone(), obj.meta().name.clone())
}

/// The objects of a watch whose `predicate` hash changed, and every deleted object. Unlike
/// `touched_objects().predicate_filter(..)`, a deletion is never swallowed: a deleted child must
/// reconcile its owner at once (to recreate it or report it), not at the next resync.
pub fn changes<K, S>(events: S, predicate: fn(&K) -> Option<u64>) -> impl Stream<Item = Result<K, watcher::Error>>
where
    K: Resource,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    let mut seen: Hashes = HashMap::new();
    let mut relisted: Option<Hashes> = None;
    events
        .map(move |event| {
            let pass = |obj: K, map: &mut Hashes, previous: Option<u64>| {
                let hash = predicate(&obj);
                let changed = hash.is_none() || hash != previous;
                if let Some(hash) = hash {
                    map.insert(key(&obj), hash);
                }
                changed.then_some(obj)
            };
            let out = match event? {
                watcher::Event::Apply(obj) => {
                    let previous = seen.get(&key(&obj)).copied();
                    pass(obj, &mut seen, previous)
                }
                watcher::Event::Delete(obj) => {
                    seen.remove(&key(&obj));
                    Some(obj)
                }
                watcher::Event::Init => {
                    relisted = Some(HashMap::new());
                    None
                }
                watcher::Event::InitApply(obj) => {
                    let previous = seen.get(&key(&obj)).copied();
                    pass(obj, relisted.get_or_insert_default(), previous)
                }
                watcher::Event::InitDone => {
                    // Objects missing from the relist were deleted while the watch was down; their
                    // owners are not told here (the resync finds them), but they leave the map.
                    seen = relisted.take().unwrap_or_default();
                    None
                }
            };
            Ok(out)
        })
        .filter_map(|r: Result<Option<K>, watcher::Error>| futures::future::ready(r.transpose()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;
    use kube::ResourceExt;
    use kube::runtime::reflector;

    fn registration(name: &str) -> AzureAppRegistration {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "connectemail.dev/v1alpha1", "kind": "AzureAppRegistration",
            "metadata": {"name": name, "namespace": "mail", "generation": 1},
            "spec": {"tenantRef": {"name": "t"}, "displayName": "d",
                     "clientSecret": {"secretName": "s"}},
            "status": {"observedGeneration": 1, "conditions": [
                {"type": "Ready", "status": "False", "reason": "InProgress", "message": "creating",
                 "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap()
    }

    fn channel(name: &str, reference: Option<&str>) -> EmailChannel {
        let azure = match reference {
            Some(r) => serde_json::json!({"appRegistrationRef": {"name": r}}),
            None => serde_json::json!({"tenantRef": {"name": "t"}}),
        };
        serde_json::from_value(serde_json::json!({
            "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel",
            "metadata": {"name": name, "namespace": "mail", "uid": format!("uid-{name}")},
            "spec": {"mailbox": "support@contoso.com", "azure": azure,
                     "connect": {"region": "us", "tenantHost": "acme.us.webexconnect.io", "assetName": "Support",
                                 "forwardingAddress": "abc@mail-us.imiconnect.io"}}
        }))
        .unwrap()
    }

    #[test]
    fn own_changes_ignore_status_but_not_spec_annotations_or_deletion() {
        let before = registration("r");
        let mut status_only = before.clone();
        status_only.status.as_mut().unwrap().app_id = Some("app".into());
        assert_eq!(own_change(&before), own_change(&status_only));
        let mut spec = before.clone();
        spec.metadata.generation = Some(2);
        assert_ne!(own_change(&before), own_change(&spec));
        let mut annotated = before.clone();
        annotated.annotations_mut().insert("connectemail.dev/force-rotate".into(), "1".into());
        assert_ne!(own_change(&before), own_change(&annotated));
        let mut deleting = before.clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-01-01T00:00:00Z".parse().unwrap()));
        assert_ne!(own_change(&before), own_change(&deleting));
    }

    #[test]
    fn a_channel_sees_readiness_and_credentials_not_progress() {
        let before = registration("r");
        let mut progress = before.clone();
        progress.status.as_mut().unwrap().unique_name = Some("u".into());
        progress.status.as_mut().unwrap().conditions.push(
            serde_json::from_value(serde_json::json!(
            {"type": "ConsentGranted", "status": "True", "reason": "Reconciled", "message": "",
             "lastTransitionTime": "2026-01-01T00:00:00Z"}))
            .unwrap(),
        );
        assert_eq!(registration_for_channel(&before), registration_for_channel(&progress));
        let mut ready = before.clone();
        ready.status.as_mut().unwrap().conditions[0].status = "True".into();
        assert_ne!(registration_for_channel(&before), registration_for_channel(&ready));
        let mut credential = before.clone();
        credential.status.as_mut().unwrap().credential = Some(
            serde_json::from_value(serde_json::json!(
            {"keyId": "k1", "notBefore": "2026-01-01T00:00:00Z", "notAfter": "2026-07-01T00:00:00Z",
             "renewalTime": "2026-06-01T00:00:00Z"}))
            .unwrap(),
        );
        assert_ne!(registration_for_channel(&before), registration_for_channel(&credential));
        let mut verified = credential.clone();
        verified.status.as_mut().unwrap().credential.as_mut().unwrap().verified_at =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-01-01T00:01:00Z".parse().unwrap()));
        assert_ne!(registration_for_channel(&credential), registration_for_channel(&verified));
    }

    #[tokio::test]
    async fn changes_pass_new_hashes_and_every_deletion() {
        use watcher::Event;
        let r = registration("r");
        let mut progress = r.clone();
        progress.status.as_mut().unwrap().unique_name = Some("u".into());
        let mut ready = r.clone();
        ready.status.as_mut().unwrap().conditions[0].status = "True".into();
        let events = vec![
            Event::Init,
            Event::InitApply(r.clone()),
            Event::InitDone,
            Event::Apply(progress.clone()), // same hash: filtered
            Event::Apply(ready.clone()),    // passes
            Event::Init,
            Event::InitApply(ready.clone()), // relist, unchanged: filtered
            Event::InitDone,
            Event::Delete(ready.clone()), // always passes
            Event::Apply(r.clone()),      // recreated: passes
        ];
        let out: Vec<_> = changes(stream::iter(events.into_iter().map(Ok)), registration_for_channel)
            .map(|r| r.unwrap().status.unwrap().conditions[0].status.clone())
            .collect()
            .await;
        assert_eq!(out, vec!["False", "True", "True", "False"]);
    }

    #[test]
    fn a_registration_reconciles_its_owner_or_the_channels_referencing_it() {
        let (reader, mut writer) = reflector::store::<EmailChannel>();
        for c in [
            channel("own", None),
            channel("a", Some("shared")),
            channel("b", Some("shared")),
            channel("c", Some("other")),
        ] {
            writer.apply_watcher_event(&watcher::Event::Apply(c));
        }
        let mut owned = registration("own");
        owned.metadata.owner_references = Some(vec![channel("own", None).controller_owner_ref(&()).unwrap()]);
        assert_eq!(channels_of(&owned, &reader), vec![ObjectRef::new("own").within("mail")]);
        let mut shared: Vec<String> =
            channels_of(&registration("shared"), &reader).into_iter().map(|o| o.name).collect();
        shared.sort();
        assert_eq!(shared, vec!["a", "b"]);
        assert!(channels_of(&registration("unused"), &reader).is_empty());
    }
}
