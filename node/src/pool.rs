//! The node's CPU pool: lookups, OPRF evaluations and other CPU-bound work,
//! off the async runtime, fair between requests, isolated from panics, and
//! stopped when nobody waits any more.
//!
//! - **Fair.** A request is a batch of units (one per lookup item, or per
//!   packed group of two or three items, ~0.1-0.15 s). Workers
//!   take one unit at a time from the batch at the head of a round-robin
//!   queue and put the batch back at the tail, so a one-unit request waits
//!   for at most one unit of each request ahead of it, not for whole batches.
//! - **Isolated.** Every unit runs under `catch_unwind`: a panic (in our code
//!   or a dependency's) becomes [`NodeError::Internal`] for that request,
//!   logged with an error id, and the worker goes on.
//! - **Abandoned work stops.** The awaiting future sets a flag when it is
//!   dropped (the caller cancelled or its deadline passed); units not yet
//!   started are then skipped. A failed unit skips the rest of its batch too.
//! - **Coarse when busy.** A unit's own parallel loops (a lookup item's tree
//!   levels) use every core when it is the only work; while other units wait
//!   in the queue, each worker runs its unit alone on one core instead. Two
//!   items then each keep a core's caches to themselves rather than meeting
//!   at every tree level (a batch of lookups is cheaper per item than single
//!   ones, as it was when a batch was one parallel loop over its items).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use fedq_transport::internal::ErrorId;
use tokio::sync::oneshot;

use crate::error::NodeError;

/// A batch in the queue, with its item type erased.
trait Job: Send + Sync {
    /// Claims the next unit, if any is left.
    fn claim(&self) -> Option<usize>;
    /// Whether units are left to claim.
    fn has_unclaimed(&self) -> bool;
    /// Runs a claimed unit.
    fn run(&self, unit: usize);
}

struct Queue {
    jobs: VecDeque<Arc<dyn Job>>,
    stopping: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// The pool's name, for thread names and the queue-depth metric.
    name: String,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, job: Arc<dyn Job>) {
        let mut queue = self.lock();
        queue.jobs.push_back(job);
        // Reported under the lock, so that reports arrive in queue order and
        // the gauge never rests on a stale depth.
        fedq_transport::metrics::pool_queue(&self.name, queue.jobs.len());
        drop(queue);
        self.ready.notify_one();
    }

    /// The next unit to run, and whether other units wait behind it (then it
    /// runs on one core), or `None` when the pool stops.
    fn next(&self) -> Option<(Arc<dyn Job>, usize, bool)> {
        let mut queue = self.lock();
        loop {
            while let Some(job) = queue.jobs.pop_front() {
                let Some(unit) = job.claim() else { continue };
                if job.has_unclaimed() {
                    queue.jobs.push_back(Arc::clone(&job));
                    self.ready.notify_one();
                }
                let others_wait = !queue.jobs.is_empty();
                fedq_transport::metrics::pool_queue(&self.name, queue.jobs.len());
                return Some((job, unit, others_wait));
            }
            if queue.stopping {
                return None;
            }
            queue = self.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A fixed set of worker threads serving batches round-robin.
pub struct WorkPool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WorkPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkPool").finish_non_exhaustive()
    }
}

impl WorkPool {
    /// Starts `threads` workers (0: one per core).
    pub fn new(threads: usize, name: &str) -> std::io::Result<Self> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            threads
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                stopping: false,
            }),
            ready: Condvar::new(),
            name: name.to_owned(),
        });
        for i in 0..threads {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    // Where a unit's parallel loops run while others wait:
                    // a pool of one thread, so they run in sequence.
                    let alone = rayon::ThreadPoolBuilder::new()
                        .num_threads(1)
                        .thread_name({
                            let name = shared.name.clone();
                            move |_| format!("{name}-{i}-alone")
                        })
                        .build();
                    while let Some((job, unit, others_wait)) = shared.next() {
                        match &alone {
                            Ok(alone) if others_wait => alone.install(|| job.run(unit)),
                            _ => job.run(unit),
                        }
                    }
                })?;
        }
        Ok(Self { shared })
    }

    /// Runs `work(0..units)` on the pool and collects the results in order;
    /// the first error (or panic) ends the batch.
    pub async fn map<T, F>(&self, units: usize, work: F) -> Result<Vec<T>, NodeError>
    where
        T: Send + 'static,
        F: Fn(usize) -> Result<T, NodeError> + Send + Sync + 'static,
    {
        if units == 0 {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let batch = Arc::new(Batch {
            work,
            units,
            next: AtomicUsize::new(0),
            left: AtomicUsize::new(units),
            results: Mutex::new((0..units).map(|_| None).collect()),
            cancel: Arc::clone(&cancel),
            reply: Mutex::new(Some(reply)),
            span: tracing::Span::current(),
        });
        self.shared.push(batch);
        // Dropped with this future: the caller is gone, skip what is left.
        let _abandon = SetOnDrop(cancel);
        answer.await.map_err(|_| NodeError::ShuttingDown)?
    }

    /// Runs one piece of work on the pool.
    pub async fn run<T, F>(&self, work: F) -> Result<T, NodeError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, NodeError> + Send + 'static,
    {
        let once = Mutex::new(Some(work));
        let mut results = self
            .map(1, move |_| {
                let work = once
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .ok_or(NodeError::ShuttingDown)?;
                work()
            })
            .await?;
        results.pop().ok_or(NodeError::ShuttingDown)
    }
}

impl Drop for WorkPool {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.ready.notify_all();
    }
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

type Reply<T> = oneshot::Sender<Result<Vec<T>, NodeError>>;

struct Batch<T, F> {
    work: F,
    units: usize,
    next: AtomicUsize,
    left: AtomicUsize,
    results: Mutex<Vec<Option<Result<T, NodeError>>>>,
    cancel: Arc<AtomicBool>,
    reply: Mutex<Option<Reply<T>>>,
    span: tracing::Span,
}

impl<T, F> Batch<T, F>
where
    F: Fn(usize) -> Result<T, NodeError>,
{
    fn execute(&self, unit: usize) -> Result<T, NodeError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(NodeError::Abandoned);
        }
        match catch_unwind(AssertUnwindSafe(|| (self.work)(unit))) {
            Ok(result) => result,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-text panic".to_owned());
                Err(NodeError::Internal(ErrorId::log(&format!(
                    "panic on the work pool: {message}"
                ))))
            }
        }
    }

    fn finish(&self) {
        let results = std::mem::take(&mut *self.results.lock().unwrap_or_else(|e| e.into_inner()));
        let mut values = Vec::with_capacity(results.len());
        let mut first_error = None;
        for result in results {
            match result {
                Some(Ok(value)) => values.push(value),
                Some(Err(NodeError::Abandoned)) | None => {
                    first_error.get_or_insert(NodeError::Abandoned);
                }
                Some(Err(e)) => {
                    // A real failure says more than the units it made us skip.
                    if matches!(first_error, None | Some(NodeError::Abandoned)) {
                        first_error = Some(e);
                    }
                }
            }
        }
        let outcome = match first_error {
            Some(e) => Err(e),
            None => Ok(values),
        };
        if let Some(reply) = self.reply.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = reply.send(outcome);
        }
    }
}

impl<T, F> Job for Batch<T, F>
where
    T: Send + 'static,
    F: Fn(usize) -> Result<T, NodeError> + Send + Sync + 'static,
{
    fn claim(&self) -> Option<usize> {
        let unit = self.next.fetch_add(1, Ordering::Relaxed);
        (unit < self.units).then_some(unit)
    }

    fn has_unclaimed(&self) -> bool {
        self.next.load(Ordering::Relaxed) < self.units
    }

    fn run(&self, unit: usize) {
        let result = {
            let _entered = self.span.enter();
            self.execute(unit)
        };
        if result.is_err() {
            self.cancel.store(true, Ordering::Relaxed);
        }
        self.results.lock().unwrap_or_else(|e| e.into_inner())[unit] = Some(result);
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_panic_is_an_internal_error_and_the_pool_keeps_serving() {
        let pool = WorkPool::new(2, "t").unwrap();
        let rt = runtime();
        let err = rt
            .block_on(pool.map(4, |i| if i == 2 { panic!("boom") } else { Ok(i) }))
            .unwrap_err();
        assert!(matches!(err, NodeError::Internal(_)), "{err:?}");
        assert_eq!(rt.block_on(pool.map(3, Ok)).unwrap(), vec![0, 1, 2]);
    }

    #[test]
    fn a_small_request_is_not_starved_by_a_large_one() {
        let pool = Arc::new(WorkPool::new(1, "t").unwrap());
        let rt = runtime();
        let started = Instant::now();
        let (large, small) = rt.block_on(async {
            let large = pool.map(40, |_| {
                std::thread::sleep(Duration::from_millis(25));
                Ok(())
            });
            let small = async {
                // Queued behind the large batch's first unit.
                tokio::time::sleep(Duration::from_millis(5)).await;
                pool.run(move || Ok(started.elapsed())).await
            };
            tokio::join!(large, small)
        });
        large.unwrap();
        // One worker, 25 ms units: the small request ran after at most a
        // couple of units, not after all 40 (one second).
        assert!(small.unwrap() < Duration::from_millis(500));
    }

    #[test]
    fn abandoned_work_stops_at_the_next_unit() {
        let pool = WorkPool::new(1, "t").unwrap();
        let rt = runtime();
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&ran);
        let result = rt.block_on(async {
            tokio::time::timeout(
                Duration::from_millis(60),
                pool.map(100, move |_| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                    Ok(())
                }),
            )
            .await
        });
        assert!(result.is_err(), "timed out");
        std::thread::sleep(Duration::from_millis(200));
        assert!(ran.load(Ordering::Relaxed) < 10, "{ran:?} units ran");
    }
}
