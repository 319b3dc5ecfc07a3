//! A small tmpfs of the test's own, to fill a disk on purpose: mounted on a folder under the test's scratch dir,
//! resized (`remount`) to give space back, and unmounted on drop (lazily, so a process still holding a file
//! in it does not keep the mount).
//!
//! Mounting needs CAP_SYS_ADMIN (root, as on the CI machine); without it the test fails saying so, since no
//! other way fills a disk for real.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` (rounded up to pages) on `dir`, created when missing.
    pub fn mount(dir: &Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mount -t tmpfs on {} failed ({status}): this test fills a real filesystem and needs CAP_SYS_ADMIN (root)",
            dir.display()
        );
        Tmpfs { dir: dir.to_owned() }
    }

    /// Gives the filesystem a new size; what it holds stays.
    pub fn resize(&self, bytes: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(&self.dir)
            .status()
            .expect("running mount");
        assert!(status.success(), "remounting {} failed ({status})", self.dir.display());
    }

    /// Bytes free for an unprivileged write.
    pub fn free(&self) -> u64 {
        let path = CString::new(self.dir.as_os_str().as_bytes()).unwrap();
        // SAFETY: statvfs writes into the zeroed struct it is given; the path is a valid C string.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
        assert_eq!(
            rc,
            0,
            "statvfs {}: {}",
            self.dir.display(),
            std::io::Error::last_os_error()
        );
        stat.f_bavail * stat.f_frsize
    }

    /// Writes `filler` until at most `leave` bytes stay free (`leave` 0: the disk is full); returns its path.
    /// Removing it gives the space back.
    pub fn fill(&self, leave: u64) -> PathBuf {
        use std::io::Write;
        let path = self.dir.join("filler");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let block = vec![0u8; 4096];
        while self.free() > leave {
            let want = (self.free() - leave).min(block.len() as u64) as usize;
            if file.write_all(&block[..want]).is_err() {
                break;
            }
            let _ = file.flush();
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
