//! Condition types and reasons, as constants so that the controllers, `doctor`, the Argo CD health
//! checks and the tests all spell them the same way. Conditions are the standard
//! `metav1.Condition` (type, status, reason, message, observedGeneration, lastTransitionTime).

/// Condition types of an `AzureAppRegistration`.
pub mod app_registration {
    /// Everything below is true: the application exists as specified and a verified secret is in the Secret.
    pub const READY: &str = "Ready";
    /// The EntraTenant named by `tenantRef` admits this namespace and allows what the spec asks
    /// for. While False the operator makes no external call for the resource.
    pub const ADMITTED: &str = "Admitted";
    /// The Secret holds a client secret that the token endpoint accepts and that is not expired.
    pub const CREDENTIAL_READY: &str = "CredentialReady";
    /// Admin consent matches `spec.permissions` (app role assignments and delegated grants).
    pub const CONSENT_GRANTED: &str = "ConsentGranted";
    /// A rotation is in progress (new secret issued, old one not yet revoked).
    pub const ROTATING: &str = "Rotating";
}

/// Condition types of an `EmailChannel`.
pub mod email_channel {
    /// All the conditions below that apply to this channel's spec are true.
    pub const READY: &str = "Ready";
    /// The EntraTenant of the channel's registration admits this namespace, the mailbox and the
    /// forwarding destination. While False the operator makes no external call for the channel.
    pub const ADMITTED: &str = "Admitted";
    /// The child (or referenced) `AzureAppRegistration` is Ready.
    pub const APP_REGISTRATION_READY: &str = "AppRegistrationReady";
    /// SMTP AUTH and forwarding on the Exchange Online mailbox match the spec.
    pub const MAILBOX_CONFIGURED: &str = "MailboxConfigured";
    /// The outbound spam policy that applies to the mailbox allows forwarding to external addresses.
    pub const OUTBOUND_FORWARDING_ALLOWED: &str = "OutboundForwardingAllowed";
    /// The Webex Connect email asset holds the current client ID, secret, URLs and SMTP settings.
    pub const CONNECT_ASSET_SYNCED: &str = "ConnectAssetSynced";
    /// Connect holds a refresh token for the mailbox (someone completed "Generate Token").
    pub const CONNECT_AUTHORIZED: &str = "ConnectAuthorized";
    /// Manual mode: the secret entered in Connect is older than the current one.
    pub const CONNECT_SECRET_OUTDATED: &str = "ConnectSecretOutdated";
}

/// Reasons shared by both kinds (CamelCase, stable: alerts and health checks match on them).
pub mod reason {
    pub const RECONCILED: &str = "Reconciled";
    pub const IN_PROGRESS: &str = "InProgress";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const PAUSED: &str = "Paused";
    pub const UNKNOWN_PERMISSION: &str = "UnknownPermission";
    pub const SECRET_ISSUED: &str = "SecretIssued";
    pub const SECRET_VERIFIED: &str = "SecretVerified";
    pub const SECRET_EXPIRED: &str = "SecretExpired";
    pub const SECRET_REJECTED: &str = "SecretRejected";
    pub const LIFETIME_CLAMPED: &str = "LifetimeClampedByPolicy";
    pub const WAITING_FOR_ACKNOWLEDGEMENT: &str = "WaitingForAcknowledgement";
    pub const WAITING_FOR_PROPAGATION: &str = "WaitingForPropagation";
    pub const THROTTLED: &str = "Throttled";
    pub const EXTERNAL_ERROR: &str = "ExternalError";
    pub const PERMISSION_DENIED: &str = "PermissionDenied";
    pub const DEPENDENCY_NOT_READY: &str = "DependencyNotReady";
    pub const SIGN_IN_REQUIRED: &str = "SignInRequired";
    pub const FORWARDING_BLOCKED: &str = "ForwardingBlockedByPolicy";
    pub const NOT_MANAGED: &str = "NotManaged";
    /// The EntraTenant admits the resource.
    pub const ADMITTED: &str = "Admitted";
    /// The EntraTenant is missing, does not admit the namespace, or forbids what the spec asks.
    pub const NOT_ADMITTED: &str = "NotAdmitted";
    /// The Secret to write exists and was not created for this resource.
    pub const SECRET_CONFLICT: &str = "SecretConflict";
    /// The mailbox has a forwarding or SMTP AUTH setting the operator did not set.
    pub const MAILBOX_SETTING_IN_USE: &str = "MailboxSettingInUse";
    /// The application to adopt has not opted in, or is managed by another resource.
    pub const ADOPTION_REFUSED: &str = "AdoptionRefused";
    /// Webex Connect refused the access token (401/403): a person must refresh the Secret.
    pub const CONNECT_UNAUTHORIZED: &str = "ConnectUnauthorized";
    /// Deletion with `deletionPolicy: Delete` waits for Graph to delete the application.
    pub const DELETION_PENDING: &str = "DeletionPending";
    /// A mailbox named for consent has no Entra user the operator can find: nothing is granted.
    pub const PRINCIPAL_NOT_FOUND: &str = "PrincipalNotFound";
    /// Another channel (in any namespace) already manages the mailbox.
    pub const MAILBOX_CLAIMED: &str = "MailboxClaimed";
    /// The operator's own identity in the tenant failed (its EntraTenant credential Secret, its
    /// federated token, or Entra ID refusing it): an administrator must fix it; re-checked often.
    pub const OPERATOR_CREDENTIAL_FAILED: &str = "OperatorCredentialFailed";

    /// Every reason above (health checks and alerts are tested against this list).
    pub const ALL: &[&str] = &[
        PRINCIPAL_NOT_FOUND,
        MAILBOX_CLAIMED,
        RECONCILED,
        IN_PROGRESS,
        INVALID_SPEC,
        PAUSED,
        UNKNOWN_PERMISSION,
        SECRET_ISSUED,
        SECRET_VERIFIED,
        SECRET_EXPIRED,
        SECRET_REJECTED,
        LIFETIME_CLAMPED,
        WAITING_FOR_ACKNOWLEDGEMENT,
        WAITING_FOR_PROPAGATION,
        THROTTLED,
        EXTERNAL_ERROR,
        PERMISSION_DENIED,
        DEPENDENCY_NOT_READY,
        SIGN_IN_REQUIRED,
        FORWARDING_BLOCKED,
        NOT_MANAGED,
        ADMITTED,
        NOT_ADMITTED,
        SECRET_CONFLICT,
        MAILBOX_SETTING_IN_USE,
        ADOPTION_REFUSED,
        CONNECT_UNAUTHORIZED,
        DELETION_PENDING,
        OPERATOR_CREDENTIAL_FAILED,
    ];
}
