//! `dynolake schema`: the inferred schema, readable, or as an editable file.

use std::path::PathBuf;
use std::process::ExitCode;

use super::CliResult;
use super::common::{DecodeArgs, SourceArgs, print_table};
use crate::error::Error;
use crate::schema::{ColumnType, Field, Schema};

/// Infer an export's schema: every attribute, its column type, and the source types seen.
///
/// Examples:
///   dynolake schema examples/orders
///   dynolake schema examples/orders -o schemas/orders.json
///   dynolake schema s3://bucket/exports/ --sample 10000
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    decode: DecodeArgs,
    /// Write the schema file here (edit it, then pass it with --schema)
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Print the schema file to stdout instead of the table
    #[arg(long)]
    json: bool,
    #[arg(long, short = 'q')]
    quiet: bool,
}

pub fn run(a: Args, rt: &tokio::runtime::Runtime) -> CliResult {
    let export = a.source.open(rt)?;
    let inferred = match &a.decode.schema {
        Some(p) => {
            crate::pipeline::Inferred { schema: Schema::load(p)?, malformed: vec![], malformed_lines: 0, over_cap: 0 }
        }
        None => a.decode.infer(&export, rt, a.source.jobs(), a.quiet || a.json)?,
    };
    let schema = &inferred.schema;
    if let Some(p) = &a.output {
        if let Some(parent) = p.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent.display().to_string(), e))?;
        }
        std::fs::write(p, schema.to_file_string()).map_err(|e| Error::io(p.display().to_string(), e))?;
        if !a.quiet {
            eprintln!("wrote {}", p.display());
        }
    }
    if a.json {
        print!("{}", schema.to_file_string());
    } else if a.output.is_none() || !a.quiet {
        print!("{}", render(schema));
    }
    if inferred.over_cap > 0 {
        eprintln!(
            "note: {} value(s) of attributes beyond --max-columns ({}) are left to the {} column",
            inferred.over_cap, a.decode.max_columns, schema.catch_all
        );
    }
    if inferred.malformed_lines > 0 {
        for r in &inferred.malformed {
            eprintln!("malformed: {}: {}", r.position, r.reason);
        }
        let more = inferred.malformed_lines - inferred.malformed.len() as u64;
        if more > 0 {
            eprintln!("malformed: … and {more} more line(s)");
        }
        return Err(Error::Verify(format!(
            "{} line(s) could not be read and are not in the schema above (its item count leaves them out)",
            inferred.malformed_lines
        ))
        .into());
    }
    Ok(ExitCode::SUCCESS)
}

/// The human-readable table: one row per column and nested field.
pub fn render(schema: &Schema) -> String {
    let mut rows = Vec::new();
    for f in &schema.fields {
        rows_of(f, "", "", &mut rows);
    }
    rows.push(vec![
        schema.catch_all.clone(),
        "(attributes not in the schema)".into(),
        "json".into(),
        "yes".into(),
        String::new(),
        String::new(),
    ]);
    let mut out = format!(
        "{} items ({}), {} columns\n",
        schema.items,
        schema.inferred_from.as_deref().unwrap_or("from file"),
        schema.fields.len() + 1
    );
    out.push_str(&print_table(&["COLUMN", "ATTRIBUTE", "TYPE", "NULLABLE", "SEEN", "NOTE"], &rows));
    out
}

fn rows_of(f: &Field, col_prefix: &str, attr_prefix: &str, rows: &mut Vec<Vec<String>>) {
    let seen = f.seen.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
    let column = format!("{col_prefix}{}", f.column);
    let attribute = format!("{attr_prefix}{}", f.attribute);
    rows.push(vec![
        column.clone(),
        attribute.clone(),
        f.ty.to_string(),
        if f.nullable { "yes" } else { "no" }.into(),
        seen,
        f.note.clone().unwrap_or_default(),
    ]);
    let (inner, suffix) = match &f.ty {
        ColumnType::Struct(fs) => (Some(fs), ""),
        ColumnType::List(t) | ColumnType::Set(t) => (t.struct_fields(), "[]"),
        ColumnType::Map(t) => (t.struct_fields(), "{}"),
        _ => (None, ""),
    };
    if let Some(fs) = inner {
        for c in fs {
            rows_of(c, &format!("{column}{suffix}."), &format!("{attribute}{suffix}."), rows);
        }
    }
}
