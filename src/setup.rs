//! `setup tenant`: prepares a Microsoft tenant for the operator from an administrator's sign-in,
//! idempotently (every object is looked up first and created only when missing):
//!
//! 1. the operator's application (by `uniqueName`) and its service principal;
//! 2. a federated identity credential for the cluster's service account (workload identity);
//! 3. the Microsoft Graph application permissions the README lists (least privilege) and, for
//!    mailbox management, Office 365 Exchange Online's `Exchange.ManageAsApp`, as app role
//!    assignments (which are the admin consent);
//! 4. Exchange RBAC for the application: Exchange's own service principal object
//!    (New-ServicePrincipal), a management scope limited to the allowed mailboxes
//!    (New-ManagementScope), a custom management role derived from `Mail Recipients` that keeps
//!    only the cmdlets and parameters the operator runs ([`OPERATOR_CMDLETS`](permissions::OPERATOR_CMDLETS); New-ManagementRole,
//!    then Remove-/Set-/Add-ManagementRoleEntry until its entries are exactly those), and role
//!    groups with the application as member: that role limited to the scope, and
//!    `View-Only Configuration` (New-RoleGroup, Add-RoleGroupMember).
//!
//! With `dry_run` nothing is written: every change is reported with its equivalent `az` CLI or
//! Exchange Online PowerShell command.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::api::Cloud;
use crate::azure::model::{ApplicationUpdate, FederatedIdentityCredential, RequiredResourceAccess, ResourceAccess};
use crate::azure::{AzureError, Directory, Endpoints, GraphClient, TokenClient, TokenProvider};
use crate::exchange::permissions::{self, CONFIGURATION_READER_ROLE, MAILBOX_SETTINGS_PARENT, OperatorRole};
use crate::exchange::wire::Command;
use crate::exchange::{ExchangeClient, ExchangeError};
use crate::http::HttpClient;

/// Microsoft Graph and Office 365 Exchange Online (first-party application IDs).
pub const GRAPH_APP_ID: &str = crate::api::tenant::MICROSOFT_GRAPH_APP_ID;
pub const EXCHANGE_APP_ID: &str = crate::api::tenant::EXCHANGE_ONLINE_APP_ID;
/// The audience Entra ID requires in workload identity federation assertions.
pub const FEDERATION_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The Azure CLI's public client (device code sign-in unless `--client-id` says otherwise).
pub const AZURE_CLI_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

/// What to set up.
#[derive(Clone, Debug)]
pub struct TenantSetup {
    pub tenant_id: String,
    pub cloud: Cloud,
    /// The cluster's service-account issuer URL.
    pub issuer: String,
    pub namespace: String,
    pub service_account: String,
    /// The application's `uniqueName` (also its display name).
    pub unique_name: String,
    /// Mailbox patterns (`support@contoso.com`, `*@contoso.com`, `*@*.contoso.com`).
    pub mailboxes: Vec<String>,
    /// SMTP AUTH and forwarding management on Exchange Online (EmailChannel `exchange.manage`).
    pub exchange: bool,
    /// Adoption of applications the operator does not own (`Application.ReadWrite.All`).
    pub adopt: bool,
    /// Admin consent for application permissions (`AppRoleAssignment.ReadWrite.All`, which can
    /// grant any application permission): only when an EntraTenant will allow application
    /// permissions. EmailChannels need delegated permissions only.
    pub application_permissions: bool,
    /// Sign-in by assigned users only (EntraTenant `permissions.assignedUsersOnly`): also needs
    /// `AppRoleAssignment.ReadWrite.All`, the only permission Microsoft lists for assigning a user.
    pub assigned_users_only: bool,
    /// The Webex Connect tenant hosts the printed EntraTenant lists (`connect.tenantHosts`).
    pub connect_hosts: Vec<String>,
    /// `Policy.Read.All` (optional: secret lifetimes shortened in advance to the tenant policy).
    pub policy_read: bool,
    /// Name of the EntraTenant to print.
    pub entra_tenant: String,
}

/// The Exchange role groups the application's service principal is made a member of: (name
/// suffix, role, limited to the allowed mailboxes).
///
/// Custom role groups with the service principal as a member are Microsoft's documented way to
/// give an application admin roles in Exchange Online PowerShell's app-only (REST) mode; RBAC for
/// Applications (`New-ManagementRoleAssignment -App`) takes application roles only. The mailbox
/// role is the custom role [`TenantSetup::mailbox_role_name`]: `Mail Recipients` narrowed to the
/// Get-/Set-Mailbox and Get-/Set-CASMailbox parameters of [`OPERATOR_CMDLETS`](permissions::OPERATOR_CMDLETS) (`Mail
/// Recipients` itself also carries, among others, Add-MailboxPermission and
/// Add-RecipientPermission: FullAccess and SendAs on every mailbox in scope), limited by the
/// group's recipient write scope to the allowed mailboxes. Assumed, not confirmed by a public
/// source: that `Mail Recipients` has entries for those cmdlets with those parameters, and that
/// `View-Only Configuration` covers the organization-wide reads the operator makes
/// (Get-TransportConfig, Get-HostedOutboundSpamFilterPolicy/Rule, Get-RemoteDomain).
pub const EXCHANGE_ROLE_GROUPS: [(&str, OperatorRole, bool); 2] = [
    ("recipients", OperatorRole::MailboxSettings, true),
    ("configuration-reader", OperatorRole::ConfigurationReader, false),
];

impl TenantSetup {
    /// `system:serviceaccount:<namespace>:<name>`
    pub fn subject(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.service_account)
    }

    /// The Graph application permissions, exactly the README's least-privilege list.
    pub fn graph_permissions(&self) -> Vec<&'static str> {
        let mut permissions =
            vec!["Application.ReadWrite.OwnedBy", "Application.Read.All", "DelegatedPermissionGrant.ReadWrite.All"];
        if self.application_permissions || self.assigned_users_only {
            permissions.push("AppRoleAssignment.ReadWrite.All");
        }
        if self.policy_read {
            permissions.push("Policy.Read.All");
        }
        if self.adopt {
            permissions.push("Application.ReadWrite.All");
        }
        permissions
    }

    /// (resource appId, permission) pairs.
    pub fn permissions(&self) -> Vec<(&'static str, &'static str)> {
        let mut all: Vec<_> = self.graph_permissions().into_iter().map(|p| (GRAPH_APP_ID, p)).collect();
        if self.exchange {
            all.push((EXCHANGE_APP_ID, "Exchange.ManageAsApp"));
        }
        all
    }

    pub fn credential_name(&self) -> String {
        format!("{}-{}", self.namespace, self.service_account)
    }

    pub fn scope_name(&self) -> String {
        format!("{}-mailboxes", self.unique_name)
    }

    /// The name of one of [`EXCHANGE_ROLE_GROUPS`] (at most 64 characters).
    pub fn role_group_name(&self, suffix: &str) -> String {
        let name = format!("{}-{suffix}", self.unique_name);
        name.chars().take(64).collect()
    }

    /// The custom management role derived from `Mail Recipients` (at most 64 characters).
    pub fn mailbox_role_name(&self) -> String {
        format!("{}-mailbox-settings", self.unique_name).chars().take(64).collect()
    }

    /// The name of the Exchange role that grants the operator `role`'s cmdlets.
    pub fn exchange_role(&self, role: OperatorRole) -> String {
        match role {
            OperatorRole::MailboxSettings => self.mailbox_role_name(),
            OperatorRole::ConfigurationReader => CONFIGURATION_READER_ROLE.to_string(),
        }
    }

    /// The OPATH recipient filter of the allowed mailboxes: `-eq` for an address, `-like` for a
    /// pattern. Assumed (no public source checked): that `-like` accepts a `*` inside the domain
    /// (`*@*.contoso.com`) and that PrimarySmtpAddress is the property to match.
    pub fn recipient_filter(&self) -> String {
        let clauses: Vec<String> = self
            .mailboxes
            .iter()
            .map(|m| {
                let value = m.trim().replace('\'', "''");
                let op = if value.contains('*') { "-like" } else { "-eq" };
                format!("(PrimarySmtpAddress {op} '{value}')")
            })
            .collect();
        clauses.join(" -or ")
    }

    fn graph_base(&self) -> String {
        Endpoints::for_cloud(self.cloud).graph.as_str().trim_end_matches('/').to_string()
    }
}

/// One step: what is (or would be) done, and the equivalent command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// True when the object already existed (nothing to do).
    pub present: bool,
    pub what: String,
    /// The equivalent `az` CLI or Exchange PowerShell command.
    pub command: String,
}

/// What `run` found and did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub steps: Vec<Step>,
    /// The application (client) ID, once it exists.
    pub app_id: Option<String>,
    pub warnings: Vec<String>,
}

impl Report {
    pub fn changes(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| !s.present)
    }

    /// The report as text; `dry_run` words changes as "would".
    pub fn render(&self, dry_run: bool) -> String {
        let mut out = String::new();
        for step in &self.steps {
            let mark = match (step.present, dry_run) {
                (true, _) => "ok     ",
                (false, true) => "would  ",
                (false, false) => "created",
            };
            out.push_str(&format!("{mark} {}\n", step.what));
            if !step.present {
                for line in step.command.lines() {
                    out.push_str(&format!("          {line}\n"));
                }
            }
        }
        for warning in &self.warnings {
            out.push_str(&format!("warning: {warning}\n"));
        }
        let changes = self.changes().count();
        out.push_str(&match (changes, dry_run) {
            (0, _) => "nothing to change\n".to_string(),
            (n, true) => format!("{n} change(s) would be made (dry run: none made)\n"),
            (n, false) => format!("{n} change(s) made\n"),
        });
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Graph(#[from] AzureError),
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    #[error("{0}")]
    Other(String),
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn ps_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('`', "``").replace('"', "`\"").replace('$', "`$"))
}

/// Runs the set-up against Graph and (when `setup.exchange`) Exchange Online.
pub async fn run(
    setup: &TenantSetup,
    graph: &GraphClient,
    exchange: Option<&ExchangeClient>,
    dry_run: bool,
) -> Result<Report, SetupError> {
    let tenant = setup.tenant_id.as_str();
    let base = setup.graph_base();
    let mut report = Report::default();
    let step = |report: &mut Report, present: bool, what: String, command: String| {
        report.steps.push(Step { present, what, command });
    };

    // The resource service principals and the app role IDs of the permissions (reads only).
    let mut resolved = Vec::new();
    for (resource, permission) in setup.permissions() {
        let sp = graph
            .resource_service_principal(tenant, resource)
            .await?
            .ok_or_else(|| SetupError::Other(format!("no service principal of {resource} in tenant {tenant}")))?;
        let role =
            sp.app_roles.iter().find(|r| r.value.as_deref() == Some(permission) && r.is_enabled).ok_or_else(|| {
                SetupError::Other(format!("{resource} publishes no application permission {permission}"))
            })?;
        resolved.push((resource, permission, sp.id.clone(), role.id.clone()));
    }

    // 1. The application and its service principal.
    let mut app = graph.app_by_unique_name(tenant, &setup.unique_name).await?;
    let mut required: Vec<RequiredResourceAccess> = Vec::new();
    for (resource, _, _, role_id) in &resolved {
        let access = ResourceAccess { id: role_id.clone(), kind: "Role".into() };
        match required.iter_mut().find(|r| r.resource_app_id == *resource) {
            Some(r) => r.resource_access.push(access),
            None => required
                .push(RequiredResourceAccess { resource_app_id: resource.to_string(), resource_access: vec![access] }),
        }
    }
    let body = json!({
        "displayName": setup.unique_name,
        "signInAudience": "AzureADMyOrg",
        "requiredResourceAccess": required,
    });
    step(
        &mut report,
        app.is_some(),
        format!(
            "application uniqueName={} (single tenant, the permissions below as required access)",
            setup.unique_name
        ),
        format!(
            "az rest --method PATCH --url {} --headers Prefer=create-if-missing --body {}",
            sh_quote(&format!("{base}/v1.0/applications(uniqueName='{}')", setup.unique_name)),
            sh_quote(&body.to_string())
        ),
    );
    if app.is_none() && !dry_run {
        let update = ApplicationUpdate {
            unique_name: None,
            display_name: setup.unique_name.clone(),
            sign_in_audience: "AzureADMyOrg".into(),
            required_resource_access: required.clone(),
            ..ApplicationUpdate::default()
        };
        app = Some(graph.upsert_app(tenant, &setup.unique_name, &update).await?);
    }
    let app_id = app.as_ref().map(|a| a.app_id.clone());
    report.app_id = app_id.clone();
    let app_id_text = app_id.clone().unwrap_or_else(|| "<appId>".into());

    let sp = match &app_id {
        Some(app_id) => graph.service_principal(tenant, app_id).await?,
        None => None,
    };
    step(
        &mut report,
        sp.is_some(),
        format!("service principal of {app_id_text}"),
        format!("az ad sp create --id {app_id_text}"),
    );
    let sp = match (sp, &app_id) {
        (None, Some(app_id)) if !dry_run => Some(graph.ensure_service_principal(tenant, app_id).await?),
        (sp, _) => sp,
    };
    let sp_id_text = sp.as_ref().map(|s| s.id.clone()).unwrap_or_else(|| "<servicePrincipalId>".into());

    // 2. The federated identity credential.
    let wanted = FederatedIdentityCredential {
        id: String::new(),
        name: setup.credential_name(),
        issuer: setup.issuer.clone(),
        subject: setup.subject(),
        audiences: vec![FEDERATION_AUDIENCE.into()],
        description: Some("connect-email-operator workload identity".into()),
    };
    let existing = match &app {
        Some(app) => graph.federated_credentials(tenant, &app.id).await?,
        None => Vec::new(),
    };
    let present = existing.iter().any(|c| {
        c.issuer == wanted.issuer && c.subject == wanted.subject && c.audiences.iter().any(|a| a == FEDERATION_AUDIENCE)
    });
    if !present && existing.iter().any(|c| c.name == wanted.name) {
        return Err(SetupError::Other(format!(
            "the application has a federated credential named {} for another issuer or subject; remove or rename it",
            wanted.name
        )));
    }
    let parameters = json!({
        "name": wanted.name, "issuer": wanted.issuer, "subject": wanted.subject, "audiences": wanted.audiences,
    });
    step(
        &mut report,
        present,
        format!("federated credential issuer={} subject={}", wanted.issuer, wanted.subject),
        format!(
            "az ad app federated-credential create --id {app_id_text} --parameters {}",
            sh_quote(&parameters.to_string())
        ),
    );
    if let (false, false, Some(app)) = (present, dry_run, &app) {
        graph.add_federated_credential(tenant, &app.id, &wanted).await?;
    }

    // 3. Application permissions with admin consent: app role assignments.
    let assignments = match &sp {
        Some(sp) => graph.app_role_assignments(tenant, &sp.id).await?,
        None => Vec::new(),
    };
    for (resource, permission, resource_sp, role_id) in &resolved {
        let present =
            assignments.iter().any(|a| a.resource_id.eq_ignore_ascii_case(resource_sp) && a.app_role_id == *role_id);
        let body = json!({"principalId": sp_id_text, "resourceId": resource_sp, "appRoleId": role_id});
        let name = if *resource == GRAPH_APP_ID { "Microsoft Graph" } else { "Office 365 Exchange Online" };
        step(
            &mut report,
            present,
            format!("application permission {permission} on {name} (admin consent)"),
            format!(
                "az rest --method POST --url {} --body {}",
                sh_quote(&format!("{base}/v1.0/servicePrincipals/{resource_sp}/appRoleAssignedTo")),
                sh_quote(&body.to_string())
            ),
        );
        if let (false, false, Some(sp)) = (present, dry_run, &sp) {
            graph.assign_app_role(tenant, &sp.id, resource_sp, role_id).await?;
        }
    }

    // 4. Exchange RBAC for the application.
    if setup.exchange {
        let exchange = exchange.ok_or_else(|| SetupError::Other("an Exchange Online token is needed".into()))?;
        exchange_rbac(setup, exchange, app_id.as_deref(), sp.as_ref().map(|s| s.id.as_str()), dry_run, &mut report)
            .await?;
    }
    Ok(report)
}

fn text<'v>(row: &'v Value, name: &str) -> Option<&'v str> {
    row.get(name).and_then(Value::as_str)
}

async fn exchange_rbac(
    setup: &TenantSetup,
    exchange: &ExchangeClient,
    app_id: Option<&str>,
    sp_object_id: Option<&str>,
    dry_run: bool,
    report: &mut Report,
) -> Result<(), SetupError> {
    let tenant = setup.tenant_id.as_str();
    let app_id_text = app_id.unwrap_or("<appId>");
    let object_id_text = sp_object_id.unwrap_or("<servicePrincipalId>");

    // Exchange's service principal object. Listed and matched on AppId here, because which
    // identities Get-ServicePrincipal -Identity accepts is not confirmed.
    let sps = exchange.run(tenant, &Command::new("Get-ServicePrincipal", json!({}))).await?;
    let mut service_id = sps
        .iter()
        .find(|r| app_id.is_some_and(|a| text(r, "AppId").is_some_and(|v| v.eq_ignore_ascii_case(a))))
        .and_then(|r| text(r, "ServiceId").map(str::to_string));
    report.steps.push(Step {
        present: service_id.is_some(),
        what: format!("Exchange service principal for {app_id_text}"),
        command: format!(
            "New-ServicePrincipal -AppId {app_id_text} -ObjectId {object_id_text} -DisplayName {}",
            ps_quote(&setup.unique_name)
        ),
    });
    if let (None, false, Some(app_id), Some(object_id)) = (&service_id, dry_run, app_id, sp_object_id) {
        let parameters = json!({"AppId": app_id, "ObjectId": object_id, "DisplayName": setup.unique_name});
        let rows = exchange.run(tenant, &Command::new("New-ServicePrincipal", parameters)).await?;
        service_id = rows.first().and_then(|r| text(r, "ServiceId")).map(str::to_string);
    }

    // The management scope of the allowed mailboxes.
    let filter = setup.recipient_filter();
    let scope_name = setup.scope_name();
    let scopes = exchange.run(tenant, &Command::new("Get-ManagementScope", json!({}))).await?;
    let scope = scopes.iter().find(|r| text(r, "Name").is_some_and(|n| n.eq_ignore_ascii_case(&scope_name)));
    if let Some(found) = scope.and_then(|s| text(s, "RecipientFilter"))
        && found != filter
    {
        report.warnings.push(format!(
            "management scope {scope_name} exists with the filter {found:?}, not {filter:?}; left as it is (Set-ManagementScope changes it)"
        ));
    }
    report.steps.push(Step {
        present: scope.is_some(),
        what: format!("Exchange management scope {scope_name}: {filter}"),
        command: format!(
            "New-ManagementScope -Name {} -RecipientRestrictionFilter {}",
            ps_quote(&scope_name),
            ps_quote(&filter)
        ),
    });
    if scope.is_none() && !dry_run {
        let parameters = json!({"Name": scope_name, "RecipientRestrictionFilter": filter});
        exchange.run(tenant, &Command::new("New-ManagementScope", parameters)).await?;
    }

    // The custom mailbox role: Mail Recipients narrowed to what the operator runs.
    mailbox_role(setup, exchange, dry_run, report).await?;

    // The role groups, found by the names this command gives them, with the service principal
    // as a member.
    let groups = exchange.run(tenant, &Command::new("Get-RoleGroup", json!({}))).await?;
    for (suffix, operator_role, scoped) in EXCHANGE_ROLE_GROUPS {
        let name = setup.role_group_name(suffix);
        let role_name = setup.exchange_role(operator_role);
        let role = role_name.as_str();
        let found = groups.iter().find(|r| text(r, "Name").is_some_and(|n| n.eq_ignore_ascii_case(&name)));
        if let Some(found) = found {
            let roles: Vec<&str> = found
                .get("Roles")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let found_scope = text(found, "CustomRecipientWriteScope");
            let wanted_scope = scoped.then_some(scope_name.as_str());
            if !roles.iter().any(|r| r.eq_ignore_ascii_case(role)) || found_scope != wanted_scope {
                report.warnings.push(format!(
                    "role group {name} exists with roles {roles:?} and recipient write scope {found_scope:?}, not [{role:?}] and {wanted_scope:?}; left as it is"
                ));
            }
            if scoped && roles.iter().any(|r| r.eq_ignore_ascii_case(MAILBOX_SETTINGS_PARENT)) {
                let scope = wanted_scope.unwrap_or_default();
                report.warnings.push(format!(
                    "role group {name} still gives the operator all of {MAILBOX_SETTINGS_PARENT} (set up by an earlier version); to keep only what it runs: New-ManagementRoleAssignment -SecurityGroup {} -Role {} -CustomRecipientWriteScope {}; Get-ManagementRoleAssignment -RoleAssignee {} -Role {} | Remove-ManagementRoleAssignment -Confirm:$false",
                    ps_quote(&name),
                    ps_quote(role),
                    ps_quote(scope),
                    ps_quote(&name),
                    ps_quote(MAILBOX_SETTINGS_PARENT)
                ));
            }
        }
        let scope_parameter =
            if scoped { format!(" -CustomRecipientWriteScope {}", ps_quote(&scope_name)) } else { String::new() };
        report.steps.push(Step {
            present: found.is_some(),
            what: format!(
                "Exchange role group {name}: {role}{}",
                if scoped {
                    format!(", limited to scope {scope_name}")
                } else {
                    ", organization-wide (read only)".into()
                }
            ),
            command: format!("New-RoleGroup -Name {} -Roles {}{scope_parameter}", ps_quote(&name), ps_quote(role)),
        });
        if found.is_none() && !dry_run {
            let mut parameters = json!({"Name": name, "Roles": [role]});
            if scoped {
                parameters["CustomRecipientWriteScope"] = json!(scope_name);
            }
            exchange.run(tenant, &Command::new("New-RoleGroup", parameters)).await?;
        }
        // Membership: matched on the Entra object ID or the display name this command gives the
        // Exchange service principal (how Get-RoleGroupMember shows a service principal is
        // unconfirmed).
        let members = if found.is_some() || !dry_run {
            exchange.run(tenant, &Command::new("Get-RoleGroupMember", json!({"Identity": name}))).await?
        } else {
            Vec::new()
        };
        let member = members.iter().any(|m| {
            sp_object_id
                .is_some_and(|id| text(m, "ExternalDirectoryObjectId").is_some_and(|v| v.eq_ignore_ascii_case(id)))
                || text(m, "Name").is_some_and(|n| n.eq_ignore_ascii_case(&setup.unique_name))
        });
        report.steps.push(Step {
            present: member,
            what: format!("the application's service principal is a member of {name}"),
            command: format!("Add-RoleGroupMember -Identity {} -Member {object_id_text}", ps_quote(&name)),
        });
        if let (false, false, Some(_), Some(object_id)) = (member, dry_run, &service_id, sp_object_id) {
            let parameters = json!({"Identity": name, "Member": object_id});
            exchange.run(tenant, &Command::new("Add-RoleGroupMember", parameters)).await?;
        }
    }
    Ok(())
}

/// A role entry as Get-ManagementRoleEntry shows it: the cmdlet (`Name`) and its `Parameters`.
fn role_entry(row: &Value) -> Option<(&str, Vec<&str>)> {
    let cmdlet = text(row, "Name")?;
    let parameters =
        row.get("Parameters").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect());
    Some((cmdlet, parameters.unwrap_or_default()))
}

fn same_parameters(found: &[&str], wanted: &[&str]) -> bool {
    let contains = |list: &[&str], p: &str| list.iter().any(|q| q.eq_ignore_ascii_case(p));
    found.iter().all(|p| contains(wanted, p)) && wanted.iter().all(|p| contains(found, p))
}

/// Whether a role's `Parent` names `role` (the name, or a path ending in it).
fn names_role(parent: &str, role: &str) -> bool {
    let parent = parent.trim();
    let last = parent.rsplit(['\\', '/']).next().unwrap_or(parent);
    parent.eq_ignore_ascii_case(role) || last.trim().eq_ignore_ascii_case(role)
}

/// The custom management role derived from `Mail Recipients`, converged to exactly the
/// [`OperatorRole::MailboxSettings`] cmdlets and parameters of [`OPERATOR_CMDLETS`](permissions::OPERATOR_CMDLETS): created
/// when missing (New-ManagementRole -Parent copies the parent's entries), then every other entry
/// removed, the kept ones limited to the listed parameters (Set-ManagementRoleEntry -Parameters
/// without -AddParameter/-RemoveParameter replaces an entry's parameters, as documented) and
/// missing ones added back from the parent. A dry run before the role exists reports against the
/// parent's entries, which the new role would start with. Unconfirmed: that an application's
/// administrator can run these cmdlets through InvokeCommand as in PowerShell, and the output
/// property names read here (`Name`, `Parent`; `Name`, `Parameters`).
async fn mailbox_role(
    setup: &TenantSetup,
    exchange: &ExchangeClient,
    dry_run: bool,
    report: &mut Report,
) -> Result<(), SetupError> {
    let tenant = setup.tenant_id.as_str();
    let role = setup.mailbox_role_name();
    let parent = MAILBOX_SETTINGS_PARENT;
    let roles = exchange.run(tenant, &Command::new("Get-ManagementRole", json!({}))).await?;
    let found = roles.iter().find(|r| text(r, "Name").is_some_and(|n| n.eq_ignore_ascii_case(&role)));
    report.steps.push(Step {
        present: found.is_some(),
        what: format!("Exchange management role {role}, derived from {parent}"),
        command: format!("New-ManagementRole -Name {} -Parent {}", ps_quote(&role), ps_quote(parent)),
    });
    if let Some(found) = found {
        let found_parent = text(found, "Parent");
        if !found_parent.is_some_and(|p| names_role(p, parent)) {
            report.warnings.push(format!(
                "management role {role} exists with parent {found_parent:?}, not {parent:?}; its role entries are left as they are"
            ));
            return Ok(());
        }
    } else if !dry_run {
        exchange.run(tenant, &Command::new("New-ManagementRole", json!({"Name": role, "Parent": parent}))).await?;
    }
    let write = !dry_run;
    let source = if found.is_some() || write { role.as_str() } else { parent };
    let rows = exchange
        .run(tenant, &Command::new("Get-ManagementRoleEntry", json!({"Identity": format!("{source}\\*")})))
        .await?;
    let entries: Vec<(&str, Vec<&str>)> = rows.iter().filter_map(role_entry).collect();
    let wanted: Vec<_> = permissions::cmdlets_of(OperatorRole::MailboxSettings).collect();
    let kept = |cmdlet: &str| wanted.iter().any(|w| w.cmdlet.eq_ignore_ascii_case(cmdlet));

    // Every entry the operator does not run.
    let extra: Vec<&str> = entries.iter().map(|(cmdlet, _)| *cmdlet).filter(|c| !kept(c)).collect();
    let names: Vec<&str> = wanted.iter().map(|w| w.cmdlet).collect();
    report.steps.push(Step {
        present: extra.is_empty(),
        what: if extra.is_empty() {
            format!("role {role} has no entries beyond the operator's cmdlets ({})", names.join(", "))
        } else {
            format!(
                "role {role}: remove the {} role entries beyond the operator's cmdlets ({})",
                extra.len(),
                names.join(", ")
            )
        },
        command: extra
            .iter()
            .map(|c| {
                format!("Remove-ManagementRoleEntry -Identity {} -Confirm:$false", ps_quote(&format!("{role}\\{c}")))
            })
            .collect::<Vec<_>>()
            .join("\n"),
    });
    if write {
        for cmdlet in &extra {
            let parameters = json!({"Identity": format!("{role}\\{cmdlet}"), "Confirm": false});
            exchange.run(tenant, &Command::new("Remove-ManagementRoleEntry", parameters)).await?;
        }
    }

    // The kept entries, with exactly the parameters the operator passes.
    for cmdlet in wanted {
        let identity = format!("{role}\\{}", cmdlet.cmdlet);
        let current = entries.iter().find(|(c, _)| c.eq_ignore_ascii_case(cmdlet.cmdlet));
        let present = current.is_some_and(|(_, found)| same_parameters(found, cmdlet.parameters));
        let verb = if current.is_some() { "Set" } else { "Add" };
        let listed = if cmdlet.parameters.is_empty() { "none".to_string() } else { cmdlet.parameters.join(", ") };
        report.steps.push(Step {
            present,
            what: format!("role entry {identity} with the parameters {listed}"),
            command: format!(
                "{verb}-ManagementRoleEntry -Identity {} -Parameters {}",
                ps_quote(&identity),
                cmdlet.parameters.join(",")
            ),
        });
        if !present && write {
            let parameters = json!({"Identity": identity, "Parameters": cmdlet.parameters});
            let name = if current.is_some() { "Set-ManagementRoleEntry" } else { "Add-ManagementRoleEntry" };
            exchange.run(tenant, &Command::new(name, parameters)).await?;
        }
    }
    Ok(())
}

/// The EntraTenant for this tenant (namespaces labelled `connectemail.dev/tenant=<name>`).
/// How the administrator's Graph and Exchange Online tokens are obtained.
pub enum SignInWith {
    /// The device code flow with this public client.
    DeviceCode { client_id: String },
    /// Standard input: the Graph token on the first line, the Exchange token on the second.
    Stdin,
    /// Given tokens (flags or environment).
    Tokens { graph: Option<String>, exchange: Option<String> },
}

/// The administrator's Graph token and, when Exchange is set up, the Exchange Online token.
pub async fn admin_tokens(
    how: SignInWith,
    http: &HttpClient,
    endpoints: &Endpoints,
    setup: &TenantSetup,
) -> anyhow::Result<(SecretString, Option<SecretString>)> {
    use anyhow::Context as _;
    let (graph, exchange) = match how {
        SignInWith::DeviceCode { client_id } => {
            let login = DeviceCodeLogin {
                http: http.clone(),
                endpoints: endpoints.clone(),
                tenant: setup.tenant_id.clone(),
                client_id,
            };
            let graph = login.sign_in(&endpoints.graph_scope, |message| eprintln!("{message}")).await?;
            let exchange = match (&graph.refresh_token, setup.exchange) {
                (Some(refresh), true) => Some(login.refresh(refresh, &endpoints.exchange_scope).await?.access_token),
                (None, true) => {
                    Some(login.sign_in(&endpoints.exchange_scope, |message| eprintln!("{message}")).await?.access_token)
                }
                (_, false) => None,
            };
            (graph.access_token, exchange)
        }
        SignInWith::Stdin => {
            let mut lines = std::io::stdin().lines();
            let graph = lines.next().transpose()?.context("no Graph token on standard input")?;
            let exchange = lines.next().transpose()?;
            (SecretString::from(graph.trim().to_string()), exchange.map(|t| SecretString::from(t.trim().to_string())))
        }
        SignInWith::Tokens { graph, exchange } => {
            let graph =
                graph.context("give --graph-token (CEO_SETUP_GRAPH_TOKEN), --tokens-from-stdin or --device-code")?;
            (SecretString::from(graph), exchange.map(SecretString::from))
        }
    };
    if setup.exchange && exchange.is_none() {
        anyhow::bail!("an Exchange Online token is needed (or --no-exchange)");
    }
    Ok((graph, exchange))
}

/// Writes entratenant.yaml and values.yaml into `dir` (not on a dry run), or returns them as text
/// to print; returns what to print either way.
pub fn write_outputs(
    setup: &TenantSetup,
    report: &Report,
    dir: Option<&std::path::Path>,
    dry_run: bool,
) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let app_id = report.app_id.clone().unwrap_or_else(|| "<appId>".into());
    let manifest = entra_tenant_manifest(setup);
    let values = helm_values(setup, &app_id);
    match dir {
        Some(dir) if !dry_run => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut out = String::new();
            for (file, text) in [("entratenant.yaml", &manifest), ("values.yaml", &values)] {
                let path = dir.join(file);
                std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
                out.push_str(&format!("wrote {}\n", path.display()));
            }
            Ok(out)
        }
        _ => Ok(format!("--- EntraTenant (kubectl apply -f -)\n{manifest}\n--- Helm values\n{values}\n")),
    }
}

pub fn entra_tenant_spec(setup: &TenantSetup) -> Value {
    let mut spec = json!({
        "tenantId": setup.tenant_id,
        "namespaceSelector": {"matchLabels": {"connectemail.dev/tenant": setup.entra_tenant}},
        "mailboxes": setup.mailboxes,
    });
    if setup.cloud != Cloud::AzurePublic {
        spec["cloud"] = serde_json::to_value(setup.cloud).unwrap_or_default();
    }
    if setup.adopt {
        spec["adoption"] = json!({"allowed": true});
    }
    if !setup.connect_hosts.is_empty() {
        spec["connect"] = json!({"tenantHosts": setup.connect_hosts});
    }
    if setup.assigned_users_only {
        spec["permissions"] = json!({"assignedUsersOnly": true});
    }
    spec
}

pub fn entra_tenant_manifest(setup: &TenantSetup) -> String {
    let manifest = json!({
        "apiVersion": "connectemail.dev/v1alpha1",
        "kind": "EntraTenant",
        "metadata": {"name": setup.entra_tenant},
        "spec": entra_tenant_spec(setup),
    });
    serde_yaml::to_string(&manifest).unwrap_or_default()
}

/// Helm values for the chart: workload identity with the application's client ID, the service
/// account name the federated credential names, and the EntraTenant.
pub fn helm_values(setup: &TenantSetup, app_id: &str) -> String {
    let values = json!({
        "serviceAccount": {"name": setup.service_account},
        "workloadIdentity": {"enabled": true, "clientId": app_id},
        "tenants": [{"name": setup.entra_tenant, "spec": entra_tenant_spec(setup)}],
    });
    format!(
        "# helm install <release> <chart> -n {} -f values.yaml\n# serviceAccount.name pins the name the federated credential names.\n{}",
        setup.namespace,
        serde_yaml::to_string(&values).unwrap_or_default()
    )
}

/// Graph and Exchange clients acting with an administrator's access tokens.
pub fn admin_clients(
    http: HttpClient,
    endpoints: Endpoints,
    graph_token: SecretString,
    exchange_token: Option<SecretString>,
) -> (GraphClient, ExchangeClient) {
    let mut tokens = vec![(endpoints.graph_scope.clone(), graph_token)];
    if let Some(token) = exchange_token {
        tokens.push((endpoints.exchange_scope.clone(), token));
    }
    let provider = Arc::new(TokenProvider::fixed(TokenClient::new(http.clone(), endpoints.clone()), tokens));
    let graph = GraphClient::new(http.clone(), endpoints.clone(), provider.clone());
    let exchange = ExchangeClient::new(http, endpoints, provider);
    (graph, exchange)
}

/// An administrator's sign-in with the device code flow.
pub struct DeviceCodeLogin {
    pub http: HttpClient,
    pub endpoints: Endpoints,
    pub tenant: String,
    pub client_id: String,
}

/// The tokens of a device code sign-in.
pub struct SignIn {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
}

impl DeviceCodeLogin {
    fn token_error(body: &Value) -> (String, String) {
        let error = body.get("error").and_then(Value::as_str).unwrap_or("").to_string();
        let description = body.get("error_description").and_then(Value::as_str).unwrap_or("").to_string();
        (error, description)
    }

    /// Starts a device authorization for `scope` (plus `offline_access`), shows the message via
    /// `prompt`, then polls the token endpoint: `authorization_pending` waits `interval`,
    /// `slow_down` adds 5 s to it (RFC 8628), anything else ends the sign-in.
    pub async fn sign_in(&self, scope: &str, prompt: impl Fn(&str)) -> Result<SignIn, SetupError> {
        let authority = self.endpoints.authority(&self.tenant);
        let scope = format!("{scope} offline_access");
        let form = [("client_id", self.client_id.as_str()), ("scope", scope.as_str())];
        let url = format!("{authority}/oauth2/v2.0/devicecode");
        let response = self.http.send("devicecode", |c| c.post(&url).form(&form)).await.map_err(AzureError::from)?;
        let body: Value = serde_json::from_slice(&response.body).unwrap_or_default();
        if !response.status.is_success() {
            let (error, description) = Self::token_error(&body);
            return Err(SetupError::Other(format!("device code request refused: {error}: {description}")));
        }
        let device_code = body.get("device_code").and_then(Value::as_str).unwrap_or_default().to_string();
        let message = body.get("message").and_then(Value::as_str).unwrap_or_default();
        prompt(message);
        let mut interval = Duration::from_secs(body.get("interval").and_then(Value::as_u64).unwrap_or(5).max(1));
        let token_url = self.endpoints.token_url(&self.tenant);
        loop {
            tokio::time::sleep(interval).await;
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", self.client_id.as_str()),
                ("device_code", device_code.as_str()),
            ];
            let response =
                self.http.send("token", |c| c.post(&token_url).form(&form)).await.map_err(AzureError::from)?;
            let body: Value = serde_json::from_slice(&response.body).unwrap_or_default();
            if response.status.is_success() {
                return Ok(Self::tokens(&body));
            }
            match Self::token_error(&body) {
                (e, _) if e == "authorization_pending" => {}
                (e, _) if e == "slow_down" => interval += Duration::from_secs(5),
                (error, description) => {
                    return Err(SetupError::Other(format!("device code sign-in failed: {error}: {description}")));
                }
            }
        }
    }

    /// Redeems a refresh token of this client for another resource's `scope`.
    pub async fn refresh(&self, refresh_token: &SecretString, scope: &str) -> Result<SignIn, SetupError> {
        let token_url = self.endpoints.token_url(&self.tenant);
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.client_id.as_str()),
            ("refresh_token", refresh_token.expose_secret()),
            ("scope", scope),
        ];
        let response = self.http.send("token", |c| c.post(&token_url).form(&form)).await.map_err(AzureError::from)?;
        let body: Value = serde_json::from_slice(&response.body).unwrap_or_default();
        if !response.status.is_success() {
            let (error, description) = Self::token_error(&body);
            return Err(SetupError::Other(format!(
                "refreshing the sign-in for {scope} failed: {error}: {description}"
            )));
        }
        Ok(Self::tokens(&body))
    }

    fn tokens(body: &Value) -> SignIn {
        let text = |name: &str| body.get(name).and_then(Value::as_str).map(|t| SecretString::from(t.to_string()));
        SignIn {
            access_token: text("access_token").unwrap_or_else(|| SecretString::from("")),
            refresh_token: text("refresh_token"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> TenantSetup {
        TenantSetup {
            tenant_id: "t".into(),
            cloud: Cloud::AzurePublic,
            issuer: "https://oidc.example".into(),
            namespace: "ceo".into(),
            service_account: "connect-email-operator".into(),
            unique_name: "connect-email-operator".into(),
            mailboxes: vec!["support@contoso.com".into(), "*@fabrikam.com".into()],
            exchange: true,
            adopt: false,
            application_permissions: false,
            assigned_users_only: false,
            connect_hosts: vec!["contoso.us.webexconnect.io".into()],
            policy_read: true,
            entra_tenant: "contoso".into(),
        }
    }

    #[test]
    fn filters_and_permissions_follow_the_inputs() {
        let s = setup();
        assert_eq!(
            s.recipient_filter(),
            "(PrimarySmtpAddress -eq 'support@contoso.com') -or (PrimarySmtpAddress -like '*@fabrikam.com')"
        );
        assert_eq!(s.subject(), "system:serviceaccount:ceo:connect-email-operator");
        assert!(!s.graph_permissions().contains(&"Application.ReadWrite.All"));
        assert!(!s.graph_permissions().contains(&"AppRoleAssignment.ReadWrite.All"));
        assert_eq!(s.permissions().len(), 5);
        let assigned = TenantSetup { assigned_users_only: true, ..setup() };
        assert!(assigned.graph_permissions().contains(&"AppRoleAssignment.ReadWrite.All"));
        assert_eq!(entra_tenant_spec(&assigned)["permissions"]["assignedUsersOnly"], true);
        assert_eq!(entra_tenant_spec(&assigned)["connect"]["tenantHosts"][0], "contoso.us.webexconnect.io");
        let wider = TenantSetup { application_permissions: true, adopt: true, ..setup() };
        assert!(wider.graph_permissions().contains(&"AppRoleAssignment.ReadWrite.All"));
        assert!(wider.graph_permissions().contains(&"Application.ReadWrite.All"));
        assert_eq!(s.role_group_name("configuration-reader"), "connect-email-operator-configuration-reader");
    }
}
