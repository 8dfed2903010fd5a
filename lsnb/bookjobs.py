"""The book's computations as jobs of :mod:`lsnb.jobs`.

:func:`jobs_for` covers training every replicate of the nets the chosen
notebooks use, partitioning each one in the four ways of the paper (Sec. 2),
and the lesion (Sec. 4.1) and feature-visualization (Sec. 4.2) tests of each
partition that the notebooks run with their default settings (Tables 1, 2,
5, 6, 7, 8 and the regularization table), through the same cached calls the
notebooks make (:meth:`lsnb.study.Study.partition`,
:meth:`~lsnb.study.Study.lesions`, :meth:`~lsnb.study.Study.featvis`),
so the book then reads them from the cache.  The departures chapter (06) and
the grouping chapter (07) are jobs of the functions those notebooks call
(:data:`CHAPTERS`: :mod:`lsnb.departures` for each cell of the path and each
variant, :mod:`lsnb.comparison` for the other groupings, their tests, the
seed stability and the clusterability), with the notebooks' default
parameters read from their parameters cells (:func:`notebook_parameters`),
so after ``lsnb run 06 07`` those notebooks read only cache hits too.  Job
keys name the job (``model/vgg/quick/r0``), not a cache entry, so they are
never skipped up front; a rerun is a sequence of cache hits.  Costs are rough
FLOP models (:class:`_Costs`): training ``3 x forward FLOPs x examples x
epochs``; a partition ``20 N^2`` for the graph's spectrum plus, for graphs
built from inputs, ``samples x (forward FLOPs + N^2)`` (``N`` the units of
the net); a lesion test ``lesions x test images x forward / 2`` and a
visualization test ``groups x steps x 3 x forward``, with ``k x (n_random +
1)`` lesions or groups per partition; a chapter job the sum of what it
computes.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable

from . import comparison, departures, lesion, models, networks, neurons, train
from .jobs import Job
from .profiles import Profile, get_profile
from .report import PARTITIONINGS
from .study import Study

#: Where the notebooks live (their parameters cells give the chapters' defaults).
NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"

#: Trained networks each notebook uses (ImageNet nets come pretrained and are not jobs).
NOTEBOOK_NETS = {
    "01_halves_mnist": ("mlp_halves",),
    "02_lesions": ("mlp_mnist", "cnn_mnist", "vgg"),
    "03_feature_visualization": ("mlp_mnist", "cnn_mnist", "vgg"),
    "04_k_robustness": ("vgg",),
    "05_regularization": ("vgg", "vgg_unreg"),
    "06_original_code": ("mlp_mnist", "cnn_mnist", "vgg", "mlp_halves"),
    "07_grouping_methods": ("mlp_mnist", "cnn_mnist", "vgg", "vgg_unreg", "mlp_halves"),
}
#: Notebooks whose networks are partitioned by :meth:`lsnb.study.Study.partition`.
_PARTITIONED = ("02_lesions", "03_feature_visualization", "04_k_robustness", "05_regularization")
#: The tests each notebook runs on every partition of its networks with default settings.
NOTEBOOK_TESTS = {
    "02_lesions": ("lesion",),
    "03_feature_visualization": ("featvis",),
    "04_k_robustness": ("lesion", "featvis"),
    "05_regularization": ("lesion", "featvis"),
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


def notebook_parameters(name: str, folder: Path = NOTEBOOK_DIR) -> dict:
    """The default parameters of a notebook: the assignments of its cell tagged ``parameters``.

    Raises
    ------
    ValueError
        When the notebook has no such cell, or more than one.
    """
    text = (Path(folder) / f"{name}.py").read_text()
    cells = re.split(r"^# %%", text, flags=re.MULTILINE)[1:]
    tagged = [cell for cell in cells if re.match(r"[^\n]*tags=\[[^\]]*\"parameters\"", cell)]
    if len(tagged) != 1:
        raise ValueError(f"{name}: expected one cell tagged 'parameters', found {len(tagged)}")
    body = ast.parse(tagged[0].split("\n", 1)[1])
    return {target.id: ast.literal_eval(node.value) for node in body.body if isinstance(node, ast.Assign)
            for target in node.targets}


def _untrained(net: str, prof: Profile):
    spec = dict(train.NETS[net])
    arch = spec.pop("arch")
    spec.pop("dataset")
    if arch == "vgg_cifar":
        spec.update(width=prof.vgg_width, bn_momentum=prof.vgg_bn_momentum)
    return models.build(arch, **spec)


def _units(model) -> int:
    return sum(int(layer.output.shape[-1]) for layer in model.layers if neurons.layer_flops(layer) > 0)


@dataclass(frozen=True)
class _Costs:
    """The FLOP model of one network's jobs under one profile (module docstring)."""

    forward: float
    units: int
    n_train: int
    epochs: int
    n_test: int
    featvis_steps: int
    n_random: int
    samples: int

    @classmethod
    def of(cls, net: str, prof: Profile) -> "_Costs":
        model = _untrained(net, prof)
        arch = train.NETS[net]["arch"]
        n_train = (prof.train_examples_for(arch, net) or prof.n_train
                   or (4000 if prof.data_source == "embedded" else 50000))
        n_test = prof.n_test_for(arch) or (1000 if prof.data_source == "embedded" else 10000)
        return cls(float(lesion.forward_flops(model)), _units(model), n_train, prof.epochs[arch], n_test,
                   prof.featvis_steps_for(arch), prof.n_random, prof.n_activation_samples)

    def train(self) -> float:
        return 3 * self.forward * self.n_train * self.epochs

    def partition(self, partitioning: str = "weights/network", samples: int | None = None) -> float:
        from_inputs = not partitioning.startswith(("weights", "leiden-weights"))
        n = (self.samples if samples is None else samples) if from_inputs else 0
        return 20.0 * self.units**2 + n * (self.forward + self.units**2)

    def lesion(self, k: int) -> float:
        return k * (self.n_random + 1) * self.n_test * self.forward / 2

    def featvis(self, k: int) -> float:
        return k * (self.n_random + 1) * self.featvis_steps * 3 * self.forward

    def test(self, test: str, k: int) -> float:
        return self.lesion(k) if test == "lesion" else self.featvis(k)


class _Graph:
    """The jobs of one profile and seed being assembled; each model job once."""

    def __init__(self, prof: Profile, seed: int, exclude: Iterable[str]) -> None:
        self.prof, self.seed, self.exclude = prof, int(seed), set(exclude)
        self.jobs: dict[str, Job] = {}
        self._costs: dict[str, _Costs] = {}

    def costs(self, net: str) -> _Costs:
        if net not in self._costs:
            self._costs[net] = _Costs.of(net, self.prof)
        return self._costs[net]

    def usable(self, nets: Iterable[str]) -> bool:
        """Whether none of ``nets`` is excluded."""
        return not set(nets) & self.exclude

    def replicates(self, net: str) -> list[int]:
        return networks.replicates(net, self.prof)

    def model(self, net: str, replicate: int) -> str:
        """The key of the training job of ``net``'s ``replicate`` (added on first use)."""
        key = f"model/{net}/{self.prof.name}/r{replicate}"
        if key not in self.jobs:
            self.add(Job(key, "model", partial(_train_job, net, self.prof.name, replicate, self.seed),
                         cost_flops=self.costs(net).train()))
        return key

    def models(self, nets: Iterable[str]) -> tuple[str, ...]:
        """The training jobs of every replicate of ``nets``."""
        return tuple(self.model(net, r) for net in nets for r in self.replicates(net))

    def add(self, job: Job) -> str:
        self.jobs[job.key] = job
        return job.key

    def chapter(self, key: str, kind: str, function: Callable, args: tuple, deps: tuple, cost: float) -> str:
        """A job ``key`` that calls ``function(Study(profile, seed=seed), *args)``, as the chapter does."""
        return self.add(Job(key, kind, partial(_with_study, function, self.prof.name, self.seed, *args),
                            deps=deps, cost_flops=cost))


def _train_job(net: str, profile: str, replicate: int, seed: int) -> dict:
    tnet = networks.network(net, profile, replicate=replicate, seed=seed)
    return {"net": net, "replicate": replicate, "accuracy": float(tnet.test_accuracy)}


def _partition_job(net: str, profile: str, replicate: int, partitioning: str, seed: int,
                   k: int | None = None) -> dict:
    part = Study(profile, seed=seed).partition(net, replicate, partitioning, k)
    return {"net": net, "replicate": replicate, "partitioning": partitioning, "k": int(part.k)}


def _test_job(test: str, net: str, profile: str, replicate: int, partitioning: str, seed: int,
              k: int | None) -> dict:
    study = Study(profile, seed=seed)
    if test == "lesion":
        table = study.lesions([net], [partitioning], k, replicates=[replicate])
    else:
        table, _ = study.featvis([net], [partitioning], k, replicates=[replicate])
    return {"net": net, "replicate": replicate, "partitioning": partitioning, "k": networks.k_for(net, profile, k),
            "test": test, "rows": int(len(table))}


def _with_study(function: Callable, profile: str, seed: int, *args: Any) -> dict:
    """``function(Study(profile, seed=seed), *args)``: a chapter's computation as its notebook makes it."""
    result = function(Study(profile, seed=seed), *args)
    return {"function": function.__name__, "args": [str(a) for a in args],
            "size": len(result) if hasattr(result, "__len__") else None}


def _grouping_tests(study: Study, net: str, replicate: int, n_samples: int, test: str):
    """The grouping chapter's ``test`` of every grouping of ``net`` (its groupings from the cache)."""
    return comparison.group_tests(study, net, comparison.groupings(study, net, replicate, n_samples), replicate, test)


def _paper_jobs(graph: _Graph, names: list[str]) -> None:
    """Training, partitions and tests of the notebooks that run the paper's tests (01 to 05)."""
    prof = graph.prof
    generic = [name for name in names if name not in CHAPTERS]
    partitioned = {net for name in generic if name in _PARTITIONED for net in NOTEBOOK_NETS[name]}
    tests: dict = {}                                   # net -> {(test, k)}; k None: the profile's
    for name in generic:
        for net in NOTEBOOK_NETS[name]:
            for k in (prof.k_values if name in _K_SWEEP else (None,)):
                tests.setdefault(net, set()).update((test, networks.k_for(net, prof, k))
                                                    for test in NOTEBOOK_TESTS.get(name, ()))
    for net in sorted({net for name in generic for net in NOTEBOOK_NETS[name]} - graph.exclude):
        costs = graph.costs(net)
        default_k = networks.k_for(net, prof)
        ks = sorted({default_k} | {k for _, k in tests.get(net, ())})
        for replicate in graph.replicates(net):
            trained_key = graph.model(net, replicate)
            for partitioning in PARTITIONINGS if net in partitioned else ():
                for k in ks:
                    part_key = f"partition/{net}/{prof.name}/r{replicate}/{partitioning}" + \
                        ("" if k == default_k else f"/k{k}")
                    graph.add(Job(part_key, "partition",
                                  partial(_partition_job, net, prof.name, replicate, partitioning, graph.seed, k),
                                  deps=(trained_key,), cost_flops=costs.partition(partitioning)))
                    for test in sorted(t for t, tk in tests.get(net, ()) if tk == k):
                        graph.add(Job(f"{test}/{part_key.split('/', 1)[1]}", test,
                                      partial(_test_job, test, net, prof.name, replicate, partitioning, graph.seed, k),
                                      deps=(part_key,), cost_flops=costs.test(test, k)))


def _departures_jobs(graph: _Graph, params: dict) -> None:
    """The departures chapter (06): each cell of the path, the foldings, variants, halves and seeds."""
    prof, p = graph.prof, graph.prof.name
    nets = [net for net in params["nets"] if graph.usable([net])]
    reps = {net: len(graph.replicates(net)) for net in set(nets) | {params["vgg_net"], params["featvis_net"],
                                                                    "mlp_halves"}}
    cells: dict[str, list[str]] = {}
    for net in nets:
        costs, k = graph.costs(net), networks.k_for(net, prof)
        for partitioning in params["path_partitionings"]:
            steps = [dep for dep in departures.DEPARTURES if dep.applies(net, partitioning)]
            steps.append(departures.all_together(departures.DEPARTURES, net, partitioning))
            repartitions = 1 + sum(bool(dep.partition or dep.profile) for dep in steps)
            lesions = 1 + sum(dep.reruns() for dep in steps)
            cost = reps[net] * (repartitions * costs.partition(partitioning) + lesions * costs.lesion(k))
            cells.setdefault(net, []).append(graph.chapter(
                f"departures/{net}/{p}/{partitioning}", "lesion", departures.cell_lesions, (net, partitioning),
                graph.models([net]), cost))
    for net in nets:
        costs, k = graph.costs(net), networks.k_for(net, prof)
        extra = set(params["partitionings"]) - set(params["path_partitionings"])
        graph.chapter(f"departures/measures/{net}/{p}", "lesion", departures.measure_runs,
                      ([net], params["partitionings"]), (*graph.models([net]), *cells.get(net, [])),
                      reps[net] * len(extra) * (costs.partition() + len(departures.VARIANTS) * costs.lesion(k)))
        graph.chapter(f"departures/seeds/{net}/{p}", "partition", departures.seed_agreement, ([net],),
                      (*graph.models([net]), *cells.get(net, [])), reps[net] * costs.partition("activations/network"))
    vgg = params["vgg_net"]
    if graph.usable([vgg]):
        costs, k = graph.costs(vgg), networks.k_for(vgg, prof)
        graph.chapter(f"departures/folding/{vgg}/{p}", "lesion", departures.folding_runs, (vgg,), graph.models([vgg]),
                      reps[vgg] * len(departures.FOLDINGS) * (costs.partition() + costs.lesion(k)))
        graph.chapter(f"departures/folding-agreement/{vgg}/{p}", "partition", departures.folding_agreement, (vgg,),
                      (f"departures/folding/{vgg}/{p}",), 0.0)
    net = params["featvis_net"]
    if graph.usable([net]):
        costs, k = graph.costs(net), networks.k_for(net, prof)
        parts = params["partitionings"]
        graph.chapter(f"departures/visualization/{net}/{p}", "featvis", departures.visualization_runs, (net, parts),
                      graph.models([net]), reps[net] * len(parts) * (costs.partition(parts[0])
                                                                     + len(departures.VARIANTS) * costs.featvis(k)))
    if graph.usable(["mlp_halves"]):
        costs = graph.costs("mlp_halves")
        graph.chapter(f"departures/halves/mlp_halves/{p}", "partition", departures.halves_runs,
                      (params["partitionings"],), graph.models(["mlp_halves"]),
                      reps["mlp_halves"] * sum(costs.partition(part) for part in params["partitionings"]))


def _grouping_jobs(graph: _Graph, params: dict) -> None:
    """The grouping chapter (07): the groupings of each net, their tests, seed stability, clusterability."""
    prof, p = graph.prof, graph.prof.name
    replicate, n_samples = params["replicate"], params["n_samples"]
    for net in [net for net in params["nets"] if graph.usable([net])]:
        costs, k = graph.costs(net), networks.k_for(net, prof)
        trained = (graph.model(net, replicate),)
        build = sum(costs.partition(p) for p in PARTITIONINGS) + costs.partition("leiden-weights/network") + \
            2 * costs.partition("activations/network", n_samples) + 2 * n_samples * costs.forward
        groups = graph.chapter(f"grouping/{net}/{p}/r{replicate}", "grouping", comparison.groupings,
                               (net, replicate, n_samples), trained, build)
        for test in params["tests"]:
            graph.chapter(f"grouping/{test}/{net}/{p}/r{replicate}", test, _grouping_tests,
                          (net, replicate, n_samples, test), (groups,),
                          len(comparison.GROUPINGS) * costs.test(test, k))
        new_seeds = [s for s in params["stability_seeds"] if s != graph.seed]
        graph.chapter(f"grouping/stability/{net}/{p}/r{replicate}", "partition", comparison.stability_table,
                      ([net], replicate, params["stability_seeds"], params["n_permutations"]), (groups,),
                      len(new_seeds) * sum(costs.partition(p) for p in PARTITIONINGS))
    for net in [net for net in params["clusterability_nets"] if graph.usable([net])]:
        graph.chapter(f"grouping/clusterability/{net}/{p}/r{replicate}", "clusterability",
                      comparison.clusterability_table, ([net], params["n_shuffles"], replicate),
                      (graph.model(net, replicate),), (params["n_shuffles"] + 1) * graph.costs(net).partition())


#: Notebooks whose computations are jobs of the functions they call, by the function adding those jobs.
CHAPTERS: dict[str, Callable[[_Graph, dict], None]] = {
    "06_original_code": _departures_jobs,
    "07_grouping_methods": _grouping_jobs,
}


def jobs_for(notebooks: Iterable[str], profile: str | Profile = "quick", seed: int = 0,
             exclude: Iterable[str] = (), parameters: dict | None = None) -> list[Job]:
    """The training, partitioning and test jobs of ``notebooks`` under ``profile``.

    Parameters
    ----------
    notebooks : iterable of str
        Names, numbers or name parts of the notebooks (see :data:`NOTEBOOK_NETS`).
    profile : str or Profile
        A named profile (jobs are sent to workers by name).
    seed : int
    exclude : iterable of str
        Networks left out (for example those whose data is missing), with
        every chapter job that needs one of them.
    parameters : dict, optional
        Notebook parameters that replace the chapters' defaults, as the book
        build's ``-p NAME VALUE`` does (a name a chapter lacks is ignored).
    """
    names = notebook_names(notebooks)
    graph = _Graph(get_profile(profile), seed, exclude)
    _paper_jobs(graph, names)
    recorded = {net for name in names if name not in CHAPTERS for net in NOTEBOOK_NETS.get(name, ())}
    for name in names:
        if name in CHAPTERS:
            defaults = notebook_parameters(name)
            params = {**defaults, **{k: v for k, v in (parameters or {}).items() if k in defaults}}
            CHAPTERS[name](graph, params)
            recorded |= set(params.get("nets", ()))
    _convergence_jobs(graph, sorted(recorded))
    return list(graph.jobs.values())


def _convergence(study: Study, net: str):
    """The visualization convergence check of the experiment record (:meth:`Study.featvis_convergence`)."""
    return study.featvis_convergence(net)


def _convergence_jobs(graph: _Graph, nets: Iterable[str]) -> None:
    """The convergence check every page's experiment record reads, once per network."""
    for net in [net for net in nets if graph.usable([net])]:
        costs = graph.costs(net)
        steps = graph.prof.featvis_steps_for(train.NETS[net]["arch"])
        graph.chapter(f"convergence/{net}/{graph.prof.name}", "featvis_convergence", _convergence, (net,),
                      graph.models([net])[:1], costs.partition() + 8 * 5 * steps * 3 * costs.forward)
