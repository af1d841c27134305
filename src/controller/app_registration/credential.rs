//! The credential plan: every decision about an application's client secrets, in one pure
//! function over what a reconcile observed. The reconcile executes the plan's steps in order and
//! `plan` prints the same value, so the two cannot disagree.
//!
//! # The invariant
//! A key a consumer uses is never removed from the application until its successor has been
//! verified at the token endpoint **and** acknowledged by every consumer, or until it has
//! expired. Who the consumers are:
//! - every EmailChannel that uses the registration (its own child, or a shared one named by
//!   `azure.appRegistrationRef`); each acknowledges for itself, with the annotation
//!   `ack.connectemail.dev/<channel>` on the registration (see [`acknowledgement_annotation`]);
//!   a channel that has not written one yet counts with the older shared annotation
//!   `connectemail.dev/secret-acknowledged`, so an upgrade never looks like "nobody uses the key";
//! - with no channel, and `requireAcknowledgement: true`: whoever sets the shared annotation;
//! - with no channel and no acknowledgement required: the key the Secret served stays until its
//!   successor is verified and `revokeAfter` has passed (consumers read the Secret).
//!
//! "In use" means acknowledged by a consumer. A key that is superseded before any consumer
//! acknowledged it is not in use; the newest such key is still kept (someone may be typing it into
//! Connect), older ones go at once. So the operator keeps at most: the current key, one pending
//! intent, every key a consumer still acknowledges (at most one per consumer) and
//! [`UNACKNOWLEDGED_KEPT`] more.
//!
//! Keys of a predecessor (operator markers of another resource UID on the application this
//! resource owns by its uniqueName: the same manifests applied to a rebuilt cluster, a restore)
//! count as in use: kept until every consumer acknowledged a verified successor.
//!
//! A new key that the token endpoint keeps rejecting (AADSTS7000215 past the propagation window)
//! is replaced at most [`MAX_REJECTED_IN_A_ROW`] times; then the plan stops issuing and says why.
//! The rejected key itself is removed at once: it never worked, so nobody can depend on it.

use jiff::Timestamp;

use super::rotation::{self, CurrentCredential, IssueReason, PendingRecovery, Revocation, SecretPolicy, VerifyOutcome};
use crate::api::app_registration::{AzureAppRegistrationStatus, CredentialStatus};
use crate::azure::model::PasswordCredential;

/// How many secrets the token endpoint may reject in a row before the operator stops issuing.
pub const MAX_REJECTED_IN_A_ROW: u32 = 3;

/// Superseded keys that no consumer acknowledged, kept anyway (newest first): one when consumers
/// acknowledge, two when nobody does (consumers then read the Secret, and a pod may still hold
/// the key before last).
pub const UNACKNOWLEDGED_KEPT: usize = 1;
const UNACKNOWLEDGED_KEPT_WITHOUT_CONSUMERS: usize = 2;

/// The annotation prefix a consumer acknowledges with: `ack.connectemail.dev/<consumer>`.
pub const ACK_ANNOTATION_PREFIX: &str = "ack.connectemail.dev/";

/// The annotation on a registration with which the channel `name` records the key its Connect
/// asset holds. Annotation names are at most 63 characters: longer channel names are shortened
/// and made unique with a hash.
pub fn acknowledgement_annotation(channel: &str) -> String {
    if channel.len() <= 63 {
        return format!("{ACK_ANNOTATION_PREFIX}{channel}");
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, channel.as_bytes());
    let hash: String = digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    let head = channel[..46].trim_end_matches(['-', '.']);
    format!("{ACK_ANNOTATION_PREFIX}{head}-{hash}")
}

/// One consumer whose acknowledgement a previous key waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumer {
    /// Shown in conditions and `plan` ("EmailChannel support", "annotation …").
    pub name: String,
    /// The key ID it confirmed using, if any.
    pub acknowledged: Option<String>,
}

/// What the Secret holds (key IDs only; the texts never enter a plan).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredKeys {
    pub key_id: Option<String>,
    /// The Secret holds the text of `key_id` (and its fingerprint matches).
    pub holds_secret: bool,
    pub previous_key_id: Option<String>,
    pub holds_previous: bool,
}

/// Everything the credential decisions depend on.
pub struct Input<'a> {
    pub now: Timestamp,
    pub policy: &'a SecretPolicy,
    /// The resource's UID: operator passwords carry it in their display name.
    pub uid: &'a str,
    pub status: &'a AzureAppRegistrationStatus,
    /// The application's passwords as Graph lists them.
    pub passwords: &'a [PasswordCredential],
    pub stored: &'a StoredKeys,
    pub rotate_annotation: Option<&'a str>,
    /// Everyone whose acknowledgement counts (see the module documentation). `None` when they were
    /// not looked up because nothing depends on them (see [`wants_consumers`]).
    pub consumers: Option<&'a [Consumer]>,
    /// The token endpoint's answer for the current key, when it had not been verified yet.
    pub verification: Option<VerifyOutcome>,
}

/// What happens to the current key when a new one is issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Retire {
    /// Kept as a previous key: revoked later by the protocol.
    Keep { key_id: String, not_after: Timestamp },
    /// Removed from the application now: it never worked or has expired.
    Remove { key_id: String },
    /// Nothing to retire (first key, or it is already gone from the application).
    Nothing,
}

/// One effect, in the order the reconcile applies them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A crash after addPassword lost the text: remove that password (a new one follows).
    RemoveLostPassword { key_id: String },
    /// A crash after the Secret write: status catches up with the Secret.
    AdoptStored { key_id: String },
    /// The Secret serves a previous key status does not journal: journal it again.
    JournalPrevious { key_id: String, not_after: Timestamp },
    /// The token endpoint accepted the current key.
    MarkVerified { key_id: String },
    /// Record intent, addPassword, write the Secret, write status.
    Issue { reason: IssueReason, retire: Retire },
    /// Remove a previous key from the application (and the Secret).
    Revoke { key_id: String, why: RevokeWhy },
    /// An operator password nobody journals, serves or acknowledges.
    RemoveOrphan { key_id: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevokeWhy {
    /// Successor verified, acknowledged by every consumer, `revokeAfter` passed.
    Replaced,
    Expired,
    /// Superseded before any consumer acknowledged it, and not among the newest kept.
    NeverUsed,
}

impl RevokeWhy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replaced => "its successor is verified and acknowledged",
            Self::Expired => "it has expired",
            Self::NeverUsed => "no consumer acknowledged it and a newer key replaced it",
        }
    }
}

/// A previous key that stays, and what it waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    pub key_id: String,
    pub not_after: Timestamp,
    pub wait: Revocation,
    /// Consumers that have not acknowledged the successor yet (names).
    pub pending: Vec<String>,
}

/// Every credential decision of one reconcile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Previous keys after the plan, with what each waits for.
    pub kept: Vec<Kept>,
    /// The plan refuses to go on (a person must look): the message says why.
    pub blocked: Option<String>,
    /// The consecutive-rejection count to record in status.
    pub rejected_in_a_row: u32,
}

impl Plan {
    pub fn issues(&self) -> Option<IssueReason> {
        self.steps.iter().find_map(|s| match s {
            Step::Issue { reason, .. } => Some(*reason),
            _ => None,
        })
    }

    /// Every key ID the plan removes from the application.
    pub fn removed(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::RemoveLostPassword { key_id }
                | Step::Revoke { key_id, .. }
                | Step::RemoveOrphan { key_id }
                | Step::Issue { retire: Retire::Remove { key_id }, .. } => Some(key_id.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Whether the plan needs the consumers: only when a previous key exists or may be created.
/// (Looking them up lists the namespace's channels; most reconciles have no rotation under way.)
pub fn wants_consumers(input: &Input<'_>) -> bool {
    let s = input.status;
    !s.previous_credentials.is_empty()
        || s.pending_rotation.is_some()
        || input.stored.previous_key_id.is_some()
        || input.verification.is_some_and(|v| v != VerifyOutcome::Accepted)
        || issue_reason(input, s.credential.as_ref()).is_some()
        || input.passwords.iter().any(|p| {
            (rotation::is_operator_password(p.display_name.as_deref(), input.uid)
                || rotation::is_inherited_password(p.display_name.as_deref(), input.uid))
                && s.credential.as_ref().is_none_or(|c| c.key_id != p.key_id)
        })
}

fn observe_current(input: &Input<'_>, credential: Option<&CredentialStatus>) -> Option<CurrentCredential> {
    let c = credential?;
    Some(CurrentCredential {
        key_id: c.key_id.clone(),
        not_before: c.not_before.0,
        not_after: c.not_after.0,
        in_secret: input.stored.key_id.as_deref() == Some(c.key_id.as_str()) && input.stored.holds_secret,
        in_application: input.passwords.iter().any(|p| p.key_id == c.key_id),
        verified_at: c.verified_at.as_ref().map(|t| t.0),
        rejected: false,
    })
}

fn issue_reason(input: &Input<'_>, credential: Option<&CredentialStatus>) -> Option<IssueReason> {
    let current = observe_current(input, credential);
    rotation::issue_reason(&rotation::IssueInput {
        now: input.now,
        policy: input.policy,
        current: current.as_ref(),
        rotate_annotation: input.rotate_annotation,
        last_rotate_request: input.status.last_rotate_request.as_deref(),
    })
}

fn password_end(input: &Input<'_>, key_id: &str) -> Option<Timestamp> {
    input.passwords.iter().find(|p| p.key_id == key_id).and_then(|p| p.end_date_time)
}

/// Every credential decision for one reconcile.
pub fn plan(input: &Input<'_>) -> Plan {
    let now = input.now;
    let status = input.status;
    let consumers = input.consumers.unwrap_or_default();
    let acknowledged = |key: &str| consumers.iter().any(|c| c.acknowledged.as_deref() == Some(key));
    let mut out = Plan { rejected_in_a_row: status.rejected_in_a_row, ..Plan::default() };
    let mut removed_lost: Option<String> = None;

    // 1. A rotation intent left by a crash.
    let mut current_key = status.credential.as_ref().map(|c| c.key_id.clone());
    let mut current_verified = status.credential.as_ref().is_some_and(|c| c.verified_at.is_some());
    let mut previous: Vec<(String, Timestamp)> =
        status.previous_credentials.iter().map(|p| (p.key_id.clone(), p.not_after.0)).collect();
    let mut pending_reason = None;
    if let Some(pending) = &status.pending_rotation {
        let passwords: Vec<(String, Option<String>)> =
            input.passwords.iter().map(|p| (p.key_id.clone(), p.display_name.clone())).collect();
        match rotation::recover_pending(&pending.marker, &passwords, input.stored.key_id.as_deref()) {
            PendingRecovery::IssueNow => pending_reason = Some(parse_reason(&pending.reason)),
            PendingRecovery::AdoptStored { key_id } => {
                // The old current goes to the journal like any retired key (below, step 4 rules).
                if let Some(old) = current_key.take().filter(|k| *k != key_id)
                    && let Some(end) = password_end(input, &old)
                {
                    previous.push((old, end));
                }
                out.steps.push(Step::AdoptStored { key_id: key_id.clone() });
                current_key = Some(key_id);
                current_verified = false;
            }
            PendingRecovery::RemoveAndReissue { key_id } => {
                out.steps.push(Step::RemoveLostPassword { key_id: key_id.clone() });
                removed_lost = Some(key_id);
                pending_reason = Some(parse_reason(&pending.reason));
            }
        }
    }

    // 2. A previous key the Secret serves but status does not journal (a lost status write).
    if let Some(prev) = &input.stored.previous_key_id
        && current_key.as_deref() != Some(prev.as_str())
        && !previous.iter().any(|(k, _)| k == prev)
        && let Some(end) = password_end(input, prev)
    {
        out.steps.push(Step::JournalPrevious { key_id: prev.clone(), not_after: end });
        previous.push((prev.clone(), end));
    }
    // A predecessor's keys (same application, another resource UID: a rebuilt cluster or a
    // restore) may be what consumers use: journalled, kept until every consumer acknowledged a
    // verified successor, never taken for unused.
    let inherited: Vec<String> = input
        .passwords
        .iter()
        .filter(|p| rotation::is_inherited_password(p.display_name.as_deref(), input.uid))
        .map(|p| p.key_id.clone())
        .collect();
    for k in &inherited {
        if current_key.as_deref() != Some(k.as_str())
            && !previous.iter().any(|(p, _)| p == k)
            && let Some(end) = password_end(input, k)
        {
            out.steps.push(Step::JournalPrevious { key_id: k.clone(), not_after: end });
            previous.push((k.clone(), end));
        }
    }
    // Keys a consumer acknowledges are journalled even if status lost them (never orphans).
    for c in consumers {
        if let Some(k) = &c.acknowledged
            && current_key.as_deref() != Some(k.as_str())
            && !previous.iter().any(|(p, _)| p == k)
            && let Some(end) = password_end(input, k)
        {
            out.steps.push(Step::JournalPrevious { key_id: k.clone(), not_after: end });
            previous.push((k.clone(), end));
        }
    }

    // 3. Verification of the current key, and whether to issue.
    let adopted = out.steps.iter().any(|s| matches!(s, Step::AdoptStored { .. }));
    let mut reason =
        if adopted { None } else { pending_reason.or_else(|| issue_reason(input, status.credential.as_ref())) };
    if reason.is_none() && !adopted && !current_verified {
        match input.verification {
            Some(VerifyOutcome::Accepted) => {
                if let Some(k) = &current_key {
                    out.steps.push(Step::MarkVerified { key_id: k.clone() });
                    current_verified = true;
                    out.rejected_in_a_row = 0;
                }
            }
            Some(VerifyOutcome::Rejected) => reason = Some(IssueReason::Rejected),
            Some(VerifyOutcome::Expired) => reason = Some(IssueReason::Expired),
            Some(VerifyOutcome::NotYetPropagated) | None => {}
        }
    }
    let forced = input.rotate_annotation.is_some_and(|v| Some(v) != status.last_rotate_request.as_deref());
    if reason == Some(IssueReason::Rejected) && status.pending_rotation.is_none() {
        if status.rejected_in_a_row + 1 >= MAX_REJECTED_IN_A_ROW && !forced {
            out.blocked = Some(format!(
                "the token endpoint rejected {} new client secrets in a row (AADSTS7000215): check the application in the Entra admin center (is it disabled, or its service principal missing?); set the {} annotation to a new value to try again",
                status.rejected_in_a_row + 1,
                crate::api::ANNOTATION_ROTATE
            ));
            reason = None;
        } else {
            out.rejected_in_a_row = status.rejected_in_a_row + 1;
        }
    } else if reason.is_some() && reason != Some(IssueReason::Rejected) {
        out.rejected_in_a_row = 0;
    }

    // 4. Issue, retiring the current key.
    if let Some(why) = reason {
        let retire = match current_key.take() {
            Some(k) if removed_lost.as_deref() == Some(k.as_str()) => Retire::Nothing,
            Some(k) => match password_end(input, &k) {
                None => Retire::Nothing,
                Some(end) if now >= end => Retire::Remove { key_id: k },
                Some(_) if matches!(why, IssueReason::Rejected | IssueReason::Expired) && !acknowledged(&k) => {
                    Retire::Remove { key_id: k }
                }
                Some(end) => {
                    previous.push((k.clone(), end));
                    Retire::Keep { key_id: k, not_after: end }
                }
            },
            None => Retire::Nothing,
        };
        out.steps.push(Step::Issue { reason: why, retire });
        current_verified = false;
    }

    // 5. Previous keys: expired or never used → revoke now; the rest wait for the protocol.
    let keep_unacknowledged =
        if consumers.is_empty() { UNACKNOWLEDGED_KEPT_WITHOUT_CONSUMERS } else { UNACKNOWLEDGED_KEPT };
    let mut unacknowledged_seen = 0;
    let mut revoked: Vec<String> = Vec::new();
    let mut kept = Vec::new();
    // Newest first: the journal appends, so walk it backwards.
    for (key_id, not_after) in previous.iter().rev() {
        if revoked.contains(key_id) || kept.iter().any(|k: &Kept| &k.key_id == key_id) {
            continue;
        }
        // Gone from the application already (removed outside the operator, or by a revocation
        // whose status write a crash lost): nothing to revoke, it leaves the journal.
        if password_end(input, key_id).is_none() {
            continue;
        }
        if now >= *not_after {
            out.steps.push(Step::Revoke { key_id: key_id.clone(), why: RevokeWhy::Expired });
            revoked.push(key_id.clone());
            continue;
        }
        if !acknowledged(key_id) && !inherited.contains(key_id) {
            unacknowledged_seen += 1;
            if unacknowledged_seen > keep_unacknowledged {
                out.steps.push(Step::Revoke { key_id: key_id.clone(), why: RevokeWhy::NeverUsed });
                revoked.push(key_id.clone());
                continue;
            }
        }
        let pending: Vec<String> = consumers
            .iter()
            .filter(|c| current_key.is_none() || c.acknowledged.as_deref() != current_key.as_deref())
            .map(|c| c.name.clone())
            .collect();
        let verified_at = status.credential.as_ref().and_then(|c| c.verified_at.as_ref()).map(|t| t.0);
        let wait = if current_key.is_none() || !current_verified {
            Revocation::WaitingForVerification
        } else if !pending.is_empty() || input.consumers.is_none() {
            Revocation::WaitingForAcknowledgement
        } else {
            // Verified in this reconcile, or before it.
            let since = verified_at.unwrap_or(now);
            let at = since.checked_add(input.policy.revoke_after).unwrap_or(Timestamp::MAX);
            if now >= at { Revocation::Now } else { Revocation::At(at) }
        };
        if wait == Revocation::Now {
            out.steps.push(Step::Revoke { key_id: key_id.clone(), why: RevokeWhy::Replaced });
            revoked.push(key_id.clone());
        } else {
            kept.push(Kept { key_id: key_id.clone(), not_after: *not_after, wait, pending });
        }
    }
    kept.reverse();
    out.kept = kept;

    // 6. Orphans: operator passwords that nobody journals, serves or acknowledges.
    let retired_removed: Vec<String> = out
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Issue { retire: Retire::Remove { key_id }, .. } => Some(key_id.clone()),
            _ => None,
        })
        .collect();
    let mut keep: Vec<&str> = out.kept.iter().map(|k| k.key_id.as_str()).collect();
    keep.extend(current_key.as_deref());
    if out.issues().is_none() {
        keep.extend(status.credential.as_ref().map(|c| c.key_id.as_str()));
    }
    keep.extend(input.stored.key_id.as_deref());
    keep.extend(input.stored.previous_key_id.as_deref().filter(|k| !revoked.iter().any(|r| r == k)));
    keep.extend(consumers.iter().filter_map(|c| c.acknowledged.as_deref()));
    let passwords: Vec<(String, Option<String>)> =
        input.passwords.iter().map(|p| (p.key_id.clone(), p.display_name.clone())).collect();
    for key_id in rotation::orphaned_passwords(
        &passwords,
        input.uid,
        &keep,
        status.pending_rotation.as_ref().map(|p| p.marker.as_str()),
    ) {
        if !revoked.contains(&key_id) && removed_lost.as_ref() != Some(&key_id) && !retired_removed.contains(&key_id) {
            out.steps.push(Step::RemoveOrphan { key_id });
        }
    }
    out
}

/// How long until the first of the kept keys may go (for the requeue), if any waits for time.
pub fn next_revocation(plan: &Plan) -> Option<Timestamp> {
    plan.kept
        .iter()
        .filter_map(|k| match k.wait {
            Revocation::At(t) => Some(t),
            _ => None,
        })
        .min()
}

pub fn parse_reason(s: &str) -> IssueReason {
    [
        IssueReason::Initial,
        IssueReason::SecretMissing,
        IssueReason::RemovedExternally,
        IssueReason::Rejected,
        IssueReason::Expired,
        IssueReason::Renewal,
        IssueReason::Forced,
    ]
    .into_iter()
    .find(|r| r.as_str() == s)
    .unwrap_or(IssueReason::Renewal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ClientSecretSpec;
    use crate::api::app_registration::{PendingRotation, PreviousCredential};
    use jiff::SignedDuration;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const UID: &str = "uid-1";

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn policy(revoke_after: &str) -> SecretPolicy {
        let mut spec = ClientSecretSpec::with_secret_name("s");
        spec.duration = "4320h".into();
        spec.revoke_after = revoke_after.into();
        SecretPolicy::from_spec(&spec).unwrap()
    }

    fn password(key: &str, start: Timestamp) -> PasswordCredential {
        PasswordCredential {
            key_id: key.into(),
            display_name: Some(rotation::password_marker("cem", UID, start, 1)),
            hint: None,
            start_date_time: Some(start),
            end_date_time: Some(start + SignedDuration::from_hours(4320)),
        }
    }

    fn credential(key: &str, start: Timestamp, verified: bool) -> CredentialStatus {
        let end = start + SignedDuration::from_hours(4320);
        CredentialStatus {
            key_id: key.into(),
            hint: None,
            not_before: Time(start),
            not_after: Time(end),
            renewal_time: Time(end - SignedDuration::from_hours(1440)),
            verified_at: verified.then_some(Time(start)),
        }
    }

    fn previous(key: &str, start: Timestamp) -> PreviousCredential {
        PreviousCredential {
            key_id: key.into(),
            not_after: Time(start + SignedDuration::from_hours(4320)),
            revoke_at: None,
        }
    }

    fn consumer(name: &str, key: Option<&str>) -> Consumer {
        Consumer { name: name.into(), acknowledged: key.map(str::to_string) }
    }

    struct World {
        policy: SecretPolicy,
        status: AzureAppRegistrationStatus,
        passwords: Vec<PasswordCredential>,
        stored: StoredKeys,
        consumers: Vec<Consumer>,
        verification: Option<VerifyOutcome>,
        now: Timestamp,
    }

    impl World {
        fn plan(&self) -> Plan {
            plan(&Input {
                now: self.now,
                policy: &self.policy,
                uid: UID,
                status: &self.status,
                passwords: &self.passwords,
                stored: &self.stored,
                rotate_annotation: None,
                consumers: Some(&self.consumers),
                verification: self.verification,
            })
        }
    }

    /// K0 in use by the channel, verified; the Secret holds it.
    fn steady() -> World {
        let t0 = at("2026-01-01T00:00:00Z");
        World {
            policy: policy("0s"),
            status: AzureAppRegistrationStatus { credential: Some(credential("k0", t0, true)), ..Default::default() },
            passwords: vec![password("k0", t0)],
            stored: StoredKeys { key_id: Some("k0".into()), holds_secret: true, ..Default::default() },
            consumers: vec![consumer("EmailChannel support", Some("k0"))],
            verification: None,
            now: at("2026-01-10T00:00:00Z"),
        }
    }

    #[test]
    fn a_deleted_secret_issues_a_new_key_and_keeps_the_acknowledged_one() {
        let mut w = steady();
        w.stored = StoredKeys::default();
        let p = w.plan();
        assert_eq!(
            p.steps,
            vec![Step::Issue {
                reason: IssueReason::SecretMissing,
                retire: Retire::Keep {
                    key_id: "k0".into(),
                    not_after: at("2026-01-01T00:00:00Z") + SignedDuration::from_hours(4320)
                }
            }]
        );
        assert!(p.removed().is_empty());
        assert_eq!(p.kept[0].wait, Revocation::WaitingForVerification);
    }

    #[test]
    fn an_edited_secret_is_treated_like_a_deleted_one() {
        let mut w = steady();
        w.stored.holds_secret = false;
        let p = w.plan();
        assert_eq!(p.issues(), Some(IssueReason::SecretMissing));
        assert!(p.removed().is_empty(), "{p:?}");
    }

    #[test]
    fn every_consumer_must_acknowledge_before_the_previous_key_goes() {
        let t1 = at("2026-01-09T00:00:00Z");
        let mut w = steady();
        w.passwords.push(password("k1", t1));
        w.status.credential = Some(credential("k1", t1, true));
        w.status.previous_credentials = vec![previous("k0", at("2026-01-01T00:00:00Z"))];
        w.stored = StoredKeys {
            key_id: Some("k1".into()),
            holds_secret: true,
            previous_key_id: Some("k0".into()),
            holds_previous: true,
        };
        w.consumers = vec![consumer("EmailChannel a", Some("k1")), consumer("EmailChannel b", Some("k0"))];
        let p = w.plan();
        assert!(p.removed().is_empty(), "{p:?}");
        assert_eq!(p.kept[0].wait, Revocation::WaitingForAcknowledgement);
        assert_eq!(p.kept[0].pending, vec!["EmailChannel b".to_string()]);
        w.consumers[1].acknowledged = Some("k1".into());
        let p = w.plan();
        assert_eq!(p.steps, vec![Step::Revoke { key_id: "k0".into(), why: RevokeWhy::Replaced }]);
    }

    #[test]
    fn a_consumer_that_never_acknowledged_also_holds_the_previous_key() {
        let t1 = at("2026-01-09T00:00:00Z");
        let mut w = steady();
        w.passwords.push(password("k1", t1));
        w.status.credential = Some(credential("k1", t1, true));
        w.status.previous_credentials = vec![previous("k0", at("2026-01-01T00:00:00Z"))];
        w.consumers = vec![consumer("EmailChannel a", Some("k1")), consumer("EmailChannel new", None)];
        assert!(w.plan().removed().is_empty());
    }

    #[test]
    fn a_key_the_token_endpoint_keeps_rejecting_is_replaced_a_bounded_number_of_times() {
        let t1 = at("2026-01-09T00:00:00Z");
        let mut w = steady();
        w.passwords.push(password("k1", t1));
        w.status.credential = Some(credential("k1", t1, false));
        w.status.previous_credentials = vec![previous("k0", at("2026-01-01T00:00:00Z"))];
        w.stored = StoredKeys {
            key_id: Some("k1".into()),
            holds_secret: true,
            previous_key_id: Some("k0".into()),
            holds_previous: true,
        };
        w.verification = Some(VerifyOutcome::Rejected);
        let p = w.plan();
        assert_eq!(
            p.steps,
            vec![Step::Issue { reason: IssueReason::Rejected, retire: Retire::Remove { key_id: "k1".into() } }]
        );
        assert_eq!(p.rejected_in_a_row, 1);
        assert_eq!(p.kept.len(), 1, "k0 stays: {p:?}");
        w.status.rejected_in_a_row = MAX_REJECTED_IN_A_ROW - 1;
        let p = w.plan();
        assert!(p.steps.is_empty(), "{p:?}");
        assert!(p.blocked.as_deref().unwrap().contains("rejected 3 new client secrets in a row"));
    }

    #[test]
    fn keys_superseded_before_anyone_used_them_do_not_pile_up() {
        let t0 = at("2026-01-01T00:00:00Z");
        let (t1, t2) = (at("2026-01-09T00:00:00Z"), at("2026-01-09T01:00:00Z"));
        let mut w = steady();
        w.passwords.extend([password("k1", t1), password("k2", t2)]);
        w.status.credential = Some(credential("k2", t2, true));
        w.status.previous_credentials = vec![previous("k0", t0), previous("k1", t1)];
        w.stored = StoredKeys::default(); // deleted again
        let p = w.plan();
        assert_eq!(p.issues(), Some(IssueReason::SecretMissing));
        assert_eq!(p.removed(), vec!["k1"], "{p:?}");
        let kept: Vec<&str> = p.kept.iter().map(|k| k.key_id.as_str()).collect();
        assert_eq!(kept, vec!["k0", "k2"]);
    }

    #[test]
    fn an_acknowledged_key_status_forgot_is_journalled_not_orphaned() {
        let t1 = at("2026-01-09T00:00:00Z");
        let mut w = steady();
        w.passwords.push(password("k1", t1));
        w.status.credential = Some(credential("k1", t1, true));
        w.stored = StoredKeys { key_id: Some("k1".into()), holds_secret: true, ..Default::default() };
        let p = w.plan();
        assert!(matches!(&p.steps[0], Step::JournalPrevious { key_id, .. } if key_id == "k0"), "{p:?}");
        assert!(p.removed().is_empty());
    }

    #[test]
    fn without_consumers_the_previous_key_goes_after_verification_and_revoke_after() {
        let t1 = at("2026-01-09T00:00:00Z");
        let mut w = steady();
        w.policy = policy("1h");
        w.consumers.clear();
        w.passwords.push(password("k1", t1));
        w.status.credential = Some(credential("k1", t1, true));
        w.stored = StoredKeys { key_id: Some("k1".into()), holds_secret: true, ..Default::default() };
        w.status.previous_credentials = vec![previous("k0", at("2026-01-01T00:00:00Z"))];
        w.now = t1 + SignedDuration::from_mins(30);
        assert_eq!(w.plan().kept[0].wait, Revocation::At(t1 + SignedDuration::from_hours(1)));
        w.now = t1 + SignedDuration::from_hours(2);
        assert_eq!(w.plan().removed(), vec!["k0"]);
    }

    #[test]
    fn a_predecessors_keys_stay_until_every_consumer_acknowledged_a_verified_successor() {
        // A rebuilt cluster: same application, a new resource UID, status empty, the Secret gone.
        let t0 = at("2026-01-01T00:00:00Z");
        let mut old = password("k-old", t0);
        old.display_name = Some(rotation::password_marker("cem", "uid-before-the-rebuild", t0, 1));
        let mut w = steady();
        w.passwords = vec![old.clone(), {
            let mut other = password("k-older", t0);
            other.display_name = Some(rotation::password_marker("cem", "uid-before-the-rebuild", t0, 2));
            other
        }];
        w.status = AzureAppRegistrationStatus::default();
        w.stored = StoredKeys::default();
        w.consumers = vec![consumer("EmailChannel support", None)];
        let p = w.plan();
        assert_eq!(p.issues(), Some(IssueReason::Initial));
        assert!(p.removed().is_empty(), "{p:?}");
        assert_eq!(p.kept.len(), 2, "both kept, none taken for unused: {p:?}");
        // Once the consumer holds the verified successor, they go.
        let t1 = at("2026-01-10T00:00:00Z");
        w.passwords.push(password("k-new", t1));
        w.status.credential = Some(credential("k-new", t1, true));
        w.status.previous_credentials = vec![previous("k-old", t0), previous("k-older", t0)];
        w.stored = StoredKeys { key_id: Some("k-new".into()), holds_secret: true, ..Default::default() };
        w.consumers[0].acknowledged = Some("k-new".into());
        let mut removed = w.plan().removed().into_iter().map(str::to_string).collect::<Vec<_>>();
        removed.sort();
        assert_eq!(removed, vec!["k-old".to_string(), "k-older".to_string()]);
        assert!(rotation::is_inherited_password(old.display_name.as_deref(), UID));
        assert!(!rotation::is_inherited_password(password("k", t0).display_name.as_deref(), UID));
        assert!(!rotation::is_inherited_password(Some("Connect prod (made by hand)"), UID));
    }

    #[test]
    fn the_annotation_name_fits_the_kubernetes_limit() {
        assert_eq!(acknowledgement_annotation("support"), "ack.connectemail.dev/support");
        let long = "a".repeat(200);
        let name = acknowledgement_annotation(&long);
        assert!(name.len() - ACK_ANNOTATION_PREFIX.len() <= 63, "{name}");
        assert_ne!(name, acknowledgement_annotation(&format!("{}b", "a".repeat(199))));
    }

    // ------------------------------------------------------------------------------------------
    // Property: whatever happens (Secret deleted or edited, crashes between any two effects, late,
    // missing or no acknowledgements, keys that never verify, time passing), no reconcile removes
    // a key a consumer still acknowledges before it expires, and the operator's passwords stay
    // bounded.

    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Event {
        /// Reconcile; the operator crashes after `crash` effects (if given).
        Reconcile {
            crash: Option<u8>,
        },
        DeleteSecret,
        EditSecret,
        /// Consumer `i` enters the current verified key in Connect and acknowledges it.
        Acknowledge(u8),
        Advance(u16),
        /// New keys stop (or start) working at the token endpoint.
        BadKeys(bool),
        Force,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            4 => proptest::option::of(0u8..8).prop_map(|crash| Event::Reconcile { crash }),
            1 => Just(Event::DeleteSecret),
            1 => Just(Event::EditSecret),
            2 => (0u8..3).prop_map(Event::Acknowledge),
            2 => (1u16..2000).prop_map(Event::Advance),
            1 => any::<bool>().prop_map(Event::BadKeys),
            1 => Just(Event::Force),
        ]
    }

    struct Sim {
        w: World,
        /// Status as last written to the apiserver (a crash loses the rest).
        persisted: AzureAppRegistrationStatus,
        bad_keys: bool,
        bad: Vec<String>,
        next_key: u32,
        rotate: Option<String>,
        consumers: usize,
        require_ack: bool,
    }

    impl Sim {
        fn acknowledgers(&self) -> Vec<Consumer> {
            if self.consumers == 0 && !self.require_ack {
                return Vec::new();
            }
            self.w.consumers.clone()
        }

        fn reconcile(&mut self, crash: Option<u8>) -> Result<(), TestCaseError> {
            let now = self.w.now;
            self.w.status = self.persisted.clone();
            let status = self.w.status.clone();
            // Observe: verification as the reconcile does it.
            let verification = match &status.credential {
                Some(c)
                    if c.verified_at.is_none()
                        && status.pending_rotation.is_none()
                        && self.w.stored.key_id.as_deref() == Some(c.key_id.as_str())
                        && self.w.stored.holds_secret =>
                {
                    let works = self.w.passwords.iter().any(|p| p.key_id == c.key_id) && !self.bad.contains(&c.key_id);
                    Some(if works {
                        VerifyOutcome::Accepted
                    } else {
                        rotation::classify_rejection(now, c.not_before.0, false, rotation::PROPAGATION_WINDOW)
                    })
                }
                _ => None,
            };
            let consumers = self.acknowledgers();
            let plan = plan(&Input {
                now,
                policy: &self.w.policy,
                uid: UID,
                status: &status,
                passwords: &self.w.passwords,
                stored: &self.w.stored,
                rotate_annotation: self.rotate.as_deref(),
                consumers: Some(&consumers),
                verification,
            });
            // The invariant, on the plan itself.
            for removed in plan.removed() {
                let end = self.w.passwords.iter().find(|p| p.key_id == removed).and_then(|p| p.end_date_time);
                let acknowledged = consumers.iter().any(|c| c.acknowledged.as_deref() == Some(removed));
                prop_assert!(
                    !acknowledged || end.is_some_and(|e| now >= e),
                    "removes {removed}, which a consumer uses: {plan:?} {consumers:?}"
                );
            }
            // Act, effect by effect, stopping at the crash.
            let mut budget = crash.map(usize::from).unwrap_or(usize::MAX);
            let effect = |budget: &mut usize| {
                if *budget == 0 {
                    return false;
                }
                *budget -= 1;
                true
            };
            let s = &mut self.w.status;
            for step in &plan.steps {
                match step {
                    Step::RemoveLostPassword { key_id } | Step::RemoveOrphan { key_id } => {
                        if !effect(&mut budget) {
                            return Ok(());
                        }
                        self.w.passwords.retain(|p| &p.key_id != key_id);
                    }
                    Step::AdoptStored { key_id } => {
                        let p = self.w.passwords.iter().find(|p| &p.key_id == key_id).unwrap().clone();
                        if let Some(old) = s.credential.take()
                            && &old.key_id != key_id
                            && self.w.passwords.iter().any(|p| p.key_id == old.key_id)
                            && !s.previous_credentials.iter().any(|x| x.key_id == old.key_id)
                        {
                            s.previous_credentials.push(PreviousCredential {
                                key_id: old.key_id,
                                not_after: old.not_after,
                                revoke_at: None,
                            });
                        }
                        s.credential = Some(CredentialStatus {
                            key_id: key_id.clone(),
                            hint: None,
                            not_before: Time(p.start_date_time.unwrap()),
                            not_after: Time(p.end_date_time.unwrap()),
                            renewal_time: Time(
                                self.w.policy.renewal_time(p.start_date_time.unwrap(), p.end_date_time.unwrap()),
                            ),
                            verified_at: None,
                        });
                        if s.pending_rotation.as_ref().is_some_and(|p| p.reason == "Forced") {
                            s.last_rotate_request = self.rotate.clone();
                        }
                        s.pending_rotation = None;
                    }
                    Step::JournalPrevious { key_id, not_after } => {
                        if !s.previous_credentials.iter().any(|p| &p.key_id == key_id) {
                            s.previous_credentials.push(PreviousCredential {
                                key_id: key_id.clone(),
                                not_after: Time(*not_after),
                                revoke_at: None,
                            });
                        }
                    }
                    Step::MarkVerified { .. } => {
                        if let Some(c) = s.credential.as_mut() {
                            c.verified_at = Some(Time(now));
                        }
                        s.rejected_in_a_row = 0;
                    }
                    Step::Issue { reason, retire } => {
                        s.rejected_in_a_row = plan.rejected_in_a_row;
                        let marker = match &s.pending_rotation {
                            Some(p) => p.marker.clone(),
                            None => {
                                let marker = rotation::password_marker("cem", UID, now, self.next_key);
                                s.pending_rotation = Some(PendingRotation {
                                    marker: marker.clone(),
                                    requested_at: Time(now),
                                    reason: reason.as_str().into(),
                                });
                                self.persisted = s.clone();
                                marker
                            }
                        };
                        if !effect(&mut budget) {
                            return Ok(());
                        }
                        self.next_key += 1;
                        let key = format!("k{}", self.next_key);
                        if self.bad_keys {
                            self.bad.push(key.clone());
                        }
                        let end = now + SignedDuration::from_hours(4320);
                        self.w.passwords.push(PasswordCredential {
                            key_id: key.clone(),
                            display_name: Some(marker),
                            hint: None,
                            start_date_time: Some(now),
                            end_date_time: Some(end),
                        });
                        if !effect(&mut budget) {
                            return Ok(());
                        }
                        let kept = match retire {
                            Retire::Keep { key_id, not_after } => Some((key_id.clone(), *not_after)),
                            _ => None,
                        };
                        let stored = &mut self.w.stored;
                        match &kept {
                            Some((k, _)) if stored.key_id.as_deref() == Some(k.as_str()) && stored.holds_secret => {
                                stored.previous_key_id = Some(k.clone());
                                stored.holds_previous = true;
                            }
                            _ if stored
                                .previous_key_id
                                .as_ref()
                                .is_some_and(|p| s.previous_credentials.iter().any(|c| &c.key_id == p)) => {}
                            _ => {
                                stored.previous_key_id = None;
                                stored.holds_previous = false;
                            }
                        }
                        stored.key_id = Some(key.clone());
                        stored.holds_secret = true;
                        if !effect(&mut budget) {
                            return Ok(());
                        }
                        s.credential = Some(CredentialStatus {
                            key_id: key,
                            hint: None,
                            not_before: Time(now),
                            not_after: Time(end),
                            renewal_time: Time(self.w.policy.renewal_time(now, end)),
                            verified_at: None,
                        });
                        if let Some((k, na)) = kept
                            && !s.previous_credentials.iter().any(|p| p.key_id == k)
                        {
                            s.previous_credentials.push(PreviousCredential {
                                key_id: k,
                                not_after: Time(na),
                                revoke_at: None,
                            });
                        }
                        s.pending_rotation = None;
                        if *reason == IssueReason::Forced {
                            s.last_rotate_request = self.rotate.clone();
                        }
                        self.persisted = s.clone();
                        if let Retire::Remove { key_id } = retire {
                            if !effect(&mut budget) {
                                return Ok(());
                            }
                            self.w.passwords.retain(|p| &p.key_id != key_id);
                        }
                    }
                    Step::Revoke { key_id, .. } => {
                        if !effect(&mut budget) {
                            return Ok(());
                        }
                        self.w.passwords.retain(|p| &p.key_id != key_id);
                        s.previous_credentials.retain(|p| &p.key_id != key_id);
                        if self.w.stored.previous_key_id.as_deref() == Some(key_id.as_str()) {
                            self.w.stored.previous_key_id = None;
                            self.w.stored.holds_previous = false;
                        }
                    }
                }
            }
            s.rejected_in_a_row = plan.rejected_in_a_row;
            s.previous_credentials = plan
                .kept
                .iter()
                .map(|k| PreviousCredential { key_id: k.key_id.clone(), not_after: Time(k.not_after), revoke_at: None })
                .collect();
            self.persisted = s.clone();
            let ours = self
                .w
                .passwords
                .iter()
                .filter(|p| rotation::is_operator_password(p.display_name.as_deref(), UID))
                .count();
            prop_assert!(ours <= consumers.len() + 4, "{ours} passwords: {:?} {plan:?}", self.w.passwords);
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn no_plan_removes_a_key_a_consumer_uses(
            consumers in 0usize..3,
            require_ack in any::<bool>(),
            events in proptest::collection::vec(event(), 1..60),
        ) {
            let mut sim = Sim {
                w: World {
                    policy: policy("0s"),
                    status: AzureAppRegistrationStatus::default(),
                    passwords: Vec::new(),
                    stored: StoredKeys::default(),
                    consumers: (0..consumers.max(1)).map(|i| consumer(&format!("c{i}"), None)).collect(),
                    verification: None,
                    now: at("2026-01-01T00:00:00Z"),
                },
                persisted: AzureAppRegistrationStatus::default(),
                bad_keys: false,
                bad: Vec::new(),
                next_key: 0,
                rotate: None,
                consumers,
                require_ack,
            };
            let mut forced = 0;
            for e in events {
                match e {
                    Event::Reconcile { crash } => sim.reconcile(crash)?,
                    Event::DeleteSecret => sim.w.stored = StoredKeys::default(),
                    Event::EditSecret => sim.w.stored.holds_secret = false,
                    Event::Acknowledge(i) => {
                        let current = sim.persisted.credential.as_ref().filter(|c| c.verified_at.is_some()).map(|c| c.key_id.clone());
                        if let (Some(c), Some(k)) = (sim.w.consumers.get_mut(usize::from(i)), current) {
                            c.acknowledged = Some(k);
                        }
                    }
                    Event::Advance(minutes) => sim.w.now += SignedDuration::from_mins(i64::from(minutes) * 60),
                    Event::BadKeys(b) => sim.bad_keys = b,
                    Event::Force => {
                        forced += 1;
                        sim.rotate = Some(format!("r{forced}"));
                    }
                }
            }
        }
    }
}
