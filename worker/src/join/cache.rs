//! The artifact cache of `worker join`: models and unpacked eval bundles by digest under `--cache-dir`, kept
//! between jobs and between runs, so a worker downloads each artifact once.
//!
//! Layout: `models/<digest>.onnx`, `bundles/<digest>/` (see `sensgrid_eval::bundle`), `downloads/` for
//! transfers in progress, and `lock`. Every artifact appears under its final name by one rename, after its
//! digest has been checked, so a worker killed mid-download never leaves a partial artifact behind.
//!
//! One live worker per folder: the cache holds an exclusive `flock` on `lock` for the process's lifetime, and
//! a second worker on the same folder is refused. Two workers sharing one folder would not corrupt artifacts,
//! but it is always a mistake (a `coordinator run` restarted while its first workers still ran, two workers
//! started with the same `--cache-dir`), and their downloads would race; the kernel drops the lock when the
//! process dies, however it dies, so a killed worker never leaves its folder locked.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use sensgrid_client::{self as client, ClientError, WorkerClient};
use sensgrid_eval::bundle;
use tonic::Status;

/// Why an artifact is not available.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The coordinator did not answer or refused: see the status for whether to retry.
    #[error("downloading artifact {digest}: {}: {}", .status.code(), .status.message())]
    Rpc { digest: String, status: Status },
    /// The artifact is not one a job can use (a malformed digest, an unknown one, a bundle that is not a
    /// bundle): the job's inputs are wrong, and retrying will not help.
    #[error("{0}")]
    Input(String),
    /// Writing to the cache failed (unpacking included), or the bytes arrived damaged.
    #[error("{0}")]
    Local(String),
}

/// The cache folder, locked for this process.
pub struct ArtifactCache {
    dir: PathBuf,
    /// `lock`, flocked exclusively: held open (and so locked) as long as the cache is.
    _lock: File,
    /// Held while an artifact is looked up and fetched: the jobs a worker holds fetch theirs ahead, at the same
    /// time, often the same digest, which must be downloaded once and never to the same temporary file twice.
    fetching: tokio::sync::Mutex<()>,
}

impl ArtifactCache {
    /// Opens (creating it when missing) the cache at `dir` and locks it for this process.
    ///
    /// # Errors
    /// A folder that cannot be created, or one another live worker holds.
    pub fn open(dir: &Path) -> anyhow::Result<ArtifactCache> {
        for sub in ["models", "bundles", "downloads"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
        let lock = lock_exclusively(dir)?;
        Ok(ArtifactCache {
            dir: dir.to_owned(),
            _lock: lock,
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The model `digest`, downloaded unless already cached.
    ///
    /// # Errors
    /// [`FetchError`], naming the digest.
    pub async fn model(&self, client: &mut WorkerClient, digest: &str) -> Result<PathBuf, FetchError> {
        check_digest(digest)?;
        let _fetching = self.fetching.lock().await;
        let path = self.dir.join("models").join(format!("{digest}.onnx"));
        if !path.is_file() {
            let download = self.download(client, digest).await?;
            rename(&download, &path)?;
        }
        Ok(path)
    }

    /// The eval bundle `digest`, downloaded and unpacked unless already cached: the folder it is unpacked in.
    ///
    /// # Errors
    /// [`FetchError`], naming the digest.
    pub async fn bundle(&self, client: &mut WorkerClient, digest: &str) -> Result<PathBuf, FetchError> {
        check_digest(digest)?;
        let _fetching = self.fetching.lock().await;
        let path = self.dir.join("bundles").join(digest);
        if path.is_dir() {
            return Ok(path);
        }
        let download = self.download(client, digest).await?;
        let unpacked = self
            .dir
            .join("downloads")
            .join(format!("{digest}-{}.d", std::process::id()));
        let unpack = {
            let (download, unpacked) = (download.clone(), unpacked.clone());
            let digest = digest.to_owned();
            tokio::task::spawn_blocking(move || {
                let _ = std::fs::remove_dir_all(&unpacked);
                let file = std::fs::File::open(&download)
                    .map_err(|e| FetchError::Local(format!("{}: {e}", download.display())))?;
                bundle::unpack(std::io::BufReader::new(file), &unpacked).map_err(|error| match error {
                    // Writing the files failed (a full cache, say): this worker's trouble, not the bundle's.
                    bundle::BundleError::Io { .. } => FetchError::Local(format!("artifact {digest}: {error}")),
                    _ => FetchError::Input(format!("artifact {digest}: {error}")),
                })
            })
        };
        let unpacked_result = unpack.await.map_err(|e| FetchError::Local(e.to_string()))?;
        let _ = std::fs::remove_file(&download);
        if let Err(error) = unpacked_result {
            let _ = std::fs::remove_dir_all(&unpacked);
            return Err(error);
        }
        if let Err(error) = std::fs::rename(&unpacked, &path) {
            // Another worker sharing this cache unpacked the same bundle first: its copy is as good.
            let _ = std::fs::remove_dir_all(&unpacked);
            if !path.is_dir() {
                return Err(FetchError::Local(format!("{}: {error}", path.display())));
            }
        }
        Ok(path)
    }

    /// The directory of recover job `job_id` on this worker: its checkpoints and outputs.
    pub fn recovery_dir(&self, job_id: i64) -> PathBuf {
        self.dir.join("recover").join(format!("job-{job_id}"))
    }

    /// Downloads `digest` (a recover job's checkpoint) to `into`, through this process's `downloads/`.
    ///
    /// # Errors
    /// [`FetchError`], naming the digest.
    pub async fn download_to(&self, client: &mut WorkerClient, digest: &str, into: &Path) -> Result<(), FetchError> {
        check_digest(digest)?;
        let download = self.download(client, digest).await?;
        rename(&download, into)
    }

    /// Downloads `digest` to a file of this process under `downloads/`, checked against the digest.
    async fn download(&self, client: &mut WorkerClient, digest: &str) -> Result<PathBuf, FetchError> {
        let dest = self
            .dir
            .join("downloads")
            .join(format!("{digest}-{}", std::process::id()));
        match client::download_artifact(client, digest, &dest).await {
            Ok(_) => Ok(dest),
            Err(ClientError::Rpc { status, .. }) if status.code() == tonic::Code::NotFound => Err(FetchError::Input(
                format!("artifact {digest}: the coordinator has no such artifact"),
            )),
            Err(ClientError::Rpc { status, .. }) => Err(FetchError::Rpc {
                digest: digest.to_owned(),
                status,
            }),
            Err(other) => Err(FetchError::Local(other.to_string())),
        }
    }
}

/// Opens `dir/lock` and takes an exclusive flock on it without waiting.
fn lock_exclusively(dir: &Path) -> anyhow::Result<File> {
    let path = dir.join("lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    // SAFETY: flock(2) on a descriptor this function owns and keeps open.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let error = std::io::Error::last_os_error();
        if error.kind() == std::io::ErrorKind::WouldBlock {
            anyhow::bail!(
                "--cache-dir {}: another worker holds it (its {} is locked); give each worker its own --cache-dir",
                dir.display(),
                path.display()
            );
        }
        anyhow::bail!("{}: locking: {error}", path.display());
    }
    Ok(file)
}

/// Refuses a digest that is not 64 lowercase hex digits (it becomes a file name).
fn check_digest(digest: &str) -> Result<(), FetchError> {
    if client::is_sha256_hex(digest) {
        Ok(())
    } else {
        Err(FetchError::Input(format!(
            "artifact digest '{digest}': expected 64 lowercase hex digits (a sha256)"
        )))
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), FetchError> {
    std::fs::rename(from, to).map_err(|e| FetchError::Local(format!("{}: {e}", to.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_that_are_not_sha256_hex_are_refused() {
        assert!(check_digest(&"ab".repeat(32)).is_ok());
        for bad in ["", "../../etc/passwd", &"AB".repeat(32), &"ab".repeat(33)] {
            assert!(matches!(check_digest(bad), Err(FetchError::Input(_))), "{bad}");
        }
    }

    #[test]
    fn a_folder_is_refused_while_another_cache_holds_it_and_free_once_it_is_dropped() {
        let dir = std::env::temp_dir().join(format!("sensgrid-cache-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = ArtifactCache::open(&dir).unwrap();
        // flock is per open file, so a second open in the same process is refused as another process would be.
        let refused = ArtifactCache::open(&dir)
            .err()
            .expect("a second cache on the folder is refused");
        assert_eq!(
            refused.to_string(),
            format!(
                "--cache-dir {}: another worker holds it (its {} is locked); give each worker its own --cache-dir",
                dir.display(),
                dir.join("lock").display()
            )
        );
        drop(first);
        ArtifactCache::open(&dir).expect("the folder is free once its cache is dropped");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
