//! Evaluation of a pretrained encoder.

pub mod knn;
pub mod linear;
pub mod online;
pub mod protocol;
