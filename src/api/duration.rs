//! Go-style duration strings (`90m`, `2160h`, `1h30m`, `0s`) as used by cert-manager and by the
//! CEL `duration()` function, so what the apiserver validates at admission is exactly what the
//! operator parses at reconcile time.

use jiff::SignedDuration;

/// The regular expression the CRD schema uses (inside CEL `matches`) for every duration field.
/// Negative values and bare numbers are rejected on purpose: Go accepts `-1h`, the API does not.
pub const GO_DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(h|m|s|ms))+$";

/// Why a duration string was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a duration like 90m, 2160h or 1h30m: {reason}")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

/// Parses a non-negative Go-style duration made of `<number><unit>` pairs, units `h`, `m`, `s`, `ms`.
pub fn parse_duration(input: &str) -> Result<SignedDuration, DurationError> {
    let err = |reason| DurationError { input: input.to_string(), reason };
    if input.is_empty() {
        return Err(err("empty"));
    }
    let mut total_nanos: i128 = 0;
    let mut rest = input;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or(err("missing unit"))?;
        if number_len == 0 {
            return Err(err("expected a number"));
        }
        let (number, after) = rest.split_at(number_len);
        let unit_len = after.find(|c: char| c.is_ascii_digit()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: i128 = match unit {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "" => return Err(err("missing unit")),
            _ => return Err(err("unknown unit (use h, m, s or ms)")),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() || number.matches('.').count() > 1 || (number.contains('.') && fraction.is_empty()) {
            return Err(err("malformed number"));
        }
        let whole: i128 = whole.parse().map_err(|_| err("number too large"))?;
        let mut part = whole.checked_mul(unit_nanos).ok_or(err("too large"))?;
        let mut scale = unit_nanos;
        for digit in fraction.bytes().take(18) {
            scale /= 10;
            part = part.checked_add(i128::from(digit - b'0') * scale).ok_or(err("too large"))?;
        }
        total_nanos = total_nanos.checked_add(part).ok_or(err("too large"))?;
        rest = after;
    }
    let secs = i64::try_from(total_nanos / 1_000_000_000).map_err(|_| err("too large"))?;
    Ok(SignedDuration::new(secs, (total_nanos % 1_000_000_000) as i32))
}

/// Formats a duration the way Go prints it (`2160h0m0s`), used in status and messages.
pub fn format_duration(d: SignedDuration) -> String {
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_cert_manager_users_write() {
        assert_eq!(parse_duration("2160h").unwrap(), SignedDuration::from_hours(2160));
        assert_eq!(parse_duration("1h30m").unwrap(), SignedDuration::from_mins(90));
        assert_eq!(parse_duration("2160h0m0s").unwrap(), SignedDuration::from_hours(2160));
        assert_eq!(parse_duration("0s").unwrap(), SignedDuration::ZERO);
        assert_eq!(parse_duration("1.5h").unwrap(), SignedDuration::from_mins(90));
        assert_eq!(parse_duration("250ms").unwrap(), SignedDuration::from_millis(250));
    }

    #[test]
    fn rejects_what_the_schema_rejects() {
        for bad in ["", "10", "-1h", "1d", "h", "1.h", "1..5h", "1h-5m", " 1h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_duration(SignedDuration::from_hours(2160)), "2160h0m0s");
        assert_eq!(format_duration(SignedDuration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(SignedDuration::ZERO), "0s");
    }
}
