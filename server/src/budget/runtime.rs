//! [`QueryRuntime`]: the threads statements and live filters run on.
//!
//! The server's main runtime accepts connections, reads and writes sockets, answers
//! `/health`, and runs the cheap, bounded parts of a request (authentication, parsing
//! within the front end's limits, point reads, commits). It must never wait behind a user's
//! query. Everything that costs CPU in proportion to what a client asked for — planning and
//! executing with DataFusion, turning large results into JSON, evaluating subscription
//! filters, catch-up, WebSocket sessions — runs here instead, on threads with a lower
//! scheduling priority, shared among users by the [`FairScheduler`](super::FairScheduler).
//! (InfluxDB's `DedicatedExecutor` separates its query work from its I/O in the same way.)

use crate::error::{KalamError, Result};
use std::future::Future;
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

/// Niceness of query threads: below the I/O threads, so that under load the kernel still
/// schedules the threads that answer `/health` and move WebSocket frames.
const QUERY_THREAD_NICENESS: i32 = 5;

/// Niceness of the threads that run busy users' statements: the kernel gives every other
/// thread precedence over them.
const BUSY_THREAD_NICENESS: i32 = 19;

/// Which threads a statement runs on, decided when it starts from its user's recent usage
/// ([`FairScheduler::lane`](super::FairScheduler::lane)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Quiet,
    /// The user has used a lot of CPU recently: their statements run on threads of the
    /// lowest priority, so that under load the kernel runs everyone else's first.
    Busy,
}

pub struct QueryRuntime {
    quiet: Option<Runtime>,
    busy: Option<Runtime>,
    handle: Handle,
    busy_handle: Handle,
}

impl std::fmt::Debug for QueryRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueryRuntime")
    }
}

fn build(name: &str, threads: usize, niceness: i32) -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        // Tasks woken from other threads (changes to route, new requests) wait in the
        // global queue; look there often, not only every 61 polls.
        .global_queue_interval(4)
        .thread_name(name)
        .thread_stack_size(32 * 1024 * 1024)
        .max_blocking_threads(64)
        .enable_all()
        .on_thread_start(move || set_niceness(niceness))
        .build()
        .map_err(|e| KalamError::internal(format!("cannot start the query runtime: {e}")))
}

impl QueryRuntime {
    /// Starts the threads for `slots` CPU slots of the fair scheduler: one more than the
    /// slots for quiet work — while every slot computes, routing changes, WebSocket sessions
    /// and newly arrived work still get a thread and queue for a slot, where the scheduler
    /// puts them first if their users have used little — and as many as busy users may hold
    /// for theirs. (Large stacks: planning recurses over expressions.)
    pub fn start(slots: usize) -> Result<QueryRuntime> {
        let quiet = build("kalamdb-query", slots.max(1) + 1, QUERY_THREAD_NICENESS)?;
        let busy = build("kalamdb-busy", slots.max(1), BUSY_THREAD_NICENESS)?;
        let (handle, busy_handle) = (quiet.handle().clone(), busy.handle().clone());
        Ok(QueryRuntime { quiet: Some(quiet), busy: Some(busy), handle, busy_handle })
    }

    /// Runs `future` on the (quiet) query threads.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `future` on the threads of `lane` and waits for it. Dropping the returned future
    /// (a request's deadline passing) aborts the task at its next await.
    pub async fn run<T, F>(&self, lane: Lane, future: F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let handle = match lane {
            Lane::Quiet => &self.handle,
            Lane::Busy => &self.busy_handle,
        };
        let mut task = AbortOnDrop(handle.spawn(future));
        match (&mut task.0).await {
            Ok(outcome) => outcome,
            Err(e) if e.is_panic() => Err(KalamError::internal("a query task panicked")),
            Err(e) => Err(KalamError::internal(format!("a query task ended: {e}"))),
        }
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        // Dropped from inside the main runtime: do not block on running tasks.
        for runtime in [self.quiet.take(), self.busy.take()].into_iter().flatten() {
            runtime.shutdown_background();
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

#[cfg(target_os = "linux")]
fn set_niceness(niceness: i32) {
    // SAFETY: plain system calls on the calling thread; failure only leaves the priority as is.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, niceness);
    }
}

#[cfg(not(target_os = "linux"))]
fn set_niceness(_niceness: i32) {}
