//! One writer per destination: a lease object created with a conditional put.
//!
//! A run that writes a dataset first creates `DEST/_dynolake/lease.json` with
//! `PutMode::Create` (S3's `If-None-Match: *`; on local disk an exclusive
//! create), so of two runs racing for one destination exactly one gets it and
//! the other stops before reading anything, naming the run that holds it. The
//! lease is removed when the run ends, committed or not.
//!
//! A run that dies without removing it (SIGKILL, a lost machine) leaves a
//! stale lease. On the same host a later run sees that the process is gone and
//! takes the lease over by itself; a lease from another host cannot be judged
//! from here, so the message says how to take it over explicitly
//! (`--break-lease RUN`). Taking over is itself exclusive: the taker first
//! creates `_dynolake/broken-leases/<RUN>` with a conditional put, so of two
//! runs breaking the same dead lease only one proceeds, and a slow breaker can
//! never remove the lease of the run that took over (the marker stays).

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::Location;

pub const LEASE: &str = "_dynolake/lease.json";
pub const BROKEN: &str = "_dynolake/broken-leases";

/// What a lease object holds: enough for a person to find the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub run_id: String,
    pub host: String,
    pub pid: u32,
    pub started_at: String,
    /// What the run does (`convert <export id> → parquet`), for messages.
    pub job: String,
}

/// A held lease; release it with [`Lease::release`] (dropping it without
/// releasing leaves it for the stale-lease rules above).
#[derive(Debug)]
pub struct Lease {
    dest: Location,
    path: Path,
    pub record: LeaseRecord,
    /// A dead run's lease this one took over, for the summary.
    pub took_over: Option<LeaseRecord>,
}

fn join(base: &Path, rel: &str) -> Path {
    rel.split('/').filter(|p| !p.is_empty()).fold(base.clone(), |p, part| p.join(part))
}

/// This machine's name, for lease records.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Whether a process of this host is alive (Linux: `/proc/PID`; elsewhere
/// assumed alive, so only an explicit `--break-lease` takes its lease).
pub fn process_alive(pid: u32) -> bool {
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Take the lease of `dest` for `run_id`. `break_lease`: the run id of a
/// lease the user says is dead and may be taken over.
pub async fn acquire(dest: &Location, run_id: &str, job: &str, break_lease: Option<&str>) -> Result<Lease> {
    let path = join(&dest.prefix, LEASE);
    let record = LeaseRecord {
        run_id: run_id.to_string(),
        host: host_name(),
        pid: std::process::id(),
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        job: job.to_string(),
    };
    let mut took_over = None;
    // A few rounds: the holder may release between our create and our read.
    for _ in 0..5 {
        if create(dest, &path, &record).await? {
            return Ok(Lease { dest: dest.clone(), path, record, took_over });
        }
        let Some(holder) = read(dest, &path).await? else { continue };
        let dead_here = holder.host == record.host && !process_alive(holder.pid);
        let named = break_lease == Some(holder.run_id.as_str());
        if !(dead_here || named) {
            return Err(Error::Locked(format!(
                "{} is being written by run {} ({}; host {}, pid {}, since {}). Wait for it to finish. \
                 If that run is dead (killed, its machine gone), take over its lease with --break-lease {}",
                dest.url, holder.run_id, holder.job, holder.host, holder.pid, holder.started_at, holder.run_id
            )));
        }
        let marker = join(&dest.prefix, &format!("{BROKEN}/{}", holder.run_id));
        if !create(dest, &marker, &record).await? {
            return Err(Error::Locked(format!(
                "{}: another run is taking over the lease of dead run {}; try again once it is done",
                dest.url, holder.run_id
            )));
        }
        match dest.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::store(format!("removing the stale lease {}", dest.display(&path)), e)),
        }
        took_over = Some(holder);
    }
    Err(Error::Locked(format!("{}: could not take the lease (it changed hands repeatedly); try again", dest.url)))
}

/// Create `path` only if it does not exist; false when it does.
async fn create<T: Serialize>(dest: &Location, path: &Path, v: &T) -> Result<bool> {
    let mut bytes = serde_json::to_vec_pretty(v).expect("serializable");
    bytes.push(b'\n');
    let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
    match dest.store.put_opts(path, PutPayload::from(bytes), opts).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(false),
        Err(e @ object_store::Error::NotImplemented { .. }) => Err(Error::store(
            format!(
                "{}: this store cannot create an object only if it is absent, which dynolake needs to keep two runs \
                 from writing one destination",
                dest.url
            ),
            e,
        )),
        Err(e) => Err(Error::store(format!("writing {}", dest.display(path)), e)),
    }
}

/// The lease at `path`, if there is one.
pub async fn read(dest: &Location, path: &Path) -> Result<Option<LeaseRecord>> {
    let r = match dest.store.get(path).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::store(format!("reading {}", dest.display(path)), e)),
    };
    let bytes = match r.bytes().await {
        Ok(b) => b,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::store(format!("reading {}", dest.display(path)), e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Usage(format!("{}: not a dynolake lease ({e}); remove it by hand", dest.display(path))))
}

/// The lease of a destination, if one is held.
pub async fn holder(dest: &Location) -> Result<Option<LeaseRecord>> {
    read(dest, &join(&dest.prefix, LEASE)).await
}

impl Lease {
    /// Remove the lease, if it is still ours.
    pub async fn release(self) -> Result<()> {
        match read(&self.dest, &self.path).await? {
            Some(r) if r.run_id == self.record.run_id => match self.dest.store.delete(&self.path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(Error::store(format!("removing the lease {}", self.dest.display(&self.path)), e)),
            },
            _ => Ok(()),
        }
    }
}
