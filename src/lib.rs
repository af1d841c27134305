//! connect-email-operator: a Kubernetes operator that automates "configure a Webex Connect Email
//! app with Office 365 OAuth". See README.md and docs/architecture.md.

pub mod api;
pub mod azure;
pub mod clients;
pub mod connect;
pub mod controller;
pub mod doctor;
pub mod exchange;
pub mod failpoint;
pub mod http;
pub mod inspect;
pub mod leader;
pub mod metrics;
pub mod plan;
pub mod plugin;
pub mod policy;
pub mod setup;
#[cfg(feature = "telemetry")]
pub mod telemetry;

/// The Kubernetes API version the types are generated for (k8s-openapi feature); the supported
/// cluster range is stated in README.md.
pub const KUBERNETES_API: &str = "v1.35";
