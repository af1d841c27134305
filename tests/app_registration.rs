//! AzureAppRegistration end to end: the real apiserver, the operator's controllers in-process and
//! the Microsoft simulator. Assertions cover what the operator called, not only the outcome.

mod support;

use std::time::Duration;

use connect_email_operator::api::AzureAppRegistration;
use connect_email_operator::sim::routes;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use support::operator::{Harness, TENANT};
use support::*;

const EXCHANGE_APP_ID: &str = "00000002-0000-0ff1-ce00-000000000000";
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
const SMTP_SEND_SCOPE: &str = "76faac2a-0f20-42f1-928a-50de5b9dbe52";
const OFFLINE_ACCESS_SCOPE: &str = "7427e0e9-2fba-42fe-b0c0-848c9e6a8182";

fn registration(name: &str) -> Value {
    json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "AzureAppRegistration",
        "metadata": {"name": name},
        "spec": {
            "tenantId": TENANT,
            "displayName": "Webex Connect support@contoso.com",
            "redirectUris": ["https://acme.us.webexconnect.io/callback"],
            "implicitGrant": {"accessTokens": true},
            "permissions": [
                {"resource": "Office 365 Exchange Online", "delegated": ["SMTP.Send"]},
                {"resource": "Microsoft Graph", "delegated": ["offline_access"]}
            ],
            "clientSecret": {"secretName": format!("{name}-credentials"), "duration": "720h", "revokeAfter": "0s"}
        }
    })
}

async fn apply(h: &Harness, object: &Value) -> AzureAppRegistration {
    let api: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    let name = object["metadata"]["name"].as_str().unwrap();
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(object)).await.expect("apply")
}

async fn wait_for_condition(h: &Harness, name: &str, type_: &str, status: &str) -> AzureAppRegistration {
    let api: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    eventually(Duration::from_secs(60), || {
        let api = api.clone();
        async move {
            let obj = api.get(name).await.map_err(|e| e.to_string())?;
            let conditions = obj.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
            match conditions.iter().find(|c| c.type_ == type_) {
                Some(c) if c.status == status => Ok(obj),
                other => Err(format!("{type_} is {other:?}; all: {conditions:?}")),
            }
        }
    })
    .await
}

async fn secret(h: &Harness, name: &str) -> Secret {
    Api::<Secret>::namespaced(h.client.clone(), &h.ns.name).get(name).await.expect("the Secret exists")
}

fn data(secret: &Secret, key: &str) -> Option<String> {
    secret.data.as_ref()?.get(key).map(|v| String::from_utf8(v.0.clone()).unwrap())
}

#[tokio::test]
async fn a_registration_becomes_ready_with_one_app_consent_and_a_working_secret() {
    let h = Harness::start("aar-ready").await;
    apply(&h, &registration("support")).await;
    let ready = wait_for_condition(&h, "support", "Ready", "True").await;
    let status = ready.status.clone().unwrap();

    // Exactly one application, keyed by the resource UID, shaped as the TAC guide asks.
    let apps = h.sim.applications(TENANT);
    assert_eq!(apps.len(), 1, "{apps:?}");
    let app = &apps[0];
    assert_eq!(Some(app.app_id.clone()), status.app_id);
    assert_eq!(app.unique_name.as_deref(), status.unique_name.as_deref());
    assert!(app.unique_name.as_deref().unwrap().ends_with(ready.metadata.uid.as_deref().unwrap()));
    assert_eq!(app.redirect_uris, vec!["https://acme.us.webexconnect.io/callback".to_string()]);
    assert!(app.implicit_access_token_issuance);
    assert_eq!(app.sign_in_audience, "AzureADMyOrg");
    let mut access: Vec<(String, String, String)> = app
        .required_resource_access
        .iter()
        .flat_map(|r| r.resource_access.iter().map(move |a| (r.resource_app_id.clone(), a.id.clone(), a.kind.clone())))
        .collect();
    access.sort();
    assert_eq!(
        access,
        vec![
            (EXCHANGE_APP_ID.to_string(), SMTP_SEND_SCOPE.to_string(), "Scope".to_string()),
            (GRAPH_APP_ID.to_string(), OFFLINE_ACCESS_SCOPE.to_string(), "Scope".to_string()),
        ]
    );

    // Admin consent: one AllPrincipals grant per resource, no app role assignment.
    let grants = h.sim.oauth2_permission_grants(TENANT);
    let mut scopes: Vec<String> = grants.iter().map(|g| g.scope.clone()).collect();
    scopes.sort();
    assert_eq!(scopes, vec!["SMTP.Send".to_string(), "offline_access".to_string()]);
    assert!(grants.iter().all(|g| g.consent_type == "AllPrincipals"));
    assert!(h.sim.app_role_assignments(TENANT).is_empty());

    // One password, in the Secret, accepted by the token endpoint, described in status.
    assert_eq!(h.sim.count(routes::ADD_PASSWORD), 1);
    let credential = status.credential.expect("credential in status");
    let s = secret(&h, "support-credentials").await;
    assert_eq!(data(&s, "client-id").as_deref(), Some(app.app_id.as_str()));
    assert_eq!(data(&s, "tenant-id").as_deref(), Some(TENANT));
    assert!(data(&s, "token-url").unwrap().ends_with(&format!("/{TENANT}/oauth2/v2.0/token")));
    assert_eq!(app.passwords.len(), 1);
    assert_eq!(app.passwords[0].key_id, credential.key_id);
    assert_eq!(data(&s, "client-secret").as_deref(), Some(app.passwords[0].secret_text.as_str()));
    assert!(data(&s, "previous-client-secret").is_none());
    assert_eq!(s.metadata.annotations.as_ref().unwrap()["connectemail.dev/key-id"], credential.key_id);
    assert_eq!(s.metadata.owner_references.as_ref().unwrap()[0].uid, ready.metadata.uid.clone().unwrap());
    assert!(credential.verified_at.is_some());
    // Renewal at two thirds of 720h.
    assert_eq!(credential.renewal_time.0.duration_since(credential.not_before.0).as_hours(), 480);

    // Nothing secret in status.
    let status_json = serde_json::to_string(&ready.status).unwrap();
    for issued in h.sim.issued_secrets() {
        assert!(!status_json.contains(&issued), "a secret leaked into status");
    }
    h.finish().await;
}

#[tokio::test]
async fn a_forced_rotation_keeps_the_old_secret_until_the_new_one_works_then_revokes_it() {
    let h = Harness::start("aar-rotate").await;
    apply(&h, &registration("rotating")).await;
    let first = wait_for_condition(&h, "rotating", "Ready", "True").await;
    let first_key = first.status.unwrap().credential.unwrap().key_id;

    let api: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    let patch = json!({"metadata": {"annotations": {"connectemail.dev/rotate": "now"}}});
    api.patch("rotating", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();

    let rotated = eventually(Duration::from_secs(60), || {
        let api = api.clone();
        let first_key = first_key.clone();
        async move {
            let o = api.get("rotating").await.map_err(|e| e.to_string())?;
            let s = o.status.clone().unwrap_or_default();
            let key = s.credential.as_ref().map(|c| c.key_id.clone());
            let done = key.is_some_and(|k| k != first_key)
                && s.previous_credentials.is_empty()
                && s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
            if done { Ok(o) } else { Err(format!("{s:?}")) }
        }
    })
    .await;
    let status = rotated.status.unwrap();
    assert_eq!(status.last_rotate_request.as_deref(), Some("now"));
    assert_eq!(h.sim.count(routes::ADD_PASSWORD), 2);
    assert_eq!(h.sim.count(routes::REMOVE_PASSWORD), 1);
    let app = &h.sim.applications(TENANT)[0];
    let keys: Vec<&str> = app.passwords.iter().map(|p| p.key_id.as_str()).collect();
    assert_eq!(keys, vec![status.credential.as_ref().unwrap().key_id.as_str()], "old password revoked");
    let s = secret(&h, "rotating-credentials").await;
    assert_eq!(data(&s, "client-secret").as_deref(), Some(app.passwords[0].secret_text.as_str()));
    assert!(data(&s, "previous-client-secret").is_none(), "revoked secret removed from the Secret");
    // The revocation happened only after the new secret was verified at the token endpoint.
    let calls = h.sim.calls();
    let add = calls.iter().rposition(|c| c.route == routes::ADD_PASSWORD).unwrap();
    let remove = calls.iter().position(|c| c.route == routes::REMOVE_PASSWORD).unwrap();
    let verified = calls[add..remove].iter().any(|c| c.route == routes::TOKEN && c.status == 200);
    assert!(verified, "no successful token request between issuing and revoking");
    h.finish().await;
}

#[tokio::test]
async fn an_unknown_permission_name_is_reported_and_nothing_is_created() {
    let h = Harness::start("aar-bad-permission").await;
    let mut object = registration("typo");
    object["spec"]["permissions"] = json!([{"resource": "Office 365 Exchange Online", "application": ["Mail.Sendd"]}]);
    apply(&h, &object).await;
    let obj = wait_for_condition(&h, "typo", "ConsentGranted", "False").await;
    let c = obj.status.unwrap().conditions.into_iter().find(|c| c.type_ == "ConsentGranted").unwrap();
    assert_eq!(c.reason, "UnknownPermission");
    assert!(
        c.message.contains("\"Mail.Sendd\" is not an application permission of Office 365 Exchange Online; valid:"),
        "{}",
        c.message
    );
    assert!(c.message.contains("Mail.Send"), "{}", c.message);
    assert!(h.sim.applications(TENANT).is_empty());
    assert_eq!(h.sim.count(routes::UPSERT_APPLICATION), 0);
    h.finish().await;
}

#[tokio::test]
async fn deleting_the_resource_soft_deletes_the_application() {
    let h = Harness::start("aar-delete").await;
    apply(&h, &registration("doomed")).await;
    wait_for_condition(&h, "doomed", "Ready", "True").await;
    let api: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    api.delete("doomed", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(30), || {
        let api = api.clone();
        async move {
            match api.get_opt("doomed").await.map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(_) => Err("still there".to_string()),
            }
        }
    })
    .await;
    assert!(h.sim.applications(TENANT).is_empty());
    assert_eq!(h.sim.deleted_applications(TENANT).len(), 1);
    h.finish().await;
}
