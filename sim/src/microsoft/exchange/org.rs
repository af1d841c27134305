//! One tenant's Exchange Online organization and what the simulated cmdlets do to it: parameter
//! binding, identity resolution, the effect of each cmdlet and its errors, with no HTTP in sight
//! (`wire.rs` turns the outcome into InvokeCommand's JSON).

use std::fmt;

use serde_json::{Map, Value};

use super::model::{AutoForwardingMode, SimMailbox, SimOutboundPolicy, SimOutboundRule};
use crate::random;

/// The name of the default outbound spam filter policy (also its identity), which every
/// organization has and which cannot be removed.
pub(crate) const DEFAULT_POLICY: &str = "Default";
/// The remote domain every organization has (`DomainName` `*`).
pub(crate) const DEFAULT_REMOTE_DOMAIN: &str = "Default";
/// The domain controller named in "couldn't be found on '…'" messages; real ones look like this.
const DOMAIN_CONTROLLER: &str = "SIMPR01A001DC001.SIMPR01A001.PROD.OUTLOOK.COM";

/// The cmdlets the simulator implements. Exchange resolves names case-insensitively (a captured
/// request sent `get-mailbox`); [`Cmdlet::name`] is the canonical spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cmdlet {
    GetMailbox,
    SetMailbox,
    GetCasMailbox,
    SetCasMailbox,
    GetTransportConfig,
    GetHostedOutboundSpamFilterPolicy,
    GetHostedOutboundSpamFilterRule,
    GetRemoteDomain,
    GetServicePrincipal,
    NewServicePrincipal,
    GetManagementScope,
    NewManagementScope,
    GetManagementRoleAssignment,
    NewManagementRoleAssignment,
    GetRoleGroup,
    NewRoleGroup,
    GetRoleGroupMember,
    AddRoleGroupMember,
    GetManagementRole,
    NewManagementRole,
    GetManagementRoleEntry,
    AddManagementRoleEntry,
    RemoveManagementRoleEntry,
    SetManagementRoleEntry,
}

impl Cmdlet {
    pub const ALL: [Cmdlet; 24] = [
        Cmdlet::GetMailbox,
        Cmdlet::SetMailbox,
        Cmdlet::GetCasMailbox,
        Cmdlet::SetCasMailbox,
        Cmdlet::GetTransportConfig,
        Cmdlet::GetHostedOutboundSpamFilterPolicy,
        Cmdlet::GetHostedOutboundSpamFilterRule,
        Cmdlet::GetRemoteDomain,
        Cmdlet::GetServicePrincipal,
        Cmdlet::NewServicePrincipal,
        Cmdlet::GetManagementScope,
        Cmdlet::NewManagementScope,
        Cmdlet::GetManagementRoleAssignment,
        Cmdlet::NewManagementRoleAssignment,
        Cmdlet::GetRoleGroup,
        Cmdlet::NewRoleGroup,
        Cmdlet::GetRoleGroupMember,
        Cmdlet::AddRoleGroupMember,
        Cmdlet::GetManagementRole,
        Cmdlet::NewManagementRole,
        Cmdlet::GetManagementRoleEntry,
        Cmdlet::AddManagementRoleEntry,
        Cmdlet::RemoveManagementRoleEntry,
        Cmdlet::SetManagementRoleEntry,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cmdlet::GetMailbox => "Get-Mailbox",
            Cmdlet::SetMailbox => "Set-Mailbox",
            Cmdlet::GetCasMailbox => "Get-CASMailbox",
            Cmdlet::SetCasMailbox => "Set-CASMailbox",
            Cmdlet::GetTransportConfig => "Get-TransportConfig",
            Cmdlet::GetHostedOutboundSpamFilterPolicy => "Get-HostedOutboundSpamFilterPolicy",
            Cmdlet::GetHostedOutboundSpamFilterRule => "Get-HostedOutboundSpamFilterRule",
            Cmdlet::GetRemoteDomain => "Get-RemoteDomain",
            Cmdlet::GetServicePrincipal => "Get-ServicePrincipal",
            Cmdlet::NewServicePrincipal => "New-ServicePrincipal",
            Cmdlet::GetManagementScope => "Get-ManagementScope",
            Cmdlet::NewManagementScope => "New-ManagementScope",
            Cmdlet::GetManagementRoleAssignment => "Get-ManagementRoleAssignment",
            Cmdlet::NewManagementRoleAssignment => "New-ManagementRoleAssignment",
            Cmdlet::GetRoleGroup => "Get-RoleGroup",
            Cmdlet::NewRoleGroup => "New-RoleGroup",
            Cmdlet::GetRoleGroupMember => "Get-RoleGroupMember",
            Cmdlet::AddRoleGroupMember => "Add-RoleGroupMember",
            Cmdlet::GetManagementRole => "Get-ManagementRole",
            Cmdlet::NewManagementRole => "New-ManagementRole",
            Cmdlet::GetManagementRoleEntry => "Get-ManagementRoleEntry",
            Cmdlet::AddManagementRoleEntry => "Add-ManagementRoleEntry",
            Cmdlet::RemoveManagementRoleEntry => "Remove-ManagementRoleEntry",
            Cmdlet::SetManagementRoleEntry => "Set-ManagementRoleEntry",
        }
    }

    pub fn parse(name: &str) -> Option<Cmdlet> {
        Cmdlet::ALL.into_iter().find(|c| c.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The parameters each cmdlet accepts here (a subset of the real ones). `Confirm`,
    /// `ErrorAction` and `WarningAction` are common parameters the PowerShell module may pass;
    /// they are accepted and ignored.
    fn parameters(self) -> &'static [&'static str] {
        match self {
            Cmdlet::GetMailbox | Cmdlet::GetCasMailbox => &["Identity", "ResultSize"],
            Cmdlet::SetMailbox => &[
                "Identity",
                "ForwardingSmtpAddress",
                "ForwardingAddress",
                "DeliverToMailboxAndForward",
                "GrantSendOnBehalfTo",
            ],
            Cmdlet::SetCasMailbox => &["Identity", "SmtpClientAuthenticationDisabled"],
            Cmdlet::GetTransportConfig => &[],
            Cmdlet::GetHostedOutboundSpamFilterPolicy
            | Cmdlet::GetHostedOutboundSpamFilterRule
            | Cmdlet::GetRemoteDomain => &["Identity"],
            Cmdlet::GetServicePrincipal | Cmdlet::GetManagementScope => &["Identity"],
            Cmdlet::NewServicePrincipal => &["AppId", "ObjectId", "ServiceId", "DisplayName"],
            Cmdlet::NewManagementScope => &["Name", "RecipientRestrictionFilter"],
            Cmdlet::GetManagementRoleAssignment => &["Identity", "Role", "RoleAssignee"],
            Cmdlet::NewManagementRoleAssignment => &["Name", "Role", "App", "CustomResourceScope"],
            Cmdlet::GetRoleGroup | Cmdlet::GetRoleGroupMember => &["Identity"],
            Cmdlet::NewRoleGroup => &["Name", "Roles", "CustomRecipientWriteScope", "Members", "Description"],
            Cmdlet::AddRoleGroupMember => &["Identity", "Member"],
            Cmdlet::GetManagementRole | Cmdlet::GetManagementRoleEntry => &["Identity"],
            Cmdlet::NewManagementRole => &["Name", "Parent", "Description"],
            Cmdlet::AddManagementRoleEntry => &["Identity", "Parameters"],
            Cmdlet::RemoveManagementRoleEntry => &["Identity", "Force"],
            Cmdlet::SetManagementRoleEntry => &["Identity", "Parameters", "AddParameter", "RemoveParameter", "Force"],
        }
    }
}

const COMMON_PARAMETERS: [&str; 3] = ["Confirm", "ErrorAction", "WarningAction"];

/// What a cmdlet wrote to its output pipeline.
#[derive(Clone, Debug)]
pub(crate) enum Output {
    Mailbox(SimMailbox),
    CasMailbox(SimMailbox),
    TransportConfig {
        smtp_client_authentication_disabled: bool,
    },
    OutboundPolicy(SimOutboundPolicy),
    OutboundRule(SimOutboundRule),
    RemoteDomain {
        name: String,
        auto_forward_enabled: bool,
    },
    ServicePrincipal(SimExchangeServicePrincipal),
    ManagementScope(SimManagementScope),
    RoleAssignment(SimRoleAssignment),
    RoleGroup(SimRoleGroup),
    /// A role group member that is a service principal.
    RoleGroupMember(SimExchangeServicePrincipal),
    ManagementRole(SimManagementRole),
    /// One entry of `role`.
    RoleEntry {
        role: String,
        entry: SimRoleEntry,
    },
}

/// A successful run: output objects plus warnings (`@adminapi.warnings`).
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub output: Vec<Output>,
    pub warnings: Vec<String>,
}

/// A cmdlet failure as Exchange reports it in `error.details[].message`:
/// `<error id>|<exception type>|<text>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CmdletError {
    /// Confirmed text and id (public bodies of Get-Mailbox / Remove-Mailbox failures).
    ObjectNotFound { identity: String },
    /// Confirmed text and id for a recipient named in a parameter (public EXO error output).
    RecipientNotFound { identity: String },
    /// PowerShell's parameter binding text; the empty error id and the 400 status are unconfirmed.
    UnknownParameter { name: String },
    /// Unconfirmed wording after PowerShell's "Cannot process argument transformation" pattern.
    InvalidArgument { parameter: &'static str, reason: String },
    /// PowerShell's text for a missing mandatory parameter; unconfirmed through InvokeCommand.
    MissingParameter { name: &'static str },
    /// A New-* cmdlet naming an object that exists. Unconfirmed id, exception type and wording.
    AlreadyExists { kind: &'static str, name: String },
    /// New-ManagementRoleAssignment -App with a role that is not an application role. The rule
    /// is documented ("If you use the App parameter, you can't specify admin or user roles; you
    /// can only specify application roles"); the error id, type and wording are unconfirmed.
    NotAnApplicationRole { role: String },
    /// Changing the entries of a built-in role. The rule is documented ("you can't remove role
    /// entries from built-in management roles", "You can't change role entries associated with
    /// built-in roles"); the error id, type and wording are unconfirmed.
    BuiltInRole { role: String },
    /// Adding a cmdlet or parameter the parent role's entry does not have. The rule is documented
    /// ("the parameters must exist in the role entry in the parent management role"); the error
    /// id, type and wording are unconfirmed.
    NotInParent { entry: String, parameter: Option<String> },
    /// Removing an entry or parameters that a child role's entry still has. The rule is
    /// documented for parameters ("there can be no role entries in child roles that inherit
    /// those parameters"); applying it to whole entries, and the error, are unconfirmed.
    InheritedByChild { entry: String, child: String },
}

impl CmdletError {
    /// Whether Exchange reports it as a missing object (HTTP 404, code `NotFound`) rather than a
    /// bad request.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CmdletError::ObjectNotFound { .. } | CmdletError::RecipientNotFound { .. })
    }
}

impl fmt::Display for CmdletError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NOT_FOUND: &str = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException";
        match self {
            CmdletError::ObjectNotFound { identity } => write!(
                f,
                "Ex6F9304|{NOT_FOUND}|The operation couldn't be performed because object '{identity}' couldn't be found on '{DOMAIN_CONTROLLER}'."
            ),
            CmdletError::RecipientNotFound { identity } => write!(
                f,
                "Ex94914C|{NOT_FOUND}|Couldn't find object \"{identity}\". Please make sure that it was spelled correctly or specify a different object."
            ),
            CmdletError::UnknownParameter { name } => write!(
                f,
                "|System.Management.Automation.ParameterBindingException|A parameter cannot be found that matches parameter name '{name}'."
            ),
            CmdletError::InvalidArgument { parameter, reason } => write!(
                f,
                "|System.Management.Automation.ParameterBindingArgumentTransformationException|Cannot process argument transformation on parameter '{parameter}'. {reason}"
            ),
            CmdletError::MissingParameter { name } => write!(
                f,
                "|System.Management.Automation.ParameterBindingException|Cannot process command because of one or more missing mandatory parameters: {name}."
            ),
            CmdletError::AlreadyExists { kind, name } => write!(
                f,
                "|Microsoft.Exchange.Management.Tasks.ADObjectAlreadyExistsException|The {kind} \"{name}\" already exists."
            ),
            CmdletError::NotAnApplicationRole { role } => write!(
                f,
                "|Microsoft.Exchange.Management.RbacTasks.InvalidRoleAssignmentException|The role \"{role}\" can't be assigned to an application: only application roles (Application …) can."
            ),
            CmdletError::BuiltInRole { role } => write!(
                f,
                "|Microsoft.Exchange.Management.RbacTasks.InvalidOperationOnBuiltInRoleException|The role \"{role}\" is a built-in role: its role entries can't be changed."
            ),
            CmdletError::NotInParent { entry, parameter: None } => write!(
                f,
                "|Microsoft.Exchange.Management.RbacTasks.RoleEntryNotInParentException|The role entry \"{entry}\" isn't on the parent role."
            ),
            CmdletError::NotInParent { entry, parameter: Some(parameter) } => write!(
                f,
                "|Microsoft.Exchange.Management.RbacTasks.RoleEntryNotInParentException|The parameter \"{parameter}\" of role entry \"{entry}\" isn't on the parent role's entry."
            ),
            CmdletError::InheritedByChild { entry, child } => write!(
                f,
                "|Microsoft.Exchange.Management.RbacTasks.RoleEntryInheritedException|The role entry \"{entry}\" can't be changed: the child role \"{child}\" inherits it."
            ),
        }
    }
}

/// The parameters of one invocation, bound case-insensitively to the cmdlet's names.
struct Bound<'a> {
    values: Vec<(&'static str, &'a Value)>,
}

impl<'a> Bound<'a> {
    fn bind(cmdlet: Cmdlet, parameters: &'a Map<String, Value>) -> Result<Bound<'a>, CmdletError> {
        let mut values = Vec::new();
        for (name, value) in parameters {
            if let Some(known) = cmdlet.parameters().iter().find(|p| p.eq_ignore_ascii_case(name)) {
                values.push((*known, value));
            } else if !COMMON_PARAMETERS.iter().any(|p| p.eq_ignore_ascii_case(name)) {
                return Err(CmdletError::UnknownParameter { name: name.clone() });
            }
        }
        Ok(Bound { values })
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    fn string(&self, name: &'static str) -> Result<Option<String>, CmdletError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(CmdletError::InvalidArgument {
                parameter: name,
                reason: format!("Cannot convert value \"{other}\" to type \"System.String\"."),
            }),
        }
    }

    /// A string or an array of strings (PowerShell binds either to a multi-valued parameter).
    fn strings(&self, name: &'static str) -> Result<Vec<String>, CmdletError> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(CmdletError::InvalidArgument {
                        parameter: name,
                        reason: format!("Cannot convert value \"{other}\" to type \"System.String\"."),
                    }),
                })
                .collect(),
            Some(other) => Err(CmdletError::InvalidArgument {
                parameter: name,
                reason: format!("Cannot convert value \"{other}\" to type \"System.String[]\"."),
            }),
        }
    }

    fn required(&self, name: &'static str) -> Result<String, CmdletError> {
        self.string(name)?.filter(|v| !v.trim().is_empty()).ok_or(CmdletError::MissingParameter { name })
    }

    fn identity(&self) -> Result<String, CmdletError> {
        self.string("Identity")?.ok_or(CmdletError::MissingParameter { name: "Identity" })
    }

    /// A parameter that may be set to `$null` (JSON null): `Some(None)` clears it.
    fn nullable(&self, name: &'static str) -> Option<Option<&'a Value>> {
        self.get(name).map(|v| (!v.is_null()).then_some(v))
    }

    fn boolean(name: &'static str, value: &Value) -> Result<bool, CmdletError> {
        value.as_bool().ok_or_else(|| CmdletError::InvalidArgument {
            parameter: name,
            reason: format!(
                "Cannot convert value \"{value}\" to type \"System.Boolean\". Boolean parameters accept only Boolean values and numbers, such as $True, $False, 1 or 0."
            ),
        })
    }
}

/// One tenant's Exchange Online organization.
#[derive(Debug)]
pub(crate) struct ExchangeOrg {
    /// Accepted domains, lowercase: those added explicitly and the domains of every mailbox.
    pub domains: Vec<String>,
    pub mailboxes: Vec<SimMailbox>,
    /// Org-wide SMTP AUTH switch; true by default for tenants created after January 2020.
    pub transport_smtp_auth_disabled: bool,
    pub policies: Vec<SimOutboundPolicy>,
    pub rules: Vec<SimOutboundRule>,
    pub remote_domain_auto_forward: bool,
    /// The caller lacks an Exchange role: every cmdlet is refused (see `wire.rs`).
    pub role_missing: bool,
    /// The next `.0` authenticated calls get the concurrency throttling answer with status `.1`.
    pub concurrency_throttle: Option<(usize, u16)>,
    /// Cmdlet failures carry their text only in `innererror.internalexception.message`.
    pub errors_without_details: bool,
    /// Every cmdlet the organization ran (or refused on its parameters), with the parameters as
    /// received, in order: what the client actually sent.
    pub received: Vec<(Cmdlet, Map<String, Value>)>,
    /// Exchange's references to Entra service principals (New-ServicePrincipal).
    pub service_principals: Vec<SimExchangeServicePrincipal>,
    /// Custom management scopes (New-ManagementScope).
    pub scopes: Vec<SimManagementScope>,
    /// Management role assignments to service principals (New-ManagementRoleAssignment -App).
    pub role_assignments: Vec<SimRoleAssignment>,
    /// Custom role groups (New-RoleGroup), with service principals as members.
    pub role_groups: Vec<SimRoleGroup>,
    /// Custom management roles (New-ManagementRole); the built-in ones are [`BUILT_IN_ROLES`].
    pub roles: Vec<SimManagementRole>,
}

/// A custom management role group (Get-RoleGroup).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimRoleGroup {
    pub name: String,
    pub roles: Vec<String>,
    /// The recipient write scope applied to the group's role assignments.
    pub custom_recipient_write_scope: Option<String>,
    /// Members that are service principals: their Exchange `ServiceId`s.
    pub members: Vec<String>,
}

/// Exchange's own object for an Entra service principal (Get-ServicePrincipal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimExchangeServicePrincipal {
    pub app_id: String,
    /// The Entra service principal's object ID.
    pub object_id: String,
    /// Exchange's GUID for the reference (`ServiceId`).
    pub service_id: String,
    pub display_name: String,
}

/// A custom management scope (Get-ManagementScope).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimManagementScope {
    pub name: String,
    pub recipient_filter: String,
}

/// A management role assignment to a service principal (Get-ManagementRoleAssignment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimRoleAssignment {
    pub name: String,
    pub role: String,
    /// The assignee's Exchange service principal `ServiceId`.
    pub app_service_id: String,
    pub custom_resource_scope: Option<String>,
}

/// A management role (Get-ManagementRole): a built-in one, or a custom one made with
/// New-ManagementRole from a parent whose entries it starts with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimManagementRole {
    pub name: String,
    /// The parent role's name; None for a built-in (root) role.
    pub parent: Option<String>,
    pub entries: Vec<SimRoleEntry>,
}

impl SimManagementRole {
    pub fn is_built_in(&self) -> bool {
        self.parent.is_none()
    }

    /// The entry for `cmdlet` (any case).
    pub fn entry(&self, cmdlet: &str) -> Option<&SimRoleEntry> {
        self.entries.iter().find(|e| e.cmdlet.eq_ignore_ascii_case(cmdlet.trim()))
    }
}

/// A management role entry (Get-ManagementRoleEntry): a cmdlet and the parameters of it the role
/// allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimRoleEntry {
    pub cmdlet: String,
    pub parameters: Vec<String>,
}

impl SimRoleEntry {
    pub fn has_parameter(&self, name: &str) -> bool {
        self.parameters.iter().any(|p| p.eq_ignore_ascii_case(name.trim()))
    }
}

/// A built-in role: its name and its entries (cmdlet, parameters).
type BuiltInRole = (&'static str, &'static [(&'static str, &'static [&'static str])]);

/// The built-in management roles the simulator knows, with their role entries: role names are
/// confirmed from Exchange Online's role list; the entries are a subset. That `Mail Recipients`
/// holds the mailbox cmdlets the operator runs and mailbox/recipient permission cmdlets
/// (Add-MailboxPermission, Add-RecipientPermission) follows Microsoft's role-entry lists; the
/// parameter lists are abbreviated and, beyond the ones the operator sends, illustrative. That
/// `View-Only Configuration` holds the organization-wide reads the operator makes is assumed
/// (as `setup tenant` assumes it). Application roles (RBAC for Applications) have no cmdlet
/// entries.
const BUILT_IN_ROLES: [BuiltInRole; 6] = [
    (
        "Mail Recipients",
        &[
            ("Get-Mailbox", &["Identity", "Anr", "Filter", "RecipientTypeDetails", "ResultSize", "SortBy"]),
            (
                "Set-Mailbox",
                &[
                    "Identity",
                    "Confirm",
                    "DeliverToMailboxAndForward",
                    "DisplayName",
                    "EmailAddresses",
                    "ForwardingAddress",
                    "ForwardingSmtpAddress",
                    "GrantSendOnBehalfTo",
                    "HiddenFromAddressListsEnabled",
                    "WhatIf",
                ],
            ),
            ("Get-CASMailbox", &["Identity", "Filter", "ResultSize"]),
            (
                "Set-CASMailbox",
                &[
                    "Identity",
                    "ActiveSyncEnabled",
                    "Confirm",
                    "ImapEnabled",
                    "OWAEnabled",
                    "PopEnabled",
                    "SmtpClientAuthenticationDisabled",
                    "WhatIf",
                ],
            ),
            ("Get-Recipient", &["Identity", "Filter", "ResultSize"]),
            ("Get-MailboxPermission", &["Identity", "User"]),
            (
                "Add-MailboxPermission",
                &["Identity", "AccessRights", "AutoMapping", "Confirm", "InheritanceType", "User", "WhatIf"],
            ),
            ("Remove-MailboxPermission", &["Identity", "AccessRights", "Confirm", "User", "WhatIf"]),
            ("Add-RecipientPermission", &["Identity", "AccessRights", "Confirm", "Trustee", "WhatIf"]),
            ("Remove-RecipientPermission", &["Identity", "AccessRights", "Confirm", "Trustee", "WhatIf"]),
        ],
    ),
    (
        "View-Only Configuration",
        &[
            ("Get-AcceptedDomain", &["Identity"]),
            ("Get-HostedOutboundSpamFilterPolicy", &["Identity"]),
            ("Get-HostedOutboundSpamFilterRule", &["Identity", "State"]),
            ("Get-OrganizationConfig", &["Identity"]),
            ("Get-RemoteDomain", &["Identity"]),
            ("Get-TransportConfig", &["Identity"]),
        ],
    ),
    (
        "View-Only Recipients",
        &[
            ("Get-CASMailbox", &["Identity", "Filter", "ResultSize"]),
            ("Get-Mailbox", &["Identity", "Anr", "Filter", "RecipientTypeDetails", "ResultSize", "SortBy"]),
            ("Get-Recipient", &["Identity", "Filter", "ResultSize"]),
        ],
    ),
    ("Application Mail.Send", &[]),
    ("Application Mail.Read", &[]),
    ("Application Exchange Full Access", &[]),
];

fn built_in_role(name: &str) -> Option<SimManagementRole> {
    let (name, entries) = BUILT_IN_ROLES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))?;
    Some(SimManagementRole {
        name: name.to_string(),
        parent: None,
        entries: entries
            .iter()
            .map(|(cmdlet, parameters)| SimRoleEntry {
                cmdlet: cmdlet.to_string(),
                parameters: parameters.iter().map(|p| p.to_string()).collect(),
            })
            .collect(),
    })
}

/// Why a caller whose roles the simulator enforces may not run a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No role of the caller has an entry for the cmdlet.
    Cmdlet,
    /// The caller's entries for the cmdlet lack this parameter (as sent).
    Parameter(String),
}

/// `Role\Cmdlet` → (role, cmdlet); a bare name is a cmdlet of any role (`*\name`).
fn split_entry_identity(identity: &str) -> (&str, &str) {
    match identity.trim().rsplit_once('\\') {
        Some((role, cmdlet)) => (role.trim(), cmdlet.trim()),
        None => ("*", identity.trim()),
    }
}

/// Case-insensitive match with `*` standing for any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.to_ascii_lowercase(), text.to_ascii_lowercase());
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

impl ExchangeOrg {
    pub fn new() -> ExchangeOrg {
        ExchangeOrg {
            domains: Vec::new(),
            mailboxes: Vec::new(),
            transport_smtp_auth_disabled: true,
            policies: vec![SimOutboundPolicy {
                name: DEFAULT_POLICY.to_string(),
                auto_forwarding_mode: AutoForwardingMode::Automatic,
                is_default: true,
                guid: random::guid(),
            }],
            rules: Vec::new(),
            remote_domain_auto_forward: true,
            role_missing: false,
            concurrency_throttle: None,
            errors_without_details: false,
            received: Vec::new(),
            service_principals: Vec::new(),
            scopes: Vec::new(),
            role_assignments: Vec::new(),
            role_groups: Vec::new(),
            roles: Vec::new(),
        }
    }

    /// Consumes one throttled answer, if any are pending, and returns its status.
    pub fn take_concurrency_throttle(&mut self) -> Option<u16> {
        let (left, status) = self.concurrency_throttle.as_mut()?;
        let status = *status;
        *left -= 1;
        if *left == 0 {
            self.concurrency_throttle = None;
        }
        Some(status)
    }

    pub fn add_domain(&mut self, domain: &str) {
        let domain = domain.trim().to_ascii_lowercase();
        if !domain.is_empty() && !self.domains.contains(&domain) {
            self.domains.push(domain);
        }
    }

    pub fn has_domain(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// A new user mailbox for `upn` (idempotent: an existing one is returned unchanged).
    pub fn add_mailbox(&mut self, upn: &str) -> SimMailbox {
        if let Some(existing) = self.mailbox(upn) {
            return existing.clone();
        }
        let upn = upn.trim().to_string();
        let (alias, domain) = upn.split_once('@').unwrap_or((upn.as_str(), ""));
        self.add_domain(domain);
        // Observed: Name and Identity are the alias for a mailbox created from a user.
        let mailbox = SimMailbox {
            user_principal_name: upn.clone(),
            primary_smtp_address: upn.clone(),
            alias: alias.to_string(),
            identity: alias.to_string(),
            guid: random::guid(),
            exchange_guid: random::guid(),
            external_directory_object_id: random::guid(),
            forwarding_smtp_address: None,
            forwarding_address: None,
            deliver_to_mailbox_and_forward: false,
            grant_send_on_behalf_to: Vec::new(),
            smtp_client_authentication_disabled: None,
        };
        self.mailboxes.push(mailbox.clone());
        mailbox
    }

    /// Resolves an identity the way the recipient cmdlets do, on the properties they accept:
    /// UPN, primary SMTP address, alias, name, GUIDs.
    pub fn mailbox(&self, identity: &str) -> Option<&SimMailbox> {
        self.mailbox_index(identity).map(|i| &self.mailboxes[i])
    }

    pub fn mailbox_index(&self, identity: &str) -> Option<usize> {
        let identity = identity.trim();
        self.mailboxes.iter().position(|m| {
            [
                &m.user_principal_name,
                &m.primary_smtp_address,
                &m.alias,
                &m.identity,
                &m.guid,
                &m.exchange_guid,
                &m.external_directory_object_id,
            ]
            .iter()
            .any(|v| v.eq_ignore_ascii_case(identity))
        })
    }

    pub fn policy(&self, identity: &str) -> Option<&SimOutboundPolicy> {
        self.policies.iter().find(|p| p.name.eq_ignore_ascii_case(identity.trim()) || p.guid == identity.trim())
    }

    /// Runs `cmdlet` with `parameters` (the `Parameters` object of the request).
    pub fn run(&mut self, cmdlet: Cmdlet, parameters: &Map<String, Value>) -> Result<Outcome, CmdletError> {
        let bound = Bound::bind(cmdlet, parameters)?;
        let output = match cmdlet {
            Cmdlet::GetMailbox => self.recipients(&bound)?.into_iter().map(Output::Mailbox).collect(),
            Cmdlet::GetCasMailbox => self.recipients(&bound)?.into_iter().map(Output::CasMailbox).collect(),
            Cmdlet::SetMailbox => return self.set_mailbox(&bound),
            Cmdlet::SetCasMailbox => return self.set_cas_mailbox(&bound),
            Cmdlet::GetTransportConfig => {
                vec![Output::TransportConfig { smtp_client_authentication_disabled: self.transport_smtp_auth_disabled }]
            }
            Cmdlet::GetHostedOutboundSpamFilterPolicy => match bound.string("Identity")? {
                None => self.policies.iter().cloned().map(Output::OutboundPolicy).collect(),
                Some(identity) => match self.policy(&identity) {
                    Some(policy) => vec![Output::OutboundPolicy(policy.clone())],
                    None => return Err(CmdletError::ObjectNotFound { identity }),
                },
            },
            Cmdlet::GetHostedOutboundSpamFilterRule => {
                let mut rules = self.rules.clone();
                rules.sort_by_key(|r| r.priority);
                match bound.string("Identity")? {
                    None => rules.into_iter().map(Output::OutboundRule).collect(),
                    Some(identity) => match rules.into_iter().find(|r| r.name.eq_ignore_ascii_case(identity.trim())) {
                        Some(rule) => vec![Output::OutboundRule(rule)],
                        None => return Err(CmdletError::ObjectNotFound { identity }),
                    },
                }
            }
            Cmdlet::GetRemoteDomain => {
                let default = Output::RemoteDomain {
                    name: DEFAULT_REMOTE_DOMAIN.to_string(),
                    auto_forward_enabled: self.remote_domain_auto_forward,
                };
                match bound.string("Identity")? {
                    None => vec![default],
                    Some(identity) if identity.trim().eq_ignore_ascii_case(DEFAULT_REMOTE_DOMAIN) => vec![default],
                    Some(identity) => return Err(CmdletError::ObjectNotFound { identity }),
                }
            }
            Cmdlet::GetServicePrincipal => match bound.string("Identity")? {
                None => self.service_principals.iter().cloned().map(Output::ServicePrincipal).collect(),
                Some(identity) => match self.exchange_sp(&identity) {
                    Some(sp) => vec![Output::ServicePrincipal(sp.clone())],
                    None => return Err(CmdletError::ObjectNotFound { identity }),
                },
            },
            Cmdlet::NewServicePrincipal => {
                let app_id = bound.required("AppId")?;
                let object_id = bound.required("ObjectId")?;
                if self.exchange_sp(&app_id).is_some() || self.exchange_sp(&object_id).is_some() {
                    return Err(CmdletError::AlreadyExists { kind: "service principal", name: app_id });
                }
                let sp = SimExchangeServicePrincipal {
                    display_name: bound.string("DisplayName")?.unwrap_or_else(|| app_id.clone()),
                    service_id: bound.string("ServiceId")?.unwrap_or_else(random::guid),
                    app_id,
                    object_id,
                };
                self.service_principals.push(sp.clone());
                vec![Output::ServicePrincipal(sp)]
            }
            Cmdlet::GetManagementScope => match bound.string("Identity")? {
                None => self.scopes.iter().cloned().map(Output::ManagementScope).collect(),
                Some(identity) => match self.scopes.iter().find(|s| s.name.eq_ignore_ascii_case(identity.trim())) {
                    Some(scope) => vec![Output::ManagementScope(scope.clone())],
                    None => return Err(CmdletError::ObjectNotFound { identity }),
                },
            },
            Cmdlet::NewManagementScope => {
                let name = bound.required("Name")?;
                let recipient_filter = bound.required("RecipientRestrictionFilter")?;
                if self.scopes.iter().any(|s| s.name.eq_ignore_ascii_case(&name)) {
                    return Err(CmdletError::AlreadyExists { kind: "management scope", name });
                }
                let scope = SimManagementScope { name, recipient_filter };
                self.scopes.push(scope.clone());
                vec![Output::ManagementScope(scope)]
            }
            Cmdlet::GetManagementRoleAssignment => {
                let role = bound.string("Role")?;
                let assignee = bound.string("RoleAssignee")?;
                let identity = bound.string("Identity")?;
                let assignee_id = match &assignee {
                    Some(a) => match self.exchange_sp(a) {
                        Some(sp) => Some(sp.service_id.clone()),
                        None => return Err(CmdletError::ObjectNotFound { identity: a.clone() }),
                    },
                    None => None,
                };
                self.role_assignments
                    .iter()
                    .filter(|a| role.as_deref().is_none_or(|r| a.role.eq_ignore_ascii_case(r.trim())))
                    .filter(|a| identity.as_deref().is_none_or(|i| a.name.eq_ignore_ascii_case(i.trim())))
                    .filter(|a| assignee_id.as_deref().is_none_or(|id| a.app_service_id == id))
                    .cloned()
                    .map(Output::RoleAssignment)
                    .collect()
            }
            Cmdlet::NewManagementRoleAssignment => {
                let role = bound.required("Role")?;
                let app = bound.required("App")?;
                let Some(role) = self.role(&role).map(|r| r.name) else {
                    return Err(CmdletError::ObjectNotFound { identity: role });
                };
                if !role.starts_with("Application ") {
                    return Err(CmdletError::NotAnApplicationRole { role });
                }
                let Some(sp) = self.exchange_sp(&app).cloned() else {
                    return Err(CmdletError::RecipientNotFound { identity: app });
                };
                let scope = match bound.string("CustomResourceScope")? {
                    None => None,
                    Some(scope) => match self.scopes.iter().find(|s| s.name.eq_ignore_ascii_case(scope.trim())) {
                        Some(found) => Some(found.name.clone()),
                        None => return Err(CmdletError::ObjectNotFound { identity: scope }),
                    },
                };
                // Unconfirmed: the generated name when -Name is omitted (role, dash, assignee).
                let name = bound.string("Name")?.unwrap_or_else(|| format!("{role}-{}", sp.display_name));
                if self.role_assignments.iter().any(|a| a.name.eq_ignore_ascii_case(&name)) {
                    return Err(CmdletError::AlreadyExists { kind: "management role assignment", name });
                }
                let assignment = SimRoleAssignment {
                    name,
                    role: role.clone(),
                    app_service_id: sp.service_id,
                    custom_resource_scope: scope,
                };
                self.role_assignments.push(assignment.clone());
                vec![Output::RoleAssignment(assignment)]
            }
            Cmdlet::GetRoleGroup => match bound.string("Identity")? {
                None => self.role_groups.iter().cloned().map(Output::RoleGroup).collect(),
                Some(identity) => match self.role_group(&identity) {
                    Some(group) => vec![Output::RoleGroup(group.clone())],
                    None => return Err(CmdletError::ObjectNotFound { identity }),
                },
            },
            Cmdlet::NewRoleGroup => {
                let name = bound.required("Name")?;
                if self.role_group(&name).is_some() {
                    return Err(CmdletError::AlreadyExists { kind: "role group", name });
                }
                let mut roles = Vec::new();
                for role in bound.strings("Roles")? {
                    match self.role(&role) {
                        Some(known) => roles.push(known.name),
                        None => return Err(CmdletError::ObjectNotFound { identity: role }),
                    }
                }
                let scope = match bound.string("CustomRecipientWriteScope")? {
                    None => None,
                    Some(scope) => match self.scopes.iter().find(|s| s.name.eq_ignore_ascii_case(scope.trim())) {
                        Some(found) => Some(found.name.clone()),
                        None => return Err(CmdletError::ObjectNotFound { identity: scope }),
                    },
                };
                let mut members = Vec::new();
                for member in bound.strings("Members")? {
                    match self.exchange_sp(&member) {
                        Some(sp) => members.push(sp.service_id.clone()),
                        None => return Err(CmdletError::RecipientNotFound { identity: member }),
                    }
                }
                let group = SimRoleGroup { name, roles, custom_recipient_write_scope: scope, members };
                self.role_groups.push(group.clone());
                vec![Output::RoleGroup(group)]
            }
            Cmdlet::GetRoleGroupMember => {
                let identity = bound.identity()?;
                let Some(group) = self.role_group(&identity) else {
                    return Err(CmdletError::ObjectNotFound { identity });
                };
                group
                    .members
                    .iter()
                    .filter_map(|id| self.exchange_sp(id).cloned())
                    .map(Output::RoleGroupMember)
                    .collect()
            }
            Cmdlet::AddRoleGroupMember => {
                let identity = bound.identity()?;
                let member = bound.required("Member")?;
                let Some(sp) = self.exchange_sp(&member).cloned() else {
                    return Err(CmdletError::RecipientNotFound { identity: member });
                };
                let Some(index) = self.role_groups.iter().position(|g| g.name.eq_ignore_ascii_case(identity.trim()))
                else {
                    return Err(CmdletError::ObjectNotFound { identity });
                };
                let group = &mut self.role_groups[index];
                // Unconfirmed: adding a member that is already there (Exchange may answer with an
                // error); the simulator keeps one entry and succeeds.
                if !group.members.contains(&sp.service_id) {
                    group.members.push(sp.service_id.clone());
                }
                Vec::new()
            }
            Cmdlet::GetManagementRole => match bound.string("Identity")? {
                None => self.all_roles().into_iter().map(Output::ManagementRole).collect(),
                Some(identity) => match self.role(&identity) {
                    Some(role) => vec![Output::ManagementRole(role)],
                    None => return Err(CmdletError::ObjectNotFound { identity }),
                },
            },
            Cmdlet::NewManagementRole => {
                let name = bound.required("Name")?;
                let parent = bound.required("Parent")?;
                if self.role(&name).is_some() {
                    return Err(CmdletError::AlreadyExists { kind: "management role", name });
                }
                let Some(parent) = self.role(&parent) else {
                    return Err(CmdletError::ObjectNotFound { identity: parent });
                };
                // Documented: a role made from a parent starts with the parent's role entries.
                let role = SimManagementRole {
                    name: name.trim().to_string(),
                    parent: Some(parent.name),
                    entries: parent.entries,
                };
                self.roles.push(role.clone());
                vec![Output::ManagementRole(role)]
            }
            Cmdlet::GetManagementRoleEntry => {
                let identity = bound.identity()?;
                let (role_pattern, cmdlet_pattern) = split_entry_identity(&identity);
                // Unconfirmed: a named role that does not exist is ObjectNotFound; a pattern
                // matching nothing is an empty result.
                if !role_pattern.contains('*') && self.role(role_pattern).is_none() {
                    return Err(CmdletError::ObjectNotFound { identity });
                }
                self.all_roles()
                    .into_iter()
                    .filter(|r| glob(role_pattern, &r.name))
                    .flat_map(|r| {
                        let role = r.name.clone();
                        r.entries
                            .into_iter()
                            .filter(|e| glob(cmdlet_pattern, &e.cmdlet))
                            .map(move |entry| Output::RoleEntry { role: role.clone(), entry })
                    })
                    .collect()
            }
            Cmdlet::AddManagementRoleEntry => {
                let (index, cmdlet, parent) = self.custom_role_entry(&bound)?;
                let entry = format!("{}\\{cmdlet}", self.roles[index].name);
                if self.roles[index].entry(&cmdlet).is_some() {
                    return Err(CmdletError::AlreadyExists { kind: "management role entry", name: entry });
                }
                let Some(parent_entry) = parent.entry(&cmdlet) else {
                    return Err(CmdletError::NotInParent { entry, parameter: None });
                };
                // Unconfirmed: without -Parameters the entry gets every parameter of the parent's.
                let parameters = match bound.get("Parameters") {
                    None => parent_entry.parameters.clone(),
                    Some(_) => in_parent(&entry, parent_entry, &bound.strings("Parameters")?)?,
                };
                let cmdlet = parent_entry.cmdlet.clone();
                self.roles[index].entries.push(SimRoleEntry { cmdlet, parameters });
                Vec::new()
            }
            Cmdlet::RemoveManagementRoleEntry => {
                let (index, cmdlet, _) = self.custom_role_entry(&bound)?;
                let role = self.roles[index].name.clone();
                let entry = format!("{role}\\{cmdlet}");
                let Some(position) =
                    self.roles[index].entries.iter().position(|e| e.cmdlet.eq_ignore_ascii_case(&cmdlet))
                else {
                    return Err(CmdletError::ObjectNotFound { identity: entry });
                };
                if let Some(child) = self.child_with(&role, &cmdlet, None) {
                    return Err(CmdletError::InheritedByChild { entry, child });
                }
                self.roles[index].entries.remove(position);
                Vec::new()
            }
            Cmdlet::SetManagementRoleEntry => {
                let (index, cmdlet, parent) = self.custom_role_entry(&bound)?;
                let role = self.roles[index].name.clone();
                let entry = format!("{role}\\{cmdlet}");
                let Some(current) = self.roles[index].entry(&cmdlet).cloned() else {
                    return Err(CmdletError::ObjectNotFound { identity: entry });
                };
                let switch = |name: &'static str| bound.get(name).map_or(Ok(false), |v| Bound::boolean(name, v));
                let (add, remove) = (switch("AddParameter")?, switch("RemoveParameter")?);
                let given = bound.strings("Parameters")?;
                let parent_entry = parent
                    .entry(&cmdlet)
                    .cloned()
                    .unwrap_or(SimRoleEntry { cmdlet: cmdlet.clone(), parameters: Vec::new() });
                // Documented: -AddParameter adds, -RemoveParameter removes, neither replaces the
                // entry's parameters with -Parameters.
                let wanted: Vec<String> = match (add, remove) {
                    (true, true) => {
                        return Err(CmdletError::InvalidArgument {
                            parameter: "AddParameter",
                            reason: "AddParameter and RemoveParameter can't be used together.".into(),
                        });
                    }
                    (true, false) => {
                        let mut wanted = current.parameters.clone();
                        for p in in_parent(&entry, &parent_entry, &given)? {
                            if !current.has_parameter(&p) {
                                wanted.push(p);
                            }
                        }
                        wanted
                    }
                    (false, true) => current
                        .parameters
                        .iter()
                        .filter(|p| !given.iter().any(|g| g.trim().eq_ignore_ascii_case(p)))
                        .cloned()
                        .collect(),
                    (false, false) => in_parent(&entry, &parent_entry, &given)?,
                };
                let removed: Vec<String> = current
                    .parameters
                    .iter()
                    .filter(|p| !wanted.iter().any(|w| w.eq_ignore_ascii_case(p)))
                    .cloned()
                    .collect();
                if let Some(child) = self.child_with(&role, &cmdlet, Some(&removed)) {
                    return Err(CmdletError::InheritedByChild { entry, child });
                }
                let mut updated = current.clone();
                updated.parameters = wanted;
                let mut outcome = Outcome::default();
                if updated == current {
                    outcome.warnings.push(format!(
                        "The command completed successfully but no settings of '{entry}' have been modified."
                    ));
                } else if let Some(slot) = self.roles[index].entries.iter_mut().find(|e| e.cmdlet == current.cmdlet) {
                    *slot = updated;
                }
                return Ok(outcome);
            }
        };
        Ok(Outcome { output, warnings: Vec::new() })
    }

    /// A built-in or custom role by name (any case).
    pub fn role(&self, name: &str) -> Option<SimManagementRole> {
        built_in_role(name).or_else(|| self.roles.iter().find(|r| r.name.eq_ignore_ascii_case(name.trim())).cloned())
    }

    /// Every role: the built-in ones, then the custom ones.
    pub fn all_roles(&self) -> Vec<SimManagementRole> {
        BUILT_IN_ROLES.iter().filter_map(|(name, _)| built_in_role(name)).chain(self.roles.iter().cloned()).collect()
    }

    /// The `-Identity Role\Cmdlet` of an entry cmdlet: the custom role's index, the cmdlet, and
    /// the parent role. Built-in roles cannot be changed (documented).
    fn custom_role_entry(&self, bound: &Bound<'_>) -> Result<(usize, String, SimManagementRole), CmdletError> {
        let identity = bound.identity()?;
        let (role, cmdlet) = match identity.trim().rsplit_once('\\') {
            Some((role, cmdlet)) if !role.trim().is_empty() && !cmdlet.trim().is_empty() => {
                (role.trim(), cmdlet.trim())
            }
            _ => {
                return Err(CmdletError::InvalidArgument {
                    parameter: "Identity",
                    reason: format!(
                        "\"{identity}\" isn't a role entry identity (<management role>\\<role entry name>)."
                    ),
                });
            }
        };
        if let Some(built_in) = built_in_role(role) {
            return Err(CmdletError::BuiltInRole { role: built_in.name });
        }
        let Some(index) = self.roles.iter().position(|r| r.name.eq_ignore_ascii_case(role)) else {
            return Err(CmdletError::ObjectNotFound { identity });
        };
        let parent = self.roles[index].parent.as_deref().and_then(|p| self.role(p)).unwrap_or(SimManagementRole {
            name: String::new(),
            parent: None,
            entries: Vec::new(),
        });
        Ok((index, cmdlet.to_string(), parent))
    }

    /// A child role of `role` whose entry for `cmdlet` still has one of `parameters` (any
    /// parameter when None).
    fn child_with(&self, role: &str, cmdlet: &str, parameters: Option<&[String]>) -> Option<String> {
        self.roles
            .iter()
            .filter(|r| r.parent.as_deref().is_some_and(|p| p.eq_ignore_ascii_case(role)))
            .find(|r| {
                r.entry(cmdlet).is_some_and(|e| match parameters {
                    None => true,
                    Some(parameters) => parameters.iter().any(|p| e.has_parameter(p)),
                })
            })
            .map(|r| r.name.clone())
    }

    /// The names of the roles the service principal holds: those of the role groups it is a
    /// member of and those assigned to it directly.
    pub fn roles_of(&self, service_id: &str) -> Vec<String> {
        let mut roles: Vec<String> = Vec::new();
        let grouped =
            self.role_groups.iter().filter(|g| g.members.iter().any(|m| m == service_id)).flat_map(|g| g.roles.iter());
        let direct = self.role_assignments.iter().filter(|a| a.app_service_id == service_id).map(|a| &a.role);
        for role in grouped.chain(direct) {
            if !roles.iter().any(|r| r.eq_ignore_ascii_case(role)) {
                roles.push(role.clone());
            }
        }
        roles
    }

    /// Whether the application `client_id` (the token's `appid`) may run `cmdlet` with
    /// `parameters`. Enforced only for an application that has an Exchange service principal
    /// holding at least one role (through a role group or a direct assignment): every other
    /// caller (administrators, applications the simulator has no roles recorded for) may run
    /// everything, so tests that never set roles up keep working. When enforced, the call needs
    /// one role entry for the cmdlet that holds every parameter sent (common parameters such as
    /// `Confirm` included, as Exchange lists them in role entries). The recipient write scope
    /// (its filter) is not evaluated.
    pub fn authorize(&self, client_id: &str, cmdlet: &str, parameters: &Map<String, Value>) -> Result<(), Refusal> {
        let Some(sp) = self.service_principals.iter().find(|sp| sp.app_id.eq_ignore_ascii_case(client_id.trim()))
        else {
            return Ok(());
        };
        let roles = self.roles_of(&sp.service_id);
        if roles.is_empty() {
            return Ok(());
        }
        let entries: Vec<SimRoleEntry> =
            roles.iter().filter_map(|r| self.role(r)).filter_map(|r| r.entry(cmdlet).cloned()).collect();
        if entries.is_empty() {
            return Err(Refusal::Cmdlet);
        }
        if entries.iter().any(|e| parameters.keys().all(|p| e.has_parameter(p))) {
            return Ok(());
        }
        // The first parameter the most permissive entry lacks.
        let best = entries
            .iter()
            .max_by_key(|e| parameters.keys().filter(|p| e.has_parameter(p)).count())
            .unwrap_or(&entries[0]);
        let missing = parameters.keys().find(|p| !best.has_parameter(p)).cloned().unwrap_or_default();
        Err(Refusal::Parameter(missing))
    }

    fn role_group(&self, identity: &str) -> Option<&SimRoleGroup> {
        self.role_groups.iter().find(|g| g.name.eq_ignore_ascii_case(identity.trim()))
    }

    /// An Exchange service principal by AppId, ObjectId, ServiceId or display name (what
    /// `-Identity` and `-App` accept here; that every one of them is accepted is unconfirmed).
    pub fn exchange_sp(&self, identity: &str) -> Option<&SimExchangeServicePrincipal> {
        let identity = identity.trim();
        self.service_principals.iter().find(|sp| {
            [&sp.app_id, &sp.object_id, &sp.service_id, &sp.display_name]
                .iter()
                .any(|v| v.eq_ignore_ascii_case(identity))
        })
    }

    /// `-Identity x` → that mailbox or ObjectNotFound; no identity → every mailbox.
    fn recipients(&self, bound: &Bound<'_>) -> Result<Vec<SimMailbox>, CmdletError> {
        match bound.string("Identity")? {
            None => Ok(self.mailboxes.clone()),
            Some(identity) => match self.mailbox(&identity) {
                Some(mailbox) => Ok(vec![mailbox.clone()]),
                None => Err(CmdletError::ObjectNotFound { identity }),
            },
        }
    }

    fn target(&self, bound: &Bound<'_>) -> Result<usize, CmdletError> {
        let identity = bound.identity()?;
        self.mailbox_index(&identity).ok_or(CmdletError::ObjectNotFound { identity })
    }

    fn set_mailbox(&mut self, bound: &Bound<'_>) -> Result<Outcome, CmdletError> {
        let index = self.target(bound)?;
        let mut updated = self.mailboxes[index].clone();
        if let Some(value) = bound.nullable("ForwardingSmtpAddress") {
            updated.forwarding_smtp_address = value.map(forwarding_smtp_address).transpose()?;
        }
        if let Some(value) = bound.nullable("ForwardingAddress") {
            updated.forwarding_address = match value {
                None => None,
                Some(Value::String(recipient)) => match self.mailbox(recipient) {
                    Some(target) => Some(target.identity.clone()),
                    None => return Err(CmdletError::RecipientNotFound { identity: recipient.clone() }),
                },
                Some(other) => {
                    return Err(CmdletError::InvalidArgument {
                        parameter: "ForwardingAddress",
                        reason: format!("Cannot convert value \"{other}\" to type \"RecipientIdParameter\"."),
                    });
                }
            };
        }
        if let Some(value) = bound.get("DeliverToMailboxAndForward") {
            updated.deliver_to_mailbox_and_forward = Bound::boolean("DeliverToMailboxAndForward", value)?;
        }
        // Replaced by the recipients given ($null or [] clears); the `@{Add=…}` form is not simulated.
        if bound.get("GrantSendOnBehalfTo").is_some() {
            let mut granted = Vec::new();
            for recipient in bound.strings("GrantSendOnBehalfTo")? {
                match self.mailbox(&recipient) {
                    Some(target) => granted.push(target.identity.clone()),
                    None => return Err(CmdletError::RecipientNotFound { identity: recipient }),
                }
            }
            updated.grant_send_on_behalf_to = granted;
        }
        Ok(self.replace_mailbox(index, updated))
    }

    fn set_cas_mailbox(&mut self, bound: &Bound<'_>) -> Result<Outcome, CmdletError> {
        let index = self.target(bound)?;
        let mut updated = self.mailboxes[index].clone();
        if let Some(value) = bound.nullable("SmtpClientAuthenticationDisabled") {
            updated.smtp_client_authentication_disabled =
                value.map(|v| Bound::boolean("SmtpClientAuthenticationDisabled", v)).transpose()?;
        }
        Ok(self.replace_mailbox(index, updated))
    }

    /// Set-* cmdlets write nothing to the pipeline; when nothing changed Exchange says so in a
    /// warning (confirmed text).
    fn replace_mailbox(&mut self, index: usize, updated: SimMailbox) -> Outcome {
        let mut outcome = Outcome::default();
        if self.mailboxes[index] == updated {
            outcome.warnings.push(format!(
                "The command completed successfully but no settings of '{}' have been modified.",
                updated.identity
            ));
        } else {
            self.mailboxes[index] = updated;
        }
        outcome
    }
}

/// `parameters` spelled as the parent role's entry has them; each must be on it (documented).
fn in_parent(entry: &str, parent: &SimRoleEntry, parameters: &[String]) -> Result<Vec<String>, CmdletError> {
    let mut spelled: Vec<String> = Vec::new();
    for name in parameters {
        match parent.parameters.iter().find(|p| p.eq_ignore_ascii_case(name.trim())) {
            Some(known) if !spelled.contains(known) => spelled.push(known.clone()),
            Some(_) => {}
            None => return Err(CmdletError::NotInParent { entry: entry.to_string(), parameter: Some(name.clone()) }),
        }
    }
    Ok(spelled)
}

/// `-ForwardingSmtpAddress` takes `user@domain` or `smtp:user@domain`; Exchange shows it back as
/// `smtp:user@domain` (confirmed in a captured Get-Mailbox response).
fn forwarding_smtp_address(value: &Value) -> Result<String, CmdletError> {
    let invalid = || CmdletError::InvalidArgument {
        parameter: "ForwardingSmtpAddress",
        reason: format!("Cannot convert value \"{value}\" to type \"Microsoft.Exchange.Data.ProxyAddress\"."),
    };
    let text = value.as_str().ok_or_else(invalid)?.trim();
    let address = match text.split_once(':') {
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case("smtp") => rest,
        Some(_) => return Err(invalid()),
        None => text,
    };
    let valid = address.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
    }) && address.matches('@').count() == 1
        && !address.chars().any(char::is_whitespace);
    if valid { Ok(format!("smtp:{address}")) } else { Err(invalid()) }
}

/// The canonical name of a simulated cmdlet; panics on anything else (for test-facing APIs).
pub(crate) fn canonical_cmdlet(cmdlet: &str) -> &'static str {
    match Cmdlet::parse(cmdlet) {
        Some(known) => known.name(),
        None => panic!(
            "{cmdlet:?} is not a cmdlet the Exchange simulator implements ({})",
            Cmdlet::ALL.map(Cmdlet::name).join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    fn org() -> ExchangeOrg {
        let mut org = ExchangeOrg::new();
        org.add_mailbox("support@contoso.com");
        org.add_mailbox("sales@contoso.com");
        org
    }

    #[test]
    fn cmdlet_names_resolve_case_insensitively() {
        assert_eq!(Cmdlet::parse("get-mailbox"), Some(Cmdlet::GetMailbox));
        assert_eq!(Cmdlet::parse("SET-CASMAILBOX"), Some(Cmdlet::SetCasMailbox));
        assert_eq!(Cmdlet::parse("Remove-Mailbox"), None);
    }

    #[test]
    fn forwarding_smtp_addresses_are_normalized_or_refused() {
        assert_eq!(forwarding_smtp_address(&json!("a@b.io")).unwrap(), "smtp:a@b.io");
        assert_eq!(forwarding_smtp_address(&json!("SMTP:a@b.io")).unwrap(), "smtp:a@b.io");
        for bad in [json!("a@b"), json!("x500:a@b.io"), json!("a@@b.io"), json!(""), json!(3)] {
            assert!(forwarding_smtp_address(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_mailbox_changes_forwarding_and_warns_when_nothing_changes() {
        let mut org = org();
        let set = params(json!({
            "identity": "support@contoso.com",
            "ForwardingSmtpAddress": "abc@mail-us.imiconnect.io",
            "DeliverToMailboxAndForward": true,
        }));
        let outcome = org.run(Cmdlet::SetMailbox, &set).unwrap();
        assert!(outcome.output.is_empty() && outcome.warnings.is_empty());
        let mailbox = org.mailbox("support").unwrap();
        assert_eq!(mailbox.forwarding_smtp_address.as_deref(), Some("smtp:abc@mail-us.imiconnect.io"));
        assert!(mailbox.deliver_to_mailbox_and_forward);

        let again = org.run(Cmdlet::SetMailbox, &set).unwrap();
        assert_eq!(
            again.warnings,
            ["The command completed successfully but no settings of 'support' have been modified."]
        );
    }

    #[test]
    fn forwarding_address_must_name_a_recipient_and_null_clears_it() {
        let mut org = org();
        let error = org
            .run(Cmdlet::SetMailbox, &params(json!({"Identity": "support", "ForwardingAddress": "nobody"})))
            .unwrap_err();
        assert_eq!(error, CmdletError::RecipientNotFound { identity: "nobody".into() });
        org.run(Cmdlet::SetMailbox, &params(json!({"Identity": "support", "ForwardingAddress": "sales@contoso.com"})))
            .unwrap();
        assert_eq!(org.mailbox("support").unwrap().forwarding_address.as_deref(), Some("sales"));
        org.run(Cmdlet::SetMailbox, &params(json!({"Identity": "support", "ForwardingAddress": null}))).unwrap();
        assert_eq!(org.mailbox("support").unwrap().forwarding_address, None);
    }

    #[test]
    fn parameters_are_bound_strictly() {
        let mut org = org();
        let unknown = org.run(Cmdlet::GetMailbox, &params(json!({"Identityy": "x"}))).unwrap_err();
        assert!(unknown.to_string().ends_with("A parameter cannot be found that matches parameter name 'Identityy'."));
        let missing = org.run(Cmdlet::SetCasMailbox, &params(json!({"SmtpClientAuthenticationDisabled": false})));
        assert_eq!(missing.unwrap_err(), CmdletError::MissingParameter { name: "Identity" });
        let wrong_type = org.run(
            Cmdlet::SetCasMailbox,
            &params(json!({"Identity": "support", "SmtpClientAuthenticationDisabled": "no"})),
        );
        assert!(matches!(wrong_type.unwrap_err(), CmdletError::InvalidArgument { .. }));
        assert!(org.run(Cmdlet::GetTransportConfig, &params(json!({"Confirm": false}))).is_ok());
    }

    #[test]
    fn a_derived_role_starts_with_its_parents_entries_and_only_narrows() {
        let mut org = org();
        let role = params(json!({"Name": "ops-mailbox-settings", "Parent": "mail recipients"}));
        org.run(Cmdlet::NewManagementRole, &role).unwrap();
        let derived = org.role("OPS-mailbox-settings").unwrap();
        assert_eq!(derived.parent.as_deref(), Some("Mail Recipients"));
        assert_eq!(derived.entries, org.role("Mail Recipients").unwrap().entries);
        assert!(matches!(org.run(Cmdlet::NewManagementRole, &role), Err(CmdletError::AlreadyExists { .. })));

        let entries = |org: &mut ExchangeOrg, identity: &str| -> Vec<String> {
            let outcome = org.run(Cmdlet::GetManagementRoleEntry, &params(json!({"Identity": identity}))).unwrap();
            outcome
                .output
                .into_iter()
                .map(|o| match o {
                    Output::RoleEntry { entry, .. } => entry.cmdlet,
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(entries(&mut org, "ops-mailbox-settings\\Set-*"), ["Set-Mailbox", "Set-CASMailbox"]);
        assert!(entries(&mut org, "ops-mailbox-settings\\*").contains(&"Add-MailboxPermission".to_string()));

        let remove = params(json!({"Identity": "ops-mailbox-settings\\Add-MailboxPermission", "Confirm": false}));
        org.run(Cmdlet::RemoveManagementRoleEntry, &remove).unwrap();
        assert!(org.role("ops-mailbox-settings").unwrap().entry("Add-MailboxPermission").is_none());
        assert!(org.run(Cmdlet::RemoveManagementRoleEntry, &remove).unwrap_err().is_not_found());

        // Neither switch: the parameters replace the entry's; they must be on the parent's entry.
        let set = |parameters: Value| {
            params(json!({"Identity": "ops-mailbox-settings\\Set-Mailbox", "Parameters": parameters}))
        };
        org.run(Cmdlet::SetManagementRoleEntry, &set(json!(["identity", "ForwardingSmtpAddress"]))).unwrap();
        let entry = org.role("ops-mailbox-settings").unwrap().entry("Set-Mailbox").cloned().unwrap();
        assert_eq!(entry.parameters, ["Identity", "ForwardingSmtpAddress"]);
        let mut add = set(json!(["DeliverToMailboxAndForward"]));
        add.insert("AddParameter".into(), json!(true));
        org.run(Cmdlet::SetManagementRoleEntry, &add).unwrap();
        let mut remove = set(json!("ForwardingSmtpAddress"));
        remove.insert("RemoveParameter".into(), json!(true));
        org.run(Cmdlet::SetManagementRoleEntry, &remove).unwrap();
        let entry = org.role("ops-mailbox-settings").unwrap().entry("Set-Mailbox").cloned().unwrap();
        assert_eq!(entry.parameters, ["Identity", "DeliverToMailboxAndForward"]);
        let not_in_parent = org.run(Cmdlet::SetManagementRoleEntry, &set(json!(["Identity", "Password"]))).unwrap_err();
        assert!(matches!(not_in_parent, CmdletError::NotInParent { parameter: Some(p), .. } if p == "Password"));

        // An entry removed can come back from the parent; built-in roles can't be changed.
        let again =
            params(json!({"Identity": "ops-mailbox-settings\\Add-MailboxPermission", "Parameters": ["Identity"]}));
        org.run(Cmdlet::AddManagementRoleEntry, &again).unwrap();
        let unknown = params(json!({"Identity": "ops-mailbox-settings\\Get-TransportConfig"}));
        assert!(matches!(org.run(Cmdlet::AddManagementRoleEntry, &unknown), Err(CmdletError::NotInParent { .. })));
        let built_in = params(json!({"Identity": "Mail Recipients\\Add-MailboxPermission"}));
        assert!(matches!(org.run(Cmdlet::RemoveManagementRoleEntry, &built_in), Err(CmdletError::BuiltInRole { .. })));
    }

    #[test]
    fn role_entries_are_enforced_only_for_an_application_holding_a_role() {
        let mut org = org();
        let set = params(json!({"Identity": "support", "ForwardingSmtpAddress": "a@b.io"}));
        assert_eq!(org.authorize("app", "Add-MailboxPermission", &set), Ok(()), "unknown application");
        let sp = params(json!({"AppId": "app", "ObjectId": "object"}));
        org.run(Cmdlet::NewServicePrincipal, &sp).unwrap();
        assert_eq!(org.authorize("app", "Add-MailboxPermission", &set), Ok(()), "no role recorded");

        org.run(Cmdlet::NewManagementRole, &params(json!({"Name": "narrow", "Parent": "Mail Recipients"}))).unwrap();
        let entry =
            params(json!({"Identity": "narrow\\Set-Mailbox", "Parameters": ["Identity", "ForwardingSmtpAddress"]}));
        org.run(Cmdlet::SetManagementRoleEntry, &entry).unwrap();
        let group = params(json!({"Name": "g", "Roles": ["narrow"], "Members": ["object"]}));
        org.run(Cmdlet::NewRoleGroup, &group).unwrap();
        assert_eq!(org.roles_of(&org.service_principals[0].service_id.clone()), ["narrow"]);
        assert_eq!(org.authorize("APP", "set-mailbox", &set), Ok(()));
        assert_eq!(org.authorize("app", "Get-TransportConfig", &Map::new()), Err(Refusal::Cmdlet));
        let grant = params(json!({"Identity": "support", "GrantSendOnBehalfTo": "sales"}));
        assert_eq!(org.authorize("app", "Set-Mailbox", &grant), Err(Refusal::Parameter("GrantSendOnBehalfTo".into())));
        assert_eq!(org.authorize("other", "Set-Mailbox", &grant), Ok(()), "another caller");
    }

    #[test]
    fn entry_patterns_use_star_as_a_wildcard() {
        assert!(glob("*", "Set-Mailbox") && glob("set-*", "Set-Mailbox") && glob("*mail*", "Set-CASMailbox"));
        assert!(!glob("Get-*", "Set-Mailbox") && !glob("Set-Mailbox", "Set-MailboxX") && !glob("ab*b", "ab"));
        assert_eq!(split_entry_identity("r\\Set-*"), ("r", "Set-*"));
        assert_eq!(split_entry_identity("Set-Mailbox"), ("*", "Set-Mailbox"));
    }

    #[test]
    fn unknown_objects_are_not_found_with_exchange_text() {
        let mut org = org();
        let error = org.run(Cmdlet::GetMailbox, &params(json!({"Identity": "ghost@contoso.com"}))).unwrap_err();
        assert!(error.is_not_found());
        assert_eq!(
            error.to_string(),
            format!(
                "Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed because object 'ghost@contoso.com' couldn't be found on '{DOMAIN_CONTROLLER}'."
            )
        );
        assert!(
            org.run(Cmdlet::GetRemoteDomain, &params(json!({"Identity": "contoso.com"}))).unwrap_err().is_not_found()
        );
        assert!(org.run(Cmdlet::GetRemoteDomain, &params(json!({"Identity": "default"}))).is_ok());
    }
}
