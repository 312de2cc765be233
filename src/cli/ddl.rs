//! `dynolake ddl`: the statements that make data queryable in Athena (or Glue).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use arrow::array::{Array, AsArray};

use super::CliResult;
use super::common::{DecodeArgs, SourceArgs};
use crate::ddl::raw::{RawSource, ctas, distinct_partitions_sql, raw_table, raw_view};
use crate::ddl::{DatasetTable, add_partitions, dataset_table, glue_table_input};
use crate::error::Error;
use crate::export;
use crate::schema::Schema;
use crate::schema::names::safe_name;
use crate::store::{Location, LocationKind};
use crate::write::commit;
use crate::write::partition::PartitionSpec;

/// Athena / Glue table definitions for a dataset written by convert, or for a raw export.
///
/// For a dataset: CREATE EXTERNAL TABLE with exact types, PARTITIONED BY and partition
/// projection (or --partitions explicit for ALTER TABLE … ADD PARTITION), or a Glue
/// TableInput with --format glue. For a raw export: the JSON SerDe table, a view that
/// unwraps the descriptors, and with --ctas the statements that convert inside Athena.
///
/// Examples:
///   dynolake ddl s3://lake/orders/ --database analytics
///   dynolake ddl s3://lake/orders/ --format glue > table.json
///   dynolake ddl s3://bucket/exports/ --database raw --ctas --ctas-location s3://lake/orders_ctas/ -p status
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    decode: DecodeArgs,
    /// Table name (default: the dataset folder's or the export's table name, made safe)
    #[arg(long)]
    table: Option<String>,
    #[arg(long)]
    database: Option<String>,
    /// Where Athena should look (default: the location given)
    #[arg(long)]
    location: Option<String>,
    /// projection: partition projection properties; explicit: ALTER TABLE … ADD PARTITION statements
    #[arg(long, value_enum, default_value_t = Partitions::Projection)]
    partitions: Partitions,
    #[arg(long, value_enum, default_value_t = DdlFormat::Athena)]
    format: DdlFormat,
    /// Raw export: also print the CTAS statements that write partitioned Parquet inside Athena
    #[arg(long)]
    ctas: bool,
    /// Raw export, --ctas: where the CTAS writes
    #[arg(long)]
    ctas_location: Option<String>,
    /// Raw export, --ctas: partition columns, as for convert
    #[arg(long = "partition-by", short = 'p')]
    partition_by: Vec<String>,
    /// A prefix with a full export and its incremental exports: print the Athena statements that keep an
    /// Iceberg table at this S3 location current inside Athena (CREATE TABLE from the full export, then one
    /// MERGE INTO per incremental export, reading only its manifest-listed files)
    #[arg(long, value_name = "S3_LOCATION")]
    merge_into: Option<String>,
    /// --merge-into: the key attributes, comma-separated (default: those the change records' Keys name)
    #[arg(long, value_delimiter = ',')]
    key: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Partitions {
    Projection,
    Explicit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DdlFormat {
    Athena,
    Glue,
}

fn url_of(loc: &Location, prefix: &object_store::path::Path) -> String {
    match &loc.kind {
        LocationKind::S3 { bucket } => format!("s3://{bucket}/{prefix}"),
        LocationKind::Local => format!("/{prefix}"),
    }
}

pub fn run(a: Args, rt: &tokio::runtime::Runtime) -> CliResult {
    let loc = rt.block_on(Location::parse(&a.source.src))?;
    if let Some(table) = rt.block_on(crate::delta::open(&loc))? {
        let name = a.table.clone().unwrap_or_else(|| safe_name(loc.file_name().unwrap_or("table")));
        let location = a.location.clone().unwrap_or_else(|| url_of(&loc, &loc.prefix));
        let version = table.version().unwrap_or(0);
        let d = crate::ddl::DeltaTable { database: a.database.as_deref(), table: &name, location: &location, version };
        match a.format {
            DdlFormat::Athena => {
                if !location.starts_with("s3://") {
                    println!("-- LOCATION is local: pass --location s3://… for where Athena will find the table.");
                }
                print!("{}", crate::ddl::delta_table(&d));
            }
            DdlFormat::Glue => {
                println!("{}", serde_json::to_string_pretty(&crate::ddl::delta_glue_table_input(&d)).unwrap())
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let all = rt.block_on(commit::read_commits(&loc))?;
    let commits = commit::live(&all);
    let mut out = String::new();
    if let Some(last) = commits.last() {
        for w in rt.block_on(commit::unfinished(&loc))? {
            eprintln!("warning: {w}");
        }
        let schema = Schema::from_file_str("commit record", &last.schema.to_string())?;
        let partitions: Vec<BTreeMap<String, Option<String>>> =
            commits.iter().flat_map(|c| c.files.iter().map(|f| f.partition.clone())).collect();
        let table = a.table.clone().unwrap_or_else(|| safe_name(loc.file_name().unwrap_or(&last.source.table)));
        let location = a.location.clone().unwrap_or_else(|| url_of(&loc, &loc.prefix));
        let d = DatasetTable {
            database: a.database.as_deref(),
            table: &table,
            location: &location,
            schema: &schema,
            partition_by: &last.partition_by,
            partitions: &partitions,
            projection: a.partitions == Partitions::Projection,
        };
        match a.format {
            DdlFormat::Glue => {
                out.push_str(&format!("{}\n", serde_json::to_string_pretty(&glue_table_input(&d)).unwrap()))
            }
            DdlFormat::Athena => {
                if !location.starts_with("s3://") {
                    out.push_str(
                        "-- LOCATION is local: pass --location s3://… for where Athena will find the files.\n",
                    );
                }
                out.push_str(&dataset_table(&d));
                if a.partitions == Partitions::Explicit && !last.partition_by.is_empty() {
                    out.push_str(&add_partitions(&d));
                }
            }
        }
        print!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    // A raw export.
    if a.format == DdlFormat::Glue {
        return Err(Error::Usage(
            "--format glue is for datasets written by convert; for a raw export use the Athena DDL".into(),
        )
        .into());
    }
    if let Some(iceberg) = &a.merge_into {
        return merge_into(&a, &loc, iceberg, rt);
    }
    let ex = rt.block_on(export::open_at(&loc, a.source.export_id.as_deref()))?;
    if ex.summary.export_type != export::ExportType::FullExport {
        return Err(Error::Usage(format!(
            "export {} is incremental: its data folder is shared by every incremental export under the prefix; \
             raw tables over incremental exports are not supported yet — convert it, or point at a full export",
            ex.id
        ))
        .into());
    }
    let schema = a.decode.schema(&ex, rt, a.source.jobs(), true)?;
    let base = safe_name(ex.table_name());
    let table = a.table.clone().unwrap_or_else(|| format!("{base}_raw"));
    let view = base.clone();
    let data_location = a.location.clone().unwrap_or_else(|| url_of(&loc, &ex.dir.clone().join("data")));
    let export_id = ex.id.clone();
    let src = RawSource {
        database: a.database.as_deref(),
        table: &table,
        data_location: &data_location,
        export_id: &export_id,
        schema: &schema,
        ion: ex.summary.output_format == export::OutputFormat::Ion,
    };
    out.push_str(&raw_table(&src));
    out.push('\n');
    out.push_str(&raw_view(&src, &view));
    if a.ctas {
        let target_loc =
            a.ctas_location.clone().ok_or_else(|| Error::Usage("--ctas needs --ctas-location s3://…".into()))?;
        let specs =
            a.partition_by.iter().map(|p| PartitionSpec::parse(p, &schema)).collect::<crate::Result<Vec<_>>>()?;
        let values = if specs.is_empty() {
            Vec::new()
        } else {
            distinct_partitions(ex, &schema, &specs, a.source.jobs(), a.decode.max_line_bytes, rt)?
        };
        out.push('\n');
        out.push_str(&ctas(&src, &view, &format!("{base}_parquet"), &target_loc, &specs, &values));
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// The distinct partition tuples of an export, computed with dynolake's own SQL engine.
fn distinct_partitions(
    ex: export::Export,
    schema: &Schema,
    specs: &[PartitionSpec],
    jobs: usize,
    max_line_bytes: usize,
    rt: &tokio::runtime::Runtime,
) -> crate::Result<Vec<Vec<Option<String>>>> {
    let ctx = crate::sql::session(jobs);
    let table = crate::sql::ExportTable::new(ex, schema.clone(), jobs).with_max_line_bytes(max_line_bytes);
    ctx.register_table("t", Arc::new(table)).map_err(|e| Error::engine("registering", e))?;
    let sql = distinct_partitions_sql("t", specs, schema);
    let batches = rt
        .block_on(async { ctx.sql(&sql).await?.collect().await })
        .map_err(|e| Error::engine("counting partitions", e))?;
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<arrow::array::ArrayRef> = b
            .columns()
            .iter()
            .map(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8))
            .collect::<Result<_, _>>()
            .map_err(|e| Error::engine("counting partitions", e))?;
        for r in 0..b.num_rows() {
            out.push(
                cols.iter()
                    .map(|c| if c.is_null(r) { None } else { Some(c.as_string::<i32>().value(r).to_string()) })
                    .collect(),
            );
        }
    }
    out.sort();
    Ok(out)
}

/// `--merge-into`: the chain under the prefix (checked as `merge` checks it),
/// and the Athena statements that apply it to an Iceberg table.
fn merge_into(a: &Args, loc: &Location, iceberg: &str, rt: &tokio::runtime::Runtime) -> CliResult {
    use crate::merge::{self, MergeOptions, Start};
    // No destination holds a state: the chain starts at the newest full export.
    let nowhere = tempfile::tempdir().map_err(|e| Error::io("a temporary folder", e))?;
    let none = Location::local(nowhere.path().to_path_buf())?;
    let plan = rt.block_on(merge::plan(loc, &[], &none, crate::write::files::Format::Parquet))?;
    let Start::Export(full) = &plan.start else { unreachable!("no dataset at an empty destination") };
    if full.summary.output_format == export::OutputFormat::Ion {
        return Err(Error::Usage("--merge-into writes statements for DYNAMODB_JSON exports only".into()).into());
    }
    let opts = MergeOptions {
        key: a.key.clone(),
        schema: a.decode.schema.as_deref().map(Schema::load).transpose()?,
        infer: a.decode.infer_options(),
        jobs: a.source.jobs(),
        ..Default::default()
    };
    let key = merge::key_attributes(&plan, &opts, rt)?;
    let schema = match &opts.schema {
        Some(s) => s.clone(),
        None => merge::exact_merged_schema(&plan, &opts, rt)?,
    };
    if let Some(k) = key.iter().find(|k| !schema.fields.iter().any(|f| &f.attribute == *k)) {
        return Err(Error::Usage(format!("key attribute `{k}` is in no item of the exports")).into());
    }
    let bucket_uri = |e: &export::Export, key: &str| -> crate::Result<String> {
        let bucket = e.summary.s3_bucket.as_deref().ok_or_else(|| {
            Error::Usage(format!("export {}: its manifest names no s3Bucket, so its S3 paths are unknown", e.id))
        })?;
        Ok(format!("s3://{bucket}/{key}"))
    };
    let mut exports = Vec::new();
    for e in &plan.changes {
        let files =
            e.files.iter().map(|f| bucket_uri(e, &f.entry.data_file_s3_key)).collect::<crate::Result<Vec<_>>>()?;
        let window = format!(
            "{} .. {}",
            e.summary.export_from_time.as_deref().unwrap_or("?"),
            e.summary.export_to_time.as_deref().unwrap_or("?")
        );
        exports.push((e.id.clone(), window, files));
    }
    let prefix = full.summary.s3_prefix.as_deref().map(|p| format!("{}/", p.trim_matches('/'))).unwrap_or_default();
    let changes_location = bucket_uri(full, &format!("{prefix}AWSDynamoDB/data/"))?;
    let base = safe_name(full.table_name());
    let table = format!("{base}_raw");
    let data_location = a.location.clone().unwrap_or_else(|| url_of(loc, &full.dir.clone().join("data")));
    let iceberg_table = a.table.clone().unwrap_or_else(|| format!("{base}_current"));
    let changes_table = format!("{base}_changes_raw");
    let m = crate::ddl::raw::MergeInto {
        full: RawSource {
            database: a.database.as_deref(),
            table: &table,
            data_location: &data_location,
            export_id: &full.id,
            schema: &schema,
            ion: false,
        },
        view: &base,
        iceberg_table: &iceberg_table,
        iceberg_location: iceberg,
        changes_table: &changes_table,
        changes_location: &changes_location,
        key: &key,
        exports,
    };
    for s in &plan.skipped {
        eprintln!("left out {s}");
    }
    print!("{}", crate::ddl::raw::merge_into(&m));
    Ok(ExitCode::SUCCESS)
}
