//! `merge --format delta`: the first run creates the Delta table from the
//! merged state (one commit); later runs apply only the new incremental
//! exports as one `MERGE` transaction — delete where the latest change
//! removed the key, update where it changed it, insert where the table lacks
//! it — which rewrites only the files holding touched keys. Each commit
//! records what the table holds ([`crate::delta::TableState`]).

use std::time::Instant;

use deltalake::protocol::SaveMode;

use super::{
    MergeOptions, MergeSummary, Plan, Start, advance_for_streams, columns, exact_merged_schema, iso, key_attributes,
    key_columns, latest_changes, merged_query, merged_schema, q, register_base, register_changes,
};
use crate::convert::{SpillReport, peak_memory};
use crate::delta::{self, TableState};
use crate::error::{Error, Result};
use crate::schema::Schema;
use crate::store::Location;
use crate::write::partition::{PartitionSpec, Transform};

/// What the Delta table at `dest` holds, if dynolake's merge wrote it.
pub(super) async fn previous_state(dest: &Location) -> Result<Option<TableState>> {
    let Some(table) = delta::open(dest).await? else { return Ok(None) };
    match delta::state(&table, dest).await? {
        Some(s) => Ok(Some(s)),
        None => Err(Error::Usage(format!(
            "{} holds a Delta table that no dynolake merge wrote; merge into another destination",
            dest.url
        ))),
    }
}

pub(super) fn run(
    mut plan: Plan,
    dest: &Location,
    opts: &MergeOptions,
    rt: &tokio::runtime::Runtime,
    started: Instant,
    base_desc: String,
) -> Result<MergeSummary> {
    let key = key_attributes(&plan, opts, rt)?;
    // The table's schema is fixed when it is created: infer it exactly (no second read can follow a commit).
    let schema: Schema = match (&plan.start, &opts.schema) {
        (Start::Export(_), None) => exact_merged_schema(&plan, opts, rt)?,
        _ => merged_schema(&plan, opts, rt, None)?.0,
    };
    let key_cols = key_columns(&schema, &key)?;
    let mut partition_cols = Vec::new();
    for p in &opts.partition_by {
        let spec = PartitionSpec::parse(p, &schema)?;
        if spec.transform != Transform::Identity {
            return Err(Error::Usage(format!(
                "`{p}`: a Delta table is partitioned by columns, not by time transforms; partition by a column"
            )));
        }
        partition_cols.push(spec.source_column);
    }
    let ctx = crate::sql::session(opts.jobs);
    let unions = register_changes(&ctx, &plan, &schema, opts.jobs)?;
    advance_for_streams(&ctx, rt, &mut plan, &unions)?;
    let state = TableState {
        merge: plan.state_after(&key),
        source: plan.source(),
        schema: serde_json::from_str(&schema.to_file_string()).expect("schema is JSON"),
    };

    let change_records: u64 = plan.changes.iter().map(|e| e.summary.item_count).sum();
    // The same Parquet compression as every other output (delta-rs would write snappy).
    let props = deltalake::parquet::file::properties::WriterProperties::builder()
        .set_compression(crate::write::files::parse_compression(&opts.compression)?)
        .build();
    let table = rt.block_on(delta::at(dest))?;
    let (table, files_written) = match &plan.start {
        Start::Delta { .. } => {
            // The latest change per key, removals included, merged by key in one transaction.
            let sql = format!(
                "WITH latest AS ({}) SELECT {}, _op FROM latest",
                latest_changes(&unions, &key_cols),
                columns(&schema)
            );
            let source = rt.block_on(ctx.sql(&sql)).map_err(|e| Error::engine("reading the changes", e))?;
            let on: Vec<String> = key_cols.iter().map(|c| format!("t.{0} = s.{0}", q(c))).collect();
            let names: Vec<String> =
                schema.fields.iter().map(|f| f.column.clone()).chain([schema.catch_all.clone()]).collect();
            let merge = table
                .merge(source, on.join(" AND "))
                .with_source_alias("s")
                .with_target_alias("t")
                .with_writer_properties(props.clone())
                .with_commit_properties(delta::commit_properties(&state))
                .when_matched_delete(|d| d.predicate("s._op = 'remove'"))
                .and_then(|m| {
                    m.when_matched_update(|u| {
                        names.iter().fold(u, |u, c| u.update(c.as_str(), format!("s.{}", q(c)).as_str()))
                    })
                })
                .and_then(|m| {
                    m.when_not_matched_insert(|i| {
                        names.iter().fold(i.predicate("s._op <> 'remove'"), |i, c| {
                            i.set(c.as_str(), format!("s.{}", q(c)).as_str())
                        })
                    })
                })
                .map_err(|e| Error::engine("preparing the Delta MERGE", e))?;
            let (table, metrics) = rt.block_on(merge.into_future()).map_err(|e| Error::engine("the Delta MERGE", e))?;
            (table, metrics.num_target_files_added)
        }
        _ => {
            register_base(&ctx, &plan.start, &schema, opts.jobs, rt, opts.progress.as_ref())?;
            let sql = merged_query(&ctx, rt, &schema, &unions, &key_cols)?;
            let df = rt.block_on(ctx.sql(&sql)).map_err(|e| Error::engine("planning the merge", e))?;
            let plan_df = df.logical_plan().clone();
            let write = table
                .write(Vec::new())
                .with_input_plan(plan_df)
                .with_writer_properties(props.clone())
                .with_save_mode(if opts.overwrite { SaveMode::Overwrite } else { SaveMode::ErrorIfExists })
                .with_partition_columns(partition_cols.clone())
                .with_table_name(schema.table.clone().unwrap_or_else(|| "table".into()))
                .with_commit_properties(delta::commit_properties(&state));
            let table = rt.block_on(write.into_future()).map_err(|e| Error::engine("writing the Delta table", e))?;
            let files = table.get_file_uris().map(|f| f.count()).unwrap_or(0);
            (table, files)
        }
    };
    let files = table.get_file_uris().map(|f| f.count()).map_err(|e| Error::engine("reading the Delta log", e))?;
    let rows = rt.block_on(async {
        let ctx = crate::sql::session(opts.jobs);
        delta::register(&ctx, "t", &table).await?;
        let n = ctx.sql("SELECT count(*) FROM t").await.map_err(|e| Error::engine("counting", e))?;
        let b = n.collect().await.map_err(|e| Error::engine("counting", e))?;
        use arrow::array::AsArray;
        Ok::<u64, Error>(b[0].column(0).as_primitive::<arrow::datatypes::Int64Type>().value(0) as u64)
    })?;
    let _ = files_written;
    Ok(MergeSummary {
        run_id: table.version().map(|v| format!("delta version {v}")),
        destination: dest.url.clone(),
        base: base_desc,
        applied: plan.changes.iter().map(|e| e.id.clone()).collect(),
        skipped: plan.skipped,
        finished_interrupted: plan.finished_interrupted,
        key,
        current_to: iso(plan.current_to),
        written: true,
        change_records,
        change_scans: 0,
        rows,
        files,
        partitions: 0,
        bytes_out: 0,
        spilled: SpillReport::default(),
        elapsed_seconds: started.elapsed().as_secs_f64(),
        stages: super::MergeStages::default(),
        peak_memory_bytes: peak_memory(),
    })
}
