//! Storage faults on real processes: a full disk (a small tmpfs of the test's own, see [`tmpfs`]) under the
//! coordinator's artifact dir, its SQLite file, a worker's cache and `results`' output, and two coordinators on
//! one database. Each module is one item of the storage-faults issue and fails without its fix.
//!
//! A binary of its own, so cargo runs it apart from the other real-process tests.

mod artifacts;
#[path = "../common/mod.rs"]
mod common;
mod failed_cells;
mod results_files;
mod signals;
mod store_full;
mod tmpfs;
mod two_coordinators;
