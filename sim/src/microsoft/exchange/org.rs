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
}

impl Cmdlet {
    pub const ALL: [Cmdlet; 18] = [
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
            Cmdlet::SetMailbox => {
                &["Identity", "ForwardingSmtpAddress", "ForwardingAddress", "DeliverToMailboxAndForward"]
            }
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

/// The built-in management roles the simulator knows (a subset; role names are confirmed from
/// Exchange Online's role list).
const KNOWN_ROLES: [&str; 6] = [
    "Mail Recipients",
    "View-Only Configuration",
    "View-Only Recipients",
    "Application Mail.Send",
    "Application Mail.Read",
    "Application Exchange Full Access",
];

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
                let Some(role) = KNOWN_ROLES.iter().find(|r| r.eq_ignore_ascii_case(role.trim())) else {
                    return Err(CmdletError::ObjectNotFound { identity: role });
                };
                if !role.starts_with("Application ") {
                    return Err(CmdletError::NotAnApplicationRole { role: role.to_string() });
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
                    role: role.to_string(),
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
                    match KNOWN_ROLES.iter().find(|r| r.eq_ignore_ascii_case(role.trim())) {
                        Some(known) => roles.push(known.to_string()),
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
        };
        Ok(Outcome { output, warnings: Vec::new() })
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
