//! The storage thread: owns the SQLite connection (blocking I/O stays off
//! the async runtime) and serves commands from a bounded channel, in order.
//! Enqueues waiting together are committed in one transaction (group
//! commit), so concurrent producers share one fsync.

use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::error::OutboxError;
use crate::store::{Accepted, DeadLetter, Prepared, Row, Store};

/// Enqueues committed together at most.
const GROUP_COMMIT: usize = 64;

type Op = Box<dyn FnOnce(&mut Store) + Send>;

enum Cmd {
    Enqueue(Prepared, oneshot::Sender<Result<Accepted, OutboxError>>),
    Op(Op),
    Close(oneshot::Sender<()>),
}

/// Handle to the storage thread; cheap to clone.
#[derive(Clone)]
pub(crate) struct Db {
    tx: mpsc::Sender<Cmd>,
}

impl Db {
    /// Starts the thread. `notify` is woken whenever new records are stored.
    pub fn spawn(store: Store, notify: Arc<Notify>) -> Result<Db, OutboxError> {
        let (tx, rx) = mpsc::channel(256);
        std::thread::Builder::new()
            .name("outbox-db".into())
            .spawn(move || serve(store, rx, &notify))
            .map_err(|source| OutboxError::Dir {
                path: "outbox-db thread".into(),
                source,
            })?;
        Ok(Db { tx })
    }

    pub async fn enqueue(&self, record: Prepared) -> Result<Accepted, OutboxError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Enqueue(record, reply))
            .await
            .map_err(|_| OutboxError::Closed)?;
        rx.await.map_err(|_| OutboxError::Closed)?
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, OutboxError> {
        let (reply, rx) = oneshot::channel();
        let op: Op = Box::new(move |s| {
            let _ = reply.send(f(s));
        });
        self.tx
            .send(Cmd::Op(op))
            .await
            .map_err(|_| OutboxError::Closed)?;
        Ok(rx.await.map_err(|_| OutboxError::Closed)??)
    }

    pub async fn next_pending(&self) -> Result<Option<Row>, OutboxError> {
        self.run(|s| s.next_pending()).await
    }

    pub async fn set_pic_url(&self, seq: i64, url: String) -> Result<(), OutboxError> {
        self.run(move |s| s.set_pic_url(seq, &url)).await
    }

    pub async fn record_failure(&self, seq: i64, error: String) -> Result<u32, OutboxError> {
        self.run(move |s| s.record_failure(seq, &error)).await
    }

    pub async fn delivered(&self, seq: i64) -> Result<bool, OutboxError> {
        self.run(move |s| s.delivered(seq)).await
    }

    pub async fn dead_letter(&self, seq: i64, error: String) -> Result<bool, OutboxError> {
        self.run(move |s| s.dead_letter(seq, &error)).await
    }

    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, OutboxError> {
        self.run(move |s| s.dead_letters(limit)).await
    }

    pub async fn requeue_dead(&self) -> Result<u64, OutboxError> {
        self.run(|s| s.requeue_dead()).await
    }

    /// Lets the thread finish what is queued before this, close the
    /// database (checkpointing the WAL) and exit.
    pub async fn close(&self) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Cmd::Close(done)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

fn serve(mut store: Store, mut rx: mpsc::Receiver<Cmd>, notify: &Notify) {
    let mut carried: Option<Cmd> = None;
    loop {
        let Some(cmd) = carried.take().or_else(|| rx.blocking_recv()) else {
            return;
        };
        match cmd {
            Cmd::Enqueue(first, reply) => {
                let mut records = vec![first];
                let mut replies = vec![reply];
                while records.len() < GROUP_COMMIT {
                    match rx.try_recv() {
                        Ok(Cmd::Enqueue(r, reply)) => {
                            records.push(r);
                            replies.push(reply);
                        }
                        Ok(other) => {
                            carried = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                match store.insert(&records) {
                    Ok(answers) => {
                        if answers.iter().any(|a| matches!(a, Ok(Accepted::New))) {
                            notify.notify_one();
                        }
                        for (reply, answer) in replies.into_iter().zip(answers) {
                            let _ = reply.send(answer);
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, records = records.len(), "outbox: storing records failed");
                        let msg = e.to_string();
                        for reply in replies {
                            let _ = reply.send(Err(OutboxError::Storage(msg.clone())));
                        }
                    }
                }
            }
            Cmd::Op(op) => op(&mut store),
            Cmd::Close(done) => {
                drop(store);
                let _ = done.send(());
                return;
            }
        }
    }
}
