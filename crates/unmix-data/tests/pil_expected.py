"""Regenerates tests/pil_expected.txt: torchvision 0.28 functional ops on PIL images.

    pip install --no-deps --target /tmp/pilref pillow torchvision==0.28.0
    PYTHONPATH=/tmp/pilref python tests/pil_expected.py > tests/pil_expected.txt

Each line: `<mode> <op> <arg>... | <h> <w> <c> | <values>` where the input is `test_image(mode)`.
"""
import numpy as np
import PIL
import torchvision
import torchvision.transforms.functional as F
from PIL import Image

H, W = 9, 11


def test_image(mode):
    c = 3 if mode == "RGB" else 1
    a = np.zeros((H, W, c), dtype=np.uint8)
    for y in range(H):
        for x in range(W):
            for ch in range(c):
                a[y, x, ch] = (y * 37 + x * 59 + ch * 83 + ((x * y) % 17) * 11) % 256
    return Image.fromarray(a[:, :, 0] if c == 1 else a, mode)


def emit(mode, op, args, img):
    a = np.asarray(img)
    if a.ndim == 2:
        a = a[:, :, None]
    h, w, c = a.shape
    vals = " ".join(str(int(v)) for v in a.reshape(-1))
    print(f"{mode} {op} {' '.join(str(x) for x in args)} | {h} {w} {c} | {vals}")


print(f"# pillow {PIL.__version__} torchvision {torchvision.__version__}")
for mode in ["RGB", "L"]:
    img = test_image(mode)
    emit(mode, "identity", [], img)
    for f in [0.0, 0.6, 1.37, 2.5]:
        emit(mode, "brightness", [f], F.adjust_brightness(img, f))
    for f in [0.0, 0.55, 1.4]:
        emit(mode, "contrast", [f], F.adjust_contrast(img, f))
    for f in [0.0, 0.6, 1.3]:
        emit(mode, "saturation", [f], F.adjust_saturation(img, f))
    for f in [0.1, -0.07, 0.5, -0.5, 0.003]:
        emit(mode, "hue", [f], F.adjust_hue(img, f))
    emit(mode, "grayscale", [3 if mode == "RGB" else 1],
         F.rgb_to_grayscale(img, num_output_channels=3 if mode == "RGB" else 1))
    for (h, w) in [(7, 5), (25, 31), (9, 20), (4, 11), (3, 2)]:
        emit(mode, "resize", [h, w], F.resize(img, [h, w], interpolation=F.InterpolationMode.BILINEAR))
    for (t, l, h, w, oh, ow) in [(2, 1, 7, 8, 16, 16), (0, 3, 5, 6, 5, 3), (1, 1, 8, 10, 32, 32), (4, 7, 3, 2, 28, 28)]:
        emit(mode, "resized_crop", [t, l, h, w, oh, ow],
             F.resized_crop(img, t, l, h, w, [oh, ow], interpolation=F.InterpolationMode.BILINEAR))
