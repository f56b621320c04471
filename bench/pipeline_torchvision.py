"""The torchvision side of `unmix bench pipeline`: the same two-view MoCo v2 pipeline with PIL,
torchvision transforms and PyTorch's DataLoader, on the same source and cores.

    .venv/bin/python bench/pipeline_torchvision.py --source DIR --size 32 --images 10240 --workers 1

Recipe (MoCo v2's TwoCropsTransform): RandomResizedCrop(size, scale 0.2-1), RandomApply(ColorJitter
(0.4, 0.4, 0.4, 0.1), p 0.8), RandomGrayscale(0.2), RandomApply(PIL GaussianBlur(sigma in
[0.1, 2]), p 0.5), RandomHorizontalFlip, ToTensor, Normalize. A CIFAR-10 binary folder is held
decoded in memory (as torchvision's CIFAR10); a photo folder is decoded at every access (as
ImageFolder). Prints one JSON line; timed from the first batch to the last, like the Rust side.
"""
import argparse
import json
import os
import random
import time

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms


class GaussianBlur:
    """MoCo v2's blur: PIL's GaussianBlur with a radius drawn uniformly in [0.1, 2]."""

    def __init__(self, sigma=(0.1, 2.0)):
        self.sigma = sigma

    def __call__(self, x):
        return x.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))


class TwoCrops:
    def __init__(self, t):
        self.t = t

    def __call__(self, x):
        return [self.t(x), self.t(x)]


class Repeat(Dataset):
    def __init__(self, source, n, transform):
        self.source, self.n, self.transform = source, n, transform

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        item = self.source[i % len(self.source)]
        img = item if isinstance(item, Image.Image) else Image.open(item).convert("RGB")
        return self.transform(img), 0


def cifar_images(folder):
    raw = np.fromfile(os.path.join(folder, "test_batch.bin"), dtype=np.uint8).reshape(-1, 3073)
    return [Image.fromarray(r[1:].reshape(3, 32, 32).transpose(1, 2, 0)) for r in raw]


def photo_files(folder):
    out = []
    for d, _, files in os.walk(folder):
        out += [os.path.join(d, f) for f in files if f.lower().endswith((".jpg", ".jpeg", ".png"))]
    return sorted(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--images", type=int, default=10240)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--in-memory", action="store_true", help="decode the photos once (augmentations alone)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    is_cifar = os.path.exists(os.path.join(a.source, "test_batch.bin"))
    source = cifar_images(a.source) if is_cifar else photo_files(a.source)
    if a.in_memory and not is_cifar:
        source = [Image.open(p).convert("RGB") for p in source]
    t = transforms.Compose([
        transforms.RandomResizedCrop(a.size, scale=(0.2, 1.0)),
        transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        transforms.RandomGrayscale(p=0.2),
        transforms.RandomApply([GaussianBlur()], p=0.5),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    data = Repeat(source, a.images, TwoCrops(t))
    loader = DataLoader(data, batch_size=a.batch, shuffle=True, num_workers=a.workers, drop_last=True)
    t0, timed, checksum = None, 0, 0.0
    for i, (views, _) in enumerate(loader):
        checksum += float(views[0][0, 0, 0, 0])
        if i == 0:
            t0 = time.perf_counter()
        else:
            timed += views[0].shape[0]
    secs = time.perf_counter() - t0
    ips = timed / secs
    print(json.dumps({
        "tool": "torchvision", "size": a.size, "workers": a.workers, "batch": a.batch, "images": timed,
        "seconds": secs, "images_per_second": ips, "images_per_second_per_worker": ips / max(a.workers, 1),
        "source_images": len(source), "source": a.source, "checksum": checksum, "in_memory": a.in_memory or is_cifar,
    }))


if __name__ == "__main__":
    main()
