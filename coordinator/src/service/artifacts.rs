//! Artifact files: content-addressed under `--artifact-dir`, one file per digest, named by it. Their metadata
//! (size, media type) is in the store; the bytes never go through the database.
//!
//! An upload is written through an [`AtomicFile`] (a temporary file, removed on every failure path), checked
//! against the digest and size its first chunk announced, synced, read back from disk and checked again, and
//! only then renamed to its digest: a file named by a digest holds exactly those bytes. The metadata is
//! recorded after the rename, so a stored artifact always has its file, and a failed upload (a full disk
//! included) leaves neither a file nor a row (issue 26).
//!
//! A file can still be damaged after it was stored (a disk error, a hand at work): [`ArtifactDir::is_intact`]
//! checks it before `StatArtifact` answers that the digest is stored, so the client uploads it again and the
//! upload repairs it, and a download refuses a file whose size is not its row's.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sensgrid_proto::v1::{ArtifactChunk, DownloadArtifactRequest, UploadArtifactResponse};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::convert;
use crate::clock::Clock;
use crate::store::{Artifact, ArtifactPutParams, JobStore};
use sensgrid_client::CHUNK_BYTES;
use sensgrid_client::atomic_file::{self, AtomicFile};

/// The media type of an upload that names none.
pub const DEFAULT_MEDIA_TYPE: &str = "application/octet-stream";

/// Prefix of the temporary files of uploads of earlier versions, removed at start like the current ones.
const LEGACY_UPLOAD_PREFIX: &str = ".upload-";

/// The largest file `StatArtifact` hashes to check it (up to a tenth of a second); a larger one has its size
/// checked only.
const HASH_ON_STAT_MAX_BYTES: u64 = 64 << 20;

/// The artifact directory. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ArtifactDir {
    root: Arc<PathBuf>,
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
            let name = entry.file_name();
            if atomic_file::is_temp(&name) || name.to_string_lossy().starts_with(LEGACY_UPLOAD_PREFIX) {
                tokio::fs::remove_file(entry.path()).await?;
            }
        }
        Ok(Self { root: Arc::new(root) })
    }

    /// Where the artifact `digest` (checked by the caller) lives.
    pub fn path(&self, digest: &str) -> PathBuf {
        self.root.join(digest)
    }

    /// Whether the stored `artifact`'s file is whole: its size, and its digest when it is at most
    /// [`HASH_ON_STAT_MAX_BYTES`]. A damaged one is logged and answered `false`, so that `StatArtifact` says
    /// "not stored" and the client's upload replaces it (a full disk once stored truncated files that every
    /// later submit then skipped, issue 26).
    ///
    /// # Errors
    ///
    /// `INTERNAL` when the file cannot be read.
    pub async fn is_intact(&self, artifact: &Artifact) -> Result<bool, Status> {
        let path = self.path(&artifact.digest);
        let (size, digest) = (artifact.size_bytes, artifact.digest.clone());
        let hash = (size <= HASH_ON_STAT_MAX_BYTES).then_some(digest);
        let damage = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || damage(&path, size, hash.as_deref()))
        }
        .await
        .map_err(|e| Status::internal(format!("checking {}: {e}", path.display())))?;
        match damage.map_err(|e| internal_io("checking", &path, &e))? {
            None => Ok(true),
            Some(damage) => {
                tracing::warn!(
                    digest = artifact.digest,
                    path = %path.display(),
                    damage,
                    "a stored artifact's file is damaged: answering it is not stored, so that it is uploaded again"
                );
                Ok(false)
            }
        }
    }

    /// The status of an upload of `digest` that could not be stored: `RESOURCE_EXHAUSTED` for a full disk,
    /// else `INTERNAL`, naming the artifact dir.
    fn storing_status(&self, digest: &str, error: io::Error) -> Status {
        let message = format!(
            "storing artifact {digest} in --artifact-dir {}: {error}; nothing is stored",
            self.root.display()
        );
        tracing::error!(digest, error = %error, "an upload could not be stored");
        match error.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Status::resource_exhausted(message),
            _ => Status::internal(message),
        }
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
    /// another size or media type; `RESOURCE_EXHAUSTED` when the artifact dir's disk is full, `INTERNAL` for
    /// other local I/O errors, and a file that does not read back as announced (each naming the artifact dir;
    /// nothing is stored); the stream's own error when the client breaks it off.
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

        let storing = |error| self.storing_status(&digest, error);
        let mut temp = AtomicFile::create(self.path(&digest)).map_err(storing)?;
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
            temp.write_async(data).await.map_err(storing)?;
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
        // What gets the digest's name is what the disk holds, read back, not what was received.
        let checked = {
            let digest = digest.clone();
            tokio::task::spawn_blocking(move || {
                temp.sync()?;
                if let Some(damage) = damage(temp.temp_path(), announced, Some(&digest))? {
                    return Err(io::Error::other(format!(
                        "{} read back: {damage}",
                        temp.dest().display()
                    )));
                }
                temp.commit()
            })
            .await
            .map_err(|e| storing(io::Error::other(e)))?
        };
        checked.map_err(storing)?;
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
    /// file cannot be opened, `DATA_LOSS` when its size is not the stored one; a read error mid-stream ends the
    /// stream with `INTERNAL`.
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
        let len = file
            .metadata()
            .await
            .map_err(|e| internal_io("reading the size of", &path, &e))?
            .len();
        if len != artifact.size_bytes {
            tracing::error!(digest, path = %path.display(), len, size_bytes = artifact.size_bytes, "a stored artifact's file is damaged");
            return Err(Status::data_loss(format!(
                "artifact {digest}: its file {} holds {len} of its {} bytes; uploading it again (submit) repairs it",
                path.display(),
                artifact.size_bytes
            )));
        }
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

/// Why the file at `path` is not the artifact of `size` bytes (and of `digest`, when given, which costs reading
/// it): a missing file, another size, other bytes; `None` when it is.
///
/// # Errors
///
/// The I/O error of reading it.
fn damage(path: &Path, size: u64, digest: Option<&str>) -> io::Result<Option<String>> {
    let len = match std::fs::metadata(path) {
        Ok(metadata) => metadata.len(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Some("its file is missing".into())),
        Err(error) => return Err(error),
    };
    if len != size {
        return Ok(Some(format!("its file holds {len} of its {size} bytes")));
    }
    let Some(digest) = digest else {
        return Ok(None);
    };
    let mut hasher = Sha256::new();
    io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    let actual = format!("{:x}", hasher.finalize());
    Ok((actual != digest).then(|| format!("its file hashes to {actual}")))
}

fn internal_io(what: &str, path: &Path, error: &std::io::Error) -> Status {
    Status::internal(format!("{what} {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_names_a_missing_file_another_size_and_other_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("artifact");
        let bytes = b"the stored bytes";
        let digest = format!("{:x}", Sha256::digest(bytes));
        let size = bytes.len() as u64;
        assert_eq!(
            damage(&path, size, Some(&digest)).unwrap().as_deref(),
            Some("its file is missing")
        );
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(damage(&path, size, Some(&digest)).unwrap(), None);
        std::fs::write(&path, &bytes[..4]).unwrap();
        assert_eq!(
            damage(&path, size, None).unwrap().as_deref(),
            Some("its file holds 4 of its 16 bytes")
        );
        let mut flipped = bytes.to_vec();
        flipped[0] ^= 0xff;
        std::fs::write(&path, &flipped).unwrap();
        // The size alone does not see it; the digest does.
        assert_eq!(damage(&path, size, None).unwrap(), None);
        let found = damage(&path, size, Some(&digest)).unwrap().unwrap();
        assert!(found.starts_with("its file hashes to "), "{found}");
    }
}
