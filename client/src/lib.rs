//! The typed client of a sensgrid coordinator, for workers, admin tools and the dispatch benchmark: a channel
//! (plain or TLS with a given CA), the bearer token on every call, and the streaming artifact calls as plain
//! functions. The worker and the coordinator are peers over the contract in `proto/`; this crate is what both
//! link besides it, so a worker builds no database, plotting or server code.
//!
//! Only tonic, the generated contract, sha2 and tokio for the calls. Jobs are polled, heartbeated, completed
//! and failed with the generated methods of [`WorkerClient`] (`poll_job`, `heartbeat`, `complete_job`,
//! `fail_job`); see the contract in `proto/sensgrid/v1/worker.proto` for what each answers.
//!
//! What both binaries share besides the client:
//! - [`atomic_file`]: every file they write (results, plots, artifacts, a worker's cache) appears whole or not
//!   at all, via a temporary file, fsync and rename.
//! - [`logs`]: the `--log-format`/`--log-level` flags and the `tracing` subscriber; [`stdout`]: their stdout,
//!   which a reader may close early; [`process`]: how they end when signalled.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use sensgrid_client::{self as client, Tls};
//! use sensgrid_proto::v1::{CompleteJobRequest, HeartbeatRequest, PollJobRequest, RegisterRequest};
//!
//! let ca = std::fs::read("ca.pem")?;
//! let tls = Tls { ca_pem: ca, domain: None };
//! let channel = client::connect("https://coordinator:7070", Some(&tls)).await?;
//! let mut worker = client::worker_client(channel, "worker-token")?;
//! let register = RegisterRequest { name: "gpu-node-1".into(), device: "cuda:0".into() };
//! let worker_id = worker.register(register).await?.into_inner().worker_id;
//! let poll = PollJobRequest { worker_id, wait_ms: 30_000, complete: None };
//! if let Some(job) = worker.poll_job(poll).await?.into_inner().job {
//!     client::download_artifact(&mut worker, &job.model_digest, "model.onnx".as_ref()).await?;
//!     let beat = HeartbeatRequest { job_id: job.job_id, lease_epoch: job.lease_epoch, done: 0, total: 500 };
//!     // Every `heartbeat_interval_ms` while evaluating; stop the job when `keep_going` is false.
//!     if worker.heartbeat(beat).await?.into_inner().keep_going {
//!         let metrics = [("hmean".to_string(), 0.71)].into();
//!         let done = CompleteJobRequest { job_id: job.job_id, lease_epoch: job.lease_epoch, metrics, ..Default::default() };
//!         worker.complete_job(done).await?;
//!     }
//! }
//! # Ok(())
//! # }
//! ```

pub mod atomic_file;
pub mod logs;
pub mod process;
pub mod stdout;

use std::path::{Path, PathBuf};

use sensgrid_proto::v1::admin_service_client::AdminServiceClient;
use sensgrid_proto::v1::worker_service_client::WorkerServiceClient;
use sensgrid_proto::v1::{ArtifactChunk, DownloadArtifactRequest};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

use crate::atomic_file::AtomicFile;

/// The largest message either side decodes (4 MiB, tonic's default, stated here so both sides agree): an
/// artifact chunk of [`CHUNK_BYTES`] fits with room to spare; anything bigger is refused with
/// `OUT_OF_RANGE`, never buffered.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The most artifact bytes one [`ArtifactChunk`] carries (1 MiB).
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// The metadata key the bearer token travels in.
pub const AUTHORIZATION: &str = "authorization";

/// A worker-service client that sends the worker token on every call.
pub type WorkerClient = WorkerServiceClient<InterceptedService<Channel, Bearer>>;

/// An admin-service client that sends the admin token on every call.
pub type AdminClient = AdminServiceClient<InterceptedService<Channel, Bearer>>;

/// What connecting or a client helper can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The token cannot travel as metadata (it must be visible ASCII, without spaces).
    #[error("token: expected visible ASCII characters without spaces")]
    InvalidToken,
    /// The endpoint is not a URL tonic accepts, or its TLS settings are refused.
    #[error("endpoint '{endpoint}': {source}")]
    Endpoint {
        /// The endpoint as given.
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// No connection could be made.
    #[error("connecting to {endpoint}: {source}")]
    Connect {
        /// The endpoint as given.
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// The coordinator answered a call with an error. The status is not the error's source: its Display
    /// repeats the message this one already gives, which `{:#}` would print twice.
    #[error("{call}: {}: {}", .status.code(), .status.message())]
    Rpc {
        /// The call, e.g. `UploadArtifact`.
        call: &'static str,
        status: Status,
    },
    /// Reading or writing a local file failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A downloaded artifact is not what was asked for.
    #[error("artifact {digest}: {reason}")]
    Artifact {
        /// The digest asked for.
        digest: String,
        /// What does not match.
        reason: String,
    },
}

/// TLS settings of a client: the CA that signed the coordinator's certificate.
#[derive(Clone, Debug)]
pub struct Tls {
    /// PEM certificates to trust (the coordinator's CA); the system roots are not consulted.
    pub ca_pem: Vec<u8>,
    /// The name to check the certificate against; the endpoint's host when `None`.
    pub domain: Option<String>,
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone, Debug)]
pub struct Bearer {
    header: MetadataValue<Ascii>,
}

impl Bearer {
    /// The interceptor for `token`.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidToken`] when the token is empty or not visible ASCII.
    pub fn new(token: &str) -> Result<Self, ClientError> {
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ClientError::InvalidToken);
        }
        let header = format!("Bearer {token}")
            .parse()
            .map_err(|_| ClientError::InvalidToken)?;
        Ok(Self { header })
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert(AUTHORIZATION, self.header.clone());
        Ok(request)
    }
}

/// Connects to a coordinator at `endpoint` (`http://host:port`, or `https://host:port` with `tls`).
///
/// # Errors
///
/// [`ClientError::Endpoint`] for a malformed endpoint or refused TLS settings, [`ClientError::Connect`] when
/// the coordinator cannot be reached or the TLS handshake fails.
pub async fn connect(endpoint: &str, tls: Option<&Tls>) -> Result<Channel, ClientError> {
    let bad_endpoint = |source| ClientError::Endpoint {
        endpoint: endpoint.to_owned(),
        source,
    };
    let mut builder = Endpoint::from_shared(endpoint.to_owned())
        .map_err(bad_endpoint)?
        .tcp_nodelay(true);
    if let Some(tls) = tls {
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
        if let Some(domain) = &tls.domain {
            config = config.domain_name(domain.clone());
        }
        builder = builder.tls_config(config).map_err(bad_endpoint)?;
    }
    builder.connect().await.map_err(|source| ClientError::Connect {
        endpoint: endpoint.to_owned(),
        source,
    })
}

/// A worker-service client on `channel` that sends `token`.
///
/// # Errors
///
/// [`ClientError::InvalidToken`], see [`Bearer::new`].
pub fn worker_client(channel: Channel, token: &str) -> Result<WorkerClient, ClientError> {
    Ok(
        WorkerServiceClient::with_interceptor(channel, Bearer::new(token)?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES),
    )
}

/// An admin-service client on `channel` that sends `token`. Its decode limit is raised to 256 MiB: a run's
/// job list grows with its grid, and the admin asked for it.
///
/// # Errors
///
/// [`ClientError::InvalidToken`], see [`Bearer::new`].
pub fn admin_client(channel: Channel, token: &str) -> Result<AdminClient, ClientError> {
    Ok(AdminServiceClient::with_interceptor(channel, Bearer::new(token)?).max_decoding_message_size(256 << 20))
}

/// A chunk stream as the artifact calls send it (a concrete type: boxed `dyn Stream`s trip the compiler's
/// `Send` checks of these futures).
pub type ChunkStream = tokio_stream::wrappers::ReceiverStream<ArtifactChunk>;

/// The artifact calls, which both services offer (workers fetch models and bundles and upload pruned models;
/// admin tools upload what they submit and fetch what runs produced), so the functions below serve either
/// client.
pub trait ArtifactCalls {
    /// `UploadArtifact`: answers the stored digest.
    fn upload(&mut self, chunks: ChunkStream) -> impl std::future::Future<Output = Result<String, Status>> + Send;
    /// `DownloadArtifact`: the chunk stream.
    fn download(
        &mut self,
        digest: String,
    ) -> impl std::future::Future<Output = Result<tonic::Streaming<ArtifactChunk>, Status>> + Send;
}

/// Both generated clients have the same artifact methods; one body serves them.
macro_rules! artifact_calls {
    ($($client:ty),*) => {$(
        impl ArtifactCalls for $client {
            fn upload(
                &mut self,
                chunks: ChunkStream,
            ) -> impl std::future::Future<Output = Result<String, Status>> + Send {
                // A clone shares the channel; the call's future then owns what it uses.
                let mut client = self.clone();
                async move { Ok(client.upload_artifact(chunks).await?.into_inner().digest) }
            }

            fn download(
                &mut self,
                digest: String,
            ) -> impl std::future::Future<Output = Result<tonic::Streaming<ArtifactChunk>, Status>> + Send {
                let mut client = self.clone();
                async move {
                    Ok(client
                        .download_artifact(DownloadArtifactRequest { digest })
                        .await?
                        .into_inner())
                }
            }
        }
    )*};
}

artifact_calls!(WorkerClient, AdminClient);

/// The lowercase hex sha256 of `data`, as artifacts are named.
pub fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

/// Whether `digest` is 64 lowercase hex digits (a sha256), the form [`sha256_hex`] gives.
pub fn is_sha256_hex(digest: &str) -> bool {
    digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Uploads `data` as an artifact of `media_type` and answers its digest. Uploading stored bytes again is a
/// no-op.
///
/// # Errors
///
/// [`ClientError::Rpc`] when the coordinator refuses the upload.
pub async fn upload_artifact(
    client: &mut impl ArtifactCalls,
    data: &[u8],
    media_type: &str,
) -> Result<String, ClientError> {
    let digest = sha256_hex(data);
    let chunks: Vec<ArtifactChunk> = if data.is_empty() {
        vec![first_chunk(&digest, 0, media_type, Vec::new())]
    } else {
        data.chunks(CHUNK_BYTES)
            .enumerate()
            .map(|(i, piece)| match i {
                0 => first_chunk(&digest, data.len() as u64, media_type, piece.to_vec()),
                _ => ArtifactChunk {
                    data: piece.to_vec(),
                    ..ArtifactChunk::default()
                },
            })
            .collect()
    };
    let (tx, rx) = tokio::sync::mpsc::channel(chunks.len());
    for chunk in chunks {
        tx.try_send(chunk).expect("the channel holds every chunk");
    }
    drop(tx);
    client
        .upload(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|status| ClientError::Rpc {
            call: "UploadArtifact",
            status,
        })
}

/// Uploads the file at `path` as an artifact of `media_type` and answers its digest. The file is read twice
/// (to hash it, then to send it), never held in memory whole.
///
/// # Errors
///
/// [`ClientError::Io`] when the file cannot be read, [`ClientError::Rpc`] when the coordinator refuses it.
pub async fn upload_artifact_file(
    client: &mut impl ArtifactCalls,
    path: &Path,
    media_type: &str,
) -> Result<String, ClientError> {
    let io = |source| ClientError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = file.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let digest = format!("{:x}", hasher.finalize());

    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let reader = {
        let digest = digest.clone();
        let media_type = media_type.to_owned();
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let mut data = Vec::with_capacity(CHUNK_BYTES);
                let n = (&mut file).take(CHUNK_BYTES as u64).read_to_end(&mut data).await?;
                if n == 0 && !first {
                    return Ok(());
                }
                let chunk = if first {
                    first_chunk(&digest, size, &media_type, data)
                } else {
                    ArtifactChunk {
                        data,
                        ..ArtifactChunk::default()
                    }
                };
                first = false;
                // The call ended early (refused): its error is what to report.
                if tx.send(chunk).await.is_err() || n == 0 {
                    return Ok(());
                }
            }
        })
    };
    let answer = client.upload(tokio_stream::wrappers::ReceiverStream::new(rx)).await;
    let read = reader.await.unwrap_or_else(|join| Err(std::io::Error::other(join)));
    let response = answer.map_err(|status| ClientError::Rpc {
        call: "UploadArtifact",
        status,
    })?;
    read.map_err(io)?;
    Ok(response)
}

fn first_chunk(digest: &str, size: u64, media_type: &str, data: Vec<u8>) -> ArtifactChunk {
    ArtifactChunk {
        digest: digest.to_owned(),
        size_bytes: size,
        data,
        media_type: media_type.to_owned(),
    }
}

/// Downloads the artifact `digest` to `dest` through an [`AtomicFile`] (see [`download_artifact_into`]), so
/// `dest` never holds a partial or wrong artifact. Answers the size.
///
/// # Errors
///
/// As [`download_artifact_into`]; [`ClientError::Io`] when the file cannot be created or renamed.
pub async fn download_artifact(client: &mut impl ArtifactCalls, digest: &str, dest: &Path) -> Result<u64, ClientError> {
    let io = |source| ClientError::Io {
        path: dest.to_owned(),
        source,
    };
    let file = AtomicFile::create(dest).map_err(io)?;
    let (file, size) = download_artifact_into(client, digest, file).await?;
    file.commit_async().await.map_err(io)?;
    Ok(size)
}

/// Downloads the artifact `digest` into `file`, checked against the digest and the announced size and synced
/// to disk; its commit is the caller's (`results` commits it with the files it writes). Answers the file and
/// the size.
///
/// # Errors
///
/// [`ClientError::Rpc`] when the coordinator refuses (`NOT_FOUND` for an unknown digest) or the stream breaks,
/// [`ClientError::Artifact`] when the bytes do not match, [`ClientError::Io`] for local file errors.
pub async fn download_artifact_into(
    client: &mut impl ArtifactCalls,
    digest: &str,
    mut file: AtomicFile,
) -> Result<(AtomicFile, u64), ClientError> {
    let rpc = |status| ClientError::Rpc {
        call: "DownloadArtifact",
        status,
    };
    let dest = file.dest().to_owned();
    let io = |source| ClientError::Io {
        path: dest.clone(),
        source,
    };
    let mut stream = client.download(digest.to_owned()).await.map_err(rpc)?;
    let mut hasher = Sha256::new();
    let mut announced = None;
    while let Some(chunk) = stream.message().await.map_err(rpc)? {
        announced.get_or_insert(chunk.size_bytes);
        hasher.update(&chunk.data);
        file.write_async(chunk.data).await.map_err(io)?;
    }
    let size = file.written();
    let mismatch = |reason| ClientError::Artifact {
        digest: digest.to_owned(),
        reason,
    };
    let actual = format!("{:x}", hasher.finalize());
    if actual != digest {
        return Err(mismatch(format!("the downloaded bytes hash to {actual}")));
    }
    if announced != Some(size) {
        return Err(mismatch(format!(
            "{size} bytes downloaded, {} announced",
            announced.map_or("none".into(), |a| a.to_string())
        )));
    }
    let file = file.sync_async().await.map_err(io)?;
    Ok((file, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_refuses_tokens_that_cannot_travel_as_metadata() {
        assert!(matches!(Bearer::new(""), Err(ClientError::InvalidToken)));
        assert!(matches!(Bearer::new("two words"), Err(ClientError::InvalidToken)));
        assert!(matches!(Bearer::new("tök"), Err(ClientError::InvalidToken)));
        let mut bearer = Bearer::new("s3cret").unwrap();
        let request = bearer.call(Request::new(())).unwrap();
        assert_eq!(request.metadata().get(AUTHORIZATION).unwrap(), "Bearer s3cret");
    }

    #[test]
    fn sha256_hex_is_lowercase_hex() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(is_sha256_hex(&sha256_hex(b"")));
    }
}
