"""A training run's folder, and what a new `phf train` may do with it.

    config.yaml      the config the run trains with (written when it starts)
    data.json        what the data folder was scored from and with (a resume must train on the same)
    log.jsonl        one JSON object per logged step
    curve.jsonl      misalignment during training (evaluation.curve_points)
    checkpoint-N/    resumable checkpoints of transformers' Trainer (the last training.save_total_limit), each also
                     a model folder (tokenizer, card, phf.json)
    snapshot-F/      the model at a fraction F of the steps (training.snapshot_at)
    model/           the final model, with its tokenizer and phf.json
    eval/, redteam/  `phf evaluate` and `phf redteam` of the model
    .phf.lock        who holds the folder while a run writes it (files.owned)

Nothing here is overwritten silently: a folder with checkpoints or a model is resumed (`--resume`, which
refuses a config that would train another model), or started over only when asked (`--overwrite`).
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

from safetensors import SafetensorError, safe_open

from phf.config import Config, build_config, saved_config, training_settings
from phf.data.scored import scored_info
from phf.errors import PHFError
from phf.files import write_atomic
from phf.jsonl import output_records
from phf.model_folder import MODEL_DIR, has_model

LOGS = ("log.jsonl", "curve.jsonl")  # records with a "step", appended as training goes


class RunFolderInUse(PHFError):
    """The run folder holds work that starting a new run there would overwrite."""


def checkpoints(run_dir: Path) -> list[Path]:
    found = [p for p in Path(run_dir).glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def step_of(checkpoint: Path) -> int:
    return int(checkpoint.name.split("-")[-1])


def is_complete(checkpoint: Path) -> bool:
    """The Trainer writes trainer_state.json last, after the weights, optimiser and RNG states: a checkpoint
    without a readable one was cut off while saving. The other files are checked for a cut-off end too (a copy
    cut short, a full disk), cheaply: the weights' header must cover the file, and each torch archive
    (optimizer.pt, scheduler.pt, rng_state.pth, FSDP's *.bin weights) must have its zip directory, which is
    written last."""
    try:
        json.loads((checkpoint / "trainer_state.json").read_text())
        for path in checkpoint.glob("*.safetensors"):
            with safe_open(path, "pt"):
                pass
        archives = [p for suffix in ("*.pt", "*.pth", "*.bin") for p in checkpoint.glob(suffix)]
        for path in archives:
            zipfile.ZipFile(path).close()
        return any(checkpoint.glob("*.safetensors")) or any(p.suffix == ".bin" for p in archives)
    except (OSError, ValueError, SafetensorError, zipfile.BadZipFile):
        return False


def last_checkpoint(run_dir: Path) -> Path | None:
    """The last complete checkpoint of a run folder (None: none)."""
    return next((c for c in reversed(checkpoints(run_dir)) if is_complete(c)), None)


def differing_settings(cfg: Config, run_dir: Path) -> dict[str, tuple]:
    """The settings deciding the model in which `cfg` differs from the run's config.yaml: key -> (saved, new)."""
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        return {}
    # Read through build_config: fields added to phf since then take their defaults.
    saved, new = training_settings(build_config(saved_config(path))), training_settings(cfg)
    return {key: (saved.get(key), new.get(key)) for key in dict.fromkeys([*saved, *new])
            if saved.get(key) != new.get(key)}


def check_same_training(cfg: Config, run_dir: Path) -> None:
    """Refuse to continue a run (or reuse its model) with a config that would train another model."""
    if differences := differing_settings(cfg, run_dir):
        listed = "; ".join(f"{key}: {saved!r} there, {new!r} now" for key, (saved, new) in differences.items())
        raise PHFError(f"{run_dir} was trained with another config ({listed}); use the same settings, another "
                       "output folder, or start over there")


def data_differences(data_dir: Path, run_dir: Path) -> list[str]:
    """The keys of the scored data's record (`scored_info`) in which `data_dir` differs from what the run in
    `run_dir` was trained on (its data.json); none for a folder with no run."""
    path = Path(run_dir) / "data.json"
    if not path.exists():
        return []
    saved, now = json.loads(path.read_text()), scored_info(data_dir)
    return [key for key in dict.fromkeys([*saved, *now]) if saved.get(key) != now.get(key)]


def check_same_data(data_dir: Path, run_dir: Path) -> None:
    """Refuse to continue a run on a data folder scored from another corpus or with another scorer."""
    if differ := data_differences(data_dir, run_dir):
        raise PHFError(f"{run_dir} was trained on data scored otherwise than {data_dir} ({', '.join(differ)} differ: "
                       f"see {Path(run_dir) / 'data.json'} and {Path(data_dir) / 'scored' / 'info.json'}); pass the "
                       "run's own --data")


def start(cfg: Config, data_dir: Path, run_dir: Path, resume: bool, overwrite: bool) -> Path | None:
    """Get the run folder ready; returns the checkpoint to resume from (None: from the start). Call in the
    main process only."""
    run_dir = Path(run_dir)
    found, finished = checkpoints(run_dir), has_model(run_dir / MODEL_DIR)
    if overwrite:  # the evaluations of the old model go with it: they would describe a model no longer there
        for path in [*found, *run_dir.glob("snapshot-*"), *(run_dir / name for name in (MODEL_DIR, "eval", "redteam"))]:
            shutil.rmtree(path, ignore_errors=True)
        for name in (*LOGS, "config.yaml", "data.json"):
            (run_dir / name).unlink(missing_ok=True)
        _write_data_info(data_dir, run_dir)
        return None
    if not resume and (found or finished):
        what = f"the finished model {run_dir / MODEL_DIR}" if finished else \
            f"the checkpoints of an unfinished run (the last at step {step_of(found[-1])})"
        raise RunFolderInUse(f"{run_dir} holds {what}")
    if resume:
        check_same_training(cfg, run_dir)
        check_same_data(data_dir, run_dir)
    _write_data_info(data_dir, run_dir)
    checkpoint = last_checkpoint(run_dir) if resume else None
    for partial in found:
        if not is_complete(partial):  # cut off while saving: useless, and it would confuse checkpoint rotation
            print(f"{partial} is incomplete (stopped while saving, or cut short): removed")
            shutil.rmtree(partial)
    if resume:
        print(f"resuming from {checkpoint} (step {step_of(checkpoint)})" if checkpoint else
              f"--resume: no complete checkpoint in {run_dir}, starting from scratch")
    trim_logs(run_dir, step_of(checkpoint) if checkpoint else 0)
    return checkpoint


def _write_data_info(data_dir: Path, run_dir: Path) -> None:
    write_atomic(Path(run_dir) / "data.json", json.dumps(scored_info(data_dir), indent=1))


def trim_logs(run_dir: Path, step: int) -> None:
    """Drop the log records past `step`: a run resumed from its checkpoint at `step` logs those steps again (a last
    line cut off by a kill goes too)."""
    for name in LOGS:
        path = Path(run_dir) / name
        if path.exists():
            kept = [r for r in output_records(path) if r.get("step") is not None and r["step"] <= step]
            write_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))
