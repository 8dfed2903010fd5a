"""The book's computations as jobs of :mod:`lsnb.jobs` (issue 14).

:func:`jobs_for` covers training every replicate of the nets the chosen
notebooks use, partitioning each one in the four ways of the paper (Sec. 2),
and the lesion (Sec. 4.1) and feature-visualization (Sec. 4.2) tests of each
partition that the notebooks run with their default settings (Tables 1, 2,
5, 6, 7, 8 and the regularization table), through the same cached calls the
notebooks make (:func:`lsnb.experiments.get_partition`,
:func:`~lsnb.experiments.lesion_one`, :func:`~lsnb.experiments.featvis_one`),
so the book then reads them from the cache.  The departures chapter's
variants (06) and the grouping chapter's other groupings (07) are computed
when those notebooks run.  Job keys name the job (``model/vgg/quick/r0``),
not a cache entry, so they are never skipped up front; a rerun is a sequence
of cache hits.  Costs are rough FLOP models: training ``3 x forward FLOPs x
examples x epochs``; a partition ``20 N^2`` for the graph's spectrum plus,
for activation graphs, ``samples x (forward FLOPs + N^2)`` for the
correlations (``N`` the units of the net); a lesion test ``lesions x test
images x forward / 2`` and a visualization test ``groups x steps x 3 x
forward``, with ``k x (n_random + 1)`` lesions or groups per partition.
"""
from __future__ import annotations

from functools import partial
from typing import Iterable

from . import experiments, lesion, models, neurons, train
from .jobs import Job
from .profiles import Profile, get_profile
from .report import PARTITIONINGS


#: Trained networks each notebook uses (ImageNet nets come pretrained and are not jobs).
NOTEBOOK_NETS = {
    "01_halves_mnist": ("mlp_halves",),
    "02_lesions": ("mlp_mnist", "cnn_mnist", "vgg"),
    "03_feature_visualization": ("mlp_mnist", "cnn_mnist", "vgg"),
    "04_k_robustness": ("vgg",),
    "05_regularization": ("vgg", "vgg_unreg"),
    "06_original_code": ("mlp_mnist", "cnn_mnist", "vgg"),
}
#: Notebooks whose networks are partitioned by :func:`lsnb.experiments.get_partition`.
_PARTITIONED = ("02_lesions", "03_feature_visualization", "04_k_robustness", "05_regularization",
                "06_original_code")
#: The tests each notebook runs on every partition of its networks with default settings.
NOTEBOOK_TESTS = {
    "02_lesions": ("lesion",),
    "03_feature_visualization": ("featvis",),
    "04_k_robustness": ("lesion", "featvis"),
    "05_regularization": ("lesion", "featvis"),
    "06_original_code": ("lesion",),
}
#: Notebooks that sweep the profile's ``k_values`` (the others use the profile's k).
_K_SWEEP = ("04_k_robustness",)


def notebook_names(notebooks: Iterable[str]) -> list[str]:
    """Full notebook names from names, their numbers (``"02"``) or parts (``"lesions"``)."""
    names = []
    for given in notebooks:
        match = [name for name in NOTEBOOK_NETS if name == given or name.split("_", 1)[0] == given
                 or given in name]
        if len(match) != 1:
            raise ValueError(f"notebook {given!r} matches {match or 'none'} of {sorted(NOTEBOOK_NETS)}")
        names.append(match[0])
    return names


def _untrained(net: str, prof: Profile):
    spec = dict(train.NETS[net])
    arch = spec.pop("arch")
    spec.pop("dataset")
    if arch == "vgg_cifar":
        spec.update(width=prof.vgg_width, bn_momentum=prof.vgg_bn_momentum)
    return models.build(arch, **spec)


def _units(model) -> int:
    return sum(int(layer.output.shape[-1]) for layer in model.layers if neurons.layer_flops(layer) > 0)


def _train_job(net: str, profile: str, replicate: int, seed: int) -> dict:
    tnet = experiments.network(net, profile, replicate=replicate, seed=seed)
    return {"net": net, "replicate": replicate, "accuracy": float(tnet.test_accuracy)}


def _partition_job(net: str, profile: str, replicate: int, partitioning: str, seed: int,
                   k: int | None = None) -> dict:
    tnet = experiments.network(net, profile, replicate=replicate, seed=seed)
    part = experiments.get_partition(tnet, net, profile, replicate, partitioning, k, seed=seed)
    return {"net": net, "replicate": replicate, "partitioning": partitioning, "k": int(part.k)}


def _test_job(test: str, net: str, profile: str, replicate: int, partitioning: str, seed: int,
              k: int | None) -> dict:
    prof = get_profile(profile)
    tnet = experiments.network(net, prof, replicate=replicate, seed=seed)
    part = experiments.get_partition(tnet, net, prof, replicate, partitioning, k, seed)
    if test == "lesion":
        table = experiments.lesion_one(tnet, part, net, replicate, prof, seed, {})
    else:
        table, _ = experiments.featvis_one(tnet, part, net, replicate, prof, seed, {})
    return {"net": net, "replicate": replicate, "partitioning": partitioning, "k": int(part.k),
            "test": test, "rows": int(len(table))}


def jobs_for(notebooks: Iterable[str], profile: str | Profile = "quick", seed: int = 0,
             exclude: Iterable[str] = ()) -> list[Job]:
    """The training, partitioning and test jobs of ``notebooks`` under ``profile``.

    Parameters
    ----------
    notebooks : iterable of str
        Names, numbers or name parts of the notebooks (see :data:`NOTEBOOK_NETS`).
    profile : str or Profile
        A named profile (jobs are sent to workers by name).
    seed : int
    exclude : iterable of str
        Networks left out (for example those whose data is missing).
    """
    prof = get_profile(profile)
    names = notebook_names(notebooks)
    nets = sorted({net for name in names for net in NOTEBOOK_NETS[name]} - set(exclude))
    partitioned = {net for name in names if name in _PARTITIONED for net in NOTEBOOK_NETS[name]}
    tests: dict = {}                                   # net -> {(test, k)}; k None: the profile's
    for name in names:
        for net in NOTEBOOK_NETS[name]:
            for k in (prof.k_values if name in _K_SWEEP else (None,)):
                tests.setdefault(net, set()).update((test, experiments.k_for(net, prof, k))
                                                    for test in NOTEBOOK_TESTS.get(name, ()))
    n_train = prof.n_train or (4000 if prof.data_source == "embedded" else 50000)
    n_test_all = 1000 if prof.data_source == "embedded" else 10000
    jobs = []
    for net in nets:
        model = _untrained(net, prof)
        forward, units = float(lesion.forward_flops(model)), _units(model)
        arch = train.NETS[net]["arch"]
        epochs = prof.epochs[arch]
        n_test = prof.n_test_for(arch) or n_test_all
        default_k = experiments.k_for(net, prof)
        ks = sorted({default_k} | {k for _, k in tests.get(net, ())})
        for replicate in experiments.replicates(net, prof):
            trained_key = f"model/{net}/{prof.name}/r{replicate}"
            jobs.append(Job(trained_key, "model", partial(_train_job, net, prof.name, replicate, seed),
                            cost_flops=3 * forward * n_train * epochs))
            for partitioning in PARTITIONINGS if net in partitioned else ():
                samples = prof.n_activation_samples if partitioning.startswith("activations") else 0
                for k in ks:
                    part_key = f"partition/{net}/{prof.name}/r{replicate}/{partitioning}" + \
                        ("" if k == default_k else f"/k{k}")
                    jobs.append(Job(part_key, "partition",
                                    partial(_partition_job, net, prof.name, replicate, partitioning, seed, k),
                                    deps=(trained_key,),
                                    cost_flops=20.0 * units**2 + samples * (forward + units**2)))
                    groups = k * (prof.n_random + 1)
                    for test in sorted(t for t, tk in tests.get(net, ()) if tk == k):
                        cost = groups * n_test * forward / 2 if test == "lesion" else \
                            groups * prof.featvis_steps_for(arch) * 3 * forward
                        jobs.append(Job(f"{test}/{part_key.split('/', 1)[1]}", test,
                                        partial(_test_job, test, net, prof.name, replicate, partitioning, seed, k),
                                        deps=(part_key,), cost_flops=cost))
    return jobs
