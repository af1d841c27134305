//! The controller layer's error type: one enum, a stable metric label per variant, and the split
//! between permanent errors (the spec or the tenant must change: wait) and transient ones (back off).

use crate::azure::AzureError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Azure(#[from] AzureError),
    /// The spec is valid for the schema but cannot be applied; the message says what to change.
    #[error("{0}")]
    InvalidSpec(String),
    #[error(transparent)]
    Connect(#[from] crate::connect::api::ConnectError),
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("object is missing {0}")]
    MissingObjectKey(&'static str),
    /// The operator refuses to act (trust boundary, something it did not create): `reason` is the
    /// condition reason, the message says what to change. Permanent until something changes.
    #[error("{message}")]
    Refused { reason: &'static str, message: String },
}

impl Error {
    /// Stable label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Azure(AzureError::Graph(_)) => "graph",
            Self::Azure(AzureError::Token(_)) => "token",
            Self::Azure(AzureError::Transport(_)) => "transport",
            Self::Azure(_) => "azure",
            Self::InvalidSpec(_) => "invalid_spec",
            Self::Connect(_) => "connect",
            Self::Finalizer(_) => "finalizer",
            Self::MissingObjectKey(_) => "missing_object_key",
            Self::Refused { .. } => "refused",
        }
    }

    /// Errors that retrying cannot fix until something changes (spec, tenant permissions).
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::InvalidSpec(_) | Self::MissingObjectKey(_) | Self::Refused { .. } => true,
            Self::Azure(e) => {
                !e.is_transient() && e.status().is_some_and(|s| (400..500).contains(&s)) && !e.is_throttled()
            }
            _ => false,
        }
    }
}
