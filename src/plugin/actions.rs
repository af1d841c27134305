//! `rotate`, `ack`, `pause`, `resume`: each sets or removes one annotation with a JSON merge patch
//! of `metadata.annotations` only, so nothing else on the object changes.

use std::fmt::Debug;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::status::registration_of;
use super::{FIELD_MANAGER, Failure, Io, Kind, Selection, Target, exit};
use crate::api::email_channel::ConnectMode;
use crate::api::{
    ANNOTATION_CONNECT_SECRET_APPLIED, ANNOTATION_PAUSED, ANNOTATION_ROTATE, AzureAppRegistration, EmailChannel,
};
use crate::controller::app_registration::secret::ANNOTATION_KEY_ID;

/// An object an action applies to.
enum Selected {
    Channel(Box<EmailChannel>),
    Registration(Box<AzureAppRegistration>),
}

/// The objects `selection` names: one by name, or every one of a kind (with a label selector),
/// in the namespace or in all namespaces.
async fn select(client: &kube::Client, namespace: &str, selection: &Selection) -> Result<Vec<Selected>, Failure> {
    let many = selection.all || selection.selector.is_some();
    if selection.all_namespaces && !many {
        return Err(Failure::Usage("-A/--all-namespaces needs --all or -l SELECTOR".into()));
    }
    if !many {
        let Some(text) = &selection.target else {
            return Err(Failure::Usage("give KIND/NAME or NAME, or a KIND with --all or -l SELECTOR".into()));
        };
        let target = Target::parse(text)?;
        let channels: Api<EmailChannel> = Api::namespaced(client.clone(), namespace);
        let registrations: Api<AzureAppRegistration> = Api::namespaced(client.clone(), namespace);
        if target.kind != Some(Kind::AzureAppRegistration)
            && let Some(c) = channels.get_opt(&target.name).await?
        {
            return Ok(vec![Selected::Channel(Box::new(c))]);
        }
        if target.kind != Some(Kind::EmailChannel)
            && let Some(r) = registrations.get_opt(&target.name).await?
        {
            return Ok(vec![Selected::Registration(Box::new(r))]);
        }
        let what = match target.kind {
            Some(k) => format!("{} {:?}", k.name(), target.name),
            None => format!("no EmailChannel or AzureAppRegistration named {:?}", target.name),
        };
        return Err(Failure::NotFound(format!("{what} not found in namespace {namespace}")));
    }
    let kind = match &selection.target {
        None => Kind::AzureAppRegistration,
        Some(text) => Kind::parse(text).ok_or_else(|| {
            Failure::Usage(format!(
                "with --all or -l give only a kind (emailchannels or azureappregistrations), not {text:?}"
            ))
        })?,
    };
    if selection.all && selection.selector.is_some() {
        return Err(Failure::Usage("give either --all or -l SELECTOR".into()));
    }
    let mut params = ListParams::default();
    if let Some(s) = &selection.selector {
        params = params.labels(s);
    }
    let where_ =
        if selection.all_namespaces { "in any namespace".to_string() } else { format!("in namespace {namespace}") };
    let found: Vec<Selected> = match kind {
        Kind::EmailChannel => {
            let api: Api<EmailChannel> = scoped(client, namespace, selection.all_namespaces);
            api.list(&params).await?.items.into_iter().map(|c| Selected::Channel(Box::new(c))).collect()
        }
        Kind::AzureAppRegistration => {
            let api: Api<AzureAppRegistration> = scoped(client, namespace, selection.all_namespaces);
            api.list(&params).await?.items.into_iter().map(|r| Selected::Registration(Box::new(r))).collect()
        }
    };
    if found.is_empty() {
        let matching = selection.selector.as_deref().map(|s| format!(" matching {s}")).unwrap_or_default();
        return Err(Failure::NotFound(format!("no {} found {where_}{matching}", kind.name())));
    }
    Ok(found)
}

fn scoped<K>(client: &kube::Client, namespace: &str, all: bool) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    if all { Api::all(client.clone()) } else { Api::namespaced(client.clone(), namespace) }
}

/// Sets (`Some`) or removes (`None`) one annotation; nothing else is sent.
async fn annotate<K>(api: &Api<K>, name: &str, key: &str, value: Option<&str>) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let patch = json!({"metadata": {"annotations": {key: value}}});
    api.patch(
        name,
        &PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() },
        &Patch::Merge(&patch),
    )
    .await
}

fn display(kind: Kind, namespace: &str, name: &str, all_namespaces: bool) -> String {
    if all_namespaces {
        format!("{namespace}/{}/{name}", kind.resource())
    } else {
        format!("{}/{name}", kind.resource())
    }
}

/// Prints `e` and returns the worse exit code.
fn report(io: &mut Io<'_>, worst: i32, e: Failure) -> i32 {
    let _ = writeln!(io.err, "error: {e}");
    worst.max(e.code())
}

/// A new value for `connectemail.dev/rotate`: the current time, unique at nanosecond precision.
pub fn rotate_value(previous: Option<&str>) -> String {
    let mut now = jiff::Timestamp::now();
    while previous == Some(now.to_string().as_str()) {
        now += jiff::SignedDuration::from_nanos(1);
    }
    now.to_string()
}

/// `rotate`: a new `connectemail.dev/rotate` value on each selected registration (a channel's:
/// the one it uses).
pub async fn rotate(
    client: &kube::Client,
    namespace: &str,
    selection: &Selection,
    io: &mut Io<'_>,
) -> Result<i32, Failure> {
    let selected = select(client, namespace, selection).await?;
    let mut targets: Vec<(String, String)> = Vec::new();
    let mut worst = exit::OK;
    for s in selected {
        let (ns, name) = match s {
            Selected::Registration(r) => (r.namespace().unwrap_or_default(), r.name_any()),
            Selected::Channel(c) => (c.namespace().unwrap_or_default(), registration_of(&c)),
        };
        if !targets.contains(&(ns.clone(), name.clone())) {
            targets.push((ns, name));
        }
    }
    for (ns, name) in targets {
        let api: Api<AzureAppRegistration> = Api::namespaced(client.clone(), &ns);
        let current = match api.get_opt(&name).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                let e = Failure::NotFound(format!("AzureAppRegistration {name:?} not found in namespace {ns}"));
                worst = report(io, worst, e);
                continue;
            }
            Err(e) => {
                worst = report(io, worst, e.into());
                continue;
            }
        };
        let value = rotate_value(current.annotations().get(ANNOTATION_ROTATE).map(String::as_str));
        match annotate(&api, &name, ANNOTATION_ROTATE, Some(&value)).await {
            Ok(_) => writeln!(
                io.out,
                "{} rotation requested ({ANNOTATION_ROTATE}={value})",
                display(Kind::AzureAppRegistration, &ns, &name, selection.all_namespaces)
            )?,
            Err(e) => worst = report(io, worst, e.into()),
        }
    }
    Ok(worst)
}

/// `pause` (`paused: true`) or `resume` (annotation removed) on each selected object.
pub async fn pause(
    client: &kube::Client,
    namespace: &str,
    selection: &Selection,
    pause: bool,
    io: &mut Io<'_>,
) -> Result<i32, Failure> {
    let selected = select(client, namespace, selection).await?;
    let mut worst = exit::OK;
    for s in selected {
        let (kind, ns, name, annotations) = match &s {
            Selected::Channel(c) => {
                (Kind::EmailChannel, c.namespace().unwrap_or_default(), c.name_any(), c.annotations().clone())
            }
            Selected::Registration(r) => {
                (Kind::AzureAppRegistration, r.namespace().unwrap_or_default(), r.name_any(), r.annotations().clone())
            }
        };
        let shown = display(kind, &ns, &name, selection.all_namespaces);
        let is_paused = annotations.get(ANNOTATION_PAUSED).is_some_and(|v| v == "true");
        let value = if pause { Some("true") } else { None };
        if pause == is_paused && (pause || !annotations.contains_key(ANNOTATION_PAUSED)) {
            writeln!(io.out, "{shown} already {}", if pause { "paused" } else { "not paused" })?;
            continue;
        }
        let result = match kind {
            Kind::EmailChannel => {
                annotate(&Api::<EmailChannel>::namespaced(client.clone(), &ns), &name, ANNOTATION_PAUSED, value)
                    .await
                    .map(|_| ())
            }
            Kind::AzureAppRegistration => {
                annotate(&Api::<AzureAppRegistration>::namespaced(client.clone(), &ns), &name, ANNOTATION_PAUSED, value)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) if pause => {
                writeln!(
                    io.out,
                    "{shown} paused ({ANNOTATION_PAUSED}=true): the operator leaves external systems alone"
                )?;
                if kind == Kind::EmailChannel
                    && let Selected::Channel(c) = &s
                {
                    writeln!(
                        io.out,
                        "  its AzureAppRegistration {} still rotates its secret; pause azureappregistration/{} too to stop that",
                        registration_of(c),
                        registration_of(c)
                    )?;
                }
            }
            Ok(()) => writeln!(io.out, "{shown} resumed ({ANNOTATION_PAUSED} removed)")?,
            Err(e) => worst = report(io, worst, e.into()),
        }
    }
    Ok(worst)
}

/// `ack`: Manual mode, the person entered the current secret in Connect.
pub async fn ack(
    client: &kube::Client,
    namespace: &str,
    channel: &str,
    expected: Option<&str>,
    yes: bool,
    io: &mut Io<'_>,
) -> Result<i32, Failure> {
    let channels: Api<EmailChannel> = Api::namespaced(client.clone(), namespace);
    let Some(ch) = channels.get_opt(channel).await? else {
        return Err(Failure::NotFound(format!("EmailChannel {channel:?} not found in namespace {namespace}")));
    };
    if ch.spec.connect.mode == ConnectMode::Api {
        return Err(Failure::Usage(format!(
            "EmailChannel {channel} is in Api mode: the operator pushes every new secret to Connect itself, there is nothing to acknowledge"
        )));
    }
    let registration_name = registration_of(&ch);
    let registrations: Api<AzureAppRegistration> = Api::namespaced(client.clone(), namespace);
    let Some(registration) = registrations.get_opt(&registration_name).await? else {
        return Err(Failure::NotFound(format!(
            "EmailChannel {channel} uses AzureAppRegistration {registration_name}, which does not exist in namespace {namespace}"
        )));
    };
    let status = registration.status.clone().unwrap_or_default();
    let Some(current) = status.credential.as_ref().filter(|c| c.verified_at.is_some()) else {
        return Err(Failure::NotDone(format!(
            "AzureAppRegistration {registration_name} has no verified client secret yet: wait for it (kubectl connectemail status emailchannel/{channel} -n {namespace}), then run ack again"
        )));
    };
    let key = current.key_id.as_str();
    let secret_name = &registration.spec.client_secret.secret_name;
    // Metadata only: which key the Secret holds, never its value.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let stored = secrets
        .get_metadata_opt(secret_name)
        .await?
        .and_then(|m| m.metadata.annotations.and_then(|a| a.get(ANNOTATION_KEY_ID).cloned()));
    if stored.as_deref() != Some(key) {
        return Err(Failure::NotDone(format!(
            "Secret {secret_name} holds key {}, not the verified key {key}: a rotation is under way; wait and run ack again",
            stored.as_deref().unwrap_or("(none)")
        )));
    }
    if let Some(expected) = expected
        && expected != key
    {
        return Err(Failure::NotDone(format!(
            "the current verified key of AzureAppRegistration {registration_name} is {key}, not {expected}: enter the client secret now in Secret {secret_name} and acknowledge {key}"
        )));
    }
    let applied = ch.annotations().get(ANNOTATION_CONNECT_SECRET_APPLIED);
    if applied.map(String::as_str) == Some(key) {
        writeln!(io.out, "{}/{channel} already acknowledged key {key}", Kind::EmailChannel.resource())?;
        return Ok(exit::OK);
    }
    writeln!(io.out, "EmailChannel {namespace}/{channel} (Manual mode), AzureAppRegistration {registration_name}:")?;
    writeln!(
        io.out,
        "  current client secret: key ID {key}, verified, expires {} (Secret {secret_name}, key client-secret)",
        current.not_after.0
    )?;
    writeln!(io.out, "  Connect holds now:     {}", applied.map(String::as_str).unwrap_or("(nothing confirmed yet)"))?;
    writeln!(
        io.out,
        "Acknowledge only if Webex Connect → Assets → Apps → {} holds this key's secret.",
        ch.spec.connect.asset_name
    )?;
    if !yes {
        let Some(tty) = io.tty.as_deref_mut() else {
            return Err(Failure::Usage(format!(
                "stdin is not a terminal: to acknowledge without a prompt pass --yes (with --key-id {key} to be sure of the key)"
            )));
        };
        write!(io.out, "Set {ANNOTATION_CONNECT_SECRET_APPLIED}={key} on emailchannel/{channel}? [y/N] ")?;
        io.out.flush()?;
        let mut answer = String::new();
        tty.read_line(&mut answer)?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Err(Failure::NotDone("not acknowledged: nothing changed".into()));
        }
    }
    annotate(&channels, channel, ANNOTATION_CONNECT_SECRET_APPLIED, Some(key)).await?;
    writeln!(
        io.out,
        "{}/{channel} acknowledged key {key} ({ANNOTATION_CONNECT_SECRET_APPLIED}); the operator records it on AzureAppRegistration {registration_name} and then revokes the previous key",
        Kind::EmailChannel.resource()
    )?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotate_value_is_a_timestamp_never_equal_to_the_previous_one() {
        let first = rotate_value(None);
        assert!(first.parse::<jiff::Timestamp>().is_ok(), "{first}");
        let second = rotate_value(Some(&first));
        assert_ne!(first, second);
    }
}
