//! The trust boundary: whether an `EntraTenant` admits a namespaced resource, and what it lets
//! that resource ask of the tenant. Pure functions over plain data, evaluated before any
//! external call; a refusal names the tenant object and the exact rule broken.
//!
//! Normalisation is deliberately strict: addresses are compared case-insensitively (Exchange and
//! DNS are case-insensitive) but never trimmed, so `billing@contoso.com.` or `billing+x@contoso.com`
//! must be listed as such to be admitted; application IDs are compared case-insensitively; an API
//! named by display name is accepted only for the two well-known first-party APIs, which are then
//! resolved by their application ID (a tenant user can register an app called "Microsoft Graph").

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::api::AzureAppRegistrationSpec;
use crate::api::app_registration::SignInAudience;
use crate::api::tenant::{EXCHANGE_ONLINE_APP_ID, EntraTenantSpec, MICROSOFT_GRAPH_APP_ID};

/// Why a tenant object refuses a resource: the rule (a field path of the EntraTenant, or of the
/// resource) and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub rule: &'static str,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.rule)
    }
}

/// The application ID of an API named in `permissions[].resource`: a GUID as given (lowercased),
/// or one of the well-known first-party display names. Anything else: None.
pub fn resource_app_id(resource: &str) -> Option<String> {
    if is_guid(resource) {
        return Some(resource.to_ascii_lowercase());
    }
    match resource {
        "Microsoft Graph" => Some(MICROSOFT_GRAPH_APP_ID.into()),
        "Office 365 Exchange Online" => Some(EXCHANGE_ONLINE_APP_ID.into()),
        _ => None,
    }
}

pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().zip([8, 4, 4, 4, 12]).all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Whether `labels` (a namespace's) match `selector`. An empty selector matches everything.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels =
        selector.match_labels.iter().flatten().all(|(k, v)| labels.get(k).is_some_and(|actual| actual == v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => labels.contains_key(&e.key),
            "DoesNotExist" => !labels.contains_key(&e.key),
            // Refused at admission by the CRD; never admit on a selector we cannot read.
            _ => false,
        }
    });
    by_labels && by_expressions
}

/// The namespace check every resource goes through first.
pub fn admit_namespace(
    tenant_name: &str,
    tenant: &EntraTenantSpec,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Result<(), Refusal> {
    if selector_matches(&tenant.namespace_selector, labels) {
        Ok(())
    } else {
        Err(Refusal {
            rule: "EntraTenant spec.namespaceSelector",
            message: format!(
                "EntraTenant {tenant_name} does not admit namespace {namespace}: ask the cluster administrator to label the namespace or widen spec.namespaceSelector"
            ),
        })
    }
}

/// What an admitted registration resolves to: for each `permissions[].resource` as written, the
/// application ID it is resolved by.
pub type ResourceIds = BTreeMap<String, String>;

/// Whether the tenant object allows a registration's spec (after the namespace check).
pub fn admit_registration(
    tenant_name: &str,
    tenant: &EntraTenantSpec,
    spec: &AzureAppRegistrationSpec,
) -> Result<ResourceIds, Refusal> {
    let policy = &tenant.permissions;
    let mut ids = ResourceIds::new();
    for p in &spec.permissions {
        let Some(app_id) = resource_app_id(&p.resource) else {
            return Err(Refusal {
                rule: "spec.permissions[].resource",
                message: format!(
                    "permissions resource {:?} must be the API's application ID (GUID), or exactly \"Microsoft Graph\" or \"Office 365 Exchange Online\"",
                    p.resource
                ),
            });
        };
        let allowed = policy.allowed.iter().filter(|a| a.resource_app_id.eq_ignore_ascii_case(&app_id));
        let (scopes, roles): (Vec<&String>, Vec<&String>) = allowed.fold((vec![], vec![]), |(mut s, mut r), a| {
            s.extend(&a.delegated);
            r.extend(&a.application);
            (s, r)
        });
        for (names, granted, kind) in [(&p.delegated, &scopes, "delegated"), (&p.application, &roles, "application")] {
            if let Some(name) = names.iter().find(|n| !granted.iter().any(|g| g.eq_ignore_ascii_case(n))) {
                return Err(Refusal {
                    rule: "EntraTenant spec.permissions.allowed",
                    message: format!(
                        "EntraTenant {tenant_name} does not allow the {kind} permission {name} on {} ({app_id}): ask the cluster administrator to list it under spec.permissions.allowed, or remove it",
                        p.resource
                    ),
                });
            }
        }
        ids.insert(p.resource.clone(), app_id);
    }
    if spec.sign_in_audience != SignInAudience::AzureADMyOrg {
        return Err(Refusal {
            rule: "spec.signInAudience",
            message: format!(
                "signInAudience {} would let accounts outside tenant {} sign in: the operator creates single-tenant applications only (AzureADMyOrg)",
                spec.sign_in_audience.as_str(),
                tenant.tenant_id
            ),
        });
    }
    for uri in &spec.redirect_uris {
        admit_redirect_uri(tenant_name, tenant, uri)?;
    }
    if spec.admin_consent && !spec.permissions.is_empty() && !policy.admin_consent {
        return Err(Refusal {
            rule: "EntraTenant spec.permissions.adminConsent",
            message: format!(
                "EntraTenant {tenant_name} does not allow admin consent: set adminConsent: false and have an administrator grant consent in the Entra admin center"
            ),
        });
    }
    let delegated = spec.permissions.iter().any(|p| !p.delegated.is_empty());
    if spec.admin_consent && delegated {
        if spec.consent_for.is_empty() && !policy.tenant_wide_consent {
            return Err(Refusal {
                rule: "EntraTenant spec.permissions.tenantWideConsent",
                message: format!(
                    "EntraTenant {tenant_name} does not allow consenting delegated permissions for every user of the tenant: name the mailboxes whose users may sign in under spec.consentFor (an EmailChannel does this for its mailbox)"
                ),
            });
        }
        for mailbox in &spec.consent_for {
            admit_mailbox(tenant_name, tenant, mailbox).map_err(|r| Refusal { rule: "spec.consentFor", ..r })?;
        }
    }
    if let Some(adopt) = &spec.adopt {
        let adoption = &tenant.adoption;
        if !adoption.allowed {
            return Err(Refusal {
                rule: "EntraTenant spec.adoption.allowed",
                message: format!("EntraTenant {tenant_name} does not allow adopting existing applications"),
            });
        }
        if !adoption.app_ids.is_empty() && !adoption.app_ids.iter().any(|a| a.eq_ignore_ascii_case(&adopt.app_id)) {
            return Err(Refusal {
                rule: "EntraTenant spec.adoption.appIds",
                message: format!(
                    "EntraTenant {tenant_name} does not list application {} under spec.adoption.appIds",
                    adopt.app_id
                ),
            });
        }
    }
    Ok(ids)
}

/// Whether channels may configure `mailbox`.
pub fn admit_mailbox(tenant_name: &str, tenant: &EntraTenantSpec, mailbox: &str) -> Result<(), Refusal> {
    if tenant.mailboxes.iter().any(|p| address_matches(p, mailbox, true)) {
        Ok(())
    } else {
        Err(Refusal {
            rule: "EntraTenant spec.mailboxes",
            message: format!(
                "EntraTenant {tenant_name} does not allow mailbox {mailbox}: ask the cluster administrator to add it (or its domain) to spec.mailboxes"
            ),
        })
    }
}

/// Whether a channel may use the Webex Connect organisation at `host` (its `connect.tenantHost`).
pub fn admit_tenant_host(tenant_name: &str, tenant: &EntraTenantSpec, host: &str) -> Result<(), Refusal> {
    let wanted = normalised_host(host);
    if wanted.is_some() && tenant.connect.tenant_hosts.iter().any(|listed| normalised_host(listed) == wanted) {
        return Ok(());
    }
    Err(Refusal {
        rule: "EntraTenant spec.connect.tenantHosts",
        message: if tenant.connect.tenant_hosts.is_empty() {
            format!(
                "EntraTenant {tenant_name} lists no Webex Connect organisation: ask the cluster administrator to add `connect: {{tenantHosts: [{host}]}}` to it if {host} is the organisation's own Connect"
            )
        } else {
            format!(
                "EntraTenant {tenant_name} does not list the Webex Connect host {host} (it lists {}): use one of those, or ask the cluster administrator to add it to spec.connect.tenantHosts",
                tenant.connect.tenant_hosts.join(", ")
            )
        },
    })
}

/// Whether an application may redirect sign-ins to `uri`: only `https://<listed host>/callback`,
/// Webex Connect's callback, written without port, user information, query or fragment.
pub fn admit_redirect_uri(tenant_name: &str, tenant: &EntraTenantSpec, uri: &str) -> Result<(), Refusal> {
    let host = uri.strip_prefix("https://").and_then(|rest| rest.strip_suffix("/callback"));
    match host {
        Some(host) if normalised_host(host).is_some() => {
            admit_tenant_host(tenant_name, tenant, host).map_err(|r| Refusal {
                rule: "EntraTenant spec.connect.tenantHosts",
                message: format!("redirect URI {uri}: {}", r.message),
            })
        }
        _ => Err(Refusal {
            rule: "spec.redirectUris",
            message: format!(
                "redirect URI {uri} is not a Webex Connect callback: the operator writes only https://<Connect tenant host>/callback, with no port, user information, other path, query or fragment"
            ),
        }),
    }
}

/// A host name in lower case without its trailing dot; None for anything that is not a plain
/// DNS name (a port, user information, a path, an IP literal in brackets, an empty label).
fn normalised_host(host: &str) -> Option<String> {
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (host.len() <= 253 && host.contains('.') && host.split('.').all(label_ok)).then_some(host)
}

/// Whether mail may be forwarded to `destination`.
pub fn admit_forwarding(tenant_name: &str, tenant: &EntraTenantSpec, destination: &str) -> Result<(), Refusal> {
    let policy = &tenant.forwarding;
    if (policy.connect_addresses && is_connect_forwarding_address(destination))
        || policy.allowed_destinations.iter().any(|p| address_matches(p, destination, false))
    {
        Ok(())
    } else {
        Err(Refusal {
            rule: "EntraTenant spec.forwarding",
            message: format!(
                "EntraTenant {tenant_name} does not allow forwarding to {destination}: only Webex Connect forwarding addresses (<32 hex>@mail-<region>.imiconnect.io){} are allowed",
                if policy.allowed_destinations.is_empty() {
                    String::new()
                } else {
                    " and spec.forwarding.allowedDestinations".into()
                }
            ),
        })
    }
}

/// Webex Connect's generated forwarding address: 32 hexadecimal characters at
/// `mail-<region>.imiconnect.io` (the form seen in public material; the region list is Connect's).
pub fn is_connect_forwarding_address(address: &str) -> bool {
    let lower = address.to_ascii_lowercase();
    let Some((local, domain)) = lower.split_once('@') else { return false };
    let region_ok = domain
        .strip_prefix("mail-")
        .and_then(|d| d.strip_suffix(".imiconnect.io"))
        .is_some_and(|r| ["us", "eu", "uk", "ca", "au", "sg", "in"].contains(&r));
    local.len() == 32 && local.chars().all(|c| c.is_ascii_hexdigit()) && region_ok
}

/// `pattern` is `local@domain`, `*@domain` or (when `subdomains`) `*@*.domain`.
fn address_matches(pattern: &str, address: &str, subdomains: bool) -> bool {
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) || address.ends_with('.') {
        return false;
    }
    let (Some((p_local, p_domain)), Some((local, domain))) = (pattern.split_once('@'), address.split_once('@')) else {
        return false;
    };
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return false;
    }
    let local_ok = p_local == "*" || p_local.eq_ignore_ascii_case(local);
    let domain_ok = match p_domain.strip_prefix("*.") {
        Some(parent) if subdomains => {
            let lower = domain.to_ascii_lowercase();
            lower.strip_suffix(&parent.to_ascii_lowercase()).is_some_and(|head| head.len() > 1 && head.ends_with('.'))
        }
        Some(_) => false,
        None => p_domain.eq_ignore_ascii_case(domain),
    };
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::tenant::{AllowedPermission, EntraTenantSpec};

    fn tenant() -> EntraTenantSpec {
        serde_json::from_value(serde_json::json!({
            "tenantId": "11111111-2222-3333-4444-555555555555",
            "namespaceSelector": {"matchLabels": {"team": "support"}},
            "mailboxes": ["*@contoso.com", "ops@fabrikam.com", "*@*.contoso.net"],
            "connect": {"tenantHosts": ["contoso.us.webexconnect.io", "Contoso.EU.webexconnect.io."]},
        }))
        .unwrap()
    }

    fn registration(permissions: serde_json::Value) -> AzureAppRegistrationSpec {
        serde_json::from_value(serde_json::json!({
            "tenantRef": {"name": "contoso"}, "displayName": "x",
            "clientSecret": {"secretName": "s"}, "permissions": permissions,
            "consentFor": ["support@contoso.com"],
        }))
        .unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_namespace_must_match_the_selector() {
        let t = tenant();
        assert!(admit_namespace("contoso", &t, "support", &labels(&[("team", "support")])).is_ok());
        let refused = admit_namespace("contoso", &t, "other", &labels(&[("team", "sales")])).unwrap_err();
        assert_eq!(refused.rule, "EntraTenant spec.namespaceSelector");
        assert!(refused.message.contains("EntraTenant contoso") && refused.message.contains("namespace other"));
        let mut all = tenant();
        all.namespace_selector = LabelSelector::default();
        assert!(admit_namespace("contoso", &all, "any", &labels(&[])).is_ok());
    }

    #[test]
    fn selector_expressions_follow_kubernetes_semantics() {
        let selector: LabelSelector = serde_json::from_value(serde_json::json!({"matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["gold", "silver"]},
            {"key": "quarantine", "operator": "DoesNotExist"},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
        ]}))
        .unwrap();
        assert!(selector_matches(&selector, &labels(&[("tier", "gold")])));
        assert!(!selector_matches(&selector, &labels(&[("tier", "bronze")])));
        assert!(!selector_matches(&selector, &labels(&[("tier", "gold"), ("quarantine", "")])));
        assert!(!selector_matches(&selector, &labels(&[("tier", "gold"), ("env", "dev")])));
        let bogus: LabelSelector =
            serde_json::from_value(serde_json::json!({"matchExpressions": [{"key": "a", "operator": "Contains"}]}))
                .unwrap();
        assert!(!selector_matches(&bogus, &labels(&[("a", "b")])));
    }

    #[test]
    fn the_default_allowlist_is_what_an_email_channel_needs_and_nothing_more() {
        let t = tenant();
        let ok = registration(serde_json::json!([
            {"resource": "Office 365 Exchange Online", "delegated": ["SMTP.Send"]},
            {"resource": "00000003-0000-0000-C000-000000000000", "delegated": ["offline_access"]},
        ]));
        let ids = admit_registration("contoso", &t, &ok).unwrap();
        assert_eq!(ids["Office 365 Exchange Online"], EXCHANGE_ONLINE_APP_ID);
        assert_eq!(ids["00000003-0000-0000-C000-000000000000"], MICROSOFT_GRAPH_APP_ID);
        for (resource, kind, name) in [
            ("Microsoft Graph", "application", "User.Read.All"),
            ("Office 365 Exchange Online", "application", "Mail.Send"),
            ("Microsoft Graph", "application", "RoleManagement.ReadWrite.Directory"),
            ("Microsoft Graph", "delegated", "Mail.Read"),
            // offline_access is allowed on Graph, not on another API.
            ("Office 365 Exchange Online", "delegated", "offline_access"),
        ] {
            let spec = registration(serde_json::json!([{"resource": resource, kind: [name]}]));
            let refused = admit_registration("contoso", &t, &spec).unwrap_err();
            assert_eq!(refused.rule, "EntraTenant spec.permissions.allowed", "{resource} {kind} {name}");
            assert!(refused.message.contains(name));
        }
    }

    #[test]
    fn an_api_named_by_an_unknown_display_name_is_refused() {
        let t = tenant();
        for name in ["Microsoft Graph ", "microsoft graph", "Microsoft  Graph", "My API"] {
            let spec = registration(serde_json::json!([{"resource": name, "delegated": ["offline_access"]}]));
            let refused = admit_registration("contoso", &t, &spec).unwrap_err();
            assert_eq!(refused.rule, "spec.permissions[].resource", "{name:?}");
        }
    }

    #[test]
    fn listed_application_permissions_and_case_variants_of_allowed_ones_pass() {
        let mut t = tenant();
        t.permissions.allowed.push(AllowedPermission {
            resource_app_id: EXCHANGE_ONLINE_APP_ID.to_uppercase(),
            delegated: vec![],
            application: vec!["Mail.Send".into()],
        });
        let spec = registration(serde_json::json!([
            {"resource": "Office 365 Exchange Online", "application": ["mail.send"], "delegated": ["smtp.send"]}
        ]));
        assert!(admit_registration("contoso", &t, &spec).is_ok());
    }

    #[test]
    fn admin_consent_and_adoption_need_the_administrators_consent() {
        let mut t = tenant();
        t.permissions.admin_consent = false;
        let spec = registration(serde_json::json!([{"resource": "Microsoft Graph", "delegated": ["offline_access"]}]));
        assert_eq!(
            admit_registration("contoso", &t, &spec).unwrap_err().rule,
            "EntraTenant spec.permissions.adminConsent"
        );
        let mut without = spec.clone();
        without.admin_consent = false;
        assert!(admit_registration("contoso", &t, &without).is_ok());

        let t = tenant();
        let mut adopting = registration(serde_json::json!([]));
        adopting.adopt =
            Some(crate::api::app_registration::Adopt { app_id: "aaaaaaaa-0000-0000-0000-000000000001".into() });
        assert_eq!(admit_registration("c", &t, &adopting).unwrap_err().rule, "EntraTenant spec.adoption.allowed");
        let mut allowing = tenant();
        allowing.adoption.allowed = true;
        assert!(admit_registration("c", &allowing, &adopting).is_ok());
        allowing.adoption.app_ids = vec!["AAAAAAAA-0000-0000-0000-000000000002".into()];
        assert_eq!(admit_registration("c", &allowing, &adopting).unwrap_err().rule, "EntraTenant spec.adoption.appIds");
        allowing.adoption.app_ids.push("AAAAAAAA-0000-0000-0000-000000000001".into());
        assert!(admit_registration("c", &allowing, &adopting).is_ok());
    }

    #[test]
    fn redirect_uris_go_only_to_the_listed_connect_hosts_callback() {
        let t = tenant();
        for ok in [
            "https://contoso.us.webexconnect.io/callback",
            "https://CONTOSO.us.webexconnect.io/callback",
            "https://contoso.us.webexconnect.io./callback",
            "https://contoso.eu.webexconnect.io/callback",
        ] {
            assert!(admit_redirect_uri("c", &t, ok).is_ok(), "{ok}");
        }
        for (refused, rule) in [
            ("https://evil.example.com/callback", "EntraTenant spec.connect.tenantHosts"),
            ("https://contoso.us.webexconnect.io.evil.example.com/callback", "EntraTenant spec.connect.tenantHosts"),
            ("https://evil-contoso.us.webexconnect.io/callback", "EntraTenant spec.connect.tenantHosts"),
            ("https://us.webexconnect.io/callback", "EntraTenant spec.connect.tenantHosts"),
            ("https://contoso.us.webexconnect.io@evil.example.com/callback", "spec.redirectUris"),
            ("https://contoso.us.webexconnect.io@evil.example.com/", "spec.redirectUris"),
            ("http://contoso.us.webexconnect.io/callback", "spec.redirectUris"),
            ("https://contoso.us.webexconnect.io:8443/callback", "spec.redirectUris"),
            ("https://contoso.us.webexconnect.io:443/callback", "spec.redirectUris"),
            ("https://contoso.us.webexconnect.io/other", "spec.redirectUris"),
            ("https://contoso.us.webexconnect.io/callback/../x", "spec.redirectUris"),
            ("https://contoso.us.webexconnect.io/callback?x=https://evil.example.com", "spec.redirectUris"),
            ("https://contoso.us.webexconnect.io/callback#x", "spec.redirectUris"),
            ("https://contoso.us.webexconnect.io\\@evil.example.com/callback", "spec.redirectUris"),
            ("https://contoso..us.webexconnect.io/callback", "spec.redirectUris"),
            ("https:///callback", "spec.redirectUris"),
        ] {
            let e = admit_redirect_uri("c", &t, refused).unwrap_err();
            assert_eq!(e.rule, rule, "{refused}");
        }
        let mut none = tenant();
        none.connect.tenant_hosts.clear();
        let e = admit_tenant_host("contoso", &none, "contoso.us.webexconnect.io").unwrap_err();
        assert!(e.message.contains("tenantHosts: [contoso.us.webexconnect.io]"), "{}", e.message);
        assert!(admit_tenant_host("c", &t, "contoso.us.webexconnect.io").is_ok());
        assert!(admit_tenant_host("c", &t, "contoso.us.webexconnect.io:443").is_err());
    }

    #[test]
    fn a_registration_redirecting_elsewhere_or_multi_tenant_is_refused() {
        let t = tenant();
        let mut spec = registration(serde_json::json!([]));
        spec.redirect_uris = vec!["https://contoso.us.webexconnect.io/callback".into()];
        assert!(admit_registration("c", &t, &spec).is_ok());
        spec.redirect_uris.push("https://evil.example.com/callback".into());
        assert_eq!(admit_registration("c", &t, &spec).unwrap_err().rule, "EntraTenant spec.connect.tenantHosts");
        spec.redirect_uris.pop();
        spec.sign_in_audience = SignInAudience::AzureADMultipleOrgs;
        assert_eq!(admit_registration("c", &t, &spec).unwrap_err().rule, "spec.signInAudience");
    }

    #[test]
    fn delegated_consent_is_for_named_users_unless_the_tenant_allows_everyone() {
        let delegated = serde_json::json!([{"resource": "Office 365 Exchange Online", "delegated": ["SMTP.Send"]}]);
        let mut spec = registration(delegated.clone());
        spec.consent_for.clear();
        let refused = admit_registration("contoso", &tenant(), &spec).unwrap_err();
        assert_eq!(refused.rule, "EntraTenant spec.permissions.tenantWideConsent");
        assert!(refused.message.contains("spec.consentFor"), "{}", refused.message);
        let mut wide = tenant();
        wide.permissions.tenant_wide_consent = true;
        assert!(admit_registration("contoso", &wide, &spec).is_ok());
        // Without admin consent, or without delegated permissions, nobody is consented for.
        let mut no_consent = spec.clone();
        no_consent.admin_consent = false;
        assert!(admit_registration("contoso", &tenant(), &no_consent).is_ok());
        // The users named must be mailboxes the tenant object lists.
        let mut outside = registration(delegated);
        outside.consent_for = vec!["ceo@fabrikam.com".into()];
        let refused = admit_registration("contoso", &tenant(), &outside).unwrap_err();
        assert_eq!(refused.rule, "spec.consentFor");
        assert!(refused.message.contains("ceo@fabrikam.com"));
    }

    #[test]
    fn mailboxes_match_addresses_domains_and_subdomains_strictly() {
        let t = tenant();
        for ok in
            ["support@contoso.com", "Billing@CONTOSO.COM", "ops@fabrikam.com", "a@eu.contoso.net", "a@x.y.contoso.net"]
        {
            assert!(admit_mailbox("c", &t, ok).is_ok(), "{ok}");
        }
        for refused in [
            "support@contoso.com.",
            "support@evil-contoso.com",
            "support@contoso.com.evil.example",
            "other@fabrikam.com",
            "ops+x@fabrikam.com",
            "a@contoso.net",
            "a@evilcontoso.net",
            "a@contoso.com@evil.example",
            " support@contoso.com",
            "@contoso.com",
        ] {
            let e = admit_mailbox("c", &t, refused).unwrap_err();
            assert_eq!(e.rule, "EntraTenant spec.mailboxes", "{refused}");
        }
    }

    #[test]
    fn forwarding_defaults_to_connect_addresses_only() {
        let mut t = tenant();
        let connect = "0123456789abcdef0123456789abcdef@mail-us.imiconnect.io";
        assert!(admit_forwarding("c", &t, connect).is_ok());
        assert!(admit_forwarding("c", &t, &connect.to_uppercase()).is_ok());
        for refused in [
            "thief@evil.example.com",
            "0123456789abcdef@mail-us.imiconnect.io",
            "0123456789abcdef0123456789abcdef@mail-xx.imiconnect.io",
            "0123456789abcdef0123456789abcdef@mail-us.imiconnect.io.evil.example",
            "0123456789abcdef0123456789abcdef@mail-us.imiconnect.io.",
            "0123456789abcdef0123456789abcdeg@mail-us.imiconnect.io",
        ] {
            assert_eq!(
                admit_forwarding("c", &t, refused).unwrap_err().rule,
                "EntraTenant spec.forwarding",
                "{refused}"
            );
        }
        t.forwarding.connect_addresses = false;
        assert!(admit_forwarding("c", &t, connect).is_err());
        t.forwarding.allowed_destinations = vec!["*@partner.example".into()];
        assert!(admit_forwarding("c", &t, "team@Partner.example").is_ok());
        assert!(admit_forwarding("c", &t, "team@sub.partner.example").is_err());
    }
}
