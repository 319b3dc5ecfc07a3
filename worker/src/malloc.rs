//! Allocator settings for a process that runs the same model again and again.
//!
//! By default glibc returns large freed blocks (and free memory at the top of the heap) to the kernel at once.
//! A detection model's activations are megabytes each, so every run then maps them again and faults in every
//! page: on the 2-core dev machine that alternated 100 ms and 150 to 180 ms runs of PP-OCRv3 det, the slow ones
//! with five times the kernel time (bench/engine). Keeping blocks up to 32 MiB in the heap, and trimming only
//! past 1 GiB of free memory, keeps the pages of one run for the next.

/// Applies the settings; call once at start, before libtorch allocates.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's tuning parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
