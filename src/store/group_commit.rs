//! Group commit for the sled store: one thread of ours runs `Db::flush`, and a writer waits
//! for a flush that started after its write, so concurrent writers share one fsync.
//!
//! Never sled's `flush_async`: it runs each flush on sled's own I/O pool, and every flush
//! there waits for a log write that needs a thread of the same pool. Sixteen concurrent logins
//! filled the pool with waiting flushes and the whole process hung, `/metrics` included
//! (benches/README.md, "Found: concurrent logins hung the sled store").

use super::StoreError;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use tokio::sync::watch;

/// Tickets handed to writers; the flush thread serves up to the newest.
struct Asked {
    ticket: u64,
    closed: bool,
}

/// What the last finished flush covered, and how it ended.
#[derive(Clone)]
struct Flushed {
    ticket: u64,
    error: Option<String>,
}

pub(super) struct GroupCommit {
    asked: Arc<(Mutex<Asked>, Condvar)>,
    done: watch::Receiver<Flushed>,
    thread: Option<JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the flush thread for `db`.
    pub(super) fn start(db: sled::Db) -> Result<GroupCommit, StoreError> {
        let asked = Arc::new((
            Mutex::new(Asked {
                ticket: 0,
                closed: false,
            }),
            Condvar::new(),
        ));
        let (report, done) = watch::channel(Flushed {
            ticket: 0,
            error: None,
        });
        let shared = asked.clone();
        let thread = std::thread::Builder::new()
            .name("gatehouse-flush".into())
            .spawn(move || flush_loop(&db, &shared, &report))
            .map_err(|e| StoreError::Io(format!("cannot start the store's flush thread: {e}")))?;
        Ok(GroupCommit {
            asked,
            done,
            thread: Some(thread),
        })
    }

    /// Returns once everything written before the call is on disk.
    pub(super) async fn flush(&self) -> Result<(), StoreError> {
        let ticket = {
            let (lock, wake) = &*self.asked;
            let mut asked = lock.lock().unwrap_or_else(PoisonError::into_inner);
            asked.ticket += 1;
            wake.notify_one();
            asked.ticket
        };
        let mut done = self.done.clone();
        // Any flush that started after this ticket was taken covers the write before it.
        let flushed = done
            .wait_for(|f| f.ticket >= ticket)
            .await
            .map_err(|_| StoreError::Io("the store's flush thread stopped".into()))?;
        match &flushed.error {
            None => Ok(()),
            Some(e) => Err(StoreError::Io(format!("store flush failed: {e}"))),
        }
    }
}

fn flush_loop(db: &sled::Db, asked: &(Mutex<Asked>, Condvar), report: &watch::Sender<Flushed>) {
    let (lock, wake) = asked;
    loop {
        let target = {
            let mut state = lock.lock().unwrap_or_else(PoisonError::into_inner);
            while !state.closed && state.ticket <= report.borrow().ticket {
                state = wake.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            if state.closed {
                return;
            }
            state.ticket
        };
        let started = std::time::Instant::now();
        let result = db.flush();
        crate::metrics::STORE_FLUSH_SECONDS.observe(started.elapsed().as_secs_f64());
        report.send_replace(Flushed {
            ticket: target,
            error: result.err().map(|e| e.to_string()),
        });
    }
}

impl Drop for GroupCommit {
    /// Stops the thread (after the flush it may be running), so the store's files are let go
    /// when the store is dropped.
    fn drop(&mut self) {
        let (lock, wake) = &*self.asked;
        lock.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
        wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
