//! Faithful HTTP simulators of the external systems the operator talks to, for tests, benchmarks
//! and the local demo.
//!
//! Each simulator is a real HTTPS server on loopback (certificates from a throw-away CA, see
//! [`tls`]) that keeps state, reproduces the documented behaviour and error bodies of the service,
//! records every call for assertions, and lets tests inject faults. They are library code, not
//! test doubles: clients under test use their production HTTP path against them.
//!
//! - [`microsoft`]: the Microsoft identity platform token endpoint, Microsoft Graph v1.0 and the
//!   Exchange Online admin API (`InvokeCommand`), on one server.
//! - [`connect`]: the Webex Connect Digital Asset API (email channel), on its own server.
//!
//! Shared plumbing: `server` (HTTPS listener), [`tls`] (test CA), `faults` (fault table and
//! [`FaultBuilder`]), [`CallRecord`] and `random`.

pub mod connect;
mod faults;
pub mod microsoft;
mod random;
pub(crate) mod server;
pub mod standalone;
pub mod tls;

use std::sync::{Mutex, MutexGuard};

use jiff::Timestamp;

pub use connect::{ConnectFaults, ConnectOptions, ConnectSim, SimAsset, SimOAuthConfig, SimSmtpConfig, TokenStatus};
pub use faults::FaultBuilder;
pub use microsoft::{
    Audience, AutoForwardingMode, ExchangeSim, Faults, MicrosoftSim, SimAppRoleAssignment, SimApplication, SimMailbox,
    SimOAuth2Grant, SimOptions, SimOutboundPolicy, SimOutboundRule, SimPassword, SimPermission,
    SimRequiredResourceAccess, SimResourceAccess, SimServicePrincipal, routes,
};

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

/// Locks a mutex, recovering from poisoning: a panicking test thread must not wedge the server.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
