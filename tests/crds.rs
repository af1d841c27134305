//! The CRDs against the real kube-apiserver: installation, example manifests, admission-time
//! validation (schema bounds and CEL rules) and `kubectl explain`.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use connect_email_operator::api;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::*;

/// The files in `dir` are exactly the CRDs the Rust types generate, byte for byte: none missing,
/// none stale, none left over (a left-over file would still be installed: `install_crds` reads every
/// file of `crds/`, the chart renders every `files/crds/*.yaml`).
fn assert_generated_crds_in(dir: &str) {
    let generated: BTreeMap<String, String> =
        api::crds().iter().map(|crd| (api::crd_file_name(crd), api::crd_yaml(crd))).collect();
    let path = repo_root().join(dir);
    let on_disk: BTreeMap<String, String> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/generate", path.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap_or_default())
        })
        .collect();
    let mut problems = Vec::new();
    for (name, yaml) in &generated {
        match on_disk.get(name) {
            None => problems.push(format!("{dir}/{name} is missing")),
            Some(text) if text != yaml => problems.push(format!("{dir}/{name} differs from the generated CRD")),
            Some(_) => {}
        }
    }
    for name in on_disk.keys().filter(|name| !generated.contains_key(*name)) {
        problems.push(format!("{dir}/{name} is not a CRD the Rust types generate (delete it)"));
    }
    assert!(problems.is_empty(), "{}: run scripts/generate", problems.join("; "));
}

#[test]
fn checked_in_crds_match_the_rust_types() {
    assert_generated_crds_in("crds");
}

/// The chart's copy, which its templates/crds.yaml renders (tests/helm.rs checks the rendered CRDs
/// too, with helm).
#[test]
fn the_helm_charts_crd_copy_matches_the_rust_types() {
    assert_generated_crds_in("charts/connect-email-operator/files/crds");
}

/// The kustomize base's copy (the_kustomize_base_lists_every_crd checks its kustomization).
#[test]
fn the_kustomize_bases_crd_copy_matches_the_rust_types() {
    assert_generated_crds_in("deploy/base/crds");
}

#[test]
fn the_kustomize_base_lists_every_crd() {
    let text = std::fs::read_to_string(repo_root().join("deploy/base/kustomization.yaml")).unwrap();
    let kustomization: serde_json::Value = serde_yaml::from_str(&text).unwrap();
    let resources = kustomization["resources"].as_array().unwrap();
    for crd in api::crds() {
        let file = json!(format!("crds/{}", api::crd_file_name(&crd)));
        assert!(resources.contains(&file), "deploy/base/kustomization.yaml does not list {file}");
    }
}

#[test]
fn every_example_parses_as_the_typed_resources() {
    for entry in std::fs::read_dir(repo_root().join("deploy/examples")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let value: Value = serde_yaml::from_str(&text).unwrap();
        let parsed = match value["kind"].as_str() {
            Some("EmailChannel") => serde_json::from_value::<api::EmailChannel>(value).map(drop),
            Some("AzureAppRegistration") => serde_json::from_value::<api::AzureAppRegistration>(value).map(drop),
            Some("EntraTenant") => serde_json::from_value::<api::EntraTenant>(value).map(drop),
            other => panic!("{}: unexpected kind {other:?}", path.display()),
        };
        parsed.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

fn resource(kind: &str) -> ApiResource {
    let plural = match kind {
        "AzureAppRegistration" => "azureappregistrations",
        "EmailChannel" => "emailchannels",
        "EntraTenant" => "entratenants",
        other => panic!("unknown kind {other}"),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(api::GROUP, "v1alpha1", kind), plural)
}

fn app_registration() -> Value {
    json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "AzureAppRegistration",
        "metadata": {"name": "app"},
        "spec": {
            "tenantRef": {"name": "test-tenant"},
            "displayName": "Test app",
            "redirectUris": ["https://acme.us.webexconnect.io/callback"],
            "permissions": [{"resource": "Office 365 Exchange Online", "delegated": ["SMTP.Send"]}],
            "clientSecret": {"secretName": "app-credentials", "duration": "4320h"}
        }
    })
}

fn entra_tenant() -> Value {
    json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "EntraTenant",
        "metadata": {"name": "tenant"},
        "spec": {
            "tenantId": "11111111-2222-3333-4444-555555555555",
            "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["support"]}]},
            "mailboxes": ["*@contoso.com", "ops@fabrikam.com", "*@*.contoso.net"],
            "forwarding": {"allowedDestinations": ["*@partner.example"]},
            "connect": {"tenantHosts": ["contoso.us.webexconnect.io", "Contoso.EU.webexconnect.io."]},
        }
    })
}

fn email_channel() -> Value {
    json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel",
        "metadata": {"name": "channel"},
        "spec": {
            "mailbox": "support@contoso.com",
            "azure": {"tenantRef": {"name": "test-tenant"}},
            "connect": {
                "mode": "Manual", "region": "us", "tenantHost": "acme.us.webexconnect.io",
                "assetName": "Support", "forwardingAddress": "0123456789abcdef0123456789abcdef@mail-us.imiconnect.io"
            }
        }
    })
}

fn set(object: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = object.pointer_mut(parent).unwrap_or_else(|| panic!("no {parent}"));
    parent.as_object_mut().unwrap().insert(key.to_string(), value);
}

fn remove(object: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    object.pointer_mut(parent).unwrap().as_object_mut().unwrap().remove(key);
}

struct Case {
    name: &'static str,
    base: fn() -> Value,
    /// Applied before creating (create cases) or between create and update (update cases).
    change: fn(&mut Value),
    on_update: bool,
    expected: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "tenant-credential-workload-identity-with-secret",
            base: entra_tenant,
            on_update: false,
            change: |o| {
                set(
                    o,
                    "/spec/credential",
                    json!({"clientId": "0e0e0e0e-1111-2222-3333-444444444444", "secretRef": {"name": "x"}}),
                )
            },
            expected: "credential.secretRef is required for the ClientSecret and Certificate sources",
        },
        Case {
            name: "tenant-credential-secret-without-ref",
            base: entra_tenant,
            on_update: false,
            change: |o| {
                set(
                    o,
                    "/spec/credential",
                    json!({"clientId": "0e0e0e0e-1111-2222-3333-444444444444", "source": "ClientSecret"}),
                )
            },
            expected: "credential.secretRef is required for the ClientSecret and Certificate sources",
        },
        Case {
            name: "tenant-credential-client-id-not-a-guid",
            base: entra_tenant,
            on_update: false,
            change: |o| set(o, "/spec/credential", json!({"clientId": "operator-app"})),
            expected: "credential.clientId must be the application (client) ID GUID",
        },
        Case {
            name: "mailbox-not-an-email",
            base: email_channel,
            on_update: false,
            change: |o| set(o, "/spec/mailbox", json!("support-at-contoso")),
            expected: "mailbox must be an email address",
        },
        Case {
            name: "tenant-not-a-guid",
            base: entra_tenant,
            on_update: false,
            change: |o| set(o, "/spec/tenantId", json!("contoso.onmicrosoft.com")),
            expected: "tenantId must be the tenant's GUID",
        },
        Case {
            name: "tenant-selector-bad-operator",
            base: entra_tenant,
            on_update: false,
            change: |o| {
                set(
                    o,
                    "/spec/namespaceSelector",
                    json!({"matchExpressions": [{"key": "team", "operator": "Contains", "values": ["s"]}]}),
                )
            },
            expected: "operator must be In, NotIn, Exists or DoesNotExist",
        },
        Case {
            name: "tenant-selector-in-without-values",
            base: entra_tenant,
            on_update: false,
            change: |o| {
                set(o, "/spec/namespaceSelector", json!({"matchExpressions": [{"key": "team", "operator": "In"}]}))
            },
            expected: "values must be non-empty for In and NotIn",
        },
        Case {
            name: "tenant-without-selector",
            base: entra_tenant,
            on_update: false,
            change: |o| remove(o, "/spec/namespaceSelector"),
            expected: "namespaceSelector: Required value",
        },
        Case {
            name: "tenant-mailbox-pattern",
            base: entra_tenant,
            on_update: false,
            change: |o| set(o, "/spec/mailboxes", json!(["*contoso.com"])),
            expected: "mailboxes entries must be an address",
        },
        Case {
            name: "tenant-connect-host-with-scheme",
            base: entra_tenant,
            on_update: false,
            change: |o| set(o, "/spec/connect", json!({"tenantHosts": ["https://contoso.us.webexconnect.io"]})),
            expected: "connect.tenantHosts entries must be host names",
        },
        Case {
            name: "tenant-connect-host-with-port",
            base: entra_tenant,
            on_update: false,
            change: |o| set(o, "/spec/connect", json!({"tenantHosts": ["contoso.us.webexconnect.io:443"]})),
            expected: "connect.tenantHosts entries must be host names",
        },
        Case {
            name: "tenant-connect-host-wildcard",
            base: entra_tenant,
            on_update: false,
            change: |o| set(o, "/spec/connect", json!({"tenantHosts": ["*.us.webexconnect.io"]})),
            expected: "connect.tenantHosts entries must be host names",
        },
        Case {
            name: "tenant-mailbox-wildcard-in-the-middle",
            base: entra_tenant,
            on_update: false,
            change: |o| set(o, "/spec/mailboxes", json!(["a@cont*so.com"])),
            expected: "mailboxes entries must be an address",
        },
        Case {
            name: "tenant-forwarding-pattern",
            base: entra_tenant,
            on_update: false,
            change: |o| set(o, "/spec/forwarding/allowedDestinations", json!(["*@*.partner.example"])),
            expected: "forwarding.allowedDestinations entries must be an address",
        },
        Case {
            name: "tenant-allowed-permission-not-a-guid",
            base: entra_tenant,
            on_update: false,
            change: |o| {
                set(
                    o,
                    "/spec/permissions",
                    json!({"allowed": [{"resourceAppId": "Microsoft Graph", "delegated": ["offline_access"]}]}),
                )
            },
            expected: "resourceAppId must be the API's application ID GUID",
        },
        Case {
            name: "tenant-id-of-tenant-changed",
            base: entra_tenant,
            on_update: true,
            change: |o| set(o, "/spec/tenantId", json!("99999999-2222-3333-4444-555555555555")),
            expected: "tenantId is immutable",
        },
        Case {
            name: "redirect-uri-not-https",
            base: app_registration,
            on_update: false,
            change: |o| set(o, "/spec/redirectUris", json!(["http://acme.us.webexconnect.io/callback"])),
            expected: "redirectUris must use https://",
        },
        Case {
            name: "redirect-uri-too-long",
            base: app_registration,
            on_update: false,
            change: |o| set(o, "/spec/redirectUris", json!([format!("https://a.io/{}", "x".repeat(250))])),
            expected: "Too long",
        },
        Case {
            name: "too-many-redirect-uris",
            base: app_registration,
            on_update: false,
            change: |o| {
                set(o, "/spec/redirectUris", json!((0..257).map(|i| format!("https://a.io/{i}")).collect::<Vec<_>>()))
            },
            expected: "Too many",
        },
        Case {
            name: "duration-below-one-hour",
            base: app_registration,
            on_update: false,
            change: |o| set(o, "/spec/clientSecret/duration", json!("30m")),
            expected: "clientSecret.duration must be between 1h and 17520h",
        },
        Case {
            name: "duration-above-two-years",
            base: app_registration,
            on_update: false,
            change: |o| set(o, "/spec/clientSecret/duration", json!("20000h")),
            expected: "clientSecret.duration must be between 1h and 17520h",
        },
        Case {
            name: "duration-not-a-duration",
            base: app_registration,
            on_update: false,
            change: |o| set(o, "/spec/clientSecret/duration", json!("180 days")),
            expected: "clientSecret.duration must be a duration such as",
        },
        Case {
            name: "renew-before-not-shorter-than-duration",
            base: app_registration,
            on_update: false,
            change: |o| set(o, "/spec/clientSecret/renewBefore", json!("4320h")),
            expected: "clientSecret.renewBefore must be shorter than clientSecret.duration",
        },
        Case {
            name: "renew-before-and-percentage",
            base: app_registration,
            on_update: false,
            change: |o| {
                set(o, "/spec/clientSecret/renewBefore", json!("720h"));
                set(o, "/spec/clientSecret/renewBeforePercentage", json!(30));
            },
            expected: "set only one of clientSecret.renewBefore and clientSecret.renewBeforePercentage",
        },
        Case {
            name: "renew-percentage-out-of-range",
            base: app_registration,
            on_update: false,
            change: |o| set(o, "/spec/clientSecret/renewBeforePercentage", json!(100)),
            expected: "should be less than or equal to 99",
        },
        Case {
            name: "revoke-after-negative",
            base: app_registration,
            on_update: false,
            change: |o| set(o, "/spec/clientSecret/revokeAfter", json!("-1h")),
            expected: "clientSecret.revokeAfter must be a duration of zero or more",
        },
        Case {
            name: "secret-name-not-dns",
            base: app_registration,
            on_update: false,
            change: |o| set(o, "/spec/clientSecret/secretName", json!("App_Credentials")),
            expected: "clientSecret.secretName must be a lowercase DNS subdomain name",
        },
        Case {
            name: "permission-without-names",
            base: app_registration,
            on_update: false,
            change: |o| set(o, "/spec/permissions", json!([{"resource": "Microsoft Graph"}])),
            expected: "each permissions entry needs at least one name",
        },
        Case {
            name: "unknown-deletion-policy",
            base: app_registration,
            on_update: false,
            change: |o| set(o, "/spec/deletionPolicy", json!("Keep")),
            expected: "Unsupported value: \"Keep\"",
        },
        Case {
            name: "unknown-connect-region",
            base: email_channel,
            on_update: false,
            change: |o| set(o, "/spec/connect/region", json!("jp")),
            expected: "Unsupported value: \"jp\"",
        },
        Case {
            name: "manual-mode-without-forwarding-address",
            base: email_channel,
            on_update: false,
            change: |o| remove(o, "/spec/connect/forwardingAddress"),
            expected: "connect.forwardingAddress is required in Manual mode",
        },
        Case {
            name: "api-mode-without-organization",
            base: email_channel,
            on_update: false,
            change: |o| set(o, "/spec/connect/mode", json!("Api")),
            expected: "connect.organizationId and connect.credentialsSecretRef are required in Api mode",
        },
        Case {
            name: "tenant-host-with-scheme",
            base: email_channel,
            on_update: false,
            change: |o| set(o, "/spec/connect/tenantHost", json!("https://acme.us.webexconnect.io/")),
            expected: "connect.tenantHost must be a host name",
        },
        Case {
            name: "both-tenant-and-app-reference",
            base: email_channel,
            on_update: false,
            change: |o| set(o, "/spec/azure/appRegistrationRef", json!({"name": "shared-app"})),
            expected: "set exactly one of azure.tenantRef",
        },
        Case {
            name: "neither-tenant-nor-app-reference",
            base: email_channel,
            on_update: false,
            change: |o| remove(o, "/spec/azure/tenantRef"),
            expected: "set exactly one of azure.tenantRef",
        },
        Case {
            name: "overrides-with-app-reference",
            base: email_channel,
            on_update: false,
            change: |o| set(o, "/spec/azure", json!({"appRegistrationRef": {"name": "shared"}, "displayName": "x"})),
            expected: "apply to the child app registration only",
        },
        Case {
            name: "smtp-port-out-of-range",
            base: email_channel,
            on_update: false,
            change: |o| set(o, "/spec/smtp", json!({"port": 70000})),
            expected: "should be less than or equal to 65535",
        },
        Case {
            name: "tenant-ref-changed",
            base: app_registration,
            on_update: true,
            change: |o| set(o, "/spec/tenantRef", json!({"name": "another"})),
            expected: "tenantRef is immutable",
        },
        Case {
            name: "secret-name-changed",
            base: app_registration,
            on_update: true,
            change: |o| set(o, "/spec/clientSecret/secretName", json!("other-secret")),
            expected: "clientSecret.secretName is immutable",
        },
        Case {
            name: "adopt-added-after-creation",
            base: app_registration,
            on_update: true,
            change: |o| set(o, "/spec/adopt", json!({"appId": "aaaaaaaa-2222-3333-4444-555555555555"})),
            expected: "adopt can only be set when the resource is created",
        },
        Case {
            name: "adopt-app-id-changed",
            base: || {
                let mut o = app_registration();
                set(&mut o, "/spec/adopt", json!({"appId": "aaaaaaaa-2222-3333-4444-555555555555"}));
                o
            },
            on_update: true,
            change: |o| set(o, "/spec/adopt", json!({"appId": "bbbbbbbb-2222-3333-4444-555555555555"})),
            expected: "adopt.appId is immutable once set",
        },
        Case {
            name: "channel-tenant-changed",
            base: email_channel,
            on_update: true,
            change: |o| set(o, "/spec/azure/tenantRef", json!({"name": "another"})),
            expected: "azure.tenantRef is immutable",
        },
        Case {
            name: "channel-mailbox-changed",
            base: email_channel,
            on_update: true,
            change: |o| set(o, "/spec/mailbox", json!("billing@contoso.com")),
            expected: "mailbox is immutable",
        },
    ]
}

#[tokio::test]
async fn bad_manifests_are_rejected_at_admission_with_a_message_saying_what_to_fix() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "bad-manifests").await;
    // The valid bases are accepted: otherwise every rejection below would prove nothing.
    let api_for = |kind: &str| -> Api<DynamicObject> {
        if kind == "EntraTenant" {
            Api::all_with(client.clone(), &resource(kind))
        } else {
            Api::namespaced_with(client.clone(), &ns.name, &resource(kind))
        }
    };
    let mut cluster_scoped = Vec::new();
    for base in [app_registration(), email_channel(), entra_tenant()] {
        let kind = base["kind"].as_str().unwrap().to_string();
        let api = api_for(&kind);
        let mut object = base.clone();
        let name = if kind == "EntraTenant" { format!("{}-valid-base", ns.name) } else { "valid-base".into() };
        if kind == "EntraTenant" {
            cluster_scoped.push(name.clone());
        }
        set(&mut object, "/metadata/name", json!(name));
        let object: DynamicObject = serde_json::from_value(object).unwrap();
        api.create(&PostParams::default(), &object).await.unwrap_or_else(|e| panic!("valid {kind} rejected: {e}"));
    }

    let mut failures = Vec::new();
    for (i, case) in cases().into_iter().enumerate() {
        let mut object = (case.base)();
        let kind = object["kind"].as_str().unwrap().to_string();
        let name = if kind == "EntraTenant" { format!("{}-case-{i}", ns.name) } else { format!("case-{i}") };
        if kind == "EntraTenant" {
            cluster_scoped.push(name.clone());
        }
        set(&mut object, "/metadata/name", json!(name));
        let api = api_for(&kind);
        let result = if case.on_update {
            let created: DynamicObject = serde_json::from_value(object.clone()).unwrap();
            api.create(&PostParams::default(), &created)
                .await
                .unwrap_or_else(|e| panic!("{}: base rejected: {e}", case.name));
            (case.change)(&mut object);
            api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&object)).await
        } else {
            (case.change)(&mut object);
            let object: DynamicObject = serde_json::from_value(object).unwrap();
            api.create(&PostParams::default(), &object).await
        };
        match result {
            Ok(_) => failures.push(format!("{}: accepted, expected rejection with {:?}", case.name, case.expected)),
            Err(kube::Error::Api(status)) if status.message.contains(case.expected) => {}
            Err(other) => failures.push(format!("{}: expected {:?}, got: {other}", case.name, case.expected)),
        }
    }
    let tenants = api_for("EntraTenant");
    for name in cluster_scoped {
        let _ = tenants.delete(&name, &Default::default()).await;
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
    ns.delete().await;
}

#[tokio::test]
async fn crds_install_and_are_established() {
    let client = client().await;
    install_crds(&client).await;
    let (ok, out, err) = kubectl(&["api-resources", "--api-group", api::GROUP, "-o", "name"]);
    assert!(ok, "{err}");
    assert!(out.contains("azureappregistrations.connectemail.dev"), "{out}");
    assert!(out.contains("emailchannels.connectemail.dev"), "{out}");
    assert!(out.contains("entratenants.connectemail.dev"), "{out}");
}

/// Each example manifest, with its namespace replaced by the test's.
fn examples_in(namespace: &str, dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut written = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(repo_root().join("deploy/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    entries.sort();
    assert!(entries.len() >= 3, "deploy/examples should hold the example manifests");
    for path in entries {
        let mut object: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if object["kind"] != "EntraTenant" {
            set(&mut object, "/metadata/namespace", json!(namespace));
        }
        let target = dir.join(path.file_name().unwrap());
        std::fs::write(&target, serde_yaml::to_string(&object).unwrap()).unwrap();
        written.push(target);
    }
    written
}

#[tokio::test]
async fn examples_are_accepted_and_applying_them_twice_changes_nothing() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "examples").await;
    let dir = std::env::temp_dir().join(format!("examples-{}", ns.name));
    std::fs::create_dir_all(&dir).unwrap();
    for file in examples_in(&ns.name, &dir) {
        let file = file.to_str().unwrap();
        let (ok, out, err) = kubectl(&["apply", "--server-side", "--field-manager", "argocd-controller", "-f", file]);
        assert!(ok, "{file} rejected: {err}");
        let (_, first, _) = kubectl(&["get", "-f", file, "-o", "jsonpath={.metadata.resourceVersion}"]);
        let (ok, _, err) = kubectl(&["apply", "--server-side", "--field-manager", "argocd-controller", "-f", file]);
        assert!(ok, "{file} second apply: {err}");
        let (_, second, _) = kubectl(&["get", "-f", file, "-o", "jsonpath={.metadata.resourceVersion}"]);
        assert_eq!(first, second, "{file}: second apply changed the object ({out})");
        // What Argo CD's server-side diff would show: nothing, because defaults live in the schema.
        let (same, diff, err) = kubectl(&["diff", "--server-side", "--field-manager", "argocd-controller", "-f", file]);
        assert!(same, "{file}: kubectl diff shows a difference:\n{diff}{err}");
    }
    ns.delete().await;
}

#[tokio::test]
async fn defaults_are_filled_in_by_the_schema() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "defaults").await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &resource("EmailChannel"));
    let created = api.create(&PostParams::default(), &serde_json::from_value(email_channel()).unwrap()).await.unwrap();
    let spec = &created.data["spec"];
    assert_eq!(spec["smtp"], json!({"server": "smtp.office365.com", "port": 587, "security": "STARTTLS"}));
    assert_eq!(
        spec["exchange"],
        json!({"manage": true, "smtpAuth": true, "forwarding": {"enabled": true, "keepCopy": true}})
    );
    let typed: api::EmailChannel = serde_json::from_value(serde_json::to_value(&created).unwrap()).unwrap();
    assert_eq!(typed.spec.connect.mode, api::email_channel::ConnectMode::Manual);
    ns.delete().await;
}

#[tokio::test]
async fn kubectl_explain_shows_the_field_documentation() {
    let client = client().await;
    install_crds(&client).await;
    // The apiserver publishes a new CRD's OpenAPI asynchronously.
    let out = eventually(Duration::from_secs(60), || async {
        let (ok, out, err) = kubectl(&["explain", "emailchannel.spec.connect"]);
        if ok && out.contains("tenantHost") { Ok(out) } else { Err(format!("{out}{err}")) }
    })
    .await;
    assert!(out.contains("Manual (default): the operator computes the values a person enters"), "{out}");
    assert!(out.contains("forwardingAddress"), "{out}");
    let (ok, out, err) = kubectl(&["explain", "azureappregistration.spec.clientSecret.renewBefore"]);
    assert!(ok, "{err}");
    assert!(out.contains("Renew this long before the secret expires"), "{out}");
}

#[tokio::test]
async fn the_kustomize_base_installs_cleanly_and_reapplying_it_changes_nothing() {
    let client = client().await;
    install_crds(&client).await;
    let base = repo_root().join("deploy/base");
    let base = base.to_str().unwrap();
    let (ok, out, err) =
        kubectl(&["apply", "--server-side", "--force-conflicts", "--field-manager", "argocd-controller", "-k", base]);
    assert!(ok, "kustomize base rejected: {out}{err}");
    // The pod template satisfies the restricted Pod Security standard the namespace enforces.
    assert!(!err.contains("PodSecurity"), "{err}");
    let (same, diff, err) =
        kubectl(&["diff", "--server-side", "--force-conflicts", "--field-manager", "argocd-controller", "-k", base]);
    assert!(same, "a second apply would change something:\n{diff}{err}");
}
