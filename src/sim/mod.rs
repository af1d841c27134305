//! Faithful HTTP simulators of the external systems the operator talks to, for tests, benchmarks
//! and the local demo.
//!
//! Each simulator is a real HTTPS server on loopback (certificates from a throw-away CA, see
//! [`tls`]) that keeps state, reproduces the documented behaviour and error bodies of the service,
//! records every call for assertions, and lets tests inject faults. They are library code, not
//! test doubles: clients under test use their production HTTP path against them.
//!
//! - [`microsoft`]: the Microsoft identity platform token endpoint and Microsoft Graph v1.0.

pub mod microsoft;
mod random;
pub(crate) mod server;
pub mod tls;

pub use microsoft::{
    Audience, CallRecord, FaultBuilder, Faults, MicrosoftSim, SimAppRoleAssignment, SimApplication, SimOAuth2Grant,
    SimOptions, SimPassword, SimPermission, SimRequiredResourceAccess, SimResourceAccess, SimServicePrincipal, routes,
};
