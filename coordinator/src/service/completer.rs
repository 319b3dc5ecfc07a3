//! The completer: one task that gathers concurrent `CompleteJob` calls and writes them with one
//! [`JobStore::job_complete`] call, each caller getting its own outcome.
//!
//! Like the dispatcher's claims, a completion batch is one statement (and one commit) whatever its size:
//! completions that arrive while one is written form the next batch, so the database sees one write per round
//! instead of one per worker.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::convert;
use super::dispatcher::DispatcherHandle;
use crate::clock::Clock;
use crate::store::{CompleteOutcome, Completed, JobCompleteParams, JobCompletion, JobStore};

/// The most completions one store call writes; the rest form the next batch.
pub const MAX_COMPLETE_BATCH: usize = 1024;

struct Pending {
    completion: JobCompletion,
    reply: oneshot::Sender<Result<Completed, Status>>,
}

/// The handle the worker service holds. Cheap to clone.
#[derive(Clone)]
pub struct CompleterHandle {
    tx: mpsc::UnboundedSender<Pending>,
}

impl CompleterHandle {
    /// Writes `completion` with whatever else is pending and answers its outcome and the job it named.
    ///
    /// # Errors
    ///
    /// `UNAVAILABLE` when the store failed or the coordinator is shutting down; the worker retries (a repeated
    /// completion is a no-op).
    pub async fn complete(&self, completion: JobCompletion) -> Result<Completed, Status> {
        let (reply, answer) = oneshot::channel();
        let shutting_down = || Status::unavailable("the coordinator is shutting down");
        self.tx
            .send(Pending { completion, reply })
            .map_err(|_| shutting_down())?;
        answer.await.map_err(|_| shutting_down())?
    }
}

/// The completer task's state.
pub struct Completer<S> {
    store: S,
    clock: Arc<dyn Clock>,
    dispatcher: DispatcherHandle,
    stop: CancellationToken,
    rx: mpsc::UnboundedReceiver<Pending>,
}

impl<S: JobStore> Completer<S> {
    /// Starts the completer task. Once `stop` is cancelled it writes what is pending and ends.
    pub fn start(
        store: S,
        clock: Arc<dyn Clock>,
        dispatcher: DispatcherHandle,
        stop: CancellationToken,
    ) -> (CompleterHandle, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let completer = Self {
            store,
            clock,
            dispatcher,
            stop,
            rx,
        };
        (CompleterHandle { tx }, tokio::spawn(completer.run()))
    }

    async fn run(mut self) {
        loop {
            let first = tokio::select! {
                pending = self.rx.recv() => pending,
                () = self.stop.cancelled() => self.rx.try_recv().ok(),
            };
            let Some(first) = first else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_COMPLETE_BATCH {
                match self.rx.try_recv() {
                    Ok(pending) => batch.push(pending),
                    Err(_) => break,
                }
            }
            self.write(batch).await;
        }
    }

    /// Writes one batch and answers each caller.
    async fn write(&self, batch: Vec<Pending>) {
        let (completions, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.completion, p.reply)).unzip();
        let params = JobCompleteParams {
            now: self.clock.now(),
            completions,
        };
        match self.store.job_complete(params).await {
            Ok(answers) => {
                // An accepted completion may be the last one an export waited for.
                if answers.iter().any(|a| a.outcome == CompleteOutcome::Accepted) {
                    self.dispatcher.wake();
                }
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(error) => {
                let status = convert::store_status(error);
                for reply in replies {
                    let _ = reply.send(Err(status.clone()));
                }
            }
        }
    }
}
