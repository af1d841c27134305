//! Fault injection: one-shot (or N-shot) failures per route, and global behaviour switches that
//! reproduce Entra ID's eventual consistency, secret propagation, app management policy and
//! throttling.
//!
//! ```no_run
//! # async fn demo(sim: &connect_email_sim::MicrosoftSim) {
//! use connect_email_sim::routes;
//! use std::time::Duration;
//! sim.faults().on(routes::ADD_PASSWORD).times(2).status(429, Some(3));
//! sim.faults().on("*").latency(Duration::from_millis(200));
//! sim.faults().on(routes::TOKEN).reset();
//! sim.faults().on(routes::CREATE_GRANT).lose_response();
//! sim.faults().on_cmdlet("Set-Mailbox").unavailable();
//! sim.faults().set_replication_lag(Duration::from_millis(300));
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use super::state::Shared;
use crate::faults::FaultBuilder;
use crate::sync::lock;

/// Cheap, cloneable handle for injecting faults into a running [`super::MicrosoftSim`].
#[derive(Clone, Debug)]
pub struct Faults {
    pub(crate) shared: Arc<Shared>,
}

impl Faults {
    /// Starts a fault for requests whose route template equals `route` (see [`super::routes`]),
    /// or every request with `"*"`. Applies to the next request only unless [`FaultBuilder::times`]
    /// says otherwise. Panics on a string that is not a route template (a typo would otherwise
    /// inject nothing).
    pub fn on(&self, route: &str) -> FaultBuilder {
        super::routes::assert_known(route);
        FaultBuilder::new(self.shared.faults.clone(), route.to_string())
    }

    /// Starts a fault for requests to exactly `path` (as sent, without the query string, e.g.
    /// `/v1.0/servicePrincipals(appId='…')`): one resource among many on the same route.
    pub fn on_path(&self, path: &str) -> FaultBuilder {
        assert!(path.starts_with('/'), "a request path starts with /: {path}");
        FaultBuilder::new(self.shared.faults.clone(), path.to_string())
    }

    /// Starts a fault for Exchange `InvokeCommand` calls naming `cmdlet` (any case), e.g.
    /// `"Set-Mailbox"`. Panics on a cmdlet the simulator does not implement.
    pub fn on_cmdlet(&self, cmdlet: &str) -> FaultBuilder {
        let name = super::exchange::org::canonical_cmdlet(cmdlet);
        FaultBuilder::new(self.shared.faults.clone(), name.to_string())
    }

    /// Removes every pending fault rule (global settings stay).
    pub fn clear(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Number of fault uses not yet consumed.
    pub fn pending(&self) -> usize {
        lock(&self.shared.faults).pending()
    }

    /// Objects younger than `lag` are invisible to reads by id/appId/uniqueName and to writes
    /// addressed by id (404 `Request_ResourceNotFound`), unknown to the token endpoint (700016),
    /// and creating a service principal for an application younger than `lag` fails with 400
    /// `NoBackingApplicationObject`. Zero turns it off.
    pub fn set_replication_lag(&self, lag: Duration) {
        lock(&self.shared.settings).replication_lag = lag;
    }

    /// A password younger than `delay` is rejected at the token endpoint with AADSTS7000215.
    pub fn set_password_propagation(&self, delay: Duration) {
        lock(&self.shared.settings).password_propagation = delay;
    }

    /// Tenant app management policy: `Some(max)` adds a `passwordLifetime` restriction with
    /// `maxLifetime` to `GET /policies/defaultAppManagementPolicy`, and `addPassword` whose
    /// end − start exceeds it fails with 400 `CredentialInvalidLifetimeAsPerAppPolicy`.
    pub fn set_password_lifetime_cap(&self, max: Option<Duration>) {
        lock(&self.shared.settings).password_lifetime_cap = max;
    }

    /// At most `writes` Graph writes (POST/PATCH/DELETE) per `per`, per tenant and calling
    /// client; beyond that 429 with `Retry-After`, Graph's throttling body and the
    /// `x-ms-throttle-*` headers. Throttled requests do not count.
    pub fn set_write_rate_limit(&self, writes: u32, per: Duration) {
        lock(&self.shared.settings).write_rate_limit = Some((writes, per));
    }

    /// Resource units allowed per window for each (tenant, calling application), e.g. 3,500 per
    /// 10 s for a small tenant; costs follow Graph's published table.
    pub fn set_resource_unit_limit(&self, units: u32, per: Duration) {
        lock(&self.shared.settings).unit_rate_limit = Some((units, per));
    }

    /// Every request for `tenant` (its token endpoint, Graph and Exchange calls) is answered
    /// `delay` late; other tenants are unaffected (a slow or unreachable tenant). Zero removes it.
    pub fn set_tenant_latency(&self, tenant: &str, delay: Duration) {
        let mut latency = lock(&self.shared.tenant_latency);
        if delay.is_zero() {
            latency.remove(&tenant.to_ascii_lowercase());
        } else {
            latency.insert(tenant.to_ascii_lowercase(), delay);
        }
    }

    pub fn clear_write_rate_limit(&self) {
        lock(&self.shared.settings).write_rate_limit = None;
    }
}
