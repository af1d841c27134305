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
//! [`FaultBuilder`]), `calls` (the call log and its [`CallRecord`]s), `sync` and `random`; each
//! simulator imports them, and nothing imports back from this file.

mod calls;
pub mod connect;
mod faults;
pub mod microsoft;
mod random;
pub(crate) mod server;
pub mod standalone;
mod sync;
pub mod tls;

pub use calls::CallRecord;
pub use connect::{ConnectFaults, ConnectOptions, ConnectSim, SimAsset, SimOAuthConfig, SimSmtpConfig, TokenStatus};
pub use faults::FaultBuilder;
pub use microsoft::{
    Audience, AutoForwardingMode, ExchangeSim, Faults, MicrosoftSim, SimAppRoleAssignment, SimApplication, SimMailbox,
    SimOAuth2Grant, SimOptions, SimOutboundPolicy, SimOutboundRule, SimPassword, SimPermission,
    SimRequiredResourceAccess, SimResourceAccess, SimServicePrincipal, routes,
};
