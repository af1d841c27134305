//! Crash failpoints for the reliability tests: `CEO_FAILPOINTS=name[,name…]` makes the process
//! abort (as SIGKILL would: no cleanup, no flush) when it reaches a named point. Without the
//! variable this is one cached lookup.

use std::sync::OnceLock;

fn armed() -> &'static [String] {
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var("CEO_FAILPOINTS")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    })
}

/// Aborts the process if `name` is armed.
pub fn hit(name: &str) {
    if armed().iter().any(|a| a == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

/// Every AzureAppRegistration failpoint, in reconcile order (the crash matrix iterates over these).
pub const ALL: &[&str] = &[
    "app-registration/before-intent",
    "app-registration/after-intent",
    "app-registration/after-add-password",
    "app-registration/after-secret-write",
    "app-registration/after-status-write",
    "app-registration/before-revoke",
    "app-registration/after-revoke",
];

/// Every EmailChannel failpoint, in reconcile order: the Connect push (Api mode), the
/// acknowledgement that lets the registration revoke the previous secret, the Exchange writes,
/// and the status write that records the key Connect holds.
pub const CHANNEL: &[&str] = &[
    "email-channel/before-connect-push",
    "email-channel/after-connect-push",
    "email-channel/after-acknowledge",
    "email-channel/before-set-smtp-auth",
    "email-channel/after-set-smtp-auth",
    "email-channel/before-set-forwarding",
    "email-channel/after-set-forwarding",
    "email-channel/after-status-write",
];
