//! The Exchange objects tests seed and assert on: mailboxes and outbound spam filter policies and
//! rules, as Get-Mailbox / Get-HostedOutboundSpamFilterPolicy / -Rule show them.

/// How the default (and any) outbound spam filter policy treats automatic external forwarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AutoForwardingMode {
    /// The default; Microsoft now treats it as `Off`.
    Automatic,
    On,
    Off,
}

impl AutoForwardingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AutoForwardingMode::Automatic => "Automatic",
            AutoForwardingMode::On => "On",
            AutoForwardingMode::Off => "Off",
        }
    }
}

/// A user mailbox with the properties of Get-Mailbox and Get-CASMailbox the operator uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimMailbox {
    pub user_principal_name: String,
    pub primary_smtp_address: String,
    pub alias: String,
    /// `Identity` and `Name`.
    pub identity: String,
    pub guid: String,
    pub exchange_guid: String,
    pub external_directory_object_id: String,
    /// As Exchange shows it: `smtp:user@domain`.
    pub forwarding_smtp_address: Option<String>,
    /// The identity of an internal recipient; when set it wins over `forwarding_smtp_address`.
    pub forwarding_address: Option<String>,
    pub deliver_to_mailbox_and_forward: bool,
    /// Recipients (their identities) who may send on behalf of the mailbox (Set-Mailbox
    /// `-GrantSendOnBehalfTo`): a parameter of `Mail Recipients` the operator does not use.
    pub grant_send_on_behalf_to: Vec<String>,
    /// CAS mailbox setting: `None` inherits the organization's transport config.
    pub smtp_client_authentication_disabled: Option<bool>,
}

/// A hosted outbound spam filter policy (Get-HostedOutboundSpamFilterPolicy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimOutboundPolicy {
    /// Also its identity.
    pub name: String,
    pub auto_forwarding_mode: AutoForwardingMode,
    /// True only for the policy named `Default`, which applies to everyone no rule matches.
    pub is_default: bool,
    pub guid: String,
}

/// A hosted outbound spam filter rule (Get-HostedOutboundSpamFilterRule): which senders a custom
/// policy applies to. Lower priority numbers win.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimOutboundRule {
    pub name: String,
    /// The policy's name.
    pub policy: String,
    /// Senders (addresses).
    pub from: Vec<String>,
    /// Groups whose members are senders.
    pub from_member_of: Vec<String>,
    pub sender_domain_is: Vec<String>,
    pub priority: u32,
    /// `State` Enabled / Disabled.
    pub enabled: bool,
    pub guid: String,
}
