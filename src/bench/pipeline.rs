//! The two-view MoCo v2 pipeline benchmark: RandomResizedCrop(size, scale 0.2-1), ColorJitter
//! (0.4, 0.4, 0.4, 0.1) with p 0.8, RandomGrayscale 0.2, PIL Gaussian blur (sigma 0.1-2) with
//! p 0.5, horizontal flip, normalization, for two views of every image; batches handed over as
//! tensors, as a DataLoader's collate does.
//!
//! Sources: a CIFAR-10 binary folder (images kept decoded in memory, as torchvision's CIFAR10)
//! or a folder of photos (decoded from the file at every access, as torchvision's ImageFolder).
//! Either is repeated to `images` samples.

use crate::data::borrowed_tensor;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use unmix_data::augment::{ColorJitter, GaussianBlur, RandomResizedCrop, ViewRecipe};
use unmix_data::cifar::load_cifar10;
use unmix_data::error::DataError;
use unmix_data::folder::{decode_image, ImageFolder};
use unmix_data::image::Image;
use unmix_data::loader::{BadImage, Dataset, Loader, LoaderConfig};

/// A dataset repeated to `len` samples (sample i is sample i mod n of the source).
struct Repeat {
    inner: Arc<dyn Dataset>,
    len: usize,
}

impl Dataset for Repeat {
    fn len(&self) -> usize {
        self.len
    }
    fn image(&self, i: usize) -> Result<Image, DataError> {
        self.inner.image(i % self.inner.len())
    }
    fn label(&self, i: usize) -> u32 {
        self.inner.label(i % self.inner.len())
    }
}

/// Photos found anywhere under a folder (no class layout needed), decoded at every access.
struct Photos(Vec<std::path::PathBuf>);

impl Dataset for Photos {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn image(&self, i: usize) -> Result<Image, DataError> {
        decode_image(&self.0[i])
    }
    fn label(&self, _i: usize) -> u32 {
        0
    }
}

fn photos(root: &Path) -> Result<Photos> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(
                p.extension().and_then(|x| x.to_str()).map(|x| x.to_ascii_lowercase()).as_deref(),
                Some("jpg" | "jpeg" | "png")
            ) {
                files.push(p);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        bail!("no .jpg/.jpeg/.png files under {}", root.display());
    }
    Ok(Photos(files))
}

/// The MoCo v2 recipe at `size` px for 3-channel images.
pub fn moco_v2_recipe(size: usize, mean: Vec<f32>, std: Vec<f32>) -> ViewRecipe {
    ViewRecipe {
        crop: Some(RandomResizedCrop { size: (size, size), scale: (0.2, 1.0), ratio: (3.0 / 4.0, 4.0 / 3.0) }),
        hflip_p: 0.5,
        jitter: Some(ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 }),
        jitter_p: 0.8,
        grayscale_p: 0.2,
        blur: Some(GaussianBlur { sigma: (0.1, 2.0), p: 0.5 }),
        mean,
        std,
        ..Default::default()
    }
}

pub struct PipelineArgs<'a> {
    /// A CIFAR-10 binary folder (`cifar-10-batches-bin`) or a folder of photos.
    pub source: &'a Path,
    pub size: usize,
    pub images: usize,
    pub batch: usize,
    pub workers: usize,
    pub seed: u64,
    /// Decode the photos once and keep them in memory (isolates the augmentations).
    pub in_memory: bool,
}

/// Images decoded once, kept in memory.
struct Decoded(Vec<Image>);

impl Dataset for Decoded {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn image(&self, i: usize) -> Result<Image, DataError> {
        Ok(self.0[i].clone())
    }
    fn label(&self, _i: usize) -> u32 {
        0
    }
}

/// A loader of two MoCo v2 views of `size` px per sample (ImageNet's mean and std), shuffled,
/// whole batches only, failing on an unreadable image.
pub fn two_view_loader(data: Arc<dyn Dataset>, size: usize, batch: usize, workers: usize, seed: u64) -> Loader {
    let recipe = moco_v2_recipe(size, vec![0.485, 0.456, 0.406], vec![0.229, 0.224, 0.225]);
    Loader::new(
        data,
        Arc::new(vec![recipe.clone(), recipe]),
        LoaderConfig {
            batch_size: batch,
            drop_last: true,
            shuffle: true,
            seed,
            workers,
            prefetch: 2,
            on_bad_image: BadImage::Fail,
        },
    )
}

/// What [`time_batches`] measured.
pub struct Timed {
    /// From `start` to the first batch's arrival.
    pub first_batch_seconds: f64,
    /// Images in the batches after the first, and the seconds from the first's arrival to the last's.
    pub images: usize,
    pub seconds: f64,
    /// A value read from every batch, so none is skipped unread.
    pub checksum: f64,
}

/// Takes the first `batches` batches of epoch 0 as the training loop does: each as tensors
/// without a copy (as PyTorch's DataLoader passes its workers' shared-memory batches), then its
/// buffers back to the workers. The first is timed from `start`, the rest from its arrival
/// (worker start-up excluded, as for torchvision).
pub fn time_batches(loader: &Loader, batches: usize, start: Instant) -> Result<Timed> {
    let (mut first_batch_seconds, mut t0, mut images, mut checksum) = (f64::NAN, None, 0usize, 0.0f64);
    for (i, b) in loader.epoch(0, 0).take(batches).enumerate() {
        let b = b?;
        // SAFETY: the tensors are dropped before the batch is recycled.
        let views: Vec<tch::Tensor> = b.views.iter().map(|v| unsafe { borrowed_tensor(v) }).collect();
        checksum += views[0].double_value(&[0, 0, 0, 0]);
        drop(views);
        let n = b.indices.len();
        loader.recycle(b);
        if i == 0 {
            first_batch_seconds = start.elapsed().as_secs_f64();
            t0 = Some(Instant::now());
        } else {
            images += n;
        }
    }
    let Some(t0) = t0 else { bail!("the loader gave no batch") };
    Ok(Timed { first_batch_seconds, images, seconds: t0.elapsed().as_secs_f64(), checksum })
}

/// Runs the pipeline over `images` samples and returns images/second (two views each), timed
/// from the first batch's arrival to the last (worker start-up excluded, as for torchvision).
pub fn run(a: &PipelineArgs) -> Result<serde_json::Value> {
    let is_cifar = a.source.join("test_batch.bin").exists();
    let source: Arc<dyn Dataset> = if is_cifar {
        Arc::new(
            load_cifar10(a.source, false).with_context(|| format!("reading CIFAR-10 from {}", a.source.display()))?,
        )
    } else {
        match ImageFolder::open(a.source) {
            Ok(f) if !f.is_empty() => Arc::new(f),
            _ => Arc::new(photos(a.source)?),
        }
    };
    let source: Arc<dyn Dataset> = if a.in_memory && !is_cifar {
        Arc::new(Decoded((0..source.len()).map(|i| source.image(i)).collect::<Result<Vec<_>, _>>()?))
    } else {
        source
    };
    let n_source = source.len();
    let data: Arc<dyn Dataset> = Arc::new(Repeat { inner: source, len: a.images });
    let loader = two_view_loader(data, a.size, a.batch, a.workers, a.seed);
    let batches = loader.num_batches();
    if batches < 2 {
        bail!("--images {} gives {batches} batch(es) of {}; time at least 2", a.images, a.batch);
    }
    let t = time_batches(&loader, batches, Instant::now())?;
    let (timed, secs, checksum) = (t.images, t.seconds, t.checksum);
    let ips = timed as f64 / secs;
    Ok(serde_json::json!({
        "tool": "unmix", "size": a.size, "workers": a.workers, "batch": a.batch,
        "images": timed, "seconds": secs, "images_per_second": ips,
        "images_per_second_per_worker": ips / a.workers.max(1) as f64,
        "source_images": n_source, "in_memory": a.in_memory || is_cifar, "source": a.source.display().to_string(), "checksum": checksum,
    }))
}
