//! unmix: Un-Mix self-supervised pretraining on libtorch.
//!
//! Data flows one way: readers and augmentations (crate `unmix-data`, no tensors) -> batch tensors
//! ([`data`]) -> a mixture, Un-Mix or a rival ([`mix`]) -> a method's loss ([`method`]) -> the optimizer ([`optim`]),
//! run by the loop in [`train`]. Evaluation ([`eval`]) reads networks and checkpoints, never
//! training internals.
//!
//! Layers, each module importing only from modules of the layers before it in this list
//! (`tests/layering.rs` checks it on every build of the tests):
//! 1. [`alloc`], [`console`], [`fault`], [`ffi`]: process set-up, the terminal (stdout lines, Ctrl-C),
//!    the fault injection of the records' tests and the C++ shims' error buffer;
//! 2. [`precision`], [`dist`], [`mix`], [`model`], [`optim`], [`checkpoint`], [`events`]: autocast,
//!    the process group, the mixtures (Un-Mix, i-Mix, MixCo), the networks, optimizers and
//!    schedules, the checkpoint file, TensorBoard's event files;
//! 3. [`method`]: the methods, their settings and losses;
//! 4. [`config`]: the run configuration, made of the settings above;
//! 5. [`data`], [`cost`]: the configured datasets and views as tensors; a config's counted compute;
//! 6. [`build`], [`init`]: runtime, method, optimizer and checkpointed networks from a config; a
//!    run's start from existing weights;
//! 7. [`eval`]: kNN and linear evaluations;
//! 8. [`train`]: the pretraining loop;
//! 9. [`report`], [`export`]: what a run folder shows and exports;
//! 10. [`compare`], [`bench`]: commands built on all of the above (the binary, main.rs and its
//!     `cli/` modules, comes last and reaches the library only as `unmix::`).

// `loss = loss + term` builds a new autograd node, as the PyTorch code it mirrors does; tch's
// `loss += term` would be an in-place `add_` on a tensor of the graph.
#![allow(clippy::assign_op_pattern)]

pub mod alloc;
pub mod console;
pub mod fault;
pub mod ffi;

pub mod checkpoint;
pub mod dist;
pub mod events;
pub mod mix;
pub mod model;
pub mod optim;
pub mod precision;

pub mod method;

pub mod config;

pub mod cost;
pub mod data;

pub mod build;
pub mod init;

pub mod eval;

pub mod train;

pub mod export;
pub mod report;

pub mod bench;
pub mod compare;
