"""PyTorch counterpart of `unmix bench`: the fmnist protocol (shared spec: MoCo v1-style,
asymmetric, over Un-Mix, on Fashion-MNIST) written the way the authors' CIFAR code is structured:
PIL + torchvision transforms + DataLoader workers, a split-BN ResNet-18 with the CIFAR stem, a
momentum key encoder with a queue and single-process batch shuffling, Un-Mix on the query view
with the reversed batch, SGD with a per-epoch cosine.

    .venv/bin/python bench/fmnist_pytorch.py loop --steps 60 --data /usr/share/datasets/fashion-mnist
    .venv/bin/python bench/fmnist_pytorch.py step --model fmnist --batch 256 --precision bf16
    .venv/bin/python bench/fmnist_pytorch.py step --model cifar-resnet18 --batch 128
    .venv/bin/python bench/fmnist_pytorch.py knn --data /usr/share/datasets/fashion-mnist

Each prints one JSON line with images/second and peak RSS (this process plus its workers).
"""
import argparse
import gzip
import json
import math
import os
import resource
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fmnist(root, train):
    stem = "train" if train else "t10k"
    find = lambda kind: next(os.path.join(root, f) for f in os.listdir(root) if f.startswith(f"{stem}-{kind}"))
    return read_idx(find("images")), read_idx(find("labels"))


class Pairs(Dataset):
    """Two augmented views of each image (the query and key views)."""

    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i], mode="L")
        return self.transform(img), self.transform(img), int(self.labels[i])


class Plain(Dataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels
        self.t = transforms.Compose([transforms.ToTensor(), transforms.Normalize([MEAN], [STD])])

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.t(Image.fromarray(self.images[i], mode="L")), int(self.labels[i])


class SplitBN(nn.BatchNorm2d):
    """Batch norm over `groups` interleaved sub-batches in training (one-GPU stand-in for
    per-device statistics); running statistics are the mean over the groups."""

    def __init__(self, channels, groups):
        super().__init__(channels)
        self.groups = groups

    def forward(self, x):
        if not self.training or self.groups == 1:
            return super().forward(x)
        n, c, h, w = x.shape
        g = self.groups
        rm, rv = self.running_mean.repeat(g), self.running_var.repeat(g)
        y = F.batch_norm(x.view(-1, c * g, h, w), rm, rv, self.weight.repeat(g), self.bias.repeat(g),
                         True, self.momentum, self.eps).view(n, c, h, w)
        self.running_mean.copy_(rm.view(g, c).mean(0))
        self.running_var.copy_(rv.view(g, c).mean(0))
        return y


class Block(nn.Module):
    def __init__(self, cin, cout, stride, groups):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = SplitBN(cout, groups)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = SplitBN(cout, groups)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), SplitBN(cout, groups))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class Encoder(nn.Module):
    """ResNet-18 layout (BasicBlock, [2, 2, 2, 2]), CIFAR stem, then Linear(width, dim)."""

    def __init__(self, cin, widths, groups, dim=128):
        super().__init__()
        layers = [nn.Conv2d(cin, widths[0], 3, 1, 1, bias=False), SplitBN(widths[0], groups), nn.ReLU(inplace=True)]
        c = widths[0]
        for i, w in enumerate(widths):
            for j in range(2):
                layers.append(Block(c, w, 2 if (i > 0 and j == 0) else 1, groups))
                c = w
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(c, dim)

    def forward(self, x):
        return self.fc(self.net(x))


class MoCoUnMix(nn.Module):
    def __init__(self, cin, widths, groups, dim=128, K=4096, m=0.99, T=0.1, prob=0.5, alpha=1.0):
        super().__init__()
        self.K, self.m, self.T, self.prob, self.alpha = K, m, T, prob, alpha
        self.mix = True  # False: plain MoCo (no mixtures)
        self.q = Encoder(cin, widths, groups, dim)
        self.k = Encoder(cin, widths, groups, dim)
        for pq, pk in zip(self.q.parameters(), self.k.parameters()):
            pk.data.copy_(pq.data)
            pk.requires_grad = False
        self.register_buffer("queue", F.normalize(torch.randn(dim, K), dim=0))
        self.register_buffer("ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def momentum_update(self):
        for pq, pk in zip(self.q.parameters(), self.k.parameters()):
            pk.data.mul_(self.m).add_(pq.data, alpha=1 - self.m)

    @torch.no_grad()
    def enqueue(self, k):
        p = int(self.ptr)
        self.queue[:, p:p + k.shape[0]] = k.t()
        self.ptr[0] = (p + k.shape[0]) % self.K

    def logits(self, q, k):
        pos = (q * k).sum(1, keepdim=True)
        neg = q @ self.queue.clone().detach()
        return torch.cat([pos, neg], 1) / self.T

    def forward(self, x1, x2):
        n = x1.shape[0]
        # Un-Mix: r, then lam ~ Beta, the reversed batch as partner; mixup or CutMix.
        r = np.random.rand()
        lam = np.random.beta(self.alpha, self.alpha)
        rev = torch.flip(x1, (0,))
        if r < self.prob:
            mixed = lam * x1 + (1 - lam) * rev
        else:
            h, w = x1.shape[2], x1.shape[3]
            cut = math.sqrt(1 - lam)
            ch, cw = int(h * cut), int(w * cut)
            cy, cx = np.random.randint(h), np.random.randint(w)
            t, b = np.clip(cy - ch // 2, 0, h), np.clip(cy + ch // 2, 0, h)
            l, rr = np.clip(cx - cw // 2, 0, w), np.clip(cx + cw // 2, 0, w)
            mixed = x1.clone()
            mixed[:, :, t:b, l:rr] = rev[:, :, t:b, l:rr]
            lam = 1 - (b - t) * (rr - l) / (h * w)
        q = F.normalize(self.q(x1), dim=1)
        qm = F.normalize(self.q(mixed), dim=1) if self.mix else None
        with torch.no_grad():
            self.momentum_update()
            perm = torch.randperm(n, device=x2.device)
            k = F.normalize(self.k(x2[perm]), dim=1)[torch.argsort(perm)]
        target = torch.zeros(n, dtype=torch.long, device=x2.device)
        loss = F.cross_entropy(self.logits(q.float(), k.float()), target)
        if not self.mix:
            self.enqueue(k.float())
            return loss
        loss = loss + lam * F.cross_entropy(self.logits(qm.float(), k.float()), target) \
            + (1 - lam) * F.cross_entropy(self.logits(torch.flip(qm, (0,)).float(), k.float()), target)
        self.enqueue(k.float())
        return loss


def peak_rss_gib():
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + kids) / 2 ** 20


def build(model, unmix=True):
    """The protocol's network; `unmix=False` (`--no-unmix`, every subcommand) is plain MoCo."""
    if model == "cifar-resnet18":
        net, shape = MoCoUnMix(3, [64, 128, 256, 512], 8), (3, 32, 32)
    else:
        net, shape = MoCoUnMix(1, [16, 32, 64, 128], 8), (1, 28, 28)
    if not unmix:
        net.prob, net.mix = 0.0, False
    return net, shape


def step_bench(a):
    torch.manual_seed(0)
    np.random.seed(0)
    dev = torch.device(a.device)
    model, shape = build(a.model, a.unmix)
    model = model.to(dev)
    opt = torch.optim.SGD(model.q.parameters(), lr=0.03, momentum=0.9, weight_decay=5e-4)
    x1, x2 = torch.randn(a.batch, *shape, device=dev), torch.randn(a.batch, *shape, device=dev)
    forward = torch.compile(model) if a.compile else model
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    t0 = None
    for i in range(a.warmup + a.steps):
        if i == a.warmup:
            sync()
            t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            loss = forward(x1, x2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    loss = loss.item()
    sync()
    secs = time.perf_counter() - t0
    return {"images_per_second": a.steps * a.batch / secs, "seconds": secs, "loss": loss, "device": a.device,
            "compiled": a.compile, "unmix": a.unmix}


def pair_loader(a):
    """The protocol's two views of every training image, batches of 256, the last partial one dropped."""
    images, labels = fmnist(a.data, True)
    aug = transforms.Compose([
        transforms.RandomResizedCrop(28, scale=(0.2, 1.0)),
        transforms.RandomHorizontalFlip(),
        transforms.RandomApply([transforms.ColorJitter(0.4, 0.4)], p=0.8),
        transforms.ToTensor(),
        transforms.Normalize([MEAN], [STD]),
    ])
    return DataLoader(Pairs(images, labels, aug), batch_size=256, shuffle=True, num_workers=a.workers,
                      drop_last=True)


def loop_bench(a):
    torch.manual_seed(0)
    np.random.seed(0)
    loader = pair_loader(a)
    model, _ = build("fmnist", a.unmix)
    opt = torch.optim.SGD(model.q.parameters(), lr=0.03, momentum=0.9, weight_decay=5e-4)
    model.train()
    t0, seen = time.perf_counter(), 0
    for i, (x1, x2, _) in enumerate(loader):
        if i == a.steps:
            break
        loss = model(x1, x2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += x1.shape[0]
    secs = time.perf_counter() - t0
    return {"images_per_second": seen / secs, "seconds": secs, "steps": a.steps, "loss": loss.item(), "unmix": a.unmix}


@torch.no_grad()
def knn_top1(enc, a):
    """Weighted kNN (cosine, k 200, t 0.1) of the authors' monitor: bank = the unaugmented train split."""
    tr, trl = fmnist(a.data, True)
    te, tel = fmnist(a.data, False)

    def feats(x, y):
        out = []
        for xb, _ in DataLoader(Plain(x, y), batch_size=1000, num_workers=a.workers):
            out.append(F.normalize(enc(xb), dim=1))
        return torch.cat(out)

    bank, test = feats(tr, trl), feats(te, tel)
    bank_labels, test_labels = torch.as_tensor(trl.astype(np.int64)), torch.as_tensor(tel.astype(np.int64))
    correct = 0
    for s in range(0, len(test), 1000):
        sim = test[s:s + 1000] @ bank.t()
        w, idx = sim.topk(200, dim=1)
        votes = torch.zeros(w.shape[0], 10).scatter_add_(1, bank_labels[idx], (w / 0.1).exp())
        correct += (votes.argmax(1) == test_labels[s:s + 1000]).sum().item()
    return 100.0 * correct / len(te), len(tr) + len(te)


def knn_bench(a):
    torch.manual_seed(0)
    model, _ = build("fmnist")
    t0 = time.perf_counter()
    top1, n = knn_top1(model.q.eval(), a)
    secs = time.perf_counter() - t0
    return {"images_per_second": n / secs, "seconds": secs, "top1": top1}


def train_run(a):
    """The whole fmnist protocol: E epochs, per-epoch cosine, then kNN top-1. `--cos-from 1` numbers
    the epochs 1..E as the authors' CIFAR loop does (the last epoch at lr 0); the protocol is 0."""
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    loader = pair_loader(a)
    model, _ = build("fmnist", a.unmix)
    opt = torch.optim.SGD(model.q.parameters(), lr=0.03, momentum=0.9, weight_decay=5e-4)
    t0, seen = time.perf_counter(), 0
    for e in range(a.epochs):
        lr = 0.03 * 0.5 * (1.0 + math.cos(math.pi * (e + a.cos_from) / a.epochs))
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        total = 0.0
        for x1, x2, _ in loader:
            loss = model(x1, x2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += x1.shape[0]
            total += loss.item()
        print(json.dumps({"epoch": e + 1, "lr": lr, "loss": total / len(loader)}), flush=True)
    secs = time.perf_counter() - t0
    top1, _ = knn_top1(model.q.eval(), a)
    return {"images_per_second": seen / secs, "seconds": secs, "top1": top1, "epochs": a.epochs,
            "unmix": a.unmix, "seed": a.seed, "cos_from": a.cos_from}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["loop", "step", "knn", "train"])
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--model", default="fmnist", choices=["fmnist", "cifar-resnet18"])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cos-from", type=int, default=0, choices=[0, 1])
    ap.add_argument("--no-unmix", dest="unmix", action="store_false")
    ap.add_argument("--device", default="cpu", help="step: cpu or cuda")
    ap.add_argument("--compile", action="store_true", help="step: torch.compile the model")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    r = {"loop": loop_bench, "step": step_bench, "knn": knn_bench, "train": train_run}[a.what](a)
    r.update({"tool": "pytorch", "what": a.what, "peak_rss_gib": peak_rss_gib(), "threads": a.threads})
    if a.what == "step":
        r.update({"model": a.model, "batch": a.batch, "precision": a.precision})
    print(json.dumps(r))


if __name__ == "__main__":
    main()
