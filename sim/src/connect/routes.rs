//! The Digital Asset API's routes: the templates recorded in [`CallRecord::route`] and matched
//! by [`ConnectSim::count`] and [`ConnectFaults::on`], and the routing of a request line to an
//! operation.
//!
//! [`CallRecord::route`]: crate::CallRecord::route
//! [`ConnectSim::count`]: super::ConnectSim::count
//! [`ConnectFaults::on`]: super::ConnectFaults::on

use hyper::Method;

pub const CREATE_ASSET: &str = "POST /connectapi/v2/digital/app";
pub const LIST_ASSETS: &str = "GET /connectapi/v2/digital/app";
pub const GET_ASSET: &str = "GET /connectapi/v2/digital/app/{assetId}";
pub const UPDATE_ASSET: &str = "PUT /connectapi/v2/digital/app/{assetId}";

pub const ALL: [&str; 4] = [CREATE_ASSET, LIST_ASSETS, GET_ASSET, UPDATE_ASSET];

/// Panics on a string that can never match (see the Microsoft simulator's `assert_known`).
pub(crate) fn assert_known(route: &str) {
    let known = route == "*"
        || ALL.contains(&route)
        || route.strip_suffix(" <unmatched>").is_some_and(|m| !m.is_empty() && !m.contains(' '));
    assert!(
        known,
        "{route:?} is not a Connect simulator route template; use connect_email_sim::connect::routes (or \"*\")"
    );
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Create,
    List,
    Get,
    Update,
}

impl Op {
    pub(super) fn template(self) -> &'static str {
        match self {
            Op::Create => CREATE_ASSET,
            Op::List => LIST_ASSETS,
            Op::Get => GET_ASSET,
            Op::Update => UPDATE_ASSET,
        }
    }
}

/// Why a request matched no route.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum NoRoute {
    MethodNotAllowed,
    NotFound,
}

pub(super) fn route(method: &Method, path: &str) -> Result<(Op, Option<String>), NoRoute> {
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["connectapi", "v2", "digital", "app"] => match *method {
            Method::POST => Ok((Op::Create, None)),
            Method::GET => Ok((Op::List, None)),
            _ => Err(NoRoute::MethodNotAllowed),
        },
        ["connectapi", "v2", "digital", "app", id] if !id.is_empty() => match *method {
            Method::GET => Ok((Op::Get, Some((*id).to_string()))),
            Method::PUT => Ok((Op::Update, Some((*id).to_string()))),
            _ => Err(NoRoute::MethodNotAllowed),
        },
        _ => Err(NoRoute::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_the_asset_paths() {
        assert_eq!(route(&Method::POST, "/connectapi/v2/digital/app"), Ok((Op::Create, None)));
        assert_eq!(route(&Method::GET, "/connectapi/v2/digital/app/"), Ok((Op::List, None)));
        assert_eq!(route(&Method::PUT, "/connectapi/v2/digital/app/a1"), Ok((Op::Update, Some("a1".into()))));
        assert_eq!(route(&Method::DELETE, "/connectapi/v2/digital/app/a1"), Err(NoRoute::MethodNotAllowed));
        assert_eq!(route(&Method::GET, "/v2/digital/app"), Err(NoRoute::NotFound));
    }
}
