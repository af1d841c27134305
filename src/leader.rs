//! Leader election on a `coordination.k8s.io/v1` Lease, so that two replicas never reconcile at
//! once. The holder renews every `renew_every`; another candidate takes over once `renewTime +
//! leaseDurationSeconds` has passed. Writes use the Lease's resourceVersion (optimistic
//! concurrency), so two candidates can never both win the same term.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};

#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This candidate's identity (the pod name).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_every: Duration,
}

/// One candidate.
pub struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
}

impl Elector {
    pub fn new(client: kube::Client, settings: LeaseSettings) -> Self {
        Self { api: Api::namespaced(client, &settings.namespace), settings }
    }

    /// One attempt to acquire or renew. Ok(true) while this candidate holds the lease.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let s = &self.settings;
        let spec = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
            holder_identity: Some(s.identity.clone()),
            lease_duration_seconds: Some(s.lease_duration.as_secs().max(1) as i32),
            acquire_time: acquired.or(Some(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        };
        let Some(mut lease) = self.api.get_opt(&s.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(s.name.clone()), ..ObjectMeta::default() },
                spec: Some(spec(0, None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let current = lease.spec.clone().unwrap_or_default();
        let holder = current.holder_identity.clone().unwrap_or_default();
        let ours = holder == s.identity;
        let expired = match (&current.renew_time, current.lease_duration_seconds) {
            (Some(renewed), Some(secs)) => now >= renewed.0 + jiff::SignedDuration::from_secs(secs.into()),
            _ => true,
        };
        if !ours && !expired && !holder.is_empty() {
            return Ok(false);
        }
        let transitions = current.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let acquired = if ours { current.acquire_time.clone() } else { None };
        lease.spec = Some(spec(transitions, acquired));
        // replace() carries the resourceVersion we read: a concurrent winner makes this a 409.
        match self.api.replace(&s.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this candidate leads, then keeps renewing in the background. The returned
    /// receiver resolves when leadership is lost (renewal failed past the lease duration).
    pub async fn lead(self) -> tokio::sync::oneshot::Receiver<()> {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election: cannot read or write the Lease"),
            }
            tokio::time::sleep(self.settings.renew_every).await;
        }
        tracing::info!(identity = %self.settings.identity, lease = %self.settings.name, "became the leader");
        let (lost_tx, lost_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut last_renewal = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(self.settings.renew_every).await;
                match self.try_acquire_or_renew().await {
                    Ok(true) => last_renewal = tokio::time::Instant::now(),
                    Ok(false) => break,
                    Err(e) if last_renewal.elapsed() < self.settings.lease_duration => {
                        tracing::warn!(error = %e, "leader election: renewal failed, retrying");
                    }
                    Err(_) => break,
                }
            }
            tracing::warn!("lost leadership");
            let _ = lost_tx.send(());
        });
        lost_rx
    }
}
