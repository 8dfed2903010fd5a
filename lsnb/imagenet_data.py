"""ImageNet validation images from a local folder, preprocessed for a pretrained network (Section 4).

The paper lesions its ImageNet networks on 8 validation images per class and
builds their activation graphs from a few more; :func:`load_imagenet` reads
them from one folder per WordNet id (what :func:`lsnb.data.check_available`
checks for).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import Dataset, _say

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def load_imagenet(folder: str | Path, model_name: str, n_per_class: int = 8,
                  n_graph_per_class: int = 2, seed: int = 0, verbose: bool = True) -> Dataset:
    """A validation subset of ImageNet from a local folder, preprocessed for a network.

    Parameters
    ----------
    folder : path
        One sub-folder per class named by its WordNet id (``n01440764`` ...);
        the sorted folder names give the class indices 0..999, the Keras
        convention.
    model_name : {"resnet18", "vgg16", "vgg19"}
        Selects image-classifiers' preprocessing.
    n_per_class : int
        Test images per class (the paper lesions on 8 per class).
    n_graph_per_class : int
        Further images per class returned as ``x_train``, for activation graphs
        (the paper uses 2 per class).

    Raises
    ------
    FileNotFoundError
        When the folder does not exist or holds no class folders.
    ValueError
        When a class folder holds fewer than ``n_per_class +
        n_graph_per_class`` images.
    """
    from PIL import Image

    from .models import imagenet_preprocess

    root = Path(folder)
    classes = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not classes:
        raise FileNotFoundError(
            f"no ImageNet folder at {root}: expected one sub-folder of images per class "
            "(the ILSVRC-2012 validation set sorted into WordNet-id folders)"
        )
    rng = np.random.default_rng(seed)
    preprocess = imagenet_preprocess(model_name)
    x_tr, y_tr, x_te, y_te = [], [], [], []
    for label, cls in enumerate(classes):
        files = sorted(p for p in cls.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) < n_per_class + n_graph_per_class:
            raise ValueError(f"ImageNet class folder {cls} holds {len(files)} images; {n_per_class} test "
                             f"and {n_graph_per_class} activation-graph images per class are needed")
        files = [files[i] for i in rng.permutation(len(files))[: n_per_class + n_graph_per_class]]
        images = [_center_crop(Image.open(f).convert("RGB")) for f in files]
        x_te += images[:n_per_class]
        y_te += [label] * len(images[:n_per_class])
        x_tr += images[n_per_class:]
        y_tr += [label] * len(images[n_per_class:])

    def prep(images: list) -> np.ndarray:
        return np.asarray(preprocess(np.stack(images).astype(np.float32)), dtype=np.float32)

    data = Dataset(prep(x_tr), np.array(y_tr, np.int64), prep(x_te), np.array(y_te, np.int64),
                   "imagenet", f"folder:{root}", n_classes=len(classes),
                   meta={"preprocess": model_name})
    _say(data.describe(), verbose)
    return data


def _center_crop(image, size: int = 224, short_side: int = 256) -> np.ndarray:
    """Resize the short side to ``short_side`` and crop the central ``size`` square."""
    w, h = image.size
    scale = short_side / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))))
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float32)
