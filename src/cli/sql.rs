//! `dynolake sql`: ask an export or a dataset questions, in SQL.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::SessionContext;
use datafusion_cli::print_format::PrintFormat;
use datafusion_cli::print_options::{MaxRows, PrintOptions};

use super::CliResult;
use crate::error::Error;
use crate::sql::{Registered, SqlOptions, TableKind, register_table, session};

/// SQL over DynamoDB exports (decoded on the fly) and datasets written by convert.
///
/// Each TABLE is a location, optionally named: an export (its folder, or a prefix
/// holding AWSDynamoDB/), a dataset written by `dynolake convert`, or any Parquet
/// folder; `name=location` picks the table name (default: the export's table name,
/// or the dataset folder's name, made safe). Without -e or -f, an interactive shell
/// (\d lists tables, \d NAME describes one, \q quits).
///
/// Examples:
///   dynolake sql examples/orders -e 'SELECT status, count(*), sum(amount) FROM orders GROUP BY status'
///   dynolake sql examples/orders lake=/tmp/orders-parquet -f sql/join_export_and_dataset.sql
///   dynolake sql s3://bucket/exports/ -e 'SELECT * FROM orders LIMIT 10' --format csv
///   dynolake sql examples/orders -e 'SELECT * FROM orders' --format parquet -o /tmp/all.parquet
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Tables: [name=]location
    tables: Vec<String>,
    /// Run this statement and exit (repeatable)
    #[arg(short = 'e', long = "execute")]
    execute: Vec<String>,
    /// Run the statements in this file and exit (repeatable)
    #[arg(short = 'f', long = "file")]
    file: Vec<PathBuf>,
    /// Apply this schema file to raw exports (as convert does)
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Which export to read when a location holds several
    #[arg(long)]
    export_id: Option<String>,
    /// Infer a raw export's schema from its first N items, and use it as it is (values that do not fit go to
    /// the catch-all column _extra)
    #[arg(long)]
    sample: Option<u64>,
    /// With -e or -f and no --schema: run each query with the schema of a raw export's first N items, check on
    /// the same read that every value the query decoded fits it, and only if not infer the exact schema and run
    /// the query again. Exact schemas are cached per export (see DYNOLAKE_CACHE_DIR), so later queries skip this.
    #[arg(long, default_value_t = 50_000, value_name = "N")]
    first_items: u64,
    /// Refuse raw-export lines longer than this many bytes, naming the file and line
    #[arg(long, default_value_t = crate::schema::infer::DEFAULT_MAX_LINE_BYTES, value_name = "BYTES")]
    max_line_bytes: usize,
    /// Output format
    #[arg(long, value_enum, default_value_t = OutFormat::Table)]
    format: OutFormat,
    /// Write the result here instead of stdout (with --format csv, json, ndjson or parquet)
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Rows shown in table output (0: all)
    #[arg(long, default_value_t = 0)]
    max_rows: usize,
    /// Worker threads (default: one per core)
    #[arg(long, short = 'j')]
    jobs: Option<usize>,
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutFormat {
    Table,
    Csv,
    Json,
    Ndjson,
    Parquet,
}

pub fn run(a: Args, rt: &tokio::runtime::Runtime) -> CliResult {
    let jobs = a.jobs.unwrap_or_else(crate::pipeline::default_jobs).max(1);
    let ctx = session(jobs);
    let opts = SqlOptions {
        schema_file: a.schema.clone(),
        export_id: a.export_id.clone(),
        sample: a.sample,
        map_threshold: None,
        jobs,
        max_line_bytes: a.max_line_bytes,
        first_items: None,
    };
    let interactive = a.execute.is_empty() && a.file.is_empty();
    // Provisional schemas need the result held until it is checked: statements run here (not in the
    // shell), printed results are collected first, files written aside and renamed.
    let checked = !interactive;
    let table_opts = SqlOptions { first_items: checked.then_some(a.first_items), ..opts.clone() };
    let mut tables: Vec<Registered> = Vec::new();
    for spec in &a.tables {
        let r = register_table(&ctx, spec, &table_opts, rt)?;
        let (name, kind) = (r.name.clone(), r.kind.clone());
        tables.push(r);
        if let TableKind::Dataset { unfinished, .. } = &kind {
            for w in unfinished {
                eprintln!("warning: {w}");
            }
        }
        if interactive && !a.quiet {
            let what = match kind {
                TableKind::Export { export_id } => format!("DynamoDB export {export_id}"),
                TableKind::Delta { version } => format!("Delta table, version {version}"),
                TableKind::Dataset { partitions, .. } if partitions.is_empty() => "dataset".to_string(),
                TableKind::Dataset { partitions, .. } | TableKind::Parquet { partitions } if !partitions.is_empty() => {
                    format!("Parquet, partitioned by {}", partitions.join(", "))
                }
                _ => "Parquet".to_string(),
            };
            eprintln!("table {name}: {what} at {}", spec.rsplit_once('=').map_or(spec.as_str(), |(_, l)| l));
        }
    }
    let mut statements = a.execute.clone();
    for f in &a.file {
        let text = std::fs::read_to_string(f).map_err(|e| Error::io(f.display().to_string(), e))?;
        statements.extend(split_statements(&text));
    }
    if interactive {
        let mut print = print_options(&a, PrintFormat::Table);
        rt.block_on(datafusion_cli::exec::exec_from_repl(&ctx, &mut print))
            .map_err(|e| Error::Usage(format!("the interactive shell failed: {e}")))?;
        return Ok(ExitCode::SUCCESS);
    }
    for sql in statements {
        let r = if a.output.is_some() || a.format == OutFormat::Parquet {
            write_checked(&ctx, &sql, &a, &mut tables, &opts, rt)
        } else {
            let format = match a.format {
                OutFormat::Table => PrintFormat::Table,
                OutFormat::Csv => PrintFormat::Csv,
                OutFormat::Json => PrintFormat::Json,
                OutFormat::Ndjson | OutFormat::Parquet => PrintFormat::NdJson,
            };
            let print = print_options(&a, format);
            if tables.iter().any(|t| t.provisional.is_some()) {
                run_checked(&ctx, &sql, &print, &mut tables, &opts, a.quiet, rt)
            } else {
                rt.block_on(datafusion_cli::exec::exec_from_commands(&ctx, vec![sql.clone()], &print))
                    .map_err(|e| explain(&ctx, e))
            }
        };
        r?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Run `sql` over tables some of which have provisional schemas: collect the
/// result (as the shell does before printing), print it if every provisional
/// table says its scans were exact, else make those tables exact and run again.
fn run_checked(
    ctx: &SessionContext,
    sql: &str,
    print: &PrintOptions,
    tables: &mut [Registered],
    opts: &SqlOptions,
    quiet: bool,
    rt: &tokio::runtime::Runtime,
) -> crate::Result<()> {
    use futures::StreamExt;
    reset(tables);
    let started = std::time::Instant::now();
    let max_rows = match print.maxrows {
        MaxRows::Unlimited => usize::MAX,
        MaxRows::Limited(n) => n,
    };
    let collected = rt.block_on(async {
        let df = ctx.sql(sql).await?;
        let plan = df.create_physical_plan().await?;
        let schema = plan.schema();
        let mut stream = datafusion::physical_plan::execute_stream(plan, ctx.task_ctx())?;
        let (mut batches, mut rows) = (Vec::new(), 0usize);
        while let Some(b) = stream.next().await {
            let b = b?;
            if rows < max_rows.saturating_add(b.num_rows()) {
                batches.push(b.clone());
            }
            rows += b.num_rows();
        }
        Ok::<_, datafusion::error::DataFusionError>((schema, batches, rows))
    });
    let failed = collected.as_ref().err().map(|e| e.to_string());
    if !make_exact_where_needed(tables, failed.as_deref(), quiet, ctx, opts, rt)? {
        let (schema, batches, rows) = collected.map_err(|e| explain(ctx, e))?;
        let format = ctx.task_ctx().session_config().options().format.clone();
        return print.print_batches(schema, &batches, started, rows, &format).map_err(|e| explain(ctx, e));
    }
    rt.block_on(datafusion_cli::exec::exec_from_commands(ctx, vec![sql.to_string()], print))
        .map_err(|e| explain(ctx, e))
}

fn print_options(a: &Args, format: PrintFormat) -> PrintOptions {
    PrintOptions {
        format,
        quiet: a.quiet || !a.execute.is_empty() || !a.file.is_empty(),
        maxrows: if a.max_rows == 0 { MaxRows::Unlimited } else { MaxRows::Limited(a.max_rows) },
        color: false,
        instrumented_registry: Arc::new(Default::default()),
    }
}

/// `-o FILE` over tables some of which may have provisional schemas: the
/// result is written beside FILE and renamed onto it once every provisional
/// table says its scans were exact; otherwise those tables are made exact
/// and the query runs again (see [`run_checked`]).
fn write_checked(
    ctx: &SessionContext,
    sql: &str,
    a: &Args,
    tables: &mut [Registered],
    opts: &SqlOptions,
    rt: &tokio::runtime::Runtime,
) -> crate::Result<()> {
    let out = a.output.as_ref().ok_or_else(|| Error::Usage("--format parquet needs -o FILE".into()))?;
    if !tables.iter().any(|t| t.provisional.is_some()) {
        return write_result(ctx, sql, a, out, rt);
    }
    reset(tables);
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let aside = out.with_file_name(format!(".{name}.dynolake-{}", std::process::id()));
    let written = write_result(ctx, sql, a, &aside, rt);
    let failed = written.as_ref().err().map(|e| e.to_string());
    if !make_exact_where_needed(tables, failed.as_deref(), a.quiet, ctx, opts, rt)? {
        if let Err(e) = written {
            let _ = std::fs::remove_file(&aside);
            return Err(e);
        }
        return std::fs::rename(&aside, out)
            .map_err(|e| Error::io(format!("moving the result to {}", out.display()), e));
    }
    let _ = std::fs::remove_file(&aside);
    write_result(ctx, sql, a, out, rt)
}

/// Before a statement: the provisional tables forget what earlier scans saw.
fn reset(tables: &[Registered]) {
    for (p, _) in tables.iter().filter_map(|t| t.provisional.as_ref()) {
        p.reset();
    }
}

/// After a statement ran over provisional tables (`failed`: its error, if
/// any): make exact each table whose scans were not, or whose first items
/// lack a column the query named, saying why. True when any was: the
/// statement must run again.
fn make_exact_where_needed(
    tables: &mut [Registered],
    failed: Option<&str>,
    quiet: bool,
    ctx: &SessionContext,
    opts: &SqlOptions,
    rt: &tokio::runtime::Runtime,
) -> crate::Result<bool> {
    let mut retry = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let Some((p, _)) = &t.provisional else { continue };
        if let Err(why) = p.verdict() {
            retry.push((i, why));
        } else if failed.is_some_and(|e| e.contains("No field named")) {
            // A column the first items do not have may still be in the export.
            retry.push((i, "a column the query names is not among the first items' attributes".to_string()));
        }
    }
    for (i, why) in &retry {
        if !quiet {
            eprintln!("{}: {why}; inferring the exact schema and running the query again", tables[*i].name);
        }
        tables[*i].make_exact(ctx, opts, rt)?;
    }
    Ok(!retry.is_empty())
}

fn write_result(
    ctx: &SessionContext,
    sql: &str,
    a: &Args,
    out: &std::path::Path,
    rt: &tokio::runtime::Runtime,
) -> crate::Result<()> {
    let path = out.to_str().ok_or_else(|| Error::Usage("the output path is not UTF-8".into()))?;
    rt.block_on(async {
        let df = ctx.sql(sql).await.map_err(|e| explain(ctx, e))?;
        let opts = DataFrameWriteOptions::new().with_single_file_output(true);
        let r = match a.format {
            OutFormat::Parquet => df.write_parquet(path, opts, None).await,
            OutFormat::Csv | OutFormat::Table => df.write_csv(path, opts, None).await,
            OutFormat::Json | OutFormat::Ndjson => df.write_json(path, opts, None).await,
        };
        r.map(|_| ()).map_err(|e| explain(ctx, e))
    })
}

/// DataFusion's message, plus the table names when a table is unknown.
fn explain(ctx: &SessionContext, e: datafusion::error::DataFusionError) -> Error {
    let msg = e.to_string();
    // A failure of the data (checksum, decoding) is not a usage error: exit 1.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(ours) = s.downcast_ref::<Error>()
            && !matches!(ours, Error::Usage(_) | Error::NotFound(_))
        {
            return Error::Verify(ours.to_string());
        }
        source = s.source();
    }
    if msg.contains("not found") && msg.to_lowercase().contains("table") {
        let mut names: Vec<String> =
            ctx.catalog("datafusion").and_then(|c| c.schema("public")).map(|s| s.table_names()).unwrap_or_default();
        names.sort();
        let list = if names.is_empty() { "none (pass a location as an argument)".into() } else { names.join(", ") };
        return Error::Usage(format!("{msg}; the tables are: {list}"));
    }
    Error::Usage(msg)
}

/// Split a SQL file into statements at `;` outside quotes and comments.
pub fn split_statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, '-') if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        cur.push('\n');
                        break;
                    }
                }
            }
            (None, ';') => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
            }
            (None, c) => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}
