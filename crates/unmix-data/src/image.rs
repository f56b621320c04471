//! In-memory image containers: u8 pixels, height x width x channels, channels interleaved (HWC).

/// A borrowed u8 image, HWC interleaved.
#[derive(Clone, Copy, Debug)]
pub struct ImageRef<'a> {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub data: &'a [u8],
}

/// An owned u8 image, HWC interleaved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

impl Image {
    pub fn new(height: usize, width: usize, channels: usize, data: Vec<u8>) -> Self {
        assert_eq!(data.len(), height * width * channels, "image buffer size");
        Image { height, width, channels, data }
    }

    pub fn as_ref(&self) -> ImageRef<'_> {
        ImageRef { height: self.height, width: self.width, channels: self.channels, data: &self.data }
    }
}

impl<'a> ImageRef<'a> {
    pub fn to_owned(&self) -> Image {
        Image::new(self.height, self.width, self.channels, self.data.to_vec())
    }

    /// Pixel value at row `y`, column `x`, channel `c`.
    #[inline]
    pub fn at(&self, y: usize, x: usize, c: usize) -> u8 {
        self.data[(y * self.width + x) * self.channels + c]
    }
}

/// A labelled set of equally sized images, all in memory (MNIST, Fashion-MNIST, CIFAR).
#[derive(Clone, Debug)]
pub struct ImageSet {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    /// `len() * height * width * channels` bytes, image after image, each HWC.
    pub pixels: Vec<u8>,
    pub labels: Vec<u32>,
    pub num_classes: usize,
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_size(&self) -> usize {
        self.height * self.width * self.channels
    }

    pub fn image(&self, i: usize) -> ImageRef<'_> {
        let s = self.image_size();
        ImageRef {
            height: self.height,
            width: self.width,
            channels: self.channels,
            data: &self.pixels[i * s..(i + 1) * s],
        }
    }

    /// Keep only the first `n` images (the `data.limit` option).
    pub fn truncate(&mut self, n: usize) {
        if n < self.len() {
            self.labels.truncate(n);
            self.pixels.truncate(n * self.image_size());
        }
    }
}
