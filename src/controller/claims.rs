//! One owner per mailbox, cluster-wide. The first EmailChannel that configures a mailbox claims
//! it with a Lease in the operator's own namespace (where namespace users cannot write), holding
//! the channel's UID; a channel in any namespace that finds the mailbox claimed by another live
//! channel is refused with `MailboxClaimed` before any external call. The claim is released when
//! its channel is deleted (after the mailbox settings are restored) or moves to another mailbox,
//! and a claim whose channel no longer exists (deleted while the operator was not running) is
//! taken over.
//!
//! Nothing here trusts what a namespace user writes: the holder is the apiserver-assigned UID,
//! and a stale claim is recognised only by reading the channel the claim names.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};
use kube::{Resource, ResourceExt};

use super::{Context, Error};
use crate::api::EmailChannel;

/// Label on every claim: the claiming channel's UID (to find its claims when it moves).
pub const LABEL_CLAIM_HOLDER: &str = "connectemail.dev/mailbox-claim-holder";
/// Annotations on every claim: the mailbox and the channel (`namespace/name`).
pub const ANNOTATION_CLAIM_MAILBOX: &str = "connectemail.dev/mailbox";
pub const ANNOTATION_CLAIM_CHANNEL: &str = "connectemail.dev/channel";

/// The Lease name of a mailbox's claim: a digest of the address in lower case (Exchange addresses
/// are case-insensitive), so any spelling of one mailbox meets the same claim.
pub fn claim_name(mailbox: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, mailbox.to_ascii_lowercase().as_bytes());
    let hex: String = digest.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("mailbox-{hex}")
}

/// Whether this channel may manage its mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    Ours,
    /// Another live channel holds it (`namespace/name`).
    Taken {
        by: String,
    },
}

/// Claims `mailbox` for `channel`, or says who holds it.
pub async fn claim(ctx: &Context, channel: &EmailChannel, mailbox: &str) -> Result<Claim, Error> {
    let uid = channel.uid().ok_or(Error::MissingObjectKey("uid"))?;
    let key = (uid.clone(), mailbox.to_ascii_lowercase());
    if ctx.holds_claim(&key) {
        return Ok(Claim::Ours);
    }
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), ctx.azure.operator_namespace());
    let name = claim_name(mailbox);
    let channel_ref = format!("{}/{}", channel.namespace().unwrap_or_default(), channel.name_any());
    let wanted = Lease {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(BTreeMap::from([(LABEL_CLAIM_HOLDER.to_string(), uid.clone())])),
            annotations: Some(BTreeMap::from([
                (ANNOTATION_CLAIM_MAILBOX.to_string(), mailbox.to_ascii_lowercase()),
                (ANNOTATION_CLAIM_CHANNEL.to_string(), channel_ref.clone()),
            ])),
            ..Default::default()
        },
        spec: Some(LeaseSpec { holder_identity: Some(uid.clone()), ..Default::default() }),
    };
    match leases.create(&PostParams::default(), &wanted).await {
        Ok(_) => {
            release_others(ctx, &uid, &name).await?;
            ctx.claim_held(key, true);
            return Ok(Claim::Ours);
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {
            return Err(Error::InvalidSpec(format!(
                "the operator's namespace {} does not exist: mailbox claims are Leases there (run the operator in its namespace, or set POD_NAMESPACE / --operator-namespace to one that exists)",
                ctx.azure.operator_namespace()
            )));
        }
        Err(e) => return Err(e.into()),
    }
    let existing = leases.get(&name).await?;
    let holder = existing.spec.as_ref().and_then(|s| s.holder_identity.clone()).unwrap_or_default();
    if holder == uid {
        ctx.claim_held(key, true);
        return Ok(Claim::Ours);
    }
    let by = existing.annotations().get(ANNOTATION_CLAIM_CHANNEL).cloned().unwrap_or_default();
    if holder_is_alive(ctx, &by, &holder).await? {
        return Ok(Claim::Taken { by });
    }
    // The holder is gone: take the claim over, on exactly the version read (two channels
    // taking over at once: one wins, the other sees a conflict and reads again next time).
    let mut replacement = wanted;
    replacement.metadata.resource_version = existing.resource_version();
    leases.replace(&name, &PostParams::default(), &replacement).await?;
    release_others(ctx, &uid, &name).await?;
    ctx.claim_held(key, true);
    Ok(Claim::Ours)
}

/// Whether the channel a claim names still exists with the UID the claim holds.
async fn holder_is_alive(ctx: &Context, channel_ref: &str, uid: &str) -> Result<bool, Error> {
    let Some((ns, name)) = channel_ref.split_once('/') else { return Ok(false) };
    let channels: Api<EmailChannel> = Api::namespaced(ctx.client.clone(), ns);
    match channels.get_opt(name).await {
        Ok(channel) => Ok(channel.is_some_and(|c| c.meta().uid.as_deref() == Some(uid))),
        // A namespace this operator may not read (namespaced RBAC): it cannot prove the holder
        // gone, so the claim stands.
        Err(kube::Error::Api(e)) if e.code == 403 => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Releases every claim of the channel `uid` except `keep` (its mailbox changed).
async fn release_others(ctx: &Context, uid: &str, keep: &str) -> Result<(), Error> {
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), ctx.azure.operator_namespace());
    let mine = leases.list(&ListParams::default().labels(&format!("{LABEL_CLAIM_HOLDER}={uid}"))).await?;
    for lease in mine.items.iter().filter(|l| l.name_any() != keep) {
        delete_if_held(&leases, lease, uid).await?;
    }
    ctx.forget_claims(uid);
    Ok(())
}

/// Releases the channel's claims (its deletion has restored the mailbox).
pub async fn release(ctx: &Context, channel: &EmailChannel) -> Result<(), Error> {
    let Some(uid) = channel.uid() else { return Ok(()) };
    release_others(ctx, &uid, "").await
}

async fn delete_if_held(leases: &Api<Lease>, lease: &Lease, uid: &str) -> Result<(), Error> {
    if lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) != Some(uid) {
        return Ok(());
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions { resource_version: lease.resource_version(), uid: None }),
        ..Default::default()
    };
    match leases.delete(&lease.name_any(), &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_mailbox_meets_the_same_claim() {
        assert_eq!(claim_name("Support@Contoso.com"), claim_name("support@contoso.com"));
        assert_ne!(claim_name("support@contoso.com"), claim_name("sales@contoso.com"));
        assert!(claim_name("x@y.z").len() <= 63);
    }
}
