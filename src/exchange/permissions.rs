//! The Exchange Online cmdlets and parameters the operator runs as its own identity, in one place:
//! what `setup tenant` grants it (least privilege) and what the simulator's tests check.
//!
//! Every command built in [`super::wire`] for the [`super::MailboxAdmin`] methods and for
//! `inspect exchange` is covered here (a unit test below builds each one and checks it). A cmdlet
//! or parameter added to those calls must be added here too, or Exchange refuses it once the
//! operator runs with the role `setup tenant` makes.

/// Where the operator's permission for a cmdlet comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OperatorRole {
    /// The custom management role `setup tenant` derives from [`MAILBOX_SETTINGS_PARENT`]
    /// (`<name>-mailbox-settings`), keeping only these cmdlets and parameters, assigned through a
    /// role group limited by a recipient write scope to the allowed mailboxes.
    MailboxSettings,
    /// The built-in role `View-Only Configuration`, organization-wide and read only, assigned
    /// unchanged. Assumed, not confirmed by a public source: that it holds these reads.
    ConfigurationReader,
}

impl OperatorRole {
    /// The built-in role the permission comes from (the parent, for the custom role).
    pub const fn built_in_role(self) -> &'static str {
        match self {
            Self::MailboxSettings => MAILBOX_SETTINGS_PARENT,
            Self::ConfigurationReader => CONFIGURATION_READER_ROLE,
        }
    }
}

/// The parent of the operator's custom mailbox role. Assumed (Microsoft's role-entry lists, not
/// a test against a tenant): that its entries for Get-/Set-Mailbox and Get-/Set-CASMailbox hold
/// every parameter below.
pub const MAILBOX_SETTINGS_PARENT: &str = "Mail Recipients";

/// The built-in role for the organization-wide reads.
pub const CONFIGURATION_READER_ROLE: &str = "View-Only Configuration";

/// One cmdlet the operator runs, the parameters it ever passes to it, and the role that grants it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperatorCmdlet {
    pub cmdlet: &'static str,
    /// Every parameter the operator may pass (a role entry keeps exactly these). A Set-* entry
    /// always keeps `Identity`.
    pub parameters: &'static [&'static str],
    pub role: OperatorRole,
}

/// Every cmdlet the operator runs in Exchange Online, with the parameters it passes.
pub const OPERATOR_CMDLETS: [OperatorCmdlet; 8] = [
    // Forwarding (MailboxAdmin::forwarding), the mailbox user's ExternalDirectoryObjectId, and
    // `inspect exchange`.
    OperatorCmdlet { cmdlet: "Get-Mailbox", parameters: &["Identity"], role: OperatorRole::MailboxSettings },
    // MailboxAdmin::set_forwarding.
    OperatorCmdlet {
        cmdlet: "Set-Mailbox",
        parameters: &["Identity", "ForwardingAddress", "ForwardingSmtpAddress", "DeliverToMailboxAndForward"],
        role: OperatorRole::MailboxSettings,
    },
    // MailboxAdmin::smtp_auth and `inspect exchange`.
    OperatorCmdlet { cmdlet: "Get-CASMailbox", parameters: &["Identity"], role: OperatorRole::MailboxSettings },
    // MailboxAdmin::set_smtp_auth_disabled.
    OperatorCmdlet {
        cmdlet: "Set-CASMailbox",
        parameters: &["Identity", "SmtpClientAuthenticationDisabled"],
        role: OperatorRole::MailboxSettings,
    },
    // MailboxAdmin::smtp_auth (the organization default).
    OperatorCmdlet { cmdlet: "Get-TransportConfig", parameters: &[], role: OperatorRole::ConfigurationReader },
    // MailboxAdmin::outbound_forwarding.
    OperatorCmdlet {
        cmdlet: "Get-HostedOutboundSpamFilterPolicy",
        parameters: &[],
        role: OperatorRole::ConfigurationReader,
    },
    OperatorCmdlet {
        cmdlet: "Get-HostedOutboundSpamFilterRule",
        parameters: &[],
        role: OperatorRole::ConfigurationReader,
    },
    OperatorCmdlet { cmdlet: "Get-RemoteDomain", parameters: &["Identity"], role: OperatorRole::ConfigurationReader },
];

/// The cmdlets granted by `role`.
pub fn cmdlets_of(role: OperatorRole) -> impl Iterator<Item = &'static OperatorCmdlet> {
    OPERATOR_CMDLETS.iter().filter(move |c| c.role == role)
}

/// The entry for `cmdlet` (any case).
pub fn operator_cmdlet(cmdlet: &str) -> Option<&'static OperatorCmdlet> {
    OPERATOR_CMDLETS.iter().find(|c| c.cmdlet.eq_ignore_ascii_case(cmdlet.trim()))
}

#[cfg(test)]
mod tests {
    use super::super::wire;
    use super::*;

    #[test]
    fn every_command_the_operator_builds_is_listed_with_its_parameters() {
        let commands = [
            wire::get_mailbox("a@contoso.com"),
            wire::set_mailbox_forwarding("a@contoso.com", Some("x@example.com"), true),
            wire::set_mailbox_forwarding("a@contoso.com", None, false),
            wire::get_cas_mailbox("a@contoso.com"),
            wire::set_cas_smtp_auth("a@contoso.com", Some(false)),
            wire::set_cas_smtp_auth("a@contoso.com", None),
            wire::get_transport_config(),
            wire::get_outbound_policies(),
            wire::get_outbound_rules(),
            wire::get_default_remote_domain(),
        ];
        for command in &commands {
            let listed = operator_cmdlet(command.name).unwrap_or_else(|| panic!("{} is not listed", command.name));
            assert_eq!(listed.cmdlet, command.name, "spelled as sent");
            for parameter in command.parameters.keys() {
                assert!(listed.parameters.contains(&parameter.as_str()), "{} -{parameter} is not listed", command.name);
            }
        }
        // Nothing is listed that the operator does not run.
        for listed in &OPERATOR_CMDLETS {
            assert!(commands.iter().any(|c| c.name == listed.cmdlet), "{} is never run", listed.cmdlet);
            for parameter in listed.parameters {
                assert!(
                    commands.iter().any(|c| c.name == listed.cmdlet && c.parameters.contains_key(*parameter)),
                    "{} -{parameter} is never passed",
                    listed.cmdlet
                );
            }
        }
    }

    #[test]
    fn cmdlets_are_listed_once_and_set_entries_keep_identity() {
        for (i, c) in OPERATOR_CMDLETS.iter().enumerate() {
            assert!(OPERATOR_CMDLETS[..i].iter().all(|o| !o.cmdlet.eq_ignore_ascii_case(c.cmdlet)), "{}", c.cmdlet);
            if c.cmdlet.starts_with("Set-") {
                assert!(c.parameters.contains(&"Identity"), "{}", c.cmdlet);
                assert_eq!(c.role, OperatorRole::MailboxSettings, "writes are limited to the allowed mailboxes");
            }
        }
        assert_eq!(cmdlets_of(OperatorRole::MailboxSettings).count(), 4);
        assert_eq!(OperatorRole::MailboxSettings.built_in_role(), "Mail Recipients");
    }
}
