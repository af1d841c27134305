//! `kubectl connectemail`: day-two commands that need only Kubernetes access (no Azure or Webex
//! credential), in the spirit of cert-manager's `cmctl status` / `renew` and Crossplane's
//! `crossplane beta trace`. Shipped as the binary `kubectl-connectemail`, so kubectl finds it as
//! a plugin on the `PATH`.
//!
//! - [`status`]: the tree EmailChannel → AzureAppRegistration → Secret / Entra application,
//!   mailbox, Connect asset, with conditions, the key IDs in use and who has not acknowledged the
//!   current key, and the next step a person must take. It reads the Secret's metadata only
//!   (`connectemail.dev/key-id` and friends), never its data.
//! - [`actions`]: `rotate`, `ack`, `pause`, `resume`: each sets or removes exactly one annotation
//!   with a JSON merge patch.
//!
//! The entry point is [`run`] (arguments, an optional client, the output streams and the
//! terminal to confirm on), so tests drive the plugin in-process against a real apiserver.

pub mod actions;
pub mod status;

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Exit codes a script can rely on.
pub mod exit {
    /// Done; for `status`: every node is Ready.
    pub const OK: i32 = 0;
    /// `status`: something is not Ready. `ack`: nothing was changed (declined, or the key is not
    /// the expected one or not verified yet).
    pub const NOT_READY: i32 = 1;
    /// Usage error, or the object was not found.
    pub const USAGE: i32 = 2;
    /// The Kubernetes API failed (unreachable, forbidden, conflict…).
    pub const API: i32 = 3;
}

/// The field manager of every write the plugin makes.
pub const FIELD_MANAGER: &str = "kubectl-connectemail";

const EXIT_CODES: &str = "\
Exit codes:
  0  ok (status: every node is Ready)
  1  status: something is not Ready; ack: nothing changed (declined, unexpected or unverified key)
  2  usage error, or the object was not found
  3  Kubernetes API error (unreachable, forbidden, conflict)

Needs only Kubernetes access: get/list on emailchannels and azureappregistrations, get on the
Secrets they name (metadata only is read), patch for rotate, ack, pause and resume.";

#[derive(Parser, Debug)]
#[command(
    name = "kubectl-connectemail",
    bin_name = "kubectl connectemail",
    version,
    about = "Day-two commands for connect-email-operator's EmailChannels and AzureAppRegistrations",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Namespace of the objects (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    /// Path to the kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    context: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show a channel's or registration's tree, key IDs, acknowledgements and the next step.
    ///
    /// The tree EmailChannel → AzureAppRegistration → Entra application and Secret, mailbox and
    /// Connect asset, each with its conditions; the key IDs in use (from the Secret's annotations,
    /// never its data), previous keys and the consumers that have not acknowledged the current
    /// key; and what a person must do next.
    #[command(visible_alias = "trace", after_help = EXIT_CODES)]
    Status {
        /// KIND/NAME (emailchannel/NAME, azureappregistration/NAME) or a channel NAME (an
        /// AzureAppRegistration of that name when there is no such channel).
        target: String,
        /// Output format: wide (every field and condition message), json or yaml.
        #[arg(short = 'o', long)]
        output: Option<Output>,
    },
    /// Force a new client secret (annotation connectemail.dev/rotate).
    ///
    /// Sets connectemail.dev/rotate to a new value (the current time) on AzureAppRegistrations;
    /// for an EmailChannel, on the registration it uses.
    #[command(after_help = EXIT_CODES)]
    Rotate(Selection),
    /// Manual mode: confirm the current client secret is entered in Webex Connect.
    ///
    /// Shows the registration's current verified key ID, asks for confirmation, then sets
    /// connectemail.dev/connect-secret-applied on the channel to that key ID.
    #[command(after_help = EXIT_CODES)]
    Ack {
        /// The EmailChannel (NAME or emailchannel/NAME).
        channel: String,
        /// The key ID you expect to acknowledge; refused when the current key differs.
        #[arg(long)]
        key_id: Option<String>,
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Stop the operator touching external systems (annotation connectemail.dev/paused).
    ///
    /// Sets connectemail.dev/paused: "true"; the operator still reports status.
    #[command(after_help = EXIT_CODES)]
    Pause(Selection),
    /// Let the operator act again (removes connectemail.dev/paused).
    #[command(after_help = EXIT_CODES)]
    Resume(Selection),
}

/// Which objects an action applies to.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct Selection {
    /// KIND/NAME, a NAME (an EmailChannel, else an AzureAppRegistration), or only a KIND
    /// (emailchannels, azureappregistrations; default azureappregistrations) with --all or -l.
    pub target: Option<String>,
    /// Every object of the kind in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Objects of the kind matching this label selector, e.g. team=support.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// In every namespace (with --all or -l).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// `-o` values.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Wide,
    Json,
    Yaml,
}

/// Where the plugin writes, and the terminal it confirms on.
pub struct Io<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    /// The terminal to read a confirmation from; `None` when stdin is not a terminal.
    pub tty: Option<&'a mut dyn BufRead>,
}

/// Why a command did not succeed, with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    NotFound(String),
    /// Nothing was changed (ack declined or refused); the message says why.
    #[error("{0}")]
    NotDone(String),
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    /// No Kubernetes configuration was found (no kubeconfig, not in a cluster).
    #[error("no Kubernetes configuration: {0}")]
    Unreachable(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Failure {
    pub fn code(&self) -> i32 {
        match self {
            Self::Usage(_) | Self::NotFound(_) => exit::USAGE,
            Self::NotDone(_) => exit::NOT_READY,
            Self::Api(kube::Error::Api(e)) if e.code == 404 => exit::USAGE,
            Self::Api(_) | Self::Unreachable(_) | Self::Io(_) => exit::API,
        }
    }
}

/// Runs the plugin with `args` (the first is the program name, as `std::env::args_os`). With
/// `client` unset, connects with `--kubeconfig` / `--context`, KUBECONFIG or the in-cluster
/// configuration. Returns the exit code.
pub async fn run<I, T>(args: I, client: Option<kube::Client>, io: &mut Io<'_>) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let text = e.render().to_string();
            return if e.use_stderr() {
                let _ = write!(io.err, "{text}");
                exit::USAGE
            } else {
                let _ = write!(io.out, "{text}");
                exit::OK
            };
        }
    };
    match execute(cli, client, io).await {
        Ok(code) => code,
        Err(failure) => {
            let _ = writeln!(io.err, "error: {failure}");
            failure.code()
        }
    }
}

async fn connect(cli: &Cli) -> Result<kube::Client, Failure> {
    let options = KubeConfigOptions { context: cli.context.clone(), ..KubeConfigOptions::default() };
    let config = match &cli.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| Failure::Usage(format!("reading kubeconfig {}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| Failure::Usage(format!("kubeconfig {}: {e}", path.display())))?
        }
        None if cli.context.is_some() => {
            kube::Config::from_kubeconfig(&options).await.map_err(|e| Failure::Usage(format!("kubeconfig: {e}")))?
        }
        None => kube::Config::infer().await.map_err(|e| Failure::Unreachable(e.to_string()))?,
    };
    kube::Client::try_from(config).map_err(Failure::Api)
}

async fn execute(cli: Cli, client: Option<kube::Client>, io: &mut Io<'_>) -> Result<i32, Failure> {
    let client = match client {
        Some(c) => c,
        None => connect(&cli).await?,
    };
    let namespace = cli.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    match cli.command {
        Command::Status { target, output } => {
            let target = Target::parse(&target)?;
            let report = status::gather(&client, &namespace, &target, jiff::Timestamp::now()).await?;
            match output {
                Some(Output::Json) => {
                    serde_json::to_writer_pretty(&mut *io.out, &report).map_err(std::io::Error::from)?;
                    writeln!(io.out)?;
                }
                Some(Output::Yaml) => {
                    let text = serde_yaml::to_string(&report).map_err(std::io::Error::other)?;
                    write!(io.out, "{text}")?;
                }
                Some(Output::Wide) => write!(io.out, "{}", status::render(&report, true))?,
                None => write!(io.out, "{}", status::render(&report, false))?,
            }
            Ok(if report.ready { exit::OK } else { exit::NOT_READY })
        }
        Command::Rotate(selection) => actions::rotate(&client, &namespace, &selection, io).await,
        Command::Pause(selection) => actions::pause(&client, &namespace, &selection, true, io).await,
        Command::Resume(selection) => actions::pause(&client, &namespace, &selection, false, io).await,
        Command::Ack { channel, key_id, yes } => {
            let target = Target::parse(&channel)?;
            if target.kind == Some(Kind::AzureAppRegistration) {
                return Err(Failure::Usage(
                    "ack takes an EmailChannel: the channel records which key its Connect asset holds".into(),
                ));
            }
            actions::ack(&client, &namespace, &target.name, key_id.as_deref(), yes, io).await
        }
    }
}

/// The two kinds the plugin works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    EmailChannel,
    AzureAppRegistration,
}

impl Kind {
    /// Accepts what kubectl accepts: singular, plural, short name, with or without the group.
    pub fn parse(text: &str) -> Option<Self> {
        let lower = text.to_ascii_lowercase();
        let bare = lower.strip_suffix(".connectemail.dev").unwrap_or(&lower);
        match bare {
            "emailchannel" | "emailchannels" | "emailch" => Some(Self::EmailChannel),
            "azureappregistration" | "azureappregistrations" | "azapp" => Some(Self::AzureAppRegistration),
            _ => None,
        }
    }

    /// As kubectl prints a resource: `emailchannel.connectemail.dev`.
    pub fn resource(self) -> &'static str {
        match self {
            Self::EmailChannel => "emailchannel.connectemail.dev",
            Self::AzureAppRegistration => "azureappregistration.connectemail.dev",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::EmailChannel => "EmailChannel",
            Self::AzureAppRegistration => "AzureAppRegistration",
        }
    }
}

/// `KIND/NAME` or a bare `NAME` (kind unknown: a channel first, then a registration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: Option<Kind>,
    pub name: String,
}

impl Target {
    pub fn parse(text: &str) -> Result<Self, Failure> {
        let (kind, name) = match text.split_once('/') {
            Some((kind, name)) => {
                let kind = Kind::parse(kind).ok_or_else(|| {
                    Failure::Usage(format!(
                        "unknown kind {kind:?}: use emailchannel/NAME or azureappregistration/NAME (or emailch, azapp)"
                    ))
                })?;
                (Some(kind), name)
            }
            None => (None, text),
        };
        if name.is_empty() || name.contains('/') {
            return Err(Failure::Usage(format!("{text:?} is not KIND/NAME or NAME")));
        }
        Ok(Self { kind, name: name.to_string() })
    }
}

/// The binary's `main`: parses `std::env::args_os`, connects, runs, returns the exit code.
pub fn main() -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return exit::API;
        }
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let stdin = std::io::stdin();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let interactive = std::io::IsTerminal::is_terminal(&stdin);
    let mut input = stdin.lock();
    let mut io = Io { out: &mut out, err: &mut err, tty: if interactive { Some(&mut input) } else { None } };
    runtime.block_on(run(std::env::args_os(), None, &mut io))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_only(args: &[&str]) -> (i32, String, String) {
        // Parsing fails or prints help before any client is needed.
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut io = Io { out: &mut out, err: &mut err, tty: None };
        let code = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run(
            std::iter::once("kubectl-connectemail").chain(args.iter().copied()),
            None,
            &mut io,
        ));
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[test]
    fn help_documents_the_exit_codes_and_exits_zero() {
        let (code, out, _) = parse_only(&["--help"]);
        assert_eq!(code, exit::OK);
        assert!(out.contains("Exit codes:") && out.contains("3  Kubernetes API error"), "{out}");
        assert!(out.contains("kubectl connectemail") && out.contains("[alias: trace]"), "{out}");
        let (code, out, _) = parse_only(&["trace", "--help"]);
        assert_eq!(code, exit::OK);
        assert!(out.contains("Exit codes:") && out.contains("Usage: kubectl connectemail status"), "{out}");
    }

    #[test]
    fn usage_errors_exit_two() {
        assert_eq!(parse_only(&["status"]).0, exit::USAGE);
        assert_eq!(parse_only(&["status", "x", "-o", "table"]).0, exit::USAGE);
        assert_eq!(parse_only(&["frobnicate"]).0, exit::USAGE);
    }

    #[test]
    fn kinds_and_targets_parse_as_kubectl_spells_them() {
        for k in ["emailchannel", "EmailChannels", "emailch", "emailchannels.connectemail.dev"] {
            assert_eq!(Kind::parse(k), Some(Kind::EmailChannel), "{k}");
        }
        for k in ["azureappregistration", "azureappregistrations", "azapp", "AzureAppRegistration.connectemail.dev"] {
            assert_eq!(Kind::parse(k), Some(Kind::AzureAppRegistration), "{k}");
        }
        assert_eq!(Kind::parse("secret"), None);
        assert_eq!(Target::parse("support").unwrap(), Target { kind: None, name: "support".into() });
        assert_eq!(
            Target::parse("azapp/support").unwrap(),
            Target { kind: Some(Kind::AzureAppRegistration), name: "support".into() }
        );
        assert_eq!(Target::parse("pod/x").unwrap_err().code(), exit::USAGE);
        assert_eq!(Target::parse("emailchannel/").unwrap_err().code(), exit::USAGE);
        assert_eq!(Target::parse("a/b/c").unwrap_err().code(), exit::USAGE);
    }
}
