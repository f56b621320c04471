"""An ImageNet-sized ImageFolder tree of small real JPEGs, for scripts/bench-scale.sh.

The photos under data/photos (setup.sh fetches them: foolbox's ImageNet samples and
scikit-image's photos) are cut into a pool of distinct random crops (area 10-100 %, aspect
3/4-4/3), resized to a side of 80-128 px and re-encoded as JPEG (quality 90). The pool's files are
written round-robin into ROOT/full/CLASS/CLASS_I.JPEG: 1000 classes named like ImageNet's
synsets, 1,281,167 files in all (ImageNet-1k train's count). Smaller trees of the same classes
(ROOT/<n>/, e.g. 10 and 100 files per class) are hard links to the first files of each class.

    .venv/bin/python bench/make_imagenet_tree.py ROOT [--files 1281167] [--subsets 10000,100000]
"""

import argparse
import io
import os
import random
import sys

from PIL import Image


def pool_of_crops(photos, count, seed):
    rng = random.Random(seed)
    sources = []
    for p in photos:
        im = Image.open(p)
        if min(im.size) >= 256:
            sources.append(im.convert("RGB"))
    if not sources:
        sys.exit(f"no photo of at least 256 px under the given folder ({len(photos)} files); run scripts/setup.sh")
    pool = []
    for i in range(count):
        im = sources[i % len(sources)]
        w, h = im.size
        area = w * h * rng.uniform(0.1, 1.0)
        aspect = rng.uniform(3 / 4, 4 / 3)
        cw = min(w, int(round((area * aspect) ** 0.5)))
        ch = min(h, int(round((area / aspect) ** 0.5)))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        side = rng.randint(80, 128)
        scale = side / max(cw, ch)
        crop = im.crop((x, y, x + cw, y + ch)).resize((max(1, round(cw * scale)), max(1, round(ch * scale))), Image.BILINEAR)
        buf = io.BytesIO()
        crop.save(buf, "JPEG", quality=90)
        pool.append(buf.getvalue())
    return pool


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root")
    ap.add_argument("--photos", default="data/photos")
    ap.add_argument("--files", type=int, default=1281167)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--pool", type=int, default=8192)
    ap.add_argument("--subsets", default="10000,100000")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    photos = sorted(os.path.join(d, f) for d, _, fs in os.walk(a.photos) for f in fs if f.lower().endswith((".jpg", ".jpeg", ".png")))
    pool = pool_of_crops(photos, a.pool, a.seed)
    names = [f"n{1440764 + 7919 * c:08d}" for c in range(a.classes)]
    per, extra = divmod(a.files, a.classes)
    full = os.path.join(a.root, "full")
    k = 0
    written = 0
    for c, name in enumerate(names):
        d = os.path.join(full, name)
        os.makedirs(d, exist_ok=True)
        for i in range(per + (1 if c < extra else 0)):
            with open(os.path.join(d, f"{name}_{i}.JPEG"), "wb") as f:
                f.write(pool[k % len(pool)])
                written += len(pool[k % len(pool)])
            k += 1
    for n in (int(s) for s in a.subsets.split(",") if s):
        each = n // a.classes
        for name in names:
            d = os.path.join(a.root, str(n), name)
            os.makedirs(d, exist_ok=True)
            for i in range(each):
                os.link(os.path.join(full, name, f"{name}_{i}.JPEG"), os.path.join(d, f"{name}_{i}.JPEG"))
    print(f"{k} files in {a.classes} classes under {full} ({written / 2**30:.2f} GiB, {len(pool)} distinct crops of {len(photos)} photos); subsets {a.subsets}")


if __name__ == "__main__":
    main()
