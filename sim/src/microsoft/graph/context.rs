//! What one Graph request carries through the handlers: the caller, the simulated time, the
//! behaviour switches, its query options and the secrets it created.

use jiff::Timestamp;

use crate::microsoft::state::{Settings, replicated};

/// One authenticated Graph request.
pub(super) struct Ctx {
    pub(super) tenant: String,
    pub(super) client_id: String,
    pub(super) now: Timestamp,
    pub(super) settings: Settings,
    pub(super) base: String,
    pub(super) page_size: usize,
    pub(super) query: Vec<(String, String)>,
    pub(super) prefer_create: bool,
    pub(super) new_secrets: Vec<String>,
}

impl Ctx {
    pub(super) fn visible(&self, created: Timestamp) -> bool {
        replicated(created, self.now, self.settings.replication_lag)
    }

    pub(super) fn context(&self, fragment: &str) -> String {
        format!("{}/v1.0/$metadata#{fragment}", self.base)
    }

    pub(super) fn query(&self, name: &str) -> Option<&str> {
        let bare = name.trim_start_matches('$');
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name) || k.eq_ignore_ascii_case(bare))
            .map(|(_, v)| v.as_str())
    }
}
