//! `kubectl connectemail` against the real apiserver: the status tree of a channel waiting for
//! the person in Connect, Ready, rotated and broken; `rotate`, `ack`, `pause` and `resume`
//! changing exactly their annotation; exit codes; no secret value in any output. The plugin runs
//! in-process through its library entry point, and as the built binary with KUBECONFIG.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use connect_email_operator::api::conditions::{app_registration as app_cond, email_channel as ch_cond, reason};
use connect_email_operator::api::{AzureAppRegistration, EmailChannel};
use connect_email_operator::plugin;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use support::operator::{Harness, TENANT, TENANT_REF};
use support::resources::{apply_channel, channel_condition, mailboxes, verified_key};
use support::{eventually, kubeconfig_path};

const FORWARD_TO: &str = "4f1c2a9b7e4f1c2a9b7e4f1c2a9b7e4f@mail-us.imiconnect.io";

/// One run of the plugin.
struct Run {
    code: i32,
    out: String,
    err: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.out, self.err)
    }
}

/// Runs the plugin in-process with `args`; `tty` is what the person types (None: no terminal).
async fn plugin(client: &Client, args: &[&str], tty: Option<&str>) -> Run {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut input = std::io::Cursor::new(tty.unwrap_or_default().as_bytes().to_vec());
    let mut io = plugin::Io {
        out: &mut out,
        err: &mut err,
        tty: if tty.is_some() { Some(&mut input as &mut dyn std::io::BufRead) } else { None },
    };
    let argv = std::iter::once("kubectl-connectemail").chain(args.iter().copied());
    let code = plugin::run(argv, Some(client.clone()), &mut io).await;
    Run { code, out: String::from_utf8(out).unwrap(), err: String::from_utf8(err).unwrap() }
}

/// Runs the built `kubectl-connectemail` binary with KUBECONFIG pointing at the test cluster and
/// no terminal on stdin.
async fn binary(args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_kubectl-connectemail"))
            .args(&args)
            .env("KUBECONFIG", kubeconfig_path())
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl-connectemail")
    })
    .await
    .unwrap();
    Run {
        code: output.status.code().expect("exited"),
        out: String::from_utf8(output.stdout).unwrap(),
        err: String::from_utf8(output.stderr).unwrap(),
    }
}

/// The client-secret texts a Secret holds (and their base64), to look for in outputs.
async fn secret_texts(client: &Client, ns: &str, name: &str) -> Vec<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), ns).get(name).await.unwrap();
    let mut texts = Vec::new();
    for (key, value) in secret.data.unwrap_or_default() {
        if key.contains("client-secret") {
            let text = String::from_utf8(value.0.clone()).unwrap();
            assert!(text.len() >= 8, "a client secret too short to look for");
            texts.push(base64::engine::general_purpose::STANDARD.encode(&value.0));
            texts.push(text);
        }
    }
    assert!(!texts.is_empty(), "Secret {name} holds no client secret");
    texts
}

fn assert_no_secret_in(runs: &[&Run], texts: &[String]) {
    for (i, run) in runs.iter().enumerate() {
        for text in texts {
            assert!(
                !run.out.contains(text.as_str()) && !run.err.contains(text.as_str()),
                "a client secret appears in output #{i}"
            );
        }
    }
}

fn manual_channel(name: &str, mailbox: &str) -> Value {
    json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel",
        "metadata": {"name": name},
        "spec": {
            "mailbox": mailbox,
            "azure": {"tenantRef": {"name": TENANT_REF}, "clientSecret": {"secretName": format!("{name}-azure"), "revokeAfter": "0s"}},
            "connect": {"mode": "Manual", "region": "us", "tenantHost": "acme.us.webexconnect.io",
                        "assetName": "Support email", "forwardingAddress": FORWARD_TO}
        }
    })
}

#[tokio::test]
async fn status_traces_a_manual_channel_through_acknowledgement_and_rotation() {
    let h = Harness::start("plugin-trace").await;
    let ns = h.ns.name.clone();
    mailboxes(&h, &["support@contoso.com"]);
    apply_channel(&h, &manual_channel("support", "support@contoso.com")).await;

    // Progressing: everything done but the person's part in Connect.
    channel_condition(&h, "support", ch_cond::CONNECT_SECRET_OUTDATED, "True").await;
    channel_condition(&h, "support", ch_cond::MAILBOX_CONFIGURED, "True").await;
    channel_condition(&h, "support", ch_cond::OUTBOUND_FORWARDING_ALLOWED, "True").await;
    let key = verified_key(&h, "support").await.expect("a verified key");
    let mut texts = secret_texts(&h.client, &ns, "support-azure").await;
    let app_id = Api::<AzureAppRegistration>::namespaced(h.client.clone(), &ns)
        .get("support")
        .await
        .unwrap()
        .status
        .unwrap()
        .app_id
        .unwrap();
    let waiting = plugin(&h.client, &["status", "support", "-n", &ns], None).await;
    assert_eq!(waiting.code, plugin::exit::NOT_READY, "{waiting:?}");
    for line in [
        "EmailChannel/support  [NotReady]  mailbox support@contoso.com, Connect Manual mode".to_string(),
        "├─ AzureAppRegistration/support  [Ready]".to_string(),
        format!("EntraApplication/{app_id}  [Ready]"),
        format!("Secret/support-azure  [Ready]  key {key}"),
        "├─ Mailbox/support@contoso.com  [Ready]  forwards to".to_string(),
        "└─ ConnectAsset/Support email  [NotReady]  Manual mode, holds key (none confirmed yet)".to_string(),
        "consumer  EmailChannel support: NOT acknowledged (no key yet)".to_string(),
        format!("Next step: enter the client ID {app_id} and the client secret from Secret support-azure"),
        format!("then run: kubectl connectemail ack support -n {ns} --key-id {key}"),
    ] {
        assert!(waiting.out.contains(&line), "missing {line:?} in\n{waiting:?}");
    }
    let json_run = plugin(&h.client, &["trace", "emailchannel/support", "-n", &ns, "-o", "json"], None).await;
    assert_eq!(json_run.code, plugin::exit::NOT_READY, "{json_run:?}");
    let report: Value = serde_json::from_str(&json_run.out).expect("-o json parses");
    assert_eq!(report["ready"], false);
    assert_eq!(report["tree"]["children"][0]["kind"], "AzureAppRegistration");
    assert_eq!(report["tree"]["children"][0]["children"][1]["fields"]["keyId"], key.as_str());
    assert_eq!(report["credential"]["current"]["keyId"], key.as_str());
    assert_eq!(report["credential"]["pendingAcknowledgements"], json!(["EmailChannel support"]));
    let wide = plugin(&h.client, &["status", "support", "-n", &ns, "-o", "wide"], None).await;
    assert!(
        wide.out.contains(&format!("appId: {app_id}"))
            && wide.out.contains("ConnectSecretOutdated=True  WaitingForAcknowledgement: enter the client secret"),
        "{wide:?}"
    );

    // The built binary, as kubectl runs it: no terminal, so ack without --yes is refused.
    let refused = binary(&["ack", "support", "-n", &ns]).await;
    assert_eq!(refused.code, plugin::exit::USAGE, "{refused:?}");
    assert!(refused.err.contains("stdin is not a terminal: to acknowledge without a prompt pass --yes"), "{refused:?}");
    assert!(refused.out.contains(&format!("current client secret: key ID {key}")), "{refused:?}");
    let channel = Api::<EmailChannel>::namespaced(h.client.clone(), &ns).get("support").await.unwrap();
    assert!(!channel.metadata.annotations.unwrap_or_default().contains_key("connectemail.dev/connect-secret-applied"));

    // The person confirms at the prompt; the channel becomes Ready.
    let acked = plugin(&h.client, &["ack", "support", "-n", &ns], Some("y\n")).await;
    assert_eq!(acked.code, plugin::exit::OK, "{acked:?}");
    assert!(
        acked
            .out
            .contains(&format!("Set connectemail.dev/connect-secret-applied={key} on emailchannel/support? [y/N]")),
        "{acked:?}"
    );
    channel_condition(&h, "support", ch_cond::READY, "True").await;
    let ready = eventually(Duration::from_secs(30), || async {
        let run = binary(&["status", "emailchannel/support", "-n", &ns, "-o", "json"]).await;
        let report: Value = serde_json::from_str(&run.out).map_err(|e| format!("{e}: {run:?}"))?;
        let acknowledged = report["credential"]["consumers"][0]["current"] == true;
        if run.code == plugin::exit::OK && acknowledged { Ok(run) } else { Err(format!("{run:?}")) }
    })
    .await;
    let report: Value = serde_json::from_str(&ready.out).expect("-o json parses");
    assert_eq!(report["ready"], true);
    assert_eq!(
        report["credential"]["consumers"],
        json!([{"name": "EmailChannel support", "acknowledgedKeyId": key, "current": true}])
    );
    assert!(report["nextSteps"][0].as_str().unwrap().starts_with("none: everything is Ready; the next rotation is at"));
    let ready_text = plugin(&h.client, &["status", "support", "-n", &ns], None).await;
    assert_eq!(ready_text.code, plugin::exit::OK, "{ready_text:?}");
    let yaml = plugin(&h.client, &["status", "support", "-n", &ns, "-o", "yaml"], None).await;
    let parsed: Value = serde_yaml::from_str(&yaml.out).expect("-o yaml parses");
    assert_eq!(parsed["credential"]["current"]["keyId"], key.as_str());

    // Day two: rotate through the plugin; the old key waits for the person's acknowledgement.
    let rotated = plugin(&h.client, &["rotate", "emailchannel/support", "-n", &ns], None).await;
    assert_eq!(rotated.code, plugin::exit::OK, "{rotated:?}");
    assert!(rotated.out.starts_with("azureappregistration.connectemail.dev/support rotation requested"), "{rotated:?}");
    let second = eventually(Duration::from_secs(30), || async {
        match verified_key(&h, "support").await {
            Some(k) if k != key => Ok(k),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let pending = eventually(Duration::from_secs(30), || async {
        let run = plugin(&h.client, &["status", "support", "-n", &ns], None).await;
        if run.out.contains(&format!("--key-id {second}")) && run.out.contains("previous  ") {
            Ok(run)
        } else {
            Err(format!("{run:?}"))
        }
    })
    .await;
    assert_eq!(pending.code, plugin::exit::NOT_READY, "{pending:?}");
    assert!(
        pending.out.contains(&format!("previous  {key}")) && pending.out.contains("still used by EmailChannel support"),
        "{pending:?}"
    );
    assert!(pending.out.contains(&format!("NOT acknowledged (still on {key})")), "{pending:?}");
    assert!(pending.out.contains("Next step: enter the new client secret from Secret support-azure"), "{pending:?}");
    let wrong = plugin(&h.client, &["ack", "support", "-n", &ns, "--yes", "--key-id", &key], None).await;
    assert_eq!(wrong.code, plugin::exit::NOT_READY, "{wrong:?}");
    assert!(wrong.err.contains(&format!("is {second}, not {key}")), "{wrong:?}");
    let acked_again = plugin(&h.client, &["ack", "support", "-n", &ns, "--yes", "--key-id", &second], None).await;
    assert_eq!(acked_again.code, plugin::exit::OK, "{acked_again:?}");
    eventually(Duration::from_secs(30), || async {
        let run = plugin(&h.client, &["status", "support", "-n", &ns, "-o", "json"], None).await;
        let report: Value = serde_json::from_str(&run.out).map_err(|e| e.to_string())?;
        if run.code == 0 && report["credential"]["previousKeys"] == json!([]) {
            Ok(())
        } else {
            Err(format!("{run:?}"))
        }
    })
    .await;
    let last = plugin(&h.client, &["status", "support", "-n", &ns, "-o", "json"], None).await;

    texts.extend(secret_texts(&h.client, &ns, "support-azure").await);
    assert_no_secret_in(
        &[
            &waiting,
            &json_run,
            &wide,
            &refused,
            &acked,
            &ready,
            &ready_text,
            &yaml,
            &rotated,
            &pending,
            &wrong,
            &acked_again,
            &last,
        ],
        &texts,
    );
    h.finish().await;
}

#[tokio::test]
async fn status_explains_a_refused_mailbox_and_a_missing_registration() {
    let h = Harness::start("plugin-broken").await;
    let ns = h.ns.name.clone();
    // A mailbox the EntraTenant does not list: nothing is created for it.
    apply_channel(&h, &manual_channel("outsider", "help@northwind.example")).await;
    // A channel naming a registration that does not exist.
    let mut orphan = manual_channel("orphan", "orphan@contoso.com");
    orphan["spec"]["azure"] = json!({"appRegistrationRef": {"name": "nothing-here"}});
    apply_channel(&h, &orphan).await;
    channel_condition(&h, "outsider", ch_cond::ADMITTED, "False").await;
    channel_condition(&h, "orphan", ch_cond::APP_REGISTRATION_READY, "False").await;

    let refused = plugin(&h.client, &["status", "outsider", "-n", &ns], None).await;
    assert_eq!(refused.code, plugin::exit::NOT_READY, "{refused:?}");
    assert!(refused.out.contains("EmailChannel/outsider  [NotReady]"), "{refused:?}");
    assert!(refused.out.contains("Admitted=False NotAdmitted: "), "{refused:?}");
    assert!(refused.out.contains("├─ AzureAppRegistration/outsider  [Missing]"), "{refused:?}");
    assert!(refused.out.contains("Next step: the channel is not admitted: "), "{refused:?}");
    assert!(
        refused.out.contains(&format!("EntraTenant {TENANT_REF} does not allow mailbox help@northwind.example")),
        "{refused:?}"
    );

    let orphaned = plugin(&h.client, &["status", "orphan", "-n", &ns, "-o", "json"], None).await;
    assert_eq!(orphaned.code, plugin::exit::NOT_READY, "{orphaned:?}");
    let report: Value = serde_json::from_str(&orphaned.out).unwrap();
    assert_eq!(report["tree"]["children"][0]["name"], "nothing-here");
    assert_eq!(report["tree"]["children"][0]["state"], "Missing");
    let steps = report["nextSteps"].to_string();
    assert!(
        steps.contains("AzureAppRegistration nothing-here does not exist")
            && steps.contains("azure.appRegistrationRef"),
        "{steps}"
    );

    // Not found and usage errors: 2; an unreachable apiserver: 3.
    for args in [
        vec!["status", "nobody", "-n", &ns],
        vec!["status", "azapp/outsider", "-n", &ns],
        vec!["status", "pod/outsider", "-n", &ns],
        vec!["rotate", "nobody", "-n", &ns],
        vec!["ack", "nobody", "-n", &ns, "--yes"],
        vec!["pause", "-n", &ns],
    ] {
        let run = plugin(&h.client, &args, None).await;
        assert_eq!(run.code, plugin::exit::USAGE, "{args:?}: {run:?}");
        assert!(run.err.starts_with("error: "), "{run:?}");
    }
    let config = kube::Config::new("https://127.0.0.1:1".parse().unwrap());
    let unreachable = Client::try_from(config).unwrap();
    let run = plugin(&unreachable, &["status", "outsider", "-n", &ns], None).await;
    assert_eq!(run.code, plugin::exit::API, "{run:?}");
    h.finish().await;
}

// ---- Actions change exactly their annotation (no operator: nothing else writes) ----

const K1: &str = "aaaaaaaa-1111-4111-8111-000000000001";
const K2: &str = "aaaaaaaa-2222-4222-8222-000000000002";
const FIXTURE_SECRET: &str = "fixture-client-secret~Zq8.must-never-be-printed";
const FIXTURE_PREVIOUS: &str = "fixture-previous-secret~Yp7.must-never-be-printed";

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1})
}

/// A Manual-mode channel half-way through a rotation (Connect holds K1, the current key is K2),
/// a second registration with no channel, and an Api-mode channel; statuses as the operator writes them.
async fn fixtures(client: &Client, ns: &str, run_label: &str) {
    let channels: Api<EmailChannel> = Api::namespaced(client.clone(), ns);
    let registrations: Api<AzureAppRegistration> = Api::namespaced(client.clone(), ns);
    let mut manual = manual_channel("manual", "manual@contoso.com");
    manual["metadata"]["labels"] = json!({"team": "a", "plugin-run": run_label});
    manual["metadata"]["annotations"] = json!({"connectemail.dev/connect-secret-applied": K1, "note": "kept"});
    let manual: EmailChannel =
        channels.create(&PostParams::default(), &serde_json::from_value(manual).unwrap()).await.unwrap();
    let status = json!({"status": {
    "observedGeneration": 1, "appRegistration": "manual", "appId": "app-manual", "secretName": "manual-azure",
    "forwardingAddress": FORWARD_TO,
    "connect": {"appliedKeyId": K1},
    "conditions": [
        condition(ch_cond::READY, "False", reason::IN_PROGRESS, "ConnectAssetSynced: enter the client secret"),
        condition(ch_cond::ADMITTED, "True", reason::ADMITTED, "EntraTenant test-tenant admits this channel"),
        condition(ch_cond::APP_REGISTRATION_READY, "True", reason::RECONCILED, "manual: ready"),
        condition(ch_cond::MAILBOX_CONFIGURED, "True", reason::RECONCILED, "ok"),
        condition(ch_cond::OUTBOUND_FORWARDING_ALLOWED, "True", reason::RECONCILED, "ok"),
        condition(ch_cond::CONNECT_ASSET_SYNCED, "False", reason::WAITING_FOR_ACKNOWLEDGEMENT, "enter the client secret"),
        condition(ch_cond::CONNECT_AUTHORIZED, "True", reason::RECONCILED, "confirmed"),
        condition(ch_cond::CONNECT_SECRET_OUTDATED, "True", reason::WAITING_FOR_ACKNOWLEDGEMENT, "enter the client secret"),
    ]}});
    channels.patch_status("manual", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();

    let registration = |name: &str, labels: Value, owner: Option<&EmailChannel>| {
        let mut r = json!({
            "apiVersion": "connectemail.dev/v1alpha1", "kind": "AzureAppRegistration",
            "metadata": {"name": name, "labels": labels, "annotations": {"note": "kept"}},
            "spec": {"tenantRef": {"name": TENANT_REF}, "displayName": format!("app {name}"),
                     "redirectUris": ["https://acme.us.webexconnect.io/callback"],
                     "clientSecret": {"secretName": format!("{name}-azure"), "requireAcknowledgement": true}}
        });
        if let Some(owner) = owner {
            r["metadata"]["ownerReferences"] = json!([owner.controller_owner_ref(&()).unwrap()]);
            r["metadata"]["annotations"]["ack.connectemail.dev/manual"] = json!(K1);
        }
        serde_json::from_value::<AzureAppRegistration>(r).unwrap()
    };
    registrations
        .create(
            &PostParams::default(),
            &registration("manual", json!({"team": "a", "plugin-run": run_label}), Some(&manual)),
        )
        .await
        .unwrap();
    registrations
        .create(&PostParams::default(), &registration("other", json!({"team": "b", "plugin-run": run_label}), None))
        .await
        .unwrap();
    for (name, previous) in [("manual", true), ("other", false)] {
        let mut status = json!({"status": {
        "observedGeneration": 1, "appId": format!("app-{name}"), "tenantId": TENANT,
        "credential": {"keyId": K2, "notBefore": "2026-01-01T00:00:00Z", "notAfter": "2099-01-01T00:00:00Z",
                       "renewalTime": "2098-01-01T00:00:00Z", "verifiedAt": "2026-01-01T00:00:05Z"},
        "conditions": [
            condition(app_cond::READY, "True", reason::RECONCILED, "ready"),
            condition(app_cond::ADMITTED, "True", reason::ADMITTED, "ok"),
            condition(app_cond::CREDENTIAL_READY, "True", reason::SECRET_VERIFIED, "ok"),
            condition(app_cond::CONSENT_GRANTED, "True", reason::RECONCILED, "ok"),
            condition(app_cond::ROTATING, if previous { "True" } else { "False" }, reason::WAITING_FOR_ACKNOWLEDGEMENT, "kept"),
        ]}});
        if previous {
            status["status"]["previousCredentials"] = json!([{"keyId": K1, "notAfter": "2098-06-01T00:00:00Z"}]);
        }
        registrations.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
        let mut annotations =
            json!({"connectemail.dev/key-id": K2, "connectemail.dev/not-after": "2099-01-01T00:00:00Z"});
        let mut data = json!({"client-id": format!("app-{name}"), "client-secret": FIXTURE_SECRET});
        if previous {
            annotations["connectemail.dev/previous-key-id"] = json!(K1);
            data["previous-client-secret"] = json!(FIXTURE_PREVIOUS);
        }
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-azure"), "annotations": annotations}, "stringData": data
        }))
        .unwrap();
        Api::<Secret>::namespaced(client.clone(), ns).create(&PostParams::default(), &secret).await.unwrap();
    }
    let api_channel = json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel",
        "metadata": {"name": "api", "labels": {"plugin-run": run_label}},
        "spec": {"mailbox": "api@contoso.com", "azure": {"tenantRef": {"name": TENANT_REF}},
                 "connect": {"mode": "Api", "region": "us", "tenantHost": "acme.us.webexconnect.io", "assetName": "Api email",
                             "organizationId": "org", "credentialsSecretRef": {"name": "webex"}}}
    });
    channels.create(&PostParams::default(), &serde_json::from_value(api_channel).unwrap()).await.unwrap();
}

/// The object without what every write changes (resourceVersion, managedFields), split into its
/// annotations and the rest.
async fn snapshot<K>(client: &Client, ns: &str, name: &str) -> (serde_json::Map<String, Value>, Value)
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + serde::Serialize,
{
    let obj = Api::<K>::namespaced(client.clone(), ns).get(name).await.unwrap();
    let mut value = serde_json::to_value(&obj).unwrap();
    let meta = value["metadata"].as_object_mut().unwrap();
    meta.remove("resourceVersion");
    meta.remove("managedFields");
    let annotations = meta.remove("annotations").and_then(|a| a.as_object().cloned()).unwrap_or_default();
    (annotations, value)
}

type Snapshot = (serde_json::Map<String, Value>, Value);

async fn everything(client: &Client, ns: &str) -> [Snapshot; 5] {
    [
        snapshot::<EmailChannel>(client, ns, "manual").await,
        snapshot::<EmailChannel>(client, ns, "api").await,
        snapshot::<AzureAppRegistration>(client, ns, "manual").await,
        snapshot::<AzureAppRegistration>(client, ns, "other").await,
        snapshot::<Secret>(client, ns, "manual-azure").await,
    ]
}

/// Only the annotations `changed` (by index in `everything`) differ, and only in `keys`.
fn assert_only(before: &[Snapshot; 5], after: &[Snapshot; 5], changed: &[(usize, &str)]) {
    for i in 0..5 {
        assert_eq!(before[i].1, after[i].1, "object #{i} changed beyond its annotations");
        let keys: Vec<&str> = changed.iter().filter(|(j, _)| *j == i).map(|(_, k)| *k).collect();
        let mut a = before[i].0.clone();
        let mut b = after[i].0.clone();
        for k in &keys {
            assert_ne!(a.get(*k), b.get(*k), "object #{i}: annotation {k} did not change");
            a.remove(*k);
            b.remove(*k);
        }
        assert_eq!(a, b, "object #{i}: other annotations changed");
    }
}

const CH_MANUAL: usize = 0;
const REG_MANUAL: usize = 2;
const REG_OTHER: usize = 3;

#[tokio::test]
async fn actions_change_exactly_their_annotation() {
    let h = Harness::without_operator("plugin-actions").await;
    let ns = h.ns.name.clone();
    let c = &h.client;
    let run_label = ns.clone();
    fixtures(c, &ns, &run_label).await;
    let mut runs = Vec::new();

    // The fixture's status tree: previous key K1 still used by the channel, the next step is ack.
    let status = plugin(c, &["status", "manual", "-n", &ns, "-o", "json"], None).await;
    assert_eq!(status.code, plugin::exit::NOT_READY, "{status:?}");
    let report: Value = serde_json::from_str(&status.out).unwrap();
    assert_eq!(report["credential"]["previousKeys"][0]["keyId"], K1);
    assert_eq!(report["credential"]["previousKeys"][0]["inUseBy"], json!(["EmailChannel manual"]));
    assert_eq!(
        report["credential"]["secret"],
        json!({"name": "manual-azure", "keyId": K2, "previousKeyId": K1, "notAfter": "2099-01-01T00:00:00Z"})
    );
    assert!(
        report["nextSteps"][0]
            .as_str()
            .unwrap()
            .ends_with(&format!("kubectl connectemail ack manual -n {ns} --key-id {K2}"))
    );
    let other = plugin(c, &["status", "azapp/other", "-n", &ns], None).await;
    assert_eq!(other.code, plugin::exit::OK, "{other:?}");
    assert!(
        other.out.contains("consumer  annotation connectemail.dev/secret-acknowledged: NOT acknowledged (no key yet)"),
        "{other:?}"
    );
    runs.extend([status, other]);

    // rotate NAME (a channel): its registration gets a new rotate value, nothing else changes.
    let before = everything(c, &ns).await;
    let run = plugin(c, &["rotate", "manual", "-n", &ns], None).await;
    assert_eq!(run.code, plugin::exit::OK, "{run:?}");
    let after = everything(c, &ns).await;
    assert_only(&before, &after, &[(REG_MANUAL, "connectemail.dev/rotate")]);
    let first = after[REG_MANUAL].0["connectemail.dev/rotate"].as_str().unwrap().to_string();
    assert!(first.parse::<jiff::Timestamp>().is_ok(), "{first}");
    runs.push(run);
    // Again: a new value.
    let run = plugin(c, &["rotate", "azureappregistration/manual", "-n", &ns], None).await;
    let again = everything(c, &ns).await;
    assert_only(&after, &again, &[(REG_MANUAL, "connectemail.dev/rotate")]);
    runs.push(run);
    // -l: only the matching registration; --all: both; -A with a selector: across namespaces.
    let run = plugin(c, &["rotate", "-l", "team=b", "-n", &ns], None).await;
    assert_eq!(run.out.lines().count(), 1, "{run:?}");
    let selected = everything(c, &ns).await;
    assert_only(&again, &selected, &[(REG_OTHER, "connectemail.dev/rotate")]);
    runs.push(run);
    let run = plugin(c, &["rotate", "--all", "-n", &ns], None).await;
    let all = everything(c, &ns).await;
    assert_only(&selected, &all, &[(REG_MANUAL, "connectemail.dev/rotate"), (REG_OTHER, "connectemail.dev/rotate")]);
    runs.push(run);
    let selector = format!("plugin-run={run_label}");
    let run = plugin(c, &["rotate", "emailchannels", "-A", "-l", &selector], None).await;
    // The Api channel's child registration does not exist: reported (exit 2), the other one rotated.
    assert_eq!(run.code, plugin::exit::USAGE, "{run:?}");
    assert!(run.err.contains("AzureAppRegistration \"api\" not found"), "{run:?}");
    let across = everything(c, &ns).await;
    assert_only(&all, &across, &[(REG_MANUAL, "connectemail.dev/rotate")]);
    assert!(
        run.out.contains(&format!("{ns}/azureappregistration.connectemail.dev/manual rotation requested")),
        "{run:?}"
    );
    runs.push(run);
    for args in
        [vec!["rotate", "-A", "-n", &ns], vec!["rotate", "--all", "manual", "-n", &ns], vec!["rotate", "-n", &ns]]
    {
        let run = plugin(c, &args, None).await;
        assert_eq!(run.code, plugin::exit::USAGE, "{args:?} {run:?}");
    }
    assert_eq!(everything(c, &ns).await, across);

    // pause / resume: the annotation on the named object only; idempotent.
    let run = plugin(c, &["pause", "emailchannel/manual", "-n", &ns], None).await;
    assert_eq!(run.code, plugin::exit::OK, "{run:?}");
    let paused = everything(c, &ns).await;
    assert_only(&across, &paused, &[(CH_MANUAL, "connectemail.dev/paused")]);
    assert_eq!(paused[CH_MANUAL].0["connectemail.dev/paused"], "true");
    runs.push(run);
    let run = plugin(c, &["pause", "manual", "-n", &ns], None).await;
    assert!(run.out.contains("already paused"), "{run:?}");
    assert_eq!(everything(c, &ns).await, paused);
    let run = plugin(c, &["resume", "manual", "-n", &ns], None).await;
    assert_eq!(run.code, plugin::exit::OK, "{run:?}");
    assert_eq!(everything(c, &ns).await, across, "resume restores the annotations exactly");
    let run = plugin(c, &["pause", "azapp/other", "-n", &ns], None).await;
    let paused = everything(c, &ns).await;
    assert_only(&across, &paused, &[(REG_OTHER, "connectemail.dev/paused")]);
    runs.push(run);
    let run = plugin(c, &["resume", "azapp/other", "-n", &ns], None).await;
    assert_eq!(everything(c, &ns).await, across);
    runs.push(run);

    // ack: refused without a terminal, with the wrong key, when declined, on an Api channel.
    for (args, tty, code) in [
        (vec!["ack", "manual", "-n", &ns], None, plugin::exit::USAGE),
        (vec!["ack", "manual", "-n", &ns, "--yes", "--key-id", K1], None, plugin::exit::NOT_READY),
        (vec!["ack", "manual", "-n", &ns], Some("n\n"), plugin::exit::NOT_READY),
        (vec!["ack", "manual", "-n", &ns], Some(""), plugin::exit::NOT_READY),
        (vec!["ack", "api", "-n", &ns, "--yes"], None, plugin::exit::USAGE),
        (vec!["ack", "azapp/manual", "-n", &ns, "--yes"], None, plugin::exit::USAGE),
    ] {
        let run = plugin(c, &args, tty).await;
        assert_eq!(run.code, code, "{args:?} {run:?}");
        assert_eq!(everything(c, &ns).await, across, "{args:?} changed something");
        runs.push(run);
    }
    // Confirmed: the channel's connect-secret-applied names the current key, nothing else changes.
    let run = plugin(c, &["ack", "emailchannel/manual", "-n", &ns, "--key-id", K2], Some("yes\n")).await;
    assert_eq!(run.code, plugin::exit::OK, "{run:?}");
    assert!(run.out.contains(&format!("current client secret: key ID {K2}, verified")), "{run:?}");
    assert!(run.out.contains(&format!("Connect holds now:     {K1}")), "{run:?}");
    let acked = everything(c, &ns).await;
    assert_only(&across, &acked, &[(CH_MANUAL, "connectemail.dev/connect-secret-applied")]);
    assert_eq!(acked[CH_MANUAL].0["connectemail.dev/connect-secret-applied"], K2);
    runs.push(run);
    let run = plugin(c, &["ack", "manual", "-n", &ns, "--yes"], None).await;
    assert_eq!(run.code, plugin::exit::OK, "{run:?}");
    assert!(run.out.contains("already acknowledged"), "{run:?}");
    assert_eq!(everything(c, &ns).await, acked);
    runs.push(run);

    let texts = vec![
        FIXTURE_SECRET.to_string(),
        FIXTURE_PREVIOUS.to_string(),
        base64::engine::general_purpose::STANDARD.encode(FIXTURE_SECRET),
        base64::engine::general_purpose::STANDARD.encode(FIXTURE_PREVIOUS),
    ];
    let wide = plugin(c, &["status", "manual", "-n", &ns, "-o", "wide"], None).await;
    let yaml = plugin(c, &["status", "manual", "-n", &ns, "-o", "yaml"], None).await;
    runs.extend([wide, yaml]);
    assert_no_secret_in(&runs.iter().collect::<Vec<_>>(), &texts);
    h.finish().await;
}
