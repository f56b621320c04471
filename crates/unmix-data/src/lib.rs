//! Dataset readers and the u8 augmentation pipeline of unmix.
//!
//! Nothing here depends on libtorch: readers produce [`ImageSet`]s of u8 pixels, augmentations turn
//! one u8 image into another, and the loader fills plain `f32` batch buffers in worker threads. The
//! training crate turns those buffers into tensors.

pub mod augment;
pub mod cifar;
pub mod error;
pub mod idx;
pub mod image;
pub mod loader;
pub mod seed;

pub use error::DataError;
pub use image::{Image, ImageRef, ImageSet};
