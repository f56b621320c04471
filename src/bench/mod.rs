//! `unmix bench`: benchmarks that print figures (never timed tests). `pipeline` measures the
//! two-view MoCo v2 augmentation pipeline; `bench/pipeline_torchvision.py` runs the same workload
//! with torchvision + PyTorch's DataLoader, and `scripts/bench-pipeline.sh` runs both.

pub mod model;
pub mod pipeline;
pub mod profile;
pub mod scale;
pub mod selftest;
