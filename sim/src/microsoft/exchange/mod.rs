//! Exchange Online's admin API, `POST /adminapi/beta/{tenant}/InvokeCommand`, served by the
//! Microsoft simulator so that it accepts the Exchange-audience tokens its token endpoint issues.
//!
//! ```text
//!   token endpoint ──(aud = https://outlook.office365.com)──▶ Bearer ─┐
//!   X-AnchorMailbox: APP:SystemMailbox{bb558c35-…}@{tenant} ──────────┤
//!   {"CmdletInput":{"CmdletName","Parameters"}} ──────────────────────┴─▶ InvokeCommand
//!        │                                                                 │
//!        ▼ tenant's organization (org.rs)                                  ▼ wire.rs
//!   mailboxes (forwarding, CAS SMTP AUTH) · transport config ·        {"@odata.context","value",
//!   outbound spam policies + rules · remote domain Default            "@adminapi.warnings"} or errors
//! ```
//!
//! Tests seed and inspect each tenant's organization through [`ExchangeSim`]
//! ([`super::MicrosoftSim::exchange`]); calls are recorded with the route template
//! [`super::routes::INVOKE_COMMAND`] and the cmdlet ([`crate::CallRecord::cmdlet`]); faults
//! can target the route or one cmdlet ([`super::Faults::on_cmdlet`]).
//!
//! # Where the behaviour comes from
//! Microsoft does not document this endpoint; it is what the ExchangeOnlineManagement module
//! speaks. Confirmed from public code and captured traffic:
//! - request shape, `X-AnchorMailbox: APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@…`
//!   with the tenant ID (KelvinTegelaar/CIPP-API `New-ExoRequest.ps1`) or a tenant domain (a
//!   captured request), tenant ID or domain in the path, case-insensitive cmdlet names;
//! - the success body (`@odata.context` ending `$metadata#Collection(Exchange.GenericHashTable)`,
//!   `adminapi.warnings@odata.type`, `@adminapi.warnings`, `value`), its content type, and the
//!   Get-Mailbox property names and forms (`ForwardingSmtpAddress` `smtp:…`, `ForwardingAddress`
//!   null, `Identity` = `Name` = alias, `Guid@odata.type` `#Guid`) from a captured response;
//! - the error body (`error.code`, generic `error.message`, the real text in
//!   `error.details[].message` as `<id>|<exception type>|<text>`, `innererror` with
//!   `internalexception`), code `NotFound` for a missing object, and the texts of
//!   ManagementObjectNotFoundException (Ex6F9304, Ex94914C) from public error output and the
//!   parsers in GreyCorbel/ExoHelper and CIPP;
//! - "The command completed successfully but no settings of '…' have been modified." as the
//!   warning of a Set-* that changed nothing (CIPP matches it in InvokeCommand results);
//! - an unknown cmdlet answered 403 with an empty body; a caller without an Exchange role
//!   answered 401 with `{"error":{"code":"Unauthorized","message":"User is not allowed to call …"}}`;
//! - the concurrency throttling text ("You have reached the maximum number of concurrent requests
//!   per tenant"), which public callers retry whatever the status;
//! - `@odata.nextLink` on long collections, followed by POSTing the same body to it;
//! - the 401 challenge of outlook.office365.com (empty body, `WWW-Authenticate: Bearer
//!   client_id="00000002-…", trusted_issuers=…, token_types=…, authorization_uri=…,
//!   error="invalid_token"`, `x-ms-diagnostics: 2000003;…invalid 'aud'…`) from captured EWS traffic.
//!
//! Unconfirmed choices are marked where they are made, each in one function: the 401 details for
//! expired/unknown tokens and a foreign tenant, the refusal of a missing anchor, the exact end of
//! the missing-role message, parameter-binding errors (status 400, outer message), the 429/503
//! bodies and the throttling error's code, the form of the next link (`$skiptoken`) and the page
//! size ([`super::SimOptions::exchange_page_size`]), `value` being `[]` (not absent) for Set-*
//! cmdlets, and the output properties other than Get-Mailbox's.
//!
//! Exchange permissions for the operator's service principal (what `setup tenant` creates):
//! New-ServicePrincipal (`-AppId`, `-ObjectId`, optional `-DisplayName`; confirmed from
//! Microsoft's cmdlet reference), New-ManagementScope (`-Name`, `-RecipientRestrictionFilter`, an
//! OPATH filter; confirmed), and custom role groups, the documented way to give an application
//! admin roles in Exchange Online PowerShell's app-only (REST) mode: New-RoleGroup (`-Name`,
//! `-Roles`, `-CustomRecipientWriteScope`, `-Members`; confirmed) and Add-RoleGroupMember
//! (`-Identity` the group, `-Member` the service principal's Identity, ObjectId or Id; confirmed),
//! with Get-RoleGroup and Get-RoleGroupMember. New-ManagementRoleAssignment (`-App`, `-Role`,
//! `-CustomResourceScope`) is RBAC for Applications: with `-App` only application roles
//! ("Application Mail.Read", …) may be assigned, as documented; the simulator refuses others.
//! Unconfirmed and chosen here: the error for an object that already exists and for an admin role
//! given to `-App`, which identities `-App` / `-Identity` / `-Member` accept (AppId, ObjectId,
//! ServiceId or display name here), the output property names beyond those parameters (above all
//! how Get-RoleGroupMember shows a service principal), and the name of an assignment made without
//! `-Name`.
//!
//! Management roles and role entries: built-in roles with a subset of their entries (`Mail
//! Recipients` with the operator's mailbox cmdlets and others it does not need, such as
//! Add-MailboxPermission, Add-RecipientPermission and Set-Mailbox `-GrantSendOnBehalfTo`;
//! `View-Only Configuration`; `View-Only Recipients`; application roles without entries), and
//! custom roles: New-ManagementRole (`-Name`, `-Parent`; the new role starts with the parent's
//! entries, documented), Get-ManagementRole, Get-ManagementRoleEntry (`<role>\<cmdlet>` with `*`
//! wildcards), Add-/Remove-ManagementRoleEntry and Set-ManagementRoleEntry (`-Parameters` with
//! `-AddParameter`, `-RemoveParameter`, or neither to replace the entry's parameters; parameters
//! must be on the parent's entry; built-in roles can't be changed: all documented). Unconfirmed:
//! the errors for those rules, the output properties beyond Name/Parent and Name/Role/Parameters,
//! and which entries and parameters the built-in roles really hold.
//!
//! Role entries are enforced for an application that holds at least one role recorded here
//! (an Exchange service principal for the token's `appid` that is a member of a role group or
//! has a direct role assignment): a call needs one entry of its roles for the cmdlet holding
//! every parameter sent. A cmdlet outside its roles is answered like a missing role (401
//! `User is not allowed to call …`, publicly observed for a cmdlet outside an administrator's
//! roles too); a parameter outside the entry like an unknown parameter (400
//! ParameterBindingException "A parameter cannot be found that matches parameter name 'X'.":
//! unconfirmed, PowerShell's answer in a session where the parameter is not granted). Callers
//! with no role recorded (administrators' tokens, tests that never create roles) are not
//! checked, and [`ExchangeSim::set_role_missing`] refuses everything. Recipient write scopes are
//! stored, not evaluated (filters are not interpreted).
//!
//! Not simulated: `$select`, the `Prefer: odata.maxpagesize` header, cmdlets and parameters beyond
//! those the operator and `setup` use, recipient write scopes.

pub(super) mod model;
pub(super) mod org;
pub(super) mod wire;

use std::sync::Arc;

pub use model::{AutoForwardingMode, SimMailbox, SimOutboundPolicy, SimOutboundRule};
use org::{DEFAULT_POLICY, ExchangeOrg, canonical_cmdlet};
pub use org::{
    SimExchangeServicePrincipal, SimManagementRole, SimManagementScope, SimRoleAssignment, SimRoleEntry, SimRoleGroup,
};

use super::state::{Shared, Tenant};
use crate::random;
use crate::sync::lock;

/// Cheap, cloneable handle on the Exchange organizations of a running
/// [`super::MicrosoftSim`], for seeding state and asserting on it. Methods taking a tenant panic
/// if the simulator has no such tenant, except [`ExchangeSim::add_mailbox`], which creates it.
#[derive(Clone, Debug)]
pub struct ExchangeSim {
    pub(crate) shared: Arc<Shared>,
}

impl ExchangeSim {
    fn with_org<T>(&self, tenant_id: &str, f: impl FnOnce(&mut ExchangeOrg) -> T) -> T {
        let mut directory = lock(&self.shared.directory);
        match directory.tenants.get_mut(tenant_id) {
            Some(tenant) => f(&mut tenant.exchange),
            None => panic!("the simulator has no tenant {tenant_id:?}"),
        }
    }

    /// Adds a user mailbox whose UPN and primary SMTP address are `upn` (its domain becomes an
    /// accepted domain of the tenant); idempotent. Creates the tenant if missing.
    pub fn add_mailbox(&self, tenant_id: &str, upn: &str) -> SimMailbox {
        // The mailbox and its Entra user share one object ID (an existing user's, if any).
        lock(&self.shared.directory).tenants.entry(tenant_id.to_string()).or_insert_with(Tenant::new).add_mailbox(upn)
    }

    /// Adds an accepted domain, e.g. `contoso.onmicrosoft.com`: the path and the
    /// `X-AnchorMailbox` header may name the tenant by it.
    pub fn add_domain(&self, tenant_id: &str, domain: &str) {
        self.with_org(tenant_id, |org| org.add_domain(domain));
    }

    /// The mailbox with this UPN (or any identity Get-Mailbox resolves), as Exchange has it now.
    pub fn mailbox(&self, tenant_id: &str, upn: &str) -> Option<SimMailbox> {
        self.with_org(tenant_id, |org| org.mailbox(upn).cloned())
    }

    pub fn mailboxes(&self, tenant_id: &str) -> Vec<SimMailbox> {
        self.with_org(tenant_id, |org| org.mailboxes.clone())
    }

    /// Changes a mailbox as an administrator would outside the operator (e.g. pre-existing
    /// forwarding). Panics if there is no such mailbox.
    pub fn update_mailbox(&self, tenant_id: &str, upn: &str, change: impl FnOnce(&mut SimMailbox)) {
        self.with_org(tenant_id, |org| {
            let index = org.mailbox_index(upn).unwrap_or_else(|| panic!("no mailbox {upn:?} in {tenant_id:?}"));
            change(&mut org.mailboxes[index]);
        });
    }

    /// When true, the caller is treated as lacking an Exchange role in this tenant: every
    /// InvokeCommand call is answered 401 with `{"error":{"code":"Unauthorized","message":"User
    /// is not allowed to call <cmdlet>."}}`, whatever roles are recorded.
    pub fn set_role_missing(&self, tenant_id: &str, missing: bool) {
        self.with_org(tenant_id, |org| org.role_missing = missing);
    }

    /// The next `times` authenticated InvokeCommand calls in this tenant are answered with
    /// Exchange's concurrency throttling ("You have reached the maximum number of concurrent
    /// requests per tenant") as an OData error with `status` (any status: clients must recognise
    /// the text). For a 429 with the plain-text body, use a fault instead.
    pub fn throttle_concurrency(&self, tenant_id: &str, times: usize, status: u16) {
        self.with_org(tenant_id, |org| org.concurrency_throttle = (times > 0).then_some((times, status)));
    }

    /// When true, cmdlet failures in this tenant carry their text only in
    /// `error.innererror.internalexception.message` (no `error.details`).
    pub fn set_errors_without_details(&self, tenant_id: &str, inner_only: bool) {
        self.with_org(tenant_id, |org| org.errors_without_details = inner_only);
    }

    /// The `Parameters` of every call of `cmdlet` that reached the organization (authenticated,
    /// not throttled), in order, exactly as sent. Panics on a cmdlet the simulator does not
    /// implement.
    pub fn received_parameters(
        &self,
        tenant_id: &str,
        cmdlet: &str,
    ) -> Vec<serde_json::Map<String, serde_json::Value>> {
        let wanted = canonical_cmdlet(cmdlet);
        self.with_org(tenant_id, |org| {
            org.received.iter().filter(|(c, _)| c.name() == wanted).map(|(_, p)| p.clone()).collect()
        })
    }

    /// Exchange's service principal references (New-ServicePrincipal).
    pub fn service_principals(&self, tenant_id: &str) -> Vec<SimExchangeServicePrincipal> {
        self.with_org(tenant_id, |org| org.service_principals.clone())
    }

    /// Custom management scopes (New-ManagementScope).
    pub fn management_scopes(&self, tenant_id: &str) -> Vec<SimManagementScope> {
        self.with_org(tenant_id, |org| org.scopes.clone())
    }

    /// Management role assignments to service principals (New-ManagementRoleAssignment -App).
    pub fn role_assignments(&self, tenant_id: &str) -> Vec<SimRoleAssignment> {
        self.with_org(tenant_id, |org| org.role_assignments.clone())
    }

    /// Custom role groups (New-RoleGroup) with their service-principal members.
    pub fn role_groups(&self, tenant_id: &str) -> Vec<SimRoleGroup> {
        self.with_org(tenant_id, |org| org.role_groups.clone())
    }

    /// Custom management roles (New-ManagementRole) with their parent and role entries.
    pub fn management_roles(&self, tenant_id: &str) -> Vec<SimManagementRole> {
        self.with_org(tenant_id, |org| org.roles.clone())
    }

    /// A built-in or custom management role by name (any case), with its role entries.
    pub fn management_role(&self, tenant_id: &str, name: &str) -> Option<SimManagementRole> {
        self.with_org(tenant_id, |org| org.role(name))
    }

    /// The roles the Exchange service principal of application `app_id` holds (through role
    /// groups and direct assignments); while it holds none, its calls are not checked against
    /// role entries (see the module documentation).
    pub fn roles_of_app(&self, tenant_id: &str, app_id: &str) -> Vec<String> {
        self.with_org(tenant_id, |org| {
            org.service_principals
                .iter()
                .find(|sp| sp.app_id.eq_ignore_ascii_case(app_id))
                .map(|sp| org.roles_of(&sp.service_id))
                .unwrap_or_default()
        })
    }

    /// Get-TransportConfig `SmtpClientAuthenticationDisabled` (default true).
    pub fn set_transport_smtp_auth_disabled(&self, tenant_id: &str, disabled: bool) {
        self.with_org(tenant_id, |org| org.transport_smtp_auth_disabled = disabled);
    }

    pub fn transport_smtp_auth_disabled(&self, tenant_id: &str) -> bool {
        self.with_org(tenant_id, |org| org.transport_smtp_auth_disabled)
    }

    /// Get-RemoteDomain Default `AutoForwardEnabled` (default true).
    pub fn set_remote_domain_auto_forward(&self, tenant_id: &str, enabled: bool) {
        self.with_org(tenant_id, |org| org.remote_domain_auto_forward = enabled);
    }

    pub fn remote_domain_auto_forward(&self, tenant_id: &str) -> bool {
        self.with_org(tenant_id, |org| org.remote_domain_auto_forward)
    }

    /// Sets `AutoForwardingMode` of an existing policy (`"Default"` always exists).
    pub fn set_outbound_policy_mode(&self, tenant_id: &str, policy: &str, mode: AutoForwardingMode) {
        self.with_org(tenant_id, |org| {
            let policy = org
                .policies
                .iter_mut()
                .find(|p| p.name.eq_ignore_ascii_case(policy))
                .unwrap_or_else(|| panic!("no outbound spam filter policy {policy:?} in {tenant_id:?}"));
            policy.auto_forwarding_mode = mode;
        });
    }

    /// Adds a custom policy and the rule applying it to the senders `rule_from` (rule named like
    /// the policy, enabled, with `priority`), as the Defender portal creates them.
    pub fn add_outbound_policy(
        &self,
        tenant_id: &str,
        name: &str,
        mode: AutoForwardingMode,
        rule_from: Vec<String>,
        priority: u32,
    ) {
        assert!(!name.eq_ignore_ascii_case(DEFAULT_POLICY), "the Default policy always exists");
        self.with_org(tenant_id, |org| {
            org.policies.retain(|p| !p.name.eq_ignore_ascii_case(name));
            org.rules.retain(|r| !r.name.eq_ignore_ascii_case(name));
            org.policies.push(SimOutboundPolicy {
                name: name.to_string(),
                auto_forwarding_mode: mode,
                is_default: false,
                guid: random::guid(),
            });
            org.rules.push(SimOutboundRule {
                name: name.to_string(),
                policy: name.to_string(),
                from: rule_from,
                from_member_of: Vec::new(),
                sender_domain_is: Vec::new(),
                priority,
                enabled: true,
                guid: random::guid(),
            });
        });
    }

    /// Changes a rule (conditions, priority, state). Panics if there is no such rule.
    pub fn update_outbound_rule(&self, tenant_id: &str, name: &str, change: impl FnOnce(&mut SimOutboundRule)) {
        self.with_org(tenant_id, |org| {
            let rule = org
                .rules
                .iter_mut()
                .find(|r| r.name.eq_ignore_ascii_case(name))
                .unwrap_or_else(|| panic!("no outbound spam filter rule {name:?} in {tenant_id:?}"));
            change(rule);
        });
    }

    pub fn outbound_policies(&self, tenant_id: &str) -> Vec<SimOutboundPolicy> {
        self.with_org(tenant_id, |org| org.policies.clone())
    }

    pub fn outbound_rules(&self, tenant_id: &str) -> Vec<SimOutboundRule> {
        self.with_org(tenant_id, |org| org.rules.clone())
    }

    /// The cmdlets invoked so far (every InvokeCommand call that named one, including refused
    /// ones), in order.
    pub fn cmdlet_calls(&self) -> Vec<String> {
        self.shared.calls.with(|calls| calls.iter().filter_map(|c| c.cmdlet.clone()).collect())
    }

    /// How many InvokeCommand calls named `cmdlet` (any case). Panics on a cmdlet the simulator
    /// does not implement, so a typo cannot make a "never called" assertion pass.
    pub fn count_cmdlet(&self, cmdlet: &str) -> usize {
        let name = canonical_cmdlet(cmdlet);
        self.shared.calls.with(|calls| calls.iter().filter(|c| c.cmdlet.as_deref() == Some(name)).count())
    }
}
