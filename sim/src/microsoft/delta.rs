//! Delta query (change tracking) on applications, service principals and delegated permission
//! grants, as Graph documents it (delta-query-overview):
//! - `GET /{collection}/delta` without a token returns every object (paged with
//!   `@odata.nextLink`), the last page carries `@odata.deltaLink` with a `$deltatoken`;
//! - `$deltatoken=latest` returns no objects, only a `@odata.deltaLink` from now;
//! - with a token: the objects created or changed since (the simulator returns them whole; Graph
//!   may return only the changed properties, so callers must not rely on more than `id`), and
//!   removed ones as `{"id", "@removed": {"reason": "changed" | "deleted"}}` — `changed` while an
//!   application sits in deleted items (restorable), `deleted` once gone for good;
//! - `$select` limits the properties (`id` always comes back);
//! - an unknown or expired token: 410 Gone with code `syncStateNotFound` (the code is documented,
//!   the status unconfirmed): the client starts again with a full synchronisation.
//!
//! The simulator keeps a snapshot (a hash per object) for each token it issued, the last
//! [`MAX_TOKENS`] per tenant; older tokens expire.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};

use hyper::StatusCode;
use serde_json::{Value, json};

use crate::random;
use crate::server::SimResponse;

/// Tokens (and pending page sessions) kept per tenant.
pub(crate) const MAX_TOKENS: usize = 512;

/// A collection that supports delta.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Collection {
    Applications,
    ServicePrincipals,
    Grants,
}

impl Collection {
    pub fn path(self) -> &'static str {
        match self {
            Collection::Applications => "applications",
            Collection::ServicePrincipals => "servicePrincipals",
            Collection::Grants => "oauth2PermissionGrants",
        }
    }
}

#[derive(Debug)]
struct Snapshot {
    collection: Collection,
    hashes: HashMap<String, u64>,
}

/// Per-tenant delta state.
#[derive(Debug, Default)]
pub(crate) struct DeltaState {
    snapshots: HashMap<String, Snapshot>,
    /// Remaining items of a paged answer and the delta token its last page hands out.
    pages: HashMap<String, (Vec<Value>, String)>,
    order: VecDeque<String>,
}

fn hash(value: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    value.to_string().hash(&mut h);
    h.finish()
}

impl DeltaState {
    fn remember(&mut self, key: String) {
        self.order.push_back(key);
        while self.order.len() > MAX_TOKENS {
            if let Some(old) = self.order.pop_front() {
                self.snapshots.remove(&old);
                self.pages.remove(&old);
            }
        }
    }

    fn snapshot(&mut self, collection: Collection, current: &[(String, Value)]) -> String {
        let token = random::guid().replace('-', "");
        let hashes = current.iter().map(|(id, v)| (id.to_ascii_lowercase(), hash(v))).collect();
        self.snapshots.insert(token.clone(), Snapshot { collection, hashes });
        self.remember(token.clone());
        token
    }

    /// Answers one delta request. `current` is the collection now (id, full JSON); `restorable`
    /// says whether a vanished id sits in deleted items. `select` limits the properties.
    #[allow(clippy::too_many_arguments)]
    pub fn answer(
        &mut self,
        collection: Collection,
        current: &[(String, Value)],
        restorable: impl Fn(&str) -> bool,
        delta_token: Option<&str>,
        skip_token: Option<&str>,
        select: Option<&str>,
        page_size: usize,
        base: &str,
    ) -> Result<SimResponse, (StatusCode, &'static str, String)> {
        let expired = || {
            (
                StatusCode::GONE,
                "syncStateNotFound",
                "The delta token is expired or not valid. Start a full synchronization.".to_string(),
            )
        };
        let (items, next_delta) = if let Some(skip) = skip_token {
            self.pages.remove(skip).ok_or_else(expired)?
        } else {
            match delta_token {
                Some("latest") => (Vec::new(), self.snapshot(collection, current)),
                Some(token) => {
                    let old = self.snapshots.get(token).filter(|s| s.collection == collection).ok_or_else(expired)?;
                    let mut changed: Vec<Value> = current
                        .iter()
                        .filter(|(id, v)| old.hashes.get(&id.to_ascii_lowercase()) != Some(&hash(v)))
                        .map(|(_, v)| project(v, select))
                        .collect();
                    let now: std::collections::HashSet<String> =
                        current.iter().map(|(id, _)| id.to_ascii_lowercase()).collect();
                    let mut gone: Vec<&String> = old.hashes.keys().filter(|id| !now.contains(*id)).collect();
                    gone.sort();
                    for id in gone {
                        let reason = if restorable(id) { "changed" } else { "deleted" };
                        changed.push(json!({"id": id, "@removed": {"reason": reason}}));
                    }
                    (changed, self.snapshot(collection, current))
                }
                None => {
                    let all = current.iter().map(|(_, v)| project(v, select)).collect();
                    (all, self.snapshot(collection, current))
                }
            }
        };
        let path = collection.path();
        let mut body = json!({"@odata.context": format!("{base}/v1.0/$metadata#{path}")});
        let size = page_size.max(1);
        if items.len() > size {
            let mut items = items;
            let rest = items.split_off(size);
            let skip = random::guid().replace('-', "");
            self.pages.insert(skip.clone(), (rest, next_delta));
            self.remember(skip.clone());
            body["value"] = Value::Array(items);
            body["@odata.nextLink"] = json!(format!("{base}/v1.0/{path}/delta?$skiptoken={skip}"));
        } else {
            body["value"] = Value::Array(items);
            body["@odata.deltaLink"] = json!(format!("{base}/v1.0/{path}/delta?$deltatoken={next_delta}"));
        }
        Ok(SimResponse::json(StatusCode::OK, &body, "application/json;odata.metadata=minimal"))
    }
}

fn project(value: &Value, select: Option<&str>) -> Value {
    let Some(select) = select else { return value.clone() };
    let mut out = serde_json::Map::new();
    for name in std::iter::once("id").chain(select.split(',').map(str::trim)) {
        if let Some(v) = value.get(name) {
            out.insert(name.to_string(), v.clone());
        }
    }
    Value::Object(out)
}
