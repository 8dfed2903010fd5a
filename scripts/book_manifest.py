"""The book's build record: cost table, ``manifest.json``, "How this book was built", offline check.

Used by ``scripts/build_book.py``.  Inputs are the JSON-lines logs every
notebook writes while it runs:

- ``logs/NN.stage.jsonl``: ``{"stage", "seconds", "time", "peak_mib"}`` per
  finished stage (``time``: when it ended; ``peak_mib``: the kernel's peak
  resident memory so far);
- ``logs/NN.cache.jsonl``: ``{"kind", "key", "status": "hit" | "computed",
  "seconds", "time"}`` per cached call.

How much of each stage was read from the cache comes from the two logs
together (``scripts/stage_costs.py``).

A missing or empty log is read as "no records" so a notebook without stages
still gets a row.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import platform
import re
import subprocess
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path

from stage_costs import seconds_cell, stage_split, totals_table, write_stage_chart

PACKAGES = ("lsnb", "tensorflow-cpu", "tensorflow", "keras", "numpy", "scipy", "scikit-learn", "pandas",
            "matplotlib", "jupyter-book", "papermill", "itables", "plotly", "sphinx-mathjax-offline")

# --------------------------------------------------------------------------- offline check

_RESOURCE_ATTRIBUTES = {"script": ("src",), "img": ("src",), "iframe": ("src",), "source": ("src",),
                        "audio": ("src",), "video": ("src",), "embed": ("src",), "object": ("data",)}
_REMOTE = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)|@import\s+['"]([^'"]+)""", re.IGNORECASE)


class _ResourceParser(HTMLParser):
    """Collects the URLs a page fetches by itself (not the links a reader may click)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        for name in _RESOURCE_ATTRIBUTES.get(tag, ()):
            if values.get(name):
                self.urls.append(values[name])
        if tag == "link" and values.get("href") and values.get("rel", "") not in ("canonical", "alternate"):
            self.urls.append(values["href"])
        self.urls += [m.group(1) or m.group(2) for m in _CSS_URL.finditer(values.get("style") or "")]
        self._in_style = tag == "style"

    def handle_data(self, data):
        if self._in_style:
            self.urls += [m.group(1) or m.group(2) for m in _CSS_URL.finditer(data)]

    def handle_endtag(self, tag):
        self._in_style = False if tag == "style" else self._in_style


def page_resources(html: str) -> list[str]:
    """Every URL an HTML page loads by itself: scripts, stylesheets, fonts, images, frames."""
    parser = _ResourceParser()
    parser.feed(html)
    return parser.urls


def external_resources(site: Path) -> list[tuple[str, str]]:
    """``(file, url)`` for every resource of the built ``site`` that comes from the network.

    Scans every ``.html`` page (``script``/``img``/``iframe`` sources, ``link``
    hrefs, inline ``url()``) and every ``.css`` file (``url()`` and
    ``@import``); ``http://``, ``https://`` and protocol-relative ``//`` URLs
    count as remote.
    """
    found = []
    for path in sorted(Path(site).rglob("*")):
        if path.suffix == ".html":
            urls = page_resources(path.read_text(errors="replace"))
        elif path.suffix == ".css":
            text = re.sub(r"/\*.*?\*/", "", path.read_text(errors="replace"), flags=re.DOTALL)
            urls = [m.group(1) or m.group(2) for m in _CSS_URL.finditer(text)]
        else:
            continue
        found += [(str(path.relative_to(site)), url) for url in urls if _REMOTE.match(url)]
    return found


# --------------------------------------------------------------------------- logs and cost table

def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file (``[]`` when it is missing); blank lines skipped."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def notebook_stages(logs: Path, name: str) -> dict[str, dict[str, float | None]]:
    """Stage -> ``{"seconds", "cached_s"}`` of one notebook, from its stage and cache logs."""
    return stage_split(read_jsonl(Path(logs) / f"{name}.stage.jsonl"),
                       read_jsonl(Path(logs) / f"{name}.cache.jsonl"))


FLOOR_KINDS = ("lesion", "featvis")


def floor_shares(logs: Path, names: list[str], cache_root: Path, rate: float) -> dict[str, dict[str, float]]:
    """Notebook -> kind -> the share of the FLOP floor its computed lesion and visualization entries ran at.

    The floor of an entry is the FLOPs its sidecar records (``flops``: the
    engines' useful FLOPs, :func:`lsnb.lesion.engines.lesion_flops` and the
    visualizations' ``steps x 2 x forward``) at the machine's matmul
    ``rate``; the share is floor seconds over measured seconds, summed over
    the notebook's computed entries of that kind.
    """
    shares = {}
    for name in names:
        flops, seconds = {}, {}
        for record in read_jsonl(Path(logs) / f"{name}.cache.jsonl"):
            kind = record.get("kind")
            if kind not in FLOOR_KINDS or record.get("status") != "computed":
                continue
            try:
                about = json.loads((Path(cache_root) / kind / f"{record['key']}.json").read_text())
            except (OSError, json.JSONDecodeError, KeyError):
                continue
            if about.get("flops") is None or not about.get("seconds"):
                continue
            flops[kind] = flops.get(kind, 0.0) + float(about["flops"])
            seconds[kind] = seconds.get(kind, 0.0) + float(about["seconds"])
        shares[name] = {kind: flops[kind] / rate / seconds[kind] for kind in flops if seconds[kind] > 0}
    return shares


def cost_rows(logs: Path, names: list[str], shares: dict | None = None) -> dict[str, dict[str, str]]:
    """Notebook -> stage -> ``"12.3 s"`` / ``"12.3 s (0.1 s cached)"``, plus cache hit counts.

    With ``shares`` (:func:`floor_shares`) each row also gets the FLOP-floor
    share of its computed lesion and visualization entries.
    """
    rows = {}
    for name in names:
        row = {stage: seconds_cell(split["seconds"], split["cached_s"])
               for stage, split in notebook_stages(logs, name).items()}
        cache = [r for r in read_jsonl(Path(logs) / f"{name}.cache.jsonl") if r.get("kind") != "data"]
        hits = sum(r.get("status") == "hit" for r in cache)
        row["cache"] = f"{hits} hit / {len(cache) - hits} computed"
        peak = peak_mib(Path(logs), name)
        row["peak memory"] = f"{peak:.0f} MiB" if peak is not None else "-"
        if shares is not None:
            for kind in FLOOR_KINDS:
                share = shares.get(name, {}).get(kind)
                row[f"{kind} floor"] = f"{100 * share:.0f} %" if share is not None else "-"
        rows[name] = row
    return rows


def peak_mib(logs: Path, name: str) -> float | None:
    """A notebook's peak resident memory (MiB) as its stage log last reported it (None if never)."""
    peaks = [float(r["peak_mib"]) for r in read_jsonl(Path(logs) / f"{name}.stage.jsonl") if r.get("peak_mib")]
    return max(peaks) if peaks else None


def ledger_text(ledger: dict, wall_ratio: float | None = None) -> str:
    """The design ledger (:func:`lsnb.costs.design_ledger`) as aligned text."""
    from lsnb.costs import describe_size

    full = ledger.get("full_test_images")
    lines = ["[build_book] what the profile cuts from the target design, and what each cut would cost "
             "(projected from this cache's measured seconds)"]
    for cut in ledger["cuts"]:
        lines.append(f"  {cut['arch']:<10s} {cut['size']:<14s} target {describe_size(cut['size'], cut['target'], full):>12s}"
                     f"  chosen {describe_size(cut['size'], cut['chosen'], full):>10s}"
                     f"  {cut['measured_s']:8.1f} s measured -> {cut['projected_s']:8.1f} s at the target")
    for arch, row in ledger["by_arch"].items():
        lines.append(f"  {arch:<10s} all cuts undone: {row['measured_s']:8.1f} s -> {row['projected_s']:8.1f} s")
    lines.append(f"  cached computations {ledger['measured_s'] / 60:.1f} min; the whole target design "
                 f"≈ {ledger['projected_s'] / 60:.1f} min of computation on this machine")
    if wall_ratio is not None and wall_ratio < 0.99:
        lines.append(f"  (entries' seconds include the sharing of the cores by notebooks run at once; at this "
                     f"build's wall/sum ratio {wall_ratio:.2f} the target ≈ {wall_ratio * ledger['projected_s'] / 60:.0f}"
                     f" min of wall clock)")
    if "floor_s" in ledger:
        lines.append("  " + floor_sentence(ledger))
    return "\n".join(lines)


#: The wall clock a cold quick build may take (the book's budget on two cores).
BUILD_BUDGET_MIN = 30


def floor_sentence(ledger: dict) -> str:
    """What the target's lesions and visualizations need at their FLOP floor, against the build's budget."""
    rates = ", ".join(f"{precision} {rate / 1e9:.0f} GFLOP/s" for precision, rate in ledger["rates"].items())
    per_arch = ", ".join(f"{arch} {row['floor_s'] / 60:.1f}" for arch, row in ledger["by_arch"].items())
    floor_min, tables_min = ledger["floor_s"] / 60, ledger["tables_floor_s"] / 60

    def verdict(minutes: float) -> str:
        return (f"more than the {BUILD_BUDGET_MIN} minutes the whole cold build may take" if minutes > BUILD_BUDGET_MIN
                else f"{100 * minutes / BUILD_BUDGET_MIN:.0f} % of the {BUILD_BUDGET_MIN} minutes the whole cold "
                     "build may take, before training, clustering and the other chapters")

    return (f"At their FLOP floor (useful FLOPs at this machine's matmul rates, measured by this build: {rates}; "
            f"no engine doing this arithmetic runs them faster here), the lesions and visualizations of the paper's Tables 7 and 8 alone would take at "
            f"least {tables_min:.1f} min at the target, {verdict(tables_min)}; with every chapter's tests at the "
            f"target sizes, at least {floor_min:.1f} min ({per_arch} min), {verdict(floor_min)}.")


def cost_table(logs: Path, names: list[str], shares: dict | None = None) -> str:
    """The cost table as aligned text: one line per notebook, one column per stage."""
    rows = cost_rows(logs, names, shares)
    # stages in the order they first ran (the pipeline's order), the cache counts last
    last = ["cache", "peak memory"] + ([f"{kind} floor" for kind in FLOOR_KINDS] if shares is not None else [])
    stages = list(dict.fromkeys(stage for row in rows.values() for stage in row if stage not in last)) + last
    widths = [max([len("notebook")] + [len(n) for n in rows])] + \
        [max([len(s)] + [len(row.get(s, "-")) for row in rows.values()]) for s in stages]
    lines = ["[build_book] cost per notebook and stage (computed in this build or read from cache)"]
    header = ["notebook"] + stages
    lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for name, row in rows.items():
        cells = [name] + [row.get(stage, "-") for stage in stages]
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths)))
    return "\n".join(lines)


# --------------------------------------------------------------------------- manifest

def package_versions(names=PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape the results (absent ones left out)."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_state(root: Path) -> dict:
    """The checkout's commit and whether it had uncommitted changes (None outside git)."""
    def git(*args):
        result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def profile_sizes(parameters: dict) -> dict:
    """The profile's fields with the ``-p`` overrides applied (``{}`` if lsnb cannot say)."""
    try:
        from lsnb.profiles import get_profile
        sizes = get_profile(parameters.get("profile", "quick")).to_dict()
    except (ImportError, ValueError, AttributeError):
        sizes = {}
    sizes.update({k: v for k, v in parameters.items() if k != "profile"})
    return json.loads(json.dumps(sizes, default=str))


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def notebook_record(logs: Path, name: str, seconds: float | None) -> dict:
    """One notebook's part of the manifest: stages, cache keys, downloads."""
    records = read_jsonl(Path(logs) / f"{name}.cache.jsonl")
    cache = [r for r in records if r.get("kind") != "data"]
    data = [r for r in records if r.get("kind") == "data"]
    return {"seconds": seconds, "peak_mib": peak_mib(logs, name),
            "stages": read_jsonl(Path(logs) / f"{name}.stage.jsonl"),
            "stage_totals": notebook_stages(logs, name),
            "cache": [{k: r.get(k) for k in ("kind", "key", "status", "seconds")} for r in cache],
            "computed": sum(r.get("status") == "computed" for r in cache),
            "hits": sum(r.get("status") == "hit" for r in cache),
            "data": [{k: r.get(k) for k in ("key", "source", "describe", "arrays")} for r in data]}


def build_manifest(root: Path, logs: Path, names: list[str], parameters: dict,
                   times: dict[str, float], ledger: dict | None = None, shares: dict | None = None,
                   rate: float | None = None, execution: dict | None = None) -> dict:
    """Everything needed to say how this build was made (see the module docstring)."""
    sizes = profile_sizes(parameters)
    downloads = Path(logs).parent / "downloads"
    record = write_record(downloads) if downloads.exists() else []
    precision = read_precision(downloads) if downloads.exists() else []
    files = sorted(p for p in downloads.rglob("*") if p.is_file()) if downloads.exists() else []
    return {"built": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "git": git_state(root), "packages": package_versions(), "profile": parameters.get("profile"),
            "parameters": json.loads(json.dumps(parameters, default=str)), "sizes": sizes,
            "seeds": {k: v for k, v in sizes.items() if "seed" in k.lower()},
            "data_sources": {k: sizes[k] for k in ("data_source", "vgg_data", "n_train", "n_test") if k in sizes},
            "notebooks": {name: notebook_record(logs, name, times.get(name)) for name in names},
            "downloads": {str(p.relative_to(downloads)): file_sha256(p) for p in files},
            "record": record, "precision": precision, "design": ledger, "matmul_rate": rate, "floor_shares": shares, "execution": execution or {}}


def _markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


STAGE_CHART = "built_stages.png"


def _stage_totals(manifest: dict) -> dict[str, dict]:
    """Notebook -> its ``stage_totals`` (:func:`notebook_stages`) as the manifest holds them."""
    return {name: record.get("stage_totals") or {} for name, record in manifest["notebooks"].items()}


def built_page(manifest: dict, chart: str | None = None) -> str:
    """The Markdown of "How this book was built", filled from ``manifest``.

    ``chart``: the file name (next to the page) of the stacked bar chart of
    :func:`stage_costs.write_stage_chart`, shown under the table of stages.
    """
    git = manifest["git"]
    commit = f"`{git['commit']}`" + (" (with uncommitted changes)" if git.get("dirty") else "") \
        if git.get("commit") else "not a git checkout"
    parts = ["# How this book was built", "",
             f"Built {manifest['built']} from commit {commit}, profile `{manifest['profile']}`. "
             "The same record, machine-readable: {download}`manifest.json <manifest.json>` "
             "(also at the site's root).", "",
             "## Time per notebook and stage", "",
             "Seconds each notebook spent in each stage (summed over the stage's runs), with row and column "
             "totals; *(x s cached)*: the part of those seconds spent reading stored results (cache hits); "
             "the rest was computed in this build.", ""]
    parts += [_markdown_table(*totals_table(_stage_totals(manifest))), ""]
    if chart:
        parts += [f"![Seconds per notebook, stacked by stage]({chart})", ""]
    parts += ["## Cost of each notebook", ""]
    rows = []
    for name, record in manifest["notebooks"].items():
        seconds = f"{record['seconds']:.1f}" if record["seconds"] is not None else "-"
        peak = f"{record['peak_mib']:.0f}" if record.get("peak_mib") is not None else "-"
        share = (manifest.get("floor_shares") or {}).get(name, {})
        floor = ", ".join(f"{kind} {100 * v:.0f} %" for kind, v in share.items()) or "-"
        rows.append([name, seconds, peak, record["computed"], record["hits"], floor])
    total = sum(r["seconds"] or 0 for r in manifest["notebooks"].values())
    peaks = [r["peak_mib"] for r in manifest["notebooks"].values() if r.get("peak_mib") is not None]
    parts += [_markdown_table(["notebook", "seconds", "peak memory (MiB)", "computed", "cache hits",
                               "FLOP-floor share"], rows), "",
              "*FLOP-floor share*: of the lesion and visualization results computed in this build, the time "
              "their useful FLOPs take at this machine's matmul rate"
              + (f" ({manifest['matmul_rate'] / 1e9:.0f} GFLOP/s)" if manifest.get("matmul_rate") else "")
              + " over the time they took (100 % = at the floor).", "",
              f"Notebook time {total / 60:.1f} min"
              + (f"; peak memory of any notebook {max(peaks):.0f} MiB." if peaks else "."), ""]
    run = manifest.get("execution") or {}
    if run:
        parts += [f"Executed {run.get('jobs', 1)} notebook(s) at a time: {run['wall_s'] / 60:.1f} min of wall "
                  f"clock; the build's processes together peaked at {run['peak_mib']:.0f} MiB.", ""]
    parts += record_section(manifest.get("record"))
    parts += precision_section(manifest.get("precision"))
    parts += design_section(manifest.get("design"))
    parts += ["## Profile and sizes", "",
              _markdown_table(["setting", "value"], [[k, f"`{v}`"] for k, v in manifest["sizes"].items()]), "",
              "## Packages", "",
              _markdown_table(["package", "version"], [[k, v] for k, v in manifest["packages"].items()]), ""]
    data = [[name, d["describe"], arr, f"`{sha}`"] for name, record in manifest["notebooks"].items()
            for d in record.get("data", []) for arr, sha in (d.get("arrays") or {}).items()]
    parts += ["## Data", "", "Every dataset each notebook loaded, with the SHA-256 of each array it used.", "",
              _markdown_table(["notebook", "dataset", "array", "sha256"], data) if data else "No dataset was logged.",
              "", "## Cache keys", "", "Every cached result each notebook read (hit) or wrote (computed).", ""]
    keys = [[name, c["kind"], f"`{c['key']}`", c["status"]] for name, record in manifest["notebooks"].items()
            for c in record["cache"]]
    parts += [_markdown_table(["notebook", "kind", "key", "status"], keys) if keys else "No cached calls.", ""]
    if manifest["downloads"]:
        parts += ["## Result files (SHA-256)", "",
                  _markdown_table(["file", "sha256"], [[k, f"`{v}`"] for k, v in manifest["downloads"].items()]), ""]
    return "\n".join(parts)


def record_section(record: list | None) -> list[str]:
    """The page's "Experiment record" section: one row per network and replicate, and its warnings."""
    if not record:
        return []
    columns = ["network", "replicate", "train_examples", "test_accuracy", "paper_accuracy_band", "test_per_class",
               "vis_steps", "vis_convergence", "se_df", "pages"]
    rows = [[row.get(c, "") for c in columns] for row in record]
    warned = [f"- **{row['network']}, replicate {row['replicate']}**: {row['warnings']}"
              for row in record if row.get("warnings")]
    return ["## Experiment record", "",
            "What every result of the book rests on, per network and replicate (all pages together: "
            "{download}`record.csv <downloads/record.csv>`; each page shows its own rows under its tables).", "",
            _markdown_table(columns, rows), "",
            *(["Weak rows, page by page:", "", *warned, ""] if warned else ["No row rests on anything weak.", ""])]


def read_precision(downloads: Path) -> list[dict]:
    """The rows of the pages' precision checks (``*_precision.csv``; empty without any)."""
    import pandas as pd

    frames = [pd.read_csv(path) for path in sorted(Path(downloads).rglob("*_precision.csv"))]
    if not frames:
        return []
    return json.loads(pd.concat(frames, ignore_index=True).to_json(orient="records"))


def precision_section(rows: list | None) -> list[str]:
    """The page's "Arithmetic precision" section: bfloat16 against float32 (nothing without a check)."""
    if not rows:
        return []
    columns = ["network", "training", "test_accuracy", "float32_twin_accuracy", "accuracy_band", "vis_precision",
               "vis_steps", "vis_groups", "vis_spearman", "vis_median_ratio", "vis_max_difference"]
    def cell(column: str, value) -> str:
        if value is None:
            return "-"
        if column == "vis_max_difference":
            return f"{100 * value:.1f} %"
        if isinstance(value, float) and column in ("test_accuracy", "float32_twin_accuracy", "vis_spearman",
                                                    "vis_median_ratio"):
            return f"{value:.3f}"
        return str(value)

    table = [[cell(c, row.get(c)) for c in columns] for row in rows]
    return ["## Arithmetic precision", "",
            "Lesions always run in float32 and give the naive path's counts.  Training and the visualization "
            "steps ran in the precision below.  `float32_twin_accuracy` is a twin of the first replicate "
            "trained in float32 from the same seed on the same batches (`-` where none was trained).  "
            "`vis_spearman` is the rank correlation of sampled subclusters' visualization scores, optimised in "
            "`vis_precision` and in float32 from the same images, and `vis_max_difference` the largest "
            "relative difference of one subcluster's two scores "
            "(`lsnb.featvis.convergence.precision_agreement`; chapter 09 shows the same table).", "",
            _markdown_table(columns, table), ""]


def write_record(downloads: Path) -> list[dict]:
    """Merge the pages' ``*_record.csv`` into ``downloads/record.csv``; its rows (empty without any)."""
    from lsnb.record import merge_records

    paths = sorted(Path(downloads).rglob("*_record.csv"))   # each page saves into its own folder
    if not paths:
        return []
    merged = merge_records(paths)
    merged.to_csv(Path(downloads) / "record.csv", index=False)
    return json.loads(merged.to_json(orient="records"))


def design_section(ledger: dict | None) -> list[str]:
    """The page's "What this design cuts" section (nothing without a ledger)."""
    if not ledger or not ledger.get("cuts"):
        return []
    from lsnb.costs import describe_size

    full = ledger.get("full_test_images")
    names = {"replicates": "replicates", "n_test": "lesion test images", "featvis_steps": "visualization steps",
             "train_examples": "training examples (real + augmented)", "k_values": "k values (Tables 5, 6)"}
    rows = [[c["arch"], names.get(c["size"], c["size"]), describe_size(c["size"], c["target"], full),
             describe_size(c["size"], c["chosen"], full), f"{c['measured_s']:.0f}", f"{c['projected_s']:.0f}"]
            for c in ledger["cuts"]]
    arch_rows = [[arch, f"{r['measured_s'] / 60:.1f}", f"{r['projected_s'] / 60:.1f}"]
                 for arch, r in ledger["by_arch"].items()]
    return ["## What this design cuts, and what it would cost", "",
            "The target is the paper's statistical design (5 replicates of the MLP and the CNN, 2 of each VGG, "
            "every test digit in every lesion test, 100 visualization steps, 60,000 training examples; "
            "`lsnb.profiles.TARGET_DESIGN`). "
            "Two cores cannot run it in 30 minutes, so this profile cuts the sizes below.  *Measured* is the "
            "seconds that the computations a size scales took in this cache; *at the target* is that time "
            "scaled to the target size (lesions in proportion to test images and replicates, visualizations "
            "to steps and replicates, training and clustering to replicates; a missing k costs what k = 8 "
            "cost): a projection from measured rates, not a measurement.", "",
            _markdown_table(["network", "size", "target", "chosen", "measured (s)", "at the target (s)"], rows), "",
            _markdown_table(["architecture", "measured (min)", "every cut undone (min)"], arch_rows), "",
            *([floor_sentence(ledger), ""] if "floor_s" in ledger else []),
            f"All cached computations took {ledger['measured_s'] / 60:.1f} min; the whole target design "
            f"would take about {ledger['projected_s'] / 60:.0f} min of computation on this machine"
            + (f" (entries' seconds include the sharing of the cores by the notebooks run at once; at this "
               f"build's ratio of wall clock to summed notebook time, {ledger['wall_ratio']:.2f}, about "
               f"{ledger['wall_ratio'] * ledger['projected_s'] / 60:.0f} min of wall clock)."
               if ledger.get("wall_ratio") and ledger["wall_ratio"] < 0.99 else "."), ""]


def write_built_page(manifest: dict, page: Path, manifest_path: Path) -> None:
    """Write ``manifest.json``, the page built from it and the page's chart of stages (next to it)."""
    Path(manifest_path).parent.mkdir(parents=True, exist_ok=True)
    Path(manifest_path).write_text(json.dumps(manifest, indent=2, default=str))
    chart = write_stage_chart(_stage_totals(manifest), Path(page).parent / STAGE_CHART)
    Path(page).write_text(built_page(manifest, chart.name))
