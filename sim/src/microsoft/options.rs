//! How to start a [`super::MicrosoftSim`].

use std::net::SocketAddr;
use std::time::Duration;

/// How to start a [`MicrosoftSim`].
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Where to listen; `127.0.0.1:0` (a free port) when `None`.
    pub listen: Option<SocketAddr>,
    /// Tenants created at start (more with [`MicrosoftSim::add_tenant`]).
    pub tenants: Vec<String>,
    /// A uniformly distributed delay in `[min, max]` added to every request.
    pub latency: Option<(Duration, Duration)>,
    /// Items per page in Graph collections when the caller sends no `$top` (Graph: 100).
    pub page_size: usize,
    /// Rows per page of Exchange `InvokeCommand` output before `@odata.nextLink` (default 1000,
    /// what public callers ask for; set it small to make a test read several pages).
    pub exchange_page_size: usize,
    /// The `interval` the device authorization endpoint asks clients to poll at (Entra: 5).
    pub device_code_interval_seconds: u64,
}

impl Default for SimOptions {
    fn default() -> SimOptions {
        SimOptions {
            listen: None,
            tenants: Vec::new(),
            latency: None,
            page_size: 100,
            exchange_page_size: 1000,
            device_code_interval_seconds: 5,
        }
    }
}

impl SimOptions {
    pub fn tenant(mut self, tenant_id: &str) -> SimOptions {
        self.tenants.push(tenant_id.to_string());
        self
    }

    pub fn page_size(mut self, page_size: usize) -> SimOptions {
        self.page_size = page_size;
        self
    }

    pub fn exchange_page_size(mut self, rows: usize) -> SimOptions {
        self.exchange_page_size = rows;
        self
    }

    pub fn latency(mut self, min: Duration, max: Duration) -> SimOptions {
        self.latency = Some((min, max));
        self
    }

    pub fn listen(mut self, addr: SocketAddr) -> SimOptions {
        self.listen = Some(addr);
        self
    }
}
