//! Artifact files: content-addressed under `--artifact-dir`, one file per digest, named by it. Their metadata
//! (size, media type) is in the store; the bytes never go through the database.
//!
//! An upload is written to a temporary file (`.upload-*`, removed on every failure path by a drop guard),
//! checked against the digest and size its first chunk announced, synced, and only then renamed to its digest:
//! a file named by a digest always holds exactly those bytes. The metadata is recorded after the rename, so a
//! stored artifact always has its file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sensgrid_proto::v1::{ArtifactChunk, DownloadArtifactRequest, UploadArtifactResponse};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::convert;
use crate::client::CHUNK_BYTES;
use crate::clock::Clock;
use crate::store::{ArtifactPutParams, JobStore};

/// The media type of an upload that names none.
pub const DEFAULT_MEDIA_TYPE: &str = "application/octet-stream";

/// Prefix of the temporary files of uploads in progress.
const UPLOAD_PREFIX: &str = ".upload-";

/// The artifact directory. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ArtifactDir {
    root: Arc<PathBuf>,
    /// Numbers temporary files, so concurrent uploads of one digest never share one.
    next_upload: Arc<AtomicU64>,
}

/// What a download streams.
pub type ChunkStream = ReceiverStream<Result<ArtifactChunk, Status>>;

impl ArtifactDir {
    /// Creates the directory if needed and removes the temporary files a killed coordinator left behind.
    ///
    /// # Errors
    ///
    /// The I/O error of creating or listing the directory, or of removing a leftover.
    pub async fn open(root: PathBuf) -> std::io::Result<Self> {
        tokio::fs::create_dir_all(&root).await?;
        let mut entries = tokio::fs::read_dir(&root).await?;
        while let Some(entry) = entries.next_entry().await? {
            if entry.file_name().to_string_lossy().starts_with(UPLOAD_PREFIX) {
                tokio::fs::remove_file(entry.path()).await?;
            }
        }
        Ok(Self {
            root: Arc::new(root),
            next_upload: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Where the artifact `digest` (checked by the caller) lives.
    pub fn path(&self, digest: &str) -> PathBuf {
        self.root.join(digest)
    }

    /// `UploadArtifact` as both services answer it (workers upload pruned models, admin clients what they
    /// submit): see [`ArtifactDir::upload`].
    ///
    /// # Errors
    ///
    /// As [`ArtifactDir::upload`].
    pub async fn upload_call<S: JobStore>(
        &self,
        store: &S,
        clock: &dyn Clock,
        request: Request<Streaming<ArtifactChunk>>,
    ) -> Result<Response<UploadArtifactResponse>, Status> {
        let digest = self.upload(store, clock, request.into_inner()).await?;
        Ok(Response::new(UploadArtifactResponse { digest }))
    }

    /// `DownloadArtifact` as both services answer it: see [`ArtifactDir::download`].
    ///
    /// # Errors
    ///
    /// As [`ArtifactDir::download`].
    pub async fn download_call<S: JobStore>(
        &self,
        store: &S,
        request: Request<DownloadArtifactRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        Ok(Response::new(self.download(store, &request.into_inner().digest).await?))
    }

    /// Receives an upload, checks it, stores the file and records its metadata; answers the digest.
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` for an empty stream, a malformed digest, a chunk over 1 MiB, or bytes that do not
    /// match the announced size or digest (nothing is stored); `ALREADY_EXISTS` when the digest is stored with
    /// another size or media type; `INTERNAL` for local I/O errors; the stream's own error when the client
    /// breaks it off.
    pub async fn upload<S: JobStore>(
        &self,
        store: &S,
        clock: &dyn Clock,
        mut stream: Streaming<ArtifactChunk>,
    ) -> Result<String, Status> {
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("upload: no chunks; the first must name digest and size_bytes"))?;
        convert::digest("digest", &first.digest)?;
        let digest = first.digest;
        let announced = first.size_bytes;
        let media_type = if first.media_type.is_empty() {
            DEFAULT_MEDIA_TYPE.to_owned()
        } else {
            first.media_type
        };

        let number = self.next_upload.fetch_add(1, Ordering::Relaxed);
        let mut temp = TempFile::create(self.root.join(format!("{UPLOAD_PREFIX}{digest}-{number}"))).await?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut data = first.data;
        let mut index = 0usize;
        loop {
            if data.len() > CHUNK_BYTES {
                return Err(Status::invalid_argument(format!(
                    "upload of {digest}: chunk {index} has {} bytes, more than the {CHUNK_BYTES}-byte limit",
                    data.len()
                )));
            }
            size += data.len() as u64;
            if size > announced {
                return Err(Status::invalid_argument(format!(
                    "upload of {digest}: more than the {announced} bytes of size_bytes"
                )));
            }
            hasher.update(&data);
            temp.write(&data).await?;
            match stream.message().await? {
                Some(chunk) => data = chunk.data,
                None => break,
            }
            index += 1;
        }
        if size != announced {
            return Err(Status::invalid_argument(format!(
                "upload of {digest}: {size} bytes received, size_bytes announced {announced}"
            )));
        }
        let actual = format!("{:x}", hasher.finalize());
        if actual != digest {
            return Err(Status::invalid_argument(format!(
                "upload of {digest}: the bytes hash to {actual}"
            )));
        }
        temp.persist(&self.path(&digest)).await?;
        let params = ArtifactPutParams {
            now: clock.now(),
            digest: digest.clone(),
            size_bytes: size,
            media_type,
        };
        store.artifact_put(params).await.map_err(convert::store_status)?;
        Ok(digest)
    }

    /// Streams the stored artifact `digest` in chunks of at most 1 MiB; the first names the digest, size and
    /// media type.
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` for a malformed digest, `NOT_FOUND` for one that is not stored, `INTERNAL` when its
    /// file cannot be opened; a read error mid-stream ends the stream with `INTERNAL`.
    pub async fn download<S: JobStore>(&self, store: &S, digest: &str) -> Result<ChunkStream, Status> {
        convert::digest("digest", digest)?;
        let artifact = store
            .artifact_get(digest)
            .await
            .map_err(convert::store_status)?
            .ok_or_else(|| Status::not_found(format!("artifact {digest} is not stored")))?;
        let path = self.path(digest);
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| internal_io("opening", &path, &e))?;
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            let mut first = Some(artifact);
            loop {
                let mut data = Vec::with_capacity(CHUNK_BYTES);
                let read = (&mut file).take(CHUNK_BYTES as u64).read_to_end(&mut data).await;
                let chunk = match read {
                    Ok(0) if first.is_none() => return,
                    Ok(_) => match first.take() {
                        Some(artifact) => ArtifactChunk {
                            digest: artifact.digest,
                            size_bytes: artifact.size_bytes,
                            data,
                            media_type: artifact.media_type,
                        },
                        None => ArtifactChunk {
                            data,
                            ..ArtifactChunk::default()
                        },
                    },
                    Err(error) => {
                        let _ = tx.send(Err(internal_io("reading", &path, &error))).await;
                        return;
                    }
                };
                // The client went away: stop reading.
                if tx.send(Ok(chunk)).await.is_err() {
                    return;
                }
            }
        });
        Ok(ReceiverStream::new(rx))
    }
}

fn internal_io(what: &str, path: &Path, error: &std::io::Error) -> Status {
    Status::internal(format!("{what} {}: {error}", path.display()))
}

/// A file being written that is removed unless [`persist`](TempFile::persist)ed.
struct TempFile {
    path: PathBuf,
    file: Option<tokio::fs::File>,
}

impl TempFile {
    async fn create(path: PathBuf) -> Result<Self, Status> {
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| internal_io("creating", &path, &e))?;
        Ok(Self { path, file: Some(file) })
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), Status> {
        let Some(file) = self.file.as_mut() else {
            return Err(Status::internal(format!("{} is already closed", self.path.display())));
        };
        file.write_all(data)
            .await
            .map_err(|e| internal_io("writing", &self.path, &e))
    }

    /// Syncs the file and renames it to `dest`.
    async fn persist(mut self, dest: &Path) -> Result<(), Status> {
        if let Some(file) = self.file.take() {
            file.sync_all()
                .await
                .map_err(|e| internal_io("syncing", &self.path, &e))?;
        }
        tokio::fs::rename(&self.path, dest)
            .await
            .map_err(|e| internal_io("renaming to its digest", &self.path, &e))?;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            // Drop cannot await; the file is small to unlink. A failure leaves a `.upload-` file that the next
            // start removes.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
