"""pyproject.toml and environment.yml must name the same packages and versions."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _normalise(requirement: str) -> str:
    requirement = requirement.split(";")[0].strip()
    name, spec = re.match(r"([A-Za-z0-9_.\-\[\]]+)\s*(.*)", requirement).groups()
    return f"{name.lower().replace('_', '-')}{spec.replace(' ', '')}"


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["book"]) \
        | set(project["optional-dependencies"]["test"]) | set(project["optional-dependencies"]["lucid"]) \
        | set(project["optional-dependencies"]["torch"])
    # On Linux (and in conda) the CPU wheel stands for TensorFlow.
    wanted = {_normalise(r) for r in wanted if "sys_platform != 'linux'" not in r}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert {_normalise(r) for r in pip_section} == wanted
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])


def test_book_extra_pins_jupyter_book_1():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "jupyter-book>=1.0,<2" in project["optional-dependencies"]["book"]
