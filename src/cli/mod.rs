//! The `dynolake` command line: argument parsing and one file per subcommand.
//!
//! Exit status: 0 success; 1 a data or verification failure (a checksum
//! mismatch, a rejected item, an unreadable file); 2 a usage error (bad
//! arguments, a location that holds no export); 3 the destination is locked
//! by another run; `export watch` adds 4–6 (see its help).

mod common;
mod convert;
mod ddl;
mod export;
mod generate;
mod inspect;
mod merge;
mod recover;
mod scan;
mod schema;
mod sql;
mod stream;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::Error;

/// `--version` also says which inflate the build has (see build.rs).
#[cfg(isal)]
const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\ngunzip: ISA-L");
#[cfg(not(isal))]
const LONG_VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), "\ngunzip: zlib-rs (install libisal-dev and rebuild for ~2x faster gunzip)");

#[derive(Parser)]
#[command(name = "dynolake", version, long_version = LONG_VERSION, about = "Turn DynamoDB exports into analytics-ready data", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Convert(convert::Args),
    Merge(merge::Args),
    Inspect(inspect::Args),
    Schema(schema::Args),
    Sql(sql::Args),
    Ddl(ddl::Args),
    Generate(generate::Args),
    Recover(recover::Args),
    Export(export::Args),
    Scan(scan::Args),
    Stream(stream::Args),
}

/// A failure the CLI reports: the error and its exit status.
pub struct Failure {
    pub error: anyhow::Error,
    pub code: u8,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::Usage(_) | Error::NotFound(_) | Error::Conflict(_) => 2,
            Error::Locked(_) => 3,
            Error::Interrupted(signal) => crate::cancel::exit_code(signal),
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
    let json = match &cli.command {
        Command::Convert(a) => a.json(),
        Command::Merge(a) => a.json(),
        Command::Inspect(a) => a.json,
        Command::Recover(a) => a.json(),
        Command::Export(a) => a.json(),
        Command::Scan(a) => a.json(),
        Command::Stream(a) => a.json(),
        _ => false,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        Command::Convert(a) => convert::run(a, &rt),
        Command::Merge(a) => merge::run(a, &rt),
        Command::Inspect(a) => inspect::run(a, &rt),
        Command::Schema(a) => schema::run(a, &rt),
        Command::Sql(a) => sql::run(a, &rt),
        Command::Ddl(a) => ddl::run(a, &rt),
        Command::Generate(a) => generate::run(a),
        Command::Recover(a) => recover::run(a, &rt),
        Command::Export(a) => export::run(a, &rt),
        Command::Scan(a) => scan::run(a, &rt),
        Command::Stream(a) => stream::run(a, &rt),
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            if is_broken_pipe(&f.error) {
                return ExitCode::SUCCESS;
            }
            let (message, causes) = error_lines(&f.error);
            if json {
                let v = serde_json::json!({ "error": message, "causes": causes, "exit_code": f.code });
                println!("{}", serde_json::to_string_pretty(&v).expect("json"));
            } else {
                eprintln!("error: {message}");
                for cause in causes {
                    eprintln!("  caused by: {cause}");
                }
            }
            ExitCode::from(f.code)
        }
    }
}

/// The error's message and the causes that add something: a cause whose
/// text is already part of what was said (errors that print their source, and
/// sources that wrap the same message again) is left out.
fn error_lines(e: &anyhow::Error) -> (String, Vec<String>) {
    let message = e.to_string();
    let mut said = message.clone();
    let mut causes = Vec::new();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !said.contains(&text) {
            said.push('\n');
            said.push_str(&text);
            causes.push(text);
        }
    }
    (message, causes)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
