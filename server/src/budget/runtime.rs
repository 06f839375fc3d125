//! [`QueryRuntime`]: the threads statements and live filters run on.
//!
//! The server's main runtime accepts connections, reads and writes sockets, answers
//! `/health`, and runs the cheap, bounded parts of a request (authentication, parsing
//! within the front end's limits, point reads, commits, routing changes to subscriptions and
//! evaluating the filters that have proved cheap). It must never wait behind a user's
//! query. Everything that costs CPU in proportion to what a client asked for — planning and
//! executing with DataFusion, turning large results into JSON, evaluating costly
//! subscription filters, initial loads and catch-up, mutations over the WebSocket — runs
//! here instead, on threads with a lower scheduling priority, shared among users by the
//! [`FairScheduler`](super::FairScheduler).
//! (InfluxDB's `DedicatedExecutor` separates its query work from its I/O in the same way.)

use crate::error::{KalamError, Result};
use std::future::Future;
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

/// Niceness of query threads: below the I/O threads, so that under load the kernel still
/// schedules the threads that answer `/health` and move WebSocket frames. (Hostile bench,
/// change-event p99 under attack: 6.3-7.0 ms at niceness 5, 5.3 at 10, 5.5 at 19.)
const QUERY_THREAD_NICENESS: i32 = 10;

pub(crate) struct QueryRuntime {
    runtime: parking_lot::Mutex<Option<Runtime>>,
    handle: Handle,
    /// The runtime that serves requests: the one this was started from.
    requests: Handle,
}

impl std::fmt::Debug for QueryRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueryRuntime")
    }
}

impl QueryRuntime {
    /// Starts the threads for `slots` CPU slots of the fair scheduler: one more than the
    /// slots, so that while every slot computes, WebSocket sessions and newly arrived work
    /// still get a thread and queue for a slot, where the scheduler puts them first if their
    /// users have used little. (Without the spare thread, measured under hostile load,
    /// change events waited seconds behind polls of costly statements.) Large
    /// stacks: planning recurses over expressions.
    pub(crate) fn start(slots: usize) -> Result<QueryRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(slots.max(1) + 1)
            // Tasks woken from other threads (changes to route, new requests) wait in the
            // global queue; look there often, not only every 61 polls.
            .global_queue_interval(4)
            .thread_name("kalamdb-query")
            .thread_stack_size(32 * 1024 * 1024)
            .max_blocking_threads(64)
            .enable_all()
            .on_thread_start(lower_priority)
            .build()
            .map_err(|e| KalamError::internal(format!("cannot start the query runtime: {e}")))?;
        let handle = runtime.handle().clone();
        Ok(QueryRuntime { runtime: parking_lot::Mutex::new(Some(runtime)), handle, requests: Handle::current() })
    }

    /// Runs `future` on the query threads.
    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The runtime that serves requests (the server's main one), where background work hands
    /// its locked sections ([`spawn_background`], [`at_request_priority`]).
    pub(crate) fn requests(&self) -> &Handle {
        &self.requests
    }

    /// Runs `future` on the query threads and waits for it. Dropping the returned future
    /// (a request's deadline passing) aborts the task at its next await.
    pub(crate) async fn run<T, F>(&self, future: F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let mut task = AbortOnDrop(self.handle.spawn(future));
        match (&mut task.0).await {
            Ok(outcome) => outcome,
            Err(e) if e.is_panic() => Err(KalamError::internal("a query task panicked")),
            Err(e) => Err(KalamError::internal(format!("a query task ended: {e}"))),
        }
    }
}

/// Aborts a task when its handle is dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl QueryRuntime {
    /// Stops the query threads, waiting up to `timeout` for the polls in progress to end (a
    /// blocking call). At shutdown, so that no statement is still reading RocksDB while the
    /// process exits.
    pub(crate) fn shutdown(&self, timeout: std::time::Duration) {
        if let Some(runtime) = self.runtime.lock().take() {
            runtime.shutdown_timeout(timeout);
        }
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        // Dropped from inside the main runtime: do not block on running tasks.
        if let Some(runtime) = self.runtime.get_mut().take() {
            runtime.shutdown_background();
        }
    }
}

/// The time slice the kernel gives a request thread before another task may run: shorter
/// than the kernel's default (about 1.4 ms on two CPUs), so that a request thread waking up
/// takes the CPU from a background or query thread at once instead of at the end of that
/// thread's slice. Niceness alone does not do it: the kernel's scheduler (EEVDF) lets the
/// running task finish its slice whatever the waking task's weight, unless the waking task
/// asks for a shorter slice (measured with `flush_load`, see BENCHMARKS.md).
const REQUEST_SLICE_NANOS: u64 = 100_000;

/// Sets how the kernel schedules the calling thread: its niceness, and its time slice
/// (`None`: the kernel's default). Linux 6.12 and later honour the slice of a normal thread;
/// older kernels ignore it. On failure only the niceness is set.
#[cfg(target_os = "linux")]
fn schedule_this_thread(niceness: i32, slice_nanos: Option<u64>) {
    /// `struct sched_attr` of `sched_setattr(2)`, its first version (48 bytes).
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice: niceness,
        priority: 0,
        // For a normal thread, the slice it asks for; 0 is the default.
        runtime: slice_nanos.unwrap_or(0),
        deadline: 0,
        period: 0,
    };
    // SAFETY: plain system calls on the calling thread (tid 0), with a valid attribute
    // struct that outlives the call; failure only leaves the scheduling as it was.
    unsafe {
        if libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) != 0 {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, niceness);
        }
    }
}

/// Query and background threads: at [`QUERY_THREAD_NICENESS`], with the kernel's default
/// slice (threads inherit their creator's slice, which may be a request thread's).
#[cfg(target_os = "linux")]
fn lower_priority() {
    schedule_this_thread(QUERY_THREAD_NICENESS, None);
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// Called by each thread of the runtime that serves requests as it starts: it keeps the
/// process's niceness and asks for [`REQUEST_SLICE_NANOS`].
#[cfg(target_os = "linux")]
pub(crate) fn request_thread_started() {
    // SAFETY: a plain system call on the calling thread.
    let niceness = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::syscall(libc::SYS_gettid) as libc::id_t) };
    schedule_this_thread(niceness, Some(REQUEST_SLICE_NANOS));
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn request_thread_started() {}

thread_local! {
    /// Whether this is a background thread, at the lower priority.
    static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `work` — short, bounded work under a lock that requests also take, such as the
/// commit lock — at the priority of the threads that answer requests. From a background
/// thread it runs on the server's main runtime while the background thread waits; anywhere
/// else, in place.
///
/// Why: a background thread preempted while it holds such a lock makes every request that
/// needs the lock wait for its next time slice, and at a lower priority that is often
/// milliseconds (measured: a flush's chunk of 256 deletions held the commit lock for 466 µs
/// at p50 but 37 ms at p99 at niceness 10, and single-row INSERTs waited that long).
pub(crate) async fn at_request_priority<T, F>(work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    if !LOWERED.get() {
        return work();
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::runtime::Handle::current().spawn(async move {
        let _ = tx.send(work());
    });
    rx.await.map_err(|_| KalamError::internal("work handed to the main runtime ended without a result"))?
}

/// Most background threads at once; further work waits for one to finish (a client
/// sending FLUSH after FLUSH gets jobs that queue, not threads).
const MAX_BACKGROUND_THREADS: usize = 8;

static BACKGROUND_THREADS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_BACKGROUND_THREADS);

/// Stops background work at shutdown: no new thread starts, and this waits up to `timeout`
/// for the running ones to finish. Whether they all did. (Work cut short is finished or
/// undone by recovery at the next start, as after a crash.)
pub(crate) async fn stop_background(timeout: std::time::Duration) -> bool {
    match tokio::time::timeout(timeout, BACKGROUND_THREADS.acquire_many(MAX_BACKGROUND_THREADS as u32)).await {
        Ok(Ok(all)) => {
            all.forget();
            BACKGROUND_THREADS.close();
            true
        }
        _ => {
            BACKGROUND_THREADS.close();
            false
        }
    }
}

/// Runs background work — flushes, compactions, backups, the policy schedulers' rounds — on
/// a thread of its own at the query threads' lower priority: on a busy machine it then
/// yields the CPU to requests (measured: a 200,000-row flush beside single-row INSERTs).
///
/// The work is an async job (`work` makes it on the thread) that the thread drives to its
/// end: its CPU-heavy parts (encoding Parquet, merging files) run on that thread, and it
/// awaits storage I/O like any other task, so no async worker of a runtime ever computes
/// or waits for it. Its sections under locks that requests take go through
/// [`at_request_priority`]. At most [`MAX_BACKGROUND_THREADS`] run at once. The job runs in
/// the context of `requests`, the runtime that serves requests (`QueryRuntime::requests`;
/// never the query runtime, whose threads have the same low priority). The result arrives
/// through the returned future, which may be dropped without stopping the work.
pub(crate) fn spawn_background<T, F, Job>(
    requests: &Handle,
    name: &'static str,
    work: F,
) -> impl Future<Output = Result<T>> + Send + 'static
where
    F: FnOnce() -> Job + Send + 'static,
    Job: Future<Output = T>,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let runtime = requests.clone();
    runtime.clone().spawn(async move {
        let Ok(permit) = BACKGROUND_THREADS.acquire().await else { return };
        let spawned = std::thread::Builder::new().name(format!("kalamdb-{name}")).spawn(move || {
            let _permit = permit;
            lower_priority();
            LOWERED.set(true);
            // This thread is the job's own (one of at most MAX_BACKGROUND_THREADS, bounded by
            // the permit above), never a runtime worker: waiting here stalls no other task.
            let _ = tx.send(runtime.block_on(work()));
        });
        if let Err(e) = spawned {
            tracing::error!("cannot start a {name} thread: {e}");
        }
    });
    async move {
        rx.await.map_err(|_| {
            KalamError::internal(format!("the {name} work ended without a result (no thread, or a panic)"))
        })
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn niceness() -> i32 {
        // SAFETY: plain system calls on the calling thread.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::syscall(libc::SYS_gettid) as libc::id_t) }
    }

    #[tokio::test]
    async fn background_work_hands_its_locked_sections_to_request_threads() {
        let request = niceness();
        let (background, handed) = spawn_background(&Handle::current(), "test", || async {
            (niceness(), at_request_priority(|| Ok(niceness())).await.unwrap())
        })
        .await
        .unwrap();
        assert_eq!(background, (request + QUERY_THREAD_NICENESS).min(19));
        assert_eq!(handed, request);
        // Elsewhere it runs in place.
        assert_eq!(at_request_priority(|| Ok(niceness())).await.unwrap(), request);
    }

    /// The calling thread's time slice (ns), where the kernel lets a normal thread choose it
    /// (Linux 6.12 and later).
    fn slice() -> Option<u64> {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
        let mut version = release.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
        if (version.next()?, version.next()?) < (6, 12) {
            return None;
        }
        let sched = std::fs::read_to_string("/proc/thread-self/sched").ok()?;
        sched.lines().find(|l| l.starts_with("se.slice"))?.split(':').nth(1)?.trim().parse().ok()
    }

    #[test]
    fn request_threads_ask_for_a_short_slice_and_threads_they_start_for_background_work_do_not() {
        std::thread::spawn(|| {
            let Some(default) = slice() else { return };
            assert_ne!(default, REQUEST_SLICE_NANOS);
            let process = niceness();
            request_thread_started();
            assert_eq!((slice(), niceness()), (Some(REQUEST_SLICE_NANOS), process));
            let background = std::thread::spawn(|| {
                lower_priority();
                (slice(), niceness())
            });
            assert_eq!(background.join().unwrap(), (Some(default), QUERY_THREAD_NICENESS));
        })
        .join()
        .unwrap();
    }
}
