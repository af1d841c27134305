//! An Api-mode EmailChannel driven to Ready, and the invariants every reliability test (crash
//! matrix, fault matrix) checks on it: one application, no orphaned password, a Secret the token
//! endpoint accepts, Connect holding the current secret, the previous password revoked only after
//! the new one was verified and pushed, a consistent status, no secret in the logs.

use connect_email_operator::controller::app_registration::credential::acknowledgement_annotation;
use std::time::Duration;

use connect_email_operator::api::conditions::email_channel;
use connect_email_operator::api::{AzureAppRegistration, EmailChannel};
use connect_email_sim::connect::routes as connect_routes;
use connect_email_sim::{CallRecord, TokenStatus, routes};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::operator::{CONNECT_ORG, CONNECT_TOKEN, Harness, OPERATOR_SECRET, TENANT, TENANT_REF};
use super::resources::{connect_token_secret, is_true, mailboxes};
use super::{FIELD_MANAGER, eventually, sim_client};

pub const MAILBOX: &str = "reliable@contoso.com";
pub const CHANNEL: &str = "reliable";
pub const CHANNEL_SECRET: &str = "reliable-azure";

/// The mailbox, an outbound policy that allows forwarding and the Webex token Secret.
pub async fn prepare(h: &Harness) {
    mailboxes(h, &[MAILBOX]);
    connect_token_secret(h).await;
}

pub fn manifest() -> serde_json::Value {
    json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel",
        "metadata": {"name": CHANNEL},
        "spec": {
            "mailbox": MAILBOX,
            "azure": {"tenantRef": {"name": TENANT_REF}, "clientSecret": {"secretName": CHANNEL_SECRET, "revokeAfter": "0s"}},
            "connect": {"mode": "Api", "region": "us", "tenantHost": "acme.us.webexconnect.io", "assetName": "Reliable email",
                        "organizationId": CONNECT_ORG, "credentialsSecretRef": {"name": "webex-connect-api"}}
        }
    })
}

pub async fn apply(h: &Harness) {
    Api::<EmailChannel>::namespaced(h.client.clone(), &h.ns.name)
        .patch(CHANNEL, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&manifest()))
        .await
        .unwrap();
}

/// Forces a rotation of the channel's secret (annotation on its registration).
pub async fn rotate(h: &Harness, value: &str) {
    let rotate = json!({"metadata": {"annotations": {"connectemail.dev/rotate": value}}});
    Api::<AzureAppRegistration>::namespaced(h.client.clone(), &h.ns.name)
        .patch(CHANNEL, &PatchParams::default(), &Patch::Merge(&rotate))
        .await
        .unwrap();
}

/// The Secret's (client-id, client-secret, key-id), if it exists.
pub async fn stored_secret(h: &Harness) -> Option<(String, String, String)> {
    let s = Api::<Secret>::namespaced(h.client.clone(), &h.ns.name).get_opt(CHANNEL_SECRET).await.ok()??;
    let data = s.data?;
    let get = |k: &str| data.get(k).and_then(|v| String::from_utf8(v.0.clone()).ok());
    let key = s.metadata.annotations?.get("connectemail.dev/key-id").cloned()?;
    Some((get("client-id")?, get("client-secret")?, key))
}

/// Whether the token endpoint accepts (client_id, secret).
pub async fn token_accepts(h: &Harness, client_id: &str, secret: &str) -> bool {
    let http = sim_client::https_client(&h.sim.ca_pem());
    let form = sim_client::client_credentials(client_id, secret, sim_client::GRAPH_SCOPE);
    let response = http.post(sim_client::token_url(&h.sim, TENANT)).form(&form).send().await;
    response.is_ok_and(|r| r.status().is_success())
}

/// The Secret `name`'s (client ID, key ID) if the token endpoint accepts its client secret.
pub async fn secret_accepted(h: &Harness, name: &str) -> Result<(String, String), String> {
    let s = Api::<Secret>::namespaced(h.client.clone(), &h.ns.name).get(name).await.map_err(|e| e.to_string())?;
    let key_id = s.metadata.annotations.as_ref().and_then(|a| a.get("connectemail.dev/key-id").cloned());
    let data = s.data.ok_or("no data")?;
    let get = |k: &str| data.get(k).and_then(|v| String::from_utf8(v.0.clone()).ok()).ok_or(format!("no {k}"));
    let (client_id, secret) = (get("client-id")?, get("client-secret")?);
    if !token_accepts(h, &client_id, &secret).await {
        return Err("the token endpoint refuses the Secret's client secret".into());
    }
    Ok((client_id, key_id.ok_or("no key-id annotation")?))
}

/// No outage: when a secret has been written, the Secret holds one the token endpoint accepts
/// (`client-secret`, or during a rotation `previous-client-secret` while the new one propagates).
pub async fn secret_works_or_absent(h: &Harness) -> bool {
    let Some(s) = Api::<Secret>::namespaced(h.client.clone(), &h.ns.name).get_opt(CHANNEL_SECRET).await.ok().flatten()
    else {
        return true;
    };
    let data = s.data.unwrap_or_default();
    let get = |k: &str| data.get(k).and_then(|v| String::from_utf8(v.0.clone()).ok());
    let Some(id) = get("client-id") else { return false };
    for key in ["client-secret", "previous-client-secret"] {
        if let Some(secret) = get(key)
            && token_accepts(h, &id, &secret).await
        {
            return true;
        }
    }
    false
}

/// Waits (up to `timeout`) for [`converged_now`].
pub async fn converged(h: &Harness, not_key: Option<&str>, timeout: Duration) -> (EmailChannel, AzureAppRegistration) {
    eventually(timeout, || converged_now(h, not_key)).await
}

/// A Ready channel whose status, registration and Connect name the same verified key (different
/// from `not_key`), with no previous secret left; else what is missing. Plays the person who signs
/// in once in Connect when the asset asks for it.
pub async fn converged_now(h: &Harness, not_key: Option<&str>) -> Result<(EmailChannel, AzureAppRegistration), String> {
    for asset in h.connect.assets(CONNECT_ORG) {
        if asset.token_status != TokenStatus::Generated {
            h.connect.complete_sign_in(&asset.asset_id);
        }
    }
    let c =
        Api::<EmailChannel>::namespaced(h.client.clone(), &h.ns.name).get(CHANNEL).await.map_err(|e| e.to_string())?;
    let r = Api::<AzureAppRegistration>::namespaced(h.client.clone(), &h.ns.name)
        .get(CHANNEL)
        .await
        .map_err(|e| e.to_string())?;
    let cs = c.status.clone().unwrap_or_default();
    let rs = r.status.clone().unwrap_or_default();
    let ready = is_true(&cs.conditions, email_channel::READY);
    let key = rs.credential.as_ref().filter(|c| c.verified_at.is_some()).map(|c| c.key_id.clone());
    let applied = cs.connect.as_ref().and_then(|c| c.applied_key_id.clone());
    let settled = rs.previous_credentials.is_empty() && rs.pending_rotation.is_none();
    let new = key.is_some() && key.as_deref() != not_key;
    if ready && new && settled && applied == key {
        Ok((c, r))
    } else {
        Err(format!("ready {ready}, key {key:?}, applied {applied:?}, settled {settled}: {cs:?}"))
    }
}

/// Where the calls of one phase start in the simulators' logs.
#[derive(Clone, Debug)]
pub struct Mark {
    microsoft: usize,
    connect: usize,
    /// The password the application had when the phase started (the key a rotation replaces).
    key_id: Option<String>,
}

pub fn mark(h: &Harness) -> Mark {
    let key_id = h.sim.applications(TENANT).first().and_then(|a| a.passwords.first()).map(|p| p.key_id.clone());
    Mark { microsoft: h.sim.calls().len(), connect: h.connect.calls().len(), key_id }
}

/// Microsoft calls since `mark`.
pub fn microsoft_calls(h: &Harness, mark: &Mark) -> Vec<CallRecord> {
    h.sim.calls().split_off(mark.microsoft)
}

/// Connect calls since `mark`.
pub fn connect_calls(h: &Harness, mark: &Mark) -> Vec<CallRecord> {
    h.connect.calls().split_off(mark.connect)
}

/// The invariants after a converged phase; `rotated` says whether the phase replaced a secret
/// (exactly one revocation expected) or issued the first one.
pub struct Invariants {
    pub apps: usize,
    pub passwords: usize,
    pub assets: usize,
    pub secret_valid: bool,
    pub connect_current: bool,
    pub mailbox_ok: bool,
    pub revoke_ordered: bool,
    pub status_ok: bool,
    pub no_leak: bool,
    pub problems: Vec<String>,
}

impl Invariants {
    pub async fn check(
        h: &Harness,
        converged: (EmailChannel, AzureAppRegistration),
        rotated: bool,
        since: Mark,
        logs: &str,
    ) -> Invariants {
        let (channel, registration) = converged;
        let cs = channel.status.unwrap_or_default();
        let current = registration.status.clone().unwrap_or_default().credential.map(|c| c.key_id).unwrap_or_default();
        let apps = h.sim.applications(TENANT);
        let passwords: Vec<String> = apps.iter().flat_map(|a| a.passwords.iter().map(|p| p.key_id.clone())).collect();
        let app_id = apps.first().map(|a| a.app_id.clone()).unwrap_or_default();
        let stored = stored_secret(h).await;
        let secret_valid = match &stored {
            Some((id, secret, key)) => *id == app_id && *key == current && token_accepts(h, id, secret).await,
            None => false,
        };
        let assets = h.connect.assets(CONNECT_ORG);
        let connect_current = assets.len() == 1
            && stored.as_ref().is_some_and(|(id, secret, _)| {
                assets[0].oauth.client_id == *id && assets[0].oauth.client_secret == *secret
            });
        // Exchange: SMTP AUTH on, forwarding (with a copy) to the address Connect generated.
        let mailbox = h.sim.exchange().mailbox(TENANT, MAILBOX).unwrap();
        let mailbox_ok = mailbox.smtp_client_authentication_disabled == Some(false)
            && mailbox.deliver_to_mailbox_and_forward
            && assets.first().is_some_and(|a| {
                mailbox.forwarding_smtp_address.as_deref().map(str::to_lowercase)
                    == Some(format!("smtp:{}", a.forwarding_address))
            });
        let acknowledged =
            registration.metadata.annotations.unwrap_or_default().get(&acknowledgement_annotation(CHANNEL)).cloned();
        let status_ok = cs.app_id.as_deref() == Some(app_id.as_str())
            && cs.connect.as_ref().and_then(|c| c.asset_id.clone()) == assets.first().map(|a| a.asset_id.clone())
            && acknowledged.as_deref() == Some(current.as_str());
        // The previous password went only after the new one was verified at the token endpoint and
        // Connect had accepted it (both simulators stamp calls with the same wall clock).
        let calls = microsoft_calls(h, &since);
        let pushes: Vec<CallRecord> = connect_calls(h, &since)
            .into_iter()
            .filter(|c| {
                (c.route == connect_routes::UPDATE_ASSET || c.route == connect_routes::CREATE_ASSET) && c.status < 300
            })
            .collect();
        let current_add = calls.iter().rposition(|c| c.route == routes::ADD_PASSWORD && c.status < 300);
        // Revocations: removals of a key the Secret held before this phase. Removing a password
        // whose text never left the operator (an interrupted issue) is not a revocation.
        let revokes: Vec<usize> = calls
            .iter()
            .enumerate()
            .filter(|(_, c)| c.route == routes::REMOVE_PASSWORD && c.status < 300)
            .filter(|(_, c)| since.key_id.is_some() && c.key_id == since.key_id)
            .map(|(i, _)| i)
            .collect();
        let ordered = revokes.iter().all(|&i| {
            let Some(add) = current_add.filter(|a| *a < i) else { return false };
            let verified = calls[add..i].iter().any(|c| {
                c.route == routes::TOKEN && c.status == 200 && c.client_id.as_deref() == Some(app_id.as_str())
            });
            let pushed = pushes.iter().any(|p| p.at > calls[add].at && p.at < calls[i].at);
            verified && pushed
        });
        let revoke_ordered = ordered && (!rotated || !revokes.is_empty());
        let mut secrets = h.sim.issued_secrets();
        secrets.extend(h.sim.issued_tokens());
        secrets.extend(h.connect.pushed_secrets());
        secrets.extend([OPERATOR_SECRET.to_string(), CONNECT_TOKEN.to_string()]);
        let no_leak = !secrets.iter().any(|s| logs.contains(s.as_str()));

        let mut problems = Vec::new();
        if apps.len() != 1 {
            problems.push(format!("{} applications", apps.len()))
        }
        if passwords != vec![current.clone()] {
            problems.push(format!("passwords left {passwords:?}, current {current}"))
        }
        if !secret_valid {
            problems.push("the Secret does not hold the current, working credential".into())
        }
        if !connect_current {
            problems.push(format!(
                "Connect does not hold the current secret in exactly one asset ({} assets)",
                assets.len()
            ))
        }
        if !mailbox_ok {
            problems.push(format!("the mailbox is not configured: {mailbox:?}"))
        }
        if !status_ok {
            problems.push(format!("status disagrees: {cs:?}, acknowledged {acknowledged:?}, app {app_id}"))
        }
        if !revoke_ordered {
            let trace: Vec<String> =
                calls.iter().map(|c| format!("{} {} {:?} {}", c.route, c.status, c.client_id, c.at)).collect();
            let pushes: Vec<String> = pushes.iter().map(|c| format!("{} {} {}", c.route, c.status, c.at)).collect();
            problems.push(format!(
                "revocations {revokes:?} missing or not after verification and the Connect push:\n{}\nConnect:\n{}",
                trace.join("\n"),
                pushes.join("\n")
            ))
        }
        if !no_leak {
            problems.push("a secret value appeared in the operator's logs".into())
        }
        Invariants {
            apps: apps.len(),
            passwords: passwords.len(),
            assets: assets.len(),
            secret_valid,
            connect_current,
            mailbox_ok,
            revoke_ordered,
            status_ok,
            no_leak,
            problems,
        }
    }

    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Table cells: apps, pwds, assets, secret valid, connect current, mailbox, revoke order, status, no leak.
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.apps.to_string(),
            self.passwords.to_string(),
            self.assets.to_string(),
            self.secret_valid.to_string(),
            self.connect_current.to_string(),
            self.mailbox_ok.to_string(),
            self.revoke_ordered.to_string(),
            self.status_ok.to_string(),
            self.no_leak.to_string(),
        ]
    }

    pub const HEADER: [&str; 9] = [
        "apps",
        "pwds",
        "assets",
        "secret valid",
        "connect current",
        "mailbox",
        "revoke after verify+push",
        "status",
        "no leak",
    ];
}

/// A markdown table.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut lines = vec![
        format!("| {} |", header.join(" | ")),
        format!("|{}|", header.iter().map(|h| "-".repeat(h.len() + 2)).collect::<Vec<_>>().join("|")),
    ];
    lines.extend(rows.iter().map(|r| format!("| {} |", r.join(" | "))));
    lines.join("\n")
}
