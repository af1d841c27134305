//! The Argo CD resource customizations in `deploy/argocd/resource_customizations` (Argo CD's own
//! layout: `<group>/<kind>/health.lua` + `health_test.yaml`, `actions/discovery.lua`,
//! `actions/<action>/action.lua` + `actions/action_test.yaml`) run by Argo CD's own Go code
//! (`tests/tools/argocd-lua`, built from the argo-cd Go module by `tests/tools/install-argocd-lua`):
//! argocd-cm.yaml and the Helm values are current, Argo CD's settings manager reads them, and every
//! health and action test passes in Argo CD's Lua sandbox. The scripts name only condition reasons,
//! condition types, modes and annotations the operator really uses.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use connect_email_operator::api::{self, conditions};
use regex::Regex;
use support::repo_root;

fn layout() -> PathBuf {
    repo_root().join("deploy/argocd/resource_customizations").join(api::GROUP)
}

/// Every `.lua` file under `dir`, with the kind folder it belongs to.
fn scripts(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(scripts(&path));
        } else if path.extension().is_some_and(|e| e == "lua") {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn kind_scripts(kind: &str) -> Vec<(PathBuf, String)> {
    let scripts = scripts(&layout().join(kind));
    assert!(!scripts.is_empty(), "no scripts for {kind}");
    scripts.into_iter().map(|p| (p.clone(), std::fs::read_to_string(&p).unwrap())).collect()
}

#[test]
fn argo_cd_runs_every_health_and_action_test() {
    let tool = repo_root().join("target/tools/bin/argocd-lua");
    assert!(tool.exists(), "argocd-lua is not built: run tests/tools/install-argocd-lua (scripts/test does)");
    let output =
        Command::new(tool).arg("test").arg(repo_root().join("deploy/argocd")).output().expect("run argocd-lua");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    println!("{stdout}");
    // Both kinds' health checks and actions ran (a layout that lost a file must not pass quietly).
    for kind in ["EmailChannel", "AzureAppRegistration"] {
        for what in ["health", "discovery", "action"] {
            let line = format!("ok   {}/{kind} {what} ", api::GROUP);
            assert!(stdout.contains(&line), "no {what} test ran for {kind}:\n{stdout}");
        }
    }
}

#[test]
fn the_health_checks_only_name_real_condition_reasons() {
    for kind in ["EmailChannel", "AzureAppRegistration"] {
        let path = layout().join(kind).join("health.lua");
        let text = std::fs::read_to_string(&path).unwrap();
        let table = text.split("local degraded = {").nth(1).unwrap().split('}').next().unwrap();
        for name in table.split(',').map(|e| e.split('=').next().unwrap().trim()).filter(|n| !n.is_empty()) {
            assert!(
                conditions::reason::ALL.contains(&name),
                "{} names {name:?}, which the operator never sets",
                path.display()
            );
        }
    }
}

#[test]
fn the_scripts_only_name_real_condition_types_modes_and_annotations() {
    let annotations = [api::ANNOTATION_ROTATE, api::ANNOTATION_PAUSED, api::ANNOTATION_CONNECT_SECRET_APPLIED];
    let channel_types = {
        use conditions::email_channel::*;
        [
            READY,
            ADMITTED,
            APP_REGISTRATION_READY,
            MAILBOX_CONFIGURED,
            OUTBOUND_FORWARDING_ALLOWED,
            CONNECT_ASSET_SYNCED,
            CONNECT_AUTHORIZED,
            CONNECT_SECRET_OUTDATED,
        ]
    };
    let registration_types = {
        use conditions::app_registration::*;
        [READY, ADMITTED, CREDENTIAL_READY, CONSENT_GRANTED, ROTATING]
    };
    let modes = [api::email_channel::ConnectMode::Manual, api::email_channel::ConnectMode::Api]
        .map(|m| serde_json::to_value(m).unwrap().as_str().unwrap().to_string());
    let annotation = Regex::new(r#""(connectemail\.dev/[^"]*)""#).unwrap();
    let condition_type = Regex::new(r#"\.type == "([^"]*)""#).unwrap();
    let mode = Regex::new(r#"\.mode == "([^"]*)""#).unwrap();
    for (kind, types) in [("EmailChannel", &channel_types[..]), ("AzureAppRegistration", &registration_types[..])] {
        for (path, text) in kind_scripts(kind) {
            let path = path.display();
            for name in annotation.captures_iter(&text).map(|c| c[1].to_string()) {
                assert!(
                    annotations.contains(&name.as_str()),
                    "{path} names annotation {name:?}, which the operator never reads"
                );
            }
            for name in condition_type.captures_iter(&text).map(|c| c[1].to_string()) {
                assert!(
                    types.contains(&name.as_str()),
                    "{path} names condition type {name:?}, which a {kind} never has"
                );
            }
            for name in mode.captures_iter(&text).map(|c| c[1].to_string()) {
                assert!(modes.contains(&name), "{path} names Connect mode {name:?}; the modes are {modes:?}");
            }
        }
    }
    // Each action writes the annotation the operator reads for it.
    for (kind, action, annotation) in [
        ("AzureAppRegistration", "rotate", api::ANNOTATION_ROTATE),
        ("AzureAppRegistration", "pause", api::ANNOTATION_PAUSED),
        ("AzureAppRegistration", "resume", api::ANNOTATION_PAUSED),
        ("EmailChannel", "pause", api::ANNOTATION_PAUSED),
        ("EmailChannel", "resume", api::ANNOTATION_PAUSED),
        ("EmailChannel", "acknowledge", api::ANNOTATION_CONNECT_SECRET_APPLIED),
    ] {
        let path = layout().join(kind).join("actions").join(action).join("action.lua");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            text.contains(&format!("obj.metadata.annotations[\"{annotation}\"]")),
            "{} does not set {annotation}",
            path.display()
        );
    }
}

#[test]
fn the_kustomization_ships_the_generated_argocd_cm() {
    let dir = repo_root().join("deploy/argocd");
    let kustomization: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap()).unwrap();
    assert_eq!(kustomization["resources"], serde_json::json!(["argocd-cm.yaml"]), "{kustomization}");
    assert_eq!(kustomization["namespace"], "argocd");
}
