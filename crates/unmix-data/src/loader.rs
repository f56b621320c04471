//! The threaded batch loader: worker threads augment and normalize views into plain `f32`
//! buffers, with bounded prefetch, deterministically.
//!
//! Determinism: the epoch's sample order comes from [`epoch_rng`], and each view of dataset
//! sample `i` is drawn from [`sample_rng`]`(seed, epoch, i, view)`, so a batch's contents depend
//! only on (seed, epoch, batch index), never on the number of workers or on where an epoch was
//! resumed. Worker `w` of `W` prepares batches `start + w`, `start + w + W`, ... into its own
//! bounded channel, and the iterator receives round-robin, so batches come out in order.
//!
//! Unreadable images ([`BadImage`]): with `Fail` the batch holding one is an `Err`; with `Skip`
//! the sample is left out of its batch. Which samples are skipped depends only on the dataset, so
//! batches stay the same for any worker count; warnings and the [`Loader::skipped`] count are
//! issued by the iterator when it hands the batch out, in batch order.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::augment::{augment, normalize_into, ViewRecipe};
use crate::error::DataError;
use crate::image::{Image, ImageRef, ImageSet};
use crate::seed::{epoch_rng, sample_rng};

/// A random-access labelled image dataset.
pub trait Dataset: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn image(&self, i: usize) -> Result<Image, DataError>;
    fn label(&self, i: usize) -> u32;
}

impl Dataset for ImageSet {
    fn len(&self) -> usize {
        ImageSet::len(self)
    }
    fn image(&self, i: usize) -> Result<Image, DataError> {
        Ok(ImageSet::image(self, i).to_owned())
    }
    fn label(&self, i: usize) -> u32 {
        self.labels[i]
    }
}

/// What the loader does when `Dataset::image` fails (an unreadable or damaged file).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BadImage {
    /// The batch holding the sample comes back as `Err` (naming the file).
    #[default]
    Fail,
    /// The sample is dropped from its batch (which is then smaller; a batch whose samples all
    /// fail is left out of the epoch), `warning: skipping unreadable image PATH: REASON` is
    /// printed to stderr the first time each image fails, and [`Loader::skipped`] counts it.
    Skip,
}

#[derive(Clone, Debug)]
pub struct LoaderConfig {
    pub batch_size: usize,
    pub drop_last: bool,
    pub shuffle: bool,
    pub seed: u64,
    /// Worker threads; 0 prepares batches inline in `next()`.
    pub workers: usize,
    /// Batches each worker may have ready ahead of the consumer (0: hand over synchronously).
    pub prefetch: usize,
    /// Unreadable images: fail the batch (default) or skip the sample.
    pub on_bad_image: BadImage,
}

/// One view of a batch: `N * C * H * W` normalized values, planar per image.
#[derive(Clone, Debug)]
pub struct ViewBatch {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

#[derive(Clone, Debug)]
pub struct Batch {
    /// Batch index within the epoch.
    pub index: usize,
    /// Dataset indices of the samples.
    pub indices: Vec<usize>,
    pub labels: Vec<u32>,
    /// One per recipe.
    pub views: Vec<ViewBatch>,
}

/// The sample order of an epoch: a Fisher-Yates shuffle driven by `epoch_rng(seed, epoch)`, or
/// the identity when `!shuffle`.
pub fn epoch_order(len: usize, seed: u64, epoch: u64, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if shuffle {
        let mut rng = epoch_rng(seed, epoch);
        for i in (1..len).rev() {
            let j = rng.gen_range(0..=i);
            order.swap(i, j);
        }
    }
    order
}

/// Batches per epoch.
pub fn num_batches(len: usize, batch_size: usize, drop_last: bool) -> usize {
    assert!(batch_size > 0, "batch_size must be positive");
    if drop_last {
        len / batch_size
    } else {
        len.div_ceil(batch_size)
    }
}

pub struct Loader {
    dataset: Arc<dyn Dataset>,
    recipes: Arc<Vec<ViewRecipe>>,
    cfg: LoaderConfig,
    skips: Arc<SkipLog>,
    pool: Arc<BufferPool>,
    /// (rank, world): this process's shard of every global batch (see [`Loader::sharded`]).
    shard: (usize, usize),
}

/// Batch buffers handed back by the consumer ([`Loader::recycle`]) for the workers to refill, so
/// a steady-state epoch allocates no view buffers.
#[derive(Default)]
struct BufferPool {
    free: Mutex<Vec<Vec<f32>>>,
    /// Buffers allocated because the pool was empty (for tests and diagnostics).
    allocated: AtomicUsize,
}

impl BufferPool {
    /// Most buffers kept: enough for every batch in flight, whatever the worker count.
    const MAX: usize = 64;

    fn take(&self, len: usize) -> Vec<f32> {
        let reused = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match reused {
            Some(mut v) => {
                v.clear();
                v.resize(len, 0.0);
                v
            }
            None => {
                self.allocated.fetch_add(1, Ordering::Relaxed);
                vec![0.0; len]
            }
        }
    }

    fn give(&self, v: Vec<f32>) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() < Self::MAX && v.capacity() > 0 {
            free.push(v);
        }
    }
}

/// Skipped samples of all epochs of a loader: the count and the images already warned about.
#[derive(Default)]
struct SkipLog {
    count: AtomicUsize,
    warned: Mutex<HashSet<usize>>,
}

impl SkipLog {
    fn record(&self, skipped: Vec<(usize, DataError)>) {
        for (i, e) in skipped {
            self.count.fetch_add(1, Ordering::Relaxed);
            // A poisoned lock only means another thread panicked while warning; keep going.
            let first = self.warned.lock().unwrap_or_else(|p| p.into_inner()).insert(i);
            if first {
                eprintln!("warning: skipping unreadable image {}: {}", e.path().display(), e.problem());
            }
        }
    }
}

/// What the workers of one epoch share.
struct EpochJob {
    dataset: Arc<dyn Dataset>,
    recipes: Arc<Vec<ViewRecipe>>,
    order: Vec<usize>,
    batch_size: usize,
    seed: u64,
    epoch: u64,
    on_bad_image: BadImage,
    pool: Arc<BufferPool>,
    shard: (usize, usize),
}

/// A prepared batch and the samples left out of it (`BadImage::Skip`), with their errors.
struct Prepared {
    batch: Result<Batch, DataError>,
    skipped: Vec<(usize, DataError)>,
}

fn loader_error(problem: String) -> DataError {
    DataError::format("<loader>", problem)
}

impl EpochJob {
    /// Prepares batch `b`. `cancelled` is polled between samples so that a dropped iterator does
    /// not wait for a whole batch.
    fn prepare(&self, b: usize, cancelled: &dyn Fn() -> bool) -> Prepared {
        let mut skipped = Vec::new();
        let batch = self.batch(b, cancelled, &mut skipped);
        Prepared { batch, skipped }
    }

    /// Batch `b`; samples whose image fails are pushed to `skipped` (Skip) or fail it (Fail).
    fn batch(
        &self,
        b: usize,
        cancelled: &dyn Fn() -> bool,
        skipped: &mut Vec<(usize, DataError)>,
    ) -> Result<Batch, DataError> {
        let mine = self.shard_samples(b);
        let mut indices = Vec::with_capacity(mine.len());
        let mut labels = Vec::with_capacity(mine.len());
        let mut views: Vec<Option<ViewBatch>> = vec![None; self.recipes.len()];
        for &i in &mine {
            if cancelled() {
                return Err(loader_error("cancelled".into()));
            }
            let img = match (self.dataset.image(i), self.on_bad_image) {
                (Ok(img), _) => img,
                (Err(e), BadImage::Fail) => return Err(e),
                (Err(e), BadImage::Skip) => {
                    skipped.push((i, e));
                    continue;
                }
            };
            // indices.len(): the sample's position among the kept ones.
            self.write_views(img.as_ref(), i, indices.len(), mine.len(), &mut views)?;
            indices.push(i);
            labels.push(self.dataset.label(i));
        }
        let views = cut_to_kept(views, indices.len());
        Ok(Batch { index: b, indices, labels, views })
    }

    /// The samples of global batch `b` that this shard takes: positions rank, rank + world, ...
    fn shard_samples(&self, b: usize) -> Vec<usize> {
        let (rank, world) = self.shard;
        let lo = b * self.batch_size * world;
        let hi = (lo + self.batch_size * world).min(self.order.len());
        self.order[lo..hi].iter().skip(rank).step_by(world).copied().collect()
    }

    /// Augments sample `i` once per view and writes it, normalized, at position `k` of each view's
    /// batch (allocated for `n` samples on the first one).
    fn write_views(
        &self,
        img: ImageRef,
        i: usize,
        k: usize,
        n: usize,
        views: &mut [Option<ViewBatch>],
    ) -> Result<(), DataError> {
        for (v, recipe) in self.recipes.iter().enumerate() {
            let mut rng = sample_rng(self.seed, self.epoch, i as u64, v as u64);
            let out = augment(img, recipe, &mut rng);
            if recipe.mean.len() != out.channels || recipe.std.len() != out.channels {
                return Err(loader_error(format!(
                    "view {v}: {} means / {} stds for a {}-channel image",
                    recipe.mean.len(),
                    recipe.std.len(),
                    out.channels
                )));
            }
            // Sized for the whole batch; cut to the kept samples by `cut_to_kept`.
            let view = views[v].get_or_insert_with(|| ViewBatch {
                channels: out.channels,
                height: out.height,
                width: out.width,
                data: self.pool.take(n * out.channels * out.height * out.width),
            });
            if (view.channels, view.height, view.width) != (out.channels, out.height, out.width) {
                return Err(loader_error(format!(
                    "view {v}: sample {i} gives a {}x{}x{} image, the batch has {}x{}x{}",
                    out.channels, out.height, out.width, view.channels, view.height, view.width
                )));
            }
            let chw = view.channels * view.height * view.width;
            normalize_into(out.as_ref(), &recipe.mean, &recipe.std, &mut view.data[k * chw..(k + 1) * chw]);
        }
        Ok(())
    }
}

/// Each view's batch cut to the `kept` samples (an empty view where no sample was kept).
fn cut_to_kept(views: Vec<Option<ViewBatch>>, kept: usize) -> Vec<ViewBatch> {
    views
        .into_iter()
        .map(|v| {
            v.map(|mut v| {
                v.data.truncate(kept * v.channels * v.height * v.width);
                v
            })
            .unwrap_or(ViewBatch { channels: 0, height: 0, width: 0, data: Vec::new() })
        })
        .collect()
}

impl Loader {
    pub fn new(dataset: Arc<dyn Dataset>, recipes: Arc<Vec<ViewRecipe>>, cfg: LoaderConfig) -> Self {
        assert!(cfg.batch_size > 0, "batch_size must be positive");
        Loader { dataset, recipes, cfg, skips: Arc::default(), pool: Arc::default(), shard: (0, 1) }
    }

    /// Data parallelism: batches of `batch_size` per process, `world` processes. Global batch b
    /// is `batch_size * world` consecutive samples of the epoch order (the same order on every
    /// process: the same seed); process `rank` takes its positions `rank, rank + world, ...`,
    /// so the union over processes is exactly the global batch of a single process with batch
    /// `batch_size * world`, with the same views (per-sample seeds), and process r holds the
    /// samples a single process's split batch norm puts in group r.
    pub fn sharded(mut self, rank: usize, world: usize) -> Self {
        assert!(world >= 1 && rank < world, "rank {rank} of world {world}");
        self.shard = (rank, world);
        self
    }

    /// Hands a consumed batch's buffers back for reuse by later batches (optional: a batch that
    /// is simply dropped frees its memory).
    pub fn recycle(&self, batch: Batch) {
        for v in batch.views {
            self.pool.give(v.data);
        }
    }

    /// View buffers allocated so far because none was free for reuse.
    pub fn buffers_allocated(&self) -> usize {
        self.pool.allocated.load(Ordering::Relaxed)
    }

    /// Samples left out of batches so far (`BadImage::Skip`), over all epochs of this loader;
    /// an image that fails in three epochs counts three times. Counted when the iterator hands
    /// out the batch, so the count after receiving batch `b` does not depend on the workers.
    pub fn skipped(&self) -> usize {
        self.skips.count.load(Ordering::Relaxed)
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.cfg
    }

    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.dataset
    }

    /// Batches per epoch (global batches when sharded).
    pub fn num_batches(&self) -> usize {
        num_batches(self.dataset.len(), self.cfg.batch_size * self.shard.1, self.cfg.drop_last)
    }

    /// Batches of one epoch starting at batch `start_batch` (for resume). Views of sample `i` use
    /// `sample_rng(seed, epoch, i, view)`, so they are the same for any worker count.
    pub fn epoch(&self, epoch: u64, start_batch: usize) -> EpochIter {
        let end = self.num_batches();
        let start = start_batch.min(end);
        let job = Arc::new(EpochJob {
            dataset: self.dataset.clone(),
            recipes: self.recipes.clone(),
            order: epoch_order(self.dataset.len(), self.cfg.seed, epoch, self.cfg.shuffle),
            batch_size: self.cfg.batch_size,
            seed: self.cfg.seed,
            epoch,
            on_bad_image: self.cfg.on_bad_image,
            pool: self.pool.clone(),
            shard: self.shard,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let workers = self.cfg.workers.min(end - start);
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = sync_channel(self.cfg.prefetch);
            let (job, stop) = (job.clone(), stop.clone());
            let handle = std::thread::Builder::new()
                .name(format!("unmix-loader-{w}"))
                .spawn(move || {
                    let cancelled = || stop.load(Ordering::Relaxed);
                    for b in (start + w..end).step_by(workers) {
                        if cancelled() {
                            break;
                        }
                        let prepared = job.prepare(b, &cancelled);
                        if tx.send(prepared).is_err() {
                            break;
                        }
                    }
                })
                .expect("spawn loader worker");
            receivers.push(rx);
            handles.push(Some(handle));
        }
        EpochIter {
            job,
            skips: self.skips.clone(),
            next: start,
            start,
            end,
            receivers,
            handles,
            stop,
            starved: Duration::ZERO,
        }
    }
}

/// The batches of one epoch, in order. Dropping it stops and joins the workers.
pub struct EpochIter {
    job: Arc<EpochJob>,
    skips: Arc<SkipLog>,
    next: usize,
    start: usize,
    end: usize,
    receivers: Vec<Receiver<Prepared>>,
    handles: Vec<Option<JoinHandle<()>>>,
    stop: Arc<AtomicBool>,
    starved: Duration,
}

impl EpochIter {
    /// Total time `next()` waited for a batch (with 0 workers: the time spent preparing them).
    pub fn starved(&self) -> Duration {
        self.starved
    }

    /// Batches left in this epoch; with `BadImage::Skip` an upper bound (a batch whose samples
    /// all fail is left out).
    pub fn remaining(&self) -> usize {
        self.end - self.next
    }
}

impl Iterator for EpochIter {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.next >= self.end {
                return None;
            }
            let b = self.next;
            self.next += 1;
            let t0 = Instant::now();
            let prepared = self.receive(b);
            self.starved += t0.elapsed();
            self.skips.record(prepared.skipped);
            match prepared.batch {
                // Every sample was skipped: no batch.
                Ok(batch) if batch.indices.is_empty() => continue,
                item => return Some(item),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining();
        match self.job.on_bad_image {
            BadImage::Fail => (n, Some(n)),
            BadImage::Skip => (0, Some(n)),
        }
    }
}

impl EpochIter {
    fn receive(&mut self, b: usize) -> Prepared {
        if self.receivers.is_empty() {
            self.job.prepare(b, &|| false)
        } else {
            let w = (b - self.start) % self.receivers.len();
            match self.receivers[w].recv() {
                Ok(item) => item,
                Err(_) => {
                    // The worker ended without sending: it panicked.
                    if let Some(Err(panic)) = self.handles[w].take().map(|h| h.join()) {
                        std::panic::resume_unwind(panic);
                    }
                    panic!("loader worker {w} exited before batch {b}");
                }
            }
        }
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receivers makes any pending or future send fail.
        self.receivers.clear();
        for h in self.handles.iter_mut().filter_map(Option::take) {
            let _ = h.join();
        }
    }
}
