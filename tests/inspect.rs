//! `inspect connect` and `inspect exchange` (the binary) against the simulators: one asset and one
//! mailbox as raw JSON, no secret in the output.

mod support;

use std::process::Stdio;

use connect_email_operator::api::email_channel::ConnectRegion;
use connect_email_operator::connect::api::{ConnectAssets, Org};
use connect_email_sim::{ConnectOptions, ConnectSim, SimOptions};
use serde_json::Value;
use support::sim_client::{self, MAILBOX, OPERATOR, OPERATOR_SECRET, TENANT};

const ORG: &str = "org-inspect";
const TOKEN: &str = "webex-token-for-inspect";
const CLIENT_SECRET: &str = "client-secret-pushed-to-connect";

/// Runs the binary with `args` (and `envs`), returns (success, stdout, stderr).
async fn run(args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_connect-email-operator"))
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("AZURE_FEDERATED_TOKEN_FILE")
        .env_remove("AZURE_CLIENT_CERTIFICATE_PATH")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ca_file(name: &str, pem: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("ceo-inspect-{name}-{}.pem", std::process::id()));
    std::fs::write(&path, pem).unwrap();
    path
}

#[tokio::test]
async fn inspect_connect_prints_the_asset_without_secrets() {
    let sim = ConnectSim::start(ConnectOptions::default()).await.unwrap();
    sim.add_org(ORG, TOKEN);
    let client = sim_client::connect_client(&sim, None);
    let token: secrecy::SecretString = TOKEN.to_string().into();
    let org = Org { region: ConnectRegion::Us, organization_id: ORG, token: &token };
    let settings = sim_client::asset_settings("Support email", MAILBOX, TENANT, CLIENT_SECRET);
    let asset = client.create(&org, &settings).await.unwrap();
    sim.complete_sign_in(&asset.asset_id);
    let ca = ca_file("connect", &sim.ca_pem());
    let token_file = std::env::temp_dir().join(format!("ceo-inspect-token-{}", std::process::id()));
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let (ok, stdout, stderr) = run(
        &[
            "inspect",
            "connect",
            "--region",
            "us",
            "--org",
            ORG,
            "--asset",
            &asset.asset_id,
            "--token-file",
            token_file.to_str().unwrap(),
            "--connect-endpoint",
            &sim.url(),
            "--extra-ca-file",
            ca.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(ok, "{stderr}");
    let printed: Value = serde_json::from_str(&stdout).expect("raw JSON");
    assert_eq!(printed["getAsset"]["assetId"], asset.asset_id.as_str());
    assert_eq!(printed["getAsset"]["emailId"], MAILBOX);
    for secret in [TOKEN, CLIENT_SECRET] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "a secret was printed: {stdout}{stderr}");
    }
    // The token from the environment works too; an unknown asset is an error, not empty output.
    let (ok, _, stderr) = run(
        &[
            "inspect",
            "connect",
            "--region",
            "us",
            "--org",
            ORG,
            "--asset",
            "no-such-asset",
            "--connect-endpoint",
            &sim.url(),
            "--extra-ca-file",
            ca.to_str().unwrap(),
        ],
        &[("CEO_CONNECT_TOKEN", TOKEN)],
    )
    .await;
    assert!(!ok && stderr.contains("no asset no-such-asset") && !stderr.contains(TOKEN), "{stderr}");
}

#[tokio::test]
async fn inspect_exchange_prints_get_mailbox_and_get_casmailbox_without_secrets() {
    let sim = sim_client::microsoft(SimOptions::default()).await;
    sim.exchange().add_mailbox(TENANT, MAILBOX);
    let ca = ca_file("microsoft", &sim.ca_pem());
    let (ok, stdout, stderr) = run(
        &[
            "inspect",
            "exchange",
            "--tenant",
            TENANT,
            "--mailbox",
            MAILBOX,
            "--authority-host",
            &sim.url(),
            "--exchange-endpoint",
            &sim.url(),
            "--extra-ca-file",
            ca.to_str().unwrap(),
        ],
        &[("AZURE_CLIENT_ID", OPERATOR), ("AZURE_CLIENT_SECRET", OPERATOR_SECRET)],
    )
    .await;
    assert!(ok, "{stderr}");
    let printed: Value = serde_json::from_str(&stdout).expect("raw JSON");
    let mailbox = &printed["Get-Mailbox"][0];
    assert!(mailbox["PrimarySmtpAddress"].as_str().is_some_and(|a| a.eq_ignore_ascii_case(MAILBOX)), "{stdout}");
    assert!(printed["Get-CASMailbox"][0].get("SmtpClientAuthenticationDisabled").is_some(), "{stdout}");
    assert!(!stdout.contains(OPERATOR_SECRET) && !stderr.contains(OPERATOR_SECRET));
    assert!(!stdout.contains("eyJ"), "no bearer token printed: {stdout}");
}
