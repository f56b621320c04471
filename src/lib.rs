//! unmix: Un-Mix self-supervised pretraining on libtorch.
//!
//! Data flows one way: readers and augmentations (crate `unmix-data`, no tensors) -> batch tensors
//! ([`data`]) -> Un-Mix ([`mix`]) -> a method's loss ([`method`]) -> the optimizer ([`train`]).
//! Evaluation ([`eval`]) reads checkpoints and networks, never training internals.

pub mod alloc;
pub mod bench;
pub mod compare;
pub mod config;
pub mod data;
pub mod dist;
pub mod eval;
pub mod method;
pub mod mix;
pub mod precision;
pub mod model;
pub mod report;
pub mod train;
pub mod export;
