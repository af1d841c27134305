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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_operator_processes_only_the_leader_reconciles_and_the_other_takes_over_when_it_dies() {
    use connect_email_operator::api::AzureAppRegistration;
    use kube::api::{Patch, PatchParams};
    use support::operator::{Harness, TENANT, TENANT_REF};
    use support::process::OperatorProcess;

    let h = Harness::without_operator("leader-failover").await;
    let ns = h.ns.name.clone();
    let args = ["--leader-election", "--lease-duration", "3s", "--lease-namespace", ns.as_str()];
    let mut a = OperatorProcess::spawn_with(&ns, &h.sim, &[], "replica-a", &args, &[("POD_NAME", "replica-a")]);
    let mut b = OperatorProcess::spawn_with(&ns, &h.sim, &[], "replica-b", &args, &[("POD_NAME", "replica-b")]);
    let api: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &ns);
    let object = serde_json::json!({
        "apiVersion": "connectemail.dev/v1alpha1", "kind": "AzureAppRegistration",
        "metadata": {"name": "ha"},
        "spec": {"tenantRef": {"name": TENANT_REF}, "displayName": "HA", "redirectUris": ["https://acme.us.webexconnect.io/callback"],
                 "clientSecret": {"secretName": "ha-credentials", "revokeAfter": "0s"}}
    });
    api.patch("ha", &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&object)).await.unwrap();
    let ready = |api: Api<AzureAppRegistration>, rotated: Option<String>| async move {
        let o = api.get("ha").await.map_err(|e| e.to_string())?;
        let s = o.status.unwrap_or_default();
        let ok = s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        let key = s.credential.map(|c| c.key_id);
        match key {
            Some(key) if ok && Some(&key) != rotated.as_ref() => Ok(key),
            _ => Err("not ready".to_string()),
        }
    };
    let first = eventually(Duration::from_secs(60), || ready(api.clone(), None)).await;
    let leases: Api<Lease> = Api::namespaced(h.client.clone(), &ns);
    let holder = leases.get("connect-email-operator").await.unwrap().spec.unwrap().holder_identity.unwrap();
    let (leader, standby) = if holder == "replica-a" { (&mut a, &mut b) } else { (&mut b, &mut a) };
    assert!(standby.logs().contains("waiting for leadership"));
    assert!(!standby.logs().contains("issuing a new client secret"), "the standby reconciled");
    assert!(leader.logs().contains("issuing a new client secret"));

    // The leader dies; the standby takes over within the lease duration and carries on.
    leader.kill();
    let rotate = serde_json::json!({"metadata": {"annotations": {"connectemail.dev/rotate": "after-failover"}}});
    api.patch("ha", &PatchParams::default(), &Patch::Merge(&rotate)).await.unwrap();
    eventually(Duration::from_secs(60), || ready(api.clone(), Some(first.clone()))).await;
    let new_holder = leases.get("connect-email-operator").await.unwrap().spec.unwrap().holder_identity.unwrap();
    assert_ne!(new_holder, holder);
    assert!(standby.logs().contains("became the leader"));
    assert_eq!(h.sim.applications(TENANT).len(), 1);

    api.delete("ha", &Default::default()).await.unwrap();
    eventually(Duration::from_secs(30), || async {
        if api.get_opt("ha").await.unwrap().is_none() { Ok(()) } else { Err("still there".to_string()) }
    })
    .await;
    standby.kill();
    h.finish().await;
}
