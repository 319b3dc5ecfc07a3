//! The gRPC services end to end: the real server on 127.0.0.1:0 in this process, on its own migrated database
//! (`#[sqlx::test]`), driven through `sensgrid_client` as a worker or admin tool would.
//!
//! Lease expiry needs real time here (the server runs on the system clock), so those cases use leases of
//! hundreds of milliseconds and wait on a long poll, never on a sleep: the poll returns as soon as the job is
//! back. Nothing asserts on timing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sensgrid_client::{self as client, AdminClient, Tls, WorkerClient};
use sensgrid_coordinator::clock::SystemClock;
use sensgrid_coordinator::service::{self, ServeError, ServiceConfig, TlsIdentity};
use sensgrid_coordinator::store::pg::PgStore;
use sensgrid_coordinator::store::{Backoff, JobStore, RunCancelOutcome, RunCancelParams, RunId};
use sensgrid_coordinator::submit::{Prepared, prepare};
use sensgrid_proto::v1 as pb;
use sensgrid_proto::v1::admin_service_client::AdminServiceClient;
use sensgrid_proto::v1::worker_service_client::WorkerServiceClient;
use sqlx::PgPool;
use tokio::sync::oneshot;
use tonic::{Code, Status};

const WORKER_TOKEN: &str = "worker-s3cret";
const ADMIN_TOKEN: &str = "admin-s3cret";
const CONFIG_YAML: &str = "Global:\n  use_gpu: false\n";

/// A coordinator serving on 127.0.0.1:0 until [`Server::stop`].
pub(crate) struct Server {
    addr: SocketAddr,
    /// The HTTP listener (dashboard API, /metrics, /healthz).
    http: SocketAddr,
    tls: Option<Tls>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
    artifact_dir: tempfile::TempDir,
    store: PgStore,
}

/// Short heartbeat and lease, fast sweeps and backoffs: what the lease cases need, harmless elsewhere.
fn base_config(artifact_dir: &Path) -> ServiceConfig {
    ServiceConfig {
        heartbeat: Duration::from_millis(200),
        lease: Duration::from_secs(5),
        sweep: Duration::from_millis(100),
        max_attempts: 3,
        backoff: Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(100),
        },
        artifact_dir: artifact_dir.to_owned(),
        worker_token: WORKER_TOKEN.into(),
        admin_token: ADMIN_TOKEN.into(),
        tls: None,
    }
}

impl Server {
    pub(crate) async fn start(pool: PgPool, tweak: impl FnOnce(&mut ServiceConfig)) -> Self {
        Self::start_with_tls(pool, None, tweak).await
    }

    async fn start_with_tls(
        pool: PgPool,
        tls: Option<(TlsIdentity, Tls)>,
        tweak: impl FnOnce(&mut ServiceConfig),
    ) -> Self {
        let artifact_dir = tempfile::tempdir().expect("creating the artifact directory");
        let mut config = base_config(artifact_dir.path());
        let (identity, client_tls) = tls.unzip();
        config.tls = identity;
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let http = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
        let http_addr = http.local_addr().unwrap();
        let store = PgStore::new(pool);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(service::serve(
            store.clone(),
            Arc::new(SystemClock),
            config,
            service::Listeners {
                grpc: listener,
                http: Some(http),
            },
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            http: http_addr,
            tls: client_tls,
            stop,
            task,
            artifact_dir,
            store,
        }
    }

    fn endpoint(&self) -> String {
        match self.tls {
            Some(_) => format!("https://{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// A worker client on its own connection.
    pub(crate) async fn worker(&self) -> WorkerClient {
        let channel = client::connect(&self.endpoint(), self.tls.as_ref())
            .await
            .expect("connecting");
        client::worker_client(channel, WORKER_TOKEN).unwrap()
    }

    pub(crate) async fn admin(&self) -> AdminClient {
        let channel = client::connect(&self.endpoint(), self.tls.as_ref())
            .await
            .expect("connecting");
        client::admin_client(channel, ADMIN_TOKEN).unwrap()
    }

    /// Stops the server and checks that it stopped cleanly.
    pub(crate) async fn stop(self) {
        self.stop.send(()).expect("the server is still running");
        self.task.await.expect("the server task").expect("serving");
    }
}

/// Uploads a model (several chunks) and a dataset; answers their digests.
async fn seed_artifacts(worker: &mut WorkerClient) -> (String, String) {
    let model: Vec<u8> = (0..(2 * client::CHUNK_BYTES + 12_345))
        .map(|i| (i % 251) as u8)
        .collect();
    let model_digest = client::upload_artifact(worker, &model, "application/onnx")
        .await
        .unwrap();
    let dataset_digest = client::upload_artifact(worker, b"a small dataset", "application/x-tar")
        .await
        .unwrap();
    (model_digest, dataset_digest)
}

fn run_request(model: &str, dataset: &str, cells: &[(&str, f64)]) -> pb::CreateRunRequest {
    pb::CreateRunRequest {
        config_yaml: CONFIG_YAML.into(),
        model_digest: model.into(),
        dataset_digest: dataset.into(),
        criterion: "l1_norm".into(),
        cells: cells
            .iter()
            .map(|&(group_key, ratio)| pb::Cell {
                group_key: group_key.into(),
                ratio,
                result_json: String::new(),
            })
            .collect(),
        spec_json: r#"{"name": "service test", "metric": "hmean"}"#.into(),
    }
}

/// Uploads the artifacts and creates a run with these cells.
pub(crate) async fn create_run(server: &Server, cells: &[(&str, f64)]) -> i64 {
    let (model, dataset) = seed_artifacts(&mut server.worker().await).await;
    submit_run(server, run_request(&model, &dataset, cells)).await
}

/// Creates the run `request` describes; answers its id.
async fn submit_run(server: &Server, request: pb::CreateRunRequest) -> i64 {
    server
        .admin()
        .await
        .create_run(request)
        .await
        .unwrap()
        .into_inner()
        .run_id
}

pub(crate) async fn register(worker: &mut WorkerClient, name: &str) -> i64 {
    let request = pb::RegisterRequest {
        name: name.into(),
        device: "cpu".into(),
    };
    worker.register(request).await.unwrap().into_inner().worker_id
}

pub(crate) async fn poll(worker: &mut WorkerClient, worker_id: i64, wait_ms: u32) -> Option<pb::Job> {
    let request = pb::PollJobRequest {
        worker_id,
        wait_ms,
        complete: None,
    };
    worker.poll_job(request).await.unwrap().into_inner().job
}

pub(crate) async fn complete(worker: &mut WorkerClient, job: &pb::Job, metrics: &[(&str, f64)]) -> Result<(), Status> {
    let request = pb::CompleteJobRequest {
        job_id: job.job_id,
        lease_epoch: job.lease_epoch,
        metrics: metrics.iter().map(|&(k, v)| (k.to_owned(), v)).collect(),
        ..Default::default()
    };
    worker.complete_job(request).await.map(drop)
}

async fn heartbeat(worker: &mut WorkerClient, job: &pb::Job) -> bool {
    let request = pb::HeartbeatRequest {
        job_id: job.job_id,
        lease_epoch: job.lease_epoch,
        done: 1,
        total: 2,
    };
    worker.heartbeat(request).await.unwrap().into_inner().keep_going
}

async fn get_run(server: &Server, run_id: i64) -> pb::GetRunResponse {
    server
        .admin()
        .await
        .get_run(pb::GetRunRequest { run_id })
        .await
        .unwrap()
        .into_inner()
}

/// The status code and message of a refused call.
pub(crate) fn refusal<T: std::fmt::Debug>(result: Result<T, Status>) -> (Code, String) {
    let status = result.expect_err("the call should be refused");
    (status.code(), status.message().to_owned())
}

#[sqlx::test(migrator = "sensgrid_coordinator::MIGRATOR")]
async fn full_cycle_register_create_poll_heartbeat_complete_get_run(pool: PgPool) {
    let server = Server::start(pool, |_| {}).await;
    let mut worker = server.worker().await;

    let model: Vec<u8> = (0..(2 * client::CHUNK_BYTES + 12_345))
        .map(|i| (i % 251) as u8)
        .collect();
    let model_digest = client::upload_artifact(&mut worker, &model, "application/onnx")
        .await
        .unwrap();
    assert_eq!(model_digest, client::sha256_hex(&model));
    // Uploading the same bytes again is a no-op.
    assert_eq!(
        client::upload_artifact(&mut worker, &model, "application/onnx")
            .await
            .unwrap(),
        model_digest
    );
    let dataset_digest = client::upload_artifact(&mut worker, b"a small dataset", "application/x-tar")
        .await
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let downloaded = scratch.path().join("model.onnx");
    let size = client::download_artifact(&mut worker, &model_digest, &downloaded)
        .await
        .unwrap();
    assert_eq!(size, model.len() as u64);
    assert!(
        std::fs::read(&downloaded).unwrap() == model,
        "the download differs from the upload"
    );

    let request = run_request(&model_digest, &dataset_digest, &[("conv1", 0.25), ("conv1", 0.5)]);
    let run_id = submit_run(&server, request).await;

    let worker_id = register(&mut worker, "w1").await;
    let baseline = poll(&mut worker, worker_id, 5_000).await.expect("the baseline");
    assert_eq!(
        (
            baseline.run_id,
            baseline.kind(),
            baseline.lease_epoch,
            baseline.lease_ms
        ),
        (run_id, pb::JobKind::Baseline, 1, 5_000)
    );
    assert_eq!(
        (
            baseline.config_yaml.as_str(),
            baseline.model_digest.as_str(),
            baseline.dataset_digest.as_str(),
            baseline.criterion.as_str()
        ),
        (CONFIG_YAML, model_digest.as_str(), dataset_digest.as_str(), "l1_norm")
    );
    assert!(heartbeat(&mut worker, &baseline).await, "a current lease keeps going");
    complete(&mut worker, &baseline, &[("hmean", 0.8), ("num_samples", 24.0)])
        .await
        .unwrap();
    // Repeating an accepted completion is an OK no-op: the first result stays.
    complete(&mut worker, &baseline, &[("hmean", 0.1)]).await.unwrap();

    let mut cells = Vec::new();
    for hmean in [0.7, 0.6] {
        let job = poll(&mut worker, worker_id, 5_000).await.expect("a cell");
        assert_eq!(job.kind(), pb::JobKind::Cell);
        cells.push((job.group_key.clone(), job.ratio));
        complete(&mut worker, &job, &[("hmean", hmean)]).await.unwrap();
    }
    assert_eq!(cells, [("conv1".to_string(), 0.25), ("conv1".to_string(), 0.5)]);
    assert_eq!(poll(&mut worker, worker_id, 0).await, None, "the grid is done");

    let run = get_run(&server, run_id).await;
    assert_eq!((run.run_id, run.state().as_str()), (run_id, "running"));
    let jobs: Vec<_> = run
        .jobs
        .iter()
        .map(|j| {
            let metrics: BTreeMap<_, _> = j.metrics.iter().map(|(k, v)| (k.clone(), *v)).collect();
            (
                j.kind().as_str(),
                j.state().as_str(),
                j.group_key.as_str(),
                j.ratio,
                j.attempt,
                metrics,
            )
        })
        .collect();
    let metrics = |pairs: &[(&str, f64)]| {
        pairs
            .iter()
            .map(|&(k, v)| (k.to_string(), v))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(
        jobs,
        [
            (
                "baseline",
                "done",
                "",
                0.0,
                1,
                metrics(&[("hmean", 0.8), ("num_samples", 24.0)])
            ),
            ("cell", "done", "conv1", 0.25, 1, metrics(&[("hmean", 0.7)])),
            ("cell", "done", "conv1", 0.5, 1, metrics(&[("hmean", 0.6)])),
        ]
    );
    server.stop().await;
}

#[sqlx::test(migrator = "sensgrid_coordinator::MIGRATOR")]
async fn silent_worker_loses_its_job_to_another_and_its_stale_epoch_is_refused(pool: PgPool) {
    let server = Server::start(pool, |c| c.lease = Duration::from_millis(600)).await;
    let run_id = create_run(&server, &[]).await;
    let mut a = server.worker().await;
    let mut b = server.worker().await;
    let a_id = register(&mut a, "a").await;
    let b_id = register(&mut b, "b").await;

    let held = poll(&mut a, a_id, 5_000).await.expect("a gets the baseline");
    // `a` goes silent. `b` waits: the sweeper takes the job back once the lease lapses, after a 10 ms backoff
    // it is claimable again, and the dispatcher hands it to `b`.
    let taken = poll(&mut b, b_id, 20_000).await.expect("the job comes back to b");
    assert_eq!((taken.job_id, taken.lease_epoch), (held.job_id, held.lease_epoch + 1));

    assert!(!heartbeat(&mut a, &held).await, "a's lease is lost");
    let (code, message) = refusal(complete(&mut a, &held, &[("hmean", 0.1)]).await);
    assert_eq!(code, Code::FailedPrecondition, "{message}");
    assert!(message.contains("lease epoch 1 is not current"), "{message}");
    let mut future_epoch = held.clone();
    future_epoch.lease_epoch = 7;
    assert_eq!(
        refusal(complete(&mut a, &future_epoch, &[]).await).0,
        Code::FailedPrecondition
    );

    complete(&mut b, &taken, &[("hmean", 0.9)]).await.unwrap();
    let run = get_run(&server, run_id).await;
    let job = &run.jobs[0];
    assert_eq!((job.state().as_str(), job.attempt), ("done", 2));
    assert_eq!(job.metrics, HashMap::from([("hmean".to_string(), 0.9)]));
    server.stop().await;
}

#[sqlx::test(migrator = "sensgrid_coordinator::MIGRATOR")]
async fn a_completion_held_through_a_coordinator_downtime_longer_than_the_lease_is_accepted(pool: PgPool) {
    let lease = Duration::from_secs(3);
    let server = Server::start(pool.clone(), |c| c.lease = lease).await;
    let run_id = create_run(&server, &[]).await;
    let mut worker = server.worker().await;
    let worker_id = register(&mut worker, "w").await;
    let job = poll(&mut worker, worker_id, 5_000).await.expect("the baseline");

    // The coordinator goes down with the job leased; the worker finishes it meanwhile, and the lease's deadline
    // passes before a coordinator runs again.
    server.stop().await;
    tokio::time::sleep(lease + Duration::from_millis(500)).await;
    let restarted = Server::start(pool, |c| c.lease = lease).await;
    // Several sweeps (every 100 ms): a sweep at start would have taken the lease back by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut worker = restarted.worker().await;
    complete(&mut worker, &job, &[("hmean", 0.5)])
        .await
        .expect("the restarted coordinator accepts the completion of a lease it has not swept yet");
    let run = get_run(&restarted, run_id).await;
    let baseline = &run.jobs[0];
    assert_eq!((baseline.state().as_str(), baseline.attempt), ("done", 1));
    assert_eq!(baseline.metrics, HashMap::from([("hmean".to_string(), 0.5)]));
    restarted.stop().await;
}

#[sqlx::test(migrator = "sensgrid_coordinator::MIGRATOR")]
async fn waiting_polls_are_woken_by_a_new_run_and_by_a_passing_backoff(pool: PgPool) {
    // No sweeps and no rechecks within the test: only the in-memory wake-ups can hand the jobs out.
    let server = Server::start(pool, |c| {
        c.sweep = Duration::from_secs(3600);
        c.backoff = Backoff {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(50),
        };
    })
    .await;
    let mut worker = server.worker().await;
    let worker_id = register(&mut worker, "w").await;
    assert_eq!(
        poll(&mut worker, worker_id, 0).await,
        None,
        "no run yet: the queue is known empty"
    );

    let waiting = {
        let mut worker = server.worker().await;
        tokio::spawn(async move { poll(&mut worker, worker_id, 30_000).await })
    };
    let run_id = create_run(&server, &[]).await;
    let first = waiting.await.unwrap().expect("the new run wakes the waiting poll");
    assert_eq!((first.run_id, first.kind()), (run_id, pb::JobKind::Baseline));

    let fail = |job: &pb::Job, retryable| pb::FailJobRequest {
        job_id: job.job_id,
        lease_epoch: job.lease_epoch,
        error: format!("out of memory (retryable: {retryable})"),
        retryable,
        local: false,
    };
    worker.fail_job(fail(&first, true)).await.unwrap();
    let second = poll(&mut worker, worker_id, 30_000)
        .await
        .expect("the retry, once its backoff passed");
    assert_eq!((second.job_id, second.lease_epoch), (first.job_id, 2));
    worker.fail_job(fail(&second, false)).await.unwrap();
    let (code, _) = refusal(worker.fail_job(fail(&second, false)).await);
    assert_eq!(code, Code::FailedPrecondition, "the lease ended with the first failure");

    let run = get_run(&server, run_id).await;
    let job = &run.jobs[0];
    assert_eq!(
        (job.state().as_str(), job.attempt, job.last_error.as_str()),
        ("failed", 2, "out of memory (retryable: false)")
    );
    server.stop().await;
}

#[sqlx::test(migrator = "sensgrid_coordinator::MIGRATOR")]
async fn cancelled_run_stops_the_heartbeat_and_aborts_the_completion(pool: PgPool) {
    let server = Server::start(pool, |_| {}).await;
    let run_id = create_run(&server, &[("conv1", 0.5)]).await;
    let mut worker = server.worker().await;
    let worker_id = register(&mut worker, "w").await;
    let job = poll(&mut worker, worker_id, 5_000).await.expect("the baseline");
    let cancelled = server
        .store
        .run_cancel(RunCancelParams {
            now: time::OffsetDateTime::now_utc(),
            run_id: RunId(run_id),
        })
        .await
        .unwrap();
    assert_eq!(cancelled, RunCancelOutcome::Cancelled { queued: 1, leased: 1 });
    assert!(!heartbeat(&mut worker, &job).await, "a cancelled run's job stops");
    let (code, message) = refusal(complete(&mut worker, &job, &[("hmean", 0.5)]).await);
    assert_eq!(code, Code::Aborted, "{message}");
    assert_eq!(
        poll(&mut worker, worker_id, 0).await,
        None,
        "nothing of a cancelled run is handed out"
    );
    server.stop().await;
}

#[sqlx::test(migrator = "sensgrid_coordinator::MIGRATOR")]
async fn wrong_or_missing_token_is_unauthenticated_on_both_services(pool: PgPool) {
    let server = Server::start(pool, |_| {}).await;
    let channel = client::connect(&server.endpoint(), None).await.unwrap();
    let register_request = || pb::RegisterRequest {
        name: "w".into(),
        device: "cpu".into(),
    };

    let mut worker_with_admin_token = client::worker_client(channel.clone(), ADMIN_TOKEN).unwrap();
    let (code, message) = refusal(worker_with_admin_token.register(register_request()).await);
    assert_eq!(
        (code, message.as_str()),
        (
            Code::Unauthenticated,
            "WorkerService: the bearer token is not this service's"
        )
    );
    let mut admin_with_worker_token = client::admin_client(channel.clone(), WORKER_TOKEN).unwrap();
    let (code, message) = refusal(admin_with_worker_token.get_run(pb::GetRunRequest { run_id: 1 }).await);
    assert_eq!(
        (code, message.as_str()),
        (
            Code::Unauthenticated,
            "AdminService: the bearer token is not this service's"
        )
    );

    let (code, _) = refusal(
        WorkerServiceClient::new(channel.clone())
            .register(register_request())
            .await,
    );
    assert_eq!(code, Code::Unauthenticated);
    let (code, _) = refusal(
        AdminServiceClient::new(channel.clone())
            .get_run(pb::GetRunRequest { run_id: 1 })
            .await,
    );
    assert_eq!(code, Code::Unauthenticated);

    let mut worker = client::worker_client(channel, WORKER_TOKEN).unwrap();
    assert!(register(&mut worker, "w").await > 0);
    server.stop().await;
}

/// A CA and a certificate for `localhost` it signs: (server identity, CA PEM).
fn certificates() -> (TlsIdentity, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let identity = TlsIdentity {
        cert_pem: cert.pem().into_bytes(),
        key_pem: key.serialize_pem().into_bytes(),
    };
    (identity, ca.pem())
}

#[sqlx::test(migrator = "sensgrid_coordinator::MIGRATOR")]
async fn tls_with_a_generated_ca(pool: PgPool) {
    let (identity, ca_pem) = certificates();
    let trusted = Tls {
        ca_pem: ca_pem.into_bytes(),
        domain: Some("localhost".into()),
    };
    let server = Server::start_with_tls(pool, Some((identity, trusted)), |_| {}).await;
    let mut worker = server.worker().await;
    assert!(register(&mut worker, "tls").await > 0);

    let (_, other_ca) = certificates();
    let untrusted = Tls {
        ca_pem: other_ca.into_bytes(),
        domain: Some("localhost".into()),
    };
    let refused = client::connect(&server.endpoint(), Some(&untrusted)).await;
    assert!(
        matches!(refused, Err(client::ClientError::Connect { .. })),
        "a certificate from another CA is refused: {refused:?}"
    );
    // Plain HTTP/2 against the TLS port gets no answer.
    let plain = format!("http://{}", server.addr);
    if let Ok(channel) = client::connect(&plain, None).await {
        let mut worker = client::worker_client(channel, WORKER_TOKEN).unwrap();
        let request = pb::RegisterRequest {
            name: "plain".into(),
            device: "cpu".into(),
        };
        assert!(worker.register(request).await.is_err(), "plain text is refused");
    }
    server.stop().await;
}

#[sqlx::test(migrator = "sensgrid_coordinator::MIGRATOR")]
async fn bad_requests_get_a_status_naming_the_field_and_the_server_keeps_serving(pool: PgPool) {
    let server = Server::start(pool, |_| {}).await;
    let mut worker = server.worker().await;
    let mut admin = server.admin().await;
    let (model, dataset) = seed_artifacts(&mut worker).await;

    // Over the 4 MiB limit: refused on decoding, never buffered.
    let mut oversized = run_request(&model, &dataset, &[]);
    oversized.config_yaml = "#".repeat(client::MAX_MESSAGE_BYTES + 1);
    let (code, message) = refusal(admin.create_run(oversized).await);
    assert_eq!(code, Code::OutOfRange, "{message}");
    let chunk = pb::ArtifactChunk {
        digest: "0".repeat(64),
        size_bytes: client::CHUNK_BYTES as u64 + 1,
        data: vec![0; client::CHUNK_BYTES + 1],
        media_type: String::new(),
    };
    let (code, message) = refusal(worker.upload_artifact(tokio_stream::iter([chunk])).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("chunk 0 has 1048577 bytes"), "{message}");

    let mut bad_digest = run_request(&model, &dataset, &[]);
    bad_digest.model_digest = "ABC".into();
    let bad_ratio = run_request(&model, &dataset, &[("conv1", 0.5), ("conv1", 1.5)]);
    let mut bad_criterion = run_request(&model, &dataset, &[]);
    bad_criterion.criterion = "l2".into();
    let unknown_model = run_request(&"f".repeat(64), &dataset, &[]);
    for (request, code, start) in [
        (bad_digest, Code::InvalidArgument, "model_digest: expected a sha256"),
        (
            bad_ratio,
            Code::InvalidArgument,
            "run_create: cells[1].ratio: expected a ratio in (0, 1), got 1.5",
        ),
        (
            bad_criterion,
            Code::InvalidArgument,
            "criterion: expected one of l1_norm, l1_norm_group, fpgm",
        ),
        (unknown_model, Code::NotFound, "run_create: model_digest: artifact ffff"),
    ] {
        let (got, message) = refusal(admin.create_run(request).await);
        assert_eq!(got, code, "{message}");
        assert!(message.starts_with(start), "{message}");
    }
    let (code, message) = refusal(admin.get_run(pb::GetRunRequest { run_id: 999 }).await);
    assert_eq!(
        (code, message.as_str()),
        (Code::NotFound, "run_id: run 999 does not exist")
    );

    let (code, message) = refusal(
        worker
            .poll_job(pb::PollJobRequest {
                worker_id: 999,
                wait_ms: 0,
                complete: None,
            })
            .await,
    );
    assert_eq!(
        (code, message.as_str()),
        (Code::NotFound, "worker_id: worker 999 is not registered")
    );
    let job = pb::Job {
        job_id: 0,
        lease_epoch: 1,
        ..pb::Job::default()
    };
    let (code, message) = refusal(complete(&mut worker, &job, &[]).await);
    assert_eq!(
        (code, message.as_str()),
        (Code::InvalidArgument, "job_id: expected a job id above 0, got 0")
    );
    let job = pb::Job {
        job_id: 12_345,
        lease_epoch: 1,
        ..pb::Job::default()
    };
    let (code, message) = refusal(complete(&mut worker, &job, &[]).await);
    assert_eq!(
        (code, message.as_str()),
        (Code::NotFound, "job_id: job 12345 does not exist")
    );
    let (code, _) = refusal(complete(&mut worker, &job, &[("hmean", f64::INFINITY)]).await);
    assert_eq!(code, Code::InvalidArgument);
    let (code, message) = refusal(
        worker
            .download_artifact(pb::DownloadArtifactRequest { digest: "nope".into() })
            .await,
    );
    assert_eq!(code, Code::InvalidArgument, "{message}");
    let unknown = "e".repeat(64);
    let missing = client::download_artifact(&mut worker, &unknown, &server.artifact_dir.path().join("x")).await;
    assert!(
        matches!(&missing, Err(client::ClientError::Rpc { status, .. }) if status.code() == Code::NotFound),
        "{missing:?}"
    );

    // Still serving.
    let worker_id = register(&mut worker, "after").await;
    let run_id = admin
        .create_run(run_request(&model, &dataset, &[("conv1", 0.5)]))
        .await
        .unwrap()
        .into_inner()
        .run_id;
    let job = poll(&mut worker, worker_id, 5_000).await.expect("a job");
    assert_eq!(job.run_id, run_id);
    server.stop().await;
}

#[sqlx::test(migrator = "sensgrid_coordinator::MIGRATOR")]
async fn upload_that_does_not_match_its_digest_or_size_is_refused_and_leaves_no_file(pool: PgPool) {
    let server = Server::start(pool, |_| {}).await;
    let mut worker = server.worker().await;
    let claimed = client::sha256_hex(b"the bytes announced");
    let first = |digest: &str, size: u64, data: &[u8]| pb::ArtifactChunk {
        digest: digest.into(),
        size_bytes: size,
        data: data.to_vec(),
        media_type: "application/onnx".into(),
    };
    let more = |data: &[u8]| pb::ArtifactChunk {
        data: data.to_vec(),
        ..pb::ArtifactChunk::default()
    };
    let cases = [
        (
            vec![first(&claimed, 16, b"other "), more(b"bytes sent")],
            "the bytes hash to",
        ),
        (
            vec![first(&claimed, 19, b"the bytes")],
            "9 bytes received, size_bytes announced 19",
        ),
        (
            vec![first(&claimed, 5, b"the bytes announced")],
            "more than the 5 bytes of size_bytes",
        ),
        (vec![more(b"no digest")], "digest: expected a sha256"),
        (vec![], "upload: no chunks"),
    ];
    for (chunks, expected) in cases {
        let (code, message) = refusal(worker.upload_artifact(tokio_stream::iter(chunks)).await);
        assert_eq!(code, Code::InvalidArgument, "{message}");
        assert!(message.contains(expected), "{message}");
    }
    let left: Vec<_> = std::fs::read_dir(server.artifact_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
    assert_eq!(server.store.artifact_get(&claimed).await.unwrap(), None);
    let (code, _) = refusal(
        worker
            .download_artifact(pb::DownloadArtifactRequest { digest: claimed })
            .await,
    );
    assert_eq!(code, Code::NotFound);
    server.stop().await;
}

#[sqlx::test(migrator = "sensgrid_coordinator::MIGRATOR")]
async fn concurrent_polls_from_many_clients_never_receive_the_same_job(pool: PgPool) {
    const CLIENTS: usize = 24;
    const CELLS: usize = 300;
    let server = Server::start(pool, |_| {}).await;
    let keys: Vec<String> = (0..CELLS).map(|i| format!("conv{i:03}")).collect();
    let cells: Vec<(&str, f64)> = keys.iter().map(|k| (k.as_str(), 0.5)).collect();
    let run_id = create_run(&server, &cells).await;

    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let mut worker = server.worker().await;
        clients.push(tokio::spawn(async move {
            let worker_id = register(&mut worker, &format!("w{i}")).await;
            let mut got = Vec::new();
            while let Some(job) = poll(&mut worker, worker_id, 300).await {
                complete(&mut worker, &job, &[("hmean", 0.5)]).await.unwrap();
                got.push(job.job_id);
            }
            got
        }));
    }
    let mut handed = Vec::new();
    for client in clients {
        handed.extend(client.await.unwrap());
    }
    let distinct: HashSet<_> = handed.iter().collect();
    assert_eq!(distinct.len(), handed.len(), "a job was handed out twice");
    assert_eq!(handed.len(), CELLS + 1, "every job was handed out");
    let run = get_run(&server, run_id).await;
    assert!(
        run.jobs
            .iter()
            .all(|j| j.state() == pb::JobState::Done && j.attempt == 1)
    );
    server.stop().await;
}

#[sqlx::test(migrator = "sensgrid_coordinator::MIGRATOR")]
async fn the_dashboard_api_and_metrics_follow_a_run_and_cancelling_needs_the_admin_token(pool: PgPool) {
    use crate::health::{get, request};
    let server = Server::start(pool.clone(), |_| {}).await;
    let run_id = create_run(&server, &[("conv2d_0.w_0", 0.1), ("conv2d_0.w_0", 0.5)]).await;
    let mut worker = server.worker().await;
    let worker_id = register(&mut worker, "dash-worker").await;
    for hmean in [0.8, 0.6] {
        let job = poll(&mut worker, worker_id, 5_000).await.expect("a job");
        complete(&mut worker, &job, &[("hmean", hmean)]).await.unwrap();
    }
    let leased = poll(&mut worker, worker_id, 5_000).await.expect("the second cell");

    let json = |(code, body): (u16, String)| -> serde_json::Value {
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    };
    let runs = json(get(server.http, "/api/runs").await);
    let progress = &runs["runs"][0];
    assert_eq!(progress["run_id"], run_id);
    assert_eq!(progress["state"], "running");
    assert_eq!(
        (progress["cells_total"].as_u64(), progress["cells_finished"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(progress["by_state"], serde_json::json!({"done": 1, "leased": 1}));
    assert!(
        progress["eta_s"].is_number(),
        "one cell computed gives an ETA: {progress}"
    );

    let run = json(get(server.http, &format!("/api/runs/{run_id}")).await);
    assert_eq!(run["progress"]["run_id"], run_id);
    assert_eq!(run["results"]["metric"], "hmean");
    assert_eq!(run["results"]["baseline"], serde_json::json!({"hmean": 0.8}));
    let states: Vec<(&str, &str)> = run["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["kind"].as_str().unwrap(), j["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("baseline", "done"), ("cell", "done"), ("cell", "leased")]);
    let (code, body) = get(server.http, "/api/runs/999").await;
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("run 999 does not exist"), "{body}");

    let workers = json(get(server.http, "/api/workers").await);
    let listed = &workers["workers"][0];
    assert_eq!(listed["name"], "dash-worker");
    assert_eq!(listed["device"], "cpu");
    assert_eq!(listed["connected"], true);
    assert_eq!(
        listed["jobs"],
        serde_json::json!([{"job_id": leased.job_id, "run_id": run_id, "kind": "cell",
            "group_key": "conv2d_0.w_0", "ratio": leased.ratio}])
    );

    // /metrics: the job gauges equal the store's counts, the counters count what happened.
    let (code, text) = get(server.http, "/metrics").await;
    assert_eq!(code, 200, "{text}");
    let sample = |name: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
    };
    let stored: Vec<(String, i64)> =
        sqlx::query_as("SELECT state::text, count(*) FROM job WHERE run_id = $1 GROUP BY 1")
            .bind(run_id)
            .fetch_all(&pool)
            .await
            .unwrap();
    for state in ["queued", "leased", "done", "failed", "cancelled", "skipped"] {
        let count = stored.iter().find(|(s, _)| s == state).map_or(0, |(_, n)| *n);
        assert_eq!(
            sample(&format!("sensgrid_jobs{{run=\"{run_id}\",state=\"{state}\"}}")),
            count as f64,
            "{state}"
        );
    }
    assert_eq!(sample("sensgrid_job_claims_total"), 3.0);
    assert_eq!(sample("sensgrid_job_completions_total"), 2.0);
    assert_eq!(sample("sensgrid_job_completions_rejected_total"), 0.0);
    assert_eq!(sample("sensgrid_lease_expiries_total"), 0.0);
    assert_eq!(sample("sensgrid_workers_connected"), 1.0);
    assert_eq!(sample("sensgrid_eval_seconds_count"), 2.0);
    assert_eq!(sample("sensgrid_dispatch_latency_seconds_count"), 3.0);

    // Reading needs no token; cancelling needs the admin one (not the worker's).
    let cancel = format!("/api/runs/{run_id}/cancel");
    for headers in [vec![], vec![("Authorization", "Bearer worker-s3cret")]] {
        let (code, body) = request(server.http, "POST", &cancel, &headers).await;
        assert_eq!(code, 401, "{body}");
        assert!(body.contains("admin token"), "{body}");
    }
    assert_eq!(get_run(&server, run_id).await.state(), pb::RunState::Running);
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let cancelled = json(request(server.http, "POST", &cancel, &[("Authorization", &admin)]).await);
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(cancelled["leased_cancelled"], 1);
    assert_eq!(get_run(&server, run_id).await.state(), pb::RunState::Cancelled);
    let refused = complete(&mut worker, &leased, &[("hmean", 0.5)]).await;
    assert_eq!(refusal(refused).0, Code::Aborted);
    let (_, text) = get(server.http, "/metrics").await;
    assert!(text.contains("sensgrid_job_completions_rejected_total 1"), "{text}");

    // /healthz says 503 once the database stops answering.
    assert_eq!(get(server.http, "/healthz").await, (200, "ok".into()));
    pool.close().await;
    let (code, body) = get(server.http, "/healthz").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.starts_with("database: "), "{body}");
    server.stop().await;
}

/// Issue 16, early stop: a cell whose loss exceeds `early_stop_loss` skips its group's queued larger ratios
/// (with the reason) before its completion is answered, while the leased one above it and the other group finish with their real results; the
/// run still ends done, and the results leave the skipped cells out of sen.pickle and mark them in the CSV and
/// JSON, next to the run's eval subset and threshold.
#[sqlx::test(migrator = "sensgrid_coordinator::MIGRATOR")]
async fn early_stop_skips_a_groups_larger_ratios_and_the_results_mark_them(pool: PgPool) {
    use serde_json::{Value, json};

    let server = Server::start(pool, |_| {}).await;
    let mut a1 = server.worker().await;
    let (model, dataset) = seed_artifacts(&mut a1).await;
    let ratios = [0.1, 0.2, 0.3, 0.4];
    let cells: Vec<(&str, f64)> = ["a", "b"]
        .iter()
        .flat_map(|&g| ratios.iter().map(move |&r| (g, r)))
        .collect();
    let group = |key: &str| json!({"key": key, "channels": 8, "params": 72, "flops": 7200, "convs": [key]});
    let spec = json!({
        "name": "early stop", "metric": "hmean", "ratios": ratios, "groups": [group("a"), group("b")],
        "early_stop_loss": 0.5, "eval_samples": {"count": 10, "of": 40, "seed": 7},
    });
    let request = pb::CreateRunRequest {
        spec_json: spec.to_string(),
        ..run_request(&model, &dataset, &cells)
    };
    let run_id = submit_run(&server, request).await;
    let w1 = register(&mut a1, "w1").await;
    let mut a2 = server.worker().await;
    let w2 = register(&mut a2, "w2").await;
    let label = |job: &pb::Job| format!("{} {}", job.group_key, job.ratio);

    let baseline = poll(&mut a1, w1, 5_000).await.expect("the baseline");
    complete(&mut a1, &baseline, &[("hmean", 0.5)]).await.unwrap();
    let a_01 = poll(&mut a1, w1, 5_000).await.expect("a cell");
    let a_02 = poll(&mut a2, w2, 5_000).await.expect("a cell");
    assert_eq!((label(&a_01), label(&a_02)), ("a 0.1".into(), "a 0.2".into()));
    // Loss (0.5 - 0.125) / 0.5 = 0.75 > 0.5: a's queued larger ratios go.
    complete(&mut a1, &a_01, &[("hmean", 0.125)]).await.unwrap();

    // The stop is applied before the completion is answered: the worker that reported the loss cannot claim
    // a's next ratio with its next poll.
    let skipped = |run: &pb::GetRunResponse| run.jobs.iter().filter(|j| j.state() == pb::JobState::Skipped).count();
    assert_eq!(
        skipped(&get_run(&server, run_id).await),
        2,
        "a's larger ratios are skipped when the completion returns"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);

    // w1 held group a, which has nothing left: it goes on with the run's group b, in ratio order.
    for expected in ratios {
        let job = poll(&mut a1, w1, 5_000).await.expect("a cell of b");
        assert_eq!(label(&job), format!("b {expected}"));
        complete(&mut a1, &job, &[("hmean", 0.45)]).await.unwrap();
    }
    assert_eq!(
        poll(&mut a1, w1, 0).await,
        None,
        "a's skipped cells are never handed out"
    );
    // The leased cell above the stop still counts, with its real result.
    complete(&mut a2, &a_02, &[("hmean", 0.0625)]).await.unwrap();

    let run = loop {
        let run = get_run(&server, run_id).await;
        if run.state() != pb::RunState::Running {
            break run;
        }
        assert!(std::time::Instant::now() < deadline, "run {run_id} never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(run.state(), pb::RunState::Done);
    let reason = "early stop: loss 0.7500 at ratio 0.1 exceeds early_stop_loss 0.5";
    let states: Vec<(String, f64, &str, &str)> = run
        .jobs
        .iter()
        .filter(|j| j.kind() == pb::JobKind::Cell)
        .map(|j| (j.group_key.clone(), j.ratio, j.state().as_str(), j.last_error.as_str()))
        .collect();
    let expected: Vec<(String, f64, &str, &str)> = cells
        .iter()
        .map(|&(g, r)| match (g, r) {
            ("a", 0.3 | 0.4) => (g.to_owned(), r, "skipped", reason),
            _ => (g.to_owned(), r, "done", ""),
        })
        .collect();
    assert_eq!(states, expected);

    let workers = server
        .admin()
        .await
        .list_workers(pb::ListWorkersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .workers;
    let out = tempfile::tempdir().unwrap();
    sensgrid_coordinator::results::RunResults::new(&run, &workers)
        .unwrap()
        .write(out.path())
        .unwrap();

    let pickle = std::fs::read(out.path().join("sen.pickle")).unwrap();
    use serde_pickle::{HashableValue, Value as Pickle};
    let Pickle::Dict(groups) = serde_pickle::value_from_slice(&pickle, serde_pickle::DeOptions::new()).unwrap() else {
        panic!("sen.pickle is not a dict");
    };
    let table: BTreeMap<String, BTreeMap<String, f64>> = groups
        .into_iter()
        .map(|(group, losses)| match (group, losses) {
            (HashableValue::String(group), Pickle::Dict(losses)) => {
                let losses = losses
                    .into_iter()
                    .map(|(ratio, loss)| match (ratio, loss) {
                        (HashableValue::F64(r), Pickle::F64(l)) => (r.to_string(), l),
                        other => panic!("not a float ratio and loss: {other:?}"),
                    })
                    .collect();
                (group, losses)
            }
            other => panic!("not a str key and a dict: {other:?}"),
        })
        .collect();
    let losses =
        |pairs: &[(&str, f64)]| -> BTreeMap<String, f64> { pairs.iter().map(|&(r, l)| (r.to_owned(), l)).collect() };
    assert_eq!(
        table["a"],
        losses(&[("0.1", 0.75), ("0.2", 0.875)]),
        "skipped cells are left out"
    );
    assert_eq!(table["b"].len(), 4);

    let csv = std::fs::read_to_string(out.path().join("sensitivities.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "group,ratio,channels_pruned,hmean,loss,state");
    assert_eq!(rows[2], "a,0.2,2,0.0625,0.875,done");
    assert_eq!(rows[3], "a,0.3,2,,,skipped", "no metric and no loss for a skipped cell");
    assert_eq!(rows[4], "a,0.4,3,,,skipped");

    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("sensitivities.json")).unwrap()).unwrap();
    assert_eq!(json["early_stop_loss"], 0.5);
    assert_eq!(json["eval_samples"], json!({"count": 10, "of": 40, "seed": 7}));
    assert_eq!(json["precision"], "fp32", "a spec without a precision ran in fp32");
    let cell = &json["groups"][0]["cells"][2];
    assert_eq!(
        (
            &cell["ratio"],
            &cell["state"],
            &cell["loss"],
            &cell["metrics"],
            &cell["error"]
        ),
        (
            &json!(0.3),
            &json!("skipped"),
            &Value::Null,
            &Value::Null,
            &json!(reason)
        )
    );
    server.stop().await;
}

#[sqlx::test(migrator = "sensgrid_coordinator::MIGRATOR")]
async fn plan_targets_outside_their_range_are_refused_naming_the_field(pool: PgPool) {
    use pb::plan_run_request::Target;
    let server = Server::start(pool, |_| {}).await;
    let run_id = create_run(&server, &[]).await;
    let mut admin = server.admin().await;
    let measured = |max_model_loss: Option<f64>, latency_reduction: Option<f64>, tolerance: Option<f64>| {
        Target::Measured(pb::MeasuredTarget {
            max_model_loss,
            flops_reduction: None,
            latency_reduction,
            tolerance,
        })
    };
    for (target, message) in [
        (
            Target::MaxLoss(f64::NAN),
            "max_loss: expected a share in (0, 1), got NaN",
        ),
        (Target::MaxLoss(-1.0), "max_loss: expected a share in (0, 1), got -1"),
        (Target::MaxLoss(5.0), "max_loss: expected a share in (0, 1), got 5"),
        (
            Target::MaxLoss(f64::INFINITY),
            "max_loss: expected a share in (0, 1), got inf",
        ),
        (
            Target::FlopsReduction(0.0),
            "flops_reduction: expected a share in (0, 1), got 0",
        ),
        (
            measured(Some(f64::NAN), None, None),
            "measured: max_model_loss NaN is outside (0, 1)",
        ),
        (
            measured(None, Some(-1.0), None),
            "measured: latency_reduction -1 is outside (0, 1)",
        ),
        (
            measured(Some(0.1), None, Some(f64::NAN)),
            "measured: tolerance NaN is outside [0, 1)",
        ),
    ] {
        let request = pb::PlanRunRequest {
            run_id,
            target: Some(target),
            export: false,
        };
        let (code, got) = refusal(admin.plan_run(request).await);
        assert_eq!((code, got.as_str()), (Code::InvalidArgument, message));
    }
    server.stop().await;
}

/// The `CreateRun` request of `prepared`, its model and eval set uploaded as the two digests, no cell known.
pub(crate) fn prepared_run_request(
    prepared: &Prepared,
    model_digest: String,
    dataset_digest: String,
) -> pb::CreateRunRequest {
    pb::CreateRunRequest {
        config_yaml: prepared.config_yaml.clone(),
        model_digest,
        dataset_digest,
        criterion: prepared.criterion.into(),
        cells: prepared
            .cells
            .iter()
            .map(|(group_key, ratio)| pb::Cell {
                group_key: group_key.clone(),
                ratio: *ratio,
                result_json: String::new(),
            })
            .collect(),
        spec_json: serde_json::to_string(&prepared.spec).unwrap(),
    }
}

/// A cls run as `coordinator submit` prepares it: the v2.0 cls model at one ratio, a one-image eval set in
/// `dir`, and a `Prune.max_loss` plan that is exported.
pub(crate) fn cls_submission(dir: &Path) -> Prepared {
    prepare(&crate::cli::cls_config(dir, "a.png\t0\n"), &[] as &[String], None).unwrap()
}

/// The plan of a JSON `{"<group key>": ratio}`.
fn plan_of(json: &str) -> serde_json::Value {
    serde_json::from_str(json).unwrap()
}

#[sqlx::test(migrator = "sensgrid_coordinator::MIGRATOR")]
async fn a_plan_without_export_leaves_the_plan_the_runs_export_pruned_by(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let prepared = cls_submission(dir.path());
    let server = Server::start(pool, |_| {}).await;
    let mut worker = server.worker().await;
    let model = std::fs::read(&prepared.model).unwrap();
    let model_digest = client::upload_artifact(&mut worker, &model, "application/onnx")
        .await
        .unwrap();
    let dataset_digest = client::upload_artifact(&mut worker, &prepared.bundle, "application/x-tar")
        .await
        .unwrap();
    let run_id = submit_run(&server, prepared_run_request(&prepared, model_digest, dataset_digest)).await;
    let worker_id = register(&mut worker, "w").await;
    // The baseline scores 0.9 and every cell 0.8: a loss of 1/9 each, under Prune.max_loss 0.5.
    let export = loop {
        let job = poll(&mut worker, worker_id, 5_000).await.expect("a job");
        if job.kind == pb::JobKind::Export as i32 {
            break job;
        }
        let acc = if job.kind == pb::JobKind::Baseline as i32 {
            0.9
        } else {
            0.8
        };
        complete(&mut worker, &job, &[("acc", acc)]).await.unwrap();
    };
    complete(&mut worker, &export, &[("acc", 0.8)]).await.unwrap();
    let exported = get_run(&server, run_id).await.plan_json;
    let exported_plan: HashMap<String, f64> = serde_json::from_str(&exported).unwrap();
    assert_eq!(
        exported_plan,
        export.plan.into_iter().collect(),
        "the export pruned by the run's plan"
    );

    // A tighter threshold without export answers its plan and leaves the exported one as the run's, so
    // plan.json, prune_report.json and pruned.onnx stay of one plan.
    let mut admin = server.admin().await;
    let tighter = |export| pb::PlanRunRequest {
        run_id,
        target: Some(pb::plan_run_request::Target::MaxLoss(0.05)),
        export,
    };
    let answered = admin.plan_run(tighter(false)).await.unwrap().into_inner();
    assert_ne!(plan_of(&answered.plan_json), plan_of(&exported));
    assert_eq!(get_run(&server, run_id).await.plan_json, exported);

    // With export it becomes the run's plan, and the export is queued again by it.
    admin.plan_run(tighter(true)).await.unwrap();
    assert_eq!(
        plan_of(&get_run(&server, run_id).await.plan_json),
        plan_of(&answered.plan_json)
    );
    let export = poll(&mut worker, worker_id, 5_000).await.expect("the export again");
    assert_eq!(export.kind, pb::JobKind::Export as i32);
    let replanned: HashMap<String, f64> = serde_json::from_str(&answered.plan_json).unwrap();
    assert_eq!(export.plan.into_iter().collect::<HashMap<_, _>>(), replanned);
    server.stop().await;
}
