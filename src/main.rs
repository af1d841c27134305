//! Command-line wiring only; everything else lives in the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use connect_email_operator::api;

#[derive(Parser)]
#[command(
    name = "connect-email-operator",
    version,
    about = "Webex Connect email channels with Office 365 OAuth, as Kubernetes resources"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD into a directory.
    Crds {
        /// Directory to write `<plural>.<group>.yaml` files into (created if missing).
        #[arg(long)]
        output_dir: Option<PathBuf>,
    },
    /// Print the version of the operator and of the Kubernetes API it is built against.
    Version,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crds { output_dir: None } => {
            for crd in api::crds() {
                print!("---\n{}", api::crd_yaml(&crd));
            }
        }
        Command::Crds { output_dir: Some(dir) } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for crd in api::crds() {
                let path = dir.join(api::crd_file_name(&crd));
                std::fs::write(&path, api::crd_yaml(&crd)).with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
        Command::Version => {
            println!("connect-email-operator {}", env!("CARGO_PKG_VERSION"));
            println!(
                "kubernetes api {} (k8s-openapi 0.29)",
                connect_email_operator::KUBERNETES_API
            );
        }
    }
    Ok(())
}
