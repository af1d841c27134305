//! The controller layer's error type: one enum, a stable metric label per variant, and the split
//! between permanent errors (the spec or the tenant must change: wait), errors of the operator's
//! own credential (a person must fix it: re-check every few minutes) and transient ones (back off).

use std::time::Duration;

use crate::azure::AzureError;

/// How often an object is re-checked while the operator's own Microsoft credential is refused:
/// soon enough that service resumes minutes after a person fixes it, rare enough not to flood the
/// token endpoint (and its sign-in logs) while nobody has.
pub const OPERATOR_CREDENTIAL_RECHECK: Duration = Duration::from_secs(3 * 60);

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
    /// Exchange Online: transient or permanent by its own classification.
    #[error(transparent)]
    Exchange(#[from] crate::exchange::ExchangeError),
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
    /// Every value of [`Error::metric_label`] (the metrics start each at zero).
    pub const METRIC_LABELS: [&'static str; 11] = crate::metrics::RECONCILE_ERROR_LABELS;

    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Azure(AzureError::Graph(_)) => "graph",
            Self::Azure(AzureError::Token(_)) => "token",
            Self::Azure(AzureError::Transport(_)) => "transport",
            Self::Azure(_) => "azure",
            Self::InvalidSpec(_) => "invalid_spec",
            Self::Connect(_) => "connect",
            Self::Exchange(_) => "exchange",
            Self::Finalizer(_) => "finalizer",
            Self::MissingObjectKey(_) => "missing_object_key",
            Self::Refused { .. } => "refused",
        }
    }

    /// A request was given up because its next wait did not fit the reconcile's wait budget
    /// (`controller::queue`): not a failure, the object is reconciled again after the wait.
    pub fn is_deferred(&self) -> bool {
        match self {
            Self::Azure(AzureError::Transport(t)) => t.deferred.is_some(),
            Self::Connect(crate::connect::api::ConnectError::Transport(t)) => t.deferred.is_some(),
            Self::Exchange(crate::exchange::ExchangeError::Transport(t)) => t.deferred.is_some(),
            Self::Exchange(crate::exchange::ExchangeError::Token(a)) => {
                matches!(a.as_ref(), AzureError::Transport(t) if t.deferred.is_some())
            }
            _ => false,
        }
    }

    /// The operator's own Microsoft credential is refused: no spec change fixes it and nothing
    /// announces the fix, so the object is re-checked every [`OPERATOR_CREDENTIAL_RECHECK`].
    pub fn is_operator_credential_failure(&self) -> bool {
        matches!(self, Self::Azure(e) if e.is_operator_credential_failure())
    }

    /// Errors that retrying cannot fix until something changes (spec, tenant permissions). The
    /// operator's own credential is not one of them (see [`Error::is_operator_credential_failure`]).
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::InvalidSpec(_) | Self::MissingObjectKey(_) | Self::Refused { .. } => true,
            Self::Azure(e) if e.is_operator_credential_failure() => false,
            Self::Azure(e) => {
                !e.is_transient() && e.status().is_some_and(|s| (400..500).contains(&s)) && !e.is_throttled()
            }
            Self::Exchange(crate::exchange::ExchangeError::Token(a)) if a.is_operator_credential_failure() => false,
            Self::Exchange(e) => !e.is_transient(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::error::TokenError;

    fn token_error(codes: &[u32], operator_credential: bool) -> Error {
        Error::Azure(AzureError::Token(Box::new(TokenError {
            status: 401,
            error: "invalid_client".into(),
            codes: codes.to_vec(),
            description: "refused".into(),
            trace_id: None,
            operator_credential,
        })))
    }

    #[test]
    fn the_operators_own_credential_failing_is_rechecked_soon_not_permanent() {
        use crate::azure::error::aadsts;
        for code in [
            aadsts::NO_MATCHING_FEDERATED_CREDENTIAL,
            aadsts::INVALID_SECRET,
            aadsts::EXPIRED_SECRET,
            aadsts::APP_NOT_FOUND,
        ] {
            let own = token_error(&[code], true);
            assert!(own.is_operator_credential_failure(), "AADSTS{code}");
            assert!(!own.is_permanent(), "AADSTS{code}");
        }
        // The same codes for a secret the operator issued (verification) are not about its own
        // credential, and a wrong tenant in the spec (90002) is a spec error.
        assert!(!token_error(&[aadsts::INVALID_SECRET], false).is_operator_credential_failure());
        assert!(token_error(&[90002], true).is_permanent());
        assert!(!token_error(&[90002], true).is_operator_credential_failure());
        // The federated token file missing is the same class.
        assert!(Error::Azure(AzureError::Credential("no file".into())).is_operator_credential_failure());
    }
}
