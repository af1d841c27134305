//! `connect-email-sim`: the Microsoft and Webex Connect simulators as one process, for the local
//! demo (scripts/demo) and the new-user check (scripts/check-install). Writes `ca.pem` and
//! `operator.env` into the state directory, prints the URLs, and serves until Ctrl-C.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "connect-email-sim",
    version,
    about = "Run the Microsoft and Webex Connect simulators (local demo); writes ca.pem and operator.env"
)]
struct Cli {
    /// Directory for ca.pem and operator.env.
    #[arg(long, default_value = "target/demo")]
    state_dir: PathBuf,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async {
        let sims = connect_email_sim::standalone::start(&cli.state_dir).await?;
        println!("microsoft simulator: {}", sims.microsoft.url());
        println!("connect simulator:   {}", sims.connect.url());
        println!("operator settings:   {}", cli.state_dir.join("operator.env").display());
        tokio::signal::ctrl_c().await?;
        Ok(())
    })
}
