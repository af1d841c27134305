//! Controllers, one module per resource, sharing a context, an error type and condition helpers.
//!
//! Each reconcile: observe external state (Graph, the Secret) → plan with pure functions →
//! act through the external-system traits → write status with server-side apply.
pub mod admission;
pub mod app_registration;
pub mod claims;
pub mod conditions;
pub mod context;
pub mod drift;
pub mod email_channel;
pub mod error;
pub mod lifecycle;
pub mod queue;
pub mod report;
pub mod run;
pub mod triggers;

pub use context::{Clock, Context, Settings, SystemClock};
pub use error::Error;
