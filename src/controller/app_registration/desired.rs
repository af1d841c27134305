//! Desired state of the Entra application and its consent, computed from the spec and the
//! resource service principals read from the tenant. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::Permission;
use crate::api::app_registration::{AzureAppRegistrationSpec, GrantedConsent};
use crate::azure::model::*;

/// A `permissions` entry resolved against its resource service principal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedPermission {
    /// The resource as written in the spec.
    pub resource: String,
    pub resource_sp_id: String,
    pub resource_app_id: String,
    /// (value, app role id) of application permissions.
    pub roles: Vec<(String, String)>,
    /// (value, scope id) of delegated permissions.
    pub scopes: Vec<(String, String)>,
}

/// Resolves permission names against the resource service principals found in the tenant
/// (`resources` maps each spec resource to its service principal, `None` when not found).
/// Errors list every problem with the valid names, so one message tells the user all fixes.
pub fn resolve_permissions(
    permissions: &[Permission],
    resources: &BTreeMap<String, Option<ServicePrincipal>>,
) -> Result<Vec<ResolvedPermission>, String> {
    let mut problems = Vec::new();
    let mut resolved: Vec<ResolvedPermission> = Vec::new();
    for permission in permissions {
        let Some(Some(sp)) = resources.get(&permission.resource) else {
            problems.push(format!(
                "resource {:?} has no service principal in the tenant (use its display name as in Enterprise applications, or its appId)",
                permission.resource
            ));
            continue;
        };
        let entry = match resolved.iter_mut().position(|r| r.resource_sp_id == sp.id) {
            Some(i) => &mut resolved[i],
            None => {
                resolved.push(ResolvedPermission {
                    resource: permission.resource.clone(),
                    resource_sp_id: sp.id.clone(),
                    resource_app_id: sp.app_id.clone(),
                    roles: vec![],
                    scopes: vec![],
                });
                resolved.last_mut().expect("just pushed")
            }
        };
        let roles: Vec<(&str, &str)> = sp
            .app_roles
            .iter()
            .filter(|r| {
                r.is_enabled
                    && (r.allowed_member_types.is_empty() || r.allowed_member_types.iter().any(|t| t == "Application"))
            })
            .filter_map(|r| Some((r.value.as_deref()?, r.id.as_str())))
            .collect();
        let scopes: Vec<(&str, &str)> = sp
            .oauth2_permission_scopes
            .iter()
            .filter(|s| s.is_enabled)
            .filter_map(|s| Some((s.value.as_deref()?, s.id.as_str())))
            .collect();
        for (names, available, kind, out) in [
            (&permission.application, &roles, "an application permission", &mut entry.roles),
            (&permission.delegated, &scopes, "a delegated permission", &mut entry.scopes),
        ] {
            for name in names {
                match available.iter().find(|(value, _)| value == name) {
                    Some((value, id)) => {
                        if !out.iter().any(|(_, existing)| existing == id) {
                            out.push((value.to_string(), id.to_string()));
                        }
                    }
                    None => problems.push(format!(
                        "{name:?} is not {kind} of {}; valid: {}",
                        permission.resource,
                        valid_names(available)
                    )),
                }
            }
        }
    }
    if problems.is_empty() { Ok(resolved) } else { Err(problems.join("; ")) }
}

fn valid_names(available: &[(&str, &str)]) -> String {
    let mut names: Vec<&str> = available.iter().map(|(v, _)| *v).collect();
    names.sort_unstable();
    names.dedup();
    let shown = names.iter().take(25).copied().collect::<Vec<_>>().join(", ");
    if names.len() > 25 { format!("{shown}, … ({} in all)", names.len()) } else { shown }
}

/// The full application body the operator keeps in Entra ID.
pub fn desired_application(
    spec: &AzureAppRegistrationSpec,
    resolved: &[ResolvedPermission],
    notes: String,
) -> ApplicationUpdate {
    let mut required: Vec<RequiredResourceAccess> = resolved
        .iter()
        .map(|r| {
            let mut access: Vec<ResourceAccess> = r
                .roles
                .iter()
                .map(|(_, id)| ResourceAccess { id: id.clone(), kind: "Role".into() })
                .chain(r.scopes.iter().map(|(_, id)| ResourceAccess { id: id.clone(), kind: "Scope".into() }))
                .collect();
            access.sort();
            RequiredResourceAccess { resource_app_id: r.resource_app_id.clone(), resource_access: access }
        })
        .collect();
    required.sort();
    ApplicationUpdate {
        unique_name: None,
        display_name: spec.display_name.clone(),
        sign_in_audience: spec.sign_in_audience.as_str().to_string(),
        web: Web {
            redirect_uris: spec.redirect_uris.clone(),
            implicit_grant_settings: ImplicitGrantSettings {
                enable_access_token_issuance: spec.implicit_grant.access_tokens,
                enable_id_token_issuance: spec.implicit_grant.id_tokens,
            },
        },
        required_resource_access: required,
        notes: Some(notes),
    }
}

/// Fields where the application differs from the desired body (empty: nothing to do). Order of
/// redirect URIs and permissions is ignored so that Graph's own ordering never causes churn.
/// Whether this resource (`namespace/name`, uniqueName `key`) may adopt `app`: never an application
/// another resource of this operator manages (its uniqueName carries another UID), and only one
/// whose owners opted in with the tag `connectemail.dev/adopt:<namespace>/<name>` (only someone
/// with rights on the application can set a tag), until it carries this resource's uniqueName.
pub fn may_adopt(app: &Application, key: &str, namespace: &str, name: &str) -> Result<(), String> {
    if app.unique_name.as_deref() == Some(key) {
        return Ok(());
    }
    if let Some(other) = app.unique_name.as_deref().filter(|u| u.starts_with(super::reconcile::UNIQUE_NAME_PREFIX)) {
        return Err(format!(
            "application {} is managed by another resource of this operator (uniqueName {other}): it cannot be adopted",
            app.app_id
        ));
    }
    let tag = format!("{}{namespace}/{name}", crate::api::ADOPT_TAG_PREFIX);
    if app.tags.contains(&tag) {
        Ok(())
    } else {
        Err(format!(
            "application {} has not opted in to adoption: an owner of the application must add the tag {tag} (Graph: PATCH /applications/{{id}} with tags) before this resource may adopt it",
            app.app_id
        ))
    }
}

pub fn application_drift(observed: &Application, desired: &ApplicationUpdate) -> Vec<&'static str> {
    let mut drift = Vec::new();
    if observed.display_name.as_deref() != Some(desired.display_name.as_str()) {
        drift.push("displayName");
    }
    if observed.sign_in_audience.as_deref() != Some(desired.sign_in_audience.as_str()) {
        drift.push("signInAudience");
    }
    let web = observed.web.clone().unwrap_or_default();
    let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
    if set(&web.redirect_uris) != set(&desired.web.redirect_uris) {
        drift.push("web.redirectUris");
    }
    if web.implicit_grant_settings != desired.web.implicit_grant_settings {
        drift.push("web.implicitGrantSettings");
    }
    let normalize = |v: &[RequiredResourceAccess]| {
        v.iter()
            .filter(|r| !r.resource_access.is_empty())
            .map(|r| (r.resource_app_id.clone(), r.resource_access.iter().cloned().collect::<BTreeSet<_>>()))
            .collect::<BTreeMap<_, _>>()
    };
    if normalize(&observed.required_resource_access) != normalize(&desired.required_resource_access) {
        drift.push("requiredResourceAccess");
    }
    drift
}

/// Changes to admin consent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsentPlan {
    /// (resource SP id, app role id, "Resource/Value")
    pub assign: Vec<(String, String, String)>,
    /// (assignment id, description)
    pub unassign: Vec<(String, String)>,
    /// Delegated grants to create, before any is updated or deleted: a sign-in that works on the
    /// old grant keeps working until its replacement exists.
    pub create_grants: Vec<NewGrant>,
    /// (grant id, scope string)
    pub update_grants: Vec<(String, String)>,
    /// (grant id, description)
    pub delete_grants: Vec<(String, String)>,
    /// What the operator will have granted itself once the plan is applied (for status).
    pub owned_after: Vec<GrantedConsent>,
}

/// A delegated grant to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewGrant {
    pub resource_id: String,
    /// The user it covers (`consentType: Principal`); None: every user (`AllPrincipals`).
    pub principal_id: Option<String>,
    pub scope: String,
}

/// Whom delegated consent is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentFor<'a> {
    /// These users (Entra object IDs): one `Principal` grant per user and resource.
    Users(&'a [String]),
    /// Every user of the tenant: one `AllPrincipals` grant per resource.
    Everyone,
}

impl ConsentPlan {
    /// No change to Entra ID (the ownership record may still change).
    pub fn is_empty(&self) -> bool {
        self.assign.is_empty()
            && self.unassign.is_empty()
            && self.create_grants.is_empty()
            && self.update_grants.is_empty()
            && self.delete_grants.is_empty()
    }

    /// Whether the plan replaces tenant-wide consent by consent for named users.
    pub fn narrows_to_users(&self) -> bool {
        self.create_grants.iter().any(|g| g.principal_id.is_some())
            && self.delete_grants.iter().any(|(_, what)| what.starts_with(EVERY_USER))
    }
}

const EVERY_USER: &str = "every user";

/// A grant's key: (resource service principal, user or None for every user).
type GrantKey = (String, Option<String>);

fn grant_key(g: &OAuth2PermissionGrant) -> Option<GrantKey> {
    match g.consent_type.as_deref() {
        Some("AllPrincipals") => Some((g.resource_id.clone(), None)),
        Some("Principal") => g.principal_id.clone().map(|p| (g.resource_id.clone(), Some(p))),
        _ => None,
    }
}

fn describe(key: &GrantKey) -> String {
    match &key.1 {
        None => format!("{EVERY_USER} on {}", key.0),
        Some(p) => format!("user {p} on {}", key.0),
    }
}

/// Compares desired consent with the app role assignments and the delegated grants of the
/// client service principal, pair by pair. `owned` is what the operator granted itself: `None`
/// for an application it created (all consent on it is the operator's, so grants for anyone the
/// spec does not name — a tenant-wide grant from an earlier version, a user who consented
/// themselves — are withdrawn), the recorded pairs for an adopted one — consent people granted is
/// kept, whether or not the spec asks for it, and only the operator's own pairs are ever withdrawn.
pub fn consent_plan(
    resolved: &[ResolvedPermission],
    consent_for: ConsentFor<'_>,
    assignments: &[AppRoleAssignment],
    grants: &[OAuth2PermissionGrant],
    owned: Option<&[GrantedConsent]>,
) -> ConsentPlan {
    let mut plan = ConsentPlan::default();
    let owned_entry = |resource_id: &str, principal: Option<&str>| {
        owned.and_then(|o| o.iter().find(|g| g.resource_id == resource_id && g.principal_id.as_deref() == principal))
    };
    let ours_role = |resource_id: &str, role_id: &str| {
        owned.is_none() || owned_entry(resource_id, None).is_some_and(|g| g.app_role_ids.iter().any(|r| r == role_id))
    };
    let desired_roles: BTreeSet<(&str, &str)> = resolved
        .iter()
        .flat_map(|r| r.roles.iter().map(move |(_, id)| (r.resource_sp_id.as_str(), id.as_str())))
        .collect();
    let mut owned_after: BTreeMap<GrantKey, GrantedConsent> = BTreeMap::new();
    fn entry(map: &mut BTreeMap<GrantKey, GrantedConsent>, key: &GrantKey) -> GrantedConsent {
        map.remove(key).unwrap_or_else(|| GrantedConsent {
            resource_id: key.0.clone(),
            principal_id: key.1.clone(),
            ..Default::default()
        })
    }
    let mut record = Vec::new();
    for r in resolved {
        for (value, id) in &r.roles {
            let existing = assignments.iter().find(|a| a.resource_id == r.resource_sp_id && &a.app_role_id == id);
            match existing {
                None => {
                    plan.assign.push((r.resource_sp_id.clone(), id.clone(), format!("{}/{value}", r.resource)));
                    record.push((r.resource_sp_id.clone(), id.clone()));
                }
                Some(_) if ours_role(&r.resource_sp_id, id) => record.push((r.resource_sp_id.clone(), id.clone())),
                Some(_) => {}
            }
        }
    }
    for a in assignments {
        if !desired_roles.contains(&(a.resource_id.as_str(), a.app_role_id.as_str()))
            && ours_role(&a.resource_id, &a.app_role_id)
        {
            plan.unassign.push((a.id.clone(), format!("role {} on {}", a.app_role_id, a.resource_id)));
        }
    }
    for (resource_id, role_id) in record {
        let key = (resource_id, None);
        let mut e = entry(&mut owned_after, &key);
        e.app_role_ids.push(role_id);
        owned_after.insert(key, e);
    }
    // Delegated: one grant per (resource, user) — or per resource for every user.
    let principals: Vec<Option<String>> = match consent_for {
        ConsentFor::Users(users) => users.iter().map(|u| Some(u.to_ascii_lowercase())).collect(),
        ConsentFor::Everyone => vec![None],
    };
    let mut keys: BTreeSet<GrantKey> = BTreeSet::new();
    for r in resolved.iter().filter(|r| !r.scopes.is_empty()) {
        keys.extend(principals.iter().map(|p| (r.resource_sp_id.clone(), p.clone())));
    }
    let desired_keys = keys.clone();
    let normalise = |k: GrantKey| (k.0, k.1.map(|p| p.to_ascii_lowercase()));
    keys.extend(grants.iter().filter_map(grant_key).map(normalise));
    for key in keys {
        let want: BTreeSet<String> = if desired_keys.contains(&key) {
            resolved
                .iter()
                .filter(|r| r.resource_sp_id == key.0)
                .flat_map(|r| r.scopes.iter().map(|(v, _)| v.clone()))
                .collect()
        } else {
            BTreeSet::new()
        };
        let mut same = grants.iter().filter(|g| grant_key(g).map(normalise).as_ref() == Some(&key));
        let grant = same.next();
        // Graph keeps one grant per (client, resource, user); extra ones on the operator's own
        // application go (on an adopted one they are people's and stay).
        if owned.is_none() {
            plan.delete_grants.extend(same.map(|g| (g.id.clone(), describe(&key))));
        }
        let existing = grant.map(|g| g.scopes()).unwrap_or_default();
        // Scopes people granted: everything but the operator's own (nothing, on its own app).
        let people: BTreeSet<String> = match owned {
            None => BTreeSet::new(),
            Some(_) => {
                let ours: BTreeSet<String> = owned_entry(&key.0, key.1.as_deref())
                    .map(|g| g.scopes.iter().cloned().collect())
                    .unwrap_or_default();
                existing.difference(&ours).cloned().collect()
            }
        };
        let new: BTreeSet<String> = people.union(&want).cloned().collect();
        let scope = new.iter().cloned().collect::<Vec<_>>().join(" ");
        match grant {
            None if !new.is_empty() => {
                plan.create_grants.push(NewGrant { resource_id: key.0.clone(), principal_id: key.1.clone(), scope })
            }
            None => {}
            // Deleted only when it held nothing but the operator's scopes (an empty grant on an
            // adopted application is a person's, and stays).
            Some(g) if new.is_empty() && (owned.is_none() || !existing.is_empty()) => {
                plan.delete_grants.push((g.id.clone(), describe(&key)))
            }
            Some(_) if new.is_empty() => {}
            Some(g) if new != existing => plan.update_grants.push((g.id.clone(), scope)),
            Some(_) => {}
        }
        let ours: Vec<String> = want.difference(&people).cloned().collect();
        if !ours.is_empty() {
            let mut e = entry(&mut owned_after, &key);
            e.scopes = ours;
            owned_after.insert(key, e);
        }
    }
    plan.owned_after = owned_after.into_values().collect();
    plan
}

/// The default access role: what a user is assigned to on an application that defines no roles.
pub const DEFAULT_ACCESS_ROLE_ID: &str = "00000000-0000-0000-0000-000000000000";

/// Restricting sign-in to the consented users ("Assignment required?" plus their assignments).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AssignmentPlan {
    /// Users to assign, first: the mailbox's user never loses access when assignment turns on.
    pub assign: Vec<String>,
    /// Turn "Assignment required?" on.
    pub require: bool,
    /// (assignment id, principal id) of anyone else, removed last.
    pub unassign: Vec<(String, String)>,
}

impl AssignmentPlan {
    pub fn is_empty(&self) -> bool {
        self.assign.is_empty() && !self.require && self.unassign.is_empty()
    }
}

/// On the operator's own application, when the EntraTenant asks for sign-in by assigned users
/// only: exactly `users` assigned, assignment required. (With the policy off nothing is changed:
/// an assignment requirement already there only restricts more.)
pub fn assignment_plan(users: &[String], required_now: bool, assigned: &[AppRoleAssignment]) -> AssignmentPlan {
    let is_user = |id: &str| users.iter().any(|u| u.eq_ignore_ascii_case(id));
    let assign =
        users.iter().filter(|u| !assigned.iter().any(|a| a.principal_id.eq_ignore_ascii_case(u))).cloned().collect();
    let unassign =
        assigned.iter().filter(|a| !is_user(&a.principal_id)).map(|a| (a.id.clone(), a.principal_id.clone())).collect();
    AssignmentPlan { assign, require: !required_now && !users.is_empty(), unassign }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange() -> ServicePrincipal {
        ServicePrincipal {
            id: "sp-exo".into(),
            app_id: "00000002-0000-0ff1-ce00-000000000000".into(),
            app_owner_organization_id: None,
            display_name: Some("Office 365 Exchange Online".into()),
            app_roles: vec![
                AppRole {
                    id: "role-mail-send".into(),
                    value: Some("Mail.Send".into()),
                    is_enabled: true,
                    allowed_member_types: vec!["Application".into()],
                },
                AppRole {
                    id: "role-smtp-app".into(),
                    value: Some("SMTP.SendAsApp".into()),
                    is_enabled: true,
                    allowed_member_types: vec!["Application".into()],
                },
            ],
            oauth2_permission_scopes: vec![PermissionScope {
                id: "scope-smtp".into(),
                value: Some("SMTP.Send".into()),
                is_enabled: true,
            }],
            app_role_assignment_required: false,
        }
    }

    fn resources() -> BTreeMap<String, Option<ServicePrincipal>> {
        BTreeMap::from([("Office 365 Exchange Online".to_string(), Some(exchange())), ("Nope".to_string(), None)])
    }

    fn permission(resource: &str, application: &[&str], delegated: &[&str]) -> Permission {
        Permission {
            resource: resource.into(),
            application: application.iter().map(|s| s.to_string()).collect(),
            delegated: delegated.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn permissions_resolve_by_name_to_the_tenant_ids() {
        let resolved = resolve_permissions(
            &[permission("Office 365 Exchange Online", &["Mail.Send"], &["SMTP.Send"])],
            &resources(),
        )
        .unwrap();
        assert_eq!(resolved[0].roles, vec![("Mail.Send".to_string(), "role-mail-send".to_string())]);
        assert_eq!(resolved[0].scopes, vec![("SMTP.Send".to_string(), "scope-smtp".to_string())]);
    }

    #[test]
    fn unknown_names_are_reported_with_the_valid_ones() {
        let err = resolve_permissions(
            &[permission("Office 365 Exchange Online", &["Mail.Sendd"], &[]), permission("Nope", &["X"], &[])],
            &resources(),
        )
        .unwrap_err();
        assert!(err.contains("\"Mail.Sendd\" is not an application permission of Office 365 Exchange Online; valid: Mail.Send, SMTP.SendAsApp"), "{err}");
        assert!(err.contains("resource \"Nope\" has no service principal"), "{err}");
    }

    #[test]
    fn consent_adds_what_is_missing_and_removes_only_what_may_be_removed() {
        let resolved = resolve_permissions(
            &[permission("Office 365 Exchange Online", &["Mail.Send"], &["SMTP.Send"])],
            &resources(),
        )
        .unwrap();
        let assignments = vec![AppRoleAssignment {
            id: "a-old".into(),
            principal_id: "client".into(),
            resource_id: "sp-exo".into(),
            app_role_id: "role-smtp-app".into(),
        }];
        let grants = vec![OAuth2PermissionGrant {
            id: "g1".into(),
            client_id: "client".into(),
            resource_id: "sp-exo".into(),
            consent_type: Some("AllPrincipals".into()),
            principal_id: None,
            scope: Some("SMTP.Send offline_access".into()),
        }];
        let plan = consent_plan(&resolved, ConsentFor::Everyone, &assignments, &grants, None);
        assert_eq!(
            plan.assign,
            vec![("sp-exo".into(), "role-mail-send".into(), "Office 365 Exchange Online/Mail.Send".into())]
        );
        assert_eq!(plan.unassign.len(), 1);
        assert_eq!(plan.update_grants, vec![("g1".into(), "SMTP.Send".into())]);
        // Adopted, nothing granted by the operator yet: people's role and scope stay.
        let adopted = consent_plan(&resolved, ConsentFor::Everyone, &assignments, &grants, Some(&[]));
        assert!(adopted.unassign.is_empty());
        assert!(adopted.update_grants.is_empty(), "{adopted:?}");
        assert_eq!(
            adopted.owned_after,
            vec![GrantedConsent {
                resource_id: "sp-exo".into(),
                app_role_ids: vec!["role-mail-send".into()],
                scopes: vec![],
                principal_id: None,
            }]
        );
        // Once the operator recorded offline_access as its own, it may withdraw it.
        let owned = [GrantedConsent {
            resource_id: "sp-exo".into(),
            app_role_ids: vec![],
            scopes: vec!["offline_access".into()],
            principal_id: None,
        }];
        let withdraw = consent_plan(&resolved, ConsentFor::Everyone, &assignments, &grants, Some(&owned));
        assert_eq!(withdraw.update_grants, vec![("g1".into(), "SMTP.Send".into())]);
        let converged = consent_plan(
            &resolved,
            ConsentFor::Everyone,
            &[AppRoleAssignment {
                id: "a".into(),
                principal_id: "client".into(),
                resource_id: "sp-exo".into(),
                app_role_id: "role-mail-send".into(),
            }],
            &[OAuth2PermissionGrant { scope: Some(" SMTP.Send ".into()), ..grants[0].clone() }],
            None,
        );
        assert!(converged.is_empty(), "{converged:?}");
    }

    #[test]
    fn consent_for_one_user_replaces_the_tenant_wide_grant_new_grant_first() {
        let resolved =
            resolve_permissions(&[permission("Office 365 Exchange Online", &[], &["SMTP.Send"])], &resources())
                .unwrap();
        let tenant_wide = OAuth2PermissionGrant {
            id: "g-all".into(),
            client_id: "client".into(),
            resource_id: "sp-exo".into(),
            consent_type: Some("AllPrincipals".into()),
            principal_id: None,
            scope: Some("SMTP.Send".into()),
        };
        let someone_else = OAuth2PermissionGrant {
            id: "g-other".into(),
            consent_type: Some("Principal".into()),
            principal_id: Some("user-b".into()),
            ..tenant_wide.clone()
        };
        let users = vec!["user-a".to_string()];
        let grants = [tenant_wide, someone_else];
        let plan = consent_plan(&resolved, ConsentFor::Users(&users), &[], &grants, None);
        assert_eq!(
            plan.create_grants,
            vec![NewGrant {
                resource_id: "sp-exo".into(),
                principal_id: Some("user-a".into()),
                scope: "SMTP.Send".into()
            }]
        );
        let deleted: Vec<&str> = plan.delete_grants.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(deleted, ["g-all", "g-other"], "every grant for anyone else goes, on the operator's own app");
        assert!(plan.narrows_to_users());
        // Converged: the user's grant alone.
        let mine = OAuth2PermissionGrant { id: "g-a".into(), principal_id: Some("USER-A".into()), ..grants[1].clone() };
        let again = consent_plan(&resolved, ConsentFor::Users(&users), &[], std::slice::from_ref(&mine), None);
        assert!(again.is_empty(), "{again:?}");
        // The mailbox moved to another user: the new grant first, then the old one goes.
        let moved = vec!["user-c".to_string()];
        let plan = consent_plan(&resolved, ConsentFor::Users(&moved), &[], &[mine], None);
        assert_eq!(plan.create_grants[0].principal_id.as_deref(), Some("user-c"));
        assert_eq!(plan.delete_grants.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["g-a"]);
        // On an adopted application a person's grant for someone else stays.
        let adopted = consent_plan(&resolved, ConsentFor::Users(&users), &[], &grants, Some(&[]));
        assert!(adopted.delete_grants.is_empty(), "{adopted:?}");
    }

    #[test]
    fn sign_in_is_restricted_to_the_users_assigned_first_then_required_then_others_removed() {
        let assignment = |id: &str, user: &str| AppRoleAssignment {
            id: id.into(),
            principal_id: user.into(),
            resource_id: "sp".into(),
            app_role_id: DEFAULT_ACCESS_ROLE_ID.into(),
        };
        let users = vec!["user-a".to_string()];
        let plan = assignment_plan(&users, false, &[assignment("x", "user-b")]);
        assert_eq!(plan.assign, ["user-a"]);
        assert!(plan.require);
        assert_eq!(plan.unassign, [("x".to_string(), "user-b".to_string())]);
        let done = assignment_plan(&users, true, &[assignment("y", "USER-A")]);
        assert!(done.is_empty(), "{done:?}");
        // Nobody named: nothing to restrict to (an application nobody may sign in to).
        assert!(!assignment_plan(&[], false, &[]).require);
    }

    #[test]
    fn drift_ignores_ordering_but_sees_real_changes() {
        let spec: AzureAppRegistrationSpec = serde_json::from_value(serde_json::json!({
            "tenantRef": {"name": "t"}, "displayName": "A",
            "redirectUris": ["https://a/callback", "https://b/callback"],
            "implicitGrant": {"accessTokens": true},
            "clientSecret": {"secretName": "s"}
        }))
        .unwrap();
        let desired = desired_application(&spec, &[], "n".into());
        let mut observed = Application {
            id: "o".into(),
            app_id: "a".into(),
            display_name: Some("A".into()),
            sign_in_audience: Some("AzureADMyOrg".into()),
            web: Some(Web {
                redirect_uris: vec!["https://b/callback".into(), "https://a/callback".into()],
                implicit_grant_settings: ImplicitGrantSettings {
                    enable_access_token_issuance: true,
                    enable_id_token_issuance: false,
                },
            }),
            ..Default::default()
        };
        assert!(application_drift(&observed, &desired).is_empty());
        observed.web.as_mut().unwrap().redirect_uris.pop();
        observed.display_name = Some("B".into());
        assert_eq!(application_drift(&observed, &desired), vec!["displayName", "web.redirectUris"]);
    }
}
