//! Microsoft Graph v1.0 behind the [`Directory`] trait. The controller never builds Graph URLs or
//! bodies; this module is the whole wire mapping.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::model::*;
use super::throttle::{Cost, GraphLimits, GraphThrottle};
use super::{AzureError, Endpoints, TokenProvider};
use crate::http::{Gate, HttpClient, Response, TransportError};

/// What the controllers need from Entra ID. 404 on delete/remove counts as done.
#[async_trait::async_trait]
pub trait Directory: Send + Sync {
    async fn app_by_unique_name(&self, tenant: &str, unique_name: &str) -> Result<Option<Application>, AzureError>;
    async fn app_by_app_id(&self, tenant: &str, app_id: &str) -> Result<Option<Application>, AzureError>;
    /// Creates the application with this uniqueName or updates it (idempotent).
    async fn upsert_app(
        &self,
        tenant: &str,
        unique_name: &str,
        update: &ApplicationUpdate,
    ) -> Result<Application, AzureError>;
    async fn update_app(&self, tenant: &str, object_id: &str, update: &ApplicationUpdate) -> Result<(), AzureError>;
    async fn delete_app(&self, tenant: &str, object_id: &str) -> Result<(), AzureError>;
    /// A deleted application (kept 30 days in `directory/deletedItems`) holding `unique_name`.
    async fn deleted_app_by_unique_name(
        &self,
        tenant: &str,
        unique_name: &str,
    ) -> Result<Option<Application>, AzureError>;
    /// Restores a deleted application (same object ID and appId).
    async fn restore_deleted_app(&self, tenant: &str, object_id: &str) -> Result<Application, AzureError>;
    async fn add_password(
        &self,
        tenant: &str,
        object_id: &str,
        display_name: &str,
        end: Timestamp,
    ) -> Result<NewPassword, AzureError>;
    async fn remove_password(&self, tenant: &str, object_id: &str, key_id: &str) -> Result<(), AzureError>;
    async fn ensure_service_principal(&self, tenant: &str, app_id: &str) -> Result<ServicePrincipal, AzureError>;
    async fn service_principal(&self, tenant: &str, app_id: &str) -> Result<Option<ServicePrincipal>, AzureError>;
    /// A resource API's service principal by appId (GUID) or display name.
    async fn resource_service_principal(
        &self,
        tenant: &str,
        resource: &str,
    ) -> Result<Option<ServicePrincipal>, AzureError>;
    async fn app_role_assignments(
        &self,
        tenant: &str,
        principal_id: &str,
    ) -> Result<Vec<AppRoleAssignment>, AzureError>;
    async fn assign_app_role(
        &self,
        tenant: &str,
        principal_id: &str,
        resource_id: &str,
        app_role_id: &str,
    ) -> Result<(), AzureError>;
    async fn unassign_app_role(&self, tenant: &str, principal_id: &str, assignment_id: &str) -> Result<(), AzureError>;
    /// Who is assigned to the service principal `sp_id` (users and groups, `appRoleAssignedTo`).
    async fn assigned_to(&self, tenant: &str, sp_id: &str) -> Result<Vec<AppRoleAssignment>, AzureError>;
    /// Removes an assignment to the service principal `sp_id`.
    async fn unassign_from(&self, tenant: &str, sp_id: &str, assignment_id: &str) -> Result<(), AzureError>;
    /// Sets "Assignment required?" (`appRoleAssignmentRequired`) on a service principal.
    async fn set_assignment_required(&self, tenant: &str, sp_id: &str, required: bool) -> Result<(), AzureError>;
    async fn delegated_grants(&self, tenant: &str, client_id: &str) -> Result<Vec<OAuth2PermissionGrant>, AzureError>;
    /// A delegated grant for one user (`principal_id`, consent type `Principal`) or, without
    /// one, for every user of the tenant (`AllPrincipals`).
    async fn create_delegated_grant(
        &self,
        tenant: &str,
        client_id: &str,
        resource_id: &str,
        principal_id: Option<&str>,
        scope: &str,
    ) -> Result<(), AzureError>;
    async fn update_delegated_grant(&self, tenant: &str, grant_id: &str, scope: &str) -> Result<(), AzureError>;
    async fn delete_delegated_grant(&self, tenant: &str, grant_id: &str) -> Result<(), AzureError>;
    /// The tenant's maximum password lifetime, when an app management policy sets one.
    async fn password_lifetime_cap(&self, tenant: &str) -> Result<Option<jiff::SignedDuration>, AzureError>;
    /// Changes to a collection since `link` (the link a previous call returned), following pages;
    /// without a link, no changes and a link from now (`$deltatoken=latest`). An expired link is
    /// an error for which [`AzureError::is_sync_reset`] holds: start again without a link.
    async fn changes(&self, tenant: &str, feed: ChangeFeed, link: Option<&str>) -> Result<Changes, AzureError>;
}

/// The tenant that owns Microsoft's first-party applications (`appOwnerOrganizationId`).
pub const MICROSOFT_TENANT_ID: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";

/// Retries for Graph's documented replication lag (writes right after a create).
#[derive(Clone, Debug)]
pub struct LagRetry {
    pub attempts: u32,
    pub delay: Duration,
}

impl Default for LagRetry {
    fn default() -> Self {
        Self { attempts: 6, delay: Duration::from_secs(1) }
    }
}

/// Graph v1.0 over HTTPS.
#[derive(Clone)]
pub struct GraphClient {
    http: HttpClient,
    endpoints: Endpoints,
    tokens: Arc<TokenProvider>,
    lag: LagRetry,
    throttle: Arc<GraphThrottle>,
}

/// One request's ticket at its tenant's gate.
struct Ticket {
    gate: Arc<super::throttle::TenantGate>,
    cost: Cost,
}

#[async_trait::async_trait]
impl Gate for Ticket {
    async fn admit(&self) -> Result<(), Duration> {
        self.gate.admit(self.cost).await
    }
    fn observe(
        &self,
        status: reqwest::StatusCode,
        headers: &reqwest::header::HeaderMap,
        retry_after: Option<Duration>,
    ) {
        self.gate.observe(status, headers, retry_after)
    }
}

enum Body<'a> {
    None,
    Json(&'a (dyn erased::Json + Sync)),
}

mod erased {
    pub trait Json {
        fn to_json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> serde_json::Value {
            serde_json::to_value(self).expect("request bodies serialize")
        }
    }
}

impl GraphClient {
    pub fn new(http: HttpClient, endpoints: Endpoints, tokens: Arc<TokenProvider>) -> Self {
        Self {
            http,
            endpoints,
            tokens,
            lag: LagRetry::default(),
            throttle: Arc::new(GraphThrottle::new(GraphLimits::default())),
        }
    }

    /// Uses these planning limits for the client-side rate limiter.
    pub fn with_limits(mut self, limits: GraphLimits) -> Self {
        self.throttle = Arc::new(GraphThrottle::new(limits));
        self
    }

    /// The client-side rate limiter (for metrics and benchmarks).
    pub fn throttle(&self) -> &Arc<GraphThrottle> {
        &self.throttle
    }

    pub fn with_lag_retry(mut self, lag: LagRetry) -> Self {
        self.lag = lag;
        self
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The federated identity credentials of an application (by object ID).
    pub async fn federated_credentials(
        &self,
        tenant: &str,
        object_id: &str,
    ) -> Result<Vec<FederatedIdentityCredential>, AzureError> {
        self.list("listFederatedCredentials", tenant, &format!("applications/{object_id}/federatedIdentityCredentials"))
            .await
    }

    /// Adds a federated identity credential to an application (by object ID).
    pub async fn add_federated_credential(
        &self,
        tenant: &str,
        object_id: &str,
        credential: &FederatedIdentityCredential,
    ) -> Result<FederatedIdentityCredential, AzureError> {
        let path = format!("applications/{object_id}/federatedIdentityCredentials");
        let response = self
            .write_with_lag_retry(|| {
                self.request(
                    "addFederatedCredential",
                    tenant,
                    reqwest::Method::POST,
                    &path,
                    Body::Json(credential),
                    false,
                )
            })
            .await?;
        decode("addFederatedCredential", &response)
    }

    fn url(&self, path: &str) -> String {
        let base = self.endpoints.graph.as_str().trim_end_matches('/');
        format!("{base}/v1.0/{path}")
    }

    async fn request(
        &self,
        operation: &'static str,
        tenant: &str,
        method: reqwest::Method,
        path: &str,
        body: Body<'_>,
        create_if_missing: bool,
    ) -> Result<Response, AzureError> {
        let token = self.tokens.token(tenant, &self.endpoints.graph_scope).await?;
        let url = self.url(path);
        let json = match body {
            Body::None => None,
            Body::Json(b) => Some(b.to_json()),
        };
        let ticket = Ticket { gate: self.throttle.tenant(tenant), cost: Cost::of(&method, path) };
        let response = self
            .http
            .send_gated(operation, Some(&ticket), |c| {
                use secrecy::ExposeSecret;
                let mut req = c
                    .request(method.clone(), &url)
                    .bearer_auth(token.expose_secret())
                    // Background work: let Graph shed us first under load.
                    .header("x-ms-throttle-priority", "Low");
                if create_if_missing {
                    req = req.header("Prefer", "create-if-missing");
                }
                if let Some(j) = &json {
                    req = req.json(j);
                }
                req
            })
            .await?;
        if response.status.is_success() { Ok(response) } else { Err(AzureError::from_graph(operation, &response)) }
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        tenant: &str,
        path: &str,
    ) -> Result<T, AzureError> {
        let response = self.request(operation, tenant, reqwest::Method::GET, path, Body::None, false).await?;
        decode(operation, &response)
    }

    async fn get_optional<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        tenant: &str,
        path: &str,
    ) -> Result<Option<T>, AzureError> {
        match self.get_json(operation, tenant, path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Follows `@odata.nextLink` until the collection is complete.
    async fn list<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        tenant: &str,
        path: &str,
    ) -> Result<Vec<T>, AzureError> {
        #[derive(serde::Deserialize)]
        struct Page<T> {
            value: Vec<T>,
            #[serde(rename = "@odata.nextLink")]
            next: Option<String>,
        }
        let mut items = Vec::new();
        let mut next = Some(path.to_string());
        let prefix = self.url("");
        while let Some(path) = next.take() {
            let relative = path.strip_prefix(&prefix).map(str::to_string).unwrap_or(path);
            let page: Page<T> = self.get_json(operation, tenant, &relative).await?;
            items.extend(page.value);
            next = page.next;
        }
        Ok(items)
    }

    /// Runs a write, retrying the documented replication-lag answers for a bounded time.
    async fn write_with_lag_retry<F, Fut, T>(&self, mut write: F) -> Result<T, AzureError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AzureError>>,
    {
        let mut attempt = 1;
        loop {
            match write().await {
                Err(e) if is_replication_lag(&e) && attempt < self.lag.attempts => {
                    let wait = self.lag.delay * attempt;
                    if !crate::http::charge_wait(wait) {
                        crate::http::defer(wait);
                        let why = "for Graph's replication";
                        return Err(TransportError::deferred("graph", "write after create", attempt, wait, why).into());
                    }
                    tracing::debug!(error = %e, attempt, "Graph replication lag, retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

fn is_replication_lag(e: &AzureError) -> bool {
    (e.is_not_found() && e.has_graph_code("Request_ResourceNotFound")) || e.has_graph_code("NoBackingApplicationObject")
}

/// Graph's answer to assigning an app role the principal already has. Confirmed from public
/// reports: 400 `Request_BadRequest` with the message "Permission being assigned already exists on
/// the object." Graph gives it no code of its own, so the message is matched (English; that Graph
/// never localises it for app-only callers is unconfirmed).
fn is_assignment_already_there(e: &AzureError) -> bool {
    matches!(e, AzureError::Graph(g)
        if matches!(g.status, 400 | 409) && g.message.contains("Permission being assigned already exists"))
}

/// Graph's answer to creating a delegated grant whose (client, resource, consent type) exists.
/// Confirmed from public reports: 409 `Request_MultipleObjectsWithSameKeyValue`, "Permission entry
/// already exists." Unconfirmed: whether Graph ever answers 400 with that message instead (some
/// older reports quote only the message), so the message is accepted with either status.
fn is_grant_already_there(e: &AzureError) -> bool {
    match e {
        AzureError::Graph(g) => {
            (g.status == 409 && e.has_graph_code("Request_MultipleObjectsWithSameKeyValue"))
                || (matches!(g.status, 400 | 409) && g.message.contains("Permission entry already exists"))
        }
        _ => false,
    }
}

fn decode<T: DeserializeOwned>(operation: &'static str, response: &Response) -> Result<T, AzureError> {
    serde_json::from_slice(&response.body)
        .map_err(|e| AzureError::Decode { context: operation, message: e.to_string() })
}

/// OData string literal: single quotes doubled, then percent-encoded for the path.
fn odata(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.replace('\'', "''").as_bytes()).collect::<String>().replace('+', "%20")
}

fn is_guid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

fn ok_if_not_found(result: Result<Response, AzureError>) -> Result<(), AzureError> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

#[async_trait::async_trait]
impl Directory for GraphClient {
    async fn changes(&self, tenant: &str, feed: ChangeFeed, link: Option<&str>) -> Result<Changes, AzureError> {
        #[derive(serde::Deserialize)]
        struct Page {
            value: Vec<Item>,
            #[serde(rename = "@odata.nextLink")]
            next: Option<String>,
            #[serde(rename = "@odata.deltaLink")]
            delta: Option<String>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Item {
            id: String,
            app_id: Option<String>,
            client_id: Option<String>,
            #[serde(rename = "@removed")]
            removed: Option<serde_json::Value>,
        }
        let (collection, select) = match feed {
            ChangeFeed::Applications => ("applications", "id,appId"),
            ChangeFeed::ServicePrincipals => ("servicePrincipals", "id,appId"),
            ChangeFeed::DelegatedGrants => ("oauth2PermissionGrants", "id,clientId"),
        };
        let prefix = self.url("");
        let mut next = Some(match link {
            Some(link) => link.strip_prefix(&prefix).unwrap_or(link).to_string(),
            None => format!("{collection}/delta?$select={select}&$deltatoken=latest"),
        });
        let mut changed = Vec::new();
        while let Some(path) = next.take() {
            let page: Page = self.get_json("delta", tenant, &path).await?;
            changed.extend(page.value.into_iter().map(|i| ChangedObject {
                id: i.id,
                app_id: i.app_id,
                client_id: i.client_id,
                removed: i.removed.is_some(),
            }));
            match (page.next, page.delta) {
                (Some(n), _) => next = Some(n.strip_prefix(&prefix).unwrap_or(&n).to_string()),
                (None, Some(d)) => return Ok(Changes { changed, link: d }),
                (None, None) => {
                    return Err(AzureError::Decode {
                        context: "delta",
                        message: "a delta page had neither @odata.nextLink nor @odata.deltaLink".into(),
                    });
                }
            }
        }
        unreachable!("the loop returns")
    }

    async fn app_by_unique_name(&self, tenant: &str, unique_name: &str) -> Result<Option<Application>, AzureError> {
        self.get_optional("getApplication", tenant, &format!("applications(uniqueName='{}')", odata(unique_name))).await
    }

    async fn app_by_app_id(&self, tenant: &str, app_id: &str) -> Result<Option<Application>, AzureError> {
        self.get_optional("getApplication", tenant, &format!("applications(appId='{}')", odata(app_id))).await
    }

    async fn upsert_app(
        &self,
        tenant: &str,
        unique_name: &str,
        update: &ApplicationUpdate,
    ) -> Result<Application, AzureError> {
        let path = format!("applications(uniqueName='{}')", odata(unique_name));
        let mut body = update.clone();
        body.unique_name = None; // the key carries it; sending it again is rejected as a change
        let response =
            self.request("upsertApplication", tenant, reqwest::Method::PATCH, &path, Body::Json(&body), true).await?;
        if response.status == reqwest::StatusCode::CREATED {
            return decode("upsertApplication", &response);
        }
        // 204: it existed and was updated; Graph sends no body, so read it back.
        self.write_with_lag_retry(|| async {
            self.get_optional::<Application>("getApplication", tenant, &path).await?.ok_or_else(|| {
                AzureError::graph(
                    "getApplication",
                    404,
                    "Request_ResourceNotFound",
                    "application not readable after upsert",
                )
            })
        })
        .await
    }

    async fn update_app(&self, tenant: &str, object_id: &str, update: &ApplicationUpdate) -> Result<(), AzureError> {
        let path = format!("applications/{object_id}");
        self.write_with_lag_retry(|| {
            self.request("updateApplication", tenant, reqwest::Method::PATCH, &path, Body::Json(update), false)
        })
        .await
        .map(drop)
    }

    async fn deleted_app_by_unique_name(
        &self,
        tenant: &str,
        unique_name: &str,
    ) -> Result<Option<Application>, AzureError> {
        // Read whole: whether deletedItems filters on uniqueName is not documented, and this is
        // only asked when a create found the name taken.
        let deleted: Vec<Application> =
            self.list("listDeletedApplications", tenant, "directory/deletedItems/microsoft.graph.application").await?;
        Ok(deleted.into_iter().find(|a| a.unique_name.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(unique_name))))
    }

    async fn restore_deleted_app(&self, tenant: &str, object_id: &str) -> Result<Application, AzureError> {
        let path = format!("directory/deletedItems/{object_id}/restore");
        let response = self
            .request(
                "restoreDeletedItem",
                tenant,
                reqwest::Method::POST,
                &path,
                Body::Json(&serde_json::json!({})),
                false,
            )
            .await?;
        decode("restoreDeletedItem", &response)
    }

    async fn delete_app(&self, tenant: &str, object_id: &str) -> Result<(), AzureError> {
        let path = format!("applications/{object_id}");
        ok_if_not_found(
            self.request("deleteApplication", tenant, reqwest::Method::DELETE, &path, Body::None, false).await,
        )
    }

    async fn add_password(
        &self,
        tenant: &str,
        object_id: &str,
        display_name: &str,
        end: Timestamp,
    ) -> Result<NewPassword, AzureError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Request<'a> {
            password_credential: Credential<'a>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Credential<'a> {
            display_name: &'a str,
            end_date_time: Timestamp,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Answer {
            key_id: String,
            secret_text: String,
            #[serde(default)]
            hint: Option<String>,
            #[serde(default)]
            display_name: Option<String>,
            start_date_time: Timestamp,
            end_date_time: Timestamp,
        }
        let body = Request { password_credential: Credential { display_name, end_date_time: end } };
        let path = format!("applications/{object_id}/addPassword");
        let response = self
            .write_with_lag_retry(|| {
                self.request("addPassword", tenant, reqwest::Method::POST, &path, Body::Json(&body), false)
            })
            .await?;
        let answer: Answer = decode("addPassword", &response)?;
        Ok(NewPassword {
            key_id: answer.key_id,
            secret_text: answer.secret_text.into(),
            hint: answer.hint,
            display_name: answer.display_name.unwrap_or_else(|| display_name.to_string()),
            start: answer.start_date_time,
            end: answer.end_date_time,
        })
    }

    async fn remove_password(&self, tenant: &str, object_id: &str, key_id: &str) -> Result<(), AzureError> {
        let body = serde_json::json!({ "keyId": key_id });
        let path = format!("applications/{object_id}/removePassword");
        match self.request("removePassword", tenant, reqwest::Method::POST, &path, Body::Json(&body), false).await {
            Ok(_) => Ok(()),
            // Already gone: removal is idempotent.
            Err(e) if e.is_not_found() || e.has_graph_code("NoSuchKey") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn ensure_service_principal(&self, tenant: &str, app_id: &str) -> Result<ServicePrincipal, AzureError> {
        let path = format!("servicePrincipals(appId='{}')", odata(app_id));
        let body = serde_json::json!({});
        let response = self
            .write_with_lag_retry(|| {
                self.request("upsertServicePrincipal", tenant, reqwest::Method::PATCH, &path, Body::Json(&body), true)
            })
            .await?;
        if response.status == reqwest::StatusCode::CREATED {
            return decode("upsertServicePrincipal", &response);
        }
        self.get_json("getServicePrincipal", tenant, &path).await
    }

    async fn service_principal(&self, tenant: &str, app_id: &str) -> Result<Option<ServicePrincipal>, AzureError> {
        self.get_optional("getServicePrincipal", tenant, &format!("servicePrincipals(appId='{}')", odata(app_id))).await
    }

    async fn resource_service_principal(
        &self,
        tenant: &str,
        resource: &str,
    ) -> Result<Option<ServicePrincipal>, AzureError> {
        if is_guid(resource) {
            return self.service_principal(tenant, resource).await;
        }
        // Anyone in a tenant can register an application called "Microsoft Graph": a display name
        // resolves only to a unique service principal whose application Microsoft's tenant owns.
        let path = format!("servicePrincipals?$filter=displayName%20eq%20'{}'", odata(resource));
        let found: Vec<ServicePrincipal> = self.list("findServicePrincipal", tenant, &path).await?;
        let mut microsoft = found.into_iter().filter(|sp| {
            sp.app_owner_organization_id.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(MICROSOFT_TENANT_ID))
        });
        match (microsoft.next(), microsoft.next()) {
            (Some(sp), None) => Ok(Some(sp)),
            _ => Ok(None),
        }
    }

    async fn app_role_assignments(
        &self,
        tenant: &str,
        principal_id: &str,
    ) -> Result<Vec<AppRoleAssignment>, AzureError> {
        self.list("listAppRoleAssignments", tenant, &format!("servicePrincipals/{principal_id}/appRoleAssignments"))
            .await
    }

    async fn assign_app_role(
        &self,
        tenant: &str,
        principal_id: &str,
        resource_id: &str,
        app_role_id: &str,
    ) -> Result<(), AzureError> {
        let body =
            serde_json::json!({"principalId": principal_id, "resourceId": resource_id, "appRoleId": app_role_id});
        let path = format!("servicePrincipals/{resource_id}/appRoleAssignedTo");
        let result = self
            .write_with_lag_retry(|| {
                self.request("assignAppRole", tenant, reqwest::Method::POST, &path, Body::Json(&body), false)
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            // A duplicate is exactly this (principal, resource, role): what was asked for exists,
            // typically because an earlier attempt whose answer was lost succeeded.
            Err(e) if is_assignment_already_there(&e) => {
                tracing::debug!(tenant, principal_id, app_role_id, "app role already assigned");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn unassign_app_role(&self, tenant: &str, principal_id: &str, assignment_id: &str) -> Result<(), AzureError> {
        let path = format!("servicePrincipals/{principal_id}/appRoleAssignments/{assignment_id}");
        ok_if_not_found(
            self.request("unassignAppRole", tenant, reqwest::Method::DELETE, &path, Body::None, false).await,
        )
    }

    async fn assigned_to(&self, tenant: &str, sp_id: &str) -> Result<Vec<AppRoleAssignment>, AzureError> {
        self.list("listAppRoleAssignedTo", tenant, &format!("servicePrincipals/{sp_id}/appRoleAssignedTo")).await
    }

    async fn unassign_from(&self, tenant: &str, sp_id: &str, assignment_id: &str) -> Result<(), AzureError> {
        let path = format!("servicePrincipals/{sp_id}/appRoleAssignedTo/{assignment_id}");
        ok_if_not_found(self.request("unassignFrom", tenant, reqwest::Method::DELETE, &path, Body::None, false).await)
    }

    async fn set_assignment_required(&self, tenant: &str, sp_id: &str, required: bool) -> Result<(), AzureError> {
        let body = serde_json::json!({ "appRoleAssignmentRequired": required });
        let path = format!("servicePrincipals/{sp_id}");
        self.write_with_lag_retry(|| {
            self.request("updateServicePrincipal", tenant, reqwest::Method::PATCH, &path, Body::Json(&body), false)
        })
        .await
        .map(drop)
    }

    async fn delegated_grants(&self, tenant: &str, client_id: &str) -> Result<Vec<OAuth2PermissionGrant>, AzureError> {
        let path = format!("oauth2PermissionGrants?$filter=clientId%20eq%20'{}'", odata(client_id));
        self.list("listDelegatedGrants", tenant, &path).await
    }

    async fn create_delegated_grant(
        &self,
        tenant: &str,
        client_id: &str,
        resource_id: &str,
        principal_id: Option<&str>,
        scope: &str,
    ) -> Result<(), AzureError> {
        let body = match principal_id {
            Some(user) => serde_json::json!({
                "clientId": client_id, "consentType": "Principal", "principalId": user,
                "resourceId": resource_id, "scope": scope
            }),
            None => serde_json::json!({
                "clientId": client_id, "consentType": "AllPrincipals", "resourceId": resource_id, "scope": scope
            }),
        };
        let result = self
            .write_with_lag_retry(|| {
                self.request(
                    "createDelegatedGrant",
                    tenant,
                    reqwest::Method::POST,
                    "oauth2PermissionGrants",
                    Body::Json(&body),
                    false,
                )
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            // The key of a grant is (client, resource, consent type), not its scopes: an existing
            // grant counts as this one only if it already holds every scope asked for (an earlier
            // attempt whose answer was lost). Otherwise someone else's grant is in the way and the
            // caller must see the conflict.
            Err(e) if is_grant_already_there(&e) => {
                let wanted: std::collections::BTreeSet<&str> = scope.split_whitespace().collect();
                let existing = self.delegated_grants(tenant, client_id).await?;
                let covered = existing.iter().any(|g| {
                    g.resource_id.eq_ignore_ascii_case(resource_id)
                        && match principal_id {
                            Some(user) => {
                                g.consent_type.as_deref() == Some("Principal")
                                    && g.principal_id.as_deref().is_some_and(|p| p.eq_ignore_ascii_case(user))
                            }
                            None => g.consent_type.as_deref().is_none_or(|c| c == "AllPrincipals"),
                        }
                        && wanted.iter().all(|w| g.scopes().contains(*w))
                });
                if covered {
                    tracing::debug!(tenant, client_id, resource_id, "delegated grant already exists");
                    Ok(())
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn update_delegated_grant(&self, tenant: &str, grant_id: &str, scope: &str) -> Result<(), AzureError> {
        let body = serde_json::json!({ "scope": scope });
        let path = format!("oauth2PermissionGrants/{grant_id}");
        self.request("updateDelegatedGrant", tenant, reqwest::Method::PATCH, &path, Body::Json(&body), false)
            .await
            .map(drop)
    }

    async fn delete_delegated_grant(&self, tenant: &str, grant_id: &str) -> Result<(), AzureError> {
        let path = format!("oauth2PermissionGrants/{grant_id}");
        ok_if_not_found(
            self.request("deleteDelegatedGrant", tenant, reqwest::Method::DELETE, &path, Body::None, false).await,
        )
    }

    async fn password_lifetime_cap(&self, tenant: &str) -> Result<Option<jiff::SignedDuration>, AzureError> {
        let policy: serde_json::Value =
            match self.get_json("getAppManagementPolicy", tenant, "policies/defaultAppManagementPolicy").await {
                Ok(p) => p,
                // Reading the policy needs Policy.Read.All, which is optional: no cap known.
                Err(e) if e.is_permission_denied() || e.is_not_found() => return Ok(None),
                Err(e) => Err(e)?,
            };
        Ok(password_lifetime_from_policy(&policy))
    }
}

/// The smallest enabled `passwordLifetime` restriction of a tenant app management policy.
pub fn password_lifetime_from_policy(policy: &serde_json::Value) -> Option<jiff::SignedDuration> {
    if policy.get("isEnabled").and_then(|v| v.as_bool()) == Some(false) {
        return None;
    }
    let restrictions = ["applicationRestrictions", "servicePrincipalRestrictions"];
    restrictions
        .iter()
        .filter_map(|r| policy.get(r)?.get("passwordCredentials")?.as_array())
        .flatten()
        .filter(|c| c.get("restrictionType").and_then(|t| t.as_str()) == Some("passwordLifetime"))
        .filter(|c| c.get("state").and_then(|s| s.as_str()) != Some("disabled"))
        .filter_map(|c| c.get("maxLifetime")?.as_str())
        .filter_map(|iso| iso.parse::<jiff::Span>().ok())
        .filter_map(|span| span.to_duration(jiff::SpanRelativeTo::days_are_24_hours()).ok())
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Cloud;
    use crate::azure::{EndpointOverrides, OperatorCredential, TokenClient};
    use crate::http::HttpSettings;
    use connect_email_sim::microsoft::{EXCHANGE_APP_ID, MicrosoftSim, SimOptions};
    use connect_email_sim::routes;

    const TENANT: &str = "cccccccc-0000-4000-8000-000000000003";
    const OPERATOR: &str = "0e0e0e0e-0000-4000-8000-00000000000e";
    const MAIL_SEND: &str = "b633e1c5-b582-4048-a93e-9f11b44c7e96";

    async fn graph(sim: &MicrosoftSim) -> GraphClient {
        sim.add_operator_client_secret(TENANT, OPERATOR, "operator-secret");
        let url = url::Url::parse(&sim.url()).unwrap();
        let overrides = EndpointOverrides { authority_host: Some(url.clone()), graph: Some(url), exchange: None };
        let endpoints = overrides.apply(Endpoints::for_cloud(Cloud::AzurePublic));
        let http =
            HttpClient::new("graph", &HttpSettings { extra_ca_pem: Some(sim.ca_pem()), ..Default::default() }).unwrap();
        let credential = OperatorCredential::ClientSecret {
            client_id: OPERATOR.into(),
            secret: "operator-secret".to_string().into(),
        };
        let tokens = Arc::new(TokenProvider::new(TokenClient::new(http.clone(), endpoints.clone()), credential));
        GraphClient::new(http, endpoints, tokens)
    }

    #[tokio::test]
    async fn a_retried_post_whose_first_attempt_succeeded_is_already_there_and_counts_as_success() {
        let sim = MicrosoftSim::start(SimOptions::default().tenant(TENANT)).await.unwrap();
        let graph = graph(&sim).await;
        let (_, app_id) = sim.seed_application(TENANT, "retried");
        let client = graph.service_principal(TENANT, &app_id).await.unwrap().unwrap().id;
        let exchange = graph.resource_service_principal(TENANT, EXCHANGE_APP_ID).await.unwrap().unwrap().id;

        // The assignment is made, its answer lost; the request path retries and Graph answers
        // "already exists on the object".
        sim.faults().on(routes::CREATE_APP_ROLE_ASSIGNED_TO).lose_response();
        graph.assign_app_role(TENANT, &client, &exchange, MAIL_SEND).await.unwrap();
        assert_eq!(sim.count(routes::CREATE_APP_ROLE_ASSIGNED_TO), 2, "the POST was not retried");
        assert_eq!(sim.app_role_assignments(TENANT).len(), 1);

        // The same for a delegated grant (409 "Permission entry already exists").
        sim.faults().on(routes::CREATE_GRANT).lose_response();
        graph.create_delegated_grant(TENANT, &client, &exchange, None, "SMTP.Send").await.unwrap();
        assert_eq!(sim.count(routes::CREATE_GRANT), 2, "the POST was not retried");
        assert_eq!(sim.oauth2_permission_grants(TENANT).len(), 1);

        // A grant in the way that lacks a scope asked for is a conflict the caller must see.
        let error = graph.create_delegated_grant(TENANT, &client, &exchange, None, "SMTP.Send offline_access").await;
        let error = error.unwrap_err();
        assert_eq!(error.status(), Some(409), "{error}");
        assert!(error.has_graph_code("Request_MultipleObjectsWithSameKeyValue"));
    }

    #[test]
    fn odata_literals_escape_quotes_and_spaces() {
        assert_eq!(odata("Office 365 Exchange Online"), "Office%20365%20Exchange%20Online");
        assert_eq!(odata("O'Brien"), "O%27%27Brien");
    }

    #[test]
    fn policy_lifetime_is_the_smallest_enabled_password_lifetime() {
        let policy = serde_json::json!({
            "isEnabled": true,
            "applicationRestrictions": {"passwordCredentials": [
                {"restrictionType": "passwordAddition", "maxLifetime": null},
                {"restrictionType": "passwordLifetime", "maxLifetime": "P90D"},
                {"restrictionType": "passwordLifetime", "maxLifetime": "P30D", "state": "disabled"}
            ]}
        });
        assert_eq!(password_lifetime_from_policy(&policy), Some(jiff::SignedDuration::from_hours(90 * 24)));
        assert_eq!(password_lifetime_from_policy(&serde_json::json!({"isEnabled": false})), None);
    }
}
