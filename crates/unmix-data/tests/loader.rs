//! Tests of the threaded loader: determinism across worker counts, epoch coverage, resume.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use unmix_data::augment::{augment, normalize_into, ColorJitter, GaussianBlur, RandomResizedCrop, ViewRecipe};
use unmix_data::loader::{epoch_order, num_batches, BadImage, Batch, Dataset, Loader, LoaderConfig};
use unmix_data::seed::sample_rng;
use unmix_data::{DataError, Image, ImageSet};

fn noise_set(n: usize, h: usize, w: usize, c: usize, seed: u64) -> ImageSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    ImageSet {
        height: h,
        width: w,
        channels: c,
        pixels: (0..n * h * w * c).map(|_| rng.gen()).collect(),
        labels: (0..n as u32).map(|i| i % 10).collect(),
        num_classes: 10,
    }
}

fn recipes(c: usize) -> Arc<Vec<ViewRecipe>> {
    let aug = ViewRecipe {
        resize_center: None,
        crop: Some(RandomResizedCrop { size: (8, 8), scale: (0.2, 1.0), ratio: (0.75, 4.0 / 3.0) }),
        hflip_p: 0.5,
        jitter: Some(ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 }),
        jitter_p: 0.8,
        grayscale_p: 0.2,
        grayscale_first: false,
        blur: Some(GaussianBlur { sigma: (0.1, 2.0), p: 0.5 }),
        solarize_p: 0.2,
        mean: vec![0.5; c],
        std: vec![0.25; c],
    };
    Arc::new(vec![aug.clone(), aug, ViewRecipe::eval(vec![0.4; c], vec![0.2; c])])
}

fn cfg(batch_size: usize, drop_last: bool, workers: usize, seed: u64) -> LoaderConfig {
    LoaderConfig { batch_size, drop_last, shuffle: true, seed, workers, prefetch: 2, on_bad_image: BadImage::Fail }
}

fn collect(loader: &Loader, epoch: u64, start: usize) -> Vec<Batch> {
    loader.epoch(epoch, start).map(|b| b.expect("batch")).collect()
}

type ViewBits = (usize, usize, usize, Vec<u32>);

fn bits(b: &Batch) -> (usize, Vec<usize>, Vec<u32>, Vec<ViewBits>) {
    let views =
        b.views.iter().map(|v| (v.channels, v.height, v.width, v.data.iter().map(|x| x.to_bits()).collect())).collect();
    (b.index, b.indices.clone(), b.labels.clone(), views)
}

fn same(a: &[Batch], b: &[Batch]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| bits(x) == bits(y))
}

#[test]
fn num_batches_rule() {
    assert_eq!(num_batches(23, 5, false), 5);
    assert_eq!(num_batches(23, 5, true), 4);
    assert_eq!(num_batches(25, 5, true), 5);
    assert_eq!(num_batches(25, 5, false), 5);
    assert_eq!(num_batches(0, 5, false), 0);
    assert_eq!(num_batches(3, 5, true), 0);
}

#[test]
fn epoch_order_is_a_seeded_permutation() {
    let a = epoch_order(100, 7, 0, true);
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    assert_eq!(a, epoch_order(100, 7, 0, true));
    assert_ne!(a, epoch_order(100, 7, 1, true));
    assert_ne!(a, epoch_order(100, 8, 0, true));
    assert_ne!(a, (0..100).collect::<Vec<_>>());
    assert_eq!(epoch_order(100, 7, 3, false), (0..100).collect::<Vec<_>>());
    assert!(epoch_order(0, 7, 0, true).is_empty());
}

#[test]
fn batches_are_identical_for_0_1_and_3_workers() {
    let data: Arc<dyn Dataset> = Arc::new(noise_set(23, 12, 10, 3, 1));
    let r = recipes(3);
    let runs: Vec<Vec<Batch>> =
        [0, 1, 3].iter().map(|&w| collect(&Loader::new(data.clone(), r.clone(), cfg(5, false, w, 42)), 2, 0)).collect();
    assert_eq!(runs[0].len(), 5);
    assert!(same(&runs[0], &runs[1]), "workers 0 vs 1");
    assert!(same(&runs[0], &runs[2]), "workers 0 vs 3");
    // More workers than batches, no prefetch.
    let mut c = cfg(5, false, 8, 42);
    c.prefetch = 0;
    assert!(same(&runs[0], &collect(&Loader::new(data.clone(), r.clone(), c), 2, 0)), "workers 8, prefetch 0");
}

#[test]
fn batch_contents_are_the_documented_function_of_the_sample() {
    let set = noise_set(11, 12, 10, 3, 2);
    let data: Arc<dyn Dataset> = Arc::new(set.clone());
    let r = recipes(3);
    let (seed, epoch) = (9, 4);
    let batches = collect(&Loader::new(data, r.clone(), cfg(4, false, 2, seed)), epoch, 0);
    for b in &batches {
        assert_eq!(b.labels, b.indices.iter().map(|&i| set.labels[i]).collect::<Vec<_>>());
        assert_eq!(b.views.len(), 3);
        for (v, recipe) in r.iter().enumerate() {
            let view = &b.views[v];
            let (c, h, w) = if v < 2 { (3, 8, 8) } else { (3, 12, 10) };
            assert_eq!((view.channels, view.height, view.width), (c, h, w));
            assert_eq!(view.data.len(), b.indices.len() * c * h * w);
            for (k, &i) in b.indices.iter().enumerate() {
                let img = augment(set.image(i), recipe, &mut sample_rng(seed, epoch, i as u64, v as u64));
                let mut expected = vec![0.0f32; c * h * w];
                normalize_into(img.as_ref(), &recipe.mean, &recipe.std, &mut expected);
                let got = &view.data[k * c * h * w..(k + 1) * c * h * w];
                assert!(
                    got.iter().zip(&expected).all(|(a, e)| a.to_bits() == e.to_bits()),
                    "batch {} sample {i} view {v}",
                    b.index
                );
            }
        }
        // The two augmented views differ (different per-view streams).
        assert_ne!(b.views[0].data, b.views[1].data);
    }
}

#[test]
fn every_index_once_and_drop_last() {
    let data: Arc<dyn Dataset> = Arc::new(noise_set(23, 6, 6, 1, 3));
    let r = Arc::new(vec![ViewRecipe::eval(vec![0.5], vec![0.5])]);
    let batches = collect(&Loader::new(data.clone(), r.clone(), cfg(5, false, 2, 1)), 0, 0);
    assert_eq!(batches.iter().map(|b| b.indices.len()).collect::<Vec<_>>(), vec![5, 5, 5, 5, 3]);
    assert_eq!(batches.iter().map(|b| b.index).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    let all: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(all.len(), 23);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 23);
    assert_eq!(all, epoch_order(23, 1, 0, true));
    // The partial batch's buffer has its own size.
    assert_eq!(batches[4].views[0].data.len(), 3 * 36);

    let dropped = collect(&Loader::new(data.clone(), r.clone(), cfg(5, true, 2, 1)), 0, 0);
    assert_eq!(dropped.len(), 4);
    assert!(dropped.iter().all(|b| b.indices.len() == 5));
    assert!(same(&dropped, &batches[..4]));

    let loader = Loader::new(data, r, cfg(5, true, 0, 1));
    assert_eq!(loader.num_batches(), 4);
    assert_eq!(loader.epoch(0, 0).remaining(), 4);
    assert_eq!(loader.epoch(0, 0).size_hint(), (4, Some(4)));
}

#[test]
fn start_batch_resumes_exactly() {
    let data: Arc<dyn Dataset> = Arc::new(noise_set(23, 12, 10, 3, 4));
    let r = recipes(3);
    for workers in [0, 3] {
        let loader = Loader::new(data.clone(), r.clone(), cfg(5, false, workers, 5));
        let full = collect(&loader, 1, 0);
        for start in [1, 2, 4] {
            let resumed = collect(&loader, 1, start);
            assert_eq!(resumed.first().map(|b| b.index), Some(start));
            assert!(same(&resumed, &full[start..]), "workers {workers} start {start}");
        }
        assert!(collect(&loader, 1, 5).is_empty());
        assert!(collect(&loader, 1, 50).is_empty());
    }
}

#[test]
fn epochs_and_seeds_differ() {
    let data: Arc<dyn Dataset> = Arc::new(noise_set(23, 12, 10, 3, 6));
    let r = recipes(3);
    let loader = Loader::new(data.clone(), r.clone(), cfg(5, false, 2, 7));
    let e0 = collect(&loader, 0, 0);
    let e1 = collect(&loader, 1, 0);
    let order0: Vec<usize> = e0.iter().flat_map(|b| b.indices.clone()).collect();
    let order1: Vec<usize> = e1.iter().flat_map(|b| b.indices.clone()).collect();
    assert_ne!(order0, order1);
    // Same seed, same epoch: same batches.
    assert!(same(&e0, &collect(&loader, 0, 0)));
    // Another seed: different order and views.
    let other = collect(&Loader::new(data.clone(), r.clone(), cfg(5, false, 2, 8)), 0, 0);
    assert!(!same(&e0, &other));
    // Without shuffling the order is the identity, but the views still change with the epoch.
    let mut c = cfg(5, false, 1, 7);
    c.shuffle = false;
    let l = Loader::new(data, r, c);
    let (a, b) = (collect(&l, 0, 0), collect(&l, 1, 0));
    assert_eq!(a.iter().flat_map(|b| b.indices.clone()).collect::<Vec<_>>(), (0..23).collect::<Vec<_>>());
    assert_eq!(a[0].indices, b[0].indices);
    assert_ne!(a[0].views[0].data, b[0].views[0].data);
    assert_eq!(a[0].views[2].data, b[0].views[2].data); // the eval view has no randomness
}

/// Fails for one index, slowly serves the rest.
struct Flaky {
    inner: ImageSet,
    bad: usize,
    delay: Duration,
    /// Images asked for so far (the work the loader did).
    served: AtomicUsize,
}

impl Flaky {
    fn new(inner: ImageSet, bad: usize, delay: Duration) -> Flaky {
        Flaky { inner, bad, delay, served: AtomicUsize::new(0) }
    }
}

impl Dataset for Flaky {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn image(&self, i: usize) -> Result<Image, DataError> {
        self.served.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        if i == self.bad {
            Err(DataError::format("flaky", format!("cannot decode {i}")))
        } else {
            Ok(self.inner.image(i).to_owned())
        }
    }
    fn label(&self, i: usize) -> u32 {
        self.inner.labels[i]
    }
}

#[test]
fn dataset_errors_are_passed_through_for_their_batch() {
    let order = epoch_order(20, 3, 0, true);
    let bad = order[7]; // in batch 1 (batch size 4)
    let data: Arc<dyn Dataset> = Arc::new(Flaky::new(noise_set(20, 6, 6, 3, 8), bad, Duration::ZERO));
    for workers in [0, 2] {
        let loader = Loader::new(data.clone(), recipes(3), cfg(4, false, workers, 3));
        let results: Vec<_> = loader.epoch(0, 0).collect();
        assert_eq!(results.len(), 5);
        for (b, r) in results.iter().enumerate() {
            match r {
                Err(e) => {
                    assert_eq!(b, 1);
                    assert!(e.to_string().contains(&format!("cannot decode {bad}")), "{e}");
                }
                Ok(batch) => assert_ne!(b, 1, "batch {}", batch.index),
            }
        }
    }
}

#[test]
fn dropping_the_iterator_stops_workers_promptly() {
    // 200 batches of 4 slow samples (5 ms each). Dropping the iterator after one batch must stop and
    // join the 3 workers: each holds at most its prefetch (2) plus the batch it is preparing or
    // sending, so no more than (1 + 3 * 3) batches' images are ever asked for, however fast the CPU.
    // Workers that ran on would be joined only after all 800; workers left unjoined would go on
    // asking after the drop.
    let flaky = Arc::new(Flaky::new(noise_set(800, 6, 6, 3, 9), usize::MAX, Duration::from_millis(5)));
    let data: Arc<dyn Dataset> = flaky.clone();
    let loader = Loader::new(data, recipes(3), cfg(4, false, 3, 1));
    let mut it = loader.epoch(0, 0);
    let first = it.next().unwrap().unwrap();
    assert_eq!(first.index, 0);
    assert!(it.starved() > Duration::ZERO);
    drop(it);
    let served = flaky.served.load(Ordering::SeqCst);
    assert!((4..=40).contains(&served), "{served} images asked for before the workers stopped");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(flaky.served.load(Ordering::SeqCst), served, "a worker still runs after the drop");
}

#[test]
fn single_channel_dataset() {
    let data: Arc<dyn Dataset> = Arc::new(noise_set(10, 28, 28, 1, 10));
    let mut r = (*recipes(1)).clone();
    for v in r.iter_mut().take(2) {
        v.crop.as_mut().unwrap().size = (28, 28);
    }
    let batches = collect(&Loader::new(data, Arc::new(r), cfg(4, false, 2, 11)), 0, 0);
    assert_eq!(batches.len(), 3);
    for b in &batches {
        for v in &b.views {
            assert_eq!((v.channels, v.height, v.width), (1, 28, 28));
            assert_eq!(v.data.len(), b.indices.len() * 784);
            assert!(v.data.iter().all(|x| x.is_finite()));
        }
    }
}

#[test]
fn mismatched_normalization_is_an_error() {
    let data: Arc<dyn Dataset> = Arc::new(noise_set(4, 6, 6, 3, 12));
    let r = Arc::new(vec![ViewRecipe::eval(vec![0.5], vec![0.5])]);
    let results: Vec<_> = Loader::new(data, r, cfg(2, false, 0, 1)).epoch(0, 0).collect();
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|r| r.is_err()));
}

fn skip_cfg(batch_size: usize, workers: usize) -> LoaderConfig {
    LoaderConfig { on_bad_image: BadImage::Skip, ..cfg(batch_size, false, workers, 3) }
}

/// The same samples, every image readable.
struct Good(ImageSet);

impl Dataset for Good {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn image(&self, i: usize) -> Result<Image, DataError> {
        Ok(self.0.image(i).to_owned())
    }
    fn label(&self, i: usize) -> u32 {
        self.0.labels[i]
    }
}

#[test]
fn skip_drops_exactly_the_bad_sample_and_counts_it() {
    let set = noise_set(20, 6, 6, 3, 8);
    let order = epoch_order(20, 3, 0, true);
    let bad = order[7]; // in batch 1 (batch size 4)
    let data: Arc<dyn Dataset> = Arc::new(Flaky::new(set.clone(), bad, Duration::ZERO));
    let good = collect(&Loader::new(Arc::new(Good(set)), recipes(3), cfg(4, false, 0, 3)), 0, 0);
    let mut runs = Vec::new();
    for workers in [0, 1, 3] {
        let loader = Loader::new(data.clone(), recipes(3), skip_cfg(4, workers));
        assert_eq!(loader.skipped(), 0);
        let batches = collect(&loader, 0, 0);
        assert_eq!(loader.skipped(), 1, "workers {workers}");
        assert_eq!(batches.len(), 5);
        for (b, g) in batches.iter().zip(&good) {
            if b.index == 1 {
                // The bad sample is gone; the others are exactly as without it.
                let kept: Vec<usize> = g.indices.iter().copied().filter(|&i| i != bad).collect();
                assert_eq!(b.indices, kept);
                assert_eq!(b.labels.len(), 3);
                for (v, gv) in b.views.iter().zip(&g.views) {
                    let chw = v.channels * v.height * v.width;
                    assert_eq!(v.data.len(), 3 * chw);
                    let pos = g.indices.iter().position(|&i| i == bad).unwrap();
                    let mut expected = gv.data.clone();
                    expected.drain(pos * chw..(pos + 1) * chw);
                    assert_eq!(v.data, expected);
                }
            } else {
                assert_eq!(bits(b), bits(g));
            }
        }
        // Counted again in the next epoch.
        let _ = collect(&loader, 1, 0);
        assert_eq!(loader.skipped(), 2);
        runs.push(batches);
    }
    assert!(same(&runs[0], &runs[1]) && same(&runs[0], &runs[2]));
}

/// Every image of a range of indices fails.
struct BadRange {
    inner: ImageSet,
    bad: std::ops::Range<usize>,
}

impl Dataset for BadRange {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn image(&self, i: usize) -> Result<Image, DataError> {
        if self.bad.contains(&i) {
            Err(DataError::format(format!("img{i}.jpg"), "cannot decode image: broken"))
        } else {
            Ok(self.inner.image(i).to_owned())
        }
    }
    fn label(&self, i: usize) -> u32 {
        self.inner.labels[i]
    }
}

#[test]
fn skip_leaves_out_a_batch_whose_samples_all_fail() {
    let data: Arc<dyn Dataset> = Arc::new(BadRange { inner: noise_set(12, 6, 6, 3, 9), bad: 4..8 });
    let mut c = skip_cfg(4, 2);
    c.shuffle = false; // batch 1 is samples 4..8
    let loader = Loader::new(data, recipes(3), c);
    let it = loader.epoch(0, 0);
    assert_eq!(it.size_hint(), (0, Some(3)));
    let batches: Vec<Batch> = it.map(|b| b.unwrap()).collect();
    assert_eq!(batches.iter().map(|b| b.index).collect::<Vec<_>>(), vec![0, 2]);
    assert_eq!(loader.skipped(), 4);
}

#[test]
fn image_folder_with_a_broken_file_fail_and_skip() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let t = tempfile::tempdir().unwrap();
    for class in ["a", "b"] {
        std::fs::create_dir(t.path().join(class)).unwrap();
    }
    let jpg = std::fs::read(fixtures.join("tiny-imagenet-200/val/images/val_0.JPEG")).unwrap();
    let png = std::fs::read(fixtures.join("image-folder/jeep/jeep1_palette.png")).unwrap();
    std::fs::write(t.path().join("a/0.jpg"), &jpg).unwrap();
    std::fs::write(t.path().join("a/1.jpg"), &jpg[..jpg.len() / 2]).unwrap(); // truncated
    std::fs::write(t.path().join("b/2.png"), &png).unwrap();
    std::fs::write(t.path().join("b/3.jpg"), b"not an image").unwrap();
    std::fs::write(t.path().join("b/4.png"), &png).unwrap();
    let folder = unmix_data::ImageFolder::open(t.path()).unwrap();
    assert_eq!(folder.len(), 5);
    let data: Arc<dyn Dataset> = Arc::new(folder);
    // 64x64 images: an eval view cropped to 16x16 (resize all to one size).
    let r = Arc::new(vec![ViewRecipe {
        crop: Some(RandomResizedCrop::new(16, 16)),
        mean: vec![0.5; 3],
        std: vec![0.5; 3],
        ..Default::default()
    }]);
    let mut c = cfg(5, false, 2, 1);
    c.shuffle = false;

    // Fail: the (single) batch is an error naming the first bad file.
    let results: Vec<_> = Loader::new(data.clone(), r.clone(), c.clone()).epoch(0, 0).collect();
    assert_eq!(results.len(), 1);
    let msg = results[0].as_ref().unwrap_err().to_string();
    assert!(msg.contains(&t.path().join("a/1.jpg").display().to_string()), "{msg}");
    assert!(msg.contains("truncated"), "{msg}");

    // Skip: samples 1 and 3 are left out and counted.
    c.on_bad_image = BadImage::Skip;
    let loader = Loader::new(data, r, c);
    let batches = collect(&loader, 0, 0);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].indices, vec![0, 2, 4]);
    assert_eq!(batches[0].labels, vec![0, 1, 1]);
    assert_eq!(batches[0].views[0].data.len(), 3 * 3 * 16 * 16);
    assert_eq!(loader.skipped(), 2);
}

#[test]
fn multi_crop_views_of_different_sizes() {
    let set = noise_set(10, 40, 36, 3, 13);
    let data: Arc<dyn Dataset> = Arc::new(set.clone());
    let view = |side: usize, scale: (f64, f64)| ViewRecipe {
        crop: Some(RandomResizedCrop { size: (side, side), scale, ratio: (0.75, 4.0 / 3.0) }),
        hflip_p: 0.5,
        grayscale_p: 0.2,
        solarize_p: 0.1,
        blur: Some(GaussianBlur::moco_v2()),
        mean: vec![0.5; 3],
        std: vec![0.25; 3],
        ..Default::default()
    };
    // SwAV-style: 2 global 32 px views and 3 local 16 px views.
    let r = Arc::new(vec![
        view(32, (0.14, 1.0)),
        view(32, (0.14, 1.0)),
        view(16, (0.05, 0.14)),
        view(16, (0.05, 0.14)),
        view(16, (0.05, 0.14)),
    ]);
    let (seed, epoch) = (21, 2);
    let runs: Vec<Vec<Batch>> = [0, 2]
        .iter()
        .map(|&w| collect(&Loader::new(data.clone(), r.clone(), cfg(4, false, w, seed)), epoch, 0))
        .collect();
    assert!(same(&runs[0], &runs[1]));
    for b in &runs[0] {
        assert_eq!(b.views.len(), 5);
        for (v, recipe) in r.iter().enumerate() {
            let side = if v < 2 { 32 } else { 16 };
            let view = &b.views[v];
            assert_eq!((view.channels, view.height, view.width), (3, side, side));
            let chw = 3 * side * side;
            assert_eq!(view.data.len(), b.indices.len() * chw);
            for (k, &i) in b.indices.iter().enumerate() {
                let img = augment(set.image(i), recipe, &mut sample_rng(seed, epoch, i as u64, v as u64));
                let mut expected = vec![0.0f32; chw];
                normalize_into(img.as_ref(), &recipe.mean, &recipe.std, &mut expected);
                assert_eq!(&view.data[k * chw..(k + 1) * chw], &expected[..], "view {v} sample {i}");
            }
        }
        // Views of the same size still differ (own streams).
        assert_ne!(b.views[2].data, b.views[3].data);
    }
}

#[test]
fn recycled_buffers_are_reused_and_change_nothing() {
    let set: Arc<dyn Dataset> = Arc::new(noise_set(40, 12, 12, 3, 5));
    let plain = Loader::new(set.clone(), recipes(3), cfg(8, true, 2, 3));
    let reference = collect(&plain, 0, 0);
    let loader = Loader::new(set, recipes(3), cfg(8, true, 2, 3));
    let mut got = Vec::new();
    for epoch in 0..3u64 {
        for b in loader.epoch(epoch, 0) {
            let b = b.unwrap();
            if epoch == 0 {
                got.push(b.clone());
            }
            loader.recycle(b);
        }
    }
    // Same batches as without recycling (a reused buffer is fully overwritten).
    assert!(same(&reference, &got));
    // Three epochs of 5 batches x 3 views = 45 buffers used; only those in flight at once were
    // allocated (2 workers x prefetch 2 batches + the one being built and the one consumed, per view).
    let allocated = loader.buffers_allocated();
    assert!(allocated <= 3 * (2 * 2 + 2 + 2), "{allocated} buffers allocated for 45 uses");
    assert!(allocated >= 3);
}

#[test]
fn shards_interleave_to_the_single_process_global_batch() {
    let set: Arc<dyn Dataset> = Arc::new(noise_set(50, 10, 10, 3, 9));
    let single = Loader::new(set.clone(), recipes(3), cfg(12, true, 1, 4));
    let shards: Vec<Loader> =
        (0..3).map(|r| Loader::new(set.clone(), recipes(3), cfg(4, true, 2, 4)).sharded(r, 3)).collect();
    assert_eq!(single.num_batches(), 4);
    assert!(shards.iter().all(|s| s.num_batches() == 4));
    let whole = collect(&single, 1, 0);
    let parts: Vec<Vec<Batch>> = shards.iter().map(|s| collect(s, 1, 0)).collect();
    for (b, global) in whole.iter().enumerate() {
        for (r, part) in parts.iter().enumerate() {
            let p = &part[b];
            // Rank r holds global positions r, r + 3, r + 6, r + 9, with identical views.
            let expect: Vec<usize> = global.indices.iter().skip(r).step_by(3).copied().collect();
            assert_eq!(p.indices, expect, "batch {b} rank {r}");
            for (v, view) in p.views.iter().enumerate() {
                let chw = view.channels * view.height * view.width;
                for (k, pos) in (r..12).step_by(3).enumerate() {
                    assert_eq!(view.data[k * chw..(k + 1) * chw], global.views[v].data[pos * chw..(pos + 1) * chw]);
                }
            }
        }
    }
}
