//! The InvokeCommand wire mapping, in one place: URL, anchor header, request body, cmdlet names
//! and parameters, output property names and error shapes. Details no public document states are
//! marked "unconfirmed".

use serde_json::{Map, Value, json};
use url::Url;

use super::{AutoForwardingMode, ExchangeError, MailboxForwarding, OutboundForwarding, SmtpAuth};
use crate::http::{Response, retry_after};

/// `{exchange}/adminapi/beta/{tenant}/InvokeCommand`
pub fn invoke_url(exchange: &Url, tenant: &str) -> String {
    format!("{}/adminapi/beta/{tenant}/InvokeCommand", exchange.as_str().trim_end_matches('/'))
}

/// The routing hint sent for app-only calls, addressed with the tenant ID as public callers
/// (e.g. CIPP's New-ExoRequest) do.
pub fn anchor_mailbox(tenant: &str) -> String {
    format!("APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{tenant}")
}

/// One cmdlet invocation.
pub struct Command {
    pub name: &'static str,
    pub parameters: Map<String, Value>,
}

impl Command {
    fn new(name: &'static str, parameters: Value) -> Self {
        Self { name, parameters: parameters.as_object().cloned().unwrap_or_default() }
    }

    pub fn body(&self) -> Value {
        json!({"CmdletInput": {"CmdletName": self.name, "Parameters": self.parameters}})
    }
}

pub fn get_mailbox(mailbox: &str) -> Command {
    Command::new("Get-Mailbox", json!({"Identity": mailbox}))
}

/// Forwarding to an external address: `ForwardingAddress` must be cleared or it wins.
pub fn set_mailbox_forwarding(mailbox: &str, target: Option<&str>, keep_copy: bool) -> Command {
    Command::new(
        "Set-Mailbox",
        json!({
            "Identity": mailbox,
            "ForwardingAddress": Value::Null,
            "ForwardingSmtpAddress": target.map(|t| format!("smtp:{t}")),
            "DeliverToMailboxAndForward": target.is_some() && keep_copy,
        }),
    )
}

pub fn get_cas_mailbox(mailbox: &str) -> Command {
    Command::new("Get-CASMailbox", json!({"Identity": mailbox}))
}

pub fn set_cas_smtp_auth(mailbox: &str, disabled: Option<bool>) -> Command {
    Command::new("Set-CASMailbox", json!({"Identity": mailbox, "SmtpClientAuthenticationDisabled": disabled}))
}

pub fn get_transport_config() -> Command {
    Command::new("Get-TransportConfig", json!({}))
}

pub fn get_outbound_policies() -> Command {
    Command::new("Get-HostedOutboundSpamFilterPolicy", json!({}))
}

pub fn get_outbound_rules() -> Command {
    Command::new("Get-HostedOutboundSpamFilterRule", json!({}))
}

pub fn get_default_remote_domain() -> Command {
    Command::new("Get-RemoteDomain", json!({"Identity": "Default"}))
}

/// Successful answers carry rows in `value`; errors carry the real reason in `error.details[].message`
/// (the outer message is often just "Invalid Operation"); an authorization failure may not be JSON.
pub fn parse_response(cmdlet: &'static str, response: &Response) -> Result<Vec<Value>, ExchangeError> {
    let status = response.status.as_u16();
    if matches!(status, 401 | 403) {
        return Err(ExchangeError::AccessDenied { cmdlet, status });
    }
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    if !response.status.is_success() {
        let error = &body["error"];
        let detail = error["details"]
            .as_array()
            .and_then(|d| d.iter().filter_map(|d| d["message"].as_str()).next())
            .map(str::to_string);
        let raw = detail
            .or_else(|| error["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("HTTP {status}"));
        // "Ex6F9304|Microsoft.Exchange...ManagementObjectNotFoundException|The operation couldn't…"
        let message = raw.rsplit('|').next().unwrap_or(&raw).trim().chars().take(400).collect::<String>();
        if raw.contains("ManagementObjectNotFoundException") || raw.contains("couldn't be found") {
            let identity = message.split('\'').nth(1).unwrap_or_default().to_string();
            return Err(ExchangeError::MailboxNotFound(identity));
        }
        return Err(ExchangeError::Command { cmdlet, status, message, retry_after: retry_after(&response.headers) });
    }
    Ok(body["value"].as_array().cloned().unwrap_or_default())
}

fn first<'a>(cmdlet: &'static str, rows: &'a [Value]) -> Result<&'a Value, ExchangeError> {
    rows.first().ok_or(ExchangeError::Decode { cmdlet, message: "no result row".into() })
}

fn non_empty(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

pub fn mailbox_forwarding(mailbox: &str, rows: &[Value]) -> Result<MailboxForwarding, ExchangeError> {
    let row = first("Get-Mailbox", rows).map_err(|_| ExchangeError::MailboxNotFound(mailbox.into()))?;
    Ok(MailboxForwarding {
        smtp_address: non_empty(&row["ForwardingSmtpAddress"])
            .map(|a| a.strip_prefix("smtp:").or(a.strip_prefix("SMTP:")).unwrap_or(&a).to_string()),
        address: non_empty(&row["ForwardingAddress"]),
        deliver_to_mailbox_and_forward: row["DeliverToMailboxAndForward"].as_bool().unwrap_or(false),
    })
}

pub fn smtp_auth(mailbox: &str, cas: &[Value], transport: &[Value]) -> Result<SmtpAuth, ExchangeError> {
    let cas = first("Get-CASMailbox", cas).map_err(|_| ExchangeError::MailboxNotFound(mailbox.into()))?;
    let org = first("Get-TransportConfig", transport)?;
    Ok(SmtpAuth {
        mailbox_disabled: cas["SmtpClientAuthenticationDisabled"].as_bool(),
        // Tenants created after January 2020 have it disabled by default.
        organization_disabled: org["SmtpClientAuthenticationDisabled"].as_bool().unwrap_or(true),
    })
}

fn mode(v: &Value) -> AutoForwardingMode {
    match v.as_str().unwrap_or("Automatic") {
        "On" => AutoForwardingMode::On,
        "Off" => AutoForwardingMode::Off,
        _ => AutoForwardingMode::Automatic,
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().filter_map(|i| i.as_str().map(str::to_lowercase)).collect(),
        Value::String(s) if !s.is_empty() => vec![s.to_lowercase()],
        _ => vec![],
    }
}

/// Which outbound policy applies to `mailbox`: the enabled rule with the lowest priority whose
/// sender conditions match, else the Default policy. Rules scoped to groups cannot be evaluated
/// without group membership and are reported as such.
pub fn outbound_forwarding(
    mailbox: &str,
    policies: &[Value],
    rules: &[Value],
    remote_domains: &[Value],
) -> Result<OutboundForwarding, ExchangeError> {
    let mailbox_lc = mailbox.to_lowercase();
    let domain = mailbox_lc.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap_or_default();
    let mut sorted: Vec<&Value> =
        rules.iter().filter(|r| r["State"].as_str().is_none_or(|s| s.eq_ignore_ascii_case("Enabled"))).collect();
    sorted.sort_by_key(|r| r["Priority"].as_i64().unwrap_or(i64::MAX));
    let mut unevaluated = Vec::new();
    let mut chosen: Option<(&str, &str)> = None;
    for rule in sorted {
        let name = rule["Name"].as_str().unwrap_or("?");
        if strings(&rule["From"]).contains(&mailbox_lc) || strings(&rule["SenderDomainIs"]).contains(&domain) {
            chosen = Some((name, rule["HostedOutboundSpamFilterPolicy"].as_str().unwrap_or("")));
            break;
        }
        if !strings(&rule["FromMemberOf"]).is_empty() {
            unevaluated.push(name.to_string());
        }
    }
    let default = policies.iter().find(|p| p["IsDefault"].as_bool() == Some(true)).or_else(|| {
        policies.iter().find(|p| p["Name"].as_str() == Some("Default") || p["Identity"].as_str() == Some("Default"))
    });
    let policy = match chosen {
        Some((_, policy_name)) => policies
            .iter()
            .find(|p| p["Name"].as_str() == Some(policy_name) || p["Identity"].as_str() == Some(policy_name))
            .or(default),
        None => default,
    }
    .ok_or(ExchangeError::Decode {
        cmdlet: "Get-HostedOutboundSpamFilterPolicy",
        message: "no Default policy".into(),
    })?;
    let remote = remote_domains.first();
    Ok(OutboundForwarding {
        policy: policy["Name"].as_str().or(policy["Identity"].as_str()).unwrap_or("Default").to_string(),
        mode: mode(&policy["AutoForwardingMode"]),
        rule: chosen.map(|(name, _)| name.to_string()),
        unevaluated_group_rules: unevaluated,
        remote_domain_auto_forward: remote.and_then(|r| r["AutoForwardEnabled"].as_bool()).unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_to_an_external_address_clears_the_internal_one() {
        let body = set_mailbox_forwarding("a@contoso.com", Some("x@mail-us.imiconnect.io"), true).body();
        let p = &body["CmdletInput"]["Parameters"];
        assert_eq!(body["CmdletInput"]["CmdletName"], "Set-Mailbox");
        assert_eq!(p["ForwardingAddress"], Value::Null);
        assert_eq!(p["ForwardingSmtpAddress"], "smtp:x@mail-us.imiconnect.io");
        assert_eq!(p["DeliverToMailboxAndForward"], true);
    }

    #[test]
    fn smtp_auth_inherits_the_organisation_default() {
        let org_off = [json!({"SmtpClientAuthenticationDisabled": true})];
        let inherit = smtp_auth("a@b.c", &[json!({"SmtpClientAuthenticationDisabled": null})], &org_off).unwrap();
        assert!(!inherit.effective_enabled());
        let on = smtp_auth("a@b.c", &[json!({"SmtpClientAuthenticationDisabled": false})], &org_off).unwrap();
        assert!(on.effective_enabled());
    }

    #[test]
    fn the_first_matching_rule_by_priority_selects_the_policy() {
        let policies = [
            json!({"Name": "Default", "IsDefault": true, "AutoForwardingMode": "Automatic"}),
            json!({"Name": "Allow forwarding", "AutoForwardingMode": "On"}),
            json!({"Name": "Strict", "AutoForwardingMode": "Off"}),
        ];
        let rules = [
            json!({"Name": "groups", "Priority": 0, "FromMemberOf": ["Sales"], "HostedOutboundSpamFilterPolicy": "Strict", "State": "Enabled"}),
            json!({"Name": "connect", "Priority": 1, "From": ["Support@Contoso.com"], "HostedOutboundSpamFilterPolicy": "Allow forwarding", "State": "Enabled"}),
        ];
        let remote = [json!({"AutoForwardEnabled": true})];
        let r = outbound_forwarding("support@contoso.com", &policies, &rules, &remote).unwrap();
        assert_eq!(r.policy, "Allow forwarding");
        assert_eq!(r.rule.as_deref(), Some("connect"));
        assert_eq!(r.unevaluated_group_rules, vec!["groups".to_string()]);
        assert!(r.allows_external_forwarding());
        let other = outbound_forwarding("sales@contoso.com", &policies, &rules, &remote).unwrap();
        assert_eq!(other.policy, "Default");
        assert!(!other.allows_external_forwarding(), "Automatic now behaves as Off");
    }
}
