//! Reads what the trust boundary needs (the EntraTenant named by a resource, the labels of the
//! resource's namespace) and asks [`crate::policy`] whether the resource is admitted. Kubernetes
//! reads only: nothing here calls Microsoft or Webex.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

use super::{Context, Error};
use crate::api::{Cloud, EntraTenant, TenantReference};
use crate::policy::{self, Refusal};

/// An EntraTenant that admits a resource's namespace.
#[derive(Clone, Debug)]
pub struct Tenant {
    /// The EntraTenant's name.
    pub name: String,
    pub spec: crate::api::EntraTenantSpec,
}

impl Tenant {
    pub fn tenant_id(&self) -> &str {
        &self.spec.tenant_id
    }

    pub fn cloud(&self) -> Cloud {
        self.spec.cloud
    }
}

/// The EntraTenant `reference` names, if it exists and admits `namespace`.
pub async fn tenant(
    ctx: &Context,
    namespace: &str,
    reference: &TenantReference,
) -> Result<Result<Tenant, Refusal>, Error> {
    let tenants: Api<EntraTenant> = Api::all(ctx.client.clone());
    let Some(object) = tenants.get_opt(&reference.name).await? else {
        return Ok(Err(Refusal {
            rule: "tenantRef",
            message: format!(
                "EntraTenant {} does not exist: ask the cluster administrator for the name of the EntraTenant your namespace may use (kubectl get entratenants)",
                reference.name
            ),
        }));
    };
    let labels = namespace_labels(ctx, namespace).await?;
    Ok(policy::admit_namespace(&reference.name, &object.spec, namespace, &labels)
        .map(|()| Tenant { name: reference.name.clone(), spec: object.spec }))
}

async fn namespace_labels(ctx: &Context, namespace: &str) -> Result<BTreeMap<String, String>, Error> {
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    Ok(namespaces.get_opt(namespace).await?.and_then(|n| n.metadata.labels).unwrap_or_default())
}
