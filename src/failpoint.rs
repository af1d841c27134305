//! Crash failpoints for the reliability tests: `CEO_FAILPOINTS=name[,name…]` makes the process
//! abort (as SIGKILL would: no cleanup, no flush) when it reaches a named point. Without the
//! variable this is one cached lookup.
//!
//! Compiled in only where tests run: in builds without `debug_assertions` (the release profile,
//! the image) [`hit`] does nothing and `CEO_FAILPOINTS` is not even read, unless the cargo feature
//! `failpoints` is on (`cargo build --release --features failpoints`, to run the crash matrix
//! against an optimised binary). The tests build in the debug profile, so the crash matrix
//! (tests/crash.rs) needs nothing special.

#[cfg(any(debug_assertions, feature = "failpoints"))]
fn armed() -> &'static [String] {
    use std::sync::OnceLock;
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var("CEO_FAILPOINTS")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    })
}

/// Aborts the process if `name` is armed.
#[cfg(any(debug_assertions, feature = "failpoints"))]
pub fn hit(name: &str) {
    if armed().iter().any(|a| a == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

/// Failpoints are compiled out of this build (no `debug_assertions`, no `failpoints` feature).
#[cfg(not(any(debug_assertions, feature = "failpoints")))]
#[inline(always)]
pub fn hit(_name: &str) {}

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
