//! The one worker pool: every parallel step (decoding an export, inferring a
//! schema, `inspect --verify`, writing spilled partitions) runs on it.
//!
//! Work is a list of tasks (data files, partitions) taken in order from a
//! shared queue, or read by every worker (a sample that each worker reads
//! from the start and takes its share of). Each worker owns its state (a
//! decoder, a sink, buffers): nothing is shared on the hot path. The first
//! error stops the pool: the other workers stop before their next task (and
//! long tasks can ask [`Stop::stopped`] to give up early); that error is what
//! the caller gets.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::{Error, Result};

/// How workers share the tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Each task runs once, on whichever worker takes it next.
    Shared,
    /// Every worker runs every task, in order (each takes its share of what
    /// they hold, e.g. its range of a sample's lines).
    EachWorker,
}

/// Lets a task see that another one failed.
#[derive(Debug, Default)]
pub struct Stop(AtomicBool);

impl Stop {
    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Run `tasks` tasks on up to `jobs` threads (with [`Queue::Shared`], never
/// more threads than tasks). Worker `w` builds its state with `start(w)`,
/// runs tasks with `task(&mut state, index, stop)` until none is left, any
/// task failed, or `task` returns `Ok(false)` (this worker is done), then
/// gives its result with `finish(w, state)`. Results come back in worker
/// order; the first error (in time) wins.
pub fn run<S, R>(
    jobs: usize,
    tasks: usize,
    queue: Queue,
    start: impl Fn(usize) -> Result<S> + Sync,
    task: impl Fn(&mut S, usize, &Stop) -> Result<bool> + Sync,
    finish: impl Fn(usize, S) -> Result<R> + Sync,
) -> Result<Vec<R>>
where
    R: Send,
{
    let workers = match queue {
        Queue::Shared => jobs.max(1).min(tasks.max(1)),
        Queue::EachWorker => jobs.max(1),
    };
    let next = AtomicUsize::new(0);
    let stop = Stop::default();
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let fail = |e: Error| {
        stop.0.store(true, Ordering::Relaxed);
        first_error.lock().unwrap().get_or_insert(e);
    };
    let results: Vec<Option<R>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (next, stop, fail, start, task, finish) = (&next, &stop, &fail, &start, &task, &finish);
                s.spawn(move || {
                    let mut state = match start(w) {
                        Ok(s) => s,
                        Err(e) => {
                            fail(e);
                            return None;
                        }
                    };
                    let mut own = 0;
                    while !stop.stopped() {
                        let i = match queue {
                            Queue::Shared => next.fetch_add(1, Ordering::Relaxed),
                            Queue::EachWorker => {
                                own += 1;
                                own - 1
                            }
                        };
                        if i >= tasks {
                            break;
                        }
                        match task(&mut state, i, stop) {
                            Ok(true) => {}
                            Ok(false) => break,
                            Err(e) => {
                                fail(e);
                                return None;
                            }
                        }
                    }
                    if stop.stopped() {
                        return None;
                    }
                    match finish(w, state) {
                        Ok(r) => Some(r),
                        Err(e) => {
                            fail(e);
                            None
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a worker panicked")).collect()
    });
    if let Some(e) = first_error.into_inner().unwrap() {
        return Err(e);
    }
    Ok(results.into_iter().map(|r| r.expect("every worker finished")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_and_results_are_in_worker_order() {
        let seen = Mutex::new(Vec::new());
        let r = run(
            3,
            10,
            Queue::Shared,
            |w| Ok((w, 0)),
            |s, i, _| {
                s.1 += 1;
                seen.lock().unwrap().push(i);
                Ok(true)
            },
            |w, s| Ok((w, s.0, s.1)),
        )
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(r.iter().map(|x| x.2).sum::<i32>(), 10);
    }

    #[test]
    fn the_first_error_stops_the_pool() {
        let ran = AtomicUsize::new(0);
        let r = run(
            2,
            1000,
            Queue::Shared,
            |_| Ok(()),
            |_, i, _| {
                ran.fetch_add(1, Ordering::Relaxed);
                if i == 3 { Err(Error::Usage(format!("task {i}"))) } else { Ok(true) }
            },
            |_, _| Ok(()),
        );
        assert_eq!(r.unwrap_err().to_string(), "task 3");
        assert!(ran.load(Ordering::Relaxed) < 1000);
    }

    #[test]
    fn each_worker_sees_every_task() {
        let count = |n: &mut i32, _, _: &Stop| {
            *n += 1;
            Ok(true)
        };
        let r = run(2, 5, Queue::EachWorker, |_| Ok(0), count, |_, n| Ok(n)).unwrap();
        assert_eq!(r, [5, 5]);
    }
}
