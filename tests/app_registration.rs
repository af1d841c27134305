//! AzureAppRegistration end to end: the real apiserver, the operator's controllers in-process and
//! the Microsoft simulator. Assertions cover what the operator called, not only the outcome.

mod support;

use std::time::Duration;

use connect_email_operator::api::AzureAppRegistration;
use connect_email_operator::api::conditions::{app_registration as app_cond, reason};
use connect_email_sim::routes;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use support::operator::{Harness, TENANT, TENANT_REF};
use support::resources::{apply_registration, is_true, registration_condition, secret_data as data};
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
            "tenantRef": {"name": TENANT_REF},
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

async fn secret(h: &Harness, name: &str) -> Secret {
    Api::<Secret>::namespaced(h.client.clone(), &h.ns.name).get(name).await.expect("the Secret exists")
}

#[tokio::test]
async fn a_registration_becomes_ready_with_one_app_consent_and_a_working_secret() {
    let h = Harness::start("aar-ready").await;
    apply_registration(&h, &registration("support")).await;
    let ready = registration_condition(&h, "support", app_cond::READY, "True").await;
    let status = ready.status.clone().unwrap();

    // Exactly one application, keyed by instance, namespace and name (not the UID: the same
    // manifests in a rebuilt cluster find it again), shaped as the TAC guide asks.
    let apps = h.sim.applications(TENANT);
    assert_eq!(apps.len(), 1, "{apps:?}");
    let app = &apps[0];
    assert_eq!(Some(app.app_id.clone()), status.app_id);
    assert_eq!(app.unique_name.as_deref(), status.unique_name.as_deref());
    let key = connect_email_operator::controller::app_registration::reconcile::application_key(
        "default", &h.ns.name, "support",
    );
    assert_eq!(app.unique_name.as_deref(), Some(key.as_str()));
    assert!(!key.contains(ready.metadata.uid.as_deref().unwrap()));
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
    let renewal = credential.renewal_time.0.duration_since(credential.not_before.0).as_secs();
    assert!((480 * 3600 - 60..=480 * 3600).contains(&renewal), "renewal after {renewal}s");

    // The expiry gauge an alert would use (read from the controller's cache at scrape time, which
    // the watch updates a moment after the status write).
    let gauge = format!(
        "connect_email_operator_secret_expiration_timestamp_seconds{{namespace=\"{}\",name=\"support\"}} {}",
        h.ns.name,
        credential.not_after.0.as_second()
    );
    eventually(Duration::from_secs(10), || async {
        let metrics = h.metrics.as_ref().unwrap().encode();
        if metrics.contains(&gauge) { Ok(()) } else { Err(metrics) }
    })
    .await;

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
    apply_registration(&h, &registration("rotating")).await;
    let first = registration_condition(&h, "rotating", app_cond::READY, "True").await;
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
                && is_true(&s.conditions, app_cond::READY);
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
    apply_registration(&h, &object).await;
    let obj = registration_condition(&h, "typo", app_cond::CONSENT_GRANTED, "False").await;
    let c = obj.status.unwrap().conditions.into_iter().find(|c| c.type_ == app_cond::CONSENT_GRANTED).unwrap();
    assert_eq!(c.reason, reason::UNKNOWN_PERMISSION);
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
    apply_registration(&h, &registration("doomed")).await;
    registration_condition(&h, "doomed", app_cond::READY, "True").await;
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

async fn status_of(h: &Harness, name: &str) -> connect_email_operator::api::AzureAppRegistrationStatus {
    let api: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    api.get(name).await.unwrap().status.unwrap_or_default()
}

#[tokio::test]
async fn drift_made_outside_the_operator_is_repaired() {
    let h = Harness::start("aar-drift").await;
    apply_registration(&h, &registration("drifty")).await;
    let ready = registration_condition(&h, "drifty", app_cond::READY, "True").await.status.unwrap();
    let (object_id, first_key) = (ready.object_id.clone().unwrap(), ready.credential.clone().unwrap().key_id);
    let portal = h.portal();

    // Someone edits the redirect URI and withdraws the delegated consent in the portal.
    let mut app = portal.app_by_unique_name(TENANT, ready.unique_name.as_deref().unwrap()).await.unwrap().unwrap();
    let web = app.web.get_or_insert_with(Default::default);
    web.redirect_uris = vec!["https://evil.example.com/callback".into()];
    let update = connect_email_operator::azure::model::ApplicationUpdate {
        unique_name: None,
        display_name: app.display_name.clone().unwrap(),
        sign_in_audience: "AzureADMyOrg".into(),
        web: app.web.clone().unwrap(),
        required_resource_access: app.required_resource_access.clone(),
        notes: None,
    };
    portal.update_app(TENANT, &object_id, &update).await.unwrap();
    let sp = ready.service_principal_id.clone().unwrap();
    for grant in portal.delegated_grants(TENANT, &sp).await.unwrap() {
        portal.delete_delegated_grant(TENANT, &grant.id).await.unwrap();
    }
    eventually(Duration::from_secs(30), || async {
        let app = &h.sim.applications(TENANT)[0];
        let grants = h.sim.oauth2_permission_grants(TENANT).len();
        if app.redirect_uris == vec!["https://acme.us.webexconnect.io/callback".to_string()] && grants == 2 {
            Ok(())
        } else {
            Err(format!("redirect URIs {:?}, grants {grants}", app.redirect_uris))
        }
    })
    .await;

    // Someone deletes the operator's password in the portal: a new one is issued and stored.
    portal.remove_password(TENANT, &object_id, &first_key).await.unwrap();
    let second_key = eventually(Duration::from_secs(30), || async {
        let s = status_of(&h, "drifty").await;
        match s.credential {
            Some(c) if c.key_id != first_key && c.verified_at.is_some() => Ok(c.key_id),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(s_key(&secret(&h, "drifty-credentials").await), second_key);

    // Someone deletes the Secret: a new secret is issued (the old text is gone) and the old password removed.
    Api::<Secret>::namespaced(h.client.clone(), &h.ns.name)
        .delete("drifty-credentials", &DeleteParams::default())
        .await
        .unwrap();
    let third_key = eventually(Duration::from_secs(30), || async {
        let s = status_of(&h, "drifty").await;
        match s.credential {
            Some(c) if c.key_id != second_key && c.verified_at.is_some() => Ok(c.key_id),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // Someone pastes another value into the Secret: detected by its fingerprint, replaced.
    let patch = json!({"stringData": {"client-secret": "pasted-by-hand"}});
    Api::<Secret>::namespaced(h.client.clone(), &h.ns.name)
        .patch("drifty-credentials", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually(Duration::from_secs(30), || async {
        let s = status_of(&h, "drifty").await;
        let secret = secret(&h, "drifty-credentials").await;
        let app = h.sim.applications(TENANT).remove(0);
        let works = app.passwords.iter().any(|p| Some(p.secret_text.clone()) == data(&secret, "client-secret"));
        match s.credential {
            Some(c) if c.key_id != third_key && c.verified_at.is_some() && works && app.passwords.len() == 1 => Ok(()),
            other => Err(format!("{other:?}, {} passwords", app.passwords.len())),
        }
    })
    .await;
    h.finish().await;
}

/// Delta drift detection: an idle operator reads only the change feeds (no per-object reads), and
/// drift is still repaired, each repair starting from a change the feed reported.
#[tokio::test]
async fn change_feeds_find_drift_without_per_object_polling() {
    use connect_email_operator::controller::Settings;
    use connect_email_operator::controller::drift::DriftDetection;
    let settings = Settings {
        resync: Duration::from_secs(3600),
        channel_resync: Duration::from_secs(3600),
        propagation_poll: Duration::from_millis(300),
        drift: DriftDetection::Delta,
        drift_poll: Duration::from_millis(300),
        ..Settings::default()
    };
    let options = connect_email_sim::SimOptions::default().tenant(TENANT);
    let h = Harness::start_with_settings("aar-delta", options, settings).await;
    apply_registration(&h, &registration("feedy")).await;
    let ready = registration_condition(&h, "feedy", app_cond::READY, "True").await.status.unwrap();
    let object_id = ready.object_id.clone().unwrap();

    // Let the feeds report the operator's own creation and settle, then watch an idle period.
    tokio::time::sleep(Duration::from_secs(2)).await;
    h.sim.reset_calls();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = h.sim.calls();
    let feeds = idle
        .iter()
        .filter(|c| {
            [routes::APPLICATIONS_DELTA, routes::SERVICE_PRINCIPALS_DELTA, routes::GRANTS_DELTA]
                .contains(&c.route.as_str())
        })
        .count();
    let others: Vec<&str> =
        idle.iter().map(|c| c.route.as_str()).filter(|r| !r.ends_with("/delta") && *r != routes::TOKEN).collect();
    assert!(feeds >= 6, "the three feeds are read every 300 ms: {feeds} reads");
    assert!(others.is_empty(), "an idle operator reads nothing per object: {others:?}");

    // The redirect URI edited in the portal: the application feed reports it, the app is repaired.
    let portal = h.portal();
    let app = portal.app_by_unique_name(TENANT, ready.unique_name.as_deref().unwrap()).await.unwrap().unwrap();
    let mut web = app.web.clone().unwrap();
    web.redirect_uris = vec!["https://evil.example.com/callback".into()];
    let update = connect_email_operator::azure::model::ApplicationUpdate {
        unique_name: None,
        display_name: app.display_name.clone().unwrap(),
        sign_in_audience: "AzureADMyOrg".into(),
        web,
        required_resource_access: app.required_resource_access.clone(),
        notes: None,
    };
    h.sim.reset_calls();
    portal.update_app(TENANT, &object_id, &update).await.unwrap();
    eventually(Duration::from_secs(30), || async {
        let app = &h.sim.applications(TENANT)[0];
        if app.redirect_uris == vec!["https://acme.us.webexconnect.io/callback".to_string()] {
            Ok(())
        } else {
            Err(format!("redirect URIs {:?}", app.redirect_uris))
        }
    })
    .await;
    let calls = h.sim.calls();
    let edit = calls.iter().position(|c| c.route == routes::UPDATE_APPLICATION).expect("the portal's edit");
    let feed = calls.iter().skip(edit).position(|c| c.route == routes::APPLICATIONS_DELTA).expect("a feed read");
    let reread =
        calls.iter().skip(edit + feed).position(|c| c.route == routes::GET_APPLICATION_BY_UNIQUE_NAME).is_some();
    assert!(reread, "the repair starts after the feed reported the change");

    // Consent withdrawn in the portal: the grant feed reports it, consent is granted again.
    let sp = ready.service_principal_id.clone().unwrap();
    for grant in portal.delegated_grants(TENANT, &sp).await.unwrap() {
        portal.delete_delegated_grant(TENANT, &grant.id).await.unwrap();
    }
    eventually(Duration::from_secs(30), || async {
        match h.sim.oauth2_permission_grants(TENANT).len() {
            2 => Ok(()),
            n => Err(format!("{n} grants")),
        }
    })
    .await;
    h.finish().await;
}

fn s_key(secret: &Secret) -> String {
    secret.metadata.annotations.as_ref().unwrap()["connectemail.dev/key-id"].clone()
}

#[tokio::test]
async fn bursts_of_429_and_503_are_survived() {
    let h = Harness::start("aar-throttle").await;
    h.sim.faults().on("*").times(4).throttled(Some(1));
    h.sim.faults().on(routes::ADD_PASSWORD).times(2).unavailable();
    h.sim.faults().on(routes::UPSERT_APPLICATION).times(3).throttled(None);
    apply_registration(&h, &registration("throttled")).await;
    registration_condition(&h, "throttled", app_cond::READY, "True").await;
    let statuses: Vec<u16> = h.sim.calls().iter().map(|c| c.status).collect();
    assert!(statuses.iter().filter(|s| **s == 429).count() >= 7, "{statuses:?}");
    assert!(statuses.contains(&503));
    // The throttling shows in the metrics an operator dashboard would graph.
    let metrics = h.metrics.as_ref().expect("the operator runs").encode();
    assert!(metrics.contains(r#"connect_email_operator_external_throttled_total{system="graph"}"#), "{metrics}");
    assert!(
        metrics.contains(r#"connect_email_operator_external_requests_total{system="graph",code="503"}"#),
        "{metrics}"
    );
    assert_eq!(h.sim.applications(TENANT).len(), 1);
    assert_eq!(h.sim.applications(TENANT)[0].passwords.len(), 1);
    h.finish().await;
}

#[tokio::test]
async fn an_adopted_application_keeps_its_foreign_passwords_and_survives_deletion() {
    let h = Harness::start("aar-adopt").await;
    let (object_id, app_id) = h.sim.seed_application(TENANT, "Made in the portal");
    let (foreign_key, _) =
        h.sim.seed_password(TENANT, &object_id, "Connect prod (manual)", Duration::from_secs(86400 * 30));
    // Its owners opt in to adoption by this resource.
    h.sim.tag_application(TENANT, &object_id, &format!("connectemail.dev/adopt:{}/adopter", h.ns.name));
    let mut object = registration("adopter");
    object["spec"]["adopt"] = json!({"appId": app_id});
    apply_registration(&h, &object).await;
    registration_condition(&h, "adopter", app_cond::READY, "True").await;
    let api: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    let patch = json!({"metadata": {"annotations": {"connectemail.dev/rotate": "1"}}});
    api.patch("adopter", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    eventually(Duration::from_secs(30), || async {
        let s = status_of(&h, "adopter").await;
        if s.last_rotate_request.as_deref() == Some("1") && s.previous_credentials.is_empty() {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    let app = h.sim.applications(TENANT).into_iter().find(|a| a.app_id == app_id).unwrap();
    assert!(app.passwords.iter().any(|p| p.key_id == foreign_key), "the foreign password was touched");
    assert_eq!(app.passwords.len(), 2, "foreign + current operator password");
    assert_eq!(h.sim.applications(TENANT).len(), 1, "no second application was created");

    api.delete("adopter", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(30), || async {
        if api.get_opt("adopter").await.unwrap().is_none() { Ok(()) } else { Err("still there".to_string()) }
    })
    .await;
    let app =
        h.sim.applications(TENANT).into_iter().find(|a| a.app_id == app_id).expect("an adopted app is never deleted");
    let keys: Vec<&str> = app.passwords.iter().map(|p| p.key_id.as_str()).collect();
    assert_eq!(keys, vec![foreign_key.as_str()], "only the operator's passwords were removed");
    h.finish().await;
}

#[tokio::test]
async fn the_orphan_policy_keeps_the_application_and_removes_only_operator_passwords() {
    let h = Harness::start("aar-orphan").await;
    let mut object = registration("kept");
    object["spec"]["deletionPolicy"] = json!("Orphan");
    apply_registration(&h, &object).await;
    registration_condition(&h, "kept", app_cond::READY, "True").await;
    let api: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    api.delete("kept", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(30), || async {
        if api.get_opt("kept").await.unwrap().is_none() { Ok(()) } else { Err("still there".to_string()) }
    })
    .await;
    let apps = h.sim.applications(TENANT);
    assert_eq!(apps.len(), 1);
    assert!(apps[0].passwords.is_empty());
    assert!(h.sim.deleted_applications(TENANT).is_empty());
    h.finish().await;
}

/// A shorter renewBefore moves the current key's renewal: status shows the new time and the
/// rotation happens then, not at the time computed when the key was issued (the resync is an
/// hour here, so nothing else would reconcile it in time).
#[tokio::test]
async fn a_changed_renew_before_moves_the_renewal_of_the_current_key() {
    use connect_email_operator::controller::Settings;
    let settings = Settings {
        resync: Duration::from_secs(3600),
        channel_resync: Duration::from_secs(3600),
        propagation_poll: Duration::from_millis(300),
        ..Settings::default()
    };
    let options = connect_email_sim::SimOptions::default().tenant(TENANT);
    let h = Harness::start_with_settings("aar-renew-before", options, settings).await;
    apply_registration(&h, &registration("renewing")).await;
    let first =
        registration_condition(&h, "renewing", app_cond::READY, "True").await.status.unwrap().credential.unwrap();
    // 720h: renewal after 480h. Now: 5 s from now.
    let before = first.not_after.0.duration_since(jiff::Timestamp::now()).as_secs() - 5;
    let api: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    let patch = json!({"spec": {"clientSecret": {"renewBefore": format!("{before}s")}}});
    api.patch("renewing", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let renewed = eventually(Duration::from_secs(60), || {
        let api = api.clone();
        let first_key = first.key_id.clone();
        async move {
            let s = api.get("renewing").await.map_err(|e| e.to_string())?.status.unwrap_or_default();
            let c = s.credential.clone().ok_or("no credential")?;
            let done = c.key_id != first_key && c.verified_at.is_some() && s.previous_credentials.is_empty();
            if done { Ok(c) } else { Err(format!("{s:?}")) }
        }
    })
    .await;
    assert!(renewed.not_before.0 < first.renewal_time.0, "renewed before the key's original renewal time");
    assert_eq!(h.sim.count(routes::ADD_PASSWORD), 2);
    h.finish().await;
}

#[tokio::test]
async fn a_tenant_policy_cap_clamps_the_secret_lifetime() {
    let h = Harness::start("aar-cap").await;
    h.sim.faults().set_password_lifetime_cap(Some(Duration::from_secs(30 * 86400)));
    let mut object = registration("capped");
    object["spec"]["clientSecret"]["duration"] = json!("4320h");
    apply_registration(&h, &object).await;
    let status = registration_condition(&h, "capped", app_cond::READY, "True").await.status.unwrap();
    let c = status.credential.unwrap();
    // The end is requested as "now + lifetime"; Entra stamps the start a moment later.
    let lifetime = c.not_after.0.duration_since(c.not_before.0).as_secs();
    assert!((720 * 3600 - 60..=720 * 3600).contains(&lifetime), "lifetime {lifetime}s");
    // Renewal at two thirds of what was actually issued.
    let renewal = c.renewal_time.0.duration_since(c.not_before.0).as_secs();
    assert!((480 * 3600 - 60..=480 * 3600).contains(&renewal), "renewal after {renewal}s");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_rotation_never_breaks_a_consumer_reading_the_secret() {
    let h = Harness::start("aar-probe").await;
    let mut object = registration("probed");
    // A 1h secret renewed 8s after issue: a rotation every ~8s.
    object["spec"]["clientSecret"] =
        json!({"secretName": "probed-credentials", "duration": "1h", "renewBefore": "59m52s", "revokeAfter": "2s"});
    apply_registration(&h, &object).await;
    registration_condition(&h, "probed", app_cond::READY, "True").await;
    let http = sim_client::https_client(&h.sim.ca_pem());
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns.name);
    let (mut attempts, mut failures) = (0, Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    while tokio::time::Instant::now() < deadline {
        let s = secrets.get("probed-credentials").await.unwrap();
        let form = [
            ("grant_type", "client_credentials".to_string()),
            ("client_id", data(&s, "client-id").unwrap()),
            ("client_secret", data(&s, "client-secret").unwrap()),
            ("scope", "https://graph.microsoft.com/.default".to_string()),
        ];
        let response = http.post(data(&s, "token-url").unwrap()).form(&form).send().await.unwrap();
        attempts += 1;
        if !response.status().is_success() {
            failures.push(format!("{} with key {}", response.status(), s_key(&s)));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let issued = h.sim.count(routes::ADD_PASSWORD);
    println!("probe: {attempts} authentications, {} failures, {issued} secrets issued", failures.len());
    assert!(issued >= 3, "expected several rotations, got {issued}");
    assert!(failures.is_empty(), "{failures:?}");
    // Old passwords are revoked after the grace period: at most current + one in grace remain.
    eventually(Duration::from_secs(10), || async {
        let n = h.sim.applications(TENANT)[0].passwords.len();
        if n <= 2 { Ok(()) } else { Err(format!("{n} passwords")) }
    })
    .await;
    h.finish().await;
}

#[tokio::test]
async fn plan_reports_what_would_change_without_changing_anything() {
    // No controller runs: only `plan` touches the simulators.
    let h = Harness::without_operator("aar-plan").await;
    apply_registration(&h, &registration("planned")).await;
    let azure = h.azure_clients();
    let changes = connect_email_operator::plan::plan(
        h.client.clone(),
        &azure,
        "default",
        &h.ns.name,
        "planned",
        jiff::Timestamp::now(),
    )
    .await
    .unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(changes[0].starts_with("create application \"Webex Connect support@contoso.com\""), "{changes:?}");
    let writes: Vec<_> = h.sim.calls().into_iter().filter(|c| c.method != "GET" && c.route != routes::TOKEN).collect();
    assert!(writes.is_empty(), "plan wrote to Microsoft: {writes:?}");
    h.finish().await;
}

#[tokio::test]
async fn a_graph_outage_while_resolving_permissions_does_not_delay_a_rotation() {
    let h = Harness::start("aar-resolve-down").await;
    apply_registration(&h, &registration("resilient")).await;
    let ready = registration_condition(&h, "resilient", app_cond::READY, "True").await;
    let first = ready.status.unwrap().credential.unwrap().key_id;
    // Exchange Online's service principal cannot be read (Graph answers 503 for it, every time).
    let exchange = connect_email_operator::api::tenant::EXCHANGE_ONLINE_APP_ID;
    h.sim.faults().on_path(&format!("/v1.0/servicePrincipals(appId='{exchange}')")).times(100_000).unavailable();
    let patch = json!({"metadata": {"annotations": {"connectemail.dev/rotate": "outage"}}});
    Api::<AzureAppRegistration>::namespaced(h.client.clone(), &h.ns.name)
        .patch("resilient", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let rotated = eventually(Duration::from_secs(60), || async {
        let r = Api::<AzureAppRegistration>::namespaced(h.client.clone(), &h.ns.name).get("resilient").await.unwrap();
        let status = r.status.unwrap_or_default();
        match &status.credential {
            Some(c) if c.key_id != first && c.verified_at.is_some() => Ok(status),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let consent = rotated.conditions.iter().find(|c| c.type_ == app_cond::CONSENT_GRANTED).unwrap();
    assert_eq!(consent.status, "False");
    assert!(consent.message.contains("resolving permissions"), "{}", consent.message);
    // Graph is back: consent is confirmed again.
    h.sim.faults().clear();
    registration_condition(&h, "resilient", app_cond::CONSENT_GRANTED, "True").await;
    h.finish().await;
}

#[tokio::test]
async fn consent_people_granted_on_an_adopted_application_is_never_withdrawn() {
    use connect_email_operator::api::tenant::{EXCHANGE_ONLINE_APP_ID, MICROSOFT_GRAPH_APP_ID};
    let h = Harness::start("aar-adopt-consent").await;
    let (object_id, app_id) = h.sim.seed_application(TENANT, "Made in the portal");
    h.sim.tag_application(TENANT, &object_id, &format!("connectemail.dev/adopt:{}/adopter", h.ns.name));
    // People consented before: delegated SMTP.Send and Mail.Read, and the application role Mail.Send.
    let portal = h.portal();
    let client = portal.ensure_service_principal(TENANT, &app_id).await.unwrap();
    let exchange = portal.service_principal(TENANT, EXCHANGE_ONLINE_APP_ID).await.unwrap().unwrap();
    let graph = portal.service_principal(TENANT, MICROSOFT_GRAPH_APP_ID).await.unwrap().unwrap();
    portal.create_delegated_grant(TENANT, &client.id, &exchange.id, None, "SMTP.Send Mail.Read").await.unwrap();
    let mail_send = exchange.app_roles.iter().find(|r| r.value.as_deref() == Some("Mail.Send")).unwrap().id.clone();
    portal.assign_app_role(TENANT, &client.id, &exchange.id, &mail_send).await.unwrap();

    let mut object = registration("adopter");
    object["spec"]["adopt"] = json!({"appId": app_id});
    apply_registration(&h, &object).await;
    registration_condition(&h, "adopter", app_cond::READY, "True").await;
    let scopes = |resource: String| {
        let portal = portal.clone();
        let client = client.id.clone();
        async move {
            let grants = portal.delegated_grants(TENANT, &client).await.unwrap();
            grants.iter().find(|g| g.resource_id == resource).map(|g| g.scopes())
        }
    };
    let exchange_scopes = scopes(exchange.id.clone()).await.unwrap();
    assert!(exchange_scopes.contains("Mail.Read") && exchange_scopes.contains("SMTP.Send"), "{exchange_scopes:?}");
    assert!(scopes(graph.id.clone()).await.unwrap().contains("offline_access"));
    let roles = portal.app_role_assignments(TENANT, &client.id).await.unwrap();
    assert!(roles.iter().any(|a| a.app_role_id == mail_send), "a person's role was withdrawn");
    // The operator recorded only what it added itself: Graph's offline_access.
    let owned = status_of(&h, "adopter").await.granted_consent;
    assert_eq!(owned.len(), 1, "{owned:?}");
    assert_eq!(
        (owned[0].resource_id.as_str(), owned[0].scopes.as_slice()),
        (graph.id.as_str(), &["offline_access".to_string()][..])
    );

    // Graph leaves the spec: the operator withdraws its own grant, and nothing of the people's.
    object["spec"]["permissions"] = json!([{"resource": "Office 365 Exchange Online", "delegated": ["SMTP.Send"]}]);
    apply_registration(&h, &object).await;
    eventually(Duration::from_secs(30), || async {
        match scopes(graph.id.clone()).await {
            None => Ok(()),
            Some(s) => Err(format!("Graph grant still {s:?}")),
        }
    })
    .await;
    let exchange_scopes = scopes(exchange.id.clone()).await.unwrap();
    assert!(exchange_scopes.contains("Mail.Read"), "{exchange_scopes:?}");
    let roles = portal.app_role_assignments(TENANT, &client.id).await.unwrap();
    assert!(roles.iter().any(|a| a.app_role_id == mail_send));
    h.finish().await;
}

#[tokio::test]
async fn deletion_while_graph_is_down_completes_for_orphan_and_waits_for_delete() {
    let h = Harness::start("aar-graph-down").await;
    let mut orphaned = registration("orphaned");
    orphaned["spec"]["deletionPolicy"] = json!("Orphan");
    apply_registration(&h, &orphaned).await;
    apply_registration(&h, &registration("deleted")).await;
    registration_condition(&h, "orphaned", app_cond::READY, "True").await;
    let deleted_app =
        registration_condition(&h, "deleted", app_cond::READY, "True").await.status.unwrap().app_id.unwrap();
    // Graph (and the token endpoint) answer 503 to everything.
    h.sim.faults().on("*").times(1_000_000).unavailable();
    let api: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    api.delete("orphaned", &DeleteParams::default()).await.unwrap();
    api.delete("deleted", &DeleteParams::default()).await.unwrap();
    // Orphan leaves the application anyway: deletion completes without Graph.
    eventually(Duration::from_secs(60), || async {
        if api.get_opt("orphaned").await.unwrap().is_none() { Ok(()) } else { Err("still there".to_string()) }
    })
    .await;
    // Delete waits, and says why.
    let waiting = registration_condition(&h, "deleted", app_cond::READY, "False").await;
    let ready = waiting.status.unwrap().conditions.into_iter().find(|c| c.type_ == app_cond::READY).unwrap();
    assert_eq!(ready.reason, reason::DELETION_PENDING, "{ready:?}");
    assert!(ready.message.contains("waits for Graph"), "{}", ready.message);
    assert!(h.sim.applications(TENANT).iter().any(|a| a.app_id == deleted_app));
    // Graph is back: the application is deleted and the resource goes.
    h.sim.faults().clear();
    eventually(Duration::from_secs(90), || async {
        if api.get_opt("deleted").await.unwrap().is_none() { Ok(()) } else { Err("still there".to_string()) }
    })
    .await;
    assert!(!h.sim.applications(TENANT).iter().any(|a| a.app_id == deleted_app), "the application was deleted");
    assert_eq!(h.sim.applications(TENANT).len(), 1, "the orphaned application stays");
    h.finish().await;
}

/// The Graph writes one reconcile made, by kind (reads and token requests left out).
fn writes(calls: &[connect_email_sim::CallRecord]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = calls
        .iter()
        .filter(|c| c.status < 300)
        .filter_map(|c| match c.route.as_str() {
            routes::UPSERT_APPLICATION | routes::UPDATE_APPLICATION | routes::CREATE_APPLICATION => Some("application"),
            routes::UPSERT_SERVICE_PRINCIPAL | routes::CREATE_SERVICE_PRINCIPAL => Some("service principal"),
            routes::ADD_PASSWORD => Some("issue"),
            routes::REMOVE_PASSWORD => Some("remove password"),
            routes::CREATE_APP_ROLE_ASSIGNMENT | routes::CREATE_APP_ROLE_ASSIGNED_TO => Some("grant role"),
            routes::DELETE_APP_ROLE_ASSIGNMENT | routes::DELETE_APP_ROLE_ASSIGNED_TO => Some("withdraw role"),
            routes::CREATE_GRANT => Some("create grant"),
            routes::UPDATE_GRANT => Some("update grant"),
            routes::DELETE_GRANT => Some("delete grant"),
            _ => None,
        })
        .collect();
    out.sort_unstable();
    out
}

/// The Graph writes `plan` announced, by kind.
fn planned(lines: &[String]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for line in lines {
        let l = line.as_str();
        if l.starts_with("issue a new client secret") {
            out.push("issue");
            if l.contains("; remove ") {
                out.push("remove password");
            }
        } else if (l.starts_with("revoke previous client secret") && !l.contains(" at "))
            || l.starts_with("remove password")
            || l.starts_with("remove orphaned operator password")
        {
            out.push("remove password");
        } else if l.starts_with("update application") || l.starts_with("claim the adopted application") {
            out.push("application");
        } else if l.starts_with("create the service principal") {
            out.push("service principal");
        } else if l.starts_with("grant application permission") {
            out.push("grant role");
        } else if l.starts_with("withdraw") {
            out.push("withdraw role");
        } else if l.starts_with("grant delegated") {
            out.push("create grant");
        } else if l.starts_with("change the delegated grant") {
            out.push("update grant");
        } else if l.starts_with("delete delegated grant") {
            out.push("delete grant");
        }
    }
    out.sort_unstable();
    out
}

#[tokio::test]
async fn a_reconcile_from_a_copy_that_predates_the_finalizer_adds_no_second_one_and_does_not_fail() {
    // The controller hands a reconcile its cached copy. When a second trigger arrives while the
    // reconcile that added the finalizer runs, the next one can start before the cache has seen
    // that finalizer. No controller runs here: the same stale copy is reconciled twice.
    let h = Harness::without_operator("aar-stale-finalizer").await;
    let ctx = h.context(h.client.clone());
    let api: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    apply_registration(&h, &registration("stale")).await;
    let stale = std::sync::Arc::new(api.get("stale").await.unwrap());
    assert!(stale.metadata.finalizers.is_none());
    let reconcile = |obj| connect_email_operator::controller::app_registration::reconcile::reconcile(obj, ctx.clone());
    reconcile(stale.clone()).await.expect("the first reconcile adds the finalizer");
    let after_first = api.get("stale").await.unwrap().metadata.finalizers.unwrap_or_default();
    assert_eq!(after_first, [connect_email_operator::api::FINALIZER]);
    h.sim.reset_calls();
    // Before the fix this was a 422 from the finalizer patch's `test` and no work was done.
    reconcile(stale).await.expect("a reconcile from the stale copy");
    let finalizers = api.get("stale").await.unwrap().metadata.finalizers.unwrap_or_default();
    assert_eq!(finalizers, [connect_email_operator::api::FINALIZER], "exactly one finalizer");
    assert!(h.sim.count(routes::UPSERT_APPLICATION) > 0, "the second reconcile did the work (created the application)");
    // Deletion, reconciled directly as well (no controller would remove the finalizer).
    api.delete("stale", &DeleteParams::default()).await.unwrap();
    reconcile(std::sync::Arc::new(api.get("stale").await.unwrap())).await.expect("the clean-up");
    assert!(api.get_opt("stale").await.unwrap().is_none(), "the finalizer was removed");
    h.finish().await;
}

#[tokio::test]
async fn one_reconcile_does_exactly_what_plan_printed() {
    // No controller runs: each step is one `plan`, then one reconcile called directly.
    let h = Harness::without_operator("aar-plan-agrees").await;
    let ctx = h.context(h.client.clone());
    let azure = h.azure_clients();
    let api: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    apply_registration(&h, &registration("agreed")).await;
    let once = || async {
        let obj = api.get("agreed").await.unwrap();
        connect_email_operator::controller::app_registration::reconcile::reconcile(
            std::sync::Arc::new(obj),
            ctx.clone(),
        )
        .await
        .map(drop)
    };
    once().await.unwrap(); // the finalizer
    let step = |what: &'static str| {
        let (h, azure, once) = (&h, &azure, &once);
        async move {
            let lines = connect_email_operator::plan::plan(
                h.client.clone(),
                azure,
                "default",
                &h.ns.name,
                "agreed",
                jiff::Timestamp::now(),
            )
            .await
            .unwrap();
            h.sim.reset_calls();
            once().await.unwrap();
            let done = writes(&h.sim.calls());
            println!("{what}: plan {lines:?} -> writes {done:?}");
            (lines, done)
        }
    };
    // Fresh: plan announces the whole creation in one line.
    let (lines, done) = step("fresh").await;
    assert!(lines.len() == 1 && lines[0].starts_with("create application"), "{lines:?}");
    for w in ["application", "service principal", "issue"] {
        assert!(done.contains(&w), "{done:?}");
    }
    // The rest: exactly what was planned, write by write.
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns.name);
    for what in ["verify", "in sync", "rotate", "verify and revoke", "drift", "secret deleted", "verify again"] {
        match what {
            "rotate" => {
                let patch = json!({"metadata": {"annotations": {"connectemail.dev/rotate": "1"}}});
                api.patch("agreed", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
            }
            "drift" => {
                let status = status_of(&h, "agreed").await;
                let portal = h.portal();
                let app =
                    portal.app_by_unique_name(TENANT, status.unique_name.as_deref().unwrap()).await.unwrap().unwrap();
                let update = connect_email_operator::azure::model::ApplicationUpdate {
                    unique_name: None,
                    display_name: "renamed in the portal".into(),
                    sign_in_audience: "AzureADMyOrg".into(),
                    web: app.web.clone().unwrap(),
                    required_resource_access: app.required_resource_access.clone(),
                    notes: None,
                };
                portal.update_app(TENANT, &app.id, &update).await.unwrap();
            }
            "secret deleted" => secrets.delete("agreed-credentials", &DeleteParams::default()).await.map(drop).unwrap(),
            _ => {}
        }
        let (lines, done) = step(what).await;
        assert_eq!(planned(&lines), done, "{what}: plan {lines:?}");
        match what {
            "rotate" | "secret deleted" => assert_eq!(done, vec!["issue"], "{what}"),
            "verify and revoke" => assert_eq!(done, vec!["remove password"], "{what}"),
            "drift" => assert_eq!(done, vec!["application"], "{what}"),
            _ => {}
        }
    }
    h.finish().await;
}

/// Deleted and created again under the same name (a `kubectl replace --force`, an Argo CD
/// replace sync), repeatedly: the deleted application still holds the uniqueName, so the operator
/// restores it (same appId) instead of failing on the name forever; a deleted application never
/// keeps an operator password.
#[tokio::test]
async fn a_registration_deleted_and_created_again_restores_its_application_with_the_same_app_id() {
    let h = Harness::start("ar-recreate").await;
    let api: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
    apply_registration(&h, &support::resources::smtp_registration("again", "Again")).await;
    registration_condition(&h, "again", app_cond::READY, "True").await;
    let app_id = h.sim.applications(TENANT).remove(0).app_id;
    for round in 0..3 {
        api.delete("again", &DeleteParams::default()).await.unwrap();
        eventually(Duration::from_secs(30), || async {
            match api.get_opt("again").await.map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(_) => Err("still there".to_string()),
            }
        })
        .await;
        let deleted = h.sim.deleted_applications(TENANT);
        assert_eq!(deleted.len(), 1, "round {round}: {deleted:?}");
        assert!(deleted[0].passwords.is_empty(), "round {round}: a deleted application kept a password");
        apply_registration(&h, &support::resources::smtp_registration("again", "Again")).await;
        let ready = registration_condition(&h, "again", app_cond::READY, "True").await;
        assert_eq!(ready.status.unwrap().app_id.as_deref(), Some(app_id.as_str()), "round {round}: same appId");
        let live = h.sim.applications(TENANT);
        assert_eq!(live.len(), 1, "round {round}: one live application");
        assert!(live[0].passwords.len() <= 2, "round {round}: {} passwords", live[0].passwords.len());
        assert!(h.sim.deleted_applications(TENANT).is_empty(), "round {round}: restored, not left in deleted items");
    }
    h.assert_no_secret_leaked().await;
    h.finish().await;
}
