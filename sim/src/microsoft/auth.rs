//! Who is calling: the audiences of the access tokens the simulator issues and the tokens
//! themselves. The token endpoint issues them; Graph and Exchange accept them.

use jiff::Timestamp;

/// Which API a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Audience {
    /// `https://graph.microsoft.com/.default`
    Graph,
    /// `https://outlook.office365.com/.default`
    Exchange,
}

/// An access token the token endpoint issued.
#[derive(Clone, Debug)]
pub(crate) struct IssuedToken {
    pub tenant: String,
    pub client_id: String,
    pub audience: Audience,
    pub expires: Timestamp,
    /// The signed-in user's object ID for a delegated token of the authorization code grant;
    /// None for app-only tokens and the flows that model no user.
    pub user: Option<String>,
}
