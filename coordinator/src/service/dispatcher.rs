//! The dispatcher: one task that holds every waiting `PollJob` and claims jobs for all of them in one
//! [`JobStore::job_claim`] call.
//!
//! # Why one task
//!
//! A claim is one statement whatever its size, so its cost is shared by every poll waiting when it starts; polls
//! that arrive while it runs wait for the next one. Under load the batches grow by themselves and the database
//! sees one claim per round instead of one per worker (the dispatch benchmark, `bench/dispatch/`). Up to
//! [`MAX_CLAIMS_RUNNING`] claims run at once (as spawned tasks), so a claim waiting on its commit does not hold
//! up the polls behind it; the task itself only gathers polls, starts claims and hands out their jobs.
//!
//! # Wake-ups
//!
//! Waiting polls are woken in memory, never by polling Postgres or `LISTEN`. The dispatcher tracks whether the
//! queue may hold a claimable job: a claim that answers fewer jobs than asked says it does not, and only a
//! wake-up says otherwise: [`DispatcherHandle::wake`] (a run was created, a completion may have opened an
//! export) or [`DispatcherHandle::wake_at`] (a failed or rescued job is claimable once its backoff passes: a
//! timer). Besides, it looks again every `recheck` while it believes the queue empty, which catches jobs that
//! became claimable without a wake-up in this process (backoffs set before a restart).
//!
//! # Affinity
//!
//! The dispatcher remembers the run and group of the last job it handed each worker and passes them with the
//! claim ([`JobClaimParams::affinity`]), so a worker gets the next cell of the group it has loaded, else the
//! next job of its run, before anything else. The memory is this process's: after a restart a worker's next
//! claim is in plain dispatch order, and its affinity starts again from the job it gets.
//!
//! # Deadlines
//!
//! The dispatcher, not the handler, ends a poll's wait: it answers "no job" at the poll's deadline. A handler
//! that timed out on its own could drop its reply just as a claim for it commits, stranding a leased job until
//! its lease expires. Only a client that goes away mid-poll can still strand one, as a worker dying right
//! after a claim would; the sweeper takes it back.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use sensgrid_proto::v1 as pb;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::convert;
use crate::clock::Clock;
use crate::store::{ClaimAffinity, ClaimedJob, JobClaimParams, JobKind, JobStore, Run, RunId, StoreError, WorkerId};

/// The most polls one claim serves; the rest wait for the next round.
pub const MAX_CLAIM_BATCH: usize = 1024;

/// Claims that may run at once. A second claim serves the polls that arrive while the first waits on the
/// database (its commit, mostly), instead of leaving them to wait for it; more would only split the batches.
pub const MAX_CLAIMS_RUNNING: usize = 2;

/// The dispatcher's settings.
#[derive(Clone, Copy, Debug)]
pub struct DispatcherConfig {
    /// The lease each claim gives.
    pub lease: Duration,
    /// How often to look at a queue believed empty (the sweep interval).
    pub recheck: Duration,
}

/// What a poll is answered: a job, none before the deadline, or an error status.
pub type PollReply = Result<Option<pb::Job>, Status>;

/// A waiting `PollJob`.
struct Waiter {
    worker: WorkerId,
    deadline: Instant,
    reply: oneshot::Sender<PollReply>,
}

enum Message {
    Poll(Waiter),
    /// Jobs may be claimable now.
    Wake,
    /// Jobs become claimable at this time.
    WakeAt(OffsetDateTime),
}

/// The handle the services hold: submits polls and wake-ups. Cheap to clone.
#[derive(Clone)]
pub struct DispatcherHandle {
    tx: mpsc::UnboundedSender<Message>,
}

impl DispatcherHandle {
    /// Waits up to `wait` for a job for `worker` (a registered worker).
    ///
    /// # Errors
    ///
    /// `UNAVAILABLE` when the coordinator is shutting down or the store failed; `NOT_FOUND` when the worker is
    /// not registered.
    pub async fn poll(&self, worker: WorkerId, wait: Duration) -> PollReply {
        let (reply, answer) = oneshot::channel();
        let waiter = Waiter {
            worker,
            deadline: Instant::now() + wait,
            reply,
        };
        self.tx.send(Message::Poll(waiter)).map_err(|_| shutting_down())?;
        answer.await.map_err(|_| shutting_down())?
    }

    /// Says jobs may be claimable now.
    pub fn wake(&self) {
        // After shutdown nobody waits for jobs: nothing to wake.
        let _ = self.tx.send(Message::Wake);
    }

    /// Says a job becomes claimable at `at`.
    pub fn wake_at(&self, at: OffsetDateTime) {
        let _ = self.tx.send(Message::WakeAt(at));
    }
}

fn shutting_down() -> Status {
    Status::unavailable("the coordinator is shutting down")
}

/// The dispatcher task's state.
pub struct Dispatcher<S> {
    store: S,
    clock: Arc<dyn Clock>,
    config: DispatcherConfig,
    stop: CancellationToken,
    rx: mpsc::UnboundedReceiver<Message>,
    /// Polls no claim is running for, in arrival order: the longest waiting are served first.
    waiting: VecDeque<Waiter>,
    /// The claims running, each with the polls it is for.
    claims: JoinSet<Claim>,
    /// When to look at the queue again (backoffs passing, rechecks).
    timers: BinaryHeap<Reverse<Instant>>,
    /// False only after a claim found fewer jobs than asked, until a wake-up or timer.
    queue_may_have_jobs: bool,
    /// Runs never change after creation (their state aside, which jobs do not carry), so each is read once.
    runs: HashMap<RunId, Arc<Run>>,
    /// Each worker's last job handed out: its run and group, the claim's affinity for that worker.
    affinity: HashMap<WorkerId, ClaimAffinity>,
}

/// A finished claim: the polls it was for and what the store answered.
struct Claim {
    waiters: Vec<Waiter>,
    jobs: Result<Vec<ClaimedJob>, StoreError>,
}

impl<S: JobStore> Dispatcher<S> {
    /// Starts the dispatcher task; it answers every waiting poll "no job" and ends once `stop` is cancelled.
    pub fn start(
        store: S,
        clock: Arc<dyn Clock>,
        config: DispatcherConfig,
        stop: CancellationToken,
    ) -> (DispatcherHandle, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let dispatcher = Self {
            store,
            clock,
            config,
            stop,
            rx,
            waiting: VecDeque::new(),
            claims: JoinSet::new(),
            timers: BinaryHeap::new(),
            queue_may_have_jobs: true,
            runs: HashMap::new(),
            affinity: HashMap::new(),
        };
        (DispatcherHandle { tx }, tokio::spawn(dispatcher.run()))
    }

    async fn run(mut self) {
        loop {
            let next = self.next_wakeup();
            tokio::select! {
                biased;
                () = self.stop.cancelled() => {}
                Some(claim) = self.claims.join_next(), if !self.claims.is_empty() => {
                    // A claim task only panics on a bug; its polls see their reply dropped (UNAVAILABLE).
                    if let Ok(claim) = claim {
                        self.finish_claim(claim).await;
                    }
                }
                message = self.rx.recv() => match message {
                    Some(message) => self.accept(message),
                    None => return,
                },
                () = sleep_until(next) => {}
            }
            while let Ok(message) = self.rx.try_recv() {
                self.accept(message);
            }
            if self.stop.is_cancelled() {
                // The running claims have leased their jobs: hand them over before answering the rest.
                while let Some(claim) = self.claims.join_next().await {
                    if let Ok(claim) = claim {
                        self.finish_claim(claim).await;
                    }
                }
                for waiter in self.waiting.drain(..) {
                    let _ = waiter.reply.send(Ok(None));
                }
                return;
            }
            let now = Instant::now();
            while self.timers.peek().is_some_and(|Reverse(at)| *at <= now) {
                self.timers.pop();
                self.queue_may_have_jobs = true;
            }
            self.waiting.retain(|w| !w.reply.is_closed());
            while self.queue_may_have_jobs && !self.waiting.is_empty() && self.claims.len() < MAX_CLAIMS_RUNNING {
                self.start_claim();
            }
            // Polls in a claim are not expired: a poll with `wait_ms` 0 still gets a job that is there.
            let now = Instant::now();
            for waiter in self.take_waiting(|w| w.deadline <= now) {
                let _ = waiter.reply.send(Ok(None));
            }
        }
    }

    fn accept(&mut self, message: Message) {
        match message {
            Message::Poll(waiter) => self.waiting.push_back(waiter),
            Message::Wake => self.queue_may_have_jobs = true,
            Message::WakeAt(at) => {
                let delay = at - self.clock.now();
                if delay.is_positive() {
                    let delay = Duration::try_from(delay).unwrap_or(Duration::MAX);
                    self.timers.push(Reverse(Instant::now() + delay));
                } else {
                    self.queue_may_have_jobs = true;
                }
            }
        }
    }

    /// Removes the waiting polls that match `pred`, keeping the others in order.
    fn take_waiting(&mut self, pred: impl Fn(&Waiter) -> bool) -> VecDeque<Waiter> {
        let (taken, kept) = std::mem::take(&mut self.waiting).into_iter().partition(pred);
        self.waiting = kept;
        taken
    }

    /// The earliest timer or deadline of a poll not being claimed for.
    fn next_wakeup(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse(at)| *at);
        let deadline = self.waiting.iter().map(|w| w.deadline).min();
        timer.into_iter().chain(deadline).min()
    }

    /// Starts one claim, in one store call, for the longest waiting polls (up to [`MAX_CLAIM_BATCH`]).
    fn start_claim(&mut self) {
        let n = self.waiting.len().min(MAX_CLAIM_BATCH);
        let waiters: Vec<Waiter> = self.waiting.drain(..n).collect();
        let params = JobClaimParams {
            now: self.clock.now(),
            lease_duration: self.config.lease,
            workers: waiters.iter().map(|w| w.worker).collect(),
            affinity: waiters
                .iter()
                .filter_map(|w| self.affinity.get(&w.worker).cloned())
                .collect(),
        };
        let store = self.store.clone();
        self.claims.spawn(async move {
            let jobs = store.job_claim(params).await;
            Claim { waiters, jobs }
        });
    }

    /// Hands a finished claim's jobs to its polls in order; the polls left without a job wait again, ahead of
    /// later ones.
    async fn finish_claim(&mut self, claim: Claim) {
        let Claim { waiters, jobs } = claim;
        let jobs = match jobs {
            Ok(jobs) => jobs,
            Err(StoreError::WorkerNotFound { worker, .. }) => {
                // Handlers check registration first, so this is a worker removed behind our back: refuse its
                // polls; the others wait for the next claim.
                let status = Status::not_found(format!("worker_id: worker {worker} is not registered"));
                let (refused, others): (Vec<_>, Vec<_>) = waiters.into_iter().partition(|w| w.worker == worker);
                self.affinity.remove(&worker);
                for waiter in refused {
                    let _ = waiter.reply.send(Err(status.clone()));
                }
                self.requeue(others);
                return;
            }
            Err(error) => {
                let status = convert::store_status(error);
                for waiter in waiters {
                    let _ = waiter.reply.send(Err(status.clone()));
                }
                return;
            }
        };
        if jobs.len() < waiters.len() {
            self.queue_may_have_jobs = false;
            self.timers.push(Reverse(Instant::now() + self.config.recheck));
        }
        // Jobs come in the order of the entries they went to; with affinities those need not be the first
        // ones, so each job goes to the longest waiting poll of its owner (looked up by owner: a batch holds up
        // to MAX_CLAIM_BATCH polls, too many to search for each job).
        let mut polls_of: HashMap<WorkerId, VecDeque<usize>> = HashMap::new();
        for (index, waiter) in waiters.iter().enumerate() {
            polls_of.entry(waiter.worker).or_default().push_back(index);
        }
        let mut waiters: Vec<Option<Waiter>> = waiters.into_iter().map(Some).collect();
        for job in jobs {
            let Some(waiter) = polls_of
                .get_mut(&job.owner)
                .and_then(VecDeque::pop_front)
                .and_then(|index| waiters[index].take())
            else {
                tracing::error!(
                    job_id = job.lease.job_id.0,
                    worker_id = job.owner.0,
                    "a claim leased a job to a worker it was not asked for; the sweeper takes it back"
                );
                continue;
            };
            self.affinity.insert(
                job.owner,
                ClaimAffinity {
                    worker: job.owner,
                    run_id: job.run_id,
                    group_key: job.group_key.clone(),
                },
            );
            let reply = self.job_message(&job).await;
            // Describing the job reads its run; a failure there reaches the worker as the poll's status.
            let described = reply.is_ok();
            if waiter.reply.send(reply).is_err() {
                tracing::warn!(
                    run_id = job.run_id.0,
                    job_id = job.lease.job_id.0,
                    worker_id = job.owner.0,
                    epoch = job.lease.epoch,
                    "the worker left before the job was handed over; the sweeper takes it back when the lease \
                     expires"
                );
            } else if described {
                tracing::info!(
                    run_id = job.run_id.0,
                    job_id = job.lease.job_id.0,
                    worker_id = job.owner.0,
                    epoch = job.lease.epoch,
                    kind = %job.kind,
                    group = job.group_key.as_deref(),
                    ratio = job.ratio,
                    attempt = job.attempt,
                    "job leased"
                );
            }
        }
        self.requeue(waiters.into_iter().flatten().collect());
    }

    /// Puts polls a claim did not serve back at the front, in their order.
    fn requeue(&mut self, waiters: Vec<Waiter>) {
        for waiter in waiters.into_iter().rev() {
            self.waiting.push_front(waiter);
        }
    }

    async fn job_message(&mut self, job: &ClaimedJob) -> PollReply {
        // A run changes when the planner sets its plan before queuing the export, and when `coordinator recover`
        // gives it a Recover section: exports and recover jobs read it afresh.
        let cached = self
            .runs
            .get(&job.run_id)
            .filter(|_| !matches!(job.kind, JobKind::Export | JobKind::Recover));
        let run = match cached {
            Some(run) => run.clone(),
            None => {
                let run = self
                    .store
                    .run_get(job.run_id)
                    .await
                    .map_err(convert::store_status)?
                    .ok_or_else(|| {
                        Status::internal(format!(
                            "job {} names run {}, which is gone",
                            job.lease.job_id, job.run_id
                        ))
                    })?;
                let run = Arc::new(run);
                self.runs.insert(job.run_id, run.clone());
                run
            }
        };
        // A probe prunes by its own candidate, stored with the job rather than the run.
        let probe_plan = match job.kind {
            JobKind::Probe => {
                let stored = self
                    .store
                    .job_get(job.lease.job_id)
                    .await
                    .map_err(convert::store_status)?
                    .and_then(|j| j.plan);
                Some(stored.ok_or_else(|| Status::internal(format!("probe {} has no stored plan", job.lease.job_id)))?)
            }
            _ => None,
        };
        let mut message = convert::job_message(job, &run, probe_plan.as_ref(), self.config.lease);
        if job.kind == JobKind::Recover {
            let recovery = self.recovery(job, &run).await?;
            message.student_digest = recovery.student_digest;
            message.train_set_digest = recovery.train_set_digest;
            message.checkpoint_digest = recovery.checkpoint_digest.unwrap_or_default();
        }
        Ok(Some(message))
    }

    /// What a recover job trains from: the run's exported model, its training set, and the checkpoint an earlier
    /// attempt left, read from the store at each claim (a resumed attempt gets the latest checkpoint).
    async fn recovery(&mut self, job: &ClaimedJob, run: &Run) -> Result<convert::Recovery, Status> {
        let jobs = self
            .store
            .job_list_by_run(job.run_id)
            .await
            .map_err(convert::store_status)?;
        convert::recovery(job.lease.job_id, run, &jobs)
    }
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
