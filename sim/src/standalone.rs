//! The simulators as a standalone process (the `connect-email-sim` binary), for the local demo: one
//! Microsoft simulator (token endpoint, Graph, Exchange Online) and one Webex Connect simulator,
//! seeded with the tenant, mailbox and organisation of `deploy/examples/`. It writes the CA bundle
//! and an environment file for the operator, then serves until stopped.

use std::path::Path;

use crate::connect::{ConnectOptions, ConnectSim};
use crate::microsoft::{AutoForwardingMode, MicrosoftSim, SimOptions};

/// The identities the demo uses (fake; they exist only inside the simulators).
pub const DEMO_TENANT: &str = "11111111-2222-3333-4444-555555555555";
pub const DEMO_MAILBOXES: &[&str] = &["support@contoso.com", "sales@contoso.com", "billing@contoso.com"];
pub const DEMO_OPERATOR_CLIENT_ID: &str = "0e0e0e0e-1111-2222-3333-444444444444";
pub const DEMO_CONNECT_ORG: &str = "0f3c8a55-6b8e-4c0e-9d1c-3d9f0f3f0a11";

/// Running simulators.
pub struct Standalone {
    pub microsoft: MicrosoftSim,
    pub connect: ConnectSim,
}

/// Starts and seeds both simulators, and writes `ca.pem` and `operator.env` into `dir`.
/// Secrets for the demo are generated per run and written only to `operator.env` (mode 0600).
pub async fn start(dir: &Path) -> std::io::Result<Standalone> {
    let microsoft = MicrosoftSim::start(SimOptions::default().tenant(DEMO_TENANT)).await?;
    let connect = ConnectSim::start(ConnectOptions::default().region("us").tenant_host("contoso")).await?;
    let operator_secret = random_token();
    let connect_token = random_token();
    microsoft.add_operator_client_secret(DEMO_TENANT, DEMO_OPERATOR_CLIENT_ID, &operator_secret);
    let exchange = microsoft.exchange();
    for mailbox in DEMO_MAILBOXES {
        exchange.add_mailbox(DEMO_TENANT, mailbox);
    }
    // The demo tenant allows external forwarding (the Default policy's factory value, Automatic,
    // blocks it: `doctor` explains that case).
    exchange.set_outbound_policy_mode(DEMO_TENANT, "Default", AutoForwardingMode::On);
    connect.add_org(DEMO_CONNECT_ORG, &connect_token);

    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("ca.pem"), format!("{}\n{}", microsoft.ca_pem(), connect.ca_pem()))?;
    let env = format!(
        "AZURE_CLIENT_ID={DEMO_OPERATOR_CLIENT_ID}\nAZURE_CLIENT_SECRET={operator_secret}\nCEO_AUTHORITY_HOST={url}\nCEO_GRAPH_ENDPOINT={url}\nCEO_EXCHANGE_ENDPOINT={url}\nCEO_CONNECT_ENDPOINT={connect}\nCEO_EXTRA_CA_FILE={ca}\nDEMO_CONNECT_TOKEN={connect_token}\n",
        url = microsoft.url(),
        connect = connect.url(),
        ca = dir.join("ca.pem").display(),
    );
    let env_path = dir.join("operator.env");
    std::fs::write(&env_path, env)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&env_path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(Standalone { microsoft, connect })
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("system randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
