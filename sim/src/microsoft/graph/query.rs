//! Parsing what a Graph request asks for: the query options of lists (`$filter` as conjunctions
//! of `eq`, `$top`, `$skiptoken`) and the values every resource family checks alike (GUIDs, tags).

use hyper::StatusCode;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::context::Ctx;
use super::error::{GraphError, GraphResult};
use super::render::JSON;
use crate::server::SimResponse;

pub(super) const MAX_PAGE_SIZE: usize = 999;

fn parse_filter(filter: &str) -> Option<Vec<(String, String)>> {
    let chars: Vec<char> = filter.chars().collect();
    let mut i = 0;
    let mut clauses = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    let word = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && !chars[*i].is_whitespace() && chars[*i] != '\'' {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    loop {
        skip_ws(&mut i);
        let property = word(&mut i);
        skip_ws(&mut i);
        if property.is_empty() || !word(&mut i).eq_ignore_ascii_case("eq") {
            return None;
        }
        skip_ws(&mut i);
        let value = if chars.get(i) == Some(&'\'') {
            i += 1;
            let mut value = String::new();
            loop {
                match chars.get(i) {
                    None => return None,
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        value.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        value.push(*c);
                        i += 1;
                    }
                }
            }
            value
        } else {
            // Unquoted literals: GUIDs (e.g. `resourceId eq 8fce…`) and booleans.
            let value = word(&mut i);
            if value.is_empty() {
                return None;
            }
            value
        };
        clauses.push((property, value));
        skip_ws(&mut i);
        if i >= chars.len() {
            return Some(clauses);
        }
        if !word(&mut i).eq_ignore_ascii_case("and") {
            return None;
        }
    }
}

/// Parses `$filter` for a collection whose filterable properties are `allowed`.
pub(super) fn filter_clauses(
    cx: &Ctx,
    allowed: &[&'static str],
    resource: &str,
) -> Result<Vec<(&'static str, String)>, GraphError> {
    let Some(filter) = cx.query("$filter") else {
        return Ok(Vec::new());
    };
    let clauses = parse_filter(filter).ok_or_else(|| {
        GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", format!("Invalid filter clause: {filter}"))
    })?;
    clauses
        .into_iter()
        .map(|(property, value)| {
            allowed
                .iter()
                .find(|a| a.eq_ignore_ascii_case(&property))
                .map(|a| (*a, value))
                .ok_or_else(|| GraphError::unsupported_filter(&property, resource))
        })
        .collect()
}

pub(super) fn matches(clauses: &[(&str, String)], field: impl Fn(&str) -> Option<String>) -> bool {
    clauses.iter().all(|(property, value)| field(property).is_some_and(|actual| actual.eq_ignore_ascii_case(value)))
}

/// One page of `items` with `@odata.nextLink` when more remain. `path` is relative to `/v1.0/`.
pub(super) fn page(cx: &Ctx, fragment: &str, path: &str, items: Vec<Value>) -> GraphResult {
    let size = match cx.query("$top") {
        None => cx.page_size,
        Some(top) => match top.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            _ => {
                return Err(GraphError::bad_request(format!(
                    "Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive."
                )));
            }
        },
    };
    let offset = match cx.query("$skiptoken") {
        None => 0,
        Some(token) => token
            .strip_prefix("sim1")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| GraphError::bad_request("Invalid paging token."))?,
    };
    let end = offset.saturating_add(size).min(items.len());
    let value: Vec<Value> = items.get(offset.min(items.len())..end).unwrap_or_default().to_vec();
    let mut body = json!({
        "@odata.context": cx.context(fragment),
        "value": value,
    });
    if end < items.len() {
        let mut query: Vec<String> = cx
            .query
            .iter()
            .filter(|(k, _)| !k.trim_start_matches('$').eq_ignore_ascii_case("skiptoken"))
            .map(|(k, v)| {
                format!("{}={}", utf8_percent_encode(k, NON_ALPHANUMERIC), utf8_percent_encode(v, NON_ALPHANUMERIC))
            })
            .collect();
        query.push(format!("$skiptoken=sim1{end}"));
        body["@odata.nextLink"] = json!(format!("{}/v1.0/{path}?{}", cx.base, query.join("&")));
    }
    Ok(SimResponse::json(StatusCode::OK, &body, JSON))
}

pub(super) fn parse_tags(value: &Value) -> Result<Vec<String>, GraphError> {
    let invalid = || GraphError::invalid_value("tags");
    let items = value.as_array().ok_or_else(invalid)?;
    items
        .iter()
        .map(|tag| match tag.as_str() {
            // Tags may not contain whitespace (unconfirmed).
            Some(tag) if !tag.is_empty() && !tag.chars().any(char::is_whitespace) => Ok(tag.to_string()),
            _ => Err(invalid()),
        })
        .collect()
}

pub(super) fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_conjunctions_of_eq() {
        assert_eq!(parse_filter("appId eq 'abc'"), Some(vec![("appId".into(), "abc".into())]));
        assert_eq!(
            parse_filter("displayName eq 'O''Brien app' and clientId eq 'x'"),
            Some(vec![("displayName".into(), "O'Brien app".into()), ("clientId".into(), "x".into())])
        );
        assert_eq!(
            parse_filter("resourceId eq 8fce32da-1111-2222-3333-444455556666"),
            Some(vec![("resourceId".into(), "8fce32da-1111-2222-3333-444455556666".into())])
        );
        assert_eq!(parse_filter("startswith(displayName,'a')"), None);
        assert_eq!(parse_filter("appId eq 'open"), None);
        assert_eq!(parse_filter("appId ne 'x'"), None);
        assert_eq!(parse_filter("appId eq 'x' or appId eq 'y'"), None);
    }
}
