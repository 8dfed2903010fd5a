"""The book's computations as jobs of :mod:`lsnb.jobs`.

Every notebook's jobs follow its parameters cell (:func:`notebook_parameters`,
read with jupytext), overridden by ``lsnb run -p NAME VALUE`` as the book
build's ``-p`` overrides the notebook.  The paper's chapters (01 to 05) are
jobs of training every replicate of the nets they use, partitioning each one
as they do (Sec. 2), and the lesion (Sec. 4.1) and feature-visualization
(Sec. 4.2) tests of each partition (Tables 1, 2, 5, 6, 7, 8 and the
regularization table) and chapter 03's exemplar tests, through the same
cached calls the notebooks make (:meth:`lsnb.study.Study.partition`,
:meth:`~lsnb.study.Study.lesions`, :meth:`~lsnb.study.Study.featvis`,
:meth:`~lsnb.study.Study.exemplars`); a notebook's by-hand cell (one network
through the public API, :data:`lsnb.cells.BY_HAND`) is a job that executes
that cell.  The departures chapter (06) and the
grouping chapter (07) are jobs of the functions those notebooks call
(:mod:`lsnb.departures` for each cell of the path and each variant,
:mod:`lsnb.comparison` for the other groupings, their tests, the seed
stability and the clusterability).  Every page's experiment record is a job
too.  So after ``lsnb run`` the notebooks read only cache hits, and a job
that ran before is skipped and counted as cached (:func:`lsnb.jobs.is_cached`).
Costs are rough FLOP models (:class:`_Costs`): training ``3 x forward FLOPs
x examples x epochs``; a partition ``20 N^2`` for the graph's spectrum plus,
for graphs built from inputs, ``samples x (forward FLOPs + N^2)`` (``N`` the
units of the net); a lesion test ``lesions x test images x forward / 2`` and
a visualization test ``groups x steps x 3 x forward``, with ``k x (n_random
+ 1)`` lesions or groups per partition; a chapter job the sum of what it
computes.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterable

from . import comparison, departures, lesion, models, networks, neurons, train
from . import data as data_mod
from .cells import BY_HAND, NOTEBOOKS, by_hand_cells, notebook_names, notebook_parameters
from .featvis.convergence import PRECISION_GROUPS
from .jobs import Job
from .profiles import Profile, get_profile
from .report import PARTITIONINGS
from .study import Study

def _by_hand_job(name: str, profile: str, seed: int, overrides: tuple = ()) -> dict:
    """Execute notebook ``name``'s by-hand cells with the names its opening cell gives them
    (``overrides``: the profile fields its parameters change)."""
    import lsnb

    from . import cache, explore, featvis, stats

    study = Study(profile, seed=seed, **dict(overrides))
    namespace = {"lsnb": lsnb, "cache": cache, "explore": explore, "featvis": featvis, "stats": stats,
                 "study": study, "seed": seed, "timer": study.timer}
    sources = by_hand_cells(name)
    for source in sources:
        exec(compile(source, f"{name}.py", "exec"), namespace)
    return {"notebook": name, "cells": len(sources)}


def _by_hand_jobs(graph: "_Graph", name: str, params: dict) -> None:
    """A job for notebook ``name``'s by-hand cells under ``params``, after training the networks they name."""
    sources = by_hand_cells(name)
    nets = [net for net in train.NETS if any(f'"{net}"' in source for source in sources)]
    if sources and graph.usable(nets):
        cost = sum(graph.costs(net).partition() + graph.costs(net).lesion(graph.prof.k) for net in nets)
        overrides = _overrides(params)
        graph.add(Job(f"{BY_HAND}/{name}/{graph.prof.name}{_key_suffix(overrides)}", BY_HAND,
                      partial(_by_hand_job, name, graph.prof.name, graph.seed, overrides), deps=graph.models(nets),
                      cost_flops=cost))


def _trained(nets: Iterable[str]) -> list[str]:
    """``nets`` less the pretrained ImageNet networks (they are not jobs)."""
    return [net for net in nets if net in train.NETS]


def _untrained(net: str, prof: Profile):
    arch, kwargs = train.model_spec(net, prof)
    return models.build(arch, **kwargs)


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
        arch, name = train.NETS[net]["arch"], train.NETS[net]["dataset"]
        if name == "halves_mnist":
            shipped = tuple(prof.halves_pairs)
        else:
            shipped = data_mod.split_sizes(prof.vgg_data if name == "vgg_data" else name, prof.data_source)
        n_train = prof.train_examples_for(arch, net) or min(prof.n_train or shipped[0], shipped[0])
        n_test = min(prof.n_test_for(arch) or shipped[1], shipped[1])
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
        if test == "exemplar":   # one forward pass over the test images, whatever the groups
            return self.n_test * self.forward
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
              k: int | None, overrides: tuple = (), options: tuple = ()) -> dict:
    study = Study(profile, seed=seed, **dict(overrides))
    if test == "lesion":
        table = study.lesions([net], [partitioning], k, replicates=[replicate])
    elif test == "exemplar":
        table = study.exemplars([net], [partitioning], k, exemplar_options=dict(options), replicates=[replicate])
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


def _key_suffix(pairs: tuple) -> str:
    """The part of a job key that names its settings beyond the defaults: ``/field=value`` per pair."""
    return "".join(f"/{field}={value}" for field, value in pairs)


def _overrides(params: dict) -> tuple:
    """The profile fields a notebook's parameters change in its :class:`Study` (pairs): its ``steps``."""
    return (("featvis_steps", params["steps"]),) if params.get("steps") is not None else ()


def _paper_cells(name: str, params: dict, prof: Profile) -> list[tuple]:
    """What a paper chapter (01 to 05, and the summary 09) computes under ``params``: ``(net, partitioning, k, test, overrides, options)``.

    ``test`` is ``None`` for a partition used without a test; ``overrides``
    are the profile fields the notebook changes and ``options`` the test's own
    settings (pairs; the exemplars per group of chapter 03's exemplar test).
    """
    if name == "01_halves_mnist":
        return ([("mlp_halves", part, params["k"], None, (), ()) for part in PARTITIONINGS]
                + [("mlp_halves", "weights/network", None, "lesion", (), ())])
    if name == "04_k_robustness":
        ks = [params["k"]] if params["k"] is not None else list(params["ks"] or prof.k_values)
        tests = ("lesion", "featvis") if params["featvis"] else ("lesion",)
        return [(params["net"], part, k, test, (), ()) for k in ks for part in params["partitionings"]
                for test in tests]
    tests = {"02_lesions": ("lesion",), "03_feature_visualization": ("featvis", "exemplar"),
             "05_regularization": ("lesion", "featvis") if params.get("featvis") else ("lesion",),
             "09_at_a_glance": ("lesion", "featvis")}[name]
    overrides = _overrides(params)
    options = {"exemplar": (("k", params.get("exemplar_k")),) if params.get("exemplar_k") is not None else ()}
    return [(net, part, params.get("k"), test, overrides, options.get(test, ())) for net in params["nets"]
            for part in params["partitionings"] for test in tests]


def _paper_jobs(graph: _Graph, cells: list[tuple]) -> None:
    """Training, partitions and tests of the paper's chapters (01 to 05), each once."""
    prof, wanted = graph.prof, {}
    for net, partitioning, k, test, overrides, options in cells:
        if net in train.NETS and graph.usable([net]):
            wanted.setdefault((net, partitioning, networks.k_for(net, prof, k)), set()).add((test, overrides, options))
    for net in sorted({net for net, _, _ in wanted}):
        costs, default_k = graph.costs(net), networks.k_for(net, prof)
        for replicate in graph.replicates(net):
            trained_key = graph.model(net, replicate)
            for (_, partitioning, k), tests in sorted(((c, t) for c, t in wanted.items() if c[0] == net),
                                                      key=lambda item: (PARTITIONINGS.index(item[0][1]), item[0][2])):
                part_key = f"partition/{net}/{prof.name}/r{replicate}/{partitioning}" + \
                    ("" if k == default_k else f"/k{k}")
                graph.add(Job(part_key, "partition",
                              partial(_partition_job, net, prof.name, replicate, partitioning, graph.seed, k),
                              deps=(trained_key,), cost_flops=costs.partition(partitioning)))
                for test, overrides, options in sorted(t for t in tests if t[0] is not None):
                    graph.add(Job(f"{test}/{part_key.split('/', 1)[1]}{_key_suffix((*overrides, *options))}", test,
                                  partial(_test_job, test, net, prof.name, replicate, partitioning, graph.seed, k,
                                          overrides, options), deps=(part_key,), cost_flops=costs.test(test, k)))


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


def notebook_nets(name: str, params: dict | None = None) -> tuple[str, ...]:
    """The trained networks notebook ``name`` uses under ``params`` (default: its parameters cell)."""
    params = notebook_parameters(name) if params is None else params
    if name in CHAPTERS:
        extra = [params.get("vgg_net"), params.get("featvis_net"), *params.get("clusterability_nets", ())]
        return tuple(dict.fromkeys(_trained([*params["nets"], *[n for n in extra if n],
                                             *(["mlp_halves"] if name == "06_original_code" else [])])))
    return tuple(dict.fromkeys(net for net, *_ in _paper_cells(name, params, get_profile("quick"))
                               if net in train.NETS))


#: Trained networks each notebook uses with its default parameters (ImageNet nets come pretrained).
NOTEBOOK_NETS = {name: notebook_nets(name) for name in NOTEBOOKS}


def notebook_models(name: str, profile: str | Profile = "quick", params: dict | None = None) -> list[tuple[str, int]]:
    """The ``(net, replicate)`` pairs notebook ``name`` trains or loads under ``profile``.

    Every replicate of each of its networks (:func:`notebook_nets`), or only
    the one named by a ``replicate`` parameter (the grouping chapter's).
    """
    params = notebook_parameters(name) if params is None else params
    prof, only = get_profile(profile), params.get("replicate")
    return [(net, replicate) for net in notebook_nets(name, params) for replicate in networks.replicates(net, prof)
            if only is None or replicate == int(only)]


def jobs_for(notebooks: Iterable[str], profile: str | Profile = "quick", seed: int = 0,
             exclude: Iterable[str] = (), parameters: dict | None = None) -> list[Job]:
    """The training, partitioning, test and record jobs of ``notebooks`` under ``profile``.

    Parameters
    ----------
    notebooks : iterable of str
        Names, numbers or name parts of the notebooks (see :data:`NOTEBOOKS`).
    profile : str or Profile
        A named profile (jobs are sent to workers by name).
    seed : int
    exclude : iterable of str
        Networks left out (for example those whose data is missing), with
        every chapter job that needs one of them.
    parameters : dict, optional
        Notebook parameters that replace the defaults of their parameters
        cells, as the book build's ``-p NAME VALUE`` does (a name a notebook
        lacks is ignored for that notebook).
    """
    names = notebook_names(notebooks)
    graph = _Graph(get_profile(profile), seed, exclude)
    cells, recorded = [], set()
    for name in names:
        defaults = notebook_parameters(name)
        params = {**defaults, **{k: v for k, v in (parameters or {}).items() if k in defaults}}
        if name in CHAPTERS:
            CHAPTERS[name](graph, params)
        else:
            cells += _paper_cells(name, params, graph.prof)
        _by_hand_jobs(graph, name, params)
        _precision_jobs(graph, name, params)
        nets = _trained(params.get("nets", ())) if name in CHAPTERS else notebook_nets(name, params)
        recorded |= {(net, _overrides(params)) for net in nets}
    _paper_jobs(graph, cells)
    _record_jobs(graph, sorted(recorded))
    return list(graph.jobs.values())


def _precision_job(nets: tuple, twins: tuple, profile: str, seed: int, overrides: tuple = ()) -> dict:
    """What a page's precision check computes (:meth:`Study.precision_check`: float32 twins, visualization agreement)."""
    table = Study(profile, seed=seed, **dict(overrides)).precision_check(list(nets), list(twins))
    return {"nets": list(nets), "rows": int(len(table))}


def _precision_jobs(graph: _Graph, name: str, params: dict) -> None:
    """A job for the precision check of a notebook with a ``precision_twins`` parameter (the book's last page)."""
    if "precision_twins" not in params:
        return
    nets, twins = tuple(_trained(params["nets"])), tuple(_trained(params["precision_twins"]))
    if not graph.usable(nets):
        return
    overrides = _overrides(params)
    cost = sum(graph.costs(net).train() for net in twins) + sum(
        2 * PRECISION_GROUPS * graph.prof.featvis_steps_for(train.NETS[net]["arch"]) * 3 * graph.costs(net).forward for net in nets)
    graph.add(Job(f"precision/{name}/{graph.prof.name}{_key_suffix(overrides)}", "precision",
                  partial(_precision_job, nets, twins, graph.prof.name, graph.seed, overrides),
                  deps=graph.models(list(nets)), cost_flops=cost))


def _record_job(net: str, profile: str, seed: int, overrides: tuple = ()) -> dict:
    """What a page's experiment record reads of ``net`` (:meth:`Study.record`: convergence, dead units),
    in the study its notebook makes (``overrides``: the profile fields its parameters change)."""
    record = Study(profile, seed=seed, **dict(overrides)).record([net])
    return {"net": net, "rows": int(len(record))}


def _record_jobs(graph: _Graph, recorded: Iterable[tuple[str, tuple]]) -> None:
    """The experiment record's computations, once per network and study (the visualization convergence check first)."""
    for net, overrides in recorded:
        if not graph.usable([net]):
            continue
        costs = graph.costs(net)
        steps = dict(overrides).get("featvis_steps") or graph.prof.featvis_steps_for(train.NETS[net]["arch"])
        graph.add(Job(f"record/{net}/{graph.prof.name}{_key_suffix(overrides)}", "record",
                      partial(_record_job, net, graph.prof.name, graph.seed, overrides), deps=graph.models([net]),
                      cost_flops=costs.partition() + 8 * 5 * steps * 3 * costs.forward))
