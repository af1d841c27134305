//! `inspect`: read-only looks at one real Connect asset and one Exchange mailbox, printed as the
//! raw JSON the services answered, so that the provisional field mappings (`src/connect/api.rs`,
//! `src/exchange/wire.rs`) can be checked against a real tenant. Every secret-looking field is
//! masked before printing.

use serde_json::Value;

/// What a masked value is replaced with.
pub const MASKED: &str = "***masked***";

/// Whether a field of this name may hold a secret: any name containing secret, token, password,
/// passwd or credential (case-insensitive), except names ending in `url` or `status` (a token
/// endpoint's address, `tokenStatus`), which say where or whether, not what.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    let suspicious = ["secret", "token", "password", "passwd", "credential"].iter().any(|w| n.contains(w));
    suspicious && !n.ends_with("url") && !n.ends_with("status")
}

/// A string that looks like a bearer token (a JWT) wherever it appears.
fn looks_like_jwt(s: &str) -> bool {
    s.starts_with("eyJ") && s.matches('.').count() >= 2
}

/// Masks, in place, every non-null value under a secret-looking name and every JWT-looking string.
pub fn mask(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_secret_name(key) && !v.is_null() {
                    *v = Value::String(MASKED.into());
                } else {
                    mask(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask),
        Value::String(s) if looks_like_jwt(s) => *s = MASKED.into(),
        _ => {}
    }
}

/// Pretty JSON with secrets masked.
pub fn render(mut value: Value) -> String {
    mask(&mut value);
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_looking_fields_are_masked_at_any_depth() {
        let out = render(json!({
            "assetId": "a1",
            "tokenStatus": "GENERATED",
            "oauth": {"clientId": "c", "clientSecret": "s3cr3t", "tokenUrl": "https://login/t", "refreshToken": "r"},
            "rows": [{"Password": "p", "AccessToken": {"value": "x"}, "Note": "eyJhbGciOi.eyJzdWIi.sig"}],
            "credentials": null
        }));
        for secret in ["s3cr3t", "\"r\"", "\"p\"", "\"x\"", "eyJhbGciOi"] {
            assert!(!out.contains(secret), "{secret} leaked: {out}");
        }
        for kept in ["GENERATED", "https://login/t", "\"c\"", "a1"] {
            assert!(out.contains(kept), "{kept} missing: {out}");
        }
        assert_eq!(out.matches(MASKED).count(), 5, "{out}");
    }
}
