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
    cfg = with_absolute_paths(cfg)  # the tasks' working folder is Ray's, not this one
    data_dir = Path(data_dir).resolve()
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=engine.address, include_dashboard=False,
                     runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [
                         os.environ.get("PYTHONPATH"), os.getcwd()]))}})  # a user's module:function scorer, as here
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise PHFError(f"cannot reach the Ray cluster at {engine.address}: {e}") from None
    try:
        check_fits(engine)
        tasks = engine.tasks or earlier_tasks(data_dir) or slots(engine)
        print(f"scoring in {tasks} tasks on Ray ({engine.cpus_per_task} CPU, {engine.gpus_per_task} GPU each); "
              f"parts in {data_dir / 'parts'}", flush=True)
        score = ray.remote(_score_part).options(num_cpus=engine.cpus_per_task, num_gpus=engine.gpus_per_task,
                                                max_retries=RETRIES)
        parts = [part_folder(data_dir, i, tasks) for i in range(tasks)]
        pending = [score.remote(cfg, str(folder), i, tasks, engine.cpus_per_task, engine.gpus_per_task > 0)
                   for i, folder in enumerate(parts)]
        try:
            ray.get(pending)
        except ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, PHFError):  # a bad setting or input: its own one line
                raise e.cause from None
            raise
        except ray.exceptions.RayError as e:  # a process or node lost more often than Ray retries, out of memory
            raise PHFError(f"a scoring task failed ({type(e).__name__}: {' '.join(str(e).split())[:300]}); the "
                           "finished shards are kept in the parts: the same command goes on from them") from None
    finally:
        if started:
            ray.shutdown()
    return merge_scored(parts, data_dir)


def with_absolute_paths(cfg):
    """The config with its local corpus and scorer model as absolute paths, found from any working folder."""
    from phf.data.corpus import EMBEDDED

    def absolute(value: str | None) -> str | None:  # ("stdlib" names the embedded corpus, whatever folder is here)
        return str(Path(value).resolve()) if value and value != EMBEDDED and Path(value).exists() else value

    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"corpus": absolute(cfg.data.corpus)}),
                                  "scorer": cfg.scorer.model_copy(update={"model": absolute(cfg.scorer.model)})})


def check_fits(engine: Engine) -> None:
    """A task no node can hold would wait for one forever: refused instead."""
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    for kind, wanted in (("CPU", engine.cpus_per_task), ("GPU", engine.gpus_per_task)):
        most = max((resources.get(kind, 0) for resources in nodes), default=0)
        if wanted > most:
            raise PHFError(f"a task asks for {wanted:g} {kind}s, and the largest node of the Ray cluster has "
                           f"{most:g}: lower --{kind.lower()}s-per-task")


def earlier_tasks(data_dir: Path) -> int | None:
    """The number of tasks of an earlier run into `data_dir` (its parts are named by it), so that running the same
    command again on a cluster of another size goes on from them."""
    found = {int(p.name.partition("of")[2]) for p in (data_dir / "parts").glob("*of*") if p.is_dir()}
    return found.pop() if len(found) == 1 else None


def slots(engine: Engine) -> int:
    """Tasks the cluster runs at once: its GPUs or its CPUs, by what each task takes."""
    resources = ray.cluster_resources()
    if engine.gpus_per_task:
        return max(1, int(resources.get("GPU", 0) // engine.gpus_per_task))
    return max(1, int(resources.get("CPU", 1) // engine.cpus_per_task))


def _score_part(cfg, folder: str, part: int, parts: int, cores: int, gpus: bool) -> None:
    """One task: its part, scored with its cores and its GPUs where it was given some (Ray sets
    CUDA_VISIBLE_DEVICES to them; a task given none scores on the CPU, leaving the node's GPUs to others). On GPUs
    or one core, in this process; on several cores without a GPU, by as many processes, as single-threaded
    scorers (pycodestyle, spaCy's NER) use more than one core only that way."""
    from phf.data.scoring import score_corpus

    os.environ["OMP_NUM_THREADS"] = str(cores)  # before the scorer starts torch's or spaCy's threads
    scorer = {"device": "cpu", "num_workers": cores} if not gpus else {}
    cfg = cfg.model_copy(update={"scorer": cfg.scorer.model_copy(update=scorer)})
    score_corpus(cfg, Path(folder), (part, parts), in_process=gpus or cores == 1)
