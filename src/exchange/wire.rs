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
    /// Any cmdlet with these parameters (a JSON object).
    pub fn new(name: &'static str, parameters: Value) -> Self {
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
            // Bare, as public callers send it; Exchange shows it back as `smtp:<address>`.
            "ForwardingSmtpAddress": target,
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

/// The text public clients match to recognise Exchange's per-tenant concurrency throttling. It
/// has been seen with several statuses (and as a plain-text body), so it is matched in the body,
/// whatever the status.
pub const CONCURRENCY_THROTTLE: &str = "You have reached the maximum number of concurrent requests per tenant";

/// Whether an answer is Exchange's concurrency throttling (retry it, whatever its status).
pub fn is_concurrency_throttle(response: &Response) -> bool {
    let needle = CONCURRENCY_THROTTLE.as_bytes();
    response.body.windows(needle.len()).any(|w| w == needle)
}

/// One page of a cmdlet's output and the link to the next one.
#[derive(Debug, Default)]
pub struct Page {
    pub rows: Vec<Value>,
    /// `@odata.nextLink`: POST the same body there for the next page.
    pub next_link: Option<String>,
}

/// The reason an error body gives, most specific first: `error.details[].message` (as
/// `<id>|<exception type>|<text>`: the text), then `error.innererror.internalexception.message`,
/// then `error.message` (often just "Invalid Operation"). Returns the text and, when the detail
/// named one, the exception type.
pub fn error_text(body: &Value) -> Option<(String, Option<String>)> {
    let error = &body["error"];
    let non_empty = |v: &Value| v.as_str().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(detail) = error["details"].as_array().and_then(|d| d.iter().find_map(|d| non_empty(&d["message"]))) {
        let parts: Vec<&str> = detail.splitn(3, '|').collect();
        return Some(match parts.as_slice() {
            [_, kind, text] => (text.trim().to_string(), Some(kind.trim().to_string()).filter(|k| !k.is_empty())),
            _ => (detail.clone(), None),
        });
    }
    non_empty(&error["innererror"]["internalexception"]["message"])
        .or_else(|| non_empty(&error["message"]))
        .map(|text| (text, None))
}

/// Why access was refused and what to fix. Observed publicly: a caller without a suitable
/// Exchange role gets 401 with `{"error":{"code":"Unauthorized","message":"User is not allowed to
/// call …"}}`; a cmdlet the caller cannot run (unknown, or outside its roles) gets 403 with an
/// empty body. Unconfirmed: that a missing `Exchange.ManageAsApp` permission answers 401 too.
fn access_denied(cmdlet: &'static str, status: u16, body: &Value) -> ExchangeError {
    let server = body["error"]["message"].as_str().map(str::trim).filter(|m| !m.is_empty());
    let fix = if status == 403 {
        format!(
            "{cmdlet} is not available to the operator's application: give it an Exchange role that includes {cmdlet} (a role group with the operator's service principal as member, e.g. the custom role setup tenant derives from Mail Recipients, limited to the allowed mailboxes, or Exchange Administrator)"
        )
    } else {
        "give the operator's application the Exchange.ManageAsApp application permission (Office 365 Exchange Online, admin consent) and an Exchange role: a role group with its service principal as member (what setup tenant creates) or the Exchange Administrator role".to_string()
    };
    let detail = match server {
        Some(message) => format!("{message}: {fix}"),
        None => fix,
    };
    ExchangeError::AccessDenied { cmdlet, status, detail: detail.chars().take(600).collect() }
}

/// Successful answers carry rows in `value` (absent for some Set-*) and, for long collections,
/// `@odata.nextLink`; errors carry the real reason in `error.details[].message` (the outer
/// message is often just "Invalid Operation"); a 403 body may be empty or not JSON.
pub fn parse_response(cmdlet: &'static str, response: &Response) -> Result<Page, ExchangeError> {
    let status = response.status.as_u16();
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    if !response.status.is_success() && is_concurrency_throttle(response) {
        return Err(ExchangeError::Throttled { cmdlet, status, retry_after: retry_after(&response.headers) });
    }
    if matches!(status, 401 | 403) {
        return Err(access_denied(cmdlet, status, &body));
    }
    if !response.status.is_success() {
        let (text, kind) = error_text(&body).unwrap_or_else(|| (format!("HTTP {status}"), None));
        let message = text.chars().take(400).collect::<String>();
        // "Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't…"
        let not_found = kind.as_deref().is_some_and(|k| k.ends_with("ManagementObjectNotFoundException"))
            || message.contains("couldn't be found");
        if not_found {
            return Err(ExchangeError::MailboxNotFound(quoted_object(&message).unwrap_or_default().to_string()));
        }
        return Err(ExchangeError::Command { cmdlet, status, message, retry_after: retry_after(&response.headers) });
    }
    let next_link = body["@odata.nextLink"].as_str().filter(|l| !l.is_empty()).map(str::to_string);
    Ok(Page { rows: body["value"].as_array().cloned().unwrap_or_default(), next_link })
}

/// The identity in "… object 'x' couldn't be found …" or "Couldn't find object \"x\". …" (the
/// texts contain apostrophes, so the quote after "object" is the one that counts).
fn quoted_object(message: &str) -> Option<&str> {
    let rest = &message[message.find("object ")? + "object ".len()..];
    let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    rest[1..].split(quote).next()
}

fn first<'a>(cmdlet: &'static str, rows: &'a [Value]) -> Result<&'a Value, ExchangeError> {
    rows.first().ok_or(ExchangeError::Decode { cmdlet, message: "no result row".into() })
}

/// `smtp:user@domain` (as Get-Mailbox shows it, any case) or a bare address → the address.
fn without_smtp_prefix(address: &str) -> &str {
    match address.split_once(':') {
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case("smtp") => rest,
        _ => address,
    }
}

fn non_empty(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

pub fn mailbox_forwarding(mailbox: &str, rows: &[Value]) -> Result<MailboxForwarding, ExchangeError> {
    let row = first("Get-Mailbox", rows).map_err(|_| ExchangeError::MailboxNotFound(mailbox.into()))?;
    Ok(MailboxForwarding {
        smtp_address: non_empty(&row["ForwardingSmtpAddress"]).map(|a| without_smtp_prefix(&a).to_string()),
        address: non_empty(&row["ForwardingAddress"]),
        deliver_to_mailbox_and_forward: row["DeliverToMailboxAndForward"].as_bool().unwrap_or(false),
    })
}

/// The mailbox user's Entra object ID; a mailbox without one (no Entra user, e.g. not synchronised
/// yet) counts as not found, so that no grant is made for it.
pub fn user_object_id(mailbox: &str, rows: &[Value]) -> Result<String, ExchangeError> {
    let row = first("Get-Mailbox", rows).map_err(|_| ExchangeError::MailboxNotFound(mailbox.into()))?;
    non_empty(&row["ExternalDirectoryObjectId"])
        .filter(|id| crate::policy::is_guid(id))
        .map(|id| id.to_ascii_lowercase())
        .ok_or_else(|| ExchangeError::MailboxNotFound(mailbox.into()))
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
        assert_eq!(p["ForwardingSmtpAddress"], "x@mail-us.imiconnect.io", "bare, as public callers send it");
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

    fn response(status: u16, body: &str) -> Response {
        Response {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            headers: Default::default(),
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn the_error_text_comes_from_details_then_the_inner_exception_then_the_message() {
        let detailed = json!({"error": {"message": "Invalid Operation", "details": [{"message": "Ex1|Some.Exception|The real reason."}],
            "innererror": {"internalexception": {"message": "inner"}}}});
        assert_eq!(error_text(&detailed), Some(("The real reason.".into(), Some("Some.Exception".into()))));
        let inner = json!({"error": {"message": "Invalid Operation", "details": [],
            "innererror": {"internalexception": {"message": "The inner reason."}}}});
        assert_eq!(error_text(&inner), Some(("The inner reason.".into(), None)));
        let outer = json!({"error": {"message": "Only this."}});
        assert_eq!(error_text(&outer), Some(("Only this.".into(), None)));
        let unformatted = json!({"error": {"details": [{"message": "no pipes here"}]}});
        assert_eq!(error_text(&unformatted), Some(("no pipes here".into(), None)));
        assert_eq!(error_text(&Value::Null), None);

        match parse_response("Set-Mailbox", &response(400, &inner.to_string())) {
            Err(ExchangeError::Command { message, status: 400, .. }) => assert_eq!(message, "The inner reason."),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_object_is_reported_with_its_identity() {
        let body = json!({"error": {"code": "NotFound", "message": "Error executing cmdlet", "details": [{"message":
            "Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed because object 'ghost@contoso.com' couldn't be found on 'DC1'."}]}});
        match parse_response("Get-Mailbox", &response(404, &body.to_string())) {
            Err(ExchangeError::MailboxNotFound(identity)) => assert_eq!(identity, "ghost@contoso.com"),
            other => panic!("{other:?}"),
        }
        let recipient = json!({"error": {"code": "NotFound", "details": [{"message":
            "Ex94914C|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|Couldn't find object \"nobody\". Please make sure that it was spelled correctly or specify a different object."}]}});
        match parse_response("Set-Mailbox", &response(404, &recipient.to_string())) {
            Err(ExchangeError::MailboxNotFound(identity)) => assert_eq!(identity, "nobody"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_concurrency_throttle_is_transient_whatever_its_status() {
        let text = "You have reached the maximum number of concurrent requests per tenant. Please wait and try again.";
        let json_body = json!({"error": {"code": "InternalServerError", "message": text}}).to_string();
        for (status, body) in
            [(429, text.to_string()), (400, json_body.clone()), (403, text.to_string()), (500, json_body)]
        {
            let answer = response(status, &body);
            assert!(is_concurrency_throttle(&answer), "{status}");
            let error = parse_response("Get-Mailbox", &answer).unwrap_err();
            assert!(matches!(error, ExchangeError::Throttled { .. }) && error.is_transient(), "{status}: {error:?}");
        }
        assert!(!is_concurrency_throttle(&response(500, "{}")));
    }

    #[test]
    fn refusals_say_what_to_fix() {
        let missing_role =
            json!({"error": {"code": "Unauthorized", "message": "User is not allowed to call Set-Mailbox."}})
                .to_string();
        let error = parse_response("Set-Mailbox", &response(401, &missing_role)).unwrap_err();
        assert!(matches!(error, ExchangeError::AccessDenied { status: 401, .. }), "{error:?}");
        let text = error.to_string();
        assert!(
            text.contains("User is not allowed to call Set-Mailbox.") && text.contains("Exchange.ManageAsApp"),
            "{text}"
        );

        let error = parse_response("Get-Something", &response(403, "")).unwrap_err();
        assert!(matches!(error, ExchangeError::AccessDenied { status: 403, .. }), "{error:?}");
        assert!(error.to_string().contains("an Exchange role that includes Get-Something"), "{error}");
        assert!(!error.is_transient());
    }

    #[test]
    fn pages_carry_the_next_link_and_set_cmdlets_may_omit_value() {
        let page = parse_response("Get-HostedOutboundSpamFilterRule", &response(200,
            r#"{"value":[{"Name":"a"}],"@odata.nextLink":"https://outlook.office365.com/adminapi/beta/t/InvokeCommand?$skiptoken=1"}"#)).unwrap();
        assert_eq!(page.rows.len(), 1);
        assert!(page.next_link.unwrap().ends_with("$skiptoken=1"));
        let set = parse_response("Set-Mailbox", &response(200, r#"{"@adminapi.warnings":[]}"#)).unwrap();
        assert!(set.rows.is_empty() && set.next_link.is_none());
    }

    #[test]
    fn forwarding_reads_with_or_without_the_smtp_prefix() {
        for shown in ["smtp:x@mail-us.imiconnect.io", "SMTP:x@mail-us.imiconnect.io", "x@mail-us.imiconnect.io"] {
            let rows = [json!({"ForwardingSmtpAddress": shown, "ForwardingAddress": null})];
            let f = mailbox_forwarding("a@b.c", &rows).unwrap();
            assert_eq!(f.smtp_address.as_deref(), Some("x@mail-us.imiconnect.io"), "{shown}");
        }
    }
}
