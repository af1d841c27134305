//! `connect-email-operator doctor NAMESPACE/NAME`: the TAC guide's verification and troubleshooting
//! steps, run live against Kubernetes, Entra ID, Exchange Online and Webex Connect, printed as a
//! pass/fail table with the fix for each failure. Read-only: it changes nothing.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use secrecy::SecretString;

use crate::api::email_channel::ConnectMode;
use crate::api::{AzureAppRegistration, EmailChannel};
use crate::azure::error::aadsts;
use crate::clients::MicrosoftClients;
use crate::connect;
use crate::connect::api::{ConnectAssets, Org};
use crate::controller::app_registration::secret::{self as secret_keys, KEY_CLIENT_ID, KEY_CLIENT_SECRET};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Warn,
    Fail,
    Info,
}

#[derive(Clone, Debug)]
pub struct Check {
    pub name: String,
    pub outcome: Outcome,
    pub detail: String,
}

fn check(name: &str, outcome: Outcome, detail: impl Into<String>) -> Check {
    Check { name: name.into(), outcome, detail: detail.into() }
}

/// The table as printed.
pub fn render(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(5).max(5);
    let mut out = format!("{:<width$}  {:<6}  DETAIL / FIX\n", "CHECK", "RESULT");
    for c in checks {
        let label = match c.outcome {
            Outcome::Pass => "PASS",
            Outcome::Warn => "WARN",
            Outcome::Fail => "FAIL",
            Outcome::Info => "INFO",
        };
        out.push_str(&format!("{:<width$}  {label:<6}  {}\n", c.name, c.detail));
    }
    out
}

pub fn failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.outcome == Outcome::Fail)
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    secret.data.as_ref()?.get(key).and_then(|v| String::from_utf8(v.0.clone()).ok()).filter(|s| !s.is_empty())
}

/// Runs every check for the EmailChannel (or AzureAppRegistration) `namespace/name`.
pub async fn diagnose(
    client: kube::Client,
    azure: &MicrosoftClients,
    connect_api: &dyn ConnectAssets,
    namespace: &str,
    name: &str,
    now: jiff::Timestamp,
) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let channels: Api<EmailChannel> = Api::namespaced(client.clone(), namespace);
    let registrations: Api<AzureAppRegistration> = Api::namespaced(client.clone(), namespace);
    let channel = channels.get_opt(name).await?;
    let registration_name = match &channel {
        Some(c) => c.status.as_ref().and_then(|s| s.app_registration.clone()).unwrap_or_else(|| name.to_string()),
        None => name.to_string(),
    };
    let Some(registration) = registrations.get_opt(&registration_name).await? else {
        anyhow::bail!("no EmailChannel or AzureAppRegistration {namespace}/{name}");
    };

    // Conditions as the controllers report them.
    let conditions = channel
        .as_ref()
        .and_then(|c| c.status.as_ref())
        .map(|s| s.conditions.clone())
        .or_else(|| registration.status.as_ref().map(|s| s.conditions.clone()))
        .unwrap_or_default();
    for c in conditions.iter().filter(|c| {
        use crate::api::conditions::{app_registration as reg, email_channel as ch};
        ![reg::READY, reg::ROTATING, ch::CONNECT_SECRET_OUTDATED].contains(&c.type_.as_str())
    }) {
        let outcome = if c.status == "True" { Outcome::Pass } else { Outcome::Fail };
        checks.push(check(&format!("condition {}", c.type_), outcome, format!("{}: {}", c.reason, c.message)));
    }

    // The secret at the token endpoint.
    let spec = &registration.spec;
    let Some((tenant_id, cloud)) = registration.tenant() else {
        checks.push(check(
            "tenant",
            Outcome::Fail,
            format!(
                "AzureAppRegistration {} has not been admitted by EntraTenant {} yet: see its Admitted condition",
                registration.metadata.name.as_deref().unwrap_or_default(),
                spec.tenant_ref.name
            ),
        ));
        return Ok(checks);
    };
    let tenant_id = tenant_id.to_string();
    let clients = azure.for_recorded(&client, &spec.tenant_ref.name, &tenant_id, cloud).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret_name = &spec.client_secret.secret_name;
    match secrets.get_opt(secret_name).await? {
        None => checks.push(check("client secret works", Outcome::Fail, format!("Secret {secret_name} does not exist: the operator recreates it (and issues a new secret) on its next reconcile"))),
        Some(secret) if text(&secret, KEY_CLIENT_SECRET).is_some() && secret_keys::observe(Some(&secret)).secret.is_none() => {
            checks.push(check("client secret works", Outcome::Fail, format!("Secret {secret_name} was edited by hand (client-secret no longer matches its fingerprint): the operator issues a new secret on its next reconcile; consumers keep the key they acknowledged until they acknowledge the new one")));
        }
        Some(secret) => match (text(&secret, KEY_CLIENT_ID), text(&secret, KEY_CLIENT_SECRET)) {
            (Some(client_id), Some(value)) => {
                let value: SecretString = value.into();
                let key = secret.metadata.annotations.as_ref().and_then(|a| a.get(secret_keys::ANNOTATION_KEY_ID).cloned()).unwrap_or_default();
                match clients.verifier.verify(&tenant_id, &client_id, &value).await {
                    Ok(()) => checks.push(check("client secret works", Outcome::Pass, format!("token issued for {client_id} with secret {key}"))),
                    Err(e) if e.has_aadsts(aadsts::EXPIRED_SECRET) => checks.push(check("client secret works", Outcome::Fail, format!("{e}. Fix: kubectl annotate azureappregistration {registration_name} -n {namespace} --overwrite connectemail.dev/rotate=$(date +%s)"))),
                    Err(e) if e.has_aadsts(aadsts::INVALID_SECRET) => checks.push(check("client secret works", Outcome::Fail, format!("{e}. The Secret holds a value Entra ID rejects: force a new secret with kubectl annotate azureappregistration {registration_name} -n {namespace} --overwrite connectemail.dev/rotate=$(date +%s)"))),
                    Err(e) => checks.push(check("client secret works", Outcome::Fail, e.to_string())),
                }
            }
            _ => checks.push(check("client secret works", Outcome::Fail, format!("Secret {secret_name} lacks client-id or client-secret"))),
        },
    }

    // Expiry.
    if let Some(c) = registration.status.as_ref().and_then(|s| s.credential.clone()) {
        let left = c.not_after.0.duration_since(now);
        let days = left.as_hours() / 24;
        let (outcome, detail) = if left.is_negative() {
            (Outcome::Fail, format!("expired at {}", c.not_after.0))
        } else if now >= c.renewal_time.0 {
            (
                Outcome::Warn,
                format!("{days} days left; renewal time {} has passed: is the operator running?", c.renewal_time.0),
            )
        } else {
            (Outcome::Pass, format!("{days} days left (expires {}), renewal at {}", c.not_after.0, c.renewal_time.0))
        };
        checks.push(check("secret expiry", outcome, detail));
    }

    // Consent, live.
    if let (Some(status), true) = (registration.status.as_ref(), spec.admin_consent)
        && let Some(sp) = &status.service_principal_id
    {
        {
            let grants = clients.directory.delegated_grants(&tenant_id, sp).await?;
            let roles = clients.directory.app_role_assignments(&tenant_id, sp).await?;
            let scopes: Vec<String> = grants.iter().flat_map(|g| g.scopes()).collect();
            let wanted: Vec<&String> = status.granted_permissions.iter().flat_map(|p| p.delegated.iter()).collect();
            let missing: Vec<&&String> = wanted.iter().filter(|w| !scopes.contains(w)).collect();
            let want_roles = status.granted_permissions.iter().map(|p| p.application.len()).sum::<usize>();
            if missing.is_empty() && roles.len() >= want_roles {
                checks.push(check(
                    "admin consent",
                    Outcome::Pass,
                    format!("delegated: {}; app roles assigned: {}", scopes.join(" "), roles.len()),
                ));
            } else {
                let missing = if missing.is_empty() {
                    "none".to_string()
                } else {
                    missing.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(" ")
                };
                checks.push(check("admin consent", Outcome::Fail, format!("delegated permissions missing: {missing}; app roles assigned: {} of {want_roles}. The operator re-grants on its next reconcile; check its DelegatedPermissionGrant.ReadWrite.All and AppRoleAssignment.ReadWrite.All permissions", roles.len())));
            }
        }
    }

    let Some(channel) = channel else { return Ok(checks) };
    let cspec = &channel.spec;
    let tenant = &tenant_id;

    // Exchange, live.
    match clients.mailboxes.smtp_auth(tenant, &cspec.mailbox).await {
        Ok(auth) if auth.effective_enabled() => checks.push(check(
            "SMTP AUTH",
            Outcome::Pass,
            format!("enabled for {} ({})", cspec.mailbox, smtp_auth_settings(&auth)),
        )),
        Ok(auth) => checks.push(check(
            "SMTP AUTH",
            Outcome::Fail,
            format!(
                "disabled for {} ({}). Fix: Set-CASMailbox -Identity {} -SmtpClientAuthenticationDisabled $false",
                cspec.mailbox,
                smtp_auth_settings(&auth),
                cspec.mailbox
            ),
        )),
        Err(e) => checks.push(check("SMTP AUTH", Outcome::Fail, e.to_string())),
    }
    let expected = channel.status.as_ref().and_then(|s| s.forwarding_address.clone());
    match clients.mailboxes.forwarding(tenant, &cspec.mailbox).await {
        Ok(f)
            if cspec.exchange.forwarding.enabled
                && f.smtp_address.as_deref().map(str::to_lowercase) == expected.as_deref().map(str::to_lowercase)
                && f.address.is_none() =>
        {
            checks.push(check("forwarding", Outcome::Pass, forwarding_text(&f)))
        }
        Ok(f) if !cspec.exchange.forwarding.enabled => {
            checks.push(check("forwarding", Outcome::Info, format!("not managed; currently {}", forwarding_text(&f))))
        }
        Ok(f) => checks.push(check(
            "forwarding",
            Outcome::Fail,
            format!(
                "currently {}; expected forwarding to {}",
                forwarding_text(&f),
                expected.as_deref().unwrap_or("the Connect forwarding address (not known yet)")
            ),
        )),
        Err(e) => checks.push(check("forwarding", Outcome::Fail, e.to_string())),
    }
    match clients.mailboxes.outbound_forwarding(tenant, &cspec.mailbox).await {
        Ok(o) if o.allows_external_forwarding() => checks.push(check("outbound forwarding policy", Outcome::Pass, format!("policy {} allows it", o.policy))),
        Ok(o) => checks.push(check("outbound forwarding policy", Outcome::Fail, format!("policy {} has AutoForwardingMode {}, remote domain Default auto-forward {}. Fix: Set-HostedOutboundSpamFilterPolicy -Identity '{}' -AutoForwardingMode On (and Set-RemoteDomain Default -AutoForwardEnabled $true)", o.policy, o.mode.as_str(), if o.remote_domain_auto_forward { "on" } else { "off" }, o.policy))),
        Err(e) => checks.push(check("outbound forwarding policy", Outcome::Fail, e.to_string())),
    }

    // Connect.
    let client_id = registration.status.as_ref().and_then(|s| s.app_id.clone()).unwrap_or_default();
    let form = connect::asset_form(cspec, cloud, &clients.endpoints, tenant, &client_id, secret_name);
    let current_key = registration.status.as_ref().and_then(|s| s.credential.as_ref()).map(|c| c.key_id.clone());
    match cspec.connect.mode {
        ConnectMode::Manual => {
            checks.extend(form_checks(&form));
            let applied = channel
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(crate::api::ANNOTATION_CONNECT_SECRET_APPLIED).cloned());
            if applied.is_some() && applied == current_key {
                checks.push(check(
                    "Connect secret",
                    Outcome::Pass,
                    format!("confirmed: Connect holds {}", applied.unwrap_or_default()),
                ));
            } else {
                checks.push(check("Connect secret", Outcome::Fail, format!(
                    "Connect confirmed {}, the current secret is {}: enter the current secret in Connect and annotate the channel",
                    applied.as_deref().unwrap_or("no secret"),
                    current_key.as_deref().unwrap_or("not issued yet")
                )));
            }
        }
        ConnectMode::Api => {
            let token = match &cspec.connect.credentials_secret_ref {
                Some(r) => secrets.get_opt(&r.name).await?.and_then(|s| text(&s, &r.key)),
                None => None,
            };
            match token {
                None => checks.push(check(
                    "Connect asset",
                    Outcome::Fail,
                    "no Webex access token in connect.credentialsSecretRef",
                )),
                Some(token) => {
                    let token: SecretString = token.into();
                    let org = Org {
                        region: cspec.connect.region,
                        organization_id: cspec.connect.organization_id.as_deref().unwrap_or_default(),
                        token: &token,
                    };
                    // By the asset ID the controller recorded when there is one (the list
                    // operation is undocumented and may be missing), else by name.
                    let known = channel.status.as_ref().and_then(|s| s.connect.as_ref()?.asset_id.clone());
                    let found = match &known {
                        Some(id) => connect_api.get(&org, id).await,
                        None => connect_api.find(&org, &cspec.connect.asset_name).await,
                    };
                    match found {
                        Ok(Some(asset)) => {
                            let fields_ok = asset.oauth.client_id == form.client_id
                                && asset.oauth.token_url == form.access_token_url
                                && asset.oauth.scope == form.scope
                                && asset.email_id == form.email_id;
                            let outcome = if fields_ok { Outcome::Pass } else { Outcome::Fail };
                            checks.push(check(
                                "Connect asset",
                                outcome,
                                format!(
                                    "{} ({}): client ID {}, token URL {}, scope {}",
                                    asset.asset_name,
                                    asset.asset_id,
                                    asset.oauth.client_id,
                                    asset.oauth.token_url,
                                    asset.oauth.scope
                                ),
                            ));
                            let outcome = if asset.is_authorized() { Outcome::Pass } else { Outcome::Fail };
                            checks.push(check(
                                "Connect token",
                                outcome,
                                if asset.is_authorized() {
                                    "Generate Token completed".to_string()
                                } else {
                                    format!(
                                        "no token yet: Connect → Assets → Apps → {} → Generate Token, sign in as {}",
                                        asset.asset_name, cspec.mailbox
                                    )
                                },
                            ));
                        }
                        Ok(None) => checks.push(check(
                            "Connect asset",
                            Outcome::Fail,
                            match &known {
                                Some(id) => format!("Connect has no asset with ID {id}"),
                                None => format!("Connect has no asset named {}", cspec.connect.asset_name),
                            },
                        )),
                        Err(e) => checks.push(check("Connect asset", Outcome::Fail, e.to_string())),
                    }
                }
            }
        }
    }
    Ok(checks)
}

/// The Manual-mode values, one line per field of the Connect email form, in its order.
fn form_checks(form: &connect::AssetForm) -> Vec<Check> {
    form.fields()
        .into_iter()
        .map(|(field, value)| check(&format!("Connect form: {field}"), Outcome::Info, value))
        .collect()
}

fn smtp_auth_settings(auth: &crate::exchange::SmtpAuth) -> String {
    let mailbox = match auth.mailbox_disabled {
        None => "inherits the organisation setting",
        Some(true) => "disabled",
        Some(false) => "enabled",
    };
    let organisation = if auth.organization_disabled { "disabled" } else { "enabled" };
    format!("mailbox setting: {mailbox}; organisation setting: {organisation}")
}

fn forwarding_text(f: &crate::exchange::MailboxForwarding) -> String {
    let mut text = match &f.smtp_address {
        Some(address) if f.deliver_to_mailbox_and_forward => format!("forwards to {address}, keeping a copy"),
        Some(address) => format!("forwards to {address} without keeping a copy"),
        None => "no SMTP forwarding".to_string(),
    };
    if let Some(internal) = &f.address {
        text.push_str(&format!("; internal forwarding to {internal} (takes precedence: clear ForwardingAddress)"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assigned_users_only_makes_app_role_assignment_needed() {
        let mut spec: crate::api::EntraTenantSpec = serde_json::from_value(serde_json::json!({
            "tenantId": "11111111-2222-3333-4444-555555555555", "namespaceSelector": {}, "mailboxes": ["*@contoso.com"],
        }))
        .unwrap();
        let need = |spec: &crate::api::EntraTenantSpec| {
            operator_needs(spec).into_iter().find(|n| n.1 == "AppRoleAssignment.ReadWrite.All").unwrap().2
        };
        assert_eq!(need(&spec), Need::NotNeeded);
        spec.permissions.assigned_users_only = true;
        assert_eq!(need(&spec), Need::Required);
    }

    #[test]
    fn the_table_aligns_and_a_single_failure_fails_the_run() {
        let checks =
            vec![check("client secret works", Outcome::Pass, "ok"), check("SMTP AUTH", Outcome::Fail, "disabled")];
        let table = render(&checks);
        assert!(table.contains("client secret works  PASS    ok"), "{table}");
        assert!(table.contains("SMTP AUTH            FAIL    disabled"), "{table}");
        assert!(failed(&checks));
        assert!(!failed(&checks[..1]));
    }

    fn form() -> connect::AssetForm {
        connect::AssetForm {
            asset_name: "Support".into(),
            email_id: "support@contoso.com".into(),
            authentication_type: "OAuth 2.0",
            smtp_server: "smtp.office365.com".into(),
            smtp_username: "support@contoso.com".into(),
            smtp_port: 587,
            smtp_security: "STARTTLS",
            client_id: "c1".into(),
            client_secret_from: "Secret support-app, key client-secret".into(),
            authorization_url: "https://login.microsoftonline.com/t1/oauth2/v2.0/authorize".into(),
            scope: "offline_access https://outlook.office.com/SMTP.Send",
            access_token_url: "https://login.microsoftonline.com/t1/oauth2/v2.0/token".into(),
            refresh_token_url: "https://login.microsoftonline.com/t1/oauth2/v2.0/token".into(),
            callback_url: "https://acme.us.webexconnect.io/callback".into(),
        }
    }

    #[test]
    fn the_readme_walkthrough_shows_the_fields_doctor_prints_in_its_order() {
        let readme = include_str!("../README.md");
        let in_readme: Vec<&str> = readme
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Connect form: "))
            .map(|rest| rest.split("  ").next().unwrap().trim())
            .collect();
        let checks = form_checks(&form());
        let printed: Vec<&str> = checks.iter().map(|c| c.name.strip_prefix("Connect form: ").unwrap()).collect();
        assert_eq!(in_readme, printed, "the README's Manual-mode walkthrough and doctor disagree");
    }

    #[test]
    fn manual_values_follow_the_connect_form_order_and_name_where_the_secret_is() {
        let checks = form_checks(&form());
        let fields: Vec<&str> = checks.iter().map(|c| c.name.strip_prefix("Connect form: ").unwrap()).collect();
        assert_eq!(
            fields,
            [
                "Asset Name",
                "Email ID",
                "Authentication Type",
                "SMTP Server",
                "Username",
                "Port",
                "Security",
                "Client ID",
                "Client Secret",
                "Authorization URL",
                "Scope",
                "Access Token URL",
                "Refresh Token URL",
                "Callback URL",
            ]
        );
        let detail = |name: &str| checks.iter().find(|c| c.name.ends_with(name)).unwrap().detail.clone();
        assert_eq!(detail("Port"), "587");
        assert_eq!(detail("Client Secret"), "Secret support-app, key client-secret");
        assert_eq!(detail("Refresh Token URL"), detail("Access Token URL"));
        assert!(detail("Access Token URL").ends_with("/t1/oauth2/v2.0/token"));
    }

    #[test]
    fn exchange_settings_read_as_plain_text() {
        use crate::exchange::{MailboxForwarding, SmtpAuth};
        let texts = [
            smtp_auth_settings(&SmtpAuth { mailbox_disabled: Some(false), organization_disabled: true }),
            smtp_auth_settings(&SmtpAuth { mailbox_disabled: None, organization_disabled: true }),
            forwarding_text(&MailboxForwarding::default()),
            forwarding_text(&MailboxForwarding {
                smtp_address: Some("x@mail-us.imiconnect.io".into()),
                address: Some("sales".into()),
                deliver_to_mailbox_and_forward: true,
            }),
        ];
        assert_eq!(texts[0], "mailbox setting: enabled; organisation setting: disabled");
        assert_eq!(texts[1], "mailbox setting: inherits the organisation setting; organisation setting: disabled");
        assert_eq!(texts[2], "no SMTP forwarding");
        assert!(
            texts[3].starts_with("forwards to x@mail-us.imiconnect.io, keeping a copy; internal forwarding to sales")
        );
        for text in texts {
            assert!(!text.contains("Some(") && !text.contains("None") && !text.contains('"'), "{text}");
        }
    }
}

/// Whether the operator uses a Microsoft permission in a tenant, given its EntraTenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Needed by what the EntraTenant allows: missing it fails.
    Required,
    /// Used when present (missing it only limits a feature).
    Optional,
    /// Not used under this EntraTenant: holding it is more than the operator needs.
    NotNeeded,
}

/// The Microsoft application permissions the operator's own identity may use in a tenant, with
/// why, following what its EntraTenant allows (least privilege).
pub fn operator_needs(spec: &crate::api::EntraTenantSpec) -> Vec<(&'static str, &'static str, Need, &'static str)> {
    use crate::api::tenant::{EXCHANGE_ONLINE_APP_ID as EXO, MICROSOFT_GRAPH_APP_ID as GRAPH};
    let consent = spec.permissions.admin_consent;
    let delegated = spec.permissions.allowed.iter().any(|p| !p.delegated.is_empty());
    let application = spec.permissions.allowed.iter().any(|p| !p.application.is_empty());
    let need = |on: bool| if on { Need::Required } else { Need::NotNeeded };
    vec![
        (GRAPH, "Application.ReadWrite.OwnedBy", Need::Required, "create applications and manage the ones it owns"),
        (GRAPH, "Application.Read.All", Need::Required, "resolve API service principals and their permission names"),
        (
            GRAPH,
            "DelegatedPermissionGrant.ReadWrite.All",
            need(consent && delegated),
            "admin consent for delegated permissions (SMTP.Send, offline_access)",
        ),
        (
            GRAPH,
            "AppRoleAssignment.ReadWrite.All",
            need(consent && (application || spec.permissions.assigned_users_only)),
            "admin consent for application permissions and assigning a channel's mailbox user to its application (permissions.assignedUsersOnly); it can grant any application permission, so hold it only when the EntraTenant allows application permissions or asks for assigned users only",
        ),
        (
            GRAPH,
            "Application.ReadWrite.All",
            need(spec.adoption.allowed),
            "adoption of applications the operator does not own; it can change every application",
        ),
        (
            GRAPH,
            "Policy.Read.All",
            Need::Optional,
            "read app management policies to shorten secret lifetimes in advance",
        ),
        (
            EXO,
            "Exchange.ManageAsApp",
            Need::Optional,
            "SMTP AUTH and forwarding on the allowed mailboxes (with Exchange RBAC)",
        ),
    ]
}

fn api_name(app_id: &str) -> &'static str {
    if app_id.eq_ignore_ascii_case(crate::api::tenant::MICROSOFT_GRAPH_APP_ID) {
        "Microsoft Graph"
    } else if app_id.eq_ignore_ascii_case(crate::api::tenant::EXCHANGE_ONLINE_APP_ID) {
        "Office 365 Exchange Online"
    } else {
        "another API"
    }
}

/// Checks the application permissions the operator holds (`held`: resource appId and value)
/// against what its EntraTenant makes it use: a required one missing fails, one it does not need
/// (or one it never uses) warns.
pub fn operator_permission_checks(spec: &crate::api::EntraTenantSpec, held: &[(String, String)]) -> Vec<Check> {
    let holds = |app: &str, value: &str| held.iter().any(|(a, v)| a.eq_ignore_ascii_case(app) && v == value);
    let graph = crate::api::tenant::MICROSOFT_GRAPH_APP_ID;
    let mut checks = Vec::new();
    let needs = operator_needs(spec);
    for (app, value, need, why) in &needs {
        // Application.ReadWrite.All includes what the two narrower application permissions allow.
        let covered = *need == Need::Required
            && matches!(*value, "Application.ReadWrite.OwnedBy" | "Application.Read.All")
            && holds(graph, "Application.ReadWrite.All");
        let name = format!("operator permission {value}");
        let (outcome, detail) = match (need, holds(app, value) || covered) {
            (Need::Required, true) => (Outcome::Pass, format!("held: {why}")),
            (Need::Required, false) => (
                Outcome::Fail,
                format!(
                    "missing: {why}. Grant the application permission {value} on {} with admin consent (or run `connect-email-operator setup tenant`)",
                    api_name(app)
                ),
            ),
            (Need::Optional, true) => (Outcome::Pass, format!("held: {why}")),
            (Need::Optional, false) => (Outcome::Info, format!("not held: {why} is not available")),
            (Need::NotNeeded, true) => (
                Outcome::Warn,
                format!(
                    "held but not needed under this EntraTenant ({why}): remove it from the operator's application"
                ),
            ),
            (Need::NotNeeded, false) => (Outcome::Pass, "not held, not needed".to_string()),
        };
        checks.push(check(&name, outcome, detail));
    }
    for (app, value) in held {
        if !needs.iter().any(|(a, v, _, _)| a.eq_ignore_ascii_case(app) && v == value) {
            checks.push(check(
                &format!("operator permission {value}"),
                Outcome::Warn,
                format!(
                    "held on {} and never used by the operator: remove it from the operator's application",
                    api_name(app)
                ),
            ));
        }
    }
    checks
}

/// `doctor entratenant/NAME`: the operator's own identity in that tenant — which identity, that it
/// gets a token, and the application permissions it holds against what the EntraTenant needs.
pub async fn diagnose_tenant(
    client: kube::Client,
    azure: &crate::clients::MicrosoftClients,
    name: &str,
) -> anyhow::Result<Vec<Check>> {
    let tenants: Api<crate::api::EntraTenant> = Api::all(client.clone());
    let tenant = tenants.get_opt(name).await?.ok_or_else(|| anyhow::anyhow!("no EntraTenant {name}"))?;
    let spec = &tenant.spec;
    let mut checks = Vec::new();
    let client_id = match &spec.credential {
        Some(c) => {
            checks.push(check(
                "operator identity",
                Outcome::Info,
                format!("{} ({:?}, from spec.credential)", c.client_id, c.source),
            ));
            c.client_id.clone()
        }
        None => match azure.ambient_credential() {
            Some(c) => {
                checks.push(check(
                    "operator identity",
                    Outcome::Info,
                    format!("{} (the operator's own identity)", c.client_id()),
                ));
                c.client_id().to_string()
            }
            None => {
                checks.push(check(
                    "operator identity",
                    Outcome::Fail,
                    "the operator has no identity of its own and the EntraTenant sets no spec.credential",
                ));
                return Ok(checks);
            }
        },
    };
    let clients = match azure.for_tenant(&client, name, spec).await {
        Ok(c) => c,
        Err(e) => {
            checks.push(check("operator credential", Outcome::Fail, e.to_string()));
            return Ok(checks);
        }
    };
    let directory = &clients.directory;
    let tenant_id = spec.tenant_id.as_str();
    let held = async {
        let Some(sp) = directory.service_principal(tenant_id, &client_id).await? else {
            return Ok::<_, crate::azure::AzureError>(None);
        };
        let assignments = directory.app_role_assignments(tenant_id, &sp.id).await?;
        let mut held = Vec::new();
        for api in [crate::api::tenant::MICROSOFT_GRAPH_APP_ID, crate::api::tenant::EXCHANGE_ONLINE_APP_ID] {
            let Some(resource) = directory.resource_service_principal(tenant_id, api).await? else { continue };
            for a in assignments.iter().filter(|a| a.resource_id == resource.id) {
                let value = resource.app_roles.iter().find(|r| r.id == a.app_role_id).and_then(|r| r.value.clone());
                held.push((api.to_string(), value.unwrap_or_else(|| format!("app role {}", a.app_role_id))));
            }
        }
        Ok(Some(held))
    };
    match held.await {
        Ok(Some(held)) => {
            checks.push(check("operator token", Outcome::Pass, format!("token issued in tenant {tenant_id}")));
            checks.extend(operator_permission_checks(spec, &held));
        }
        Ok(None) => checks.push(check(
            "operator permissions",
            Outcome::Warn,
            format!(
                "the operator's application {client_id} has no service principal in tenant {tenant_id} that it can read"
            ),
        )),
        Err(e) if e.is_operator_credential_failure() => {
            checks.push(check("operator token", Outcome::Fail, e.to_string()))
        }
        Err(e) => checks.push(check(
            "operator permissions",
            Outcome::Warn,
            format!("could not read the operator's own permissions ({e}); reading them needs Application.Read.All"),
        )),
    }
    // Exchange role groups: reading them is not part of the roles the operator is given, so they
    // are not checked here.
    checks.push(check(
        "Exchange roles",
        Outcome::Info,
        format!(
            "not read by doctor: check in Exchange Online PowerShell that the service principal of {client_id} is listed by Get-RoleGroupMember for a role group with the custom role <name>-mailbox-settings (derived from Mail Recipients, cut to the operator's cmdlets) limited to the allowed mailboxes (setup tenant: <name>-recipients) and one with View-Only Configuration (<name>-configuration-reader)"
        ),
    ));
    Ok(checks)
}
