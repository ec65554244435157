"""`phf score --executor ray`: the corpus scored as N tasks on a Ray cluster (this machine's own, or one started on
Slurm, Kubernetes or a cloud), the engine of NeMo Curator's and DCLM's pipelines; why Ray and not datatrove's
executors: docs/scoring.md.

Task i of N scores part i of the corpus (`phf score --shard i/N`) into its own folder, `DATA/parts/iofN/`, in one
process with the cores and GPUs Ray gives it: Ray schedules and places the tasks and runs again a task whose process
died (a killed worker, a lost node), which keeps the shards it finished. When every task is done, the parts are
gathered into `DATA/scored/` (hard links), checked as `phf score --merge` checks them: the layout `phf train` reads.
The same command run again redoes only what is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from phf.errors import PHFError
from phf.extras import needs

with needs("ray", "phf score --executor ray"):
    import ray

# Ray runs a task again when its process dies (not when it raises: a bad setting fails the same way twice).
RETRIES = 3


@dataclass(frozen=True)
class Engine:
    """Where the tasks run: `address` (None: a Ray instance started on this machine; "auto": the cluster this node
    belongs to; ray://HOST:10001), `tasks` (parts of the corpus; None: one per slot of the cluster), and what each
    task takes from the cluster."""

    address: str | None = None
    tasks: int | None = None
    cpus_per_task: int = 1
    gpus_per_task: float = 0


def part_folder(data_dir: Path, part: int, parts: int) -> Path:
    return Path(data_dir) / "parts" / f"{part}of{parts}"


def score_on_engine(cfg, data_dir: Path, engine: Engine) -> dict:
    """Score the corpus as tasks on Ray and gather the parts into `data_dir/scored`; the report."""
    from phf.data.corpus import Corpus
    from phf.data.scoring import merge_scored

    Corpus.from_config(cfg.data)  # a missing corpus is said here, before Ray starts
    data_dir = Path(data_dir).resolve()  # the tasks' working folder is Ray's, not this one
    started = not ray.is_initialized()
    if started:
        ray.init(address=engine.address, include_dashboard=False,
                 runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [
                     os.environ.get("PYTHONPATH"), os.getcwd()]))}})  # a user's module:function scorer, as here
    try:
        tasks = engine.tasks or slots(engine)
        print(f"scoring in {tasks} tasks on Ray ({engine.cpus_per_task} CPU, {engine.gpus_per_task} GPU each); "
              f"parts in {data_dir / 'parts'}", flush=True)
        score = ray.remote(_score_part).options(num_cpus=engine.cpus_per_task, num_gpus=engine.gpus_per_task,
                                                max_retries=RETRIES)
        parts = [part_folder(data_dir, i, tasks) for i in range(tasks)]
        pending = [score.remote(cfg, str(folder), i, tasks, engine.cpus_per_task) for i, folder in enumerate(parts)]
        try:
            ray.get(pending)
        except ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, PHFError):  # a bad setting or input: its own one line
                raise e.cause from None
            raise
        except ray.exceptions.WorkerCrashedError as e:
            raise PHFError(f"a scoring task's process died {RETRIES + 1} times ({e}); the finished shards are kept "
                           "in the parts: the same command goes on from them") from None
    finally:
        if started:
            ray.shutdown()
    return merge_scored(parts, data_dir)


def slots(engine: Engine) -> int:
    """Tasks the cluster runs at once: its GPUs or its CPUs, by what each task takes."""
    resources = ray.cluster_resources()
    if engine.gpus_per_task:
        return max(1, int(resources.get("GPU", 0) // engine.gpus_per_task))
    return max(1, int(resources.get("CPU", 1) // engine.cpus_per_task))


def _score_part(cfg, folder: str, part: int, parts: int, threads: int) -> None:
    """One task: its part, scored in this process with its cores (Ray sets CUDA_VISIBLE_DEVICES to its GPUs)."""
    from phf.data.scoring import score_corpus

    os.environ["OMP_NUM_THREADS"] = str(threads)  # before the scorer starts torch's or spaCy's threads
    score_corpus(cfg, Path(folder), (part, parts), in_process=True)
