//! The ClusterRole in deploy/base/rbac.yaml is enough, and no more than needed: the operator runs
//! under a ServiceAccount token bound to exactly those rules (RBAC enforced by the real apiserver)
//! and takes an EmailChannel to Ready.

mod support;

use std::time::Duration;

use connect_email_operator::api::EmailChannel;
use connect_email_operator::api::conditions::{app_registration as app_cond, email_channel as ch_cond};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;
use support::operator::{Harness, TENANT_REF};
use support::resources::{is_true, mailboxes};
use support::*;

/// The channel both RBAC tests take through the operator.
fn support_channel() -> serde_json::Value {
    json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel",
        "metadata": {"name": "support"},
        "spec": {
            "mailbox": "support@contoso.com",
            "azure": {"tenantRef": {"name": TENANT_REF}},
            "connect": {"region": "us", "tenantHost": "acme.us.webexconnect.io", "assetName": "Support",
                        "forwardingAddress": "0123456789abcdef0123456789abcdef@mail-us.imiconnect.io"}
        }
    })
}

/// A client authenticating with `token` instead of the admin certificate.
async fn client_with_token(token: String) -> Client {
    let mut kubeconfig = Kubeconfig::read_from(kubeconfig_path()).unwrap();
    for named in &mut kubeconfig.auth_infos {
        named.auth_info = Some(kube::config::AuthInfo { token: Some(token.clone().into()), ..Default::default() });
    }
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    Client::try_from(config).unwrap()
}

#[tokio::test]
async fn the_operator_completes_a_channel_with_only_the_deployed_cluster_role() {
    let mut h = Harness::without_operator("rbac").await;
    let admin = h.client.clone();
    let ns = h.ns.name.clone();
    let name = format!("connect-email-operator-{ns}");

    // The ClusterRole and binding exactly as deployed, bound to a ServiceAccount of this test.
    let text = std::fs::read_to_string(repo_root().join("deploy/base/rbac.yaml")).unwrap();
    let mut documents = serde_yaml::Deserializer::from_str(&text);
    let mut role: ClusterRole = serde::Deserialize::deserialize(documents.next().unwrap()).unwrap();
    let mut binding: ClusterRoleBinding = serde::Deserialize::deserialize(documents.next().unwrap()).unwrap();
    role.metadata.name = Some(name.clone());
    binding.metadata.name = Some(name.clone());
    binding.role_ref.name = name.clone();
    let subjects = binding.subjects.as_mut().unwrap();
    subjects[0].namespace = Some(ns.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Api::<ClusterRole>::all(admin.clone()).patch(&name, &params, &Patch::Apply(&role)).await.unwrap();
    Api::<ClusterRoleBinding>::all(admin.clone()).patch(&name, &params, &Patch::Apply(&binding)).await.unwrap();
    // The mailbox claims' Role in the operator's namespace (the test's), as deployed.
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value: serde_json::Value = serde::Deserialize::deserialize(document).unwrap();
        if value["metadata"]["name"] != "connect-email-operator-mailbox-claims" {
            continue;
        }
        apply_claims_rbac(&admin, &ns, value).await;
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns);
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "connect-email-operator"}})).unwrap();
    accounts.create(&PostParams::default(), &sa).await.unwrap();
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}})).unwrap();
    let token = accounts
        .create_token_request("connect-email-operator", &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let operator = client_with_token(token).await;

    // The identity is really restricted: nothing outside the rules.
    let pods = Api::<Pod>::namespaced(operator.clone(), &ns).list(&ListParams::default()).await;
    assert!(matches!(pods, Err(kube::Error::Api(ref s)) if s.code == 403), "pods should be forbidden: {pods:?}");
    let delete = Api::<Secret>::namespaced(operator.clone(), &ns).delete("anything", &DeleteParams::default()).await;
    assert!(matches!(delete, Err(kube::Error::Api(ref s)) if s.code == 403), "deleting Secrets should be forbidden");

    mailboxes(&h, &["support@contoso.com"]);
    h.start_operator(operator);
    let channels: Api<EmailChannel> = Api::namespaced(admin.clone(), &ns);
    let channel = support_channel();
    channels.patch("support", &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&channel)).await.unwrap();
    let key = eventually(Duration::from_secs(60), || async {
        let c = channels.get("support").await.map_err(|e| e.to_string())?;
        let s = c.status.unwrap_or_default();
        let ready = |t: &str| s.conditions.iter().any(|c| c.type_ == t && c.status == "True");
        if ready(ch_cond::APP_REGISTRATION_READY)
            && ready(ch_cond::MAILBOX_CONFIGURED)
            && ready(ch_cond::CONNECT_SECRET_OUTDATED)
        {
            let r = Api::<connect_email_operator::api::AzureAppRegistration>::namespaced(admin.clone(), &ns)
                .get("support")
                .await
                .map_err(|e| e.to_string())?;
            r.status.and_then(|s| s.credential).map(|c| c.key_id).ok_or("no key".to_string())
        } else {
            Err(format!("{:#?}", s.conditions))
        }
    })
    .await;
    let patch = json!({"metadata": {"annotations": {"connectemail.dev/connect-secret-applied": key}}});
    channels.patch("support", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    eventually(Duration::from_secs(60), || async {
        let c = channels.get("support").await.map_err(|e| e.to_string())?;
        let s = c.status.unwrap_or_default();
        if is_true(&s.conditions, ch_cond::READY) { Ok(()) } else { Err(format!("{s:?}")) }
    })
    .await;
    // The operator wrote the credentials Secret and its events under this identity.
    assert!(Api::<Secret>::namespaced(admin.clone(), &ns).get_opt("support-azure").await.unwrap().is_some());

    h.finish().await;
    let _ = Api::<ClusterRoleBinding>::all(admin.clone()).delete(&name, &DeleteParams::default()).await;
    let _ = Api::<ClusterRole>::all(admin).delete(&name, &DeleteParams::default()).await;
}

/// A token for a new ServiceAccount `name` in `ns`.
/// Applies a rendered Role or RoleBinding of the mailbox claims into the operator's namespace.
async fn apply_claims_rbac(admin: &Client, ns: &str, mut value: serde_json::Value) {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    value["metadata"]["namespace"] = json!(ns);
    let name = value["metadata"]["name"].as_str().unwrap().to_string();
    match value["kind"].as_str() {
        Some("Role") => {
            let role: Role = serde_json::from_value(value).unwrap();
            Api::<Role>::namespaced(admin.clone(), ns).patch(&name, &params, &Patch::Apply(&role)).await.unwrap();
        }
        Some("RoleBinding") => {
            let mut binding: RoleBinding = serde_json::from_value(value).unwrap();
            for subject in binding.subjects.iter_mut().flatten() {
                subject.namespace = Some(ns.to_string());
            }
            Api::<RoleBinding>::namespaced(admin.clone(), ns)
                .patch(&name, &params, &Patch::Apply(&binding))
                .await
                .unwrap();
        }
        other => panic!("unexpected {other:?}"),
    }
}

async fn service_account_token(admin: &Client, ns: &str, name: &str) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    accounts.create(&PostParams::default(), &sa).await.unwrap();
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}})).unwrap();
    accounts.create_token_request(name, &PostParams::default(), &request).await.unwrap().status.unwrap().token
}

#[tokio::test]
async fn in_namespaced_mode_the_operator_runs_its_namespaces_and_is_refused_everywhere_else() {
    let mut h = Harness::without_operator("rbac-ns").await;
    let admin = h.client.clone();
    let ns = h.ns.name.clone();
    let other = TestNamespace::new(&admin, "rbac-other").await;
    let second = TestNamespace::new(&admin, "rbac-second").await;
    let foreign: Secret =
        serde_json::from_value(json!({"metadata": {"name": "not-yours"}, "stringData": {"k": "v"}})).unwrap();
    Api::<Secret>::namespaced(admin.clone(), &other.name).create(&PostParams::default(), &foreign).await.unwrap();

    // The chart's namespaced RBAC, rendered for two watched namespaces (the release lives in the first).
    let watched = format!("{ns},{}", second.name);
    let rendered = helm_template(&[
        "--namespace",
        &ns,
        "--set",
        "rbac.scope=Namespace",
        "--set",
        &format!("watchNamespaces={{{watched}}}"),
    ]);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let tenants_role = format!("ceo-connect-email-operator-tenants-{ns}");
    let mut bound = 0;
    for document in serde_yaml::Deserializer::from_str(&rendered) {
        let value: serde_json::Value = serde::Deserialize::deserialize(document).unwrap();
        if value["metadata"]["name"] == "ceo-connect-email-operator-tenants" {
            // The one cluster-wide grant in namespaced mode: read EntraTenants and namespace labels.
            match value["kind"].as_str() {
                Some("ClusterRole") => {
                    let role: ClusterRole = serde_json::from_value(value.clone()).unwrap();
                    let verbs: Vec<&String> = role.rules.iter().flatten().flat_map(|r| &r.verbs).collect();
                    assert!(verbs.iter().all(|v| ["get", "list", "watch"].contains(&v.as_str())), "{verbs:?}");
                    Api::<ClusterRole>::all(admin.clone())
                        .patch(&tenants_role, &params, &Patch::Apply(&role.with_name(&tenants_role)))
                        .await
                        .unwrap();
                }
                Some("ClusterRoleBinding") => {
                    let mut binding: ClusterRoleBinding = serde_json::from_value(value.clone()).unwrap();
                    binding.metadata.name = Some(tenants_role.clone());
                    binding.role_ref.name = tenants_role.clone();
                    Api::<ClusterRoleBinding>::all(admin.clone())
                        .patch(&tenants_role, &params, &Patch::Apply(&binding))
                        .await
                        .unwrap();
                }
                other => panic!("unexpected {other:?}"),
            }
            continue;
        }
        if value["metadata"]["name"] == "ceo-connect-email-operator-mailbox-claims" {
            apply_claims_rbac(&admin, &ns, value).await;
            continue;
        }
        if value["metadata"]["name"] != "ceo-connect-email-operator" {
            continue;
        }
        match value["kind"].as_str() {
            Some("Role") => {
                let target = value["metadata"]["namespace"].as_str().unwrap().to_string();
                let role: Role = serde_json::from_value(value).unwrap();
                Api::<Role>::namespaced(admin.clone(), &target)
                    .patch("ceo-connect-email-operator", &params, &Patch::Apply(&role))
                    .await
                    .unwrap();
                bound += 1;
            }
            Some("RoleBinding") => {
                let target = value["metadata"]["namespace"].as_str().unwrap().to_string();
                let binding: RoleBinding = serde_json::from_value(value).unwrap();
                Api::<RoleBinding>::namespaced(admin.clone(), &target)
                    .patch("ceo-connect-email-operator", &params, &Patch::Apply(&binding))
                    .await
                    .unwrap();
                bound += 1;
            }
            Some(kind) => assert!(!kind.starts_with("Cluster"), "namespaced mode must not render a {kind}"),
            None => {}
        }
    }
    assert_eq!(bound, 4, "the chart rendered a Role and a RoleBinding per watched namespace");
    let operator = client_with_token(service_account_token(&admin, &ns, "ceo-connect-email-operator").await).await;

    // Refused outside its namespace.
    let secret = Api::<Secret>::namespaced(operator.clone(), &other.name).get("not-yours").await;
    assert!(matches!(secret, Err(kube::Error::Api(ref s)) if s.code == 403), "{secret:?}");
    let everywhere = Api::<EmailChannel>::all(operator.clone()).list(&ListParams::default()).await;
    assert!(matches!(everywhere, Err(kube::Error::Api(ref s)) if s.code == 403), "cluster-wide list must be refused");

    // And at work inside it.
    mailboxes(&h, &["support@contoso.com"]);
    h.start_operator_for(operator, watched.clone());
    // The second watched namespace is served too.
    let registrations: Api<connect_email_operator::api::AzureAppRegistration> =
        Api::namespaced(admin.clone(), &second.name);
    let registration = json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "AzureAppRegistration",
        "metadata": {"name": "second"},
        "spec": {"tenantRef": {"name": TENANT_REF}, "displayName": "Second", "clientSecret": {"secretName": "second-credentials"}}
    });
    registrations.patch("second", &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&registration)).await.unwrap();
    let channels: Api<EmailChannel> = Api::namespaced(admin.clone(), &ns);
    let channel = support_channel();
    channels.patch("support", &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&channel)).await.unwrap();
    eventually(Duration::from_secs(60), || async {
        let c = channels.get("support").await.map_err(|e| e.to_string())?;
        let s = c.status.unwrap_or_default();
        let ok = |t: &str| s.conditions.iter().any(|c| c.type_ == t && c.status == "True");
        if ok(ch_cond::APP_REGISTRATION_READY) && ok(ch_cond::MAILBOX_CONFIGURED) {
            Ok(())
        } else {
            Err(format!("{:#?}", s.conditions))
        }
    })
    .await;
    eventually(Duration::from_secs(60), || async {
        let r = registrations.get("second").await.map_err(|e| e.to_string())?;
        let ready = is_true(&r.status.unwrap_or_default().conditions, app_cond::READY);
        if ready { Ok(()) } else { Err("second namespace not served".to_string()) }
    })
    .await;
    registrations.delete("second", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(30), || async {
        if registrations.get_opt("second").await.unwrap().is_none() { Ok(()) } else { Err("not deleted".to_string()) }
    })
    .await;
    h.finish().await;
    other.delete().await;
    second.delete().await;
    let _ = Api::<ClusterRoleBinding>::all(admin.clone()).delete(&tenants_role, &DeleteParams::default()).await;
    let _ = Api::<ClusterRole>::all(admin).delete(&tenants_role, &DeleteParams::default()).await;
}

trait WithName {
    fn with_name(self, name: &str) -> Self;
}

impl WithName for ClusterRole {
    fn with_name(mut self, name: &str) -> Self {
        self.metadata.name = Some(name.to_string());
        self
    }
}
