//! Dataset readers and the u8 augmentation pipeline of unmix.
//!
//! Nothing here depends on libtorch: readers produce [`ImageSet`]s of u8 pixels (MNIST, CIFAR,
//! STL-10) or decode image files on demand ([`ImageFolder`]), augmentations turn one u8 image into
//! another, and the loader fills plain `f32` batch buffers in worker threads. The training crate
//! turns those buffers into tensors.

pub mod augment;
pub mod cifar;
pub mod error;
mod fileio;
pub mod folder;
pub mod idx;
pub mod image;
pub mod loader;
pub mod seed;
pub mod stl10;

pub use error::DataError;
pub use folder::ImageFolder;
// `crate::`: the `image` decoding crate is a dependency too.
pub use crate::image::{Image, ImageRef, ImageSet};
