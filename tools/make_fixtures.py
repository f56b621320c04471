#!/usr/bin/env python3
"""Regenerate the small real-data test fixtures of crates/unmix-data/tests/fixtures.

Sources (see crates/unmix-data/tests/fixtures/README.md for licences):
  * Fashion-MNIST from the Debian package `dataset-fashion-mnist`
    (/usr/share/datasets/fashion-mnist/*-ubyte.gz): the first 1024 training and the first 512 test
    images/labels, rewritten as gzipped IDX files with the header counts updated.
  * CIFAR-10 / CIFAR-100: the first 20 test images of each, shipped as PNGs (label in the file name)
    in the PyPI wheel foolbox==3.3.4 (foolbox/data/cifar10_NN_LABEL.png, cifar100_NN_FINE.png),
    rewritten in the official binary layouts.
  * STL-10 layout, image folder, Tiny ImageNet layout: real photos, the 20 ImageNet JPEG samples of
    the same wheel (foolbox/data/imagenet_NN_LABEL.jpg), downscaled and written in those layouts.
    The STL-10 files hold these photos in the STL-10 binary format; they are not STL-10 images.

Usage (Pillow is needed; a throw-away --target install is enough):
    apt-get install -y dataset-fashion-mnist
    pip download --no-deps foolbox==3.3.4 -d /tmp/fb
    pip install --target /tmp/pylib pillow
    PYTHONPATH=/tmp/pylib python3 tools/make_fixtures.py --foolbox-wheel /tmp/fb/foolbox-3.3.4-py3-none-any.whl

The output is deterministic (gzip mtime 0, no file name in the gzip header; JPEG/PNG files are
deterministic for a given Pillow version; the fixtures were made with Pillow 13.0.0). The values the
Rust tests check (pixels, labels) are printed.
"""

import argparse
import gzip
import io
import re
import struct
import sys
import zipfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "crates" / "unmix-data" / "tests" / "fixtures"

# Official CIFAR-100 fine (alphabetical order of `meta`'s fine_label_names) -> coarse
# (alphabetical order of coarse_label_names) mapping, as an array indexed by the fine label.
# This is the widely used table of github.com/ryanchankh/cifar100coarse (sparse2coarse.py);
# it is cross-checked below against the superclass table of the CIFAR-100 web page
# (https://www.cs.toronto.edu/~kriz/cifar.html) written out by name.
FINE_TO_COARSE = [
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3,
    3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15,
    0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10,
    16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19,
    2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19,
    18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
]

FINE_NAMES = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab
crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard
lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom
oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine
possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider
squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor train trout
tulip turtle wardrobe whale willow_tree wolf woman worm""".split()

# Superclass table of the CIFAR-100 web page, superclasses in the (alphabetical) order of `meta`.
SUPERCLASSES = [
    ("aquatic_mammals", "beaver dolphin otter seal whale"),
    ("fish", "aquarium_fish flatfish ray shark trout"),
    ("flowers", "orchid poppy rose sunflower tulip"),
    ("food_containers", "bottle bowl can cup plate"),
    ("fruit_and_vegetables", "apple mushroom orange pear sweet_pepper"),
    ("household_electrical_devices", "clock keyboard lamp telephone television"),
    ("household_furniture", "bed chair couch table wardrobe"),
    ("insects", "bee beetle butterfly caterpillar cockroach"),
    ("large_carnivores", "bear leopard lion tiger wolf"),
    ("large_man-made_outdoor_things", "bridge castle house road skyscraper"),
    ("large_natural_outdoor_scenes", "cloud forest mountain plain sea"),
    ("large_omnivores_and_herbivores", "camel cattle chimpanzee elephant kangaroo"),
    ("medium_mammals", "fox porcupine possum raccoon skunk"),
    ("non-insect_invertebrates", "crab lobster snail spider worm"),
    ("people", "baby boy girl man woman"),
    ("reptiles", "crocodile dinosaur lizard snake turtle"),
    ("small_mammals", "hamster mouse rabbit shrew squirrel"),
    ("trees", "maple_tree oak_tree palm_tree pine_tree willow_tree"),
    ("vehicles_1", "bicycle bus motorcycle pickup_truck train"),
    ("vehicles_2", "lawn_mower rocket streetcar tank tractor"),
]


def check_fine_to_coarse():
    assert len(FINE_NAMES) == 100 and FINE_NAMES == sorted(FINE_NAMES), "fine names"
    assert [s for s, _ in SUPERCLASSES] == sorted(s for s, _ in SUPERCLASSES), "coarse names"
    by_name = {}
    for coarse, (_, members) in enumerate(SUPERCLASSES):
        for m in members.split():
            by_name[m] = coarse
    derived = [by_name[n] for n in FINE_NAMES]
    assert derived == FINE_TO_COARSE, "fine->coarse table disagrees with the superclass table"


# ---------------------------------------------------------------- IDX (Fashion-MNIST)

def read_idx(path):
    data = gzip.decompress(Path(path).read_bytes())
    magic = struct.unpack(">I", data[:4])[0]
    if magic == 0x803:
        n, rows, cols = struct.unpack(">III", data[4:16])
        assert len(data) == 16 + n * rows * cols
        return magic, (n, rows, cols), data[16:]
    if magic == 0x801:
        (n,) = struct.unpack(">I", data[4:8])
        assert len(data) == 8 + n
        return magic, (n,), data[8:]
    raise ValueError(f"{path}: bad magic {magic:#x}")


def write_gz(path, payload):
    # mtime=0 and an empty embedded name keep the output byte-for-byte reproducible.
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as f:
        f.write(payload)
    path.write_bytes(buf.getvalue())


def make_fashion_mnist(src, out, n_train=1024, n_test=512):
    out.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        _, (total, rows, cols), pix = read_idx(src / f"{split}-images-idx3-ubyte.gz")
        _, (total_l,), lab = read_idx(src / f"{split}-labels-idx1-ubyte.gz")
        assert total == total_l and n <= total
        write_gz(out / f"{split}-images-idx3-ubyte.gz",
                 struct.pack(">IIII", 0x803, n, rows, cols) + pix[: n * rows * cols])
        write_gz(out / f"{split}-labels-idx1-ubyte.gz", struct.pack(">II", 0x801, n) + lab[:n])
        print(f"fashion-mnist {split}: {n} of {total}; first labels {list(lab[:10])}")
        if split == "train":
            img0 = pix[: rows * cols]
            print(f"  train image 0: sum {sum(img0)}, nonzero {sum(1 for b in img0 if b)}, "
                  f"row 14 = {list(img0[14 * cols:15 * cols])}")


# ---------------------------------------------------------------- CIFAR (foolbox PNGs)

def foolbox_samples(wheel, prefix):
    """[(index, label, HWC RGB bytes)] of foolbox/data/{prefix}_NN_LABEL.png, sorted by index."""
    pat = re.compile(rf"foolbox/data/{prefix}_(\d+)_(\d+)\.png$")
    found = []
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            m = pat.match(name)
            if m:
                im = Image.open(io.BytesIO(z.read(name)))
                assert im.mode == "RGB" and im.size == (32, 32), (name, im.mode, im.size)
                found.append((int(m.group(1)), int(m.group(2)), im.tobytes()))
    found.sort()
    assert [i for i, _, _ in found] == list(range(len(found))) and found, prefix
    return found


def cifar_record(label_bytes, hwc):
    # Binary version: label byte(s), then the 1024 R, 1024 G and 1024 B values (row-major 32x32).
    planes = bytes(hwc[p * 3 + c] for c in range(3) for p in range(1024))
    return bytes(label_bytes) + planes


def make_cifar(wheel, out):
    c10 = foolbox_samples(wheel, "cifar10")
    recs = [cifar_record([label], hwc) for _, label, hwc in c10]
    d10 = out / "cifar-10-batches-bin"
    d10.mkdir(parents=True, exist_ok=True)
    (d10 / "test_batch.bin").write_bytes(b"".join(recs))
    # The train split reuses the same 20 records, 4 per batch, so that load_cifar10(train) runs.
    per = len(recs) // 5
    for k in range(5):
        (d10 / f"data_batch_{k + 1}.bin").write_bytes(b"".join(recs[k * per:(k + 1) * per]))
    print(f"cifar10: {len(recs)} records, labels {[l for _, l, _ in c10]}, "
          f"image 0 pixel (0,0) = {tuple(c10[0][2][:3])}")

    c100 = foolbox_samples(wheel, "cifar100")
    recs = [cifar_record([FINE_TO_COARSE[fine], fine], hwc) for _, fine, hwc in c100]
    d100 = out / "cifar-100-binary"
    d100.mkdir(parents=True, exist_ok=True)
    (d100 / "test.bin").write_bytes(b"".join(recs))
    (d100 / "train.bin").write_bytes(b"".join(recs))  # same 20 records, so the train path runs
    print(f"cifar100: {len(recs)} records, fine {[f for _, f, _ in c100]}, "
          f"coarse {[FINE_TO_COARSE[f] for _, f, _ in c100]}, "
          f"image 0 pixel (0,0) = {tuple(c100[0][2][:3])}")


# ---------------------------------------------------------------- ImageNet photos (foolbox JPEGs)

def foolbox_imagenet(wheel):
    """{NN: (imagenet_label, PIL RGB image)} of foolbox/data/imagenet_NN_LABEL.jpg."""
    pat = re.compile(r"foolbox/data/imagenet_(\d+)_(\d+)\.jpg$")
    found = {}
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            m = pat.match(name)
            if m:
                im = Image.open(io.BytesIO(z.read(name)))
                im.load()
                assert im.mode == "RGB", (name, im.mode)
                found[int(m.group(1))] = (int(m.group(2)), im)
    assert sorted(found) == list(range(20)), sorted(found)
    return found


def resized(im, w, h):
    return im.resize((w, h), Image.BILINEAR)


def stl10_record(im):
    # STL-10 binary: 3 planes (R, G, B) of 96x96, each plane column-major: byte c*9216 + x*96 + y.
    assert im.mode == "RGB" and im.size == (96, 96)
    px = im.tobytes()
    return bytes(px[(y * 96 + x) * 3 + c] for c in range(3) for x in range(96) for y in range(96))


def make_stl10(photos, out):
    d = out / "stl10_binary"
    d.mkdir(parents=True, exist_ok=True)
    # (photo numbers, STL-10 labels 1..10); labels reach both ends of the range.
    splits = {"train": ([0, 1, 2], [1, 10, 5]), "test": ([3, 4], [3, 10]), "unlabeled": ([5, 6], None)}
    for split, (nums, labels) in splits.items():
        ims = [resized(photos[n][1], 96, 96) for n in nums]
        (d / f"{split}_X.bin").write_bytes(b"".join(stl10_record(im) for im in ims))
        if labels is not None:
            (d / f"{split}_y.bin").write_bytes(bytes(labels))
        for k, im in enumerate(ims):
            # Values the Rust tests check: pixel (row 10, col 70) and (row 95, col 0), RGB.
            print(f"stl10 {split}[{k}] (photo {nums[k]}): label "
                  f"{labels[k] if labels else '-'}, (10,70) = {im.getpixel((70, 10))}, "
                  f"(95,0) = {im.getpixel((0, 95))}")


def save_jpeg(im, path, quality=90):
    im.save(path, "JPEG", quality=quality)


def describe(path):
    im = Image.open(path)
    if im.mode in ("I;16", "I"):
        # PIL's I;16 -> RGB clips to 255; the reader maps 16 bits to 8 as round(v / 257).
        rgb = Image.frombytes("L", im.size, bytes((v + 128) // 257 for v in struct.unpack(f"<{im.width * im.height}H", im.tobytes()))).convert("RGB")
    else:
        rgb = im.convert("RGB")
    print(f"  {path.relative_to(path.parents[2])}: mode {im.mode}, {im.width}x{im.height}, "
          f"RGB (row 5, col 7) = {rgb.getpixel((7, 5))}, "
          f"(last row, last col) = {rgb.getpixel((im.width - 1, im.height - 1))}")


def make_image_folder(photos, out):
    """ROOT/CLASS/file: 3 classes, every decoder path (RGB/grey/CMYK JPEG, RGBA/LA/16-bit/palette PNG)."""
    root = out / "image-folder"
    for c in ("bird", "dog", "jeep"):
        (root / c).mkdir(parents=True, exist_ok=True)
    eagle = resized(photos[17][1], 96, 72)     # ImageNet 22, bald eagle
    goose = resized(photos[15][1], 64, 64)     # 99, goose
    spoonbill = resized(photos[14][1], 80, 96)  # 129, spoonbill
    mastiff = resized(photos[0][1], 72, 96)    # 243, bull mastiff
    dalmatian = resized(photos[16][1], 64, 80)  # 251, dalmatian
    jeep0 = resized(photos[6][1], 128, 96)     # 609, jeep
    jeep1 = resized(photos[7][1], 64, 64)      # 609, jeep
    files = []

    def put(img_path):
        files.append(img_path)

    save_jpeg(eagle, root / "bird" / "eagle.jpg"); put(root / "bird" / "eagle.jpg")
    save_jpeg(goose, root / "bird" / "goose.JPG"); put(root / "bird" / "goose.JPG")
    save_jpeg(spoonbill.convert("L"), root / "bird" / "spoonbill_grey.jpeg")
    put(root / "bird" / "spoonbill_grey.jpeg")
    # RGBA PNG: alpha is a horizontal ramp; decoding drops it (like PIL's convert("RGB")).
    rgba = mastiff.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").rotate(90).resize(mastiff.size))
    rgba.save(root / "dog" / "mastiff_alpha.png"); put(root / "dog" / "mastiff_alpha.png")
    save_jpeg(dalmatian.convert("CMYK"), root / "dog" / "dalmatian_cmyk.jpg")
    put(root / "dog" / "dalmatian_cmyk.jpg")
    # 16-bit greyscale PNG with values L * 257, so that 16 -> 8 bits gives L back exactly.
    grey16 = Image.frombytes("I;16", dalmatian.size,
                             b"".join(struct.pack("<H", v * 257) for v in dalmatian.convert("L").tobytes()))
    grey16.save(root / "dog" / "dalmatian_grey16.png"); put(root / "dog" / "dalmatian_grey16.png")
    la = dalmatian.convert("LA")
    la.save(root / "dog" / "dalmatian_la.png"); put(root / "dog" / "dalmatian_la.png")
    save_jpeg(jeep0, root / "jeep" / "jeep0.jpg"); put(root / "jeep" / "jeep0.jpg")
    jeep1.quantize(64).save(root / "jeep" / "jeep1_palette.png"); put(root / "jeep" / "jeep1_palette.png")
    # Not an image extension: ignored by ImageFolder::open.
    (root / "jeep" / "README.txt").write_text("not an image; ImageFolder skips other extensions\n")
    print("image-folder:")
    for f in sorted(files):
        describe(f)
    # The 16-bit file really is 16-bit.
    assert Image.open(root / "dog" / "dalmatian_grey16.png").mode in ("I;16", "I")
    return {"eagle": eagle, "jeep0": jeep0}


# Tiny ImageNet layout. wnids.txt is deliberately not sorted: the reader must keep the file's order.
TINY_WNIDS = ["n03594945", "n01614925", "n02110341"]  # jeep, bald eagle, dalmatian
TINY_TRAIN = {"n03594945": [6, 7], "n01614925": [17, 15], "n02110341": [16, 0]}
TINY_VAL = [(14, "n01614925"), (6, "n03594945"), (16, "n02110341"), (17, "n01614925")]


def make_tiny_imagenet(photos, out):
    root = out / "tiny-imagenet-200"
    (root / "val" / "images").mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("".join(w + "\n" for w in TINY_WNIDS))
    for wnid, nums in TINY_TRAIN.items():
        d = root / "train" / wnid / "images"
        d.mkdir(parents=True, exist_ok=True)
        boxes = []
        for k, n in enumerate(nums):
            name = f"{wnid}_{k}.JPEG"
            save_jpeg(resized(photos[n][1], 64, 64), d / name)
            boxes.append(f"{name}\t0\t0\t63\t63\n")
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(boxes))
    ann = []
    for k, (n, wnid) in enumerate(TINY_VAL):
        name = f"val_{k}.JPEG"
        save_jpeg(resized(photos[n][1], 64, 64), root / "val" / "images" / name)
        ann.append(f"{name}\t{wnid}\t0\t0\t63\t63\n")
    (root / "val" / "val_annotations.txt").write_text("".join(ann))
    print("tiny-imagenet-200:")
    for f in sorted((root / "train").glob("*/images/*.JPEG")) + sorted((root / "val" / "images").glob("*.JPEG")):
        describe(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fashion-mnist-dir", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    ap.add_argument("--foolbox-wheel", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    check_fine_to_coarse()
    make_fashion_mnist(args.fashion_mnist_dir, args.out / "fashion-mnist")
    make_cifar(args.foolbox_wheel, args.out)
    photos = foolbox_imagenet(args.foolbox_wheel)
    make_stl10(photos, args.out)
    make_image_folder(photos, args.out)
    make_tiny_imagenet(photos, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
