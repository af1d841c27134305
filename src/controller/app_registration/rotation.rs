//! The client-secret rotation policy: pure functions over plain data with the clock passed in,
//! shaped like cert-manager's issuing policy chain. Nothing here does I/O.
//!
//! Order of a rotation (see docs/architecture.md): record intent → addPassword → write Secret (new +
//! previous) → verify at the token endpoint → consumers acknowledge → revoke the previous one
//! after `revokeAfter`. A restart at any point is resolved by [`recover_pending`].

use jiff::{SignedDuration, Timestamp};

use crate::api::ClientSecretSpec;
use crate::api::duration::parse_duration;

/// The rotation settings of a resource, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretPolicy {
    pub duration: SignedDuration,
    pub renew_before: RenewBefore,
    pub revoke_after: SignedDuration,
    pub require_acknowledgement: bool,
    pub description: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenewBefore {
    /// cert-manager's default: renew when a third of the lifetime remains.
    Default,
    Fixed(SignedDuration),
    Percentage(i32),
}

impl SecretPolicy {
    /// Parses the spec; admission already validated it, so an error here means the CRD schema and
    /// this parser disagree (reported as an invalid spec, not a panic).
    pub fn from_spec(spec: &ClientSecretSpec) -> Result<Self, String> {
        let duration = parse_duration(&spec.duration).map_err(|e| format!("clientSecret.duration: {e}"))?;
        let renew_before = match (&spec.renew_before, spec.renew_before_percentage) {
            (Some(r), _) => {
                RenewBefore::Fixed(parse_duration(r).map_err(|e| format!("clientSecret.renewBefore: {e}"))?)
            }
            (None, Some(p)) => RenewBefore::Percentage(p.clamp(1, 99)),
            (None, None) => RenewBefore::Default,
        };
        let revoke_after = parse_duration(&spec.revoke_after).map_err(|e| format!("clientSecret.revokeAfter: {e}"))?;
        Ok(Self {
            duration,
            renew_before,
            revoke_after,
            require_acknowledgement: spec.require_acknowledgement,
            description: spec.description.clone(),
        })
    }

    /// Lifetime to request, shortened to the tenant's policy cap. Returns (lifetime, clamped).
    pub fn lifetime(&self, cap: Option<SignedDuration>) -> (SignedDuration, bool) {
        match cap {
            Some(cap) if cap < self.duration => (cap, true),
            _ => (self.duration, false),
        }
    }

    /// When a secret valid from `not_before` to `not_after` must be renewed. A fixed renewBefore
    /// that does not fit the actual lifetime (e.g. after clamping) falls back to the default, as
    /// cert-manager does; so does `0s`, which would renew only once the secret has expired.
    pub fn renewal_time(&self, not_before: Timestamp, not_after: Timestamp) -> Timestamp {
        let lifetime = not_after.duration_since(not_before);
        let default = not_after - lifetime / 3;
        match self.renew_before {
            RenewBefore::Default => default,
            RenewBefore::Fixed(before) if before > SignedDuration::ZERO && before < lifetime => not_after - before,
            RenewBefore::Fixed(_) => default,
            RenewBefore::Percentage(p) => not_after - lifetime * p / 100,
        }
    }
}

/// The current credential as observed in the Secret, the application and status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentCredential {
    pub key_id: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// The Secret holds this credential's text.
    pub in_secret: bool,
    /// Entra ID still lists this password on the application.
    pub in_application: bool,
    /// When the token endpoint first accepted it.
    pub verified_at: Option<Timestamp>,
    /// The token endpoint rejected it past the propagation window.
    pub rejected: bool,
}

/// Why a new secret is issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueReason {
    /// No secret was issued yet.
    Initial,
    /// The Secret lost the client secret (deleted or edited).
    SecretMissing,
    /// The password was removed from the application outside the operator.
    RemovedExternally,
    /// The token endpoint keeps rejecting it.
    Rejected,
    Expired,
    /// The renewal time was reached.
    Renewal,
    /// The `connectemail.dev/rotate` annotation has a new value.
    Forced,
}

impl IssueReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "Initial",
            Self::SecretMissing => "SecretMissing",
            Self::RemovedExternally => "RemovedExternally",
            Self::Rejected => "Rejected",
            Self::Expired => "Expired",
            Self::Renewal => "Renewal",
            Self::Forced => "Forced",
        }
    }
}

/// Inputs of the "should we issue a new secret now?" decision.
pub struct IssueInput<'a> {
    pub now: Timestamp,
    pub policy: &'a SecretPolicy,
    pub current: Option<&'a CurrentCredential>,
    pub rotate_annotation: Option<&'a str>,
    pub last_rotate_request: Option<&'a str>,
}

type PolicyFn = fn(&IssueInput<'_>) -> Option<IssueReason>;

/// The ordered policy chain: the first rule that answers decides.
const ISSUE_POLICY_CHAIN: &[PolicyFn] = &[
    |i| i.current.is_none().then_some(IssueReason::Initial),
    |i| i.current.is_some_and(|c| !c.in_secret).then_some(IssueReason::SecretMissing),
    |i| i.current.is_some_and(|c| !c.in_application).then_some(IssueReason::RemovedExternally),
    |i| i.current.is_some_and(|c| i.now >= c.not_after).then_some(IssueReason::Expired),
    |i| i.current.is_some_and(|c| c.rejected).then_some(IssueReason::Rejected),
    |i| match i.rotate_annotation {
        Some(value) if Some(value) != i.last_rotate_request => Some(IssueReason::Forced),
        _ => None,
    },
    |i| {
        i.current
            .is_some_and(|c| i.now >= i.policy.renewal_time(c.not_before, c.not_after))
            .then_some(IssueReason::Renewal)
    },
];

/// Whether to issue a new secret now, and why.
pub fn issue_reason(input: &IssueInput<'_>) -> Option<IssueReason> {
    ISSUE_POLICY_CHAIN.iter().find_map(|rule| rule(input))
}

/// Display name of an operator-created password: the description, then a tag naming the resource
/// UID, the intent time and a nonce, so that after a crash the password is recognised as ours and
/// as the one of *this* intent (two rotations within one second must not share a marker).
pub fn password_marker(description: &str, resource_uid: &str, requested_at: Timestamp, nonce: u32) -> String {
    format!("{description} [cem {resource_uid} {}-{nonce:08x}]", requested_at.as_second())
}

/// Whether a password display name carries this resource's tag. Passwords without it (created by
/// people or other tools) are never touched.
pub fn is_operator_password(display_name: Option<&str>, resource_uid: &str) -> bool {
    display_name.is_some_and(|n| n.contains(&format!("[cem {resource_uid} ")))
}

/// Whether a password carries an operator marker of *another* resource: on an application this
/// resource now owns by its uniqueName (a rebuilt cluster, a restore, a resource recreated under
/// the same name), the key of a predecessor that consumers may still use.
pub fn is_inherited_password(display_name: Option<&str>, resource_uid: &str) -> bool {
    display_name
        .is_some_and(|n| n.contains("[cem ") && n.ends_with(']') && !n.contains(&format!("[cem {resource_uid} ")))
}

/// What a crash between "intent recorded" and "status updated" left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PendingRecovery {
    /// No password with the marker: addPassword never happened; issue it now.
    IssueNow,
    /// The password exists and the Secret already holds it: only status is behind.
    AdoptStored { key_id: String },
    /// The password exists but its text was lost before reaching the Secret: remove it and issue again.
    RemoveAndReissue { key_id: String },
}

/// Resolves a recorded rotation intent against what the application and the Secret show.
pub fn recover_pending(
    marker: &str,
    app_passwords: &[(String, Option<String>)],
    secret_key_id: Option<&str>,
) -> PendingRecovery {
    match app_passwords.iter().find(|(_, name)| name.as_deref() == Some(marker)) {
        None => PendingRecovery::IssueNow,
        Some((key_id, _)) if Some(key_id.as_str()) == secret_key_id => {
            PendingRecovery::AdoptStored { key_id: key_id.clone() }
        }
        Some((key_id, _)) => PendingRecovery::RemoveAndReissue { key_id: key_id.clone() },
    }
}

/// A previous credential waiting for revocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviousCredential {
    pub key_id: String,
    pub not_after: Timestamp,
}

/// What to do with one previous credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revocation {
    Now,
    /// Grace period running.
    At(Timestamp),
    /// The successor has not been accepted by the token endpoint yet: never revoke the last
    /// working credential.
    WaitingForVerification,
    /// A consumer must confirm it uses the successor first.
    WaitingForAcknowledgement,
}

/// When a previous credential may be revoked: only after its successor was verified, acknowledged
/// when required, and `revokeAfter` has passed since verification. An expired previous
/// credential is worthless to everyone and goes at once.
pub fn revocation(
    now: Timestamp,
    policy: &SecretPolicy,
    previous: &PreviousCredential,
    current: &CurrentCredential,
    acknowledged_key_id: Option<&str>,
) -> Revocation {
    if now >= previous.not_after {
        return Revocation::Now;
    }
    let Some(verified_at) = current.verified_at else {
        return Revocation::WaitingForVerification;
    };
    if policy.require_acknowledgement && acknowledged_key_id != Some(current.key_id.as_str()) {
        return Revocation::WaitingForAcknowledgement;
    }
    // revokeAfter is bounded only in syntax at admission: a grace period past the end of the
    // calendar means "never", not an arithmetic panic.
    let at = verified_at.checked_add(policy.revoke_after).unwrap_or(Timestamp::MAX);
    if now >= at { Revocation::Now } else { Revocation::At(at) }
}

/// Operator-created passwords on the application that are neither current, previous nor pending:
/// leftovers of an interrupted rotation. Removing them is always safe.
pub fn orphaned_passwords(
    app_passwords: &[(String, Option<String>)],
    resource_uid: &str,
    keep_key_ids: &[&str],
    pending_marker: Option<&str>,
) -> Vec<String> {
    app_passwords
        .iter()
        .filter(|(_, name)| is_operator_password(name.as_deref(), resource_uid))
        .filter(|(key_id, _)| !keep_key_ids.contains(&key_id.as_str()))
        .filter(|(_, name)| pending_marker.is_none() || name.as_deref() != pending_marker)
        .map(|(key_id, _)| key_id.clone())
        .collect()
}

/// How long a brand-new secret may be rejected (AADSTS7000215) before it counts as bad: Entra ID
/// replication usually takes seconds, occasionally minutes.
pub const PROPAGATION_WINDOW: SignedDuration = SignedDuration::from_mins(10);

/// Outcome of a verification attempt, classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyOutcome {
    Accepted,
    /// Rejected but young enough to be still replicating: try again shortly.
    NotYetPropagated,
    /// Rejected past the propagation window.
    Rejected,
    Expired,
}

/// Classifies a token endpoint rejection of a secret issued at `issued_at`, given how long
/// replication may take (`window`, [`PROPAGATION_WINDOW`] unless configured).
pub fn classify_rejection(
    now: Timestamp,
    issued_at: Timestamp,
    expired: bool,
    window: SignedDuration,
) -> VerifyOutcome {
    if expired {
        VerifyOutcome::Expired
    } else if now.duration_since(issued_at) < window {
        VerifyOutcome::NotYetPropagated
    } else {
        VerifyOutcome::Rejected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    struct Given {
        policy: SecretPolicy,
        current: Option<CurrentCredential>,
        rotate: Option<&'static str>,
        last_rotate: Option<&'static str>,
    }

    impl Given {
        fn policy(duration: &str, renew_before: Option<&str>, pct: Option<i32>) -> Self {
            let mut spec = ClientSecretSpec::with_secret_name("s");
            spec.duration = duration.into();
            spec.renew_before = renew_before.map(str::to_string);
            spec.renew_before_percentage = pct;
            Self { policy: SecretPolicy::from_spec(&spec).unwrap(), current: None, rotate: None, last_rotate: None }
        }

        fn with_secret(mut self, not_before: &str, not_after: &str) -> Self {
            self.current = Some(CurrentCredential {
                key_id: "k1".into(),
                not_before: at(not_before),
                not_after: at(not_after),
                in_secret: true,
                in_application: true,
                verified_at: Some(at(not_before)),
                rejected: false,
            });
            self
        }

        fn tweak(mut self, f: impl FnOnce(&mut CurrentCredential)) -> Self {
            f(self.current.as_mut().unwrap());
            self
        }

        fn at(&self, now: &str) -> Option<IssueReason> {
            issue_reason(&IssueInput {
                now: at(now),
                policy: &self.policy,
                current: self.current.as_ref(),
                rotate_annotation: self.rotate,
                last_rotate_request: self.last_rotate,
            })
        }
    }

    #[test]
    fn a_new_resource_gets_its_first_secret() {
        assert_eq!(Given::policy("4320h", None, None).at("2026-01-01T00:00:00Z"), Some(IssueReason::Initial));
    }

    #[test]
    fn default_renewal_is_at_two_thirds_of_the_lifetime() {
        let g = Given::policy("900h", None, None).with_secret("2026-01-01T00:00:00Z", "2026-02-07T12:00:00Z");
        // 900h lifetime: renew at 600h = 2026-01-26T00:00:00Z.
        assert_eq!(g.at("2026-01-25T23:59:59Z"), None);
        assert_eq!(g.at("2026-01-26T00:00:00Z"), Some(IssueReason::Renewal));
    }

    #[test]
    fn renew_before_and_percentage_move_the_renewal_time() {
        let fixed =
            Given::policy("900h", Some("100h"), None).with_secret("2026-01-01T00:00:00Z", "2026-02-07T12:00:00Z");
        assert_eq!(fixed.at("2026-02-03T07:59:59Z"), None);
        assert_eq!(fixed.at("2026-02-03T08:00:00Z"), Some(IssueReason::Renewal));
        let pct = Given::policy("900h", None, Some(10)).with_secret("2026-01-01T00:00:00Z", "2026-02-07T12:00:00Z");
        // 10% of 900h = 90h before expiry.
        assert_eq!(pct.at("2026-02-03T17:59:59Z"), None);
        assert_eq!(pct.at("2026-02-03T18:00:00Z"), Some(IssueReason::Renewal));
    }

    #[test]
    fn renew_before_longer_than_a_clamped_lifetime_falls_back_to_two_thirds() {
        let p = Given::policy("8760h", Some("720h"), None).policy;
        let nb = at("2026-01-01T00:00:00Z");
        // Policy clamped the lifetime to 30 days: 720h no longer fits.
        let na = nb + SignedDuration::from_hours(720);
        assert_eq!(p.renewal_time(nb, na), nb + SignedDuration::from_hours(480));
    }

    #[test]
    fn problems_with_the_current_secret_trigger_reissue_in_priority_order() {
        let base = || Given::policy("4320h", None, None).with_secret("2026-01-01T00:00:00Z", "2026-07-01T00:00:00Z");
        assert_eq!(base().tweak(|c| c.in_secret = false).at("2026-01-02T00:00:00Z"), Some(IssueReason::SecretMissing));
        assert_eq!(
            base().tweak(|c| c.in_application = false).at("2026-01-02T00:00:00Z"),
            Some(IssueReason::RemovedExternally)
        );
        assert_eq!(base().at("2026-07-01T00:00:00Z"), Some(IssueReason::Expired));
        assert_eq!(base().tweak(|c| c.rejected = true).at("2026-01-02T00:00:00Z"), Some(IssueReason::Rejected));
        // The Secret missing wins over expiry: the more specific cause is reported.
        assert_eq!(base().tweak(|c| c.in_secret = false).at("2026-08-01T00:00:00Z"), Some(IssueReason::SecretMissing));
        assert_eq!(base().at("2026-01-02T00:00:00Z"), None);
    }

    #[test]
    fn a_new_rotate_annotation_value_forces_one_rotation() {
        let mut g = Given::policy("4320h", None, None).with_secret("2026-01-01T00:00:00Z", "2026-07-01T00:00:00Z");
        g.rotate = Some("2026-01-05");
        assert_eq!(g.at("2026-01-05T00:00:00Z"), Some(IssueReason::Forced));
        g.last_rotate = Some("2026-01-05");
        assert_eq!(g.at("2026-01-05T00:00:00Z"), None);
    }

    #[test]
    fn lifetime_is_clamped_to_the_tenant_policy() {
        let p = Given::policy("8760h", None, None).policy;
        assert_eq!(p.lifetime(Some(SignedDuration::from_hours(2160))), (SignedDuration::from_hours(2160), true));
        assert_eq!(p.lifetime(Some(SignedDuration::from_hours(9000))), (SignedDuration::from_hours(8760), false));
        assert_eq!(p.lifetime(None), (SignedDuration::from_hours(8760), false));
    }

    fn current(verified: Option<&str>) -> CurrentCredential {
        CurrentCredential {
            key_id: "new".into(),
            not_before: at("2026-01-01T00:00:00Z"),
            not_after: at("2026-07-01T00:00:00Z"),
            in_secret: true,
            in_application: true,
            verified_at: verified.map(at),
            rejected: false,
        }
    }

    #[test]
    fn the_previous_secret_is_never_revoked_before_its_successor_works() {
        let mut policy = Given::policy("4320h", None, None).policy;
        policy.revoke_after = SignedDuration::from_hours(1);
        let prev = PreviousCredential { key_id: "old".into(), not_after: at("2026-03-01T00:00:00Z") };
        let now = at("2026-01-01T05:00:00Z");
        assert_eq!(revocation(now, &policy, &prev, &current(None), None), Revocation::WaitingForVerification);
        assert_eq!(
            revocation(now, &policy, &prev, &current(Some("2026-01-01T04:30:00Z")), None),
            Revocation::At(at("2026-01-01T05:30:00Z"))
        );
        assert_eq!(revocation(now, &policy, &prev, &current(Some("2026-01-01T04:00:00Z")), None), Revocation::Now);
    }

    #[test]
    fn a_required_acknowledgement_must_name_the_new_key() {
        let mut policy = Given::policy("4320h", None, None).policy;
        policy.require_acknowledgement = true;
        policy.revoke_after = SignedDuration::ZERO;
        let prev = PreviousCredential { key_id: "old".into(), not_after: at("2026-03-01T00:00:00Z") };
        let cur = current(Some("2026-01-01T00:00:00Z"));
        let now = at("2026-01-02T00:00:00Z");
        assert_eq!(revocation(now, &policy, &prev, &cur, None), Revocation::WaitingForAcknowledgement);
        assert_eq!(revocation(now, &policy, &prev, &cur, Some("old")), Revocation::WaitingForAcknowledgement);
        assert_eq!(revocation(now, &policy, &prev, &cur, Some("new")), Revocation::Now);
        // An expired previous secret goes regardless.
        assert_eq!(revocation(at("2026-03-01T00:00:00Z"), &policy, &prev, &current(None), None), Revocation::Now);
    }

    #[test]
    fn recovery_after_a_crash_depends_on_what_reached_the_secret() {
        let marker = password_marker("cem", "uid-1", at("2026-01-01T00:00:00Z"), 1);
        let passwords = vec![
            ("k-manual".to_string(), Some("made by hand".to_string())),
            ("k-new".to_string(), Some(marker.clone())),
        ];
        assert_eq!(recover_pending(&marker, &passwords[..1], None), PendingRecovery::IssueNow);
        assert_eq!(
            recover_pending(&marker, &passwords, Some("k-new")),
            PendingRecovery::AdoptStored { key_id: "k-new".into() }
        );
        assert_eq!(
            recover_pending(&marker, &passwords, Some("k-old")),
            PendingRecovery::RemoveAndReissue { key_id: "k-new".into() }
        );
    }

    #[test]
    fn two_intents_in_the_same_second_have_different_markers() {
        let t = at("2026-01-01T00:00:00Z");
        let (a, b) = (password_marker("cem", "uid-1", t, 1), password_marker("cem", "uid-1", t, 2));
        assert_ne!(a, b);
        let passwords = vec![("k1".to_string(), Some(a.clone())), ("k2".to_string(), Some(b.clone()))];
        assert_eq!(recover_pending(&b, &passwords, Some("k2")), PendingRecovery::AdoptStored { key_id: "k2".into() });
    }

    #[test]
    fn only_our_own_leftover_passwords_are_orphans() {
        let ours = |t: &str| Some(password_marker("cem", "uid-1", at(t), 7));
        let passwords = vec![
            ("current".to_string(), ours("2026-01-01T00:00:00Z")),
            ("leftover".to_string(), ours("2026-01-02T00:00:00Z")),
            ("pending".to_string(), ours("2026-01-03T00:00:00Z")),
            ("human".to_string(), Some("Connect prod".to_string())),
            ("other-resource".to_string(), Some(password_marker("cem", "uid-2", at("2026-01-01T00:00:00Z"), 7))),
            ("unnamed".to_string(), None),
        ];
        let pending = password_marker("cem", "uid-1", at("2026-01-03T00:00:00Z"), 7);
        assert_eq!(orphaned_passwords(&passwords, "uid-1", &["current"], Some(&pending)), vec!["leftover".to_string()]);
    }

    #[test]
    fn a_young_secret_rejected_is_still_propagating() {
        let issued = at("2026-01-01T00:00:00Z");
        assert_eq!(
            classify_rejection(at("2026-01-01T00:00:18Z"), issued, false, PROPAGATION_WINDOW),
            VerifyOutcome::NotYetPropagated
        );
        assert_eq!(
            classify_rejection(at("2026-01-01T00:10:00Z"), issued, false, PROPAGATION_WINDOW),
            VerifyOutcome::Rejected
        );
        assert_eq!(
            classify_rejection(at("2026-01-01T00:00:01Z"), issued, true, PROPAGATION_WINDOW),
            VerifyOutcome::Expired
        );
    }
}
