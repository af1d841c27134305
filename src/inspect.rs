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

/// `inspect connect`: one Webex Connect email asset as the Digital Asset API answers it, masked.
pub async fn connect_asset(
    client: &crate::connect::api::ConnectClient,
    region: &str,
    organization_id: &str,
    asset: &str,
    token: secrecy::SecretString,
) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let region: crate::api::email_channel::ConnectRegion = serde_json::from_value(Value::String(region.to_lowercase()))
        .context("--region must be one of us, eu, uk, ca, au, sg, in")?;
    let org = crate::connect::api::Org { region, organization_id, token: &token };
    let found = client.get_raw(&org, asset).await?.with_context(|| format!("Connect has no asset {asset}"))?;
    Ok(render(serde_json::json!({"getAsset": found})))
}

/// `inspect exchange`: Get-Mailbox and Get-CASMailbox for one mailbox, as the operator's identity, masked.
pub async fn exchange_mailbox(
    exchange: &crate::exchange::ExchangeClient,
    tenant: &str,
    mailbox: &str,
) -> anyhow::Result<String> {
    use crate::exchange::wire;
    let mailbox_rows = exchange.run(tenant, &wire::get_mailbox(mailbox)).await?;
    let cas_rows = exchange.run(tenant, &wire::get_cas_mailbox(mailbox)).await?;
    Ok(render(serde_json::json!({"Get-Mailbox": mailbox_rows, "Get-CASMailbox": cas_rows})))
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
