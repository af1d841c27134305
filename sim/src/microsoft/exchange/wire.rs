//! The HTTP side of `InvokeCommand`: authentication, the anchor mailbox, the request body, and the
//! JSON Exchange answers with. Every wire detail of the simulated endpoint is decided here; the
//! module documentation of [`super`] lists which are confirmed.

use hyper::StatusCode;
use serde_json::{Map, Value, json};

use super::model::{SimMailbox, SimOutboundPolicy, SimOutboundRule};
use super::org::{Cmdlet, CmdletError, Outcome, Output, Refusal};
use crate::microsoft::auth::Audience;
use crate::microsoft::state::{EXCHANGE_APP_ID, Shared};
use crate::random;
use crate::server::{SimRequest, SimResponse};
use crate::sync::lock;

/// Confirmed (captured response).
const JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
/// The arbitration mailbox app-only callers anchor on (confirmed in public clients).
const SYSTEM_MAILBOX: &str = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}";

/// The cmdlet a request names, for call records and per-cmdlet faults, read leniently: the
/// canonical spelling when the simulator knows the cmdlet, else as sent.
pub(crate) fn requested_cmdlet(request: &SimRequest) -> Option<String> {
    let body: Value = serde_json::from_slice(&request.body).ok()?;
    let name = body.get("CmdletInput")?.get("CmdletName")?.as_str()?.trim();
    (!name.is_empty()).then(|| Cmdlet::parse(name).map_or_else(|| name.to_string(), |c| c.name().to_string()))
}

/// Handles `POST /adminapi/beta/{path_tenant}/InvokeCommand`.
pub(crate) fn handle(shared: &Shared, path_tenant: &str, request: &SimRequest) -> SimResponse {
    let now = shared.now();
    let base = shared.base_url();
    let mut directory = lock(&shared.directory);

    // Authentication happens at Exchange's front door, before anything else is looked at.
    let Some(token) = request.bearer() else {
        return unauthorized(None);
    };
    let (tenant_id, client_id) = match directory.tokens.get(token) {
        None => return unauthorized(Some((2000001, "The token is not valid.", "invalid_token"))),
        Some(issued) if issued.audience != Audience::Exchange => {
            return unauthorized(Some((2000003, "The audience claim value is invalid 'aud'.", "invalid_resource")));
        }
        Some(issued) if issued.expires <= now => {
            return unauthorized(Some((2000001, "The token has expired.", "invalid_token")));
        }
        Some(issued) => (issued.tenant.clone(), issued.client_id.clone()),
    };
    let Some(tenant) = directory.tenants.get_mut(&tenant_id) else {
        return unauthorized(Some((2000004, "The tenant does not exist.", "invalid_tenant")));
    };
    let org = &mut tenant.exchange;
    let names_this_tenant = |name: &str| name.eq_ignore_ascii_case(&tenant_id) || org.has_domain(name);
    if !names_this_tenant(path_tenant) {
        let reason = format!("The tenant for tenant guid '{path_tenant}' does not exist.");
        return unauthorized(Some((2000004, &reason, "invalid_tenant")));
    }
    let anchor = request.header("x-anchormailbox").unwrap_or("");
    if !anchored_tenant(anchor).is_some_and(names_this_tenant) {
        return missing_anchor(anchor);
    }
    let (name, parameters) = match parse_body(&request.body) {
        Ok(parsed) => parsed,
        Err(problem) => return bad_body(&problem),
    };
    if org.role_missing {
        return role_missing(&name);
    }
    match org.authorize(&client_id, &name, &parameters) {
        Ok(()) => {}
        Err(Refusal::Cmdlet) => return role_missing(&name),
        Err(Refusal::Parameter(parameter)) => return parameter_outside_role(parameter, org.errors_without_details),
    }
    let Some(cmdlet) = Cmdlet::parse(&name) else {
        return forbidden();
    };
    if let Some(status) = org.take_concurrency_throttle() {
        return concurrency_throttle(status);
    }
    org.received.push((cmdlet, parameters.clone()));
    let skip = match skip_token(request.query.as_deref()) {
        Ok(skip) => skip,
        Err(problem) => return odata_error(StatusCode::BAD_REQUEST, "BadRequest", &problem, None),
    };
    match org.run(cmdlet, &parameters) {
        Ok(outcome) => success(&base, path_tenant, outcome, skip, shared.options.exchange_page_size),
        Err(error) if org.errors_without_details => cmdlet_failure_inner_only(&error),
        Err(error) => cmdlet_failure(&error),
    }
}

/// The query parameter of the simulator's next links. Unconfirmed: the form of Exchange's
/// `@odata.nextLink` (public callers only follow it, POSTing the same body to it); the simulator
/// uses the OData convention `$skiptoken`, here the index of the page's first row.
const SKIP_TOKEN: &str = "$skiptoken";

fn skip_token(query: Option<&str>) -> Result<usize, String> {
    let Some(query) = query else { return Ok(0) };
    match form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == SKIP_TOKEN) {
        None => Ok(0),
        Some((_, value)) => value.parse().map_err(|_| format!("Invalid {SKIP_TOKEN} '{value}'.")),
    }
}

/// The organization an `X-AnchorMailbox` value names: `APP:` (app-only, as CIPP sends it) or
/// `UPN:` (as a captured request sent it), the system mailbox, `@`, tenant ID or domain.
fn anchored_tenant(value: &str) -> Option<&str> {
    let (kind, address) = value.trim().split_once(':')?;
    let (mailbox, organization) = address.split_once('@')?;
    let kind_ok = kind.eq_ignore_ascii_case("APP") || kind.eq_ignore_ascii_case("UPN");
    (kind_ok && mailbox.eq_ignore_ascii_case(SYSTEM_MAILBOX) && !organization.contains('@')).then_some(organization)
}

fn parse_body(body: &[u8]) -> Result<(String, Map<String, Value>), String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON ({e})"))?;
    let input = value.get("CmdletInput").and_then(Value::as_object).ok_or("CmdletInput is missing")?;
    let name = input
        .get("CmdletName")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or("CmdletInput.CmdletName is missing")?;
    let parameters = match input.get("Parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(parameters)) => parameters.clone(),
        Some(_) => return Err("CmdletInput.Parameters is not an object".to_string()),
    };
    Ok((name.to_string(), parameters))
}

// ---------------------------------------------------------------------------------------------
// Responses

fn with_request_id(response: SimResponse) -> SimResponse {
    response.with_header("request-id", &random::guid())
}

/// 401 with an empty body and Exchange's bearer challenge. Confirmed for a wrong audience
/// (captured from outlook.office365.com). Unconfirmed: that InvokeCommand answers the same way,
/// the challenge without `error=` when no token is sent, and the diagnostics (code, reason) for an
/// unknown or expired token and for a path naming another tenant.
fn unauthorized(diagnostics: Option<(u32, &str, &str)>) -> SimResponse {
    let mut challenge = format!(
        "Bearer client_id=\"{EXCHANGE_APP_ID}\", trusted_issuers=\"00000001-0000-0000-c000-000000000000@*\", token_types=\"app_asserted_user_v1 service_asserted_app_v1\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\""
    );
    let mut response = SimResponse::new(StatusCode::UNAUTHORIZED);
    if let Some((code, reason, category)) = diagnostics {
        challenge.push_str(", error=\"invalid_token\"");
        response.set_header("x-ms-diagnostics", &format!("{code};reason=\"{reason}\";error_category=\"{category}\""));
    }
    with_request_id(response.with_header("www-authenticate", &challenge))
}

/// Exchange's answer to a cmdlet that does not exist: 403 with an empty body (public evidence).
/// The simulator also answers so for a cmdlet it does not implement, even when the caller's roles
/// include it (e.g. Add-MailboxPermission of `Mail Recipients`).
fn forbidden() -> SimResponse {
    with_request_id(SimResponse::new(StatusCode::FORBIDDEN))
}

/// A caller without an Exchange role, or whose roles have no entry for the cmdlet: 401 with a
/// JSON error. Public evidence for the shape and the start of the message, both for an
/// application without a suitable role (MicrosoftDocs/office-docs-powershell#7970, Get-Mailbox)
/// and for an administrator whose roles lack one cmdlet (#8058, Get-RecipientPermission).
/// Unconfirmed: the final period (the public bodies end with the cmdlet's name).
fn role_missing(cmdlet: &str) -> SimResponse {
    let body = json!({"error": {"code": "Unauthorized", "message": format!("User is not allowed to call {cmdlet}.")}});
    with_request_id(SimResponse::json(StatusCode::UNAUTHORIZED, &body, JSON))
}

/// A parameter the caller's role entries for the cmdlet do not hold. Unconfirmed: what
/// InvokeCommand answers. In PowerShell sessions a parameter outside the caller's role entries
/// does not exist for the caller, so the closest documented answer is PowerShell's parameter
/// binding error ("A parameter cannot be found that matches parameter name 'X'."), given here
/// exactly as for a misspelt parameter (400, see [`cmdlet_failure`]).
fn parameter_outside_role(parameter: String, inner_only: bool) -> SimResponse {
    let error = CmdletError::UnknownParameter { name: parameter };
    if inner_only { cmdlet_failure_inner_only(&error) } else { cmdlet_failure(&error) }
}

/// Exchange's per-tenant concurrency throttling with a status other than 429, as an OData error
/// carrying the text public clients match on. Unconfirmed: the code and which statuses occur (the
/// text is what public callers retry on whatever the status).
fn concurrency_throttle(status: u16) -> SimResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
    odata_error(
        status,
        "TooManyRequests",
        "You have reached the maximum number of concurrent requests per tenant. Please wait and try again.",
        None,
    )
}

/// An OData error body as InvokeCommand sends it (confirmed shape).
fn odata_error(status: StatusCode, code: &str, message: &str, detail: Option<String>) -> SimResponse {
    let mut error = json!({"code": code, "message": message});
    if let Some(detail) = detail {
        error["details"] = json!([{"code": "Client", "target": "", "message": detail}]);
        error["innererror"] = json!({
            "message": message,
            "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
            "stacktrace": "",
            "internalexception": {
                "message": "Exception of type 'Microsoft.Exchange.Management.PSDirectInvoke.DirectInvokeCmdletExecutionException' was thrown.",
                "type": "Microsoft.Exchange.Management.PSDirectInvoke.DirectInvokeCmdletExecutionException",
                "stacktrace": "",
            },
        });
    }
    let body = json!({
        "error": error,
        "adminapi.warnings@odata.type": "#Collection(String)",
        "@adminapi.warnings": [],
    });
    with_request_id(SimResponse::json(status, &body, JSON))
}

/// A cmdlet error. Confirmed: code `NotFound` and message "Error executing cmdlet" for a
/// missing object (404 assumed from the code). Unconfirmed: 400 `BadRequest` with the generic
/// "Invalid Operation" for parameter errors.
fn cmdlet_failure(error: &CmdletError) -> SimResponse {
    if error.is_not_found() {
        odata_error(StatusCode::NOT_FOUND, "NotFound", "Error executing cmdlet", Some(error.to_string()))
    } else {
        odata_error(StatusCode::BAD_REQUEST, "BadRequest", "Invalid Operation", Some(error.to_string()))
    }
}

/// The same failure with the text only in `error.innererror.internalexception.message` and no
/// `details`, a shape public parsers fall back to (GreyCorbel/ExoHelper). Unconfirmed: which
/// failures Exchange reports this way.
fn cmdlet_failure_inner_only(error: &CmdletError) -> SimResponse {
    let (status, code, message) = if error.is_not_found() {
        (StatusCode::NOT_FOUND, "NotFound", "Error executing cmdlet")
    } else {
        (StatusCode::BAD_REQUEST, "BadRequest", "Invalid Operation")
    };
    let full = error.to_string();
    let text = full.splitn(3, '|').nth(2).unwrap_or(&full);
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "innererror": {
                "message": message,
                "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
                "stacktrace": "",
                "internalexception": {
                    "message": text,
                    "type": "Microsoft.Exchange.Management.PSDirectInvoke.DirectInvokeCmdletExecutionException",
                    "stacktrace": "",
                },
            },
        },
        "adminapi.warnings@odata.type": "#Collection(String)",
        "@adminapi.warnings": [],
    });
    with_request_id(SimResponse::json(status, &body, JSON))
}

/// Unconfirmed: Exchange's answer to a body that is not a CmdletInput.
fn bad_body(problem: &str) -> SimResponse {
    odata_error(StatusCode::BAD_REQUEST, "BadRequest", &format!("Invalid CmdletInput: {problem}."), None)
}

/// Unconfirmed and deliberate: what Exchange does without a usable `X-AnchorMailbox` is not
/// documented (public clients always send one). The simulator refuses the request, so a client
/// that forgets the header, or anchors on another tenant, fails in tests rather than in production.
fn missing_anchor(sent: &str) -> SimResponse {
    let message = format!(
        "X-AnchorMailbox must be 'APP:{SYSTEM_MAILBOX}@<tenant ID or domain>' for the tenant of the token; got '{sent}'."
    );
    odata_error(StatusCode::BAD_REQUEST, "BadRequest", &message, None)
}

/// Injected faults. Unconfirmed bodies: 429 as the plain-text concurrency message public clients
/// match on (GreyCorbel/ExoHelper), 503 as HTTP.sys's page (responses carry
/// `Server: Microsoft-HTTPAPI/2.0`), anything else as an OData error.
pub(crate) fn fault_response(status: u16) -> SimResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = SimResponse::new(status);
    match status.as_u16() {
        429 => {
            response.body = bytes::Bytes::from_static(
                b"You have reached the maximum number of concurrent requests per tenant. Please wait and try again.",
            );
            response.set_header("content-type", "text/plain; charset=utf-8");
        }
        503 => {
            response.body = bytes::Bytes::from_static(
                b"<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\"\"http://www.w3.org/TR/html4/strict.dtd\">\r\n<HTML><HEAD><TITLE>Service Unavailable</TITLE>\r\n<META HTTP-EQUIV=\"Content-Type\" Content=\"text/html; charset=us-ascii\"></HEAD>\r\n<BODY><h2>Service Unavailable</h2>\r\n<hr><p>HTTP Error 503. The service is unavailable.</p>\r\n</BODY></HTML>\r\n",
            );
            response.set_header("content-type", "text/html; charset=us-ascii");
        }
        _ => return odata_error(status, "InternalServerError", "Error executing cmdlet", None),
    }
    with_request_id(response)
}

/// 200 with the cmdlet's output, `page_size` rows from `skip` on, and `@odata.nextLink` when
/// more follow. Set-* cmdlets output nothing: `value` is `[]` (unconfirmed whether Exchange sends
/// `[]` or leaves `value` out).
fn success(base: &str, path_tenant: &str, outcome: Outcome, skip: usize, page_size: usize) -> SimResponse {
    let page_size = page_size.max(1);
    let end = skip.saturating_add(page_size).min(outcome.output.len());
    let rows = outcome.output.get(skip.min(end)..end).unwrap_or_default();
    let mut body = json!({
        "@odata.context": format!("{base}/adminapi/beta/{path_tenant}/$metadata#Collection(Exchange.GenericHashTable)"),
        "adminapi.warnings@odata.type": "#Collection(String)",
        "@adminapi.warnings": outcome.warnings,
        "value": rows.iter().map(output_json).collect::<Vec<_>>(),
    });
    if end < outcome.output.len() {
        body["@odata.nextLink"] = json!(format!("{base}/adminapi/beta/{path_tenant}/InvokeCommand?{SKIP_TOKEN}={end}"));
    }
    with_request_id(SimResponse::json(StatusCode::OK, &body, JSON)).with_header("odata-version", "4.0")
}

fn guid(object: &mut Map<String, Value>, name: &str, value: &str) {
    object.insert(format!("{name}@odata.type"), json!("#Guid"));
    object.insert(name.to_string(), json!(value));
}

fn strings(object: &mut Map<String, Value>, name: &str, values: &[String]) {
    object.insert(format!("{name}@odata.type"), json!("#Collection(String)"));
    object.insert(name.to_string(), json!(values));
}

fn output_json(output: &Output) -> Value {
    let mut object = Map::new();
    match output {
        Output::Mailbox(m) => mailbox_json(&mut object, m),
        Output::CasMailbox(m) => {
            recipient_json(&mut object, m);
            object.insert("SmtpClientAuthenticationDisabled".into(), json!(m.smtp_client_authentication_disabled));
        }
        // Unconfirmed beyond the property the operator reads.
        Output::TransportConfig { smtp_client_authentication_disabled } => {
            object.insert("SmtpClientAuthenticationDisabled".into(), json!(smtp_client_authentication_disabled));
        }
        Output::OutboundPolicy(p) => policy_json(&mut object, p),
        Output::OutboundRule(r) => rule_json(&mut object, r),
        Output::RemoteDomain { name, auto_forward_enabled } => {
            for key in ["Identity", "Id", "Name"] {
                object.insert(key.into(), json!(name));
            }
            object.insert("DomainName".into(), json!("*"));
            object.insert("AutoForwardEnabled".into(), json!(auto_forward_enabled));
        }
        // Property names as Get-ServicePrincipal documents them (AppId, ObjectId, ServiceId,
        // DisplayName); Identity = Name = the ServiceId is unconfirmed.
        Output::ServicePrincipal(sp) => {
            for key in ["Identity", "Name"] {
                object.insert(key.into(), json!(sp.service_id));
            }
            object.insert("AppId".into(), json!(sp.app_id));
            object.insert("ObjectId".into(), json!(sp.object_id));
            object.insert("ServiceId".into(), json!(sp.service_id));
            object.insert("DisplayName".into(), json!(sp.display_name));
        }
        // Name and RecipientFilter (the filter New-ManagementScope was given); ScopeRestrictionType
        // "RecipientScope" is unconfirmed.
        Output::ManagementScope(scope) => {
            for key in ["Identity", "Name"] {
                object.insert(key.into(), json!(scope.name));
            }
            object.insert("RecipientFilter".into(), json!(scope.recipient_filter));
            object.insert("ScopeRestrictionType".into(), json!("RecipientScope"));
        }
        // Unconfirmed property values for a service-principal assignee (RoleAssignee = ServiceId,
        // RoleAssigneeType = ServicePrincipal).
        Output::RoleAssignment(a) => {
            for key in ["Identity", "Name"] {
                object.insert(key.into(), json!(a.name));
            }
            object.insert("Role".into(), json!(a.role));
            object.insert("RoleAssignee".into(), json!(a.app_service_id));
            object.insert("RoleAssigneeName".into(), json!(a.app_service_id));
            object.insert("RoleAssigneeType".into(), json!("ServicePrincipal"));
            object.insert("CustomResourceScope".into(), json!(a.custom_resource_scope));
        }
        // Name, Roles and the write scope as New-RoleGroup was given them; the exact property set
        // of Get-RoleGroup's output is unconfirmed.
        Output::RoleGroup(g) => {
            for key in ["Identity", "Name", "DisplayName"] {
                object.insert(key.into(), json!(g.name));
            }
            object.insert("Roles".into(), json!(g.roles));
            object.insert("CustomRecipientWriteScope".into(), json!(g.custom_recipient_write_scope));
            object.insert("RoleGroupType".into(), json!("Standard"));
        }
        // Unconfirmed: how Get-RoleGroupMember shows a service principal member (the simulator
        // gives its display name, the Entra object ID and RecipientType ServicePrincipal).
        Output::RoleGroupMember(sp) => {
            for key in ["Identity", "Name", "DisplayName"] {
                object.insert(key.into(), json!(sp.display_name));
            }
            object.insert("ExternalDirectoryObjectId".into(), json!(sp.object_id));
            object.insert("RecipientType".into(), json!("ServicePrincipal"));
        }
        // Name and Parent as New-ManagementRole takes them (Parent empty for a built-in role);
        // IsRootRole and RoleType (the root role's name without spaces and punctuation, as
        // `MailRecipients`) are unconfirmed in form.
        Output::ManagementRole(role) => {
            for key in ["Identity", "Name"] {
                object.insert(key.into(), json!(role.name));
            }
            object.insert("Parent".into(), json!(role.parent));
            object.insert("IsRootRole".into(), json!(role.parent.is_none()));
            let root = role.parent.as_deref().unwrap_or(&role.name);
            let role_type: String = root.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
            object.insert("RoleType".into(), json!(role_type));
        }
        // Name (the cmdlet), Role and Parameters as Get-ManagementRoleEntry shows them; `Id` is
        // the role, as Microsoft's example `"$($_.id)\$($_.name)"` builds an entry identity
        // from them. Identity `<role>\<cmdlet>` and Type `Cmdlet` are unconfirmed in form.
        Output::RoleEntry { role, entry } => {
            object.insert("Identity".into(), json!(format!("{role}\\{}", entry.cmdlet)));
            object.insert("Id".into(), json!(role));
            object.insert("Name".into(), json!(entry.cmdlet));
            object.insert("Role".into(), json!(role));
            strings(&mut object, "Parameters", &entry.parameters);
            object.insert("Type".into(), json!("Cmdlet"));
        }
    }
    Value::Object(object)
}

/// Properties shared by Get-Mailbox and Get-CASMailbox.
fn recipient_json(object: &mut Map<String, Value>, m: &SimMailbox) {
    for key in ["Identity", "Id", "Name", "DisplayName"] {
        object.insert(key.into(), json!(m.identity));
    }
    object.insert("PrimarySmtpAddress".into(), json!(m.primary_smtp_address));
    object.insert("ExternalDirectoryObjectId".into(), json!(m.external_directory_object_id));
    guid(object, "Guid", &m.guid);
}

/// Names and forms confirmed by a captured Get-Mailbox response.
fn mailbox_json(object: &mut Map<String, Value>, m: &SimMailbox) {
    recipient_json(object, m);
    object.insert("Alias".into(), json!(m.alias));
    object.insert("UserPrincipalName".into(), json!(m.user_principal_name));
    object.insert("WindowsEmailAddress".into(), json!(m.primary_smtp_address));
    strings(object, "EmailAddresses", &[format!("SMTP:{}", m.primary_smtp_address)]);
    object.insert("RecipientType".into(), json!("UserMailbox"));
    object.insert("RecipientTypeDetails".into(), json!("UserMailbox"));
    guid(object, "ExchangeGuid", &m.exchange_guid);
    object.insert("ForwardingAddress".into(), json!(m.forwarding_address));
    object.insert("ForwardingSmtpAddress".into(), json!(m.forwarding_smtp_address));
    object.insert("DeliverToMailboxAndForward".into(), json!(m.deliver_to_mailbox_and_forward));
    strings(object, "GrantSendOnBehalfTo", &m.grant_send_on_behalf_to);
    object.insert("IsValid".into(), json!(true));
}

/// `Name`, `IsDefault`, `AutoForwardingMode` are used by public code; the rest is unconfirmed.
fn policy_json(object: &mut Map<String, Value>, p: &SimOutboundPolicy) {
    for key in ["Identity", "Id", "Name"] {
        object.insert(key.into(), json!(p.name));
    }
    object.insert("IsDefault".into(), json!(p.is_default));
    object.insert("AutoForwardingMode".into(), json!(p.auto_forwarding_mode.as_str()));
    guid(object, "Guid", &p.guid);
}

/// `Name`, `State`, `Priority` are used by public code; condition properties carry the
/// parameter names of New-HostedOutboundSpamFilterRule (unconfirmed: empty ones as `[]`).
fn rule_json(object: &mut Map<String, Value>, r: &SimOutboundRule) {
    for key in ["Identity", "Id", "Name"] {
        object.insert(key.into(), json!(r.name));
    }
    object.insert("HostedOutboundSpamFilterPolicy".into(), json!(r.policy));
    object.insert("Priority".into(), json!(r.priority));
    object.insert("State".into(), json!(if r.enabled { "Enabled" } else { "Disabled" }));
    strings(object, "From", &r.from);
    strings(object, "FromMemberOf", &r.from_member_of);
    strings(object, "SenderDomainIs", &r.sender_domain_is);
    for except in ["ExceptIfFrom", "ExceptIfFromMemberOf", "ExceptIfSenderDomainIs"] {
        strings(object, except, &[]);
    }
    guid(object, "Guid", &r.guid);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_name_the_organization_after_the_system_mailbox() {
        let tenant = "6f1a2b3c-0000-4000-8000-00000000c0de";
        assert_eq!(anchored_tenant(&format!("APP:{SYSTEM_MAILBOX}@{tenant}")), Some(tenant));
        assert_eq!(
            anchored_tenant(&format!("UPN:{SYSTEM_MAILBOX}@contoso.onmicrosoft.com")),
            Some("contoso.onmicrosoft.com")
        );
        assert_eq!(anchored_tenant(&format!("app:{SYSTEM_MAILBOX}@x")), Some("x"));
        assert_eq!(anchored_tenant(&format!("APP:{SYSTEM_MAILBOX}@@{tenant}")), None);
        assert_eq!(anchored_tenant("UPN:admin@contoso.com"), None);
        assert_eq!(anchored_tenant(""), None);
    }

    #[test]
    fn bodies_must_be_cmdlet_inputs() {
        let (name, parameters) =
            parse_body(br#"{"CmdletInput":{"CmdletName":"Get-Mailbox","Parameters":{"Identity":"a"}}}"#).unwrap();
        assert_eq!((name.as_str(), parameters.len()), ("Get-Mailbox", 1));
        assert!(parse_body(br#"{"CmdletInput":{"CmdletName":"Get-TransportConfig"}}"#).unwrap().1.is_empty());
        assert!(parse_body(b"not json").is_err());
        assert!(parse_body(br#"{"CmdletName":"Get-Mailbox"}"#).is_err());
        assert!(parse_body(br#"{"CmdletInput":{"CmdletName":"Get-Mailbox","Parameters":[1]}}"#).is_err());
    }
}
