//! Setting `metav1.Condition`s: the transition time only moves when the status changes, so a
//! status write with the same conditions is a no-op and never retriggers a reconcile.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Sets (or replaces) the condition `type_`.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = Time(now);
            }
            existing.status = status;
            existing.reason = reason.into();
            existing.message = message;
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message,
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
}

/// Whether condition `type_` is True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

/// The condition `type_`, if present.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let mut c = Vec::new();
        set(&mut c, "Ready", false, "InProgress", "creating", Some(1), t0);
        set(&mut c, "Ready", false, "InProgress", "still creating", Some(1), t1);
        assert_eq!(c[0].last_transition_time, Time(t0));
        assert_eq!(c[0].message, "still creating");
        set(&mut c, "Ready", true, "Reconciled", "ok", Some(2), t1);
        assert_eq!(c[0].last_transition_time, Time(t1));
        assert!(is_true(&c, "Ready"));
        assert_eq!(c.len(), 1);
    }
}
