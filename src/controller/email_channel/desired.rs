//! Pure planning for an EmailChannel: the child AzureAppRegistration, mailbox changes, the state
//! of the secret in Connect and readiness. No I/O.

use crate::api::app_registration::{AzureAppRegistrationSpec, DeletionPolicy, ImplicitGrant, SignInAudience};
use crate::api::email_channel::EmailChannelSpec;
use crate::api::{ClientSecretSpec, Permission};
use crate::connect;
use crate::exchange::{MailboxForwarding, SmtpAuth};

/// What Connect's token flow really uses: delegated SMTP.Send and offline_access, admin-consented.
pub fn default_permissions() -> Vec<Permission> {
    vec![
        Permission {
            resource: "Office 365 Exchange Online".into(),
            application: vec![],
            delegated: vec!["SMTP.Send".into()],
        },
        Permission {
            resource: "Microsoft Graph".into(),
            application: vec![],
            delegated: vec!["offline_access".into()],
        },
    ]
}

/// Name of the Secret of a channel's child app registration when not overridden.
pub fn default_secret_name(channel: &str) -> String {
    format!("{channel}-azure")
}

/// The child AzureAppRegistration's spec (None when the channel references an existing one).
/// Its secret's consumer is Connect, so the previous secret is held until Connect has the new one.
pub fn child_spec(channel_name: &str, spec: &EmailChannelSpec) -> Option<AzureAppRegistrationSpec> {
    let tenant_ref = spec.azure.tenant_ref.clone()?;
    let mut client_secret = spec
        .azure
        .client_secret
        .clone()
        .unwrap_or_else(|| ClientSecretSpec::with_secret_name(default_secret_name(channel_name)));
    client_secret.require_acknowledgement = true;
    Some(AzureAppRegistrationSpec {
        tenant_ref,
        display_name: spec.azure.display_name.clone().unwrap_or_else(|| default_display_name(&spec.mailbox)),
        sign_in_audience: SignInAudience::AzureADMyOrg,
        redirect_uris: vec![connect::callback_url(&spec.connect.tenant_host)],
        // The TAC guide turns on "Access tokens" for the implicit grant.
        implicit_grant: ImplicitGrant { access_tokens: true, id_tokens: false },
        permissions: spec.azure.permissions.clone().unwrap_or_else(default_permissions),
        admin_consent: true,
        // Consent for the mailbox's user only: nobody else signs in to the channel's application.
        consent_for: vec![spec.mailbox.clone()],
        client_secret,
        adopt: None,
        deletion_policy: DeletionPolicy::Delete,
    })
}

/// Whether a channel whose failing conditions have these reasons should be looked at again soon:
/// yes unless every one waits on the app registration (or on what follows from it), whose watch
/// reconciles the channel when it changes. A person signing in to Connect, throttling and errors
/// of Exchange or Connect give no notification, so they are polled.
pub fn poll_soon(failing_reasons: &[&str]) -> bool {
    failing_reasons.iter().any(|r| *r != crate::api::conditions::reason::DEPENDENCY_NOT_READY)
}

/// How soon to look again at a channel that [`poll_soon`]: every 30 s, but while waiting for a
/// sign-in in Connect for `signing_in`, a quarter of that wait (at least 5 s): a person who clicks
/// "Generate Token" right away sees the channel Ready within seconds, and a channel waiting for
/// hours costs one Connect read per 30 s.
pub fn poll_interval(signing_in: Option<std::time::Duration>) -> std::time::Duration {
    use std::time::Duration;
    let steady = Duration::from_secs(30);
    match signing_in {
        Some(waited) => (waited / 4).clamp(Duration::from_secs(5), steady),
        None => steady,
    }
}

/// `Webex Connect <mailbox>`, cut to the 120 characters AzureAppRegistration.displayName allows
/// (a mailbox may have up to 254).
pub fn default_display_name(mailbox: &str) -> String {
    format!("Webex Connect {mailbox}").chars().take(DISPLAY_NAME_MAX).collect()
}

/// Bound of `displayName` in the AzureAppRegistration schema.
pub const DISPLAY_NAME_MAX: usize = 120;

/// Whether mailbox forwarding must change to reach `target` (None: no forwarding wanted).
pub fn forwarding_needs_change(observed: &MailboxForwarding, target: Option<&str>, keep_copy: bool) -> bool {
    let same_target = observed.smtp_address.as_deref().map(str::to_lowercase) == target.map(str::to_lowercase);
    let internal_wins = observed.address.is_some();
    let copy_ok = target.is_none() || observed.deliver_to_mailbox_and_forward == keep_copy;
    !same_target || internal_wins || !copy_ok
}

/// The mailbox-level SMTP AUTH setting to write, if any: enable it explicitly when the effective
/// value is off (the organisation default is off for tenants created after January 2020).
pub fn smtp_auth_change(observed: SmtpAuth, want_enabled: bool) -> Option<Option<bool>> {
    match (want_enabled, observed.effective_enabled()) {
        (true, false) => Some(Some(false)),
        (false, true) => Some(Some(true)),
        _ => None,
    }
}

/// Whether the operator may change the mailbox's forwarding: yes when it set the forwarding
/// itself (`owned`), when there is none, or when the EntraTenant allows taking settings over.
/// Otherwise the message describes what is there.
pub fn may_change_forwarding(observed: &MailboxForwarding, owned: bool, take_over: bool) -> Result<(), String> {
    if owned || take_over || (observed.smtp_address.is_none() && observed.address.is_none()) {
        return Ok(());
    }
    let to = observed.smtp_address.as_deref().or(observed.address.as_deref()).unwrap_or_default();
    Err(format!("the mailbox already forwards to {to}, which this operator did not set"))
}

/// Whether the operator may change the mailbox's `SmtpClientAuthenticationDisabled`: yes when it
/// set it itself, when the mailbox inherits the organisation's setting, or when taking over is allowed.
pub fn may_change_smtp_auth(observed: SmtpAuth, owned: bool, take_over: bool) -> Result<(), String> {
    match observed.mailbox_disabled {
        Some(disabled) if !owned && !take_over => Err(format!(
            "SMTP AUTH is explicitly {} on the mailbox, which this operator did not set",
            if disabled { "disabled" } else { "enabled" }
        )),
        _ => Ok(()),
    }
}

/// The client secret as Connect holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectSecret {
    /// Connect has the current key.
    Current,
    /// Connect has an older key (or none yet): a person must enter the current one (Manual) or
    /// the operator must push it (Api).
    Outdated { current: String, applied: Option<String> },
    /// The app registration has no secret yet.
    NotIssued,
}

pub fn connect_secret(current_key: Option<&str>, applied_key: Option<&str>) -> ConnectSecret {
    match current_key {
        None => ConnectSecret::NotIssued,
        Some(c) if applied_key == Some(c) => ConnectSecret::Current,
        Some(c) => ConnectSecret::Outdated { current: c.into(), applied: applied_key.map(str::to_string) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> EmailChannelSpec {
        serde_json::from_value(serde_json::json!({
            "mailbox": "support@contoso.com",
            "azure": {"tenantRef": {"name": "contoso"}},
            "connect": {"region": "us", "tenantHost": "acme.us.webexconnect.io", "assetName": "Support",
                        "forwardingAddress": "abc@mail-us.imiconnect.io"}
        }))
        .unwrap()
    }

    #[test]
    fn the_child_registers_the_callback_and_least_privilege_permissions() {
        let child = child_spec("support", &spec()).unwrap();
        assert_eq!(child.redirect_uris, vec!["https://acme.us.webexconnect.io/callback".to_string()]);
        assert!(child.implicit_grant.access_tokens);
        assert_eq!(child.permissions, default_permissions());
        assert_eq!(child.client_secret.secret_name, "support-azure");
        assert!(child.client_secret.require_acknowledgement, "Connect must confirm before the old secret goes");
        assert_eq!(child.display_name, "Webex Connect support@contoso.com");
        assert_eq!(child.consent_for, vec!["support@contoso.com".to_string()], "consent for the mailbox's user only");
    }

    #[test]
    fn only_waiting_on_the_registration_needs_no_polling() {
        use crate::api::conditions::reason;
        assert!(!poll_soon(&[]));
        assert!(!poll_soon(&[reason::DEPENDENCY_NOT_READY, reason::DEPENDENCY_NOT_READY]));
        assert!(poll_soon(&[reason::DEPENDENCY_NOT_READY, reason::SIGN_IN_REQUIRED]));
        assert!(poll_soon(&[reason::THROTTLED]));
        // Secrets are not watched: a refused Webex token or an asset waiting for adoption is
        // looked at again within 30 s, so a new token in the Secret (or an asset ID set in status)
        // is picked up without a restart.
        assert!(poll_soon(&[reason::DEPENDENCY_NOT_READY, reason::CONNECT_UNAUTHORIZED]));
        assert!(poll_soon(&[reason::ADOPTION_REFUSED]));
        assert!(poll_interval(None) <= std::time::Duration::from_secs(60));
    }

    #[test]
    fn a_fresh_sign_in_wait_is_polled_sooner_then_every_30_seconds() {
        use std::time::Duration;
        let s = Duration::from_secs;
        assert_eq!(poll_interval(None), s(30));
        assert_eq!(poll_interval(Some(s(0))), s(5));
        assert_eq!(poll_interval(Some(s(60))), s(15));
        assert_eq!(poll_interval(Some(s(3600))), s(30));
    }

    #[test]
    fn a_referenced_registration_means_no_child() {
        let mut s = spec();
        s.azure.tenant_ref = None;
        s.azure.app_registration_ref = Some(crate::api::common::LocalObjectReference { name: "shared".into() });
        assert!(child_spec("support", &s).is_none());
    }

    #[test]
    fn forwarding_changes_only_when_it_differs() {
        let ok = MailboxForwarding {
            smtp_address: Some("ABC@mail-us.imiconnect.io".into()),
            address: None,
            deliver_to_mailbox_and_forward: true,
        };
        assert!(!forwarding_needs_change(&ok, Some("abc@mail-us.imiconnect.io"), true));
        assert!(forwarding_needs_change(&ok, Some("abc@mail-us.imiconnect.io"), false));
        assert!(forwarding_needs_change(
            &MailboxForwarding { address: Some("boss".into()), ..ok.clone() },
            Some("abc@mail-us.imiconnect.io"),
            true
        ));
        assert!(forwarding_needs_change(&MailboxForwarding::default(), Some("x@y.z"), true));
        assert!(!forwarding_needs_change(&MailboxForwarding::default(), None, true));
    }

    #[test]
    fn smtp_auth_is_enabled_on_the_mailbox_when_the_organisation_disables_it() {
        let inherit_off = SmtpAuth { mailbox_disabled: None, organization_disabled: true };
        assert_eq!(smtp_auth_change(inherit_off, true), Some(Some(false)));
        assert_eq!(
            smtp_auth_change(SmtpAuth { mailbox_disabled: Some(false), organization_disabled: true }, true),
            None
        );
        assert_eq!(
            smtp_auth_change(SmtpAuth { mailbox_disabled: None, organization_disabled: false }, false),
            Some(Some(true))
        );
    }

    #[test]
    fn mailbox_settings_someone_else_made_are_not_taken_over() {
        let theirs = MailboxForwarding {
            smtp_address: Some("archive@contoso.com".into()),
            address: None,
            deliver_to_mailbox_and_forward: true,
        };
        let message = may_change_forwarding(&theirs, false, false).unwrap_err();
        assert!(message.contains("archive@contoso.com"));
        assert!(may_change_forwarding(&theirs, true, false).is_ok());
        assert!(may_change_forwarding(&theirs, false, true).is_ok());
        let internal = MailboxForwarding { address: Some("Boss".into()), ..MailboxForwarding::default() };
        assert!(may_change_forwarding(&internal, false, false).is_err());
        assert!(may_change_forwarding(&MailboxForwarding::default(), false, false).is_ok());

        let explicit = SmtpAuth { mailbox_disabled: Some(true), organization_disabled: false };
        assert!(may_change_smtp_auth(explicit, false, false).unwrap_err().contains("disabled"));
        assert!(may_change_smtp_auth(explicit, true, false).is_ok());
        assert!(may_change_smtp_auth(explicit, false, true).is_ok());
        let inherit = SmtpAuth { mailbox_disabled: None, organization_disabled: true };
        assert!(may_change_smtp_auth(inherit, false, false).is_ok());
    }

    #[test]
    fn connect_holds_the_current_secret_only_when_the_key_ids_match() {
        assert_eq!(connect_secret(Some("k2"), Some("k2")), ConnectSecret::Current);
        assert_eq!(
            connect_secret(Some("k2"), Some("k1")),
            ConnectSecret::Outdated { current: "k2".into(), applied: Some("k1".into()) }
        );
        assert_eq!(connect_secret(None, Some("k1")), ConnectSecret::NotIssued);
    }
}
