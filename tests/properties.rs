//! Property tests of the pure planning functions: the rotation policy, the desired-state and
//! drift functions of both controllers, and the duration parser. Arbitrary inputs must never
//! panic, and the invariants the rotation protocol relies on must hold for every input, not only
//! for the examples of the unit tests. No cluster needed.

use connect_email_operator::api::ClientSecretSpec;
use connect_email_operator::api::app_registration::{AzureAppRegistrationSpec, GrantedConsent};
use connect_email_operator::api::duration::{GO_DURATION_PATTERN, format_duration, parse_duration};
use connect_email_operator::api::email_channel::EmailChannelSpec;
use connect_email_operator::azure::model::{
    AppRoleAssignment, Application, OAuth2PermissionGrant, RequiredResourceAccess, Web,
};
use connect_email_operator::controller::app_registration::desired::{
    ConsentFor, ResolvedPermission, application_drift, consent_plan, desired_application,
};
use connect_email_operator::controller::app_registration::rotation::{
    CurrentCredential, IssueInput, PendingRecovery, PreviousCredential, Revocation, SecretPolicy, issue_reason,
    orphaned_passwords, password_marker, recover_pending, revocation,
};
use connect_email_operator::controller::email_channel::desired::{
    ConnectSecret, child_spec, connect_secret, forwarding_needs_change, smtp_auth_change,
};
use connect_email_operator::exchange::{MailboxForwarding, SmtpAuth};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use std::collections::BTreeSet;

// ---------------------------------------------------------------------------------------------
// Generators

/// Instants between 1970 and 2200, to the second.
fn instant() -> impl Strategy<Value = Timestamp> {
    (0i64..7_258_118_400).prop_map(|s| Timestamp::from_second(s).unwrap())
}

/// Any instant jiff can represent (the extremes are where arithmetic overflows).
fn any_instant() -> impl Strategy<Value = Timestamp> {
    let (min, max) = (Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    prop_oneof![
        4 => instant(),
        1 => (min..=max).prop_map(|s| Timestamp::from_second(s).unwrap()),
        1 => Just(Timestamp::MAX),
        1 => Just(Timestamp::MIN),
    ]
}

/// A duration string the schema accepts: one to three `<number><unit>` parts, sometimes huge.
fn duration_string() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        6 => (0u64..100_000).prop_map(|n| n.to_string()),
        2 => (0u64..1000, 1u32..1000).prop_map(|(a, b)| format!("{a}.{b}")),
        1 => "[0-9]{12,40}(\\.[0-9]{1,25})?",
    ];
    let unit = prop_oneof![Just("h"), Just("m"), Just("s"), Just("ms")];
    prop::collection::vec((number, unit), 1..4)
        .prop_map(|parts| parts.into_iter().map(|(n, u)| format!("{n}{u}")).collect())
}

fn secret_spec() -> impl Strategy<Value = ClientSecretSpec> {
    (
        duration_string(),
        prop::option::of(duration_string()),
        prop::option::of(-5i32..120),
        duration_string(),
        any::<bool>(),
    )
        .prop_map(|(duration, renew_before, pct, revoke_after, ack)| {
            let mut spec = ClientSecretSpec::with_secret_name("s");
            spec.duration = duration;
            spec.renew_before = renew_before;
            spec.renew_before_percentage = pct;
            spec.revoke_after = revoke_after;
            spec.require_acknowledgement = ack;
            spec
        })
}

/// A policy as admission lets it through: lifetime 1h..17520h, renewBefore shorter than it.
fn admitted_policy() -> impl Strategy<Value = SecretPolicy> {
    (
        1i64..=17520 * 3600,
        prop::option::of(prop_oneof![Just(0.0f64), 0.0f64..1.0]),
        prop::option::of(1i32..=99),
        duration_string(),
        any::<bool>(),
    )
        .prop_filter_map("admitted", |(secs, before, pct, revoke_after, ack)| {
            let duration = SignedDuration::from_secs(secs.max(3600));
            let mut spec = ClientSecretSpec::with_secret_name("s");
            spec.duration = format!("{}s", duration.as_secs());
            match (before, pct) {
                (Some(f), _) => spec.renew_before = Some(format!("{}s", (duration.as_secs() as f64 * f) as i64)),
                (None, p) => spec.renew_before_percentage = p,
            }
            spec.revoke_after = revoke_after;
            spec.require_acknowledgement = ack;
            SecretPolicy::from_spec(&spec).ok()
        })
}

fn current(key_id: String, not_before: Timestamp, not_after: Timestamp) -> CurrentCredential {
    CurrentCredential {
        key_id,
        not_before,
        not_after,
        in_secret: true,
        in_application: true,
        verified_at: Some(not_before),
        rejected: false,
    }
}

fn arbitrary_current() -> impl Strategy<Value = CurrentCredential> {
    (
        "k[0-9]",
        any_instant(),
        any_instant(),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(any_instant()),
        any::<bool>(),
    )
        .prop_map(|(key_id, not_before, not_after, in_secret, in_application, verified_at, rejected)| {
            CurrentCredential { key_id, not_before, not_after, in_secret, in_application, verified_at, rejected }
        })
}

/// Application passwords: (key ID, display name) with our markers, other resources' and people's.
fn passwords(uid: &'static str) -> impl Strategy<Value = Vec<(String, Option<String>)>> {
    let name = prop_oneof![
        (instant(), any::<u32>()).prop_map(move |(t, n)| Some(password_marker("cem", uid, t, n))),
        (instant(), any::<u32>()).prop_map(|(t, n)| Some(password_marker("cem", "other-uid", t, n))),
        Just(Some("made by a person".to_string())),
        Just(None),
    ];
    prop::collection::vec(("k[0-9]", name), 0..8)
}

// ---------------------------------------------------------------------------------------------
// Rotation policy

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Parsing any spec never panics, and what parses has non-negative durations.
    #[test]
    fn any_secret_spec_parses_or_is_reported(spec in secret_spec()) {
        if let Ok(policy) = SecretPolicy::from_spec(&spec) {
            prop_assert!(policy.duration >= SignedDuration::ZERO);
            prop_assert!(policy.revoke_after >= SignedDuration::ZERO);
        }
    }

    /// Renewal falls inside the secret's lifetime, strictly before expiry: renewing at expiry
    /// would mean an outage.
    #[test]
    fn renewal_is_within_the_lifetime_and_before_expiry(
        policy in admitted_policy(),
        not_before in instant(),
        lifetime_secs in 1i64..=17520 * 3600,
    ) {
        let not_after = not_before + SignedDuration::from_secs(lifetime_secs);
        let renewal = policy.renewal_time(not_before, not_after);
        prop_assert!(renewal >= not_before, "renewal {renewal} before issue {not_before}");
        prop_assert!(renewal < not_after, "renewal {renewal} not before expiry {not_after}");
    }

    /// Arbitrary times, even reversed or at the ends of the representable range: no panic.
    #[test]
    fn renewal_time_never_panics(policy in admitted_policy(), a in any_instant(), b in any_instant()) {
        let _ = policy.renewal_time(a, b);
    }

    /// The decision chain never panics, whatever the clock and the observed credential say.
    #[test]
    fn issue_decision_never_panics(
        policy in admitted_policy(),
        now in any_instant(),
        current in prop::option::of(arbitrary_current()),
        rotate in prop::option::of("[a-c]"),
        last in prop::option::of("[a-c]"),
    ) {
        let _ = issue_reason(&IssueInput {
            now,
            policy: &policy,
            current: current.as_ref(),
            rotate_annotation: rotate.as_deref(),
            last_rotate_request: last.as_deref(),
        });
    }

    /// A secret just issued (lifetime possibly shortened by a tenant cap of at least a second),
    /// stored and verified, with the rotate request recorded, is not replaced again at once:
    /// one rotation issues one password.
    #[test]
    fn a_fresh_secret_is_not_rotated_again(
        policy in admitted_policy(),
        now in instant(),
        cap in prop::option::of(1i64..=20_000 * 3600),
        rotate in prop::option::of("[a-c]"),
    ) {
        let (lifetime, _) = policy.lifetime(cap.map(SignedDuration::from_secs));
        let fresh = current("new".into(), now, now + lifetime);
        let input = IssueInput {
            now,
            policy: &policy,
            current: Some(&fresh),
            rotate_annotation: rotate.as_deref(),
            last_rotate_request: rotate.as_deref(),
        };
        prop_assert_eq!(issue_reason(&input), None);
    }

    /// The previous secret goes only when it is worthless (expired) or its successor was verified,
    /// acknowledged when required, and the grace period has passed.
    #[test]
    fn the_last_working_secret_is_never_revoked(
        policy in admitted_policy(),
        now in any_instant(),
        previous_not_after in any_instant(),
        current in arbitrary_current(),
        acknowledged in prop::option::of("k[0-9]"),
    ) {
        let previous = PreviousCredential { key_id: "old".into(), not_after: previous_not_after };
        let decision = revocation(now, &policy, &previous, &current, acknowledged.as_deref());
        if now < previous_not_after {
            match decision {
                Revocation::Now => {
                    let verified_at = current.verified_at.expect("revoked before the successor was verified");
                    prop_assert!(!policy.require_acknowledgement || acknowledged.as_deref() == Some(current.key_id.as_str()));
                    prop_assert!(now.duration_since(verified_at) >= policy.revoke_after);
                }
                Revocation::At(at) => prop_assert!(at > now),
                Revocation::WaitingForVerification => prop_assert!(current.verified_at.is_none()),
                Revocation::WaitingForAcknowledgement => prop_assert!(policy.require_acknowledgement),
            }
        } else {
            prop_assert_eq!(decision, Revocation::Now);
        }
    }

    /// Recovery never removes the password whose text the Secret holds, and never issues a second
    /// password for an intent whose password already exists.
    #[test]
    fn recovery_never_removes_the_stored_key_nor_issues_twice(
        app in passwords("uid-1"),
        pending_at in instant(),
        nonce in any::<u32>(),
        marker_present in prop::option::of("k[0-9]"),
        secret_key in prop::option::of("k[0-9]"),
    ) {
        let marker = password_marker("cem", "uid-1", pending_at, nonce);
        let mut app = app;
        if let Some(key) = marker_present {
            app.push((key, Some(marker.clone())));
        }
        let has_marker = app.iter().any(|(_, n)| n.as_deref() == Some(marker.as_str()));
        match recover_pending(&marker, &app, secret_key.as_deref()) {
            PendingRecovery::IssueNow => prop_assert!(!has_marker),
            PendingRecovery::AdoptStored { key_id } => prop_assert_eq!(Some(key_id), secret_key),
            PendingRecovery::RemoveAndReissue { key_id } => prop_assert_ne!(Some(key_id), secret_key),
        }
    }

    /// Orphan removal touches only this resource's own passwords, never one it keeps (current,
    /// previous: what the Secret holds) and never the pending intent's.
    #[test]
    fn orphans_are_only_our_unkept_leftovers(
        app in passwords("uid-1"),
        keep in prop::collection::vec("k[0-9]", 0..4),
        pending in prop::option::of((instant(), any::<u32>())),
    ) {
        let pending = pending.map(|(t, n)| password_marker("cem", "uid-1", t, n));
        let keep_refs: Vec<&str> = keep.iter().map(String::as_str).collect();
        let orphans = orphaned_passwords(&app, "uid-1", &keep_refs, pending.as_deref());
        for orphan in &orphans {
            prop_assert!(!keep.contains(orphan), "would remove kept key {orphan}");
            let names: Vec<_> = app.iter().filter(|(k, _)| k == orphan).map(|(_, n)| n.clone()).collect();
            prop_assert!(names.iter().any(|n| n.as_deref().is_some_and(|n| n.contains("[cem uid-1 "))));
            prop_assert!(names.iter().any(|n| n.as_deref() != pending.as_deref()));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Desired state and drift

fn registration_spec() -> impl Strategy<Value = AzureAppRegistrationSpec> {
    (
        "[A-Za-z0-9 ]{1,120}",
        prop::collection::vec("https://[a-z]{1,12}\\.example/[a-z]{0,8}", 0..12),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just("AzureADMyOrg"), Just("AzureADMultipleOrgs")],
    )
        .prop_map(|(display_name, redirect_uris, access, id, audience)| {
            serde_json::from_value(serde_json::json!({
                "tenantRef": {"name": "test-tenant"},
                "displayName": display_name,
                "signInAudience": audience,
                "redirectUris": redirect_uris,
                "implicitGrant": {"accessTokens": access, "idTokens": id},
                "clientSecret": {"secretName": "s"}
            }))
            .unwrap()
        })
}

/// Resolved permissions on distinct resources, each with some roles and scopes.
fn resolved() -> impl Strategy<Value = Vec<ResolvedPermission>> {
    prop::collection::btree_map(
        0u8..6,
        (prop::collection::btree_set(0u8..6, 0..4), prop::collection::btree_set(0u8..6, 0..4)),
        0..4,
    )
    .prop_map(|resources| {
        resources
            .into_iter()
            .map(|(r, (roles, scopes))| ResolvedPermission {
                resource: format!("Resource {r}"),
                resource_sp_id: format!("sp-{r}"),
                resource_app_id: format!("app-{r}"),
                roles: roles.into_iter().map(|i| (format!("Role.{i}"), format!("role-{r}-{i}"))).collect(),
                scopes: scopes.into_iter().map(|i| (format!("Scope.{i}"), format!("scope-{r}-{i}"))).collect(),
            })
            .collect()
    })
}

/// The application as Graph would return it after writing `update`, with Graph's own ordering.
fn as_observed(update: &connect_email_operator::azure::model::ApplicationUpdate, reverse: bool) -> Application {
    let mut web: Web = update.web.clone();
    let mut rra: Vec<RequiredResourceAccess> = update.required_resource_access.clone();
    if reverse {
        web.redirect_uris.reverse();
        rra.reverse();
        for r in &mut rra {
            r.resource_access.reverse();
        }
    }
    Application {
        id: "object".into(),
        app_id: "app".into(),
        display_name: Some(update.display_name.clone()),
        sign_in_audience: Some(update.sign_in_audience.clone()),
        web: Some(web),
        required_resource_access: rra,
        ..Default::default()
    }
}

fn existing_consent() -> impl Strategy<Value = (Vec<AppRoleAssignment>, Vec<OAuth2PermissionGrant>)> {
    let assignment = (0u8..6, 0u8..6, 0u16..1000).prop_map(|(r, i, n)| AppRoleAssignment {
        id: format!("a-{n}"),
        principal_id: "client".into(),
        resource_id: format!("sp-{r}"),
        app_role_id: format!("role-{r}-{i}"),
    });
    let grant = (0u8..6, prop::collection::btree_set(0u8..6, 0..4), any::<bool>(), 0u16..1000, 0u8..3).prop_map(
        |(r, scopes, all, n, user)| OAuth2PermissionGrant {
            id: format!("g-{n}"),
            client_id: "client".into(),
            resource_id: format!("sp-{r}"),
            consent_type: Some(if all { "AllPrincipals" } else { "Principal" }.into()),
            principal_id: (!all).then(|| format!("u-{user}")),
            scope: Some(scopes.into_iter().map(|i| format!("Scope.{i}")).collect::<Vec<_>>().join(" ")),
        },
    );
    (prop::collection::vec(assignment, 0..6), prop::collection::vec(grant, 0..4))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// What the operator writes, read back in any order, is not drift.
    #[test]
    fn the_desired_application_has_no_drift_from_itself(
        spec in registration_spec(),
        resolved in resolved(),
        reverse in any::<bool>(),
    ) {
        let desired = desired_application(&spec, &resolved, "notes".into());
        let observed = as_observed(&desired, reverse);
        prop_assert!(application_drift(&observed, &desired).is_empty(), "{:?}", application_drift(&observed, &desired));
    }

    /// Executing a consent plan converges: planning again right after (with the ownership it
    /// recorded) has nothing to do. On an adopted application, nothing but the operator's own
    /// pairs is ever withdrawn.
    #[test]
    fn consent_planning_converges_in_one_step(
        resolved in resolved(),
        (mut assignments, mut grants) in existing_consent(),
        adopted in any::<bool>(),
        ours in prop::collection::btree_set(0u8..6, 0..6),
        per_user in any::<bool>(),
        users in prop::collection::vec("u-[0-2]", 0..3),
    ) {
        let mut users = users;
        users.sort();
        users.dedup();
        let consent_for = if per_user { ConsentFor::Users(&users) } else { ConsentFor::Everyone };
        // Graph's IDs are unique (the generator may repeat them).
        for (i, a) in assignments.iter_mut().enumerate() {
            a.id = format!("a-{i}");
        }
        for (i, g) in grants.iter_mut().enumerate() {
            g.id = format!("g-{i}");
        }
        // On an adopted app, the operator owns everything on the resources `ours` names.
        let owned: Option<Vec<GrantedConsent>> = adopted.then(|| {
            ours.iter()
                .flat_map(|r| {
                    let sp = format!("sp-{r}");
                    let mut principals: BTreeSet<Option<String>> =
                        grants.iter().filter(|g| g.resource_id == sp).map(|g| g.principal_id.clone()).collect();
                    principals.insert(None);
                    let roles: Vec<String> = assignments.iter().filter(|a| a.resource_id == sp).map(|a| a.app_role_id.clone()).collect();
                    let grants = &grants;
                    principals.into_iter().map(move |p| GrantedConsent {
                        app_role_ids: if p.is_none() { roles.clone() } else { vec![] },
                        scopes: grants.iter().filter(|g| g.resource_id == sp && g.principal_id == p).flat_map(|g| g.scopes()).collect(),
                        resource_id: sp.clone(),
                        principal_id: p,
                    })
                })
                .collect()
        });
        let plan = consent_plan(&resolved, consent_for, &assignments, &grants, owned.as_deref());
        // Consent for named users never creates a grant for everyone, nor one for someone else.
        if per_user {
            for g in &plan.create_grants {
                prop_assert!(g.principal_id.as_ref().is_some_and(|p| users.contains(p)), "created {g:?} for users {users:?}");
            }
        }
        if let Some(owned) = &owned {
            for (id, _) in &plan.unassign {
                let a = assignments.iter().find(|a| &a.id == id).unwrap();
                prop_assert!(owned.iter().any(|g| g.resource_id == a.resource_id && g.app_role_ids.contains(&a.app_role_id)), "withdrew a person's role {a:?}");
            }
            for g in &grants {
                let kept: BTreeSet<String> = if plan.delete_grants.iter().any(|(id, _)| id == &g.id) {
                    BTreeSet::new()
                } else {
                    plan.update_grants.iter().find(|(id, _)| id == &g.id).map_or_else(|| g.scopes(), |(_, scope)| scope.split(' ').filter(|x| !x.is_empty()).map(str::to_string).collect())
                };
                for scope in g.scopes().difference(&kept) {
                    prop_assert!(owned.iter().any(|o| o.resource_id == g.resource_id && o.principal_id == g.principal_id && o.scopes.contains(scope)), "withdrew a person's scope {scope} on {}", g.resource_id);
                }
            }
        }
        for (resource, role, _) in &plan.assign {
            assignments.push(AppRoleAssignment {
                id: format!("new-{resource}-{role}"),
                principal_id: "client".into(),
                resource_id: resource.clone(),
                app_role_id: role.clone(),
            });
        }
        assignments.retain(|a| !plan.unassign.iter().any(|(id, _)| id == &a.id));
        for g in &plan.create_grants {
            grants.push(OAuth2PermissionGrant {
                id: format!("new-{}-{:?}", g.resource_id, g.principal_id),
                client_id: "client".into(),
                resource_id: g.resource_id.clone(),
                consent_type: Some(if g.principal_id.is_some() { "Principal" } else { "AllPrincipals" }.into()),
                principal_id: g.principal_id.clone(),
                scope: Some(g.scope.clone()),
            });
        }
        for (id, scope) in &plan.update_grants {
            for g in grants.iter_mut().filter(|g| &g.id == id) {
                g.scope = Some(scope.clone());
            }
        }
        grants.retain(|g| !plan.delete_grants.iter().any(|(id, _)| id == &g.id));
        let owned_after = plan.owned_after.clone();
        let again = consent_plan(&resolved, consent_for, &assignments, &grants, owned.as_ref().map(|_| owned_after.as_slice()));
        prop_assert!(again.is_empty(), "second plan not empty: {again:?}");
    }
}

fn channel_spec() -> impl Strategy<Value = EmailChannelSpec> {
    (
        "[a-z]{1,20}@[a-z]{1,10}\\.com",
        "[a-z]{1,10}(\\.[a-z]{1,10}){1,3}",
        prop::option::of("[A-Za-z ]{1,120}"),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(mailbox, host, display_name, manual, custom_secret)| {
            let mut azure = serde_json::json!({"tenantRef": {"name": "test-tenant"}});
            if let Some(d) = display_name {
                azure["displayName"] = d.into();
            }
            if custom_secret {
                azure["clientSecret"] = serde_json::json!({"secretName": "custom", "revokeAfter": "0s"});
            }
            let connect = if manual {
                serde_json::json!({"mode": "Manual", "region": "us", "tenantHost": host, "assetName": "A",
                                   "forwardingAddress": "abc@mail-us.imiconnect.io"})
            } else {
                serde_json::json!({"mode": "Api", "region": "eu", "tenantHost": host, "assetName": "A",
                                   "organizationId": "org", "credentialsSecretRef": {"name": "t"}})
            };
            serde_json::from_value(serde_json::json!({"mailbox": mailbox, "azure": azure, "connect": connect})).unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The child registration of any channel is stable, lists the callback URL, always waits for
    /// Connect's acknowledgement, and the application it describes has no drift from itself.
    #[test]
    fn a_channel_child_is_stable_and_drift_free(spec in channel_spec(), name in "[a-z]{1,20}") {
        let child = child_spec(&name, &spec).expect("tenantId set");
        prop_assert_eq!(Some(child.clone()), child_spec(&name, &spec));
        prop_assert_eq!(child.redirect_uris.clone(), vec![format!("https://{}/callback", spec.connect.tenant_host)]);
        prop_assert!(child.client_secret.require_acknowledgement);
        let desired = desired_application(&child, &[], "n".into());
        prop_assert!(application_drift(&as_observed(&desired, true), &desired).is_empty());
    }

    /// After the operator sets forwarding as planned, nothing more is planned.
    #[test]
    fn mailbox_forwarding_converges(
        smtp in prop::option::of("[a-zA-Z]{1,8}@[a-z]{1,8}\\.io"),
        internal in prop::option::of("[a-z]{1,8}"),
        copy in any::<bool>(),
        target in prop::option::of("[a-zA-Z]{1,8}@[a-z]{1,8}\\.io"),
        keep_copy in any::<bool>(),
    ) {
        let observed = MailboxForwarding { smtp_address: smtp, address: internal, deliver_to_mailbox_and_forward: copy };
        let _ = forwarding_needs_change(&observed, target.as_deref(), keep_copy);
        // Set-Mailbox -ForwardingSmtpAddress target -ForwardingAddress $null -DeliverToMailboxAndForward keep_copy
        let written = MailboxForwarding {
            smtp_address: target.clone(),
            address: None,
            deliver_to_mailbox_and_forward: if target.is_some() { keep_copy } else { copy },
        };
        prop_assert!(!forwarding_needs_change(&written, target.as_deref(), keep_copy));
        // Exchange may change the case of the address it stores.
        let upper = MailboxForwarding { smtp_address: target.as_ref().map(|t| t.to_uppercase()), ..written };
        prop_assert!(!forwarding_needs_change(&upper, target.as_deref(), keep_copy));
    }

    /// After the planned SMTP AUTH change, the effective value is the wanted one and nothing more is planned.
    #[test]
    fn smtp_auth_converges(mailbox in prop::option::of(any::<bool>()), org in any::<bool>(), want in any::<bool>()) {
        let observed = SmtpAuth { mailbox_disabled: mailbox, organization_disabled: org };
        let after = match smtp_auth_change(observed, want) {
            Some(disabled) => SmtpAuth { mailbox_disabled: disabled, ..observed },
            None => observed,
        };
        prop_assert_eq!(after.effective_enabled(), want);
        prop_assert_eq!(smtp_auth_change(after, want), None);
    }

    /// Connect holds the current secret exactly when the key IDs match.
    #[test]
    fn connect_secret_state_matches_key_ids(current in prop::option::of("k[0-3]"), applied in prop::option::of("k[0-3]")) {
        let state = connect_secret(current.as_deref(), applied.as_deref());
        match (&current, &applied) {
            (None, _) => prop_assert_eq!(state, ConnectSecret::NotIssued),
            (Some(c), Some(a)) if c == a => prop_assert_eq!(state, ConnectSecret::Current),
            (Some(c), a) => prop_assert_eq!(state, ConnectSecret::Outdated { current: c.clone(), applied: a.clone() }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Durations

fn pattern() -> regex::Regex {
    regex::Regex::new(GO_DURATION_PATTERN).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Any string: no panic, and the parser accepts exactly what the schema's pattern accepts
    /// (except values too large to represent, which it reports).
    #[test]
    fn the_parser_agrees_with_the_schema_pattern(input in prop_oneof![
        3 => "[0-9.hms]{0,12}",
        2 => duration_string(),
        1 => "[0-9]{0,45}(\\.[0-9]{0,30})?(h|m|s|ms|us|d|)",
        1 => any::<String>(),
    ]) {
        let parsed = parse_duration(&input);
        let matches = pattern().is_match(&input);
        match &parsed {
            Ok(d) => {
                prop_assert!(matches, "{input:?} parsed to {d:?} but the schema rejects it");
                prop_assert!(*d >= SignedDuration::ZERO);
            }
            Err(e) => {
                let message = e.to_string();
                prop_assert!(!matches || message.contains("too large"), "{input:?} matches the schema but: {message}");
            }
        }
    }

    /// Whole-second durations survive formatting (as status shows them) and parsing back.
    #[test]
    fn whole_second_durations_round_trip(secs in prop_oneof![0i64..100_000, 0i64..=i64::MAX / 2]) {
        let d = SignedDuration::from_secs(secs);
        let text = format_duration(d);
        prop_assert_eq!(parse_duration(&text).unwrap(), d, "{}", text);
    }

    /// Parsing is additive over concatenated parts: "1h30m" is "1h" plus "30m".
    #[test]
    fn parts_add_up(a in duration_string(), b in duration_string()) {
        if let (Ok(x), Ok(y), Ok(xy)) = (parse_duration(&a), parse_duration(&b), parse_duration(&format!("{a}{b}"))) {
            prop_assert_eq!(x.checked_add(y), Some(xy));
        }
    }
}

/// A regression found by the property above: a whole part just below the i128 limit plus a
/// fraction overflowed the accumulator (a panic in debug builds, a wrapped value in release).
#[test]
fn a_fraction_on_the_largest_whole_number_is_too_large_not_a_panic() {
    let whole = i128::MAX / 3_600_000_000_000;
    let err = parse_duration(&format!("{whole}.9999h")).unwrap_err();
    assert!(err.to_string().contains("too large"), "{err}");
}

/// Regression: a grace period longer than the calendar (admission bounds only its syntax) made
/// `verified_at + revokeAfter` overflow and panic the reconcile.
#[test]
fn an_enormous_revoke_after_waits_instead_of_panicking() {
    let mut spec = ClientSecretSpec::with_secret_name("s");
    spec.revoke_after = "99999999999h".into();
    let policy = SecretPolicy::from_spec(&spec).unwrap();
    let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let previous = PreviousCredential { key_id: "old".into(), not_after: "2026-06-01T00:00:00Z".parse().unwrap() };
    let decision = revocation(now, &policy, &previous, &current("new".into(), now, now), None);
    assert!(matches!(decision, Revocation::At(_)), "{decision:?}");
}

/// Regression found by `renewal_is_within_the_lifetime_and_before_expiry`: `renewBefore: 0s`
/// (admitted: it is shorter than the duration) scheduled the renewal at the moment of expiry.
#[test]
fn renew_before_zero_renews_at_two_thirds_not_at_expiry() {
    let mut spec = ClientSecretSpec::with_secret_name("s");
    spec.duration = "900h".into();
    spec.renew_before = Some("0s".into());
    let policy = SecretPolicy::from_spec(&spec).unwrap();
    let not_before: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let renewal = policy.renewal_time(not_before, not_before + SignedDuration::from_hours(900));
    assert_eq!(renewal, not_before + SignedDuration::from_hours(600));
}

proptest! {
    /// Whatever admission lets through for a channel (mailbox up to 254, tenantHost up to 239
    /// characters), its child fits the AzureAppRegistration's own bounds, so the operator never
    /// writes a child that admission rejects. Found: a long mailbox overflowed displayName (120)
    /// and a long tenantHost (then up to 253) the redirect URI (256).
    #[test]
    fn a_channel_child_fits_the_registration_bounds(
        local in "[a-z0-9.]{1,240}",
        host in "[a-z]{1,60}(\\.[a-z]{1,60}){1,3}",
    ) {
        let mailbox: String = format!("{local}@contoso.com").chars().take(254).collect();
        let host: String = host.chars().take(239).collect();
        prop_assume!(!host.ends_with('.'));
        let spec: EmailChannelSpec = serde_json::from_value(serde_json::json!({
            "mailbox": mailbox, "azure": {"tenantRef": {"name": "test-tenant"}},
            "connect": {"region": "us", "tenantHost": host, "assetName": "A", "forwardingAddress": "a@b.io"}
        }))
        .unwrap();
        let child = child_spec("c", &spec).unwrap();
        prop_assert!(child.display_name.chars().count() <= 120, "{}", child.display_name.len());
        prop_assert!(child.redirect_uris.iter().all(|u| u.len() <= 256));
    }
}
