"""Loads an `unmix export` into PyTorch and compares its outputs with the ones unmix computed on the
same input (an .npz with x, head, backbone). Used by tests/export.rs; exits non-zero on mismatch.

    torchvision_check.py WEIGHTS REFERENCE.npz torchvision IN_CHANNELS   # torchvision's resnet18
    torchvision_check.py WEIGHTS REFERENCE.npz module                   # the module file export wrote
"""
import importlib.util
import os
import sys

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

weights, ref_path, how = sys.argv[1:4]
torch.set_num_threads(1)
ref = np.load(ref_path)
sd = load_file(weights)
with safe_open(weights, "pt") as f:
    meta = f.metadata()
assert meta and meta["arch"] and meta["widths"] and "config" in meta, meta
if how == "torchvision":
    import torchvision
    m = torchvision.models.resnet18()
    # The CIFAR stem: 3x3 stride-1 first convolution, no max-pool.
    m.conv1 = torch.nn.Conv2d(int(sys.argv[4]), 64, 3, 1, 1, bias=False)
    m.maxpool = torch.nn.Identity()
    m.fc = torch.nn.Linear(512, sd["fc.weight"].shape[0])
    m.load_state_dict(sd, strict=True)
    m.eval()
else:
    path = os.path.splitext(weights)[0] + ".py"
    spec = importlib.util.spec_from_file_location("exported", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    m = module.load(weights)
x = torch.from_numpy(ref["x"])
with torch.no_grad():
    head = m(x).numpy() if "fc.weight" in sd else None
    m.fc = torch.nn.Identity()
    backbone = m(x).numpy()
# Relative to the outputs' scale: fp32 kernels of two libraries sum in other orders.
db = np.abs(backbone - ref["backbone"]).max() / max(np.abs(ref["backbone"]).max(), 1e-6)
dh = np.abs(head - ref["head"]).max() / max(np.abs(ref["head"]).max(), 1e-6) if head is not None else 0.0
print(f"{how} ({meta['arch']}, widths {meta['widths']}): max |diff| / max |output|: head {dh:.3g} backbone {db:.3g}")
sys.exit(0 if dh < 1e-4 and db < 1e-4 else 1)
