//! The gRPC contract of sensgrid, generated from `proto/sensgrid/v1/*.proto` at build time.
//!
//! No logic lives here but the names of the contract's enums ([`names`]): each consuming crate converts these
//! messages into its own types.

pub mod names;

/// Version 1 of the contract: the worker service and the admin service.
pub mod v1 {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("sensgrid.v1");
}
