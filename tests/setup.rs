//! `setup tenant` against the Microsoft simulator (Graph, token endpoint, Exchange): the objects
//! it creates, a second run that writes nothing, a dry run that writes nothing and prints the
//! commands, the operator authenticating with the federated credential it made, the Exchange
//! role it derives holding exactly the operator's cmdlets (and Exchange refusing the rest), and
//! the device code sign-in.

mod support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use connect_email_operator::api::Cloud;
use connect_email_operator::azure::{Directory, GraphClient, OperatorCredential, TokenClient, TokenProvider};
use connect_email_operator::exchange::permissions::{self, OPERATOR_CMDLETS, OperatorRole};
use connect_email_operator::exchange::wire::{self, Command};
use connect_email_operator::exchange::{ExchangeClient, ExchangeError, MailboxAdmin};
use connect_email_operator::http::{HttpClient, HttpSettings};
use connect_email_operator::setup::{self, DeviceCodeLogin, TenantSetup};
use connect_email_sim::microsoft::{Audience, MicrosoftSim, SimOptions, routes};
use support::sim_client::{endpoints, https_client, overrides};

const TENANT: &str = "5e7a0000-1111-4222-8333-444455556666";
const ISSUER: &str = "https://oidc.cluster.example/abc";
/// The custom Exchange role setup derives from Mail Recipients for `spec()`.
const MAILBOX_ROLE: &str = "connect-email-operator-mailbox-settings";

fn spec() -> TenantSetup {
    TenantSetup {
        tenant_id: TENANT.into(),
        cloud: Cloud::AzurePublic,
        issuer: ISSUER.into(),
        namespace: "connect-email-operator".into(),
        service_account: "ceo-connect-email-operator".into(),
        unique_name: "connect-email-operator".into(),
        mailboxes: vec!["support@contoso.com".into(), "*@sales.contoso.com".into()],
        exchange: true,
        adopt: false,
        application_permissions: false,
        assigned_users_only: false,
        connect_hosts: vec!["contoso.us.webexconnect.io".into()],
        policy_read: true,
        entra_tenant: "contoso".into(),
    }
}

fn http(sim: &MicrosoftSim) -> HttpClient {
    HttpClient::new("setup", &HttpSettings { extra_ca_pem: Some(sim.ca_pem()), ..Default::default() }).unwrap()
}

fn admin(sim: &MicrosoftSim) -> (GraphClient, ExchangeClient) {
    let graph = sim.issue_admin_token(TENANT, Audience::Graph);
    let exchange = sim.issue_admin_token(TENANT, Audience::Exchange);
    setup::admin_clients(http(sim), endpoints(sim), graph.into(), Some(exchange.into()))
}

async fn sim() -> MicrosoftSim {
    let sim = MicrosoftSim::start(SimOptions::default().tenant(TENANT)).await.unwrap();
    sim.exchange().add_mailbox(TENANT, "support@contoso.com");
    sim
}

/// The cmdlets of Mail Recipients (in the simulator) that the operator does not run: what setup
/// removes from the role it derives.
fn mail_recipients_extras(sim: &MicrosoftSim) -> Vec<String> {
    let parent = sim.exchange().management_role(TENANT, permissions::MAILBOX_SETTINGS_PARENT).unwrap();
    let listed = |cmdlet: &str| permissions::cmdlets_of(OperatorRole::MailboxSettings).any(|c| c.cmdlet == cmdlet);
    parent.entries.into_iter().map(|e| e.cmdlet).filter(|c| !listed(c)).collect()
}

/// A role's entries as (cmdlet, sorted parameters), sorted.
fn entries_of(sim: &MicrosoftSim, role: &str) -> Vec<(String, Vec<String>)> {
    let role = sim.exchange().management_role(TENANT, role).unwrap_or_else(|| panic!("no role {role}"));
    let mut entries: Vec<(String, Vec<String>)> = role
        .entries
        .into_iter()
        .map(|e| {
            let mut parameters = e.parameters;
            parameters.sort();
            (e.cmdlet, parameters)
        })
        .collect();
    entries.sort();
    entries
}

/// The one list's cmdlets for `role`, in the form of [`entries_of`].
fn listed(role: OperatorRole) -> Vec<(String, Vec<String>)> {
    let mut entries: Vec<(String, Vec<String>)> = permissions::cmdlets_of(role)
        .map(|c| {
            let mut parameters: Vec<String> = c.parameters.iter().map(|p| p.to_string()).collect();
            parameters.sort();
            (c.cmdlet.to_string(), parameters)
        })
        .collect();
    entries.sort();
    entries
}

/// Requests that changed something: Graph writes and the Exchange cmdlets that are not Get-*.
fn writes(sim: &MicrosoftSim) -> Vec<String> {
    sim.calls()
        .into_iter()
        .filter(|c| c.route != routes::TOKEN)
        .filter(|c| match &c.cmdlet {
            Some(cmdlet) => !cmdlet.starts_with("Get-"),
            None => c.method != "GET",
        })
        .map(|c| c.cmdlet.unwrap_or(c.route))
        .collect()
}

#[tokio::test]
async fn setup_creates_exactly_the_documented_objects_and_a_second_run_changes_nothing() {
    let sim = sim().await;
    let (graph, exchange) = admin(&sim);
    let report = setup::run(&spec(), &graph, Some(&exchange), false).await.unwrap();
    let app_id = report.app_id.clone().expect("the application exists");

    let apps = sim.applications(TENANT);
    assert_eq!(apps.len(), 1);
    let app = &apps[0];
    assert_eq!(app.unique_name.as_deref(), Some("connect-email-operator"));
    assert_eq!(app.app_id, app_id);
    assert_eq!(app.sign_in_audience, "AzureADMyOrg");
    let fic = &app.federated_credentials;
    assert_eq!(fic.len(), 1);
    assert_eq!(fic[0].issuer, ISSUER);
    assert_eq!(fic[0].subject, "system:serviceaccount:connect-email-operator:ceo-connect-email-operator");
    assert_eq!(fic[0].audiences, ["api://AzureADTokenExchange"]);

    let sps = sim.service_principals(TENANT);
    let sp = sps.iter().find(|s| s.app_id == app_id).expect("service principal");
    let role_name = |resource: &str, role: &str| {
        let resource = sps.iter().find(|s| s.id == resource).unwrap();
        let value = resource.app_roles.iter().find(|r| r.id == role).unwrap().value.clone();
        format!("{}:{value}", resource.display_name)
    };
    let mut granted: Vec<String> = sim
        .app_role_assignments(TENANT)
        .iter()
        .filter(|a| a.principal_id == sp.id)
        .map(|a| role_name(&a.resource_id, &a.app_role_id))
        .collect();
    granted.sort();
    assert_eq!(
        granted,
        [
            "Microsoft Graph:Application.Read.All",
            "Microsoft Graph:Application.ReadWrite.OwnedBy",
            "Microsoft Graph:DelegatedPermissionGrant.ReadWrite.All",
            "Microsoft Graph:Policy.Read.All",
            "Office 365 Exchange Online:Exchange.ManageAsApp",
        ]
    );
    assert!(sim.oauth2_permission_grants(TENANT).is_empty(), "no delegated grant is made");

    let ex = sim.exchange();
    let ex_sps = ex.service_principals(TENANT);
    assert_eq!(ex_sps.len(), 1);
    assert_eq!((ex_sps[0].app_id.as_str(), ex_sps[0].object_id.as_str()), (app_id.as_str(), sp.id.as_str()));
    let scopes = ex.management_scopes(TENANT);
    assert_eq!(scopes.len(), 1);
    assert_eq!(
        scopes[0].recipient_filter,
        "(PrimarySmtpAddress -eq 'support@contoso.com') -or (PrimarySmtpAddress -like '*@sales.contoso.com')"
    );
    // Admin roles reach an application through role groups (RBAC for Applications takes
    // application roles only): the role derived from Mail Recipients limited to the allowed
    // mailboxes, and read-only configuration.
    assert!(ex.role_assignments(TENANT).is_empty(), "no direct role assignment to the application");
    type Group = (String, Vec<String>, Option<String>, Vec<String>);
    let mut groups: Vec<Group> = ex
        .role_groups(TENANT)
        .into_iter()
        .map(|g| (g.name, g.roles, g.custom_recipient_write_scope, g.members))
        .collect();
    groups.sort();
    let member = vec![ex_sps[0].service_id.clone()];
    assert_eq!(
        groups,
        [
            (
                "connect-email-operator-configuration-reader".to_string(),
                vec!["View-Only Configuration".to_string()],
                None,
                member.clone()
            ),
            (
                "connect-email-operator-recipients".to_string(),
                vec![MAILBOX_ROLE.to_string()],
                Some("connect-email-operator-mailboxes".to_string()),
                member
            ),
        ]
    );
    let roles = ex.management_roles(TENANT);
    assert_eq!(roles.len(), 1);
    assert_eq!((roles[0].name.as_str(), roles[0].parent.as_deref()), (MAILBOX_ROLE, Some("Mail Recipients")));
    assert_eq!(entries_of(&sim, MAILBOX_ROLE), listed(OperatorRole::MailboxSettings));

    // The write calls, in order: nothing more than the documented objects.
    let mut expected =
        vec![routes::UPSERT_APPLICATION, routes::UPSERT_SERVICE_PRINCIPAL, routes::CREATE_FEDERATED_CREDENTIAL];
    expected.extend([routes::CREATE_APP_ROLE_ASSIGNED_TO; 5]);
    expected.extend(["New-ServicePrincipal", "New-ManagementScope", "New-ManagementRole"]);
    let extras = mail_recipients_extras(&sim);
    assert!(extras.iter().any(|c| c == "Add-MailboxPermission"), "{extras:?}");
    expected.extend(extras.iter().map(|_| "Remove-ManagementRoleEntry"));
    expected.extend(["Set-ManagementRoleEntry"; 4]);
    expected.extend(["New-RoleGroup", "Add-RoleGroupMember", "New-RoleGroup", "Add-RoleGroupMember"]);
    assert_eq!(writes(&sim), expected);
    let removed: Vec<String> = sim
        .exchange()
        .received_parameters(TENANT, "Remove-ManagementRoleEntry")
        .iter()
        .map(|p| p["Identity"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(removed, extras.iter().map(|c| format!("{MAILBOX_ROLE}\\{c}")).collect::<Vec<_>>());
    assert_eq!(report.changes().count(), 20, "{}", report.render(false));

    // A second run finds everything and writes nothing.
    sim.reset_calls();
    let again = setup::run(&spec(), &graph, Some(&exchange), false).await.unwrap();
    assert_eq!(writes(&sim), Vec::<String>::new());
    assert_eq!(again.changes().count(), 0, "{}", again.render(false));
    assert!(again.render(false).ends_with("nothing to change\n"));
    assert_eq!(again.app_id.as_deref(), Some(app_id.as_str()));

    let values = setup::helm_values(&spec(), &app_id);
    assert!(values.contains(&format!("clientId: {app_id}")), "{values}");
    assert!(values.contains("name: ceo-connect-email-operator"), "{values}");
    let manifest = setup::entra_tenant_manifest(&spec());
    let parsed: connect_email_operator::api::EntraTenant = serde_yaml::from_str(&manifest).unwrap();
    assert_eq!(parsed.spec.tenant_id, TENANT);
    assert_eq!(parsed.spec.mailboxes, spec().mailboxes);
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_prints_every_command() {
    let sim = sim().await;
    let (graph, exchange) = admin(&sim);
    let report = setup::run(&spec(), &graph, Some(&exchange), true).await.unwrap();
    assert_eq!(writes(&sim), Vec::<String>::new());
    assert!(sim.applications(TENANT).is_empty());
    assert!(sim.app_role_assignments(TENANT).is_empty());
    assert!(sim.exchange().service_principals(TENANT).is_empty());
    assert!(sim.exchange().management_scopes(TENANT).is_empty());
    assert!(sim.exchange().management_roles(TENANT).is_empty());
    assert_eq!(report.changes().count(), 20);
    let text = report.render(true);
    for expected in [
        "az rest --method PATCH --url 'https://graph.microsoft.com/v1.0/applications(uniqueName='\\''connect-email-operator'\\'')' --headers Prefer=create-if-missing",
        "az ad sp create --id <appId>",
        "az ad app federated-credential create --id <appId>",
        "\"subject\":\"system:serviceaccount:connect-email-operator:ceo-connect-email-operator\"",
        "/servicePrincipals/",
        "New-ServicePrincipal -AppId <appId> -ObjectId <servicePrincipalId>",
        "New-ManagementScope -Name \"connect-email-operator-mailboxes\" -RecipientRestrictionFilter",
        "New-ManagementRole -Name \"connect-email-operator-mailbox-settings\" -Parent \"Mail Recipients\"",
        "Remove-ManagementRoleEntry -Identity \"connect-email-operator-mailbox-settings\\Add-MailboxPermission\" -Confirm:$false",
        "Remove-ManagementRoleEntry -Identity \"connect-email-operator-mailbox-settings\\Add-RecipientPermission\" -Confirm:$false",
        "Set-ManagementRoleEntry -Identity \"connect-email-operator-mailbox-settings\\Set-Mailbox\" -Parameters Identity,ForwardingAddress,ForwardingSmtpAddress,DeliverToMailboxAndForward",
        "Set-ManagementRoleEntry -Identity \"connect-email-operator-mailbox-settings\\Get-Mailbox\" -Parameters Identity",
        "New-RoleGroup -Name \"connect-email-operator-recipients\" -Roles \"connect-email-operator-mailbox-settings\" -CustomRecipientWriteScope \"connect-email-operator-mailboxes\"",
        "Add-RoleGroupMember -Identity \"connect-email-operator-recipients\" -Member <servicePrincipalId>",
        "New-RoleGroup -Name \"connect-email-operator-configuration-reader\" -Roles \"View-Only Configuration\"",
        "20 change(s) would be made (dry run: none made)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("-Roles \"Mail Recipients\""), "{text}");

    // After a real run, a dry run reports nothing to do.
    setup::run(&spec(), &graph, Some(&exchange), false).await.unwrap();
    sim.reset_calls();
    let report = setup::run(&spec(), &graph, Some(&exchange), true).await.unwrap();
    assert_eq!(report.changes().count(), 0);
    assert_eq!(writes(&sim), Vec::<String>::new());
}

fn service_account_token(issuer: &str, subject: &str) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = jiff::Timestamp::now().as_second();
    let claims = serde_json::json!({
        "iss": issuer, "sub": subject, "aud": ["api://AzureADTokenExchange"], "exp": now + 3600, "nbf": now - 10,
    });
    format!("{}.{}.sig", engine.encode(br#"{"alg":"RS256"}"#), engine.encode(claims.to_string()))
}

/// Graph and Exchange clients acting as the operator: the federated credential setup made, with a
/// service account token of `subject` written to a file under `name`.
fn operator_clients(sim: &MicrosoftSim, app_id: &str, name: &str, subject: &str) -> (GraphClient, ExchangeClient) {
    let dir = std::env::temp_dir().join(format!("ceo-setup-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, service_account_token(ISSUER, subject)).unwrap();
    let credential = OperatorCredential::Federated { client_id: app_id.to_string(), token_file };
    let tokens = Arc::new(TokenProvider::new(TokenClient::new(http(sim), endpoints(sim)), credential));
    (
        GraphClient::new(http(sim), endpoints(sim), tokens.clone()),
        ExchangeClient::new(http(sim), endpoints(sim), tokens),
    )
}

#[tokio::test]
async fn the_exchange_role_holds_exactly_the_operators_cmdlets_and_exchange_refuses_the_rest() {
    const MAILBOX: &str = "support@contoso.com";
    const FORWARD_TO: &str = "5f3a9c0b@mail-us.imiconnect.io";
    let sim = sim().await;
    sim.exchange().add_mailbox(TENANT, "delegate@contoso.com");
    let (graph, admin_exchange) = admin(&sim);
    let app_id = setup::run(&spec(), &graph, Some(&admin_exchange), false).await.unwrap().app_id.unwrap();

    // The derived role holds exactly the one list's mailbox cmdlets and parameters; the
    // organization-wide reads come from View-Only Configuration, which holds every one of them.
    assert_eq!(entries_of(&sim, MAILBOX_ROLE), listed(OperatorRole::MailboxSettings));
    let reader = sim.exchange().management_role(TENANT, permissions::CONFIGURATION_READER_ROLE).unwrap();
    for listed in permissions::cmdlets_of(OperatorRole::ConfigurationReader) {
        let entry =
            reader.entry(listed.cmdlet).unwrap_or_else(|| panic!("View-Only Configuration lacks {}", listed.cmdlet));
        assert!(listed.parameters.iter().all(|p| entry.has_parameter(p)), "{entry:?}");
    }
    let mut held = sim.exchange().roles_of_app(TENANT, &app_id);
    held.sort();
    assert_eq!(held, ["View-Only Configuration", MAILBOX_ROLE], "no other role, Mail Recipients above all");

    // Everything the operator runs works as the operator.
    let (_, exchange) = operator_clients(&sim, &app_id, "role", &spec().subject());
    exchange.set_forwarding(TENANT, MAILBOX, Some(FORWARD_TO), true).await.unwrap();
    let forwarding = exchange.forwarding(TENANT, MAILBOX).await.unwrap();
    assert_eq!(forwarding.smtp_address.as_deref(), Some(FORWARD_TO));
    exchange.set_smtp_auth_disabled(TENANT, MAILBOX, Some(false)).await.unwrap();
    assert!(exchange.smtp_auth(TENANT, MAILBOX).await.unwrap().effective_enabled());
    exchange.outbound_forwarding(TENANT, MAILBOX).await.unwrap();
    let rows = exchange.run(TENANT, &wire::get_mailbox(MAILBOX)).await.unwrap();
    let user = sim.exchange().mailbox(TENANT, MAILBOX).unwrap().external_directory_object_id;
    assert_eq!(rows[0]["ExternalDirectoryObjectId"], user.as_str(), "Get-Mailbox reads the mailbox user's object ID");
    exchange.set_smtp_auth_disabled(TENANT, MAILBOX, None).await.unwrap();
    exchange.set_forwarding(TENANT, MAILBOX, None, false).await.unwrap();
    for listed in OPERATOR_CMDLETS {
        assert!(
            !sim.exchange().received_parameters(TENANT, listed.cmdlet).is_empty(),
            "{} was not exercised",
            listed.cmdlet
        );
    }

    // Cmdlets of Mail Recipients outside the list are refused like a missing role.
    for (cmdlet, parameters) in [
        (
            "Add-MailboxPermission",
            serde_json::json!({"Identity": MAILBOX, "User": "delegate", "AccessRights": "FullAccess"}),
        ),
        (
            "Add-RecipientPermission",
            serde_json::json!({"Identity": MAILBOX, "Trustee": "delegate", "AccessRights": "SendAs"}),
        ),
        ("Get-Recipient", serde_json::json!({"Identity": MAILBOX})),
    ] {
        let error = exchange.run(TENANT, &Command::new(cmdlet, parameters)).await.unwrap_err();
        match &error {
            ExchangeError::AccessDenied { status: 401, detail, .. } => {
                assert!(detail.contains(&format!("User is not allowed to call {cmdlet}")), "{detail}")
            }
            other => panic!("{cmdlet}: {other:?}"),
        }
    }
    // A parameter of Mail Recipients' Set-Mailbox outside the list is refused; the administrator
    // (not limited by role entries here) may use it, so the refusal is the operator's role.
    let grant = serde_json::json!({"Identity": MAILBOX, "GrantSendOnBehalfTo": "delegate@contoso.com"});
    let error = exchange.run(TENANT, &Command::new("Set-Mailbox", grant.clone())).await.unwrap_err();
    match &error {
        ExchangeError::Command { status: 400, message, .. } => assert_eq!(
            message, "A parameter cannot be found that matches parameter name 'GrantSendOnBehalfTo'.",
            "{error}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(sim.exchange().mailbox(TENANT, MAILBOX).unwrap().grant_send_on_behalf_to.is_empty());
    admin_exchange.run(TENANT, &Command::new("Set-Mailbox", grant)).await.unwrap();
    assert_eq!(sim.exchange().mailbox(TENANT, MAILBOX).unwrap().grant_send_on_behalf_to, ["delegate"]);

    // Drift (an entry added back, a parameter widened, an entry removed) is converged by the
    // next run, and then nothing is left to change.
    for (cmdlet, parameters) in [
        ("Add-ManagementRoleEntry", serde_json::json!({"Identity": format!("{MAILBOX_ROLE}\\Add-MailboxPermission")})),
        (
            "Set-ManagementRoleEntry",
            serde_json::json!({"Identity": format!("{MAILBOX_ROLE}\\Set-Mailbox"), "Parameters": ["GrantSendOnBehalfTo"], "AddParameter": true}),
        ),
        (
            "Remove-ManagementRoleEntry",
            serde_json::json!({"Identity": format!("{MAILBOX_ROLE}\\Get-CASMailbox"), "Confirm": false}),
        ),
    ] {
        admin_exchange.run(TENANT, &Command::new(cmdlet, parameters)).await.unwrap();
    }
    assert_ne!(entries_of(&sim, MAILBOX_ROLE), listed(OperatorRole::MailboxSettings));
    let report = setup::run(&spec(), &graph, Some(&admin_exchange), false).await.unwrap();
    let text = report.render(false);
    assert_eq!(report.changes().count(), 3, "{text}");
    assert!(
        text.contains(
            "Remove-ManagementRoleEntry -Identity \"connect-email-operator-mailbox-settings\\Add-MailboxPermission\""
        ),
        "{text}"
    );
    assert!(text.contains("Add-ManagementRoleEntry -Identity \"connect-email-operator-mailbox-settings\\Get-CASMailbox\" -Parameters Identity"), "{text}");
    assert_eq!(entries_of(&sim, MAILBOX_ROLE), listed(OperatorRole::MailboxSettings));
    assert_eq!(setup::run(&spec(), &graph, Some(&admin_exchange), false).await.unwrap().changes().count(), 0);
    exchange.smtp_auth(TENANT, MAILBOX).await.expect("Get-CASMailbox is back");
}

#[tokio::test]
async fn a_role_group_an_earlier_setup_gave_mail_recipients_is_reported_with_the_fix() {
    let sim = sim().await;
    let (graph, exchange) = admin(&sim);
    let scope = serde_json::json!({"Name": "connect-email-operator-mailboxes", "RecipientRestrictionFilter": spec().recipient_filter()});
    exchange.run(TENANT, &Command::new("New-ManagementScope", scope)).await.unwrap();
    let group = serde_json::json!({
        "Name": "connect-email-operator-recipients",
        "Roles": ["Mail Recipients"],
        "CustomRecipientWriteScope": "connect-email-operator-mailboxes",
    });
    exchange.run(TENANT, &Command::new("New-RoleGroup", group)).await.unwrap();
    let report = setup::run(&spec(), &graph, Some(&exchange), false).await.unwrap();
    let warning = report
        .warnings
        .iter()
        .find(|w| w.contains("still gives the operator all of Mail Recipients"))
        .unwrap_or_else(|| panic!("{:?}", report.warnings));
    assert!(
        warning.contains("New-ManagementRoleAssignment -SecurityGroup \"connect-email-operator-recipients\" -Role \"connect-email-operator-mailbox-settings\" -CustomRecipientWriteScope \"connect-email-operator-mailboxes\""),
        "{warning}"
    );
    // The role is derived anyway, ready to be assigned.
    assert_eq!(entries_of(&sim, MAILBOX_ROLE), listed(OperatorRole::MailboxSettings));
}

#[tokio::test]
async fn the_operator_authenticates_with_the_federated_credential_setup_created() {
    let sim = sim().await;
    let (graph, exchange) = admin(&sim);
    let app_id = setup::run(&spec(), &graph, Some(&exchange), false).await.unwrap().app_id.unwrap();

    let dir = std::env::temp_dir().join(format!("ceo-setup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    let operator = |subject: &str| {
        std::fs::write(&token_file, service_account_token(ISSUER, subject)).unwrap();
        let credential = OperatorCredential::Federated { client_id: app_id.clone(), token_file: token_file.clone() };
        let tokens = Arc::new(TokenProvider::new(TokenClient::new(http(&sim), endpoints(&sim)), credential));
        (
            GraphClient::new(http(&sim), endpoints(&sim), tokens.clone()),
            ExchangeClient::new(http(&sim), endpoints(&sim), tokens),
        )
    };

    let (graph, exchange) = operator(&spec().subject());
    let app = graph.app_by_app_id(TENANT, &app_id).await.unwrap().expect("the operator reads Graph");
    assert_eq!(app.unique_name.as_deref(), Some("connect-email-operator"));
    let forwarding = exchange.forwarding(TENANT, "support@contoso.com").await.unwrap();
    assert_eq!(forwarding.smtp_address, None);

    // Another service account's token is refused (AADSTS70021).
    let (graph, _) = operator("system:serviceaccount:other:sa");
    let error = graph.app_by_app_id(TENANT, &app_id).await.unwrap_err();
    assert!(error.to_string().contains("70021"), "{error}");
}

#[tokio::test]
async fn device_code_sign_in_polls_until_approved_and_redeems_a_refresh_token_for_exchange() {
    let options = SimOptions { device_code_interval_seconds: 1, ..SimOptions::default().tenant(TENANT) };
    let sim = Arc::new(MicrosoftSim::start(options).await.unwrap());
    let login = DeviceCodeLogin {
        http: http(&sim),
        endpoints: endpoints(&sim),
        tenant: TENANT.into(),
        client_id: setup::AZURE_CLI_CLIENT_ID.into(),
    };
    let approver = tokio::spawn({
        let sim = sim.clone();
        async move {
            // The person signs in after the client has polled a few times.
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let codes = sim.pending_device_codes();
            assert_eq!(codes.len(), 1);
            assert!(sim.approve_device_code(&codes[0], true));
        }
    });
    let prompts = std::sync::Mutex::new(Vec::new());
    let graph = login
        .sign_in("https://graph.microsoft.com/.default", |m| prompts.lock().unwrap().push(m.to_string()))
        .await
        .unwrap();
    approver.await.unwrap();
    assert!(prompts.lock().unwrap()[0].contains("https://microsoft.com/devicelogin"));
    use secrecy::ExposeSecret;
    assert!(sim.validate_token(graph.access_token.expose_secret(), Audience::Graph).is_some());
    let refresh = graph.refresh_token.expect("offline_access gives a refresh token");
    let exchange = login.refresh(&refresh, "https://outlook.office365.com/.default").await.unwrap();
    assert!(sim.validate_token(exchange.access_token.expose_secret(), Audience::Exchange).is_some());
    assert!(sim.count(routes::TOKEN) >= 3, "the client polled while the sign-in was pending");
    assert_eq!(sim.count(routes::DEVICE_CODE), 1);
}

/// The token endpoint's answers while polling, raw.
#[tokio::test]
async fn device_code_polling_errors() {
    let sim = MicrosoftSim::start(SimOptions::default().tenant(TENANT)).await.unwrap();
    let client = https_client(&sim.ca_pem());
    let start = || async {
        let url = format!("{}/{TENANT}/oauth2/v2.0/devicecode", sim.url());
        let form = [("client_id", setup::AZURE_CLI_CLIENT_ID), ("scope", "https://graph.microsoft.com/.default")];
        let body: serde_json::Value = client.post(url).form(&form).send().await.unwrap().json().await.unwrap();
        assert_eq!(body["expires_in"], 900);
        assert_eq!(body["interval"], 5);
        (body["device_code"].as_str().unwrap().to_string(), body["user_code"].as_str().unwrap().to_string())
    };
    let poll = |code: String| {
        let client = client.clone();
        let url = format!("{}/{TENANT}/oauth2/v2.0/token", sim.url());
        async move {
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", setup::AZURE_CLI_CLIENT_ID),
                ("device_code", code.as_str()),
            ];
            let response = client.post(url).form(&form).send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (status, body["error"].as_str().unwrap_or("").to_string())
        }
    };
    let (code, user_code) = start().await;
    assert_eq!(poll(code.clone()).await, (400, "authorization_pending".into()));
    assert_eq!(poll(code.clone()).await, (400, "slow_down".into()), "polled sooner than the interval");
    sim.advance_clock(Duration::from_secs(11));
    sim.approve_device_code(&user_code, true);
    assert_eq!(poll(code.clone()).await.0, 200);
    assert_eq!(poll(code).await, (400, "invalid_grant".into()), "a device code is used once");
    assert_eq!(poll("unknown".into()).await, (400, "bad_verification_code".into()));

    let (declined, user_code) = start().await;
    sim.approve_device_code(&user_code, false);
    assert_eq!(poll(declined).await, (400, "authorization_declined".into()));

    let (expired, _) = start().await;
    sim.advance_clock(Duration::from_secs(901));
    assert_eq!(poll(expired).await, (400, "expired_token".into()));
}

#[tokio::test]
async fn doctor_reports_the_permissions_setup_granted_against_what_the_entratenant_needs() {
    use connect_email_operator::clients::{MicrosoftClients, MicrosoftConfig};
    use connect_email_operator::doctor::{self, Outcome};
    use kube::api::{Api, DeleteParams, Patch, PatchParams};
    let sim = sim().await;
    let (graph, exchange) = admin(&sim);
    let app_id = setup::run(&spec(), &graph, Some(&exchange), false).await.unwrap().app_id.unwrap();
    let dir = std::env::temp_dir().join(format!("ceo-setup-doctor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, service_account_token(ISSUER, &spec().subject())).unwrap();
    let config = MicrosoftConfig { overrides: overrides(&sim), extra_ca_pem: Some(sim.ca_pem()), ..Default::default() };
    let credential = OperatorCredential::Federated { client_id: app_id.clone(), token_file };
    let clients = MicrosoftClients::new(config, Ok(credential), "connect-email-operator").unwrap();

    // The EntraTenant setup printed, in the cluster.
    let client = support::client().await;
    support::install_crds(&client).await;
    let name = format!("setup-doctor-{}", std::process::id());
    let tenants: Api<connect_email_operator::api::EntraTenant> = Api::all(client.clone());
    let apply = |spec: serde_json::Value| {
        let object = serde_json::json!({"apiVersion": "connectemail.dev/v1alpha1", "kind": "EntraTenant", "metadata": {"name": name}, "spec": spec});
        let tenants = tenants.clone();
        let name = name.clone();
        async move {
            tenants
                .patch(&name, &PatchParams::apply(support::FIELD_MANAGER).force(), &Patch::Apply(&object))
                .await
                .unwrap();
        }
    };
    apply(setup::entra_tenant_spec(&spec())).await;
    let outcome = |checks: &[doctor::Check], permission: &str| {
        let name = format!("operator permission {permission}");
        checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name}")).outcome
    };
    let checks = doctor::diagnose_tenant(client.clone(), &clients, &name).await.unwrap();
    let table = doctor::render(&checks);
    assert!(!doctor::failed(&checks), "{table}");
    assert!(table.contains(&app_id), "{table}");
    for held in [
        "Application.ReadWrite.OwnedBy",
        "Application.Read.All",
        "DelegatedPermissionGrant.ReadWrite.All",
        "Policy.Read.All",
        "Exchange.ManageAsApp",
    ] {
        assert_eq!(outcome(&checks, held), Outcome::Pass, "{held}:\n{table}");
    }
    assert!(checks.iter().all(|c| c.outcome != Outcome::Warn), "nothing more than needed:\n{table}");

    // An EntraTenant that allows an application permission needs AppRoleAssignment.ReadWrite.All,
    // which setup grants only with --application-permissions.
    let mut wider = setup::entra_tenant_spec(&spec());
    wider["permissions"] = serde_json::json!({"allowed": [
        {"resourceAppId": "00000003-0000-0000-c000-000000000000", "delegated": ["offline_access"], "application": ["Mail.Send"]},
        {"resourceAppId": "00000002-0000-0ff1-ce00-000000000000", "delegated": ["SMTP.Send"]},
    ]});
    apply(wider).await;
    let checks = doctor::diagnose_tenant(client.clone(), &clients, &name).await.unwrap();
    assert_eq!(outcome(&checks, "AppRoleAssignment.ReadWrite.All"), Outcome::Fail, "{}", doctor::render(&checks));
    assert!(doctor::failed(&checks));

    // Setup with --application-permissions adds it; doctor passes again.
    let wider_setup = TenantSetup { application_permissions: true, ..spec() };
    setup::run(&wider_setup, &graph, Some(&exchange), false).await.unwrap();
    let checks = doctor::diagnose_tenant(client.clone(), &clients, &name).await.unwrap();
    assert_eq!(outcome(&checks, "AppRoleAssignment.ReadWrite.All"), Outcome::Pass, "{}", doctor::render(&checks));

    // Back to the narrow EntraTenant: now it is more than needed.
    apply(setup::entra_tenant_spec(&spec())).await;
    let checks = doctor::diagnose_tenant(client.clone(), &clients, &name).await.unwrap();
    assert_eq!(outcome(&checks, "AppRoleAssignment.ReadWrite.All"), Outcome::Warn, "{}", doctor::render(&checks));
    let _ = tenants.delete(&name, &DeleteParams::default()).await;
}
