//! The `dynolake` command line: argument parsing and one file per subcommand.
//!
//! Exit status: 0 success; 1 a data or verification failure (a checksum
//! mismatch, a rejected item, an unreadable file); 2 a usage error (bad
//! arguments, a location that holds no export).

mod common;
mod convert;
mod ddl;
mod generate;
mod inspect;
mod schema;
mod sql;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::Error;

#[derive(Parser)]
#[command(name = "dynolake", version, about = "Turn DynamoDB exports into analytics-ready data", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Convert(convert::Args),
    Inspect(inspect::Args),
    Schema(schema::Args),
    Sql(sql::Args),
    Ddl(ddl::Args),
    Generate(generate::Args),
}

/// A failure the CLI reports: the error and its exit status.
pub struct Failure {
    pub error: anyhow::Error,
    pub code: u8,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::Usage(_) | Error::NotFound(_) => 2,
            _ => 1,
        };
        Failure { error: e.into(), code }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        match error.downcast::<Error>() {
            Ok(e) => e.into(),
            Err(error) => Failure { error, code: 1 },
        }
    }
}

pub type CliResult = Result<ExitCode, Failure>;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        Command::Convert(a) => convert::run(a, &rt),
        Command::Inspect(a) => inspect::run(a, &rt),
        Command::Schema(a) => schema::run(a, &rt),
        Command::Sql(a) => sql::run(a, &rt),
        Command::Ddl(a) => ddl::run(a, &rt),
        Command::Generate(a) => generate::run(a),
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            if is_broken_pipe(&f.error) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {}", f.error);
            for cause in f.error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(f.code)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
