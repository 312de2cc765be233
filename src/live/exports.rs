//! Native exports: start them (point-in-time recovery checked first), describe,
//! list, wait for them, and watch a table's newest one for a scheduler.

use std::time::Duration;

use aws_sdk_dynamodb::primitives::DateTime as AwsTime;
use aws_sdk_dynamodb::types::{
    ExportDescription, ExportFormat, ExportStatus, ExportType as AwsExportType, ExportViewType,
    IncrementalExportSpecification, PointInTimeRecoverySpecification, PointInTimeRecoveryStatus,
};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::aws;
use crate::error::{Error, Result};
use crate::store::Location;

/// AWS's rule for incremental windows.
pub const MIN_WINDOW: Duration = Duration::from_secs(15 * 60);
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum Format {
    #[value(name = "dynamodb-json")]
    DynamodbJson,
    Ion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum View {
    NewAndOld,
    New,
}

#[derive(Debug, Clone)]
pub struct Incremental {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub view: View,
}

/// An export to start.
#[derive(Debug, Clone)]
pub struct StartRequest {
    /// Table ARN (the API takes ARNs only; names are resolved first).
    pub table_arn: String,
    pub bucket: String,
    pub prefix: Option<String>,
    pub format: Format,
    /// Point in time of a full export (default: now).
    pub at: Option<DateTime<Utc>>,
    pub incremental: Option<Incremental>,
}

/// An export as dynolake reports it (`export status --json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExportInfo {
    pub export_arn: String,
    pub status: String,
    pub table_arn: Option<String>,
    pub export_type: Option<String>,
    pub format: Option<String>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    /// A full export's point in time.
    pub export_time: Option<String>,
    /// An incremental export's window.
    pub from_time: Option<String>,
    pub to_time: Option<String>,
    pub item_count: Option<i64>,
    pub billed_size_bytes: Option<i64>,
    /// Where it is written: `s3://bucket/prefix`.
    pub location: Option<String>,
    pub manifest: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
}

impl ExportInfo {
    pub fn is_done(&self) -> bool {
        self.status != ExportStatus::InProgress.as_str()
    }
    pub fn failed(&self) -> bool {
        self.status == ExportStatus::Failed.as_str()
    }
    /// The id AWS names the export's folder with (`AWSDynamoDB/<id>/`): the ARN's last segment.
    pub fn export_id(&self) -> &str {
        self.export_arn.rsplit('/').next().unwrap_or(&self.export_arn)
    }
    /// Start time as a timestamp.
    pub fn started(&self) -> Option<DateTime<Utc>> {
        self.start_time.as_deref().and_then(parse_time)
    }
    pub fn ended(&self) -> Option<DateTime<Utc>> {
        self.end_time.as_deref().and_then(parse_time)
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

fn iso(t: &AwsTime) -> String {
    DateTime::from_timestamp_millis(t.to_millis().unwrap_or(0))
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn aws_time(t: DateTime<Utc>) -> AwsTime {
    AwsTime::from_millis(t.timestamp_millis())
}

impl From<&ExportDescription> for ExportInfo {
    fn from(d: &ExportDescription) -> Self {
        let inc = d.incremental_export_specification();
        ExportInfo {
            export_arn: d.export_arn().unwrap_or_default().to_string(),
            status: d.export_status().map(|s| s.as_str().to_string()).unwrap_or_else(|| "UNKNOWN".into()),
            table_arn: d.table_arn().map(str::to_string),
            export_type: d.export_type().map(|t| t.as_str().to_string()),
            format: d.export_format().map(|f| f.as_str().to_string()),
            start_time: d.start_time().map(iso),
            end_time: d.end_time().map(iso),
            export_time: d
                .export_time()
                .map(iso)
                .filter(|_| d.export_type() != Some(&AwsExportType::IncrementalExport)),
            from_time: inc.and_then(|i| i.export_from_time()).map(iso),
            to_time: inc.and_then(|i| i.export_to_time()).map(iso),
            item_count: d.item_count(),
            billed_size_bytes: d.billed_size_bytes(),
            location: d.s3_bucket().map(|b| match d.s3_prefix().filter(|p| !p.is_empty()) {
                Some(p) => format!("s3://{b}/{}", p.trim_end_matches('/')),
                None => format!("s3://{b}"),
            }),
            manifest: d.export_manifest().map(str::to_string),
            failure_code: d.failure_code().map(str::to_string),
            failure_message: d.failure_message().map(str::to_string),
        }
    }
}

/// A table's ARN (an ARN is taken as given).
pub async fn table_arn(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<String> {
    if table.starts_with("arn:") {
        return Ok(table.to_string());
    }
    Ok(super::scan::describe(client, table).await?.arn)
}

/// Is point-in-time recovery on?
pub async fn pitr_enabled(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<bool> {
    let name = super::table_name(table);
    let out = client
        .describe_continuous_backups()
        .table_name(name)
        .send()
        .await
        .map_err(|e| aws(format!("DescribeContinuousBackups {name}"), e))?;
    Ok(out
        .continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description())
        .and_then(|p| p.point_in_time_recovery_status())
        == Some(&PointInTimeRecoveryStatus::Enabled))
}

pub async fn enable_pitr(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<()> {
    let name = super::table_name(table);
    let spec = PointInTimeRecoverySpecification::builder()
        .point_in_time_recovery_enabled(true)
        .build()
        .map_err(|e| Error::Usage(e.to_string()))?;
    client
        .update_continuous_backups()
        .table_name(name)
        .point_in_time_recovery_specification(spec)
        .send()
        .await
        .map_err(|e| aws(format!("UpdateContinuousBackups {name}"), e))?;
    Ok(())
}

/// What to say when point-in-time recovery is off.
pub fn pitr_off_message(table: &str) -> String {
    let name = super::table_name(table);
    format!(
        "point-in-time recovery is off for {name}, and exports need it. Turn it on with \
         `aws dynamodb update-continuous-backups --table-name {name} --point-in-time-recovery-specification \
         PointInTimeRecoveryEnabled=true`, or pass --enable-pitr (exports can cover only the time since it was turned on)"
    )
}

/// AWS's rule for an incremental window, checked before the call: from before
/// to, 15 minutes to 24 hours long, and not in the future.
pub fn check_window(from: DateTime<Utc>, to: DateTime<Utc>, now: DateTime<Utc>) -> Result<()> {
    let len = (to - from)
        .to_std()
        .map_err(|_| Error::Usage(format!("incremental window {from} → {to}: it must start before it ends")))?;
    if len < MIN_WINDOW || len > MAX_WINDOW {
        return Err(Error::Usage(format!(
            "incremental window {} → {} is {}; DynamoDB takes windows of 15 minutes to 24 hours",
            from.to_rfc3339(),
            to.to_rfc3339(),
            human_duration(len)
        )));
    }
    if to > now {
        return Err(Error::Usage(format!("incremental window ends at {}, in the future", to.to_rfc3339())));
    }
    Ok(())
}

pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

pub async fn start(client: &aws_sdk_dynamodb::Client, r: &StartRequest) -> Result<ExportInfo> {
    let mut call = client
        .export_table_to_point_in_time()
        .table_arn(&r.table_arn)
        .s3_bucket(&r.bucket)
        .set_s3_prefix(r.prefix.clone().filter(|p| !p.is_empty()))
        .export_format(match r.format {
            Format::DynamodbJson => ExportFormat::DynamodbJson,
            Format::Ion => ExportFormat::Ion,
        });
    if let Some(at) = r.at {
        call = call.export_time(aws_time(at));
    }
    if let Some(i) = &r.incremental {
        let spec = IncrementalExportSpecification::builder()
            .export_from_time(aws_time(i.from))
            .export_to_time(aws_time(i.to))
            .export_view_type(match i.view {
                View::NewAndOld => ExportViewType::NewAndOldImages,
                View::New => ExportViewType::NewImage,
            })
            .build();
        call = call.export_type(AwsExportType::IncrementalExport).incremental_export_specification(spec);
    }
    let out = call.send().await.map_err(|e| aws(format!("ExportTableToPointInTime {}", r.table_arn), e))?;
    let d = out.export_description().ok_or_else(|| Error::NotFound("the export call returned no export".into()))?;
    Ok(ExportInfo::from(d))
}

pub async fn describe(client: &aws_sdk_dynamodb::Client, arn: &str) -> Result<ExportInfo> {
    let out =
        client.describe_export().export_arn(arn).send().await.map_err(|e| aws(format!("DescribeExport {arn}"), e))?;
    let d = out.export_description().ok_or_else(|| Error::NotFound(format!("no export {arn}")))?;
    Ok(ExportInfo::from(d))
}

/// Every export (of one table, when given), newest first, described.
pub async fn list(client: &aws_sdk_dynamodb::Client, table_arn: Option<&str>) -> Result<Vec<ExportInfo>> {
    let mut arns = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let out = client
            .list_exports()
            .set_table_arn(table_arn.map(str::to_string))
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| aws("ListExports", e))?;
        arns.extend(out.export_summaries().iter().filter_map(|s| s.export_arn().map(str::to_string)));
        match out.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => break,
        }
    }
    use futures::{StreamExt, TryStreamExt};
    let mut out: Vec<ExportInfo> =
        futures::stream::iter(arns.iter().map(|arn| describe(client, arn))).buffered(8).try_collect().await?;
    out.sort_by(|a, b| b.start_time.cmp(&a.start_time).then_with(|| b.export_arn.cmp(&a.export_arn)));
    Ok(out)
}

/// How often `wait` asks: `first`, then 1.5× longer each time up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Polling {
    fn default() -> Self {
        Polling { first: Duration::from_secs(5), max: Duration::from_secs(60) }
    }
}

/// Poll until the export is no longer in progress; `seen` is told each answer.
/// Returns the last description (COMPLETED or FAILED: the caller decides).
pub async fn wait(
    client: &aws_sdk_dynamodb::Client,
    arn: &str,
    polling: Polling,
    mut seen: impl FnMut(&ExportInfo),
) -> Result<ExportInfo> {
    let mut delay = polling.first;
    loop {
        let info = describe(client, arn).await?;
        seen(&info);
        if info.is_done() {
            return Ok(info);
        }
        crate::cancel::check()?;
        tokio::time::sleep(delay).await;
        delay = delay.mul_f64(1.5).min(polling.max);
    }
}

/// The export error of a failed export: AWS's code and message.
pub fn failure(info: &ExportInfo) -> Error {
    Error::Aws {
        context: format!("export {} failed", info.export_arn),
        code: info.failure_code.clone(),
        message: format!(
            "{}: {}",
            info.failure_code.as_deref().unwrap_or("no failure code"),
            info.failure_message.as_deref().unwrap_or("no message")
        ),
    }
}

/// The end of the newest export of `table_arn` found under `loc` (its
/// `AWSDynamoDB/` folder): a full export's time or an incremental export's
/// `exportToTime`: where the next incremental export starts.
pub async fn last_end(loc: &Location, table_arn: &str) -> Result<DateTime<Utc>> {
    let exports = crate::export::discover(loc).await?;
    exports
        .iter()
        .filter_map(|e| e.summary.as_ref())
        .filter(|s| s.table_arn == table_arn || s.table_name() == super::table_name(table_arn))
        .filter_map(|s| s.export_to_time.as_deref().or(s.export_time.as_deref()).and_then(parse_time))
        .max()
        .ok_or_else(|| {
            Error::NotFound(format!(
                "--since-last: no complete export of {table_arn} under {}; start with a full export",
                loc.url
            ))
        })
}

/// What `export watch` found: healthy or one of the problems, each with its exit status.
#[derive(Debug, Clone, Serialize)]
pub struct Watch {
    pub table_arn: String,
    pub state: WatchState,
    pub message: String,
    pub newest: Option<ExportInfo>,
    /// The newest completed export's age at the check, in seconds.
    pub age_seconds: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchState {
    Ok,
    Failed,
    Stale,
    Overdue,
}

impl WatchState {
    /// `export watch`'s exit status: 0 ok, 4 the newest export failed, 5 no
    /// completed export within --max-age, 6 an export has run longer than --max-duration.
    pub fn exit_code(self) -> u8 {
        match self {
            WatchState::Ok => 0,
            WatchState::Failed => 4,
            WatchState::Stale => 5,
            WatchState::Overdue => 6,
        }
    }
}

/// Judge a table's exports (newest first, as [`list`] gives them) at `now`.
pub fn judge(
    table_arn: &str,
    exports: &[ExportInfo],
    max_age: Duration,
    max_duration: Duration,
    now: DateTime<Utc>,
) -> Watch {
    let newest = exports.first().cloned();
    let completed = exports.iter().find(|e| e.status == ExportStatus::Completed.as_str());
    let point =
        |e: &ExportInfo| e.to_time.as_deref().or(e.export_time.as_deref()).and_then(parse_time).or_else(|| e.ended());
    let age = completed.and_then(point).and_then(|t| (now - t).to_std().ok());
    let age_seconds = age.map(|a| a.as_secs());
    let w = |state, message: String| Watch {
        table_arn: table_arn.to_string(),
        state,
        message,
        newest: newest.clone(),
        age_seconds,
    };
    if let Some(n) = newest.as_ref().filter(|n| n.failed()) {
        return w(
            WatchState::Failed,
            format!(
                "the newest export {} failed: {}: {}",
                n.export_arn,
                n.failure_code.as_deref().unwrap_or("?"),
                n.failure_message.as_deref().unwrap_or("")
            ),
        );
    }
    let running = exports.iter().find(|e| !e.is_done());
    let ran = running.and_then(|r| Some((r, (now - r.started()?).to_std().ok()?)));
    if let Some((running, ran)) = ran.filter(|(_, ran)| *ran > max_duration) {
        return w(
            WatchState::Overdue,
            format!(
                "export {} has run {} (more than --max-duration {})",
                running.export_arn,
                human_duration(ran),
                human_duration(max_duration)
            ),
        );
    }
    match age {
        None => w(WatchState::Stale, format!("no completed export of {table_arn}")),
        Some(a) if a > max_age => w(
            WatchState::Stale,
            format!(
                "the newest completed export is {} old (more than --max-age {})",
                human_duration(a),
                human_duration(max_age)
            ),
        ),
        Some(a) => w(WatchState::Ok, format!("the newest completed export is {} old", human_duration(a))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    #[test]
    fn windows_follow_aws_rule() {
        let now = t("2026-11-30T12:00:00Z");
        assert!(check_window(t("2026-11-30T10:00:00Z"), t("2026-11-30T10:15:00Z"), now).is_ok());
        assert!(check_window(t("2026-11-29T10:00:00Z"), t("2026-11-30T10:00:00Z"), now).is_ok());
        let short = check_window(t("2026-11-30T10:00:00Z"), t("2026-11-30T10:14:59Z"), now).unwrap_err().to_string();
        assert!(short.contains("14m59s") && short.contains("15 minutes to 24 hours"), "{short}");
        assert!(check_window(t("2026-11-29T10:00:00Z"), t("2026-11-30T10:00:01Z"), now).is_err());
        assert!(check_window(t("2026-11-30T10:00:00Z"), t("2026-11-30T09:00:00Z"), now).is_err());
        assert!(check_window(t("2026-11-30T11:50:00Z"), t("2026-11-30T12:10:00Z"), now).is_err());
    }

    fn export(status: &str, start: &str, at: Option<&str>) -> ExportInfo {
        ExportInfo {
            export_arn: format!("arn:x/export/{start}"),
            status: status.into(),
            table_arn: None,
            export_type: None,
            format: None,
            start_time: Some(start.into()),
            end_time: None,
            export_time: at.map(str::to_string),
            from_time: None,
            to_time: None,
            item_count: None,
            billed_size_bytes: None,
            location: None,
            manifest: None,
            failure_code: Some("S3NoSuchBucket".into()).filter(|_| status == "FAILED"),
            failure_message: None,
        }
    }

    #[test]
    fn watch_states() {
        let now = t("2026-11-30T12:00:00Z");
        let h = |n: u64| Duration::from_secs(n * 3600);
        let ok = export("COMPLETED", "2026-11-30T01:00:00Z", Some("2026-11-30T01:00:00Z"));
        assert_eq!(judge("T", std::slice::from_ref(&ok), h(26), h(2), now).state, WatchState::Ok);
        assert_eq!(judge("T", std::slice::from_ref(&ok), h(10), h(2), now).state, WatchState::Stale);
        assert_eq!(judge("T", &[], h(26), h(2), now).state, WatchState::Stale);
        let failed = export("FAILED", "2026-11-30T11:00:00Z", None);
        let w = judge("T", &[failed, ok.clone()], h(26), h(2), now);
        assert_eq!((w.state, w.state.exit_code()), (WatchState::Failed, 4));
        assert!(w.message.contains("S3NoSuchBucket"));
        let long = export("IN_PROGRESS", "2026-11-30T09:00:00Z", None);
        assert_eq!(judge("T", &[long.clone(), ok.clone()], h(26), h(2), now).state, WatchState::Overdue);
        assert_eq!(judge("T", &[long, ok], h(26), h(4), now).state, WatchState::Ok);
    }
}
