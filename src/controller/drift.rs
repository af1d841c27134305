//! Cheap drift detection: instead of every AzureAppRegistration re-reading its application,
//! service principal and consent from Graph on each resync (about five reads per object), one
//! task follows Graph's change feeds (delta query) per tenant — applications, service principals
//! and delegated permission grants, three reads per tenant per poll however many objects there
//! are — and reconciles only the objects whose Entra side changed. The per-object resync then
//! runs rarely (a safety net for what the feeds do not cover, such as app role assignments).
//!
//! The first round per tenant takes a link "from now" (`$deltatoken=latest`): everything is
//! reconciled at start-up anyway. An expired link reconciles every object of the tenant and
//! starts over. The operator's own writes also appear in the feeds; they cost one extra reconcile
//! per object after a change, which finds nothing to do.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::Stream;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::Context;
use crate::api::AzureAppRegistration;
use crate::azure::model::{ChangeFeed, ChangedObject};

/// How Entra-side drift is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriftDetection {
    /// Every object re-reads Graph at each resync.
    Poll,
    /// Graph delta query per tenant; the per-object resync is only a safety net.
    Delta,
}

impl std::str::FromStr for DriftDetection {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "poll" => Ok(DriftDetection::Poll),
            "delta" => Ok(DriftDetection::Delta),
            other => Err(format!("unknown drift detection {other:?}: use delta or poll")),
        }
    }
}

const FEEDS: [ChangeFeed; 3] = [ChangeFeed::Applications, ChangeFeed::ServicePrincipals, ChangeFeed::DelegatedGrants];

fn eq(a: Option<&String>, b: &str) -> bool {
    a.is_some_and(|a| a.eq_ignore_ascii_case(b))
}

/// The registrations of `tenant` that a round of changes concerns. A removed grant carries only
/// its own ID, which no status records: it concerns every registration of the tenant.
pub fn affected(
    objects: &[Arc<AzureAppRegistration>],
    tenant: &str,
    feed: ChangeFeed,
    changes: &[ChangedObject],
) -> Vec<ObjectRef<AzureAppRegistration>> {
    let in_tenant = || objects.iter().filter(|o| o.tenant().is_some_and(|(t, _)| t.eq_ignore_ascii_case(tenant)));
    let mut refs: BTreeMap<String, ObjectRef<AzureAppRegistration>> = BTreeMap::new();
    for change in changes {
        for o in in_tenant() {
            let Some(status) = o.status.as_ref() else { continue };
            let hit = match feed {
                ChangeFeed::Applications => {
                    eq(status.object_id.as_ref(), &change.id)
                        || change.app_id.as_ref().is_some_and(|a| eq(status.app_id.as_ref(), a))
                }
                ChangeFeed::ServicePrincipals => {
                    eq(status.service_principal_id.as_ref(), &change.id)
                        || change.app_id.as_ref().is_some_and(|a| eq(status.app_id.as_ref(), a))
                }
                ChangeFeed::DelegatedGrants => match &change.client_id {
                    Some(client) => eq(status.service_principal_id.as_ref(), client),
                    None => change.removed,
                },
            };
            if hit {
                let r = ObjectRef::from_obj(o.as_ref());
                refs.insert(format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()), r);
            }
        }
    }
    refs.into_values().collect()
}

/// Reconcile triggers from the change feeds (nothing in `Poll` mode).
pub fn triggers(
    ctx: Arc<Context>,
    store: Store<AzureAppRegistration>,
) -> impl Stream<Item = ObjectRef<AzureAppRegistration>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel(4096);
    if ctx.settings.drift == DriftDetection::Delta {
        tokio::spawn(follow(ctx, store, tx));
    }
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) })
}

async fn follow(
    ctx: Arc<Context>,
    store: Store<AzureAppRegistration>,
    tx: tokio::sync::mpsc::Sender<ObjectRef<AzureAppRegistration>>,
) {
    let mut links: HashMap<(String, String, ChangeFeed), String> = HashMap::new();
    let mut tick = tokio::time::interval(ctx.settings.drift_poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if tx.is_closed() {
            return;
        }
        let objects = store.state();
        // Per tenant: its cloud and the EntraTenant of one of its registrations (whose operator
        // credential reads the feeds). Registrations not admitted yet have nothing to drift.
        let mut tenants: BTreeMap<(String, String), (crate::api::Cloud, String)> = BTreeMap::new();
        for o in objects.iter() {
            if let Some((tenant, cloud)) = o.tenant() {
                tenants
                    .entry((format!("{cloud:?}"), tenant.to_ascii_lowercase()))
                    .or_insert_with(|| (cloud, o.spec.tenant_ref.name.clone()));
            }
        }
        for ((cloud_key, tenant), (cloud, tenant_ref)) in tenants {
            let directory = match ctx.azure.for_recorded(&ctx.client, &tenant_ref, &tenant, cloud).await {
                Ok(clients) => clients.directory,
                Err(e) => {
                    tracing::warn!(tenant = %tenant, error = %e, "no operator credential for the change feeds; trying again next round");
                    continue;
                }
            };
            for feed in FEEDS {
                let key = (cloud_key.clone(), tenant.clone(), feed);
                let link = links.get(&key).cloned();
                let targets = match directory.changes(&tenant, feed, link.as_deref()).await {
                    Ok(changes) => {
                        links.insert(key, changes.link);
                        if link.is_none() {
                            continue; // the baseline: nothing to compare with yet
                        }
                        affected(&objects, &tenant, feed, &changes.changed)
                    }
                    Err(e) if e.is_sync_reset() => {
                        tracing::info!(tenant = %tenant, ?feed, "delta link expired: re-checking every registration of the tenant");
                        links.remove(&key);
                        objects
                            .iter()
                            .filter(|o| o.tenant().is_some_and(|(t, _)| t.eq_ignore_ascii_case(&tenant)))
                            .map(|o| ObjectRef::from_obj(o.as_ref()))
                            .collect()
                    }
                    Err(e) => {
                        tracing::warn!(tenant = %tenant, ?feed, error = %e, "change feed unavailable; trying again next round");
                        continue;
                    }
                };
                for target in targets {
                    tracing::debug!(object = %target, ?feed, "Entra object changed: reconciling");
                    if tx.send(target).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::app_registration::AzureAppRegistrationStatus;

    fn registration(name: &str, tenant: &str, object_id: &str, sp: &str) -> Arc<AzureAppRegistration> {
        let mut o: AzureAppRegistration = serde_json::from_value(serde_json::json!({
            "apiVersion": "connectemail.dev/v1alpha1", "kind": "AzureAppRegistration",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"tenantRef": {"name": "t"}, "displayName": name, "clientSecret": {"secretName": "s"}}
        }))
        .unwrap();
        o.status = Some(AzureAppRegistrationStatus {
            object_id: Some(object_id.into()),
            app_id: Some(format!("app-{object_id}")),
            service_principal_id: Some(sp.into()),
            tenant_id: Some(tenant.into()),
            ..Default::default()
        });
        Arc::new(o)
    }

    fn change(id: &str, app_id: Option<&str>, client_id: Option<&str>, removed: bool) -> ChangedObject {
        ChangedObject { id: id.into(), app_id: app_id.map(Into::into), client_id: client_id.map(Into::into), removed }
    }

    fn names(refs: Vec<ObjectRef<AzureAppRegistration>>) -> Vec<String> {
        refs.into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn changes_map_to_their_registrations_only() {
        let objects = vec![
            registration("a", "T1", "OBJ-A", "sp-a"),
            registration("b", "t1", "obj-b", "sp-b"),
            registration("c", "t2", "obj-c", "sp-c"),
        ];
        let apps = [change("obj-a", None, None, false), change("foreign", None, None, false)];
        assert_eq!(names(affected(&objects, "t1", ChangeFeed::Applications, &apps)), ["a"]);
        // The same object ID in another tenant is another object.
        assert!(affected(&objects, "t2", ChangeFeed::Applications, &apps).is_empty());
        let sps = [change("x", Some("app-obj-b"), None, false)];
        assert_eq!(names(affected(&objects, "t1", ChangeFeed::ServicePrincipals, &sps)), ["b"]);
        let grants = [change("g1", None, Some("sp-b"), false), change("g2", None, Some("sp-b"), false)];
        assert_eq!(names(affected(&objects, "t1", ChangeFeed::DelegatedGrants, &grants)), ["b"]);
        // A removed grant names no client: every registration of the tenant is checked.
        let removed = [change("g3", None, None, true)];
        assert_eq!(names(affected(&objects, "t1", ChangeFeed::DelegatedGrants, &removed)), ["a", "b"]);
        assert!(affected(&objects, "t1", ChangeFeed::DelegatedGrants, &[]).is_empty());
    }
}
