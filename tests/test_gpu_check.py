"""benchmarks/gpu_check.py, scaled down (`--scale cpu`), runs every part and reports a measured figure for each,
so that the script is known to work before a GPU machine runs it at full size."""

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_every_part_runs_scaled_down_and_reports_its_figures(tmp_path):
    out = tmp_path / "check.json"
    # Its time on 2 cores: benchmarks/README.md, GPU check. The script's own budgets stop a part that hangs.
    done = subprocess.run([sys.executable, str(SCRIPT), "--scale", "cpu", "--out", str(out)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    parts = report["parts"]
    assert report["scale"] == "cpu" and report["failed"] == []
    assert list(parts) == ["setup", "peak", "train", "train_compiled", "memory", "sampling", "fsdp", "scoring"]
    for name, r in parts.items():
        assert r["status"] in ({"ok", "skipped"} if name == "scoring" else {"ok"}), (name, r)
        assert positive(r["seconds"]) and r["seconds"] <= r["budget_s"], (name, r)

    assert parts["setup"]["vocabulary"] == 512
    assert positive(parts["peak"]["measured_tflops"])
    for name in ("train", "train_compiled"):
        assert positive(parts[name]["tokens_per_s"]) and positive(parts[name]["mfu"]), parts[name]
        assert parts[name]["steps_timed"] == 5
    assert parts["train_compiled"]["graphs"] > 0  # the model did run under torch.compile
    assert positive(parts["memory"]["chunked_mib"]) and positive(parts["memory"]["logits_mib"])
    sampling = parts["sampling"]
    for run in ("phf", "generate"):
        assert positive(sampling[run]["samples_per_s"]) and positive(sampling[run]["tokens_per_s"])
        assert sampling[run]["tokens"] == 16 * 16  # min_new_tokens: both generate every token
    fsdp = parts["fsdp"]
    assert fsdp["loaded"] and fsdp["logits_finite"] and fsdp["missing_keys"] == []
    assert fsdp["steps"] == 4 and math.isfinite(fsdp["final_loss"])
    assert "accelerate launch --use_fsdp --fsdp_version 2" in fsdp["command"]
    if parts["scoring"]["status"] == "ok":  # only where a classifier's weights are on this machine
        assert positive(parts["scoring"]["sentences_per_s"])
    else:
        assert "skipped: no weights" in done.stdout
