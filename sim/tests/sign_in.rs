//! Who can obtain a delegated token for an application through the authorization code flow
//! (Webex Connect's "Generate Token"): [`MicrosoftSim::sign_in`] plays the user's sign-in, the
//! token endpoint redeems the code. Grants, assignments and `appRoleAssignmentRequired` are set
//! through the simulator's Graph API, as the operator or an administrator would.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use connect_email_sim::microsoft::{DEFAULT_ACCESS_ROLE_ID, EXCHANGE_APP_ID, GRAPH_APP_ID, SignInError};
use connect_email_sim::{Audience, MicrosoftSim, SimOptions, routes};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const TENANT: &str = "7d3c1f0e-5a4b-4c2d-9e8f-0a1b2c3d4e5f";
const REDIRECT: &str = "https://contoso.us.webexconnect.io/oauth/callback";
const SCOPE: &str = "offline_access https://outlook.office.com/SMTP.Send";

/// A minimal HTTPS/1.1 client trusting only the simulator's CA (the sim package has no HTTP
/// client dependency).
struct Http {
    addr: String,
    connector: TlsConnector,
}

struct Reply {
    status: u16,
    body: Value,
}

impl Reply {
    /// The AADSTS code of a token endpoint error, checking the status and `error`.
    fn aad(&self, status: u16, error: &str) -> u64 {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["error"], error, "{}", self.body);
        self.body["error_codes"][0].as_u64().expect("error_codes")
    }
}

impl Http {
    fn new(sim: &MicrosoftSim) -> Http {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(sim.ca_pem().as_bytes()) {
            roots.add(cert.expect("CA PEM")).expect("CA certificate");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let addr = sim.url().strip_prefix("https://").expect("https URL").to_string();
        Http { addr, connector: TlsConnector::from(Arc::new(config)) }
    }

    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let tcp = TcpStream::connect(&self.addr).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("server name");
        let mut tls = self.connector.connect(name, tcp).await.expect("TLS handshake");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\nconnection: close\r\n",
            self.addr,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        write_all(&mut tls, head.as_bytes()).await;
        write_all(&mut tls, body).await;

        let mut buffer = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(reply) = parse(&buffer) {
                return reply;
            }
            match read(&mut tls, &mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        parse(&buffer).unwrap_or_else(|| panic!("incomplete response: {}", String::from_utf8_lossy(&buffer)))
    }

    async fn form(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        self.send("POST", path, &[("content-type", "application/x-www-form-urlencoded")], body.as_bytes()).await
    }

    async fn graph(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let auth = format!("Bearer {token}");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
        self.send(method, &format!("/v1.0{path}"), &headers, body.as_bytes()).await
    }
}

// Without tokio's `io-util` feature (not a dependency of the sim package): the poll methods.
async fn write_all(tls: &mut TlsStream<TcpStream>, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let written = poll_fn(|cx| Pin::new(&mut *tls).poll_write(cx, bytes)).await.expect("write");
        bytes = &bytes[written..];
    }
    poll_fn(|cx| Pin::new(&mut *tls).poll_flush(cx)).await.expect("flush");
}

async fn read(tls: &mut TlsStream<TcpStream>, chunk: &mut [u8]) -> std::io::Result<usize> {
    poll_fn(|cx| {
        let mut buffer = ReadBuf::new(&mut *chunk);
        match Pin::new(&mut *tls).poll_read(cx, &mut buffer) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(buffer.filled().len())),
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// A complete response in `buffer` (Content-Length framed), if there is one.
fn parse(buffer: &[u8]) -> Option<Reply> {
    let end = buffer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buffer[..end]).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let body = buffer.get(end + 4..end + 4 + length)?;
    let body = if body.is_empty() { Value::Null } else { serde_json::from_slice(body).unwrap_or(Value::Null) };
    Some(Reply { status, body })
}

/// A tenant with the Webex Connect application (redirect URI, a secret, its service principal)
/// and two non-admin users.
struct Fixture {
    sim: MicrosoftSim,
    http: Http,
    admin_token: String,
    app_object_id: String,
    app_id: String,
    secret: String,
    client_sp: String,
    exchange_sp: String,
    graph_sp: String,
    alice: String,
    bob: String,
}

impl Fixture {
    async fn new() -> Fixture {
        let sim = MicrosoftSim::start(SimOptions::default().tenant(TENANT)).await.expect("simulator");
        let http = Http::new(&sim);
        let admin_token = sim.issue_admin_token(TENANT, Audience::Graph);
        let (app_object_id, app_id) = sim.seed_application(TENANT, "Webex Connect email");
        let (_, secret) = sim.seed_password(TENANT, &app_object_id, "connect", Duration::from_secs(30 * 86_400));
        let sp_of = |app_id: &str| {
            sim.service_principals(TENANT).into_iter().find(|sp| sp.app_id == app_id).expect("service principal").id
        };
        let (client_sp, exchange_sp, graph_sp) = (sp_of(&app_id), sp_of(EXCHANGE_APP_ID), sp_of(GRAPH_APP_ID));
        let alice = sim.add_user(TENANT, "alice@contoso.com", false);
        let bob = sim.add_user(TENANT, "bob@contoso.com", false);
        let fixture = Fixture {
            sim,
            http,
            admin_token,
            app_object_id,
            app_id,
            secret,
            client_sp,
            exchange_sp,
            graph_sp,
            alice,
            bob,
        };
        let reply = fixture
            .graph(
                "PATCH",
                &format!("/applications/{}", fixture.app_object_id),
                json!({"web": {"redirectUris": [REDIRECT]}}),
            )
            .await;
        assert_eq!(reply.status, 204, "{}", reply.body);
        fixture
    }

    async fn graph(&self, method: &str, path: &str, body: Value) -> Reply {
        self.http.graph(&self.admin_token, method, path, Some(body)).await
    }

    /// Grants `SMTP.Send` (Exchange Online) and `offline_access` (Microsoft Graph) to the
    /// application, for everyone (`None`) or one user. Returns the two grant IDs.
    async fn grant(&self, principal: Option<&str>) -> Vec<String> {
        let mut ids = Vec::new();
        for (resource, scope) in [(&self.exchange_sp, "SMTP.Send"), (&self.graph_sp, "offline_access")] {
            let body = match principal {
                Some(user) => json!({
                    "clientId": self.client_sp, "consentType": "Principal", "principalId": user,
                    "resourceId": resource, "scope": scope,
                }),
                None => json!({
                    "clientId": self.client_sp, "consentType": "AllPrincipals", "resourceId": resource, "scope": scope,
                }),
            };
            let reply = self.graph("POST", "/oauth2PermissionGrants", body).await;
            assert_eq!(reply.status, 201, "{}", reply.body);
            ids.push(reply.body["id"].as_str().expect("grant id").to_string());
        }
        ids
    }

    fn sign_in(&self, user: &str) -> Result<String, SignInError> {
        self.sim.sign_in(TENANT, &self.app_id, user, REDIRECT, SCOPE)
    }

    async fn redeem(&self, code: &str, redirect_uri: &str) -> Reply {
        let path = format!("/{TENANT}/oauth2/v2.0/token");
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", self.app_id.as_str()),
            ("client_secret", self.secret.as_str()),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("scope", SCOPE),
        ];
        self.http.form(&path, &form).await
    }

    async fn refresh(&self, refresh_token: &str, secret: Option<&str>) -> Reply {
        let path = format!("/{TENANT}/oauth2/v2.0/token");
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("client_id", self.app_id.as_str()),
            ("refresh_token", refresh_token),
            ("scope", SCOPE),
        ];
        if let Some(secret) = secret {
            form.push(("client_secret", secret));
        }
        self.http.form(&path, &form).await
    }

    /// Signs `user` in and redeems the code; asserts an Exchange token for that user.
    async fn obtain_token(&self, user: &str) -> Value {
        let code = self.sign_in(user).unwrap_or_else(|e| panic!("sign-in of {user}: {e}"));
        let reply = self.redeem(&code, REDIRECT).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let access = reply.body["access_token"].as_str().expect("access_token");
        assert_eq!(
            self.sim.validate_token(access, Audience::Exchange),
            Some((TENANT.to_string(), self.app_id.clone()))
        );
        assert_eq!(self.sim.token_user(access).as_deref(), Some(user));
        reply.body
    }
}

#[tokio::test]
async fn a_user_with_a_principal_grant_signs_in_and_redeems_the_code() {
    let f = Fixture::new().await;
    f.grant(Some(&f.alice)).await;

    let tokens = f.obtain_token(&f.alice).await;
    assert_eq!(tokens["token_type"], "Bearer");
    let refresh = tokens["refresh_token"].as_str().expect("offline_access gives a refresh token");

    // The application refreshes with its secret, for the same user.
    let refreshed = f.refresh(refresh, Some(&f.secret)).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let access = refreshed.body["access_token"].as_str().unwrap();
    assert_eq!(f.sim.token_user(access), Some(f.alice.clone()));
    // A confidential client must authenticate on refresh too.
    assert_eq!(f.refresh(refresh, None).await.aad(401, "invalid_client"), 7000218);

    assert_eq!(f.sim.count(routes::AUTHORIZE), 1);
    let visit = f.sim.calls().into_iter().find(|c| c.route == routes::AUTHORIZE).unwrap();
    assert_eq!((visit.status, visit.client_id.as_deref()), (302, Some(f.app_id.as_str())));
    assert!(visit.query.unwrap().contains("response_type=code"));
}

#[tokio::test]
async fn a_user_without_a_grant_gets_65001_and_no_grant_appears() {
    let f = Fixture::new().await;
    f.grant(Some(&f.alice)).await;
    let before = f.sim.oauth2_permission_grants(TENANT);

    let error = f.sign_in(&f.bob).unwrap_err();
    assert_eq!(error.code, 65001);
    assert!(error.message.starts_with("AADSTS65001: The user or administrator has not consented"), "{error}");
    assert!(error.message.contains(&f.app_id));
    assert_eq!(f.sim.oauth2_permission_grants(TENANT), before);
    // A grant for Exchange alone is not enough: offline_access (Microsoft Graph) needs consent too.
    let exchange_only = json!({
        "clientId": f.client_sp, "consentType": "Principal", "principalId": f.bob,
        "resourceId": f.exchange_sp, "scope": "SMTP.Send",
    });
    assert_eq!(f.graph("POST", "/oauth2PermissionGrants", exchange_only).await.status, 201);
    assert_eq!(f.sign_in(&f.bob).unwrap_err().code, 65001);
    assert!(f.sim.sign_in(TENANT, &f.app_id, &f.bob, REDIRECT, "https://outlook.office.com/SMTP.Send").is_ok());

    let failed = f.sim.calls().into_iter().filter(|c| c.route == routes::AUTHORIZE && c.status == 400).count();
    assert_eq!(failed, 2);
}

#[tokio::test]
async fn with_all_principals_consent_every_user_can_sign_in() {
    let f = Fixture::new().await;
    f.grant(None).await;
    f.obtain_token(&f.alice).await;
    f.obtain_token(&f.bob).await;
    assert_eq!(f.sim.count(routes::AUTHORIZE), 2);
}

#[tokio::test]
async fn when_assignment_is_required_only_assigned_users_sign_in() {
    let f = Fixture::new().await;
    f.grant(None).await;
    let reply = f
        .graph("PATCH", &format!("/servicePrincipals/{}", f.client_sp), json!({"appRoleAssignmentRequired": true}))
        .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    let read = f.http.graph(&f.admin_token, "GET", &format!("/servicePrincipals/{}", f.client_sp), None).await;
    assert_eq!(read.body["appRoleAssignmentRequired"], true);

    let assign = json!({"principalId": f.alice, "resourceId": f.client_sp, "appRoleId": DEFAULT_ACCESS_ROLE_ID});
    let assigned = f.graph("POST", &format!("/servicePrincipals/{}/appRoleAssignedTo", f.client_sp), assign).await;
    assert_eq!(assigned.status, 201, "{}", assigned.body);
    assert_eq!(assigned.body["principalType"], "User");

    let error = f.sign_in(&f.bob).unwrap_err();
    assert_eq!(error.code, 50105);
    assert!(error.message.contains("'bob@contoso.com' is blocked"), "{error}");
    f.obtain_token(&f.alice).await;

    // Documented: an application that requires assignment takes no user consent.
    f.sim.set_user_consent_allowed(TENANT, true);
    let carol = f.sim.add_user(TENANT, "carol@contoso.com", false);
    let assign = json!({"principalId": carol, "resourceId": f.client_sp, "appRoleId": DEFAULT_ACCESS_ROLE_ID});
    f.graph("POST", &format!("/servicePrincipals/{}/appRoleAssignedTo", f.client_sp), assign).await;
    let graph_only = "https://outlook.office.com/SMTP.Send User.Read";
    assert_eq!(f.sim.sign_in(TENANT, &f.app_id, &carol, REDIRECT, graph_only).unwrap_err().code, 65001);
}

#[tokio::test]
async fn a_redirect_uri_not_registered_exactly_gets_50011() {
    let f = Fixture::new().await;
    f.grant(None).await;
    for wrong in [
        "https://contoso.us.webexconnect.io/oauth/callback/",
        "https://Contoso.us.webexconnect.io/oauth/callback",
        "https://contoso.us.webexconnect.io/oauth/Callback",
    ] {
        let error = f.sim.sign_in(TENANT, &f.app_id, &f.alice, wrong, SCOPE).unwrap_err();
        assert_eq!(error.code, 50011, "{wrong}");
        assert!(error.message.contains(&format!("The redirect URI '{wrong}' specified in the request does not match")));
    }
    let unknown = f.sim.sign_in(TENANT, "3f2b8c1e-0000-4000-8000-000000000000", &f.alice, REDIRECT, SCOPE);
    assert_eq!(unknown.unwrap_err().code, 700016);
    let nobody = f.sim.sign_in(TENANT, &f.app_id, "9a8b7c6d-0000-4000-8000-000000000000", REDIRECT, SCOPE);
    assert_eq!(nobody.unwrap_err().code, 50034);
    let unknown_scope = f.sim.sign_in(TENANT, &f.app_id, &f.alice, REDIRECT, "https://outlook.office.com/SMTP.Sendd");
    assert_eq!(unknown_scope.unwrap_err().code, 650053);
    assert_eq!(f.sim.count(routes::AUTHORIZE), 6);
}

#[tokio::test]
async fn a_code_is_redeemed_once_with_its_redirect_uri_before_it_expires() {
    let f = Fixture::new().await;
    f.grant(Some(&f.alice)).await;

    let code = f.sign_in(&f.alice).unwrap();
    let other_redirect = "https://contoso.us.webexconnect.io/other";
    assert_eq!(f.redeem(&code, other_redirect).await.aad(400, "invalid_grant"), 70000);
    let first = f.redeem(&code, REDIRECT).await;
    assert_eq!(first.status, 200, "a failed redemption leaves the code usable: {}", first.body);
    let second = f.redeem(&code, REDIRECT).await;
    assert_eq!(second.aad(400, "invalid_grant"), 54005);
    let description = second.body["error_description"].as_str().unwrap();
    assert!(description.starts_with("AADSTS54005: OAuth2 Authorization code was already redeemed"), "{description}");

    let expiring = f.sign_in(&f.alice).unwrap();
    f.sim.advance_clock(Duration::from_secs(11 * 60));
    assert_eq!(f.redeem(&expiring, REDIRECT).await.aad(400, "invalid_grant"), 70008);

    let fresh = f.sign_in(&f.alice).unwrap();
    let path = format!("/{TENANT}/oauth2/v2.0/token");
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", f.app_id.as_str()),
        ("client_secret", "not-the-secret"),
        ("code", fresh.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    assert_eq!(f.http.form(&path, &form).await.aad(401, "invalid_client"), 7000215);
    assert_eq!(f.redeem("not-a-code", REDIRECT).await.aad(400, "invalid_grant"), 70000);
}

#[tokio::test]
async fn with_user_consent_allowed_the_user_consents_and_a_principal_grant_appears() {
    let f = Fixture::new().await;
    f.sim.set_user_consent_allowed(TENANT, true);
    assert!(f.sim.oauth2_permission_grants(TENANT).is_empty());

    f.obtain_token(&f.bob).await;
    let mut grants: Vec<_> = f
        .sim
        .oauth2_permission_grants(TENANT)
        .into_iter()
        .map(|g| (g.client_id, g.consent_type, g.principal_id, g.resource_id, g.scope))
        .collect();
    grants.sort();
    let mut expected = vec![
        (
            f.client_sp.clone(),
            "Principal".to_string(),
            Some(f.bob.clone()),
            f.exchange_sp.clone(),
            "SMTP.Send".to_string(),
        ),
        (
            f.client_sp.clone(),
            "Principal".to_string(),
            Some(f.bob.clone()),
            f.graph_sp.clone(),
            "offline_access".to_string(),
        ),
    ];
    expected.sort();
    assert_eq!(grants, expected);
    // Graph lists them like any grant.
    let listed = f.http.graph(&f.admin_token, "GET", "/oauth2PermissionGrants", None).await;
    assert_eq!(listed.body["value"].as_array().unwrap().len(), 2);
    // Signing in again consents to nothing new.
    f.sign_in(&f.bob).unwrap();
    assert_eq!(f.sim.oauth2_permission_grants(TENANT).len(), 2);
}

#[tokio::test]
async fn an_admin_consents_for_themselves_when_users_may_not() {
    let f = Fixture::new().await;
    let admin = f.sim.add_user(TENANT, "admin@contoso.com", true);
    f.obtain_token(&admin).await;
    let grants = f.sim.oauth2_permission_grants(TENANT);
    assert_eq!(grants.len(), 2);
    assert!(grants.iter().all(|g| g.consent_type == "Principal" && g.principal_id.as_deref() == Some(admin.as_str())));
    assert_eq!(f.sign_in(&f.alice).unwrap_err().code, 65001);
}

#[tokio::test]
async fn a_revoked_grant_stops_the_refresh() {
    let f = Fixture::new().await;
    let ids = f.grant(Some(&f.alice)).await;
    let tokens = f.obtain_token(&f.alice).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let deleted = f.http.graph(&f.admin_token, "DELETE", &format!("/oauth2PermissionGrants/{}", ids[0]), None).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(f.refresh(refresh, Some(&f.secret)).await.aad(400, "invalid_grant"), 65001);
}

#[tokio::test]
async fn mailboxes_are_users_with_their_external_directory_object_id() {
    let f = Fixture::new().await;
    let mailbox = f.sim.exchange().add_mailbox(TENANT, "support@contoso.com");
    let user = mailbox.external_directory_object_id.clone();
    assert!(f.sim.users(TENANT).iter().any(|u| u.id == user && u.user_principal_name == "support@contoso.com"));
    assert_eq!(f.sim.add_user(TENANT, "Support@contoso.com", false), user);
    assert_eq!(f.sim.users(TENANT).iter().filter(|u| u.id == user).count(), 1);

    assert_eq!(f.sign_in(&user).unwrap_err().code, 65001);
    f.grant(Some(&user)).await;
    f.obtain_token(&user).await;
}

#[tokio::test]
async fn consent_to_two_resources_and_redeem_for_one() {
    let f = Fixture::new().await;
    f.sim.set_user_consent_allowed(TENANT, true);
    let both = "offline_access https://outlook.office.com/SMTP.Send https://graph.microsoft.com/User.Read";
    let code = f.sim.sign_in(TENANT, &f.app_id, &f.alice, REDIRECT, both).unwrap();
    let path = format!("/{TENANT}/oauth2/v2.0/token");
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", f.app_id.as_str()),
        ("client_secret", f.secret.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", both),
    ];
    assert_eq!(f.http.form(&path, &form).await.aad(400, "invalid_scope"), 28000);
    form[5] = ("scope", "offline_access User.Read");
    let reply = f.http.form(&path, &form).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let access = reply.body["access_token"].as_str().unwrap();
    assert!(f.sim.validate_token(access, Audience::Graph).is_some());
}
