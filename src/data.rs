//! Glue between the configuration, the tch-free readers/augmentations of `unmix-data`, and tensors.

use crate::config::{Config, Dataset as DatasetKind, OnBadImage, ViewConfig};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Device, Tensor};
use unmix_data::augment::{ColorJitter, GaussianBlur, RandomResizedCrop, ViewRecipe};
use unmix_data::cifar::{self, Cifar100Label};
use unmix_data::loader::{BadImage, Dataset, ViewBatch};
use unmix_data::stl10::{self, Stl10Split};
use unmix_data::{idx, DataError, Image, ImageFolder, ImageSet};

/// A labelled split, whatever its storage (in memory or decoded on demand).
#[derive(Clone)]
pub struct Split {
    pub data: Arc<dyn Dataset>,
    pub labels: Vec<u32>,
    pub classes: usize,
    /// Class names by label, where the dataset has them (empty otherwise).
    pub names: Vec<String>,
    /// The image files by index, for datasets of files (empty otherwise).
    pub files: Vec<PathBuf>,
}

impl Split {
    fn from_set(set: ImageSet) -> Split {
        let (labels, classes) = (set.labels.clone(), set.num_classes);
        Split { data: Arc::new(set), labels, classes, names: Vec::new(), files: Vec::new() }
    }

    fn from_folder(f: ImageFolder) -> Split {
        let (labels, classes, names) = (f.labels().to_vec(), f.classes().len(), f.classes().to_vec());
        let files = (0..f.len()).map(|i| f.path(i).to_path_buf()).collect();
        Split { data: Arc::new(f), labels, classes, names, files }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The first `n` samples only (`data.limit`).
    pub fn limit(self, n: usize) -> Split {
        if n == 0 || n >= self.len() {
            return self;
        }
        Split {
            data: Arc::new(Prefix { inner: self.data, len: n }),
            labels: self.labels[..n].to_vec(),
            classes: self.classes,
            names: self.names,
            files: self.files.into_iter().take(n).collect(),
        }
    }
}

/// The first `len` samples of a dataset.
struct Prefix {
    inner: Arc<dyn Dataset>,
    len: usize,
}

impl Dataset for Prefix {
    fn len(&self) -> usize {
        self.len
    }
    fn image(&self, i: usize) -> Result<Image, DataError> {
        self.inner.image(i)
    }
    fn label(&self, i: usize) -> u32 {
        self.inner.label(i)
    }
}

/// Two datasets one after the other (STL-10 pretrains on train + unlabeled).
struct Concat {
    a: Arc<dyn Dataset>,
    b: Arc<dyn Dataset>,
}

impl Dataset for Concat {
    fn len(&self) -> usize {
        self.a.len() + self.b.len()
    }
    fn image(&self, i: usize) -> Result<Image, DataError> {
        if i < self.a.len() {
            self.a.image(i)
        } else {
            self.b.image(i - self.a.len())
        }
    }
    fn label(&self, i: usize) -> u32 {
        if i < self.a.len() {
            self.a.label(i)
        } else {
            self.b.label(i - self.a.len())
        }
    }
}

/// Where a folder run's labeled evaluation images are: `data.eval_root` when given, else (for
/// image-folder) `data.root`. A folder with `train/` and `val/` gives both splits; any other
/// folder is both bank and test, and kNN leaves each image's own match out.
pub struct EvalFolder {
    pub bank: PathBuf,
    pub test: PathBuf,
}

impl EvalFolder {
    pub fn of(cfg: &Config) -> Option<EvalFolder> {
        let root = match (&cfg.data.eval_root, cfg.data.dataset) {
            (Some(r), _) => PathBuf::from(r),
            (None, DatasetKind::ImageFolder) => PathBuf::from(&cfg.data.root),
            _ => return None,
        };
        Some(if root.join("train").is_dir() {
            EvalFolder { bank: root.join("train"), test: root.join("val") }
        } else {
            EvalFolder { bank: root.clone(), test: root }
        })
    }

    /// Bank and test are the same images (kNN scores each image against the others).
    pub fn same_images(&self) -> bool {
        self.bank == self.test
    }
}

/// Whether the run has labeled images to evaluate on (kNN, probes, embedding maps).
pub fn has_labels(cfg: &Config) -> bool {
    cfg.data.dataset != DatasetKind::UnlabeledFolder || cfg.data.eval_root.is_some()
}

/// Whether kNN's bank and test split are the same images (a folder without train/ and val/).
pub fn leave_one_out(cfg: &Config) -> bool {
    EvalFolder::of(cfg).is_some_and(|f| f.same_images())
}

/// The message for an evaluation asked of a run without labels.
pub const NO_LABELS: &str = "data.dataset = \"unlabeled-folder\" has no labels to evaluate with: set data.eval_root to a labeled \
    folder (ROOT/CLASS/IMAGE, or ROOT/train/CLASS/IMAGE and ROOT/val/CLASS/IMAGE), e.g. --set data.eval_root=\"/path/to/labeled\" \
    (`unmix embed --split images` embeds the unlabeled images themselves)";

/// Loads the train (`train = true`, the kNN bank and probe training set) or test split.
pub fn load_split(cfg: &Config, train: bool) -> Result<Split> {
    let root = Path::new(&cfg.data.root);
    let split = if train { "train" } else { "test" };
    if let Some(f) = EvalFolder::of(cfg) {
        let dir = if train { &f.bank } else { &f.test };
        let key = if cfg.data.eval_root.is_some() { "data.eval_root" } else { "data.root" };
        let set = ImageFolder::open(dir)
            .map(Split::from_folder)
            .with_context(|| format!("loading the labeled {split} images from {key} ({})", dir.display()))?;
        if set.is_empty() {
            anyhow::bail!("the labeled folder {} has no images", dir.display());
        }
        return Ok(set);
    }
    let loaded: Result<Split, DataError> = match cfg.data.dataset {
        DatasetKind::FashionMnist | DatasetKind::Mnist => idx::load_mnist_like(root, train).map(Split::from_set),
        DatasetKind::Cifar10 => cifar::load_cifar10(root, train).map(Split::from_set),
        DatasetKind::Cifar100 => cifar::load_cifar100(root, train, Cifar100Label::Fine).map(Split::from_set),
        DatasetKind::Stl10 => {
            stl10::load_stl10(root, if train { Stl10Split::Train } else { Stl10Split::Test }).map(Split::from_set)
        }
        DatasetKind::TinyImagenet => ImageFolder::tiny_imagenet(root, train).map(Split::from_folder),
        DatasetKind::ImageFolder | DatasetKind::UnlabeledFolder => anyhow::bail!(NO_LABELS),
    };
    let mut set = loaded.with_context(|| {
        format!("loading the {split} split of {} from data.root = {}", cfg.data.dataset, root.display())
    })?;
    if set.is_empty() {
        anyhow::bail!("the {split} split of {} in {} has no images", cfg.data.dataset, root.display());
    }
    if set.names.is_empty() {
        set.names = class_names(cfg.data.dataset).iter().map(|s| s.to_string()).collect();
    }
    Ok(set)
}

/// Loads both labeled splits (train: the kNN bank and probe training set; test), checked
/// against each other: the same classes (a folder's train/ and val/ name the same class
/// folders), the same kind of images (channels, and size unless data.eval_resize sets one), and
/// test labels the train split knows.
pub fn load_splits(cfg: &Config) -> Result<(Split, Split)> {
    let bank = load_split(cfg, true)?;
    if leave_one_out(cfg) {
        return Ok((bank.clone(), bank));
    }
    let test = load_split(cfg, false)?;
    check_pair(cfg, &bank, &test)?;
    Ok((bank, test))
}

fn check_pair(cfg: &Config, train: &Split, test: &Split) -> Result<()> {
    let place = match EvalFolder::of(cfg) {
        Some(f) => format!("{} and {}", f.bank.display(), f.test.display()),
        None => format!("the train and test splits of {} in {}", cfg.data.dataset, cfg.data.root),
    };
    if !train.names.is_empty() && !test.names.is_empty() && train.names != test.names {
        let only =
            |a: &[String], b: &[String]| a.iter().filter(|n| !b.contains(n)).cloned().collect::<Vec<_>>().join(", ");
        bail!(
            "{place} hold different classes (only in the first: [{}]; only in the second: [{}]); labels would not match: give both \
             the same class folders",
            only(&train.names, &test.names),
            only(&test.names, &train.names)
        );
    }
    same_kind(cfg, train, test, &place)?;
    if let Some(&l) = test.labels.iter().find(|&&l| l as usize >= train.classes) {
        bail!(
            "{place}: the test split has label {l}, but the train split has {} classes: the splits do not match",
            train.classes
        );
    }
    Ok(())
}

/// The test images must be of the train images' kind: the same channels and the same size
/// (unless data.eval_resize sets one). `place` names the two.
pub fn same_kind(cfg: &Config, train: &Split, test: &Split, place: &str) -> Result<()> {
    let first = |s: &Split, name: &str| -> Result<(usize, usize, usize)> {
        let img = s.data.image(0).with_context(|| format!("reading the first image of the {name} split"))?;
        Ok((img.channels, img.height, img.width))
    };
    let (t, e) = (first(train, "train")?, first(test, "test")?);
    if t.0 != e.0 || (cfg.data.eval_resize == 0 && (t.1, t.2) != (e.1, e.2)) {
        bail!(
            "{place}: the test images are {}x{} with {} channel(s), the train images {}x{} with {}: they are not the same kind of images",
            e.1,
            e.2,
            e.0,
            t.1,
            t.2,
            t.0
        );
    }
    Ok(())
}

/// The class names of the datasets whose labels are numbers (folders name their own classes).
pub fn class_names(dataset: DatasetKind) -> &'static [&'static str] {
    match dataset {
        DatasetKind::FashionMnist => {
            &["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
        }
        DatasetKind::Mnist => &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        DatasetKind::Cifar10 => {
            &["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
        }
        DatasetKind::Stl10 => &["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"],
        _ => &[],
    }
}

/// The pretraining set: the train split, plus the 100k unlabeled images for STL-10 (as is usual),
/// cut to `data.limit`.
pub fn load_pretrain(cfg: &Config) -> Result<Split> {
    let root = Path::new(&cfg.data.root);
    let folder = match cfg.data.dataset {
        DatasetKind::UnlabeledFolder => Some(ImageFolder::unlabeled(root)),
        // ImageNet layout (ROOT/train/CLASS) or one folder of classes.
        DatasetKind::ImageFolder => {
            Some(ImageFolder::open(&if root.join("train").is_dir() { root.join("train") } else { root.to_path_buf() }))
        }
        _ => None,
    };
    if let Some(f) = folder {
        let set = f.map(Split::from_folder).with_context(|| {
            format!("loading the images of {} from data.root = {}", cfg.data.dataset, root.display())
        })?;
        return Ok(set.limit(cfg.data.limit));
    }
    let mut set = load_split(cfg, true)?;
    if cfg.data.dataset == DatasetKind::Stl10 {
        let root = Path::new(&cfg.data.root);
        let unl = stl10::load_stl10(root, Stl10Split::Unlabeled)
            .with_context(|| format!("loading the unlabeled split of stl10 from data.root = {}", root.display()))?;
        let n = unl.len();
        set = Split {
            data: Arc::new(Concat { a: set.data, b: Arc::new(unl) }),
            labels: set.labels.into_iter().chain(std::iter::repeat_n(0, n)).collect(),
            classes: set.classes,
            names: set.names,
            files: Vec::new(),
        };
    }
    Ok(set.limit(cfg.data.limit))
}

pub fn bad_image_policy(cfg: &Config) -> BadImage {
    match cfg.data.on_bad_image {
        OnBadImage::Fail => BadImage::Fail,
        OnBadImage::Skip => BadImage::Skip,
    }
}

pub fn recipe(v: &ViewConfig, cfg: &Config) -> ViewRecipe {
    let [b, c, s, h] = v.jitter;
    ViewRecipe {
        crop: (v.crop_size > 0).then(|| RandomResizedCrop {
            size: (v.crop_size, v.crop_size),
            scale: (v.crop_scale[0], v.crop_scale[1]),
            ratio: (v.crop_ratio[0], v.crop_ratio[1]),
        }),
        hflip_p: v.hflip_p,
        jitter: (v.jitter.iter().any(|x| *x > 0.0)).then_some(ColorJitter {
            brightness: b,
            contrast: c,
            saturation: s,
            hue: h,
        }),
        jitter_p: v.jitter_p,
        grayscale_p: v.grayscale_p,
        grayscale_first: v.grayscale_before_jitter,
        blur: (v.blur_p > 0.0).then_some(GaussianBlur { sigma: (v.blur_sigma[0], v.blur_sigma[1]), p: v.blur_p }),
        solarize_p: v.solarize_p,
        mean: cfg.data.mean.clone(),
        std: cfg.data.std.clone(),
        ..Default::default()
    }
}

/// The training views' recipes: view 1, view 2, then `augment.small_crops` small crops.
pub fn train_recipes(cfg: &Config) -> Arc<Vec<ViewRecipe>> {
    let mut r = vec![recipe(&cfg.augment.view1, cfg), recipe(cfg.view2(), cfg)];
    if let Some(small) = cfg.augment.small.as_ref().filter(|_| cfg.augment.small_crops > 0) {
        r.extend(std::iter::repeat_n(recipe(small, cfg), cfg.augment.small_crops));
    }
    Arc::new(r)
}

/// No augmentation: normalization, after resize + center crop when `data.eval_resize` is set
/// (variable-size images).
pub fn eval_recipes(cfg: &Config) -> Arc<Vec<ViewRecipe>> {
    let mut r = ViewRecipe::eval(cfg.data.mean.clone(), cfg.data.std.clone());
    if cfg.data.eval_resize > 0 {
        r.resize_center = Some((cfg.data.eval_resize, cfg.data.eval_crop));
    }
    Arc::new(vec![r])
}

/// The CPU tensor of a batch view over the view's own buffer, without a copy (the way
/// PyTorch's DataLoader hands a worker's shared-memory batch to the main process).
///
/// # Safety
/// The tensor, and every tensor sharing its storage (views, shallow clones), must be dropped
/// before `v`'s buffer is dropped, moved or refilled (e.g. recycled to the loader).
pub(crate) unsafe fn borrowed_tensor(v: &ViewBatch) -> Tensor {
    let n = (v.data.len() / (v.channels * v.height * v.width)) as i64;
    let (c, h, w) = (v.channels as i64, v.height as i64, v.width as i64);
    Tensor::from_blob(
        v.data.as_ptr() as *const u8,
        &[n, c, h, w],
        &[c * h * w, h * w, w, 1],
        tch::Kind::Float,
        Device::Cpu,
    )
}

/// A prepared view batch as an NCHW float tensor on `device`.
pub fn to_tensor(v: &ViewBatch, device: Device) -> Tensor {
    let n = (v.data.len() / (v.channels * v.height * v.width)) as i64;
    let host = Tensor::from_slice(&v.data).view([n, v.channels as i64, v.height as i64, v.width as i64]);
    match device {
        // Page-locked staging memory and an asynchronous copy, as a DataLoader with pin_memory.
        Device::Cuda(_) => host.pin_memory(device).to_device_(device, tch::Kind::Float, true, false),
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grayscale_before_jitter_reaches_the_view_recipe() {
        let cfg = Config::load(
            std::path::Path::new("configs/fmnist-moco-unmix.toml"),
            &["augment.view1.grayscale_before_jitter=true".into()],
        )
        .unwrap();
        assert!(recipe(&cfg.augment.view1, &cfg).grayscale_first);
        assert!(
            !recipe(
                &Config::load(std::path::Path::new("configs/fmnist-moco-unmix.toml"), &[]).unwrap().augment.view1,
                &cfg
            )
            .grayscale_first
        );
    }
}
