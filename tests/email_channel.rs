//! EmailChannel end to end: the real apiserver, the controllers in-process, the Microsoft
//! simulator (Graph, token endpoint, Exchange Online) and the Webex Connect simulator.

mod support;

use std::time::Duration;

use connect_email_operator::api::conditions::{email_channel as ch_cond, reason};
use connect_email_operator::api::{AzureAppRegistration, EmailChannel};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use support::operator::{CONNECT_ORG, CONNECT_TOKEN, Harness, TENANT, TENANT_REF};
use support::resources::{
    apply_channel, channel_condition, channel_reason, connect_token_secret, mailboxes, verified_key,
};
use support::*;

const MAILBOX: &str = "support@contoso.com";
const FORWARD_TO: &str = "4f1c2a9b7e@mail-us.imiconnect.io";

fn manual_channel(name: &str) -> Value {
    json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel",
        "metadata": {"name": name},
        "spec": {
            "mailbox": MAILBOX,
            "azure": {"tenantRef": {"name": TENANT_REF}},
            "connect": {"mode": "Manual", "region": "us", "tenantHost": "acme.us.webexconnect.io",
                        "assetName": "Support email", "forwardingAddress": FORWARD_TO}
        }
    })
}

fn message(obj: &EmailChannel, type_: &str) -> String {
    obj.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == type_).unwrap().message.clone()
}

async fn annotate_channel(h: &Harness, name: &str, key: &str, value: &str) {
    let api: Api<EmailChannel> = Api::namespaced(h.client.clone(), &h.ns.name);
    let patch = json!({"metadata": {"annotations": {key: value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

async fn registration(h: &Harness, name: &str) -> AzureAppRegistration {
    Api::<AzureAppRegistration>::namespaced(h.client.clone(), &h.ns.name).get(name).await.unwrap()
}

#[tokio::test]
async fn a_manual_channel_configures_the_mailbox_and_waits_for_the_person_in_connect() {
    let h = Harness::start("ech-manual").await;
    mailboxes(&h, &[MAILBOX]);
    apply_channel(&h, &manual_channel("support")).await;

    // The child registration: callback URL, implicit grant, least-privilege permissions, owned.
    channel_condition(&h, "support", ch_cond::CONNECT_ASSET_SYNCED, "False").await;
    let child = registration(&h, "support").await;
    assert_eq!(child.spec.redirect_uris, vec!["https://acme.us.webexconnect.io/callback".to_string()]);
    assert!(child.spec.implicit_grant.access_tokens);
    assert!(child.spec.client_secret.require_acknowledgement);
    assert_eq!(child.metadata.owner_references.as_ref().unwrap()[0].kind, "EmailChannel");
    let key = eventually(Duration::from_secs(30), || async {
        verified_key(&h, "support").await.ok_or("no verified key yet".to_string())
    })
    .await;
    channel_condition(&h, "support", ch_cond::APP_REGISTRATION_READY, "True").await;

    // Exchange: SMTP AUTH explicitly on (the organisation default is off), forwarding with a copy.
    let mailbox = eventually(Duration::from_secs(30), || async {
        let m = h.sim.exchange().mailbox(TENANT, MAILBOX).unwrap();
        if m.forwarding_smtp_address.is_some() { Ok(m) } else { Err("no forwarding yet".to_string()) }
    })
    .await;
    assert_eq!(
        mailbox.forwarding_smtp_address.as_deref().map(|a| a.to_lowercase()),
        Some(format!("smtp:{FORWARD_TO}"))
    );
    assert!(mailbox.deliver_to_mailbox_and_forward);
    assert_eq!(mailbox.smtp_client_authentication_disabled, Some(false));
    channel_condition(&h, "support", ch_cond::MAILBOX_CONFIGURED, "True").await;
    channel_condition(&h, "support", ch_cond::OUTBOUND_FORWARDING_ALLOWED, "True").await;

    // Connect: the message says exactly what to do, with the key to acknowledge.
    let pending = channel_condition(&h, "support", ch_cond::CONNECT_SECRET_OUTDATED, "True").await;
    let m = message(&pending, ch_cond::CONNECT_SECRET_OUTDATED);
    assert!(m.contains("Secret support-azure (key client-secret)"), "{m}");
    assert!(m.contains(&format!("connectemail.dev/connect-secret-applied={key}")), "{m}");
    assert!(message(&pending, ch_cond::READY).contains(ch_cond::CONNECT_ASSET_SYNCED));

    annotate_channel(&h, "support", "connectemail.dev/connect-secret-applied", &key).await;
    let ready = channel_condition(&h, "support", ch_cond::READY, "True").await;
    let gauge = format!(
        "connect_email_operator_resource_ready{{kind=\"EmailChannel\",namespace=\"{}\",name=\"support\"}} 1",
        h.ns.name
    );
    eventually(Duration::from_secs(10), || async {
        let metrics = h.metrics.as_ref().expect("the operator runs").encode();
        if metrics.contains(&gauge) { Ok(()) } else { Err(metrics) }
    })
    .await;
    let status = ready.status.unwrap();
    assert_eq!(status.app_id, registration(&h, "support").await.status.unwrap().app_id);
    assert_eq!(status.secret_name.as_deref(), Some("support-azure"));
    assert_eq!(status.callback_url.as_deref(), Some("https://acme.us.webexconnect.io/callback"));
    // Every value of the Connect form is in status: token URLs (access and refresh) and scope too.
    let connect = status.connect.unwrap();
    assert!(connect.authorize_url.unwrap().ends_with(&format!("/{TENANT}/oauth2/v2.0/authorize")));
    assert!(connect.token_url.unwrap().ends_with(&format!("/{TENANT}/oauth2/v2.0/token")));
    assert!(connect.scope.unwrap().contains("SMTP.Send"));
    // The acknowledgement reached the registration; settings were written once, not on every resync.
    eventually(Duration::from_secs(10), || async {
        let r = registration(&h, "support").await;
        let ack = r.metadata.annotations.unwrap_or_default().get("ack.connectemail.dev/support").cloned();
        if ack.as_deref() == Some(key.as_str()) { Ok(()) } else { Err(format!("{ack:?}")) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(h.sim.exchange().count_cmdlet("Set-Mailbox"), 1);
    assert_eq!(h.sim.exchange().count_cmdlet("Set-CASMailbox"), 1);
    h.finish().await;
}

#[tokio::test]
async fn a_rotation_holds_the_old_secret_until_the_person_confirms_the_new_one() {
    let h = Harness::start("ech-manual-rotate").await;
    mailboxes(&h, &[MAILBOX]);
    let mut object = manual_channel("rot");
    object["spec"]["azure"]["clientSecret"] = json!({"secretName": "rot-azure", "revokeAfter": "0s"});
    apply_channel(&h, &object).await;
    let first =
        eventually(Duration::from_secs(30), || async { verified_key(&h, "rot").await.ok_or("no key".to_string()) })
            .await;
    annotate_channel(&h, "rot", "connectemail.dev/connect-secret-applied", &first).await;
    channel_condition(&h, "rot", ch_cond::READY, "True").await;

    let registrations: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    let patch = json!({"metadata": {"annotations": {"connectemail.dev/rotate": "1"}}});
    registrations.patch("rot", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let second = eventually(Duration::from_secs(30), || async {
        match verified_key(&h, "rot").await {
            Some(k) if k != first => Ok(k),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let outdated = channel_condition(&h, "rot", ch_cond::CONNECT_SECRET_OUTDATED, "True").await;
    assert!(message(&outdated, ch_cond::CONNECT_SECRET_OUTDATED).contains(&second));
    // Connect still uses the first secret: it stays valid, in Entra ID and in the Secret.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let app = h.sim.applications(TENANT).remove(0);
    assert_eq!(app.passwords.len(), 2, "the old secret must wait for Connect");
    let secret = Api::<Secret>::namespaced(h.client.clone(), &h.ns.name).get("rot-azure").await.unwrap();
    assert!(secret.data.unwrap().contains_key("previous-client-secret"));

    annotate_channel(&h, "rot", "connectemail.dev/connect-secret-applied", &second).await;
    channel_condition(&h, "rot", ch_cond::READY, "True").await;
    eventually(Duration::from_secs(30), || async {
        let n = h.sim.applications(TENANT)[0].passwords.len();
        if n == 1 { Ok(()) } else { Err(format!("{n} passwords")) }
    })
    .await;
    h.finish().await;
}

#[tokio::test]
async fn blocked_forwarding_and_missing_exchange_rights_are_explained_without_blocking_the_secret() {
    let h = Harness::start("ech-blocked").await;
    h.sim.exchange().add_mailbox(TENANT, MAILBOX);
    // Default policy left at Automatic (behaves as Off).
    apply_channel(&h, &manual_channel("blocked")).await;
    let obj = channel_condition(&h, "blocked", ch_cond::OUTBOUND_FORWARDING_ALLOWED, "False").await;
    let m = message(&obj, ch_cond::OUTBOUND_FORWARDING_ALLOWED);
    assert!(m.contains("AutoForwardingMode Automatic"), "{m}");
    assert!(m.contains("Set-HostedOutboundSpamFilterPolicy -Identity 'Default' -AutoForwardingMode On"), "{m}");

    // The registration has read the mailbox user's object ID for its consent (Exchange, once
    // an hour) before the operator's Exchange role goes away.
    channel_condition(&h, "blocked", ch_cond::APP_REGISTRATION_READY, "True").await;
    h.sim.exchange().set_role_missing(TENANT, true);
    let obj = channel_condition(&h, "blocked", ch_cond::MAILBOX_CONFIGURED, "False").await;
    let c = obj
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == ch_cond::MAILBOX_CONFIGURED)
        .unwrap()
        .clone();
    assert_eq!(c.reason, reason::PERMISSION_DENIED);
    assert!(c.message.contains("Exchange.ManageAsApp"), "{}", c.message);
    // The app registration and its secret are unaffected.
    channel_condition(&h, "blocked", ch_cond::APP_REGISTRATION_READY, "True").await;
    h.finish().await;
}

#[tokio::test]
async fn an_api_channel_pushes_every_secret_to_connect_and_asks_for_one_sign_in() {
    let h = Harness::start("ech-api").await;
    mailboxes(&h, &[MAILBOX]);
    connect_token_secret(&h).await;
    apply_channel(&h, &json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel",
        "metadata": {"name": "billing"},
        "spec": {
            "mailbox": MAILBOX,
            "azure": {"tenantRef": {"name": TENANT_REF}, "clientSecret": {"secretName": "billing-azure", "revokeAfter": "0s"}},
            "connect": {"mode": "Api", "region": "us", "tenantHost": "acme.us.webexconnect.io", "assetName": "Billing email",
                        "organizationId": CONNECT_ORG, "credentialsSecretRef": {"name": "webex-connect-api"}}
        }
    }))
    .await;
    let waiting = channel_condition(&h, "billing", ch_cond::CONNECT_AUTHORIZED, "False").await;
    let m = message(&waiting, ch_cond::CONNECT_AUTHORIZED);
    assert!(m.contains("Generate Token") && m.contains(MAILBOX), "{m}");
    let status = waiting.status.unwrap();
    let asset_id = status.connect.as_ref().unwrap().asset_id.clone().expect("asset created");
    let asset = h.connect.asset(&asset_id).unwrap();
    let app = h.sim.applications(TENANT).remove(0);
    assert_eq!(asset.oauth.client_id, app.app_id);
    assert_eq!(asset.oauth.client_secret, app.passwords[0].secret_text, "Connect holds the current secret");
    assert_eq!(asset.oauth.scope, "offline_access https://outlook.office.com/SMTP.Send");
    assert!(asset.oauth.token_url.ends_with(&format!("/{TENANT}/oauth2/v2.0/token")));
    assert_eq!(asset.email_id, MAILBOX);

    // The person signs in once; the mailbox forwards to the address Connect generated.
    h.connect.complete_sign_in(&asset_id);
    let ready = channel_condition(&h, "billing", ch_cond::READY, "True").await;
    let synced = message(&ready, ch_cond::CONNECT_ASSET_SYNCED);
    assert_eq!(synced.matches("experimental").count(), 1, "Api mode says once that it is experimental: {synced}");
    assert_eq!(ready.status.as_ref().unwrap().forwarding_address.as_deref(), Some(asset.forwarding_address.as_str()));
    let mailbox = h.sim.exchange().mailbox(TENANT, MAILBOX).unwrap();
    assert_eq!(
        mailbox.forwarding_smtp_address.map(|a| a.to_lowercase()),
        Some(format!("smtp:{}", asset.forwarding_address))
    );

    // A rotation is pushed to Connect, then the old secret goes.
    let registrations: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    let patch = json!({"metadata": {"annotations": {"connectemail.dev/rotate": "1"}}});
    registrations.patch("billing", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    eventually(Duration::from_secs(45), || async {
        let app = h.sim.applications(TENANT).remove(0);
        let asset = h.connect.asset(&asset_id).unwrap();
        let pushed = app.passwords.len() == 1 && asset.oauth.client_secret == app.passwords[0].secret_text;
        if pushed && h.connect.pushed_secrets().len() == 2 {
            Ok(())
        } else {
            Err(format!("{} passwords", app.passwords.len()))
        }
    })
    .await;
    channel_condition(&h, "billing", ch_cond::READY, "True").await;

    // The Webex token expires mid-life and a rotation starts meanwhile: the new secret cannot be
    // pushed, so the old one (still in Connect) is kept.
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns.name);
    h.connect.expire_token(CONNECT_TOKEN);
    let patch = json!({"metadata": {"annotations": {"connectemail.dev/rotate": "2"}}});
    registrations.patch("billing", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let m = channel_reason(&h, "billing", ch_cond::CONNECT_ASSET_SYNCED, "False", reason::CONNECT_UNAUTHORIZED).await;
    assert!(m.contains("webex-connect-api"), "{m}");
    eventually(Duration::from_secs(45), || async {
        let n = h.sim.applications(TENANT).remove(0).passwords.len();
        if n == 2 { Ok(()) } else { Err(format!("{n} passwords")) }
    })
    .await;
    let asset_now = h.connect.asset(&asset_id).unwrap();
    let app = h.sim.applications(TENANT).remove(0);
    assert!(app.passwords.iter().any(|p| p.secret_text == asset_now.oauth.client_secret), "Connect's secret is kept");
    // A person puts a new token in the Secret; without restarting the operator the channel picks
    // it up, the rotation completes and the old secret goes.
    h.connect.renew_token(CONNECT_TOKEN, "webex-access-token-renewed");
    let renewed = json!({"stringData": {"token": "webex-access-token-renewed"}});
    secrets.patch("webex-connect-api", &PatchParams::default(), &Patch::Merge(&renewed)).await.unwrap();
    eventually(Duration::from_secs(75), || async {
        let app = h.sim.applications(TENANT).remove(0);
        let asset = h.connect.asset(&asset_id).unwrap();
        let pushed = app.passwords.len() == 1 && asset.oauth.client_secret == app.passwords[0].secret_text;
        if pushed && h.connect.pushed_secrets().len() == 3 {
            Ok(())
        } else {
            Err(format!("{} passwords", app.passwords.len()))
        }
    })
    .await;
    channel_condition(&h, "billing", ch_cond::READY, "True").await;
    // Connect was asked for its list of assets once, to find this one before creating it; every
    // later look (sign-in, rotation, resyncs) read the asset by its ID.
    use connect_email_sim::connect::routes as connect_routes;
    assert_eq!(h.connect.count(connect_routes::LIST_ASSETS), 1);
    assert!(h.connect.count(connect_routes::GET_ASSET) >= 2);
    h.finish().await;
}

/// Creates an email asset in the Connect simulator as a person would in the portal; returns its ID.
async fn create_asset_by_hand(h: &Harness, name: &str) -> String {
    use connect_email_operator::api::email_channel::ConnectRegion;
    use connect_email_operator::connect::api::{ConnectAssets, Org};
    let client = sim_client::connect_client(&h.connect, None);
    let token: secrecy::SecretString = CONNECT_TOKEN.to_string().into();
    let org = Org { region: ConnectRegion::Us, organization_id: CONNECT_ORG, token: &token };
    let asset = sim_client::asset_settings(name, MAILBOX, TENANT, "typed-by-hand");
    client.create(&org, &asset).await.unwrap().asset_id
}

#[tokio::test]
async fn an_api_channel_explains_a_missing_list_operation_and_a_refused_token() {
    use connect_email_sim::connect::routes as connect_routes;
    let h = Harness::start("ech-api-errors").await;
    mailboxes(&h, &[MAILBOX]);
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns.name);
    connect_token_secret(&h).await;
    h.connect.set_list_unavailable(true);
    apply_channel(&h, &json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel",
        "metadata": {"name": "sales"},
        "spec": {
            "mailbox": MAILBOX,
            "azure": {"tenantRef": {"name": TENANT_REF}, "clientSecret": {"secretName": "sales-azure"}},
            "connect": {"mode": "Api", "region": "us", "tenantHost": "acme.us.webexconnect.io", "assetName": "Sales email",
                        "organizationId": CONNECT_ORG, "credentialsSecretRef": {"name": "webex-connect-api"}}
        }
    }))
    .await;
    let m = channel_reason(&h, "sales", ch_cond::CONNECT_ASSET_SYNCED, "False", reason::EXTERNAL_ERROR).await;
    assert!(m.contains("list operation is not available") && m.contains("assetId") && m.contains("Sales email"), "{m}");
    assert!(h.connect.assets(CONNECT_ORG).is_empty(), "nothing created blindly");
    assert!(h.connect.count(connect_routes::LIST_ASSETS) >= 1);

    // Following the advice: the asset is created in Connect by hand and its ID set in status.
    let asset_id = create_asset_by_hand(&h, "Sales email").await;
    let channels: Api<EmailChannel> = Api::namespaced(h.client.clone(), &h.ns.name);
    let patch = json!({"status": {"connect": {"assetId": asset_id}}});
    channels.patch_status("sales", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    channel_reason(&h, "sales", ch_cond::CONNECT_AUTHORIZED, "False", reason::SIGN_IN_REQUIRED).await;
    let app = h.sim.applications(TENANT).remove(0);
    let asset = h.connect.asset(&asset_id).unwrap();
    assert_eq!(asset.oauth.client_id, app.app_id, "the operator updated the asset it was pointed at");
    assert_eq!(asset.oauth.client_secret, app.passwords[0].secret_text);
    assert_eq!(h.connect.assets(CONNECT_ORG).len(), 1);
    let lists = h.connect.count(connect_routes::LIST_ASSETS);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(h.connect.count(connect_routes::LIST_ASSETS), lists, "no more list calls once the ID is known");

    // The personal access token expires: a 401 is its own reason, not throttling.
    h.connect.expire_token(CONNECT_TOKEN);
    let m = channel_reason(&h, "sales", ch_cond::CONNECT_ASSET_SYNCED, "False", reason::CONNECT_UNAUTHORIZED).await;
    assert!(m.contains("HTTP 401") && m.contains("webex-connect-api") && m.contains("12 hours"), "{m}");
    assert!(!m.contains(CONNECT_TOKEN), "no token in a condition");

    // A person puts a new token in the Secret.
    h.connect.add_org(CONNECT_ORG, "webex-access-token-renewed");
    let renewed = json!({"stringData": {"token": "webex-access-token-renewed"}});
    secrets.patch("webex-connect-api", &PatchParams::default(), &Patch::Merge(&renewed)).await.unwrap();
    channel_condition(&h, "sales", ch_cond::CONNECT_ASSET_SYNCED, "True").await;
    h.finish().await;
}

#[tokio::test]
async fn an_asset_of_the_same_name_made_by_hand_is_adopted_only_once_its_id_is_given() {
    let h = Harness::start("ech-api-owner").await;
    mailboxes(&h, &[MAILBOX]);
    connect_token_secret(&h).await;
    // Someone made an asset of that name in the portal before the channel existed.
    let asset_id = create_asset_by_hand(&h, "Support email").await;
    apply_channel(&h, &json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel",
        "metadata": {"name": "owner"},
        "spec": {
            "mailbox": MAILBOX,
            "azure": {"tenantRef": {"name": TENANT_REF}, "clientSecret": {"secretName": "owner-azure"}},
            "connect": {"mode": "Api", "region": "us", "tenantHost": "acme.us.webexconnect.io", "assetName": "Support email",
                        "organizationId": CONNECT_ORG, "credentialsSecretRef": {"name": "webex-connect-api"}}
        }
    }))
    .await;
    let m = channel_reason(&h, "owner", ch_cond::CONNECT_ASSET_SYNCED, "False", reason::ADOPTION_REFUSED).await;
    assert!(m.contains("did not create") && m.contains(&asset_id) && m.contains("assetId"), "{m}");
    // Wait for the registration's secret, then make sure nothing was pushed to the asset.
    eventually(Duration::from_secs(60), || async {
        verified_key(&h, "owner").await.map(|_| ()).ok_or_else(|| "no verified key".to_string())
    })
    .await;
    let m = channel_reason(&h, "owner", ch_cond::CONNECT_ASSET_SYNCED, "False", reason::ADOPTION_REFUSED).await;
    assert!(m.contains(&asset_id), "{m}");
    let untouched = h.connect.asset(&asset_id).unwrap();
    assert_eq!(
        untouched.oauth.client_secret, "typed-by-hand",
        "the operator did not push to an asset it did not create"
    );
    assert_eq!(h.connect.pushed_secrets(), ["typed-by-hand"], "only the person's own push");
    assert_eq!(h.connect.assets(CONNECT_ORG).len(), 1, "and did not create a second one");

    // The person opts in by setting the asset ID, as the condition says: the operator pushes.
    let channels: Api<EmailChannel> = Api::namespaced(h.client.clone(), &h.ns.name);
    let patch = json!({"status": {"connect": {"assetId": asset_id}}});
    channels.patch_status("owner", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    channel_reason(&h, "owner", ch_cond::CONNECT_AUTHORIZED, "False", reason::SIGN_IN_REQUIRED).await;
    let app = h.sim.applications(TENANT).remove(0);
    let adopted = h.connect.asset(&asset_id).unwrap();
    assert_eq!(adopted.oauth.client_id, app.app_id);
    assert_eq!(adopted.oauth.client_secret, app.passwords[0].secret_text);
    h.finish().await;
}

/// What Argo CD does: server-side apply of the examples under its field manager; once the
/// operator has converged, a server-side diff of the same files is empty (no perpetual OutOfSync).
#[tokio::test]
async fn gitops_examples_converge_and_stay_in_sync() {
    let h = Harness::start("ech-gitops").await;
    mailboxes(&h, &["support@contoso.com", "sales@contoso.com", "billing@contoso.com"]);
    connect_token_secret(&h).await;
    let dir = std::env::temp_dir().join(format!("gitops-{}", h.ns.name));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("deploy/examples")).unwrap() {
        let path = entry.unwrap().path();
        let mut object: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if object["kind"] == "EntraTenant" {
            continue; // the administrator's, cluster-scoped; the test namespace uses the test tenant
        }
        object["metadata"]["namespace"] = json!(h.ns.name);
        for reference in ["/spec/tenantRef/name", "/spec/azure/tenantRef/name"] {
            if let Some(name) = object.pointer_mut(reference) {
                *name = json!(TENANT_REF);
            }
        }
        if object["kind"] == "EmailChannel" && object["spec"]["connect"]["mode"] == "Api" {
            object["spec"]["connect"]["organizationId"] = json!(CONNECT_ORG);
        }
        let target = dir.join(path.file_name().unwrap());
        std::fs::write(&target, serde_yaml::to_string(&object).unwrap()).unwrap();
        files.push(target);
    }
    for file in &files {
        let (ok, out, err) =
            kubectl(&["apply", "--server-side", "--field-manager", "argocd-controller", "-f", file.to_str().unwrap()]);
        assert!(ok, "{out}{err}");
    }
    // The operator works on every example: registrations get their secrets.
    channel_condition(&h, "support-mailbox", ch_cond::APP_REGISTRATION_READY, "True").await;
    channel_condition(&h, "sales-mailbox", ch_cond::APP_REGISTRATION_READY, "True").await;
    channel_condition(&h, "billing-mailbox", ch_cond::APP_REGISTRATION_READY, "True").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for file in &files {
        let (same, diff, err) =
            kubectl(&["diff", "--server-side", "--field-manager", "argocd-controller", "-f", file.to_str().unwrap()]);
        assert!(same, "{} drifted from Git after the operator converged:\n{diff}{err}", file.display());
    }
    h.finish().await;
}
