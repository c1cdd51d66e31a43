//! `podid`: EKS Pod Identity and IRSA, self-hosted. This binary is the composition root: it
//! parses the command line and calls into the library crates.

mod policy;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// podid: EKS Pod Identity and IRSA on any Kubernetes, with IAM and STS decisions that match AWS.
///
/// Exit codes: 0 success (valid, allowed, all cases passed); 1 the answer is no (invalid policy,
/// denied request, failing case); 2 the question could not be asked (bad usage, unreadable or
/// malformed input).
#[derive(Debug, Parser)]
#[command(name = "podid", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate, lint and simulate IAM policies: the decisions AWS would make, and why.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
}

/// The exit codes, documented in `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Everything asked for is true.
    Success,
    /// The answer is no.
    No,
    /// The question could not be asked.
    Error,
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        match status {
            Status::Success => ExitCode::SUCCESS,
            Status::No => ExitCode::from(1),
            Status::Error => ExitCode::from(2),
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            return if usage {
                Status::Error
            } else {
                Status::Success
            }
            .into();
        }
    };
    let result = match cli.command {
        Command::Policy(command) => policy::run(command),
    };
    match result {
        Ok(status) => status.into(),
        // A reader that stopped reading (`podid ... | head`) is not an error worth a message.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            Status::Success.into()
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            Status::Error.into()
        }
    }
}
