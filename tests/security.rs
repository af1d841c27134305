//! The trust boundary, played by an attacker who may create AzureAppRegistrations, EmailChannels
//! and Secrets in an ordinary namespace. Each attack runs against the real apiserver with the
//! operator in-process and the Microsoft simulator as the tenant, and is checked on the
//! simulator's state and call log (what reached the tenant), not only on the conditions.
//!
//! Variations covered: a tenant object that exists but selects other namespaces (the same tenant
//! through a second EntraTenant), a missing tenant object, API names with changed case or extra
//! spaces, a GUID in upper case, application permissions on Graph and Exchange, a mailbox with a
//! trailing dot, a `+tag` or outside the allowed domains, a forwarding destination outside
//! Connect's domains or a look-alike of them, adoption of another resource's application and of
//! an application that did not opt in, a Secret the operator did not create, a fake
//! "Microsoft Graph" application, and a mailbox forwarding someone else set.

mod support;

use std::time::Duration;

use connect_email_operator::api::conditions::{app_registration as app_cond, email_channel as ch_cond, reason};
use connect_email_operator::api::{AzureAppRegistration, EmailChannel, EntraTenant};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::operator::{Harness, TENANT, TENANT_REF};
use support::resources::{
    HasConditions, apply_channel, apply_registration, channel_reason, mailboxes, registration_reason,
};
use support::*;

const GRAPH: &str = "00000003-0000-0000-c000-000000000000";
const EXCHANGE: &str = "00000002-0000-0ff1-ce00-000000000000";
const CONNECT_ADDRESS: &str = "0123456789abcdef0123456789abcdef@mail-us.imiconnect.io";

/// A cluster-scoped EntraTenant for one test (deleted by [`drop_tenant`]).
async fn apply_tenant(h: &Harness, name: &str, spec: Value) {
    let mut spec = spec;
    spec["tenantId"] = json!(TENANT);
    // The tests' Connect organisation, unless the test says otherwise.
    if spec.get("connect").is_none() {
        spec["connect"] = json!({"tenantHosts": ["acme.us.webexconnect.io"]});
    }
    let object = json!({"apiVersion": "connectemail.dev/v1alpha1", "kind": "EntraTenant", "metadata": {"name": name}, "spec": spec});
    Api::<EntraTenant>::all(h.client.clone())
        .patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&object))
        .await
        .expect("apply EntraTenant");
}

async fn drop_tenant(h: &Harness, name: &str) {
    let _ = Api::<EntraTenant>::all(h.client.clone()).delete(name, &DeleteParams::default()).await;
}

/// Admits exactly the test's namespace.
fn only(ns: &str) -> Value {
    json!({"matchLabels": {"kubernetes.io/metadata.name": ns}})
}

fn registration(name: &str, tenant: &str, extra: Value) -> Value {
    let mut spec = json!({
        "tenantRef": {"name": tenant}, "displayName": name,
        "redirectUris": ["https://acme.us.webexconnect.io/callback"],
        "clientSecret": {"secretName": format!("{name}-credentials")},
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    json!({"apiVersion": "connectemail.dev/v1alpha1", "kind": "AzureAppRegistration", "metadata": {"name": name}, "spec": spec})
}

fn channel(name: &str, tenant: &str, mailbox: &str, forward_to: &str) -> Value {
    json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel", "metadata": {"name": name},
        "spec": {
            "mailbox": mailbox,
            "azure": {"tenantRef": {"name": tenant}},
            "connect": {"mode": "Manual", "region": "us", "tenantHost": "acme.us.webexconnect.io",
                        "assetName": "Email", "forwardingAddress": forward_to},
        }
    })
}

/// Lets the operator reconcile a few more times (the test resync is 2 s), then checks that
/// nothing at all reached Microsoft or Webex.
async fn assert_no_external_call(h: &Harness, what: &str) {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let microsoft: Vec<String> = h.sim.calls().iter().map(|c| c.route.clone()).collect();
    assert!(microsoft.is_empty(), "{what}: the operator called Microsoft: {microsoft:?}");
    assert!(h.connect.calls().is_empty(), "{what}: the operator called Webex Connect");
}

fn tenant_untouched(h: &Harness) {
    assert!(h.sim.applications(TENANT).is_empty(), "an application was created");
    assert!(h.sim.app_role_assignments(TENANT).is_empty(), "an app role was assigned");
    assert!(h.sim.oauth2_permission_grants(TENANT).is_empty(), "a delegated grant was made");
}

#[tokio::test]
async fn a_namespace_no_tenant_object_admits_causes_no_external_call() {
    let h = Harness::start("sec-namespace").await;
    let other = format!("{}-other", h.ns.name);
    // The same tenant is offered to another namespace only, with generous limits.
    apply_tenant(
        &h,
        &other,
        json!({"namespaceSelector": {"matchLabels": {"team": "billing"}}, "mailboxes": ["*@contoso.com"],
               "adoption": {"allowed": true}}),
    )
    .await;
    h.sim.reset_calls();
    apply_registration(&h, &registration("borrowed", &other, json!({}))).await;
    let message = registration_reason(&h, "borrowed", app_cond::ADMITTED, "False", reason::NOT_ADMITTED).await;
    assert!(message.contains(&format!("EntraTenant {other} does not admit namespace {}", h.ns.name)), "{message}");
    assert!(message.contains("spec.namespaceSelector"), "{message}");
    registration_reason(&h, "borrowed", app_cond::READY, "False", reason::NOT_ADMITTED).await;

    // A tenant object that does not exist.
    apply_registration(&h, &registration("missing", "no-such-tenant", json!({}))).await;
    let message = registration_reason(&h, "missing", app_cond::ADMITTED, "False", reason::NOT_ADMITTED).await;
    assert!(message.contains("EntraTenant no-such-tenant does not exist"), "{message}");

    // A channel through the foreign tenant object.
    apply_channel(&h, &channel("borrowed-channel", &other, "support@contoso.com", CONNECT_ADDRESS)).await;
    channel_reason(&h, "borrowed-channel", ch_cond::ADMITTED, "False", reason::NOT_ADMITTED).await;
    assert!(
        Api::<AzureAppRegistration>::namespaced(h.client.clone(), &h.ns.name)
            .get_opt("borrowed-channel")
            .await
            .unwrap()
            .is_none(),
        "a refused channel must not create its child registration"
    );
    assert_no_external_call(&h, "not admitted").await;
    tenant_untouched(&h);

    // The administrator admits the namespace: the change reconciles the resource at once.
    apply_tenant(&h, &other, json!({"namespaceSelector": only(&h.ns.name), "mailboxes": ["*@contoso.com"]})).await;
    registration_reason(&h, "borrowed", app_cond::READY, "True", reason::RECONCILED).await;
    drop_tenant(&h, &other).await;
    h.finish().await;
}

#[tokio::test]
async fn permissions_outside_the_allowlist_are_refused_before_anything_is_created() {
    let h = Harness::start("sec-permissions").await;
    let t = format!("{}-t", h.ns.name);
    // The default allowlist: what an EmailChannel needs, no application permission.
    apply_tenant(&h, &t, json!({"namespaceSelector": only(&h.ns.name), "mailboxes": ["*@contoso.com"]})).await;
    h.sim.reset_calls();
    let attacks = [
        ("graph-app", json!([{"resource": "Microsoft Graph", "application": ["Mail.Send", "User.Read.All"]}])),
        ("exo-app", json!([{"resource": "Office 365 Exchange Online", "application": ["Mail.Send"]}])),
        (
            "guid-upper",
            json!([{"resource": GRAPH.to_uppercase(), "application": ["RoleManagement.ReadWrite.Directory"]}]),
        ),
        (
            "delegated-extra",
            json!([{"resource": "Microsoft Graph", "delegated": ["offline_access", "Mail.ReadWrite"]}]),
        ),
        ("wrong-api", json!([{"resource": EXCHANGE, "delegated": ["offline_access"]}])),
    ];
    for (name, permissions) in &attacks {
        apply_registration(&h, &registration(name, &t, json!({"permissions": permissions}))).await;
    }
    for (name, _) in &attacks {
        let message = registration_reason(&h, name, app_cond::ADMITTED, "False", reason::NOT_ADMITTED).await;
        assert!(
            message.contains("spec.permissions.allowed") && message.contains(&format!("EntraTenant {t}")),
            "{name}: {message}"
        );
    }
    for (name, resource) in
        [("lower-name", "microsoft graph"), ("spaced-name", "Microsoft Graph "), ("own-api", "My API")]
    {
        let spec = json!({"permissions": [{"resource": resource, "delegated": ["offline_access"]}]});
        apply_registration(&h, &registration(name, &t, spec)).await;
        let message = registration_reason(&h, name, app_cond::ADMITTED, "False", reason::NOT_ADMITTED).await;
        assert!(message.contains("spec.permissions[].resource"), "{name}: {message}");
    }
    // Admin consent forbidden by the administrator.
    apply_tenant(
        &h,
        &t,
        json!({"namespaceSelector": only(&h.ns.name), "mailboxes": ["*@contoso.com"], "permissions": {"adminConsent": false}}),
    )
    .await;
    let consent = json!({"permissions": [{"resource": "Office 365 Exchange Online", "delegated": ["SMTP.Send"]}]});
    apply_registration(&h, &registration("consent", &t, consent)).await;
    let message = registration_reason(&h, "consent", app_cond::ADMITTED, "False", reason::NOT_ADMITTED).await;
    assert!(message.contains("spec.permissions.adminConsent"), "{message}");
    assert_no_external_call(&h, "permissions outside the allowlist").await;
    tenant_untouched(&h);
    drop_tenant(&h, &t).await;
    h.finish().await;
}

#[tokio::test]
async fn mailboxes_and_forwarding_destinations_outside_the_lists_are_refused() {
    let h = Harness::start("sec-mailbox").await;
    let t = format!("{}-t", h.ns.name);
    apply_tenant(&h, &t, json!({"namespaceSelector": only(&h.ns.name), "mailboxes": ["support@contoso.com"]})).await;
    for mailbox in ["support@contoso.com", "billing@contoso.com", "support+x@contoso.com"] {
        h.sim.exchange().add_mailbox(TENANT, mailbox);
    }
    h.sim.reset_calls();
    let attacks = [
        ("thief", "support@contoso.com", "thief@evil.example.com", "spec.forwarding"),
        (
            "lookalike",
            "support@contoso.com",
            "0123456789abcdef0123456789abcdef@mail-us.imiconnect.io.evil.example",
            "spec.forwarding",
        ),
        ("short-hex", "support@contoso.com", "4f1c2a9b7e@mail-us.imiconnect.io", "spec.forwarding"),
        ("other-mailbox", "billing@contoso.com", CONNECT_ADDRESS, "spec.mailboxes"),
        ("plus-tag", "support+x@contoso.com", CONNECT_ADDRESS, "spec.mailboxes"),
        ("trailing-dot", "support@contoso.com.", CONNECT_ADDRESS, "spec.mailboxes"),
    ];
    for (name, mailbox, forward_to, _) in &attacks {
        apply_channel(&h, &channel(name, &t, mailbox, forward_to)).await;
    }
    for (name, _, _, rule) in &attacks {
        let message = channel_reason(&h, name, ch_cond::ADMITTED, "False", reason::NOT_ADMITTED).await;
        assert!(message.contains(rule), "{name}: {message}");
        channel_reason(&h, name, ch_cond::READY, "False", reason::NOT_ADMITTED).await;
    }
    assert_no_external_call(&h, "mailbox and forwarding outside the lists").await;
    for mailbox in h.sim.exchange().mailboxes(TENANT) {
        assert_eq!(mailbox.forwarding_smtp_address, None, "{} was forwarded", mailbox.user_principal_name);
        assert_eq!(
            mailbox.smtp_client_authentication_disabled, None,
            "{} SMTP AUTH changed",
            mailbox.user_principal_name
        );
    }
    tenant_untouched(&h);
    drop_tenant(&h, &t).await;
    h.finish().await;
}

#[tokio::test]
async fn forwarding_someone_else_set_is_kept_unless_taken_over_and_restored_on_deletion() {
    let h = Harness::start("sec-takeover").await;
    let t = format!("{}-t", h.ns.name);
    apply_tenant(&h, &t, json!({"namespaceSelector": only(&h.ns.name), "mailboxes": ["*@contoso.com"]})).await;
    let mailbox = "support@contoso.com";
    mailboxes(&h, &[mailbox]);
    h.sim.exchange().update_mailbox(TENANT, mailbox, |m| {
        m.forwarding_smtp_address = Some("smtp:archive@contoso.com".into());
        m.deliver_to_mailbox_and_forward = false;
        m.smtp_client_authentication_disabled = None;
    });
    apply_channel(&h, &channel("support", &t, mailbox, CONNECT_ADDRESS)).await;
    let message =
        channel_reason(&h, "support", ch_cond::MAILBOX_CONFIGURED, "False", reason::MAILBOX_SETTING_IN_USE).await;
    assert!(message.contains("archive@contoso.com") && message.contains("takeOver"), "{message}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(h.sim.exchange().count_cmdlet("Set-Mailbox"), 0, "the existing forwarding was overwritten");
    let m = h.sim.exchange().mailbox(TENANT, mailbox).unwrap();
    assert_eq!(m.forwarding_smtp_address.as_deref(), Some("smtp:archive@contoso.com"));

    // The administrator allows taking over: the earlier value is recorded, then replaced.
    apply_tenant(
        &h,
        &t,
        json!({"namespaceSelector": only(&h.ns.name), "mailboxes": ["*@contoso.com"], "mailboxSettings": {"takeOver": true}}),
    )
    .await;
    channel_reason(&h, "support", ch_cond::MAILBOX_CONFIGURED, "True", reason::RECONCILED).await;
    let m = h.sim.exchange().mailbox(TENANT, mailbox).unwrap();
    assert!(m.forwarding_smtp_address.unwrap().to_lowercase().ends_with(CONNECT_ADDRESS));
    let api: Api<EmailChannel> = Api::namespaced(h.client.clone(), &h.ns.name);
    let record = api.get("support").await.unwrap().status.unwrap().mailbox.expect("earlier values recorded");
    let previous = record.previous_forwarding.expect("previous forwarding");
    assert_eq!(
        previous.smtp_address.as_deref().map(str::to_lowercase).as_deref().map(|a| a.trim_start_matches("smtp:")),
        Some("archive@contoso.com")
    );
    assert!(!previous.keep_copy);

    // Deleting the channel restores what was there.
    api.delete("support", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(60), || {
        let api = api.clone();
        async move {
            match api.get_opt("support").await.map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(_) => Err("the channel still exists".to_string()),
            }
        }
    })
    .await;
    let m = h.sim.exchange().mailbox(TENANT, mailbox).unwrap();
    assert_eq!(
        m.forwarding_smtp_address.map(|a| a.to_lowercase().trim_start_matches("smtp:").to_string()).as_deref(),
        Some("archive@contoso.com"),
        "the earlier forwarding was not restored"
    );
    assert!(!m.deliver_to_mailbox_and_forward);
    drop_tenant(&h, &t).await;
    h.finish().await;
}

#[tokio::test]
async fn an_existing_secret_is_never_merged_into_and_no_password_is_issued_for_it() {
    let h = Harness::start("sec-secret").await;
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns.name);
    let theirs: Secret = serde_json::from_value(json!({
        "metadata": {"name": "database-credentials"},
        "stringData": {"password": "their-database-password"},
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &theirs).await.unwrap();
    h.sim.reset_calls();
    let spec = json!({"clientSecret": {"secretName": "database-credentials"}});
    apply_registration(&h, &registration("grabber", TENANT_REF, spec)).await;
    let message =
        registration_reason(&h, "grabber", app_cond::CREDENTIAL_READY, "False", reason::SECRET_CONFLICT).await;
    assert!(message.contains("Secret database-credentials already exists"), "{message}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = secrets.get("database-credentials").await.unwrap();
    assert!(after.metadata.owner_references.is_none(), "the foreign Secret got an owner reference");
    let data = after.data.unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), vec!["password"], "the foreign Secret was merged into");
    assert_eq!(h.sim.count("POST /applications/{id}/addPassword"), 0, "a password was issued");
    assert!(h.sim.applications(TENANT).is_empty(), "an application was created for a refused Secret");
    h.finish().await;
}

#[tokio::test]
async fn adoption_needs_the_application_to_opt_in_and_never_takes_another_resources_application() {
    let h = Harness::start("sec-adopt").await;
    // The victim: an application this operator created for another resource.
    apply_registration(&h, &registration("victim", TENANT_REF, json!({}))).await;
    registration_reason(&h, "victim", app_cond::READY, "True", reason::RECONCILED).await;
    let victim = Api::<AzureAppRegistration>::namespaced(h.client.clone(), &h.ns.name).get("victim").await.unwrap();
    let victim_app = victim.status.unwrap().app_id.unwrap();
    let passwords_before = h.sim.applications(TENANT).iter().map(|a| a.passwords.len()).sum::<usize>();
    h.sim.reset_calls();
    let adopt = json!({"adopt": {"appId": victim_app.to_uppercase()}});
    apply_registration(&h, &registration("thief", TENANT_REF, adopt)).await;
    let message = registration_reason(&h, "thief", app_cond::READY, "False", reason::ADOPTION_REFUSED).await;
    assert!(message.contains("managed by another resource"), "{message}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(h.sim.count("POST /applications/{id}/addPassword"), 0, "a password was added to the victim's app");
    assert_eq!(h.sim.applications(TENANT).iter().map(|a| a.passwords.len()).sum::<usize>(), passwords_before);
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns.name);
    assert!(secrets.get_opt("thief-credentials").await.unwrap().is_none(), "a secret for the victim's app was written");

    // An application created in the portal, without and then with the opt-in tag.
    let (object_id, app_id) = h.sim.seed_application(TENANT, "Legacy Connect app");
    apply_registration(&h, &registration("legacy", TENANT_REF, json!({"adopt": {"appId": app_id}}))).await;
    let message = registration_reason(&h, "legacy", app_cond::READY, "False", reason::ADOPTION_REFUSED).await;
    assert!(message.contains(&format!("connectemail.dev/adopt:{}/legacy", h.ns.name)), "{message}");
    assert!(h.sim.applications(TENANT).iter().find(|a| a.id == object_id).unwrap().passwords.is_empty());
    // An owner of the application opts in (in the portal).
    h.sim.tag_application(TENANT, &object_id, &format!("connectemail.dev/adopt:{}/legacy", h.ns.name));
    registration_reason(&h, "legacy", app_cond::READY, "True", reason::RECONCILED).await;
    h.finish().await;
}

#[tokio::test]
async fn a_fake_microsoft_graph_application_cannot_redirect_consent() {
    let h = Harness::start("sec-fake-graph").await;
    // Someone in the tenant registers an application called "Microsoft Graph".
    let (_, fake_app_id) = h.sim.seed_application(TENANT, "Microsoft Graph");
    let spec = json!({"permissions": [{"resource": "Microsoft Graph", "delegated": ["offline_access"]}]});
    apply_registration(&h, &registration("consent", TENANT_REF, spec)).await;
    registration_reason(&h, "consent", app_cond::READY, "True", reason::RECONCILED).await;
    let sps = h.sim.service_principals(TENANT);
    let real = sps.iter().find(|sp| sp.app_id == GRAPH).expect("Graph's service principal");
    let fake = sps.iter().find(|sp| sp.app_id == fake_app_id).expect("the fake's service principal");
    let grants = h.sim.oauth2_permission_grants(TENANT);
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0].resource_id, real.id, "consent went to the fake Microsoft Graph");
    assert_ne!(grants[0].resource_id, fake.id);
    assert_eq!(h.sim.count("GET /servicePrincipals"), 0, "resolved by display name: {:?}", h.sim.calls());
    h.finish().await;
}

#[tokio::test]
async fn an_entratenant_change_reconciles_the_resources_naming_it_at_once() {
    // Long resyncs: only the EntraTenant watch can bring the change in time (a refused resource
    // is otherwise looked at again after a minute).
    let mut h = Harness::without_operator("sec-watch").await;
    h.settings = Some(connect_email_operator::controller::Settings {
        resync: Duration::from_secs(600),
        channel_resync: Duration::from_secs(600),
        propagation_poll: Duration::from_millis(300),
        ..Default::default()
    });
    let client = h.client.clone();
    h.start_operator(client);
    let late = format!("{}-late", h.ns.name);
    apply_registration(&h, &registration("late", &late, json!({}))).await;
    apply_channel(&h, &channel("late-channel", &late, "support@contoso.com", CONNECT_ADDRESS)).await;
    registration_reason(&h, "late", app_cond::ADMITTED, "False", reason::NOT_ADMITTED).await;
    channel_reason(&h, "late-channel", ch_cond::ADMITTED, "False", reason::NOT_ADMITTED).await;
    // Past the first reconciles, so that the next periodic look is a minute away.
    tokio::time::sleep(Duration::from_secs(2)).await;

    apply_tenant(&h, &late, json!({"namespaceSelector": only(&h.ns.name), "mailboxes": ["*@contoso.com"]})).await;
    let started = std::time::Instant::now();
    let admitted = |kind: &'static str, name: &'static str| {
        let client = h.client.clone();
        let ns = h.ns.name.clone();
        async move {
            eventually(Duration::from_secs(20), || async {
                let conditions = match kind {
                    "registration" => Api::<AzureAppRegistration>::namespaced(client.clone(), &ns)
                        .get(name)
                        .await
                        .map_err(|e| e.to_string())?
                        .conditions()
                        .to_vec(),
                    _ => Api::<EmailChannel>::namespaced(client.clone(), &ns)
                        .get(name)
                        .await
                        .map_err(|e| e.to_string())?
                        .conditions()
                        .to_vec(),
                };
                // The same condition type on both kinds.
                match conditions.iter().find(|c| c.type_ == app_cond::ADMITTED) {
                    Some(c) if c.status == "True" => Ok(()),
                    other => Err(format!("{kind} {name}: {other:?}")),
                }
            })
            .await
        }
    };
    admitted("registration", "late").await;
    admitted("channel", "late-channel").await;
    println!("admitted {} ms after the EntraTenant was created", started.elapsed().as_millis());
    drop_tenant(&h, &late).await;
    h.finish().await;
}

#[tokio::test]
async fn each_entratenant_uses_its_own_operator_credential_from_the_operators_namespace() {
    const SECOND_TENANT: &str = "22222222-3333-4444-5555-666666666666";
    const SECOND_OPERATOR: &str = "0f0f0f0f-1111-2222-3333-444444444444";
    const SECOND_SECRET: &str = "second-operator-secret~test-only";
    const THIRD_TENANT: &str = "33333333-4444-5555-6666-777777777777";
    let h = Harness::start("sec-credential").await;
    // The operator's ambient identity exists only in the first tenant; the second tenant has an
    // application of its own for the operator, whose secret the administrator keeps in the
    // operator's namespace (the test namespace plays it here).
    h.sim.add_operator_client_secret(SECOND_TENANT, SECOND_OPERATOR, SECOND_SECRET);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "second-tenant-operator"},
        "stringData": {"clientSecret": SECOND_SECRET},
    }))
    .unwrap();
    Api::<Secret>::namespaced(h.client.clone(), &h.ns.name).create(&PostParams::default(), &secret).await.unwrap();
    let second = format!("{}-second", h.ns.name);
    let third = format!("{}-third", h.ns.name);
    for (name, tenant_id, secret_name) in
        [(&second, SECOND_TENANT, "second-tenant-operator"), (&third, THIRD_TENANT, "no-such-secret")]
    {
        let object = json!({
            "apiVersion": "connectemail.dev/v1alpha1", "kind": "EntraTenant", "metadata": {"name": name},
            "spec": {
                "tenantId": tenant_id, "namespaceSelector": only(&h.ns.name), "mailboxes": ["*@contoso.com"],
                "connect": {"tenantHosts": ["acme.us.webexconnect.io"]},
                "credential": {"clientId": SECOND_OPERATOR, "source": "ClientSecret", "secretRef": {"name": secret_name}},
            }
        });
        Api::<EntraTenant>::all(h.client.clone())
            .patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&object))
            .await
            .expect("apply EntraTenant");
    }

    apply_registration(&h, &registration("second", &second, json!({}))).await;
    registration_reason(&h, "second", app_cond::READY, "True", reason::RECONCILED).await;
    assert_eq!(h.sim.applications(SECOND_TENANT).len(), 1, "the application is created in the second tenant");
    assert!(h.sim.applications(TENANT).is_empty(), "nothing is created in the ambient identity's tenant");
    // Every Graph call in the second tenant carried the second operator application's token (the
    // token endpoint's other callers are the issued secrets being verified, as their own app).
    let graph: Vec<_> = h
        .sim
        .calls()
        .into_iter()
        .filter(|c| c.tenant.as_deref() == Some(SECOND_TENANT) && !c.route.contains("/oauth2/v2.0/token"))
        .collect();
    assert!(!graph.is_empty(), "no Graph call reached the second tenant");
    for call in &graph {
        assert_eq!(
            call.client_id.as_deref(),
            Some(SECOND_OPERATOR),
            "{} {} as {:?}",
            call.method,
            call.path,
            call.client_id
        );
    }
    let operator_tokens: Vec<_> = h
        .sim
        .calls()
        .into_iter()
        .filter(|c| c.route.contains("/oauth2/v2.0/token") && c.client_id.as_deref() == Some(SECOND_OPERATOR))
        .collect();
    assert!(!operator_tokens.is_empty(), "the second operator application never asked for a token");
    assert!(operator_tokens.iter().all(|c| c.tenant.as_deref() == Some(SECOND_TENANT)));

    // A credential Secret that does not exist: a condition naming it, and no call to that tenant.
    apply_registration(&h, &registration("third", &third, json!({}))).await;
    let message = registration_reason(&h, "third", app_cond::READY, "False", reason::OPERATOR_CREDENTIAL_FAILED).await;
    assert!(message.contains("no-such-secret") && message.contains("does not exist"), "{message}");
    assert!(!message.contains(SECOND_SECRET));
    assert!(
        h.sim.calls().iter().all(|c| c.tenant.as_deref() != Some(THIRD_TENANT)),
        "a call reached the tenant whose credential is missing"
    );

    // Deletion cleans up with the same credential (deletionPolicy Delete: the application goes).
    let registrations: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    registrations.delete("second", &DeleteParams::default()).await.unwrap();
    registrations.delete("third", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(30), || async {
        match registrations.list(&Default::default()).await.map_err(|e| e.to_string())?.items.len() {
            0 => Ok(()),
            n => Err(format!("{n} registrations left")),
        }
    })
    .await;
    assert!(h.sim.applications(SECOND_TENANT).is_empty(), "the application was not deleted in the second tenant");
    drop_tenant(&h, &second).await;
    drop_tenant(&h, &third).await;
    h.finish().await;
}

/// The attack of a namespace user who wants mail-sending tokens for other employees: an
/// application that redirects sign-ins to a host the attacker owns, with tenant-wide consent.
/// Every spelling of a foreign host is refused before anything reaches Entra ID, and consent for
/// every user needs the administrator's explicit `tenantWideConsent`.
#[tokio::test]
async fn redirect_uris_outside_the_listed_connect_hosts_and_tenant_wide_consent_are_refused() {
    let h = Harness::start("sec-redirect").await;
    let strict = format!("{}-strict", h.ns.name);
    apply_tenant(&h, &strict, json!({"namespaceSelector": only(&h.ns.name), "mailboxes": ["*@contoso.com"]})).await;
    h.sim.reset_calls();
    let delegated = json!([
        {"resource": "Office 365 Exchange Online", "delegated": ["SMTP.Send"]},
        {"resource": "Microsoft Graph", "delegated": ["offline_access"]},
    ]);
    for (i, uri) in [
        "https://evil.example.com/callback",
        "https://acme.us.webexconnect.io.evil.example.com/callback",
        "https://acme.us.webexconnect.io@evil.example.com/",
        "https://acme.us.webexconnect.io@evil.example.com/callback",
        "https://acme.us.webexconnect.io:8443/callback",
        "https://acme.us.webexconnect.io/other",
        "https://acme.us.webexconnect.io/callback?next=https://evil.example.com",
        "https://evil-acme.us.webexconnect.io/callback",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("phish-{i}");
        let extra = json!({"redirectUris": [uri], "permissions": delegated, "consentFor": ["support@contoso.com"]});
        apply_registration(&h, &registration(&name, &strict, extra)).await;
        let message = registration_reason(&h, &name, app_cond::ADMITTED, "False", reason::NOT_ADMITTED).await;
        assert!(message.contains(uri), "{uri}: {message}");
    }
    // http:// never passes the schema.
    let plain =
        registration("phish-http", &strict, json!({"redirectUris": ["http://acme.us.webexconnect.io/callback"]}));
    let refused = Api::<AzureAppRegistration>::namespaced(h.client.clone(), &h.ns.name)
        .create(&PostParams::default(), &serde_json::from_value(plain).unwrap())
        .await;
    assert!(matches!(refused, Err(kube::Error::Api(ref e)) if e.code == 422), "{refused:?}");

    // The exact manifest: a helpdesk look-alike, consented for everyone.
    let everyone = json!({"displayName": "Contoso IT Helpdesk", "permissions": delegated, "adminConsent": true});
    apply_registration(&h, &registration("helpdesk", &strict, everyone.clone())).await;
    let message = registration_reason(&h, "helpdesk", app_cond::ADMITTED, "False", reason::NOT_ADMITTED).await;
    assert!(message.contains("tenantWideConsent") && message.contains("spec.consentFor"), "{message}");
    assert_no_external_call(&h, "foreign redirect URIs and tenant-wide consent").await;
    tenant_untouched(&h);
    // Upper case and a trailing dot on a listed host are the same host.
    let extra = json!({"redirectUris": ["https://ACME.us.webexconnect.io./callback"]});
    apply_registration(&h, &registration("spelled", &strict, extra)).await;
    registration_reason(&h, "spelled", app_cond::READY, "True", reason::RECONCILED).await;

    // Where the administrator allows it, tenant-wide consent is what it always was.
    apply_tenant(
        &h,
        &strict,
        json!({"namespaceSelector": only(&h.ns.name), "mailboxes": ["*@contoso.com"],
               "permissions": {"tenantWideConsent": true}}),
    )
    .await;
    registration_reason(&h, "helpdesk", app_cond::READY, "True", reason::RECONCILED).await;
    let grants = h.sim.oauth2_permission_grants(TENANT);
    assert_eq!(grants.len(), 2, "{grants:?}");
    assert!(grants.iter().all(|g| g.consent_type == "AllPrincipals"), "{grants:?}");
    drop_tenant(&h, &strict).await;
    h.finish().await;
}

/// A channel's application is consented for its mailbox's user only; a channel whose Connect
/// organisation the EntraTenant does not list is refused before anything is created.
#[tokio::test]
async fn a_channel_consents_for_its_mailboxs_user_only_and_only_with_a_listed_connect_host() {
    let h = Harness::start("sec-per-user").await;
    let strict = format!("{}-strict", h.ns.name);
    apply_tenant(&h, &strict, json!({"namespaceSelector": only(&h.ns.name), "mailboxes": ["*@contoso.com"]})).await;
    mailboxes(&h, &["support@contoso.com", "ceo@contoso.com"]);
    h.sim.reset_calls();
    let mut evil = channel("evil-host", &strict, "ceo@contoso.com", CONNECT_ADDRESS);
    evil["spec"]["connect"]["tenantHost"] = json!("evil.example.com");
    apply_channel(&h, &evil).await;
    let message = channel_reason(&h, "evil-host", ch_cond::ADMITTED, "False", reason::NOT_ADMITTED).await;
    assert!(message.contains("evil.example.com") && message.contains("spec.connect.tenantHosts"), "{message}");
    assert_no_external_call(&h, "unlisted Connect host").await;
    tenant_untouched(&h);
    assert_eq!(h.sim.exchange().count_cmdlet("Set-Mailbox"), 0, "the mailbox was not touched");

    apply_channel(&h, &channel("support", &strict, "support@contoso.com", CONNECT_ADDRESS)).await;
    channel_reason(&h, "support", ch_cond::APP_REGISTRATION_READY, "True", reason::RECONCILED).await;
    let user = h.sim.exchange().mailbox(TENANT, "support@contoso.com").unwrap().external_directory_object_id;
    let grants = h.sim.oauth2_permission_grants(TENANT);
    assert_eq!(grants.len(), 2, "one per resource: {grants:?}");
    for g in &grants {
        assert_eq!(g.consent_type, "Principal", "{g:?}");
        assert_eq!(g.principal_id.as_deref(), Some(user.to_lowercase().as_str()), "{g:?}");
    }
    let child: AzureAppRegistration = Api::namespaced(h.client.clone(), &h.ns.name).get("support").await.unwrap();
    let consent = child.status.clone().unwrap().conditions.into_iter().find(|c| c.type_ == app_cond::CONSENT_GRANTED);
    assert!(consent.unwrap().message.contains("for the users of support@contoso.com only"));
    // Connect's "Generate Token", as Entra ID answers it: the mailbox's user signs in without a
    // consent prompt; any other employee (the attacker's phishing target) is refused.
    let app_id = child.status.as_ref().and_then(|s| s.app_id.clone()).unwrap();
    let (callback, scope) =
        ("https://acme.us.webexconnect.io/callback", "offline_access https://outlook.office.com/SMTP.Send");
    assert!(h.sim.sign_in(TENANT, &app_id, &user, callback, scope).is_ok(), "the mailbox's user signs in");
    let other = h.sim.add_user(TENANT, "employee@contoso.com", false);
    let refused = h.sim.sign_in(TENANT, &app_id, &other, callback, scope).unwrap_err();
    assert_eq!(refused.code, 65001, "{}", refused.message);
    let foreign = h.sim.sign_in(TENANT, &app_id, &user, "https://evil.example.com/callback", scope).unwrap_err();
    assert_eq!(foreign.code, 50011, "{}", foreign.message);

    // A bare registration naming a mailbox nobody has: nothing is granted, the condition says so.
    let ghost = json!({"permissions": [{"resource": "Office 365 Exchange Online", "delegated": ["SMTP.Send"]}],
                       "consentFor": ["ghost@contoso.com"]});
    apply_registration(&h, &registration("ghost", &strict, ghost)).await;
    let message =
        registration_reason(&h, "ghost", app_cond::CONSENT_GRANTED, "False", reason::PRINCIPAL_NOT_FOUND).await;
    assert!(message.contains("ghost@contoso.com"), "{message}");
    assert_eq!(h.sim.oauth2_permission_grants(TENANT).len(), 2, "no grant for the ghost");
    drop_tenant(&h, &strict).await;
    h.finish().await;
}

/// Registrations consented for everyone by an earlier version are narrowed to the named users:
/// the user's grant is created before the tenant-wide one is removed, so a sign-in never breaks.
#[tokio::test]
async fn tenant_wide_consent_is_replaced_by_consent_for_the_named_user_new_grant_first() {
    let h = Harness::start("sec-narrow").await;
    mailboxes(&h, &["support@contoso.com"]);
    let delegated = json!([{"resource": "Office 365 Exchange Online", "delegated": ["SMTP.Send"]}]);
    // The shared test tenant allows tenant-wide consent: what every registration had before.
    apply_registration(&h, &registration("old", TENANT_REF, json!({"permissions": delegated}))).await;
    registration_reason(&h, "old", app_cond::READY, "True", reason::RECONCILED).await;
    let grants = h.sim.oauth2_permission_grants(TENANT);
    assert_eq!(grants.iter().map(|g| g.consent_type.as_str()).collect::<Vec<_>>(), ["AllPrincipals"]);
    h.sim.reset_calls();
    let extra = json!({"permissions": delegated, "consentFor": ["support@contoso.com"]});
    apply_registration(&h, &registration("old", TENANT_REF, extra)).await;
    let user = h.sim.exchange().mailbox(TENANT, "support@contoso.com").unwrap().external_directory_object_id;
    eventually(Duration::from_secs(30), || async {
        let grants = h.sim.oauth2_permission_grants(TENANT);
        let principal = grants.iter().map(|g| (g.consent_type.clone(), g.principal_id.clone())).collect::<Vec<_>>();
        if principal == [("Principal".to_string(), Some(user.to_lowercase()))] {
            Ok(())
        } else {
            Err(format!("{principal:?}"))
        }
    })
    .await;
    let routes: Vec<String> = h.sim.calls().iter().map(|c| c.route.clone()).collect();
    let created = routes.iter().position(|r| r == connect_email_sim::routes::CREATE_GRANT);
    let deleted = routes.iter().position(|r| r == connect_email_sim::routes::DELETE_GRANT);
    assert!(created.is_some() && deleted.is_some() && created < deleted, "new grant first: {routes:?}");
    eventually(Duration::from_secs(30), || async {
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(h.client.clone(), &h.ns.name);
        let list = events.list(&Default::default()).await.map_err(|e| e.to_string())?;
        let reasons: Vec<String> = list.items.iter().filter_map(|e| e.reason.clone()).collect();
        if reasons.iter().any(|r| r == "ConsentNarrowed") { Ok(()) } else { Err(format!("{reasons:?}")) }
    })
    .await;
    h.finish().await;
}

/// One channel per mailbox, cluster-wide: a second channel for a claimed mailbox, in another
/// namespace, is refused before any call (no application, no Exchange change); once the first
/// is deleted (its settings restored), the second takes the mailbox over.
#[tokio::test]
async fn a_second_channel_for_a_claimed_mailbox_in_another_namespace_is_refused_without_any_call() {
    let mut h = Harness::without_operator("sec-claim").await;
    let second = TestNamespace::new(&h.client, "sec-claim-b").await;
    h.start_operator_for(h.client.clone(), format!("{},{}", h.ns.name, second.name));
    mailboxes(&h, &["support@contoso.com"]);
    apply_channel(&h, &channel("first", TENANT_REF, "support@contoso.com", CONNECT_ADDRESS)).await;
    channel_reason(&h, "first", ch_cond::MAILBOX_CONFIGURED, "True", reason::RECONCILED).await;
    let apps = h.sim.applications(TENANT).len();
    let set_mailbox = h.sim.exchange().count_cmdlet("Set-Mailbox");
    let channels_b: Api<EmailChannel> = Api::namespaced(h.client.clone(), &second.name);
    let mut thief = channel("thief", TENANT_REF, "Support@Contoso.com", CONNECT_ADDRESS);
    thief["spec"]["exchange"] = json!({"forwarding": {"keepCopy": false}});
    channels_b.patch("thief", &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&thief)).await.unwrap();
    let refused = eventually(Duration::from_secs(30), || async {
        let c = channels_b.get("thief").await.map_err(|e| e.to_string())?;
        let status = c.status.unwrap_or_default();
        status
            .conditions
            .iter()
            .find(|c| c.type_ == ch_cond::ADMITTED && c.reason == reason::MAILBOX_CLAIMED)
            .map(|c| c.message.clone())
            .ok_or(format!("{:?}", status.conditions))
    })
    .await;
    assert!(refused.contains(&format!("{}/first", h.ns.name)), "names the owner: {refused}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(h.sim.applications(TENANT).len(), apps, "no application for the second claim");
    assert_eq!(h.sim.exchange().count_cmdlet("Set-Mailbox"), set_mailbox, "no Exchange change for the second claim");
    assert!(
        Api::<AzureAppRegistration>::namespaced(h.client.clone(), &second.name)
            .get_opt("thief")
            .await
            .unwrap()
            .is_none()
    );
    // The owner leaves: the claim is released after its settings are restored, and the second
    // channel takes the mailbox over.
    Api::<EmailChannel>::namespaced(h.client.clone(), &h.ns.name)
        .delete("first", &DeleteParams::default())
        .await
        .unwrap();
    eventually(Duration::from_secs(60), || async {
        let c = channels_b.get("thief").await.map_err(|e| e.to_string())?;
        let status = c.status.unwrap_or_default();
        if status.conditions.iter().any(|c| c.type_ == ch_cond::MAILBOX_CONFIGURED && c.status == "True") {
            Ok(())
        } else {
            Err(format!("{:?}", status.conditions))
        }
    })
    .await;
    let _ = channels_b.delete("thief", &DeleteParams::default()).await;
    h.finish().await;
    second.delete().await;
}

/// With `permissions.assignedUsersOnly`, a channel's application requires assignment and only
/// the mailbox's user is assigned: another employee cannot sign in even where the tenant lets
/// users consent for themselves (which, without the setting, is what stays open).
#[tokio::test]
async fn with_assigned_users_only_nobody_but_the_mailboxs_user_signs_in_even_by_consenting() {
    let h = Harness::start("sec-assigned").await;
    let assigned = format!("{}-assigned", h.ns.name);
    apply_tenant(
        &h,
        &assigned,
        json!({"namespaceSelector": only(&h.ns.name), "mailboxes": ["*@contoso.com"],
               "permissions": {"assignedUsersOnly": true}}),
    )
    .await;
    mailboxes(&h, &["support@contoso.com", "sales@contoso.com"]);
    h.sim.set_user_consent_allowed(TENANT, true);
    let other = h.sim.add_user(TENANT, "employee@contoso.com", false);
    let (callback, scope) =
        ("https://acme.us.webexconnect.io/callback", "offline_access https://outlook.office.com/SMTP.Send");
    let registrations: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);

    apply_channel(&h, &channel("support", &assigned, "support@contoso.com", CONNECT_ADDRESS)).await;
    channel_reason(&h, "support", ch_cond::APP_REGISTRATION_READY, "True", reason::RECONCILED).await;
    let status = registrations.get("support").await.unwrap().status.unwrap();
    let (app_id, sp_id) = (status.app_id.unwrap(), status.service_principal_id.unwrap());
    let user = h.sim.exchange().mailbox(TENANT, "support@contoso.com").unwrap().external_directory_object_id;
    let sp = h.sim.service_principals(TENANT).into_iter().find(|s| s.id == sp_id).unwrap();
    assert!(sp.app_role_assignment_required, "assignment is required");
    let on_app: Vec<String> = h
        .sim
        .app_role_assignments(TENANT)
        .into_iter()
        .filter(|a| a.resource_id == sp_id)
        .map(|a| a.principal_id.to_lowercase())
        .collect();
    assert_eq!(on_app, [user.to_lowercase()], "exactly the mailbox's user is assigned");
    assert!(h.sim.sign_in(TENANT, &app_id, &user, callback, scope).is_ok(), "the mailbox's user signs in");
    let refused = h.sim.sign_in(TENANT, &app_id, &other, callback, scope).unwrap_err();
    assert_eq!(refused.code, 50105, "{}", refused.message);

    // Without the setting (the shared test tenant), the same employee consents for themselves:
    // the gap the README names, closed by this setting or the tenant's user-consent policy.
    apply_channel(&h, &channel("sales", TENANT_REF, "sales@contoso.com", CONNECT_ADDRESS)).await;
    channel_reason(&h, "sales", ch_cond::APP_REGISTRATION_READY, "True", reason::RECONCILED).await;
    let sales = registrations.get("sales").await.unwrap().status.unwrap().app_id.unwrap();
    assert!(h.sim.sign_in(TENANT, &sales, &other, callback, scope).is_ok(), "self-consent where the tenant allows it");
    drop_tenant(&h, &assigned).await;
    h.finish().await;
}

/// A namespace user who can write the channel's status records a forwarding destination of
/// their own as the mailbox's "earlier" forwarding, then deletes the channel: the operator
/// restores only what the EntraTenant allows today, so the mailbox is never forwarded there.
#[tokio::test]
async fn a_forged_earlier_forwarding_in_status_is_never_restored_on_deletion() {
    let h = Harness::start("sec-forged-restore").await;
    let mailbox = "support@contoso.com";
    mailboxes(&h, &[mailbox]);
    apply_channel(&h, &channel("support", TENANT_REF, mailbox, CONNECT_ADDRESS)).await;
    channel_reason(&h, "support", ch_cond::MAILBOX_CONFIGURED, "True", reason::RECONCILED).await;
    let api: Api<EmailChannel> = Api::namespaced(h.client.clone(), &h.ns.name);
    let mut record = api.get("support").await.unwrap().status.unwrap().mailbox.expect("record");
    record.previous_forwarding =
        Some(serde_json::from_value(json!({"smtpAddress": "thief@evil.example", "keepCopy": false})).unwrap());
    let forged = json!({"status": {"mailbox": record}});
    api.patch_status("support", &PatchParams::default(), &Patch::Merge(&forged)).await.unwrap();
    api.delete("support", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(60), || async {
        match api.get_opt("support").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(_) => Err("the channel still exists".to_string()),
        }
    })
    .await;
    let sent: Vec<String> = h
        .sim
        .exchange()
        .received_parameters(TENANT, "Set-Mailbox")
        .iter()
        .filter_map(|p| p.get("ForwardingSmtpAddress").and_then(|v| v.as_str()).map(str::to_string))
        .collect();
    assert!(sent.iter().all(|a| !a.contains("evil.example")), "forwarded to the forged address: {sent:?}");
    let m = h.sim.exchange().mailbox(TENANT, mailbox).unwrap();
    assert!(m.forwarding_smtp_address.is_none(), "forwarding switched off: {:?}", m.forwarding_smtp_address);
    // The forged record reached the deletion, and was refused (not merely overwritten first).
    eventually(Duration::from_secs(30), || async {
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(h.client.clone(), &h.ns.name);
        let list = events.list(&Default::default()).await.map_err(|e| e.to_string())?;
        let notes: Vec<String> = list
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("MailboxNotRestored"))
            .filter_map(|e| e.note.clone())
            .collect();
        if notes.iter().any(|n| n.contains("not one EntraTenant")) { Ok(()) } else { Err(format!("{notes:?}")) }
    })
    .await;
    h.finish().await;
}

/// A namespace user writes another resource's application key (computable from its namespace
/// and name) into their own registration's status, then deletes it: the operator uses a
/// recorded key only for an application carrying this resource's owner stamp, so the other
/// application is never rewritten, given a password or deleted.
#[tokio::test]
async fn a_forged_unique_name_in_status_never_reaches_another_resources_application() {
    let h = Harness::start("sec-forged-key").await;
    let api: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    apply_registration(&h, &registration("victim", TENANT_REF, json!({"displayName": "Victim"}))).await;
    registration_reason(&h, "victim", app_cond::READY, "True", reason::RECONCILED).await;
    apply_registration(&h, &registration("attacker", TENANT_REF, json!({"displayName": "Attacker"}))).await;
    registration_reason(&h, "attacker", app_cond::READY, "True", reason::RECONCILED).await;
    let victim = api.get("victim").await.unwrap().status.unwrap();
    let (victim_key, victim_app) = (victim.unique_name.clone().unwrap(), victim.app_id.clone().unwrap());
    let passwords = |h: &Harness| {
        h.sim
            .applications(TENANT)
            .into_iter()
            .find(|a| a.app_id == victim_app)
            .map(|a| (a.display_name, a.passwords.len()))
    };
    let before = passwords(&h);
    let forged = json!({"status": {"uniqueName": victim_key}});
    api.patch_status("attacker", &PatchParams::default(), &Patch::Merge(&forged)).await.unwrap();
    // A forced rotation makes the attacker's registration issue a password on "its" application.
    let rotate = json!({"metadata": {"annotations": {"connectemail.dev/rotate": "now"}}});
    api.patch("attacker", &PatchParams::default(), &Patch::Merge(&rotate)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(passwords(&h), before, "the victim's application was rewritten or given a password");
    let attacker = api.get("attacker").await.unwrap().status.unwrap();
    assert_ne!(attacker.app_id.as_deref(), Some(victim_app.as_str()));
    api.delete("attacker", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(30), || async {
        match api.get_opt("attacker").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(_) => Err("still there".to_string()),
        }
    })
    .await;
    assert!(passwords(&h).is_some(), "the victim's application was deleted");
    assert_eq!(passwords(&h), before);
    h.finish().await;
}
