//! Writing a file so that a reader sees the old file or the new one, never a part of either. A full disk once
//! left 0-byte and truncated `results` files, and an artifact shorter than its row, behind exit code 0
//! (issue 26).
//!
//! [`AtomicFile`] writes to a temporary file beside the destination (`.NAME.tmp-PID-N`: hidden, and on the
//! same filesystem, so the rename is atomic); [`AtomicFile::sync`] syncs it to disk and checks that the size
//! on disk is what was written; [`AtomicFile::commit`] renames it over the destination and syncs the
//! directory, so the new name survives a crash too. Dropped before its commit, the temporary file is removed:
//! a failure leaves the destination as it was and nothing beside it. [`write()`] does all of it for bytes in
//! memory.
//!
//! Every file the coordinator writes goes through here: `results`' tables, reports and plots, downloaded
//! artifacts (`pruned.onnx`, a worker's cache), uploads into `--artifact-dir`, and the run file of `run --out`.
//!
//! The I/O is std's, blocking: std's `File` keeps no buffer, so each write's error comes back from the call
//! that made it (tokio's `File` finishes a write in the background, and `sync_all` drops that write's error:
//! how the truncated artifacts got stored). Async code writes through [`AtomicFile::write_async`],
//! [`AtomicFile::sync_async`] and [`AtomicFile::commit_async`], which run it on tokio's blocking pool.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Numbers the temporary files of this process, so two writers of one destination never share one.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// What a temporary file's name holds after the destination's name.
const TEMP_INFIX: &str = ".tmp-";

/// Where the bytes of an [`AtomicFile`] go: a `File`, or in unit tests one that fails on purpose.
trait Sink: Write + Send {
    /// Flushes and syncs the bytes to disk (`fsync`).
    fn sync(&mut self) -> io::Result<()>;
    /// The size on disk.
    fn len(&self) -> io::Result<u64>;
}

impl Sink for File {
    fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        self.sync_all()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

/// A file being written under a temporary name, renamed over its destination by [`AtomicFile::commit`] and
/// removed when dropped before that.
pub struct AtomicFile {
    dest: PathBuf,
    temp: PathBuf,
    /// Open until [`AtomicFile::sync`] closes it.
    sink: Option<Box<dyn Sink>>,
    written: u64,
    synced: bool,
    committed: bool,
}

impl AtomicFile {
    /// Creates the temporary file of `dest` in `dest`'s directory (which must exist).
    ///
    /// # Errors
    ///
    /// The I/O error of creating it, naming `dest`.
    pub fn create(dest: impl Into<PathBuf>) -> io::Result<AtomicFile> {
        Self::create_with(dest.into(), |file| Box::new(file))
    }

    fn create_with(dest: PathBuf, sink: impl FnOnce(File) -> Box<dyn Sink>) -> io::Result<AtomicFile> {
        let mut name = dest.file_name().unwrap_or(dest.as_os_str()).to_owned();
        name.push(format!(
            "{TEMP_INFIX}{}-{}",
            std::process::id(),
            NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
        ));
        let mut hidden = std::ffi::OsString::from(".");
        hidden.push(name);
        let temp = dest.with_file_name(hidden);
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| failed("creating", &dest, e))?;
        Ok(AtomicFile {
            dest,
            temp,
            sink: Some(sink(file)),
            written: 0,
            synced: false,
            committed: false,
        })
    }

    /// Where the file goes.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Where its bytes are until [`AtomicFile::commit`], to read them back.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// The bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends `data`.
    ///
    /// # Errors
    ///
    /// The I/O error (`StorageFull` when the disk is), naming the destination; also after [`AtomicFile::sync`].
    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let Some(sink) = self.sink.as_mut() else {
            return Err(already_synced(&self.dest));
        };
        sink.write_all(data).map_err(|e| failed("writing", &self.dest, e))?;
        self.written += data.len() as u64;
        Ok(())
    }

    /// [`AtomicFile::write_all`] on tokio's blocking pool.
    ///
    /// # Errors
    ///
    /// As [`AtomicFile::write_all`].
    pub async fn write_async(&mut self, data: Vec<u8>) -> io::Result<()> {
        let mut sink = self.open_sink()?;
        let dest = self.dest.clone();
        let (sink, written) = tokio::task::spawn_blocking(move || {
            let written = sink.write_all(&data).map(|()| data.len() as u64);
            (sink, written)
        })
        .await
        .map_err(|e| failed("writing", &dest, io::Error::other(e)))?;
        self.sink = Some(sink);
        self.written += written.map_err(|e| failed("writing", &dest, e))?;
        Ok(())
    }

    /// Takes the sink out: `write_async` moves it to another thread and back, `sync` closes it.
    fn open_sink(&mut self) -> io::Result<Box<dyn Sink>> {
        self.sink.take().ok_or_else(|| already_synced(&self.dest))
    }

    /// Syncs the bytes to disk and checks that the file on disk holds as many as were written; closes it.
    ///
    /// # Errors
    ///
    /// The I/O error of syncing (where a write that failed late shows), or a file shorter or longer than what
    /// was written; each names the destination.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.synced {
            return Ok(());
        }
        let mut sink = self.open_sink()?;
        sink.sync().map_err(|e| failed("syncing", &self.dest, e))?;
        let on_disk = sink.len().map_err(|e| failed("checking", &self.dest, e))?;
        if on_disk != self.written {
            let short = io::Error::other(format!("{on_disk} bytes on disk of the {} written", self.written));
            return Err(failed("checking", &self.dest, short));
        }
        self.synced = true;
        Ok(())
    }

    /// [`AtomicFile::sync`] on tokio's blocking pool; answers the file.
    ///
    /// # Errors
    ///
    /// As [`AtomicFile::sync`].
    pub async fn sync_async(mut self) -> io::Result<AtomicFile> {
        let dest = self.dest.clone();
        tokio::task::spawn_blocking(move || self.sync().map(|()| self))
            .await
            .map_err(|e| failed("syncing", &dest, io::Error::other(e)))?
    }

    /// Syncs (see [`AtomicFile::sync`]), renames the file over its destination and syncs the directory.
    ///
    /// # Errors
    ///
    /// As [`AtomicFile::sync`]; the I/O error of renaming or of syncing the directory, naming the destination.
    pub fn commit(mut self) -> io::Result<()> {
        self.sync()?;
        std::fs::rename(&self.temp, &self.dest).map_err(|e| failed("renaming into", &self.dest, e))?;
        self.committed = true;
        let dir = match self.dest.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        match File::open(dir).and_then(|dir| dir.sync_all()) {
            // Some filesystems cannot sync a directory; the rename stands all the same.
            Err(e) if matches!(e.kind(), io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported) => Ok(()),
            synced => synced.map_err(|e| failed("syncing the directory of", &self.dest, e)),
        }
    }

    /// [`AtomicFile::commit`] on tokio's blocking pool.
    ///
    /// # Errors
    ///
    /// As [`AtomicFile::commit`].
    pub async fn commit_async(self) -> io::Result<()> {
        let dest = self.dest.clone();
        tokio::task::spawn_blocking(move || self.commit())
            .await
            .map_err(|e| failed("renaming into", &dest, io::Error::other(e)))?
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            // Closed first; a failure to unlink leaves a hidden `.NAME.tmp-` file that `is_temp` recognises.
            self.sink = None;
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Writes `bytes` to `dest` atomically: see the module docs.
///
/// # Errors
///
/// As [`AtomicFile::create`], [`AtomicFile::write_all`] and [`AtomicFile::commit`]: `dest` is then as it was.
pub fn write(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(dest)?;
    file.write_all(bytes)?;
    file.commit()
}

/// Whether `name` is that of an [`AtomicFile`]'s temporary file (one a killed process left behind).
pub fn is_temp(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.') && name.contains(TEMP_INFIX)
}

fn already_synced(dest: &Path) -> io::Error {
    failed(
        "writing",
        dest,
        io::Error::other("the file is already synced and closed"),
    )
}

/// `error` with what failed on which file in its message; its kind is kept (`StorageFull` stays one).
fn failed(what: &str, dest: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{what} {}: {error}", dest.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that takes `room` bytes and then fails like a full disk, or (`lose_late`) takes them all and
    /// drops what is past `room` without a word, as tokio's `File` did with a write that failed after it
    /// answered.
    struct FullDisk {
        file: File,
        room: u64,
        lose_late: bool,
    }

    impl Write for FullDisk {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            let len = self.file.metadata()?.len();
            let fits = usize::try_from(self.room.saturating_sub(len)).unwrap().min(data.len());
            if fits == 0 && !data.is_empty() {
                return if self.lose_late {
                    Ok(data.len())
                } else {
                    Err(io::Error::from(io::ErrorKind::StorageFull))
                };
            }
            self.file.write_all(&data[..fits])?;
            Ok(if self.lose_late { data.len() } else { fits })
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink for FullDisk {
        fn sync(&mut self) -> io::Result<()> {
            self.file.sync_all()
        }

        fn len(&self) -> io::Result<u64> {
            Sink::len(&self.file)
        }
    }

    fn full_disk(dest: PathBuf, room: u64, lose_late: bool) -> AtomicFile {
        AtomicFile::create_with(dest, |file| Box::new(FullDisk { file, room, lose_late })).unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn write_replaces_the_file_and_leaves_nothing_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sen.pickle");
        std::fs::write(&dest, b"old").unwrap();
        write(&dest, b"new bytes").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new bytes");
        assert_eq!(names(dir.path()), ["sen.pickle"]);
    }

    #[test]
    fn a_write_that_fails_at_a_byte_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sensitivities.csv");
        std::fs::write(&dest, b"old table").unwrap();
        let mut file = full_disk(dest.clone(), 5, false);
        let error = file.write_all(b"a new table, longer").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        assert!(
            error.to_string().contains(&format!("writing {}", dest.display())),
            "{error}"
        );
        drop(file);
        assert_eq!(std::fs::read(&dest).unwrap(), b"old table");
        assert_eq!(names(dir.path()), ["sensitivities.csv"]);
    }

    #[test]
    fn a_write_lost_after_it_answered_fails_the_commit_on_the_size_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("model");
        let mut file = full_disk(dest.clone(), 4, true);
        file.write_all(b"0123456789").unwrap();
        let error = file.commit().unwrap_err();
        assert!(
            error.to_string().contains("4 bytes on disk of the 10 written"),
            "{error}"
        );
        assert!(error.to_string().contains(&dest.display().to_string()), "{error}");
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
    }

    #[test]
    fn temporary_names_are_hidden_beside_the_destination_and_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let file = AtomicFile::create(dir.path().join("heatmap.png")).unwrap();
        assert_eq!(file.temp_path().parent(), Some(dir.path()));
        let name = file.temp_path().file_name().unwrap();
        assert!(name.to_string_lossy().starts_with(".heatmap.png.tmp-"), "{name:?}");
        assert!(is_temp(name));
        assert!(!is_temp(OsStr::new("heatmap.png")));
        drop(file);
        assert!(names(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn async_writes_commit_like_blocking_ones() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("pruned.onnx");
        let mut file = AtomicFile::create(&dest).unwrap();
        file.write_async(b"abc".to_vec()).await.unwrap();
        file.write_async(b"def".to_vec()).await.unwrap();
        assert_eq!(file.written(), 6);
        file.commit_async().await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"abcdef");
        assert_eq!(names(dir.path()), ["pruned.onnx"]);
    }
}
