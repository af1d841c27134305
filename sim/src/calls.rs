//! The call log every simulator keeps: one [`CallRecord`] per request, in arrival order, for
//! assertions ("called once", "never called", "which key was removed").

use std::sync::Mutex;

use jiff::Timestamp;

use crate::sync::lock;

/// One request as a simulator saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    pub method: String,
    /// The route template (see [`microsoft::routes`] and [`connect::routes`]), or
    /// `"<METHOD> <unmatched>"`.
    pub route: String,
    /// The raw request path (no query string).
    pub path: String,
    pub query: Option<String>,
    /// The status sent; 0 when the connection was reset without a response.
    pub status: u16,
    /// Microsoft: the tenant (from the path for the token endpoint, from the bearer token
    /// otherwise). Connect: the organization the bearer token belongs to.
    pub tenant: Option<String>,
    /// The calling client ID, when known (Microsoft only).
    pub client_id: Option<String>,
    /// Exchange `InvokeCommand` only: the cmdlet named in the body, in its canonical spelling
    /// when the simulator knows it (`"Set-Mailbox"`), else as sent.
    pub cmdlet: Option<String>,
    /// Microsoft `removePassword` only: the `keyId` in the body (which password was removed).
    pub key_id: Option<String>,
    /// Simulated time of the request (real time for Connect, which has no simulated clock).
    pub at: Timestamp,
}

/// Every request a simulator answered, in arrival order (both simulators keep one).
#[derive(Debug, Default)]
pub(crate) struct CallLog {
    records: Mutex<Vec<CallRecord>>,
}

impl CallLog {
    pub fn push(&self, record: CallRecord) {
        lock(&self.records).push(record);
    }

    /// A copy of every record so far.
    pub fn all(&self) -> Vec<CallRecord> {
        lock(&self.records).clone()
    }

    /// How many requests were recorded under route template `route`.
    pub fn count(&self, route: &str) -> usize {
        lock(&self.records).iter().filter(|c| c.route == route).count()
    }

    /// The records, without copying them.
    pub fn with<T>(&self, f: impl FnOnce(&[CallRecord]) -> T) -> T {
        f(&lock(&self.records))
    }

    pub fn clear(&self) {
        lock(&self.records).clear();
    }
}
