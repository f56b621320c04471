"""Loads an `unmix export` file into torchvision's ResNet-18 (strict) and compares its outputs with
the ones unmix computed on the same input. Used by tests/export.rs; exits non-zero on mismatch."""
import sys

import numpy as np
import torch
import torchvision
from safetensors.torch import load_file

weights, x_path, head_path, backbone_path, in_ch = sys.argv[1:6]
torch.set_num_threads(1)
m = torchvision.models.resnet18()
# The CIFAR stem: 3x3 stride-1 first convolution, no max-pool.
m.conv1 = torch.nn.Conv2d(int(in_ch), 64, 3, 1, 1, bias=False)
m.maxpool = torch.nn.Identity()
sd = load_file(weights)
m.fc = torch.nn.Linear(512, sd["fc.weight"].shape[0])
m.load_state_dict(sd, strict=True)
m.eval()
x = torch.from_numpy(np.load(x_path))
with torch.no_grad():
    head = m(x).numpy()
    m.fc = torch.nn.Identity()
    backbone = m(x).numpy()
dh = np.abs(head - np.load(head_path)).max()
db = np.abs(backbone - np.load(backbone_path)).max()
print(f"max |diff| head {dh:.3g} backbone {db:.3g}")
sys.exit(0 if dh < 1e-4 and db < 1e-4 else 1)
