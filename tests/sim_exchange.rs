//! The Exchange Online admin API (`InvokeCommand`) of the Microsoft simulator over real HTTPS:
//! authentication with the simulator's own tokens, the anchor mailbox, cmdlet semantics and
//! Exchange's response and error bodies, driven with reqwest trusting only the test CA.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use connect_email_operator::azure::{OperatorCredential, TokenClient, TokenProvider};
use connect_email_operator::exchange::{self, ExchangeClient, ExchangeError, MailboxAdmin};
use connect_email_operator::http::{HttpClient, HttpSettings, RetryPolicy};
use connect_email_sim::{AutoForwardingMode, MicrosoftSim, SimOptions, routes};
use serde_json::{Map, Value, json};
use support::sim_client::{
    self, EXCHANGE_SCOPE, GRAPH_SCOPE, MAILBOX, OPERATOR, OPERATOR_SECRET, Reply, TENANT, client_credentials,
    https_client,
};

const DOMAIN: &str = "contoso.onmicrosoft.com";
const OTHER_TENANT: &str = "7e2b3c4d-0000-4000-8000-0000000beef0";
const SYSTEM_MAILBOX: &str = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}";
const FORWARD_TO: &str = "5f3a9c0b1d2e4f6a8b0c1d2e3f4a5b6c@mail-us.imiconnect.io";

/// A simulator with one tenant (domain `contoso.onmicrosoft.com`), the operator's identity, the
/// mailbox `support@contoso.com` and an Exchange token.
struct Exchange {
    sim: MicrosoftSim,
    http: reqwest::Client,
    token: String,
}

/// Exchange's InvokeCommand answers and error bodies.
impl Reply {
    /// Asserts a 200 InvokeCommand answer and returns its `value`.
    fn output(&self) -> &Vec<Value> {
        assert_eq!(self.status, 200, "unexpected reply: {self:?}");
        assert!(
            self.body["@odata.context"].as_str().unwrap().ends_with("$metadata#Collection(Exchange.GenericHashTable)")
        );
        assert_eq!(self.body["adminapi.warnings@odata.type"], "#Collection(String)");
        assert!(self.body["@adminapi.warnings"].is_array());
        self.body["value"].as_array().expect("value")
    }

    /// The single object a Get-* with -Identity returned.
    fn single(&self) -> &Value {
        let output = self.output();
        assert_eq!(output.len(), 1, "{self:?}");
        &output[0]
    }

    fn warnings(&self) -> Vec<&str> {
        self.body["@adminapi.warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect()
    }

    /// Asserts Exchange's cmdlet error body and returns the text after `<id>|<exception type>|`.
    fn cmdlet_error(&self, status: u16, code: &str, id: &str, exception: &str) -> String {
        assert_eq!(self.status, status, "unexpected reply: {self:?}");
        let error = &self.body["error"];
        assert_eq!(error["code"], code, "{self:?}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(error["innererror"]["type"], "Microsoft.Exchange.Admin.OData.Core.ODataServiceException");
        let detail = error["details"][0]["message"].as_str().expect("details[0].message");
        let parts: Vec<&str> = detail.splitn(3, '|').collect();
        assert_eq!(parts.len(), 3, "{detail}");
        assert_eq!((parts[0], parts[1]), (id, exception), "{detail}");
        parts[2].to_string()
    }

    /// Asserts Exchange's 401: no body, a bearer challenge naming Exchange, and the diagnostics
    /// code when a token was presented.
    fn unauthorized(&self, diagnostics: Option<&str>) {
        assert_eq!(self.status, 401, "unexpected reply: {self:?}");
        assert!(self.bytes.is_empty(), "{self:?}");
        let challenge = self.header("www-authenticate").expect("www-authenticate");
        assert!(challenge.starts_with("Bearer client_id=\"00000002-0000-0ff1-ce00-000000000000\""), "{challenge}");
        assert_eq!(challenge.contains("error=\"invalid_token\""), diagnostics.is_some(), "{challenge}");
        match diagnostics {
            Some(code) => assert!(self.header("x-ms-diagnostics").unwrap().starts_with(&format!("{code};reason="))),
            None => assert!(self.header("x-ms-diagnostics").is_none()),
        }
    }
}

/// One InvokeCommand request being described.
struct Invocation<'a> {
    exchange: &'a Exchange,
    cmdlet: String,
    parameters: Map<String, Value>,
    token: Option<String>,
    anchor: Option<String>,
    path_tenant: String,
    raw_body: Option<&'static str>,
}

impl Invocation<'_> {
    fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.parameters.insert(name.to_string(), value.into());
        self
    }

    fn identity(self, identity: &str) -> Self {
        self.with("Identity", identity)
    }

    fn bearer(mut self, token: Option<&str>) -> Self {
        self.token = token.map(str::to_string);
        self
    }

    fn anchored_on(mut self, anchor: Option<&str>) -> Self {
        self.anchor = anchor.map(str::to_string);
        self
    }

    fn tenant_in_path(mut self, tenant: &str) -> Self {
        self.path_tenant = tenant.to_string();
        self
    }

    fn raw_body(mut self, body: &'static str) -> Self {
        self.raw_body = Some(body);
        self
    }

    async fn try_send(self) -> reqwest::Result<reqwest::Response> {
        let url = format!("{}/adminapi/beta/{}/InvokeCommand", self.exchange.sim.url(), self.path_tenant);
        let mut request = self.exchange.http.post(url).header("content-type", "application/json");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(anchor) = &self.anchor {
            request = request.header("X-AnchorMailbox", anchor);
        }
        let body = match self.raw_body {
            Some(raw) => raw.to_string(),
            None => json!({"CmdletInput": {"CmdletName": self.cmdlet, "Parameters": self.parameters}}).to_string(),
        };
        request.body(body).send().await
    }

    async fn send(self) -> Reply {
        Reply::read(self.try_send().await.unwrap()).await
    }
}

fn app_anchor(organization: &str) -> String {
    format!("APP:{SYSTEM_MAILBOX}@{organization}")
}

impl Exchange {
    async fn start() -> Exchange {
        Exchange::with(SimOptions::default()).await
    }

    async fn with(options: SimOptions) -> Exchange {
        let sim = sim_client::microsoft(options.tenant(OTHER_TENANT)).await;
        sim.add_operator_client_secret(OTHER_TENANT, OPERATOR, OPERATOR_SECRET);
        sim.exchange().add_domain(TENANT, DOMAIN);
        sim.exchange().add_mailbox(TENANT, MAILBOX);
        let http = https_client(&sim.ca_pem());
        let mut exchange = Exchange { sim, http, token: String::new() };
        exchange.token = exchange.token_for(TENANT, EXCHANGE_SCOPE).await;
        exchange
    }

    async fn token_for(&self, tenant: &str, scope: &str) -> String {
        let form = client_credentials(OPERATOR, OPERATOR_SECRET, scope);
        let url = sim_client::token_url(&self.sim, tenant);
        let reply: Value = self.http.post(url).form(&form).send().await.unwrap().json().await.unwrap();
        reply["access_token"].as_str().expect("a token").to_string()
    }

    /// An invocation as the operator sends it: Exchange token, app anchor on the tenant ID.
    fn cmdlet(&self, name: &str) -> Invocation<'_> {
        Invocation {
            exchange: self,
            cmdlet: name.to_string(),
            parameters: Map::new(),
            token: Some(self.token.clone()),
            anchor: Some(app_anchor(TENANT)),
            path_tenant: TENANT.to_string(),
            raw_body: None,
        }
    }

    /// The operator's Exchange client against the simulator, with retries fast enough for tests
    /// (4 attempts, 10 ms base backoff).
    fn client(&self) -> ExchangeClient {
        let endpoints = sim_client::endpoints(&self.sim);
        let settings = HttpSettings {
            extra_ca_pem: Some(self.sim.ca_pem()),
            retry: RetryPolicy {
                max_attempts: 4,
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(100),
            },
            ..HttpSettings::default()
        };
        let credential =
            OperatorCredential::ClientSecret { client_id: OPERATOR.into(), secret: OPERATOR_SECRET.to_string().into() };
        let login = HttpClient::new("login", &settings).unwrap();
        let tokens = Arc::new(TokenProvider::new(TokenClient::new(login, endpoints.clone()), credential));
        ExchangeClient::new(HttpClient::new("exchange", &settings).unwrap(), endpoints, tokens)
    }

    async fn mailbox(&self) -> Value {
        self.cmdlet("Get-Mailbox").identity(MAILBOX).send().await.single().clone()
    }

    async fn cas_smtp_auth_disabled(&self) -> Value {
        let reply = self.cmdlet("Get-CASMailbox").identity(MAILBOX).send().await;
        reply.single()["SmtpClientAuthenticationDisabled"].clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Mailboxes

#[tokio::test]
async fn a_mailbox_reads_back_what_set_mailbox_wrote() {
    let ex = Exchange::start().await;
    let before = ex.mailbox().await;
    assert_eq!(before["UserPrincipalName"], MAILBOX);
    assert_eq!(before["PrimarySmtpAddress"], MAILBOX);
    assert_eq!((before["Identity"].as_str(), before["Name"].as_str()), (Some("support"), Some("support")));
    assert_eq!(before["Guid@odata.type"], "#Guid");
    assert_eq!((&before["ForwardingSmtpAddress"], &before["ForwardingAddress"]), (&Value::Null, &Value::Null));
    assert_eq!(before["DeliverToMailboxAndForward"], false);

    let set = ex
        .cmdlet("Set-Mailbox")
        .identity(MAILBOX)
        .with("ForwardingSmtpAddress", FORWARD_TO)
        .with("DeliverToMailboxAndForward", true)
        .send()
        .await;
    assert!(set.output().is_empty() && set.warnings().is_empty(), "{set:?}");

    let after = ex.mailbox().await;
    assert_eq!(after["ForwardingSmtpAddress"], format!("smtp:{FORWARD_TO}"), "shown with the smtp: prefix");
    assert_eq!(after["DeliverToMailboxAndForward"], true);
    let snapshot = ex.sim.exchange().mailbox(TENANT, MAILBOX).unwrap();
    assert_eq!(snapshot.forwarding_smtp_address, Some(format!("smtp:{FORWARD_TO}")));
    assert!(snapshot.deliver_to_mailbox_and_forward);

    let again = ex
        .cmdlet("Set-Mailbox")
        .identity("support")
        .with("ForwardingSmtpAddress", format!("SMTP:{FORWARD_TO}"))
        .send()
        .await;
    assert_eq!(
        again.warnings(),
        ["The command completed successfully but no settings of 'support' have been modified."]
    );
    assert_eq!(ex.sim.exchange().count_cmdlet("Set-Mailbox"), 2);
    assert_eq!(ex.sim.exchange().count_cmdlet("Get-Mailbox"), 2);
}

#[tokio::test]
async fn internal_forwarding_must_name_a_recipient_and_null_clears_both_kinds() {
    let ex = Exchange::start().await;
    ex.sim.exchange().add_mailbox(TENANT, "sales@contoso.com");
    ex.sim
        .exchange()
        .update_mailbox(TENANT, MAILBOX, |m| m.forwarding_smtp_address = Some("smtp:old@example.com".into()));

    let unknown = ex.cmdlet("Set-Mailbox").identity(MAILBOX).with("ForwardingAddress", "nobody").send().await;
    let text = unknown.cmdlet_error(
        404,
        "NotFound",
        "Ex94914C",
        "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
    );
    assert_eq!(
        text,
        "Couldn't find object \"nobody\". Please make sure that it was spelled correctly or specify a different object."
    );

    ex.cmdlet("Set-Mailbox").identity(MAILBOX).with("ForwardingAddress", "sales@contoso.com").send().await.output();
    assert_eq!(ex.mailbox().await["ForwardingAddress"], "sales");

    ex.cmdlet("Set-Mailbox")
        .identity(MAILBOX)
        .with("ForwardingAddress", Value::Null)
        .with("ForwardingSmtpAddress", Value::Null)
        .send()
        .await
        .output();
    let cleared = ex.mailbox().await;
    assert_eq!((&cleared["ForwardingAddress"], &cleared["ForwardingSmtpAddress"]), (&Value::Null, &Value::Null));
}

#[tokio::test]
async fn an_unknown_mailbox_is_not_found_with_exchanges_error_text() {
    let ex = Exchange::start().await;
    for cmdlet in ["Get-Mailbox", "Set-Mailbox", "Get-CASMailbox", "Set-CASMailbox"] {
        let reply = ex.cmdlet(cmdlet).identity("ghost@contoso.com").send().await;
        let text = reply.cmdlet_error(
            404,
            "NotFound",
            "Ex6F9304",
            "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
        );
        assert!(
            text.starts_with(
                "The operation couldn't be performed because object 'ghost@contoso.com' couldn't be found on '"
            ),
            "{cmdlet}: {text}"
        );
        assert_eq!(reply.body["error"]["message"], "Error executing cmdlet");
    }
}

#[tokio::test]
async fn get_mailbox_without_identity_lists_every_mailbox() {
    let ex = Exchange::start().await;
    ex.sim.exchange().add_mailbox(TENANT, "sales@contoso.com");
    let reply = ex.cmdlet("Get-Mailbox").send().await;
    let upns: Vec<&str> = reply.output().iter().map(|m| m["UserPrincipalName"].as_str().unwrap()).collect();
    assert_eq!(upns, [MAILBOX, "sales@contoso.com"]);
}

#[tokio::test]
async fn smtp_auth_is_tri_state_on_the_mailbox_and_true_by_default_for_the_organization() {
    let ex = Exchange::start().await;
    assert_eq!(ex.cas_smtp_auth_disabled().await, Value::Null, "inherits by default");
    let transport = ex.cmdlet("Get-TransportConfig").send().await;
    assert_eq!(transport.single()["SmtpClientAuthenticationDisabled"], true);

    for setting in [json!(false), json!(true), Value::Null] {
        let reply = ex
            .cmdlet("Set-CASMailbox")
            .identity(MAILBOX)
            .with("SmtpClientAuthenticationDisabled", setting.clone())
            .send()
            .await;
        assert!(reply.output().is_empty());
        assert_eq!(ex.cas_smtp_auth_disabled().await, setting);
        assert_eq!(
            ex.sim.exchange().mailbox(TENANT, MAILBOX).unwrap().smtp_client_authentication_disabled,
            setting.as_bool()
        );
    }

    ex.sim.exchange().set_transport_smtp_auth_disabled(TENANT, false);
    let transport = ex.cmdlet("Get-TransportConfig").send().await;
    assert_eq!(transport.single()["SmtpClientAuthenticationDisabled"], false);
}

// ---------------------------------------------------------------------------------------------
// Outbound forwarding policy

#[tokio::test]
async fn outbound_policies_rules_and_the_remote_domain_describe_who_may_forward() {
    let ex = Exchange::start().await;
    let default = ex.cmdlet("Get-HostedOutboundSpamFilterPolicy").identity("Default").send().await;
    let default = default.single();
    assert_eq!((default["Name"].as_str(), default["IsDefault"].as_bool()), (Some("Default"), Some(true)));
    assert_eq!(default["AutoForwardingMode"], "Automatic");
    assert!(ex.cmdlet("Get-HostedOutboundSpamFilterRule").send().await.output().is_empty());

    let exchange = ex.sim.exchange();
    exchange.set_outbound_policy_mode(TENANT, "Default", AutoForwardingMode::Off);
    exchange.add_outbound_policy(TENANT, "Allow Connect forwarding", AutoForwardingMode::On, vec![MAILBOX.into()], 1);
    exchange.add_outbound_policy(TENANT, "Sales", AutoForwardingMode::Off, vec![], 0);
    exchange.update_outbound_rule(TENANT, "Sales", |rule| {
        rule.sender_domain_is = vec!["contoso.com".into()];
        rule.from_member_of = vec!["sales-team@contoso.com".into()];
        rule.enabled = false;
    });

    let policies = ex.cmdlet("Get-HostedOutboundSpamFilterPolicy").send().await;
    let modes: Vec<(&str, &str, bool)> = policies
        .output()
        .iter()
        .map(|p| {
            (p["Name"].as_str().unwrap(), p["AutoForwardingMode"].as_str().unwrap(), p["IsDefault"].as_bool().unwrap())
        })
        .collect();
    assert_eq!(modes, [("Default", "Off", true), ("Allow Connect forwarding", "On", false), ("Sales", "Off", false)]);

    let rules = ex.cmdlet("Get-HostedOutboundSpamFilterRule").send().await;
    let rules = rules.output();
    assert_eq!(rules.len(), 2);
    let (sales, connect) = (&rules[0], &rules[1]);
    assert_eq!((sales["Name"].as_str(), sales["Priority"].as_u64()), (Some("Sales"), Some(0)), "ordered by priority");
    assert_eq!(sales["State"], "Disabled");
    assert_eq!(sales["SenderDomainIs"], json!(["contoso.com"]));
    assert_eq!(sales["FromMemberOf"], json!(["sales-team@contoso.com"]));
    assert_eq!(connect["HostedOutboundSpamFilterPolicy"], "Allow Connect forwarding");
    assert_eq!(connect["From"], json!([MAILBOX]));
    assert_eq!(connect["State"], "Enabled");
    let one = ex.cmdlet("Get-HostedOutboundSpamFilterRule").identity("Allow Connect forwarding").send().await;
    assert_eq!(one.single()["Priority"], 1);

    let remote = ex.cmdlet("Get-RemoteDomain").identity("Default").send().await;
    assert_eq!(
        (remote.single()["DomainName"].as_str(), remote.single()["AutoForwardEnabled"].as_bool()),
        (Some("*"), Some(true))
    );
    exchange.set_remote_domain_auto_forward(TENANT, false);
    let remote = ex.cmdlet("Get-RemoteDomain").identity("Default").send().await;
    assert_eq!(remote.single()["AutoForwardEnabled"], false);

    let missing = ex.cmdlet("Get-HostedOutboundSpamFilterPolicy").identity("Nope").send().await;
    missing.cmdlet_error(
        404,
        "NotFound",
        "Ex6F9304",
        "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
    );
}

// ---------------------------------------------------------------------------------------------
// Authentication, tenant, anchor, role

#[tokio::test]
async fn exchange_refuses_graph_forged_missing_and_expired_tokens() {
    let ex = Exchange::start().await;
    let graph_token = ex.token_for(TENANT, GRAPH_SCOPE).await;
    ex.cmdlet("Get-Mailbox").bearer(Some(&graph_token)).send().await.unauthorized(Some("2000003"));
    ex.cmdlet("Get-Mailbox").bearer(Some("forged")).send().await.unauthorized(Some("2000001"));
    ex.cmdlet("Get-Mailbox").bearer(None).send().await.unauthorized(None);
    assert_eq!(ex.sim.exchange().count_cmdlet("Get-Mailbox"), 3, "refused calls are recorded too");

    ex.sim.advance_clock(Duration::from_secs(3600));
    ex.cmdlet("Get-Mailbox").send().await.unauthorized(Some("2000001"));
}

#[tokio::test]
async fn the_path_names_the_tokens_tenant_by_id_or_domain() {
    let ex = Exchange::start().await;
    let by_domain = ex.cmdlet("Get-Mailbox").tenant_in_path(DOMAIN).identity(MAILBOX).send().await;
    assert!(by_domain.body["@odata.context"].as_str().unwrap().contains(&format!("/adminapi/beta/{DOMAIN}/$metadata")));
    by_domain.single();

    ex.cmdlet("Get-Mailbox").tenant_in_path(OTHER_TENANT).send().await.unauthorized(Some("2000004"));
    let other_token = ex.token_for(OTHER_TENANT, EXCHANGE_SCOPE).await;
    ex.cmdlet("Get-Mailbox").bearer(Some(&other_token)).send().await.unauthorized(Some("2000004"));
}

#[tokio::test]
async fn the_anchor_mailbox_must_be_the_system_mailbox_of_the_tokens_tenant() {
    let ex = Exchange::start().await;
    for accepted in [app_anchor(TENANT), app_anchor(DOMAIN), format!("UPN:{SYSTEM_MAILBOX}@{DOMAIN}")] {
        let reply = ex.cmdlet("Get-TransportConfig").anchored_on(Some(&accepted)).send().await;
        assert_eq!(reply.status, 200, "{accepted}: {reply:?}");
    }
    for refused in [None, Some(app_anchor(OTHER_TENANT)), Some(format!("UPN:{MAILBOX}")), Some(String::new())] {
        let reply = ex.cmdlet("Get-TransportConfig").anchored_on(refused.as_deref()).send().await;
        assert_eq!(reply.status, 400, "{refused:?}: {reply:?}");
        assert!(reply.body["error"]["message"].as_str().unwrap().contains("X-AnchorMailbox"));
    }
}

#[tokio::test]
async fn a_caller_without_an_exchange_role_gets_a_401_naming_the_cmdlet() {
    let ex = Exchange::start().await;
    ex.sim.exchange().set_role_missing(TENANT, true);
    let refused = ex.cmdlet("Set-Mailbox").identity(MAILBOX).with("ForwardingSmtpAddress", FORWARD_TO).send().await;
    assert_eq!(refused.status, 401, "{refused:?}");
    assert_eq!(refused.body["error"]["code"], "Unauthorized");
    assert_eq!(refused.body["error"]["message"], "User is not allowed to call Set-Mailbox.");
    assert_eq!(ex.sim.exchange().mailbox(TENANT, MAILBOX).unwrap().forwarding_smtp_address, None);
    assert_eq!(ex.sim.exchange().cmdlet_calls(), ["Set-Mailbox"]);

    ex.sim.exchange().set_role_missing(TENANT, false);
    assert_eq!(ex.cmdlet("Get-Mailbox").identity(MAILBOX).send().await.status, 200);
}

#[tokio::test]
async fn the_client_says_what_to_fix_for_a_missing_role_and_an_unavailable_cmdlet() {
    let ex = Exchange::start().await;
    let client = ex.client();
    ex.sim.exchange().set_role_missing(TENANT, true);
    let error = client.set_forwarding(TENANT, MAILBOX, Some(FORWARD_TO), true).await.unwrap_err();
    assert!(matches!(error, ExchangeError::AccessDenied { status: 401, cmdlet: "Set-Mailbox", .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("User is not allowed to call Set-Mailbox."), "{text}");
    assert!(text.contains("Exchange.ManageAsApp") && text.contains("Exchange Administrator"), "{text}");
    assert!(!error.is_transient());
    assert_eq!(ex.sim.exchange().count_cmdlet("Set-Mailbox"), 1, "a refusal is not retried");

    // A cmdlet outside the caller's roles (here: unknown to Exchange) is a 403 with an empty body.
    ex.sim.exchange().set_role_missing(TENANT, false);
    let unknown = ex.cmdlet("Remove-Mailbox").identity(MAILBOX).send().await;
    assert_eq!((unknown.status, unknown.bytes.len()), (403, 0), "{unknown:?}");
}

// ---------------------------------------------------------------------------------------------
// Cmdlets and parameters

#[tokio::test]
async fn unknown_cmdlets_are_refused_and_parameters_are_bound_strictly() {
    let ex = Exchange::start().await;
    let unknown = ex.cmdlet("Remove-Mailbox").identity(MAILBOX).send().await;
    assert_eq!(unknown.status, 403);
    assert!(unknown.bytes.is_empty(), "{unknown:?}");

    let typo = ex.cmdlet("Get-Mailbox").with("Identiti", MAILBOX).send().await;
    let text = typo.cmdlet_error(400, "BadRequest", "", "System.Management.Automation.ParameterBindingException");
    assert_eq!(text, "A parameter cannot be found that matches parameter name 'Identiti'.");

    let not_a_bool = ex.cmdlet("Set-Mailbox").identity(MAILBOX).with("DeliverToMailboxAndForward", "yes").send().await;
    not_a_bool.cmdlet_error(
        400,
        "BadRequest",
        "",
        "System.Management.Automation.ParameterBindingArgumentTransformationException",
    );
    let bad_address =
        ex.cmdlet("Set-Mailbox").identity(MAILBOX).with("ForwardingSmtpAddress", "not an address").send().await;
    assert_eq!(bad_address.status, 400);
    let no_identity = ex.cmdlet("Set-CASMailbox").with("SmtpClientAuthenticationDisabled", false).send().await;
    let text =
        no_identity.cmdlet_error(400, "BadRequest", "", "System.Management.Automation.ParameterBindingException");
    assert!(text.contains("missing mandatory parameters: Identity"), "{text}");

    let not_json = ex.cmdlet("Get-Mailbox").raw_body("Get-Mailbox -Identity support").send().await;
    assert_eq!((not_json.status, not_json.body["error"]["code"].as_str()), (400, Some("BadRequest")));
    assert_eq!(ex.sim.exchange().mailbox(TENANT, MAILBOX).unwrap().forwarding_smtp_address, None, "nothing changed");
}

#[tokio::test]
async fn cmdlet_names_are_case_insensitive_and_recorded_canonically() {
    let ex = Exchange::start().await;
    ex.sim.reset_calls();
    ex.cmdlet("get-mailbox").identity(MAILBOX).send().await.single();
    ex.cmdlet("SET-CASMAILBOX").identity(MAILBOX).with("SmtpClientAuthenticationDisabled", false).send().await.output();
    ex.cmdlet("Get-Something").send().await;

    assert_eq!(ex.sim.exchange().cmdlet_calls(), ["Get-Mailbox", "Set-CASMailbox", "Get-Something"]);
    assert_eq!(ex.sim.exchange().count_cmdlet("GET-MAILBOX"), 1);
    let calls = ex.sim.calls();
    assert!(calls.iter().all(|c| c.route == routes::INVOKE_COMMAND), "{calls:?}");
    assert!(calls.iter().all(|c| c.tenant.as_deref() == Some(TENANT) && c.client_id.as_deref() == Some(OPERATOR)));
    assert_eq!(calls.iter().map(|c| c.status).collect::<Vec<_>>(), [200, 200, 403]);
    assert_eq!(calls[0].path, format!("/adminapi/beta/{TENANT}/InvokeCommand"));
    assert_eq!(ex.sim.count(routes::INVOKE_COMMAND), 3);
}

#[test]
#[should_panic(expected = "not a cmdlet the Exchange simulator implements")]
fn counting_a_misspelt_cmdlet_fails_loudly() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sim = runtime.block_on(MicrosoftSim::start(SimOptions::default())).unwrap();
    sim.exchange().count_cmdlet("Set-Mailboxes");
}

// ---------------------------------------------------------------------------------------------
// Faults

#[tokio::test]
async fn throttling_with_and_without_retry_after() {
    let ex = Exchange::start().await;
    ex.sim.faults().on(routes::INVOKE_COMMAND).throttled(Some(5));
    ex.sim.faults().on(routes::INVOKE_COMMAND).throttled(None);

    let first = ex.cmdlet("Get-Mailbox").identity(MAILBOX).send().await;
    assert_eq!((first.status, first.header("retry-after")), (429, Some("5")));
    assert!(
        String::from_utf8_lossy(&first.bytes).starts_with("You have reached the maximum number of concurrent requests")
    );
    let second = ex.cmdlet("Get-Mailbox").identity(MAILBOX).send().await;
    assert_eq!((second.status, second.header("retry-after")), (429, None));
    ex.cmdlet("Get-Mailbox").identity(MAILBOX).send().await.single();
    assert_eq!(ex.sim.faults().pending(), 0);
}

#[tokio::test]
async fn a_fault_can_target_one_cmdlet() {
    let ex = Exchange::start().await;
    ex.sim.faults().on_cmdlet("set-mailbox").times(2).unavailable();

    assert_eq!(ex.cmdlet("Get-Mailbox").identity(MAILBOX).send().await.status, 200, "other cmdlets are unaffected");
    for _ in 0..2 {
        let refused = ex.cmdlet("Set-Mailbox").identity(MAILBOX).with("ForwardingSmtpAddress", FORWARD_TO).send().await;
        assert_eq!(refused.status, 503);
        assert!(refused.header("content-type").unwrap().starts_with("text/html"));
    }
    assert_eq!(ex.sim.exchange().mailbox(TENANT, MAILBOX).unwrap().forwarding_smtp_address, None, "not applied");
    ex.cmdlet("Set-Mailbox").identity(MAILBOX).with("ForwardingSmtpAddress", FORWARD_TO).send().await.output();
    assert_eq!(ex.sim.exchange().count_cmdlet("Set-Mailbox"), 3);
}

#[tokio::test]
async fn a_reset_drops_the_connection_and_latency_delays_the_answer() {
    let ex = Exchange::start().await;
    ex.sim.faults().on_cmdlet("Get-TransportConfig").reset();
    let result = ex.cmdlet("Get-TransportConfig").try_send().await;
    assert!(result.is_err(), "expected a transport error, got {result:?}");
    let last = ex.sim.calls().pop().unwrap();
    assert_eq!(
        (last.route.as_str(), last.status, last.cmdlet.as_deref()),
        (routes::INVOKE_COMMAND, 0, Some("Get-TransportConfig"))
    );

    ex.sim.faults().on(routes::INVOKE_COMMAND).latency(Duration::from_millis(250));
    let started = Instant::now();
    assert_eq!(ex.cmdlet("Get-TransportConfig").send().await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn wildcard_faults_reach_exchange_with_its_own_error_bodies() {
    let ex = Exchange::start().await;
    ex.sim.faults().on("*").status(500, None);
    let reply = ex.cmdlet("Get-Mailbox").send().await;
    assert_eq!((reply.status, reply.body["error"]["code"].as_str()), (500, Some("InternalServerError")));
}

// ---------------------------------------------------------------------------------------------
// The operator's client against the simulator

#[tokio::test]
async fn forwarding_is_sent_as_the_bare_address_and_read_back_without_the_prefix() {
    let ex = Exchange::start().await;
    let client = ex.client();
    client.set_forwarding(TENANT, MAILBOX, Some(FORWARD_TO), true).await.unwrap();

    let sent = ex.sim.exchange().received_parameters(TENANT, "Set-Mailbox");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["ForwardingSmtpAddress"], FORWARD_TO, "no smtp: prefix on the wire");
    assert_eq!(sent[0]["ForwardingAddress"], Value::Null, "the internal forwarding is cleared");
    assert_eq!(sent[0]["DeliverToMailboxAndForward"], true);
    assert_eq!(
        ex.sim.exchange().mailbox(TENANT, MAILBOX).unwrap().forwarding_smtp_address,
        Some(format!("smtp:{FORWARD_TO}")),
        "Exchange shows it with the prefix"
    );

    let read = client.forwarding(TENANT, MAILBOX).await.unwrap();
    assert_eq!(read.smtp_address.as_deref(), Some(FORWARD_TO));
    assert!(read.deliver_to_mailbox_and_forward && read.address.is_none());

    client.set_forwarding(TENANT, MAILBOX, None, true).await.unwrap();
    let sent = ex.sim.exchange().received_parameters(TENANT, "Set-Mailbox");
    assert_eq!(
        (&sent[1]["ForwardingSmtpAddress"], &sent[1]["DeliverToMailboxAndForward"]),
        (&Value::Null, &json!(false))
    );
    assert_eq!(client.forwarding(TENANT, MAILBOX).await.unwrap().smtp_address, None);
}

#[tokio::test]
async fn the_concurrency_throttle_is_retried_whatever_its_status() {
    let ex = Exchange::start().await;
    let client = ex.client();
    for status in [400, 403, 500] {
        ex.sim.reset_calls();
        ex.sim.exchange().throttle_concurrency(TENANT, 2, status);
        let read = client.forwarding(TENANT, MAILBOX).await;
        assert!(read.is_ok(), "HTTP {status}: {read:?}");
        assert_eq!(
            ex.sim.exchange().count_cmdlet("Get-Mailbox"),
            3,
            "HTTP {status}: two throttled answers, then the answer"
        );
        let calls = ex.sim.calls();
        let statuses: Vec<u16> = calls.iter().filter(|c| c.route == routes::INVOKE_COMMAND).map(|c| c.status).collect();
        assert_eq!(statuses, [status, status, 200]);
    }

    // The plain-text 429 (a fault) is retried too.
    ex.sim.reset_calls();
    ex.sim.faults().on_cmdlet("Get-Mailbox").times(2).throttled(None);
    client.forwarding(TENANT, MAILBOX).await.unwrap();
    assert_eq!(ex.sim.exchange().count_cmdlet("Get-Mailbox"), 3);
}

#[tokio::test]
async fn a_throttle_that_outlasts_the_retries_is_transient() {
    let ex = Exchange::start().await;
    ex.sim.exchange().throttle_concurrency(TENANT, 10, 400);
    let error = ex.client().forwarding(TENANT, MAILBOX).await.unwrap_err();
    assert!(matches!(error, ExchangeError::Throttled { status: 400, .. }), "{error:?}");
    assert!(error.is_transient());
    assert_eq!(ex.sim.exchange().count_cmdlet("Get-Mailbox"), 4, "bounded: the client's 4 attempts");
}

#[tokio::test]
async fn the_reason_falls_back_to_the_inner_exception_when_details_are_absent() {
    let ex = Exchange::start().await;
    ex.sim.exchange().set_errors_without_details(TENANT, true);
    let raw = ex.cmdlet("Set-Mailbox").identity(MAILBOX).with("ForwardingSmtpAddress", "not an address").send().await;
    assert_eq!(raw.status, 400);
    assert!(raw.body["error"].get("details").is_none(), "{raw:?}");
    assert_eq!(raw.body["error"]["message"], "Invalid Operation");

    let error = ex.client().set_forwarding(TENANT, MAILBOX, Some("not an address"), false).await.unwrap_err();
    match &error {
        ExchangeError::Command { status: 400, message, .. } => {
            assert!(
                message.starts_with("Cannot process argument transformation on parameter 'ForwardingSmtpAddress'"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }

    let missing = ex.client().forwarding(TENANT, "ghost@contoso.com").await.unwrap_err();
    assert!(
        matches!(&missing, ExchangeError::MailboxNotFound(identity) if identity == "ghost@contoso.com"),
        "{missing:?}"
    );
}

#[tokio::test]
async fn long_collections_page_with_next_links_that_take_the_same_body() {
    let ex = Exchange::with(SimOptions::default().exchange_page_size(2)).await;
    for i in 1..=4 {
        ex.sim.exchange().add_outbound_policy(TENANT, &format!("Policy {i}"), AutoForwardingMode::Off, vec![], i);
    }
    let first = ex.cmdlet("Get-HostedOutboundSpamFilterPolicy").send().await;
    assert_eq!(first.output().len(), 2);
    let next = first.body["@odata.nextLink"].as_str().expect("a next link");
    assert!(next.starts_with(&format!("{}/adminapi/beta/{TENANT}/InvokeCommand?", ex.sim.url())), "{next}");

    let body = json!({"CmdletInput": {"CmdletName": "Get-HostedOutboundSpamFilterPolicy", "Parameters": {}}});
    let mut names: Vec<String> = first.output().iter().map(|p| p["Name"].as_str().unwrap().to_string()).collect();
    let mut link = Some(next.to_string());
    while let Some(url) = link {
        let page: Value = ex
            .http
            .post(url)
            .bearer_auth(&ex.token)
            .header("X-AnchorMailbox", app_anchor(TENANT))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        names.extend(page["value"].as_array().unwrap().iter().map(|p| p["Name"].as_str().unwrap().to_string()));
        link = page["@odata.nextLink"].as_str().map(str::to_string);
    }
    assert_eq!(names, ["Default", "Policy 1", "Policy 2", "Policy 3", "Policy 4"]);
    let single = ex.cmdlet("Get-HostedOutboundSpamFilterPolicy").identity("Policy 3").send().await;
    assert!(single.body.get("@odata.nextLink").is_none(), "one row, one page");
}

#[tokio::test]
async fn the_client_reads_every_page_of_outbound_policies_and_rules() {
    let ex = Exchange::with(SimOptions::default().exchange_page_size(2)).await;
    for i in 1..=4 {
        ex.sim.exchange().add_outbound_policy(
            TENANT,
            &format!("Others {i}"),
            AutoForwardingMode::Off,
            vec![format!("user{i}@contoso.com")],
            i,
        );
    }
    // The rule for the mailbox has the lowest precedence: it comes back on the last page.
    ex.sim.exchange().add_outbound_policy(
        TENANT,
        "Allow Connect forwarding",
        AutoForwardingMode::On,
        vec![MAILBOX.into()],
        9,
    );
    ex.sim.reset_calls();

    let outbound = ex.client().outbound_forwarding(TENANT, MAILBOX).await.unwrap();
    assert_eq!(outbound.policy, "Allow Connect forwarding");
    assert_eq!(outbound.rule.as_deref(), Some("Allow Connect forwarding"));
    assert_eq!(outbound.mode, exchange::AutoForwardingMode::On);
    assert!(outbound.allows_external_forwarding());
    // 6 policies and 5 rules, 2 per page.
    assert_eq!(ex.sim.exchange().count_cmdlet("Get-HostedOutboundSpamFilterPolicy"), 3);
    assert_eq!(ex.sim.exchange().count_cmdlet("Get-HostedOutboundSpamFilterRule"), 3);
    let paged = ex.sim.calls().iter().filter(|c| c.query.as_deref().is_some_and(|q| q.contains("skiptoken"))).count();
    assert_eq!(paged, 4, "the later pages were read through the next links");
}

// ---------------------------------------------------------------------------------------------
// Permissions for the operator's service principal

#[tokio::test]
async fn an_application_gets_admin_roles_through_a_role_group_and_only_application_roles_directly() {
    const APP: &str = "1a2b3c4d-0000-4000-8000-0000000000a1";
    const OBJECT: &str = "1a2b3c4d-0000-4000-8000-0000000000b2";
    let ex = Exchange::start().await;
    let sp = ex
        .cmdlet("New-ServicePrincipal")
        .with("AppId", APP)
        .with("ObjectId", OBJECT)
        .with("DisplayName", "ops")
        .send()
        .await;
    assert_eq!(sp.status, 200, "{sp:?}");

    // RBAC for Applications: with -App only application roles may be assigned.
    let direct =
        ex.cmdlet("New-ManagementRoleAssignment").with("App", OBJECT).with("Role", "Mail Recipients").send().await;
    let text = direct.cmdlet_error(
        400,
        "BadRequest",
        "",
        "Microsoft.Exchange.Management.RbacTasks.InvalidRoleAssignmentException",
    );
    assert!(text.contains("only application roles"), "{text}");
    assert!(ex.sim.exchange().role_assignments(TENANT).is_empty());
    let application = ex
        .cmdlet("New-ManagementRoleAssignment")
        .with("App", OBJECT)
        .with("Role", "Application Mail.Send")
        .send()
        .await;
    assert_eq!(application.status, 200, "{application:?}");

    // Admin roles: a role group limited by a recipient scope, with the service principal as member.
    let filter = "PrimarySmtpAddress -eq 'support@contoso.com'";
    let scope = ex
        .cmdlet("New-ManagementScope")
        .with("Name", "mailboxes")
        .with("RecipientRestrictionFilter", filter)
        .send()
        .await;
    assert_eq!(scope.status, 200, "{scope:?}");
    let group = ex
        .cmdlet("New-RoleGroup")
        .with("Name", "ops-recipients")
        .with("Roles", json!(["Mail Recipients"]))
        .with("CustomRecipientWriteScope", "mailboxes")
        .send()
        .await;
    assert_eq!(group.single()["CustomRecipientWriteScope"], "mailboxes");
    let unknown_scope = ex
        .cmdlet("New-RoleGroup")
        .with("Name", "other")
        .with("Roles", "Mail Recipients")
        .with("CustomRecipientWriteScope", "nope")
        .send()
        .await;
    assert_eq!(unknown_scope.status, 404, "{unknown_scope:?}");
    assert!(
        ex.cmdlet("Get-RoleGroupMember").identity("ops-recipients").send().await.body["value"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let added = ex.cmdlet("Add-RoleGroupMember").identity("ops-recipients").with("Member", OBJECT).send().await;
    assert_eq!(added.status, 200, "{added:?}");
    let members = ex.cmdlet("Get-RoleGroupMember").identity("ops-recipients").send().await;
    assert_eq!(members.single()["ExternalDirectoryObjectId"], OBJECT);
    let groups = ex.sim.exchange().role_groups(TENANT);
    assert_eq!(groups.len(), 1);
    assert_eq!((groups[0].roles.clone(), groups[0].members.len()), (vec!["Mail Recipients".to_string()], 1));
}

#[tokio::test]
async fn a_derived_role_narrows_its_parent_and_binds_the_application_that_holds_it() {
    const DELEGATE: &str = "delegate@contoso.com";
    let ex = Exchange::start().await;
    ex.sim.exchange().add_mailbox(TENANT, DELEGATE);
    let admin = ex.sim.issue_admin_token(TENANT, connect_email_sim::Audience::Exchange);
    let as_admin = |name: &str| ex.cmdlet(name).bearer(Some(&admin));

    // Until the operator's application holds a role, its calls are not checked against entries.
    let grant = ex.cmdlet("Set-Mailbox").identity(MAILBOX).with("GrantSendOnBehalfTo", json!([DELEGATE])).send().await;
    assert_eq!(grant.status, 200, "{grant:?}");
    assert_eq!(ex.mailbox().await["GrantSendOnBehalfTo"], json!(["delegate"]));

    // A role derived from Mail Recipients starts with its entries (documented) and only narrows.
    let built_in = as_admin("Get-ManagementRole").identity("mail recipients").send().await;
    assert_eq!(
        (
            built_in.single()["Name"].clone(),
            built_in.single()["Parent"].clone(),
            built_in.single()["IsRootRole"].clone()
        ),
        (json!("Mail Recipients"), Value::Null, json!(true))
    );
    let role = as_admin("New-ManagementRole").with("Name", "narrow").with("Parent", "Mail Recipients").send().await;
    assert_eq!(
        (role.single()["Name"].as_str(), role.single()["Parent"].as_str()),
        (Some("narrow"), Some("Mail Recipients"))
    );
    let sets = as_admin("Get-ManagementRoleEntry").identity("narrow\\Set-*").send().await;
    let names: Vec<&str> = sets.output().iter().map(|e| e["Name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Set-Mailbox", "Set-CASMailbox"]);
    assert_eq!(sets.output()[0]["Role"], "narrow");
    assert!(sets.output()[0]["Parameters"].as_array().unwrap().contains(&json!("GrantSendOnBehalfTo")));
    let narrowed = as_admin("Set-ManagementRoleEntry")
        .identity("narrow\\Set-Mailbox")
        .with("Parameters", json!(["Identity", "ForwardingSmtpAddress"]))
        .send()
        .await;
    assert_eq!(narrowed.status, 200, "{narrowed:?}");
    let removed = as_admin("Remove-ManagementRoleEntry")
        .identity("narrow\\Add-MailboxPermission")
        .with("Confirm", false)
        .send()
        .await;
    assert_eq!(removed.status, 200, "{removed:?}");
    let entry = ex.sim.exchange().management_role(TENANT, "narrow").unwrap();
    assert_eq!(entry.entry("Set-Mailbox").unwrap().parameters, ["Identity", "ForwardingSmtpAddress"]);
    assert!(entry.entry("Add-MailboxPermission").is_none());

    let wider = as_admin("Set-ManagementRoleEntry")
        .identity("narrow\\Set-Mailbox")
        .with("Parameters", "Password")
        .with("AddParameter", true)
        .send()
        .await;
    let text = wider.cmdlet_error(
        400,
        "BadRequest",
        "",
        "Microsoft.Exchange.Management.RbacTasks.RoleEntryNotInParentException",
    );
    assert!(text.contains("Password"), "{text}");
    let built_in =
        as_admin("Remove-ManagementRoleEntry").identity("Mail Recipients\\Add-MailboxPermission").send().await;
    built_in.cmdlet_error(
        400,
        "BadRequest",
        "",
        "Microsoft.Exchange.Management.RbacTasks.InvalidOperationOnBuiltInRoleException",
    );

    // The operator's application holds the role through a role group: its entries now bind it.
    let sp = as_admin("New-ServicePrincipal")
        .with("AppId", OPERATOR)
        .with("ObjectId", "0be7a7a0-0000-4000-8000-0000000000b1")
        .send()
        .await;
    assert_eq!(sp.status, 200, "{sp:?}");
    let group = as_admin("New-RoleGroup")
        .with("Name", "narrow-group")
        .with("Roles", "narrow")
        .with("Members", json!([OPERATOR]))
        .send()
        .await;
    assert_eq!(group.status, 200, "{group:?}");
    assert_eq!(ex.sim.exchange().roles_of_app(TENANT, OPERATOR), ["narrow"]);

    let forward = ex.cmdlet("Set-Mailbox").identity(MAILBOX).with("ForwardingSmtpAddress", FORWARD_TO).send().await;
    assert_eq!(forward.status, 200, "{forward:?}");
    let grant = ex.cmdlet("Set-Mailbox").identity(MAILBOX).with("GrantSendOnBehalfTo", json!([])).send().await;
    let text = grant.cmdlet_error(400, "BadRequest", "", "System.Management.Automation.ParameterBindingException");
    assert_eq!(text, "A parameter cannot be found that matches parameter name 'GrantSendOnBehalfTo'.");
    assert_eq!(ex.sim.exchange().mailbox(TENANT, MAILBOX).unwrap().grant_send_on_behalf_to, ["delegate"], "unchanged");
    for outside in ["Add-MailboxPermission", "Get-TransportConfig", "Remove-Mailbox"] {
        let refused = ex.cmdlet(outside).identity(MAILBOX).send().await;
        assert_eq!(refused.status, 401, "{outside}: {refused:?}");
        assert_eq!(refused.body["error"]["code"], "Unauthorized");
        assert_eq!(refused.body["error"]["message"], format!("User is not allowed to call {outside}."));
    }
    // The client reports a refused cmdlet as access denied, naming it.
    let error = ex.client().smtp_auth(TENANT, MAILBOX).await.unwrap_err();
    assert!(
        matches!(error, ExchangeError::AccessDenied { status: 401, cmdlet: "Get-TransportConfig", .. }),
        "{error:?}"
    );
    // Administrators are not bound by the operator's entries.
    assert_eq!(as_admin("Get-TransportConfig").send().await.status, 200);

    // With Mail Recipients itself the same application could grant send-on-behalf.
    let wide = as_admin("New-RoleGroup")
        .with("Name", "wide")
        .with("Roles", "Mail Recipients")
        .with("Members", OPERATOR)
        .send()
        .await;
    assert_eq!(wide.status, 200, "{wide:?}");
    let grant = ex.cmdlet("Set-Mailbox").identity(MAILBOX).with("GrantSendOnBehalfTo", json!([])).send().await;
    assert_eq!(grant.status, 200, "{grant:?}");
}
