//! Leader election on a Lease against the real apiserver: one winner among concurrent candidates,
//! no takeover while the holder renews, takeover once its lease has expired.

mod support;

use std::time::Duration;

use connect_email_operator::leader::{Elector, LeaseSettings};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use support::*;

fn candidate(client: &kube::Client, ns: &str, identity: &str) -> Elector {
    Elector::new(
        client.clone(),
        LeaseSettings {
            namespace: ns.into(),
            name: "connect-email-operator".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(2),
            renew_every: Duration::from_millis(200),
        },
    )
}

#[tokio::test]
async fn exactly_one_candidate_leads_and_another_takes_over_after_the_lease_expires() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "leader").await;

    // Five candidates at once on a fresh Lease: exactly one wins.
    let candidates: Vec<Elector> = (0..5).map(|i| candidate(&client, &ns.name, &format!("replica-{i}"))).collect();
    let results = futures::future::join_all(candidates.iter().map(|c| c.try_acquire_or_renew())).await;
    let winners: Vec<usize> =
        results.iter().enumerate().filter(|(_, r)| matches!(r, Ok(true))).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let leader = winners[0];
    let other = (leader + 1) % 5;

    // While the leader renews, nobody else gets in.
    for _ in 0..5 {
        assert!(candidates[leader].try_acquire_or_renew().await.unwrap());
        assert!(!candidates[other].try_acquire_or_renew().await.unwrap());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The leader stops renewing (killed): after the lease duration another candidate takes over.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(candidates[other].try_acquire_or_renew().await.unwrap());
    assert!(!candidates[leader].try_acquire_or_renew().await.unwrap(), "the old leader must not steal it back");
    let lease = Api::<Lease>::namespaced(client.clone(), &ns.name).get("connect-email-operator").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(format!("replica-{other}").as_str()));
    assert_eq!(spec.lease_transitions, Some(1));
    ns.delete().await;
}
