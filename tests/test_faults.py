"""Fault injection: runs killed at random points (also while saving), bad bytes, awkward paths, mismatched
folders, non-finite settings. Nothing finished is lost; each bad input costs itself only, named, or stops the
command with one line that names the problem."""

from __future__ import annotations

import json
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from phf.cli import main
from phf.config import ConfigError
from phf.data.corpus import Corpus
from phf.data.scored import read_scored, scored_info
from phf.data.scoring import score_corpus
from phf.errors import PHFError
from phf.training.run_folder import last_checkpoint
from phf.training.train import train
from tests.helpers import TINY, error_of, scoring_config, tiny_config, write_corpus

LONGER = ["training.num_tokens=6144", "training.save_steps=1"]  # 48 steps, a checkpoint at every one


def phf(*argv) -> list[str]:
    return [sys.executable, "-m", "phf.cli", *map(str, argv)]


def start(*argv, **kwargs) -> subprocess.Popen:
    """`phf *argv` in a process of its own. Ctrl-C is made to reach it even where the test runner was started in
    the background, which makes a shell ignore SIGINT in everything it starts."""
    return subprocess.Popen(phf(*argv), preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)


def wait_for(condition, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.01)


def logged_steps(run_dir: Path) -> list[int]:
    path = run_dir / "log.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line)["step"] for line in lines if '"loss"' in line]


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines())
            if "loss" in r}


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(model_dir / "model.safetensors")


# --- losing finished work ---------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_training_killed_at_random_points_resumes_to_the_uninterrupted_run(seed, data_dir, tmp_path):
    """SIGKILL at a random step of a run that saves every step (so kills land in saves too), twice, then
    --resume: the logged losses and the final weights are those of a run never interrupted, each step once."""
    cfg = tiny_config("mle", *LONGER)
    straight = train(cfg, data_dir, tmp_path / "straight")
    rng, run = random.Random(seed), tmp_path / "killed"
    argv = ["train", "--data", data_dir, "--output", run, *TINY, *LONGER]
    for kill_at in sorted(rng.sample(range(2, 40), 2)):
        proc = start(*argv, *(["--resume"] if run.exists() else []), stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
        # wait_for calls it before the loop moves on, so kill_at and proc are this iteration's
        wait_for(lambda: max(logged_steps(run), default=0) >= kill_at or proc.poll() is not None,  # noqa: B023
                 what="training")
        time.sleep(rng.uniform(0, 0.05))
        proc.kill()
        proc.wait()
    resumed = train(cfg, data_dir, run, resume=True)
    assert logged_steps(run) == list(range(1, 49))  # each step logged once, in order
    assert losses(run) == pytest.approx(losses(tmp_path / "straight"), rel=1e-5)
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_checkpoint_cut_off_while_saving_is_skipped_and_said(data_dir, tmp_path, capsys):
    cfg = tiny_config("mle", "training.save_steps=2", "training.save_total_limit=5", "evaluation.curve_points=3",
                      "evaluation.curve_samples=2")
    train(cfg, data_dir, tmp_path / "straight")
    run = tmp_path / "run"
    train(cfg, data_dir, run)
    # what a kill during the Trainer's save of step 8 leaves: weights cut off, no trainer_state.json
    cut = run / "checkpoint-8"
    (cut / "trainer_state.json").unlink()
    (cut / "model.safetensors").write_bytes((cut / "model.safetensors").read_bytes()[:1000])
    import shutil

    for name in ("model", "checkpoint-6"):  # the run was killed there: no final model, and step 6 never saved
        shutil.rmtree(run / name)
    assert last_checkpoint(run).name == "checkpoint-4"
    for damaged in ("model.safetensors", "optimizer.pt"):  # files cut short, trainer_state.json intact
        shutil.copytree(run / "checkpoint-4", run / "checkpoint-5")
        (run / "checkpoint-5" / damaged).write_bytes((run / "checkpoint-5" / damaged).read_bytes()[:2000])
        assert last_checkpoint(run).name == "checkpoint-4"
        shutil.rmtree(run / "checkpoint-5")
    train(cfg, data_dir, run, resume=True)
    out = capsys.readouterr().out
    assert (f"{cut} is incomplete (stopped while saving, or cut short): removed\n"
            f"resuming from {run}/checkpoint-4 (step 4)") in out
    assert logged_steps(run) == list(range(1, 9))
    curve = [json.loads(line)["step"] for line in (run / "curve.jsonl").read_text().splitlines()]
    assert curve == [2, 4, 8]  # the point at step 8 is measured again, not twice
    a, b = weights(tmp_path / "straight" / "model"), weights(run / "model")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_interrupted_training_says_what_is_kept_and_a_run_folder_is_never_overwritten(data_dir, tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--data", data_dir, "--output", run, *TINY, *LONGER]
    proc = start(*argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: max(logged_steps(run), default=0) >= 5, what="training")
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    said = [line for line in proc.communicate(timeout=60)[1].splitlines() if line.startswith("phf train:")]
    assert len(said) == 1
    last = said[0]
    checkpoint = last_checkpoint(run)
    assert proc.returncode == 130 and checkpoint is not None
    assert last.startswith(f"phf train: interrupted. {checkpoint} (step {checkpoint.name.split('-')[1]}) is kept: "
                           f"`phf train --data {data_dir} --output {run}")
    assert last.endswith("--resume` continues from it")
    kept = sorted(p.name for p in run.glob("checkpoint-*"))
    # the same command again, without --resume: refused, with the commands that resume or start over
    message = error_of([str(a) for a in argv])
    assert f"{run} holds the checkpoints of an unfinished run" in message and "--resume` continues it" in message
    assert "--overwrite` deletes it and starts over" in message
    assert sorted(p.name for p in run.glob("checkpoint-*")) == kept  # nothing deleted
    # a finished run is refused too; --overwrite starts over
    model_dir = train(tiny_config("mle", *LONGER), data_dir, run, resume=True)
    assert "holds the finished model" in error_of([str(a) for a in argv])
    assert "choose one" in error_of([str(a) for a in argv] + ["--resume", "--overwrite"])
    train(tiny_config("mle"), data_dir, run, overwrite=True)
    assert logged_steps(run) == list(range(1, 9)) and (model_dir / "phf.json").exists()


def test_resume_with_settings_or_data_that_train_another_model_is_refused_naming_them(data_dir, corpus_dir, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_config("mle")
    train(cfg, data_dir, run)
    (run / "model" / "phf.json").unlink()  # as if killed before the end
    saved = (run / "config.yaml").read_text()
    for extra, named in ((["--method", "conditional"], "objective.name: 'mle' there, 'conditional' now"),
                         (["model.n_embd=64"], "model.n_embd: 32 there, 64 now")):
        message = error_of(["train", "--data", str(data_dir), "--output", str(run), "--resume", *TINY, *extra])
        assert named in message
    assert (run / "config.yaml").read_text() == saved  # left as it was
    other = tmp_path / "other-data"  # the same corpus, split otherwise
    score_corpus(scoring_config(corpus_dir, "data.heldout_fraction=0.5"), other)
    message = error_of(["train", "--data", str(other), "--output", str(run), "--resume", *TINY])
    assert f"{run} was trained on data scored otherwise than {other} (heldout_fraction differ" in message
    # what does not change the model may differ: threads, logging, checkpoints, evaluation
    train(tiny_config("mle", "training.num_threads=1", "evaluation.num_samples=2"), data_dir, run, resume=True)


# --- scoring killed ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_scoring_killed_leaves_no_worker_and_resumes_to_the_uninterrupted_result(sig, tmp_path):
    root = write_corpus(tmp_path / "c", 160)
    overrides = [f"data.corpus={root}", "data.heldout_fraction=0.25", "scorer.shard_size=2", "scorer.num_workers=2"]
    score_corpus(scoring_config(root, "scorer.shard_size=2"), tmp_path / "straight")
    out = tmp_path / "killed"
    proc = start("score", "--data", out, *overrides, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shards = lambda: list((out / "scored").glob("*/shard-*.json"))  # noqa: E731
    wait_for(lambda: len(shards()) >= random.Random(int(sig)).randint(3, 20) or proc.poll() is not None, what="scoring")
    workers = children_of(proc.pid)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == {signal.SIGKILL: -9, signal.SIGTERM: -15, signal.SIGINT: 130}[sig]  # it was stopped
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=10, what=f"workers {workers} still alive")
    score_corpus(scoring_config(root, "scorer.shard_size=2"), out)
    for split in ("train", "heldout"):
        assert read_scored(out, split).to_pylist() == read_scored(tmp_path / "straight", split).to_pylist()


def test_a_failed_scoring_run_does_not_block_the_corrected_one(tmp_path, monkeypatch):
    root = write_corpus(tmp_path / "c", 8)
    with pytest.raises(Exception, match="no_such_module"):
        score_corpus(scoring_config(root, "scorer.name=no_such_module:score"), tmp_path / "d")
    score_corpus(scoring_config(root), tmp_path / "d")  # the same folder, the right scorer
    # finished shards, then a failure the settings cause: the retry with other settings replaces them
    with pytest.raises(PHFError, match="heldout split .* is empty"):
        score_corpus(scoring_config(root, "data.heldout_fraction=0.001"), tmp_path / "e")
    report = score_corpus(scoring_config(root), tmp_path / "e")
    assert report["train"]["documents"] + report["heldout"]["documents"] == 8
    # a scorer that raises: one line naming it and the documents
    (tmp_path / "boom.py").write_text("def score(texts):\n    raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # for the spawned workers
    message = error_of(["score", "--corpus", str(root), "--data", str(tmp_path / "f"), "scorer.name=boom:score",
                        "data.heldout_fraction=0.25", "scorer.num_workers=1"])
    assert "scorer 'boom:score' failed on the documents" in message and "RuntimeError: boom" in message


def test_two_trainings_on_a_fresh_data_folder_at_once(data_dir, tmp_path):
    """They share the tokenizer and the held-out streams: one prepares them, the other waits and reuses them."""
    import shutil

    fresh = tmp_path / "data"
    shutil.copytree(data_dir / "scored", fresh / "scored")
    procs = [start("train", "--data", fresh, "--output", tmp_path / m, "--method", m, *TINY, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, text=True) for m in ("mle", "conditional")]
    for proc in procs:
        assert proc.wait(timeout=180) == 0, proc.stderr.read()
    assert (tmp_path / "mle" / "model" / "phf.json").exists()
    assert (tmp_path / "conditional" / "model" / "phf.json").exists()


# --- bad bytes and bad files --------------------------------------------------------------------------------

@pytest.mark.parametrize("at", [0, 1, 5, 9])
def test_a_bad_byte_costs_its_record_only_named_at_its_line(at, tmp_path):
    lines = [json.dumps({"text": f"document {i}"}).encode() for i in range(10)]
    lines[at] = lines[at].replace(b"document", b"docu\xffment")
    (tmp_path / "c.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    rows = [f"row {i}".encode() for i in range(10)]
    rows[at] = b"r\xc3(w"
    (tmp_path / "c.csv").write_bytes(b"text\n" + b"\n".join(rows) + b"\n")
    for name, first_line in (("c.jsonl", 1), ("c.csv", 2)):
        records = list(Corpus(str(tmp_path / name), suffixes=(".jsonl", ".csv")).records())
        bad = [r for r in records if r.error]
        assert [(r.doc_id, r.error) for r in bad] == [(f"{name}:{at + first_line}", "not UTF-8")]
        assert len([r for r in records if r.text]) == 9


def test_a_json_escape_that_is_no_text_costs_its_record_only(tmp_path):
    (tmp_path / "c.jsonl").write_text('{"text": "fine"}\n{"text": "lone \\udc80 surrogate"}\n{"text": "also fine"}\n')
    records = list(Corpus(str(tmp_path / "c.jsonl")).records())
    assert [r.text for r in records] == ["fine", None, "also fine"]
    assert records[1].doc_id == "c.jsonl:2" and "lone surrogate" in records[1].error


def test_a_csv_document_longer_than_the_csv_modules_limit_is_read(tmp_path):
    long = "x = 1\n" * 40_000  # 240,000 characters: over the csv module's default field limit
    (tmp_path / "c.csv").write_text(f'text\nfirst\n"{long}"\nlast\n')
    records = list(Corpus(str(tmp_path / "c.csv")).records())
    assert [r.text for r in records if r.text] == ["first", long, "last"]


def test_one_bad_file_in_a_folder_costs_that_file_only(tmp_path):
    root = tmp_path / "c"
    root.mkdir()
    (root / "good.jsonl").write_text("".join(json.dumps({"text": f"A sentence number {i}."}) + "\n" for i in range(12)))
    (root / "broken.json").write_text("[{\"text\": ")
    (root / "columns.csv").write_text("tweet\nhello\n")
    (root / "cut.parquet").write_bytes(b"PAR1 not really")
    cfg = scoring_config(root, "data.suffixes=[.jsonl,.json,.csv,.parquet]")
    report = score_corpus(cfg, tmp_path / "d")
    skipped = dict(item for split in report.values() for item in split["skipped_documents"])
    assert set(skipped) == {"broken.json", "columns.csv", "cut.parquet"}
    assert "no column 'text'" in skipped["columns.csv"] and "Parquet" in skipped["cut.parquet"]
    assert report["train"]["documents"] + report["heldout"]["documents"] == 12


def test_a_document_longer_than_spacy_takes_is_split_into_sentences_in_pieces(tmp_path, monkeypatch):
    import phf.scorers.segment as segment
    from phf.scorers.segment import Segmenter

    monkeypatch.setattr(segment, "PIECE_CHARS", 500)
    segmenter = Segmenter("sentences")
    segmenter.split_all(["Warm up."])
    segmenter._nlp.max_length = 1000  # spaCy's limit is 1,000,000; the same refusal, at a size a test affords
    text = "".join(f"Sentence {i} is here. " for i in range(300))
    segments = segmenter.split_all([text])[0]
    assert "".join(segments) == text and len(segments) >= 300 and max(map(len, segments)) <= 500


def test_a_missing_relative_path_is_not_looked_up_on_the_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpora").mkdir()
    for missing in ("corpora/tweets", "./tweets", "tweets.jsonl", "~/tweets", "a/b/c"):
        started = time.monotonic()
        assert "corpus not found: " + missing in error_of(["score", "--corpus", missing, "--data", "d"])
        assert time.monotonic() - started < 5
    assert Corpus("owner/dataset").is_hub and Corpus("dataset").is_hub


def test_a_bad_byte_in_a_prompt_file_is_named_at_its_line(tmp_path):
    (tmp_path / "p.jsonl").write_bytes(b'{"text": "def f():"}\n{"text": "def g(\xff):"}\n')
    assert "p.jsonl:2: not UTF-8" in error_of(["sample", "--model", str(tmp_path),
                                               "--prompts", str(tmp_path / "p.jsonl")])


# --- flags taken literally ----------------------------------------------------------------------------------

AWKWARD = ["a #b", "x: y", "[z", "null", "yes", "123", "k=v", "{c}"]


@pytest.mark.parametrize("name", AWKWARD)
def test_every_shorthand_flag_takes_its_value_literally(name, tmp_path, monkeypatch):
    import phf.data.scoring
    import phf.evaluation.evaluate
    import phf.experiment
    import phf.lm
    import phf.redteam
    import phf.training.train
    from phf.cli import main

    seen = {}
    monkeypatch.setattr(phf.data.scoring, "score_corpus", lambda cfg, *a: seen.setdefault("score", cfg) and {})
    monkeypatch.setattr(phf.training.train, "train", lambda cfg, *a, **k: seen.setdefault("train", cfg))
    monkeypatch.setattr(phf.evaluation.evaluate, "evaluate", lambda m, cfg, *a: seen.setdefault("evaluate", cfg) and {})
    monkeypatch.setattr(phf.experiment, "run_experiment", lambda spec: seen.setdefault("experiment", spec.values))
    monkeypatch.setattr(phf.lm, "load_lm", lambda spec, **k: spec)
    monkeypatch.setattr(phf.redteam, "run_redteam",
                        lambda target, red, scorer, cfg, *a: seen.setdefault("redteam", cfg))
    monkeypatch.setattr(phf.redteam, "format_table", lambda result: "")
    monkeypatch.chdir(tmp_path)
    main(["score", "--corpus", name, "--text-field", name])
    main(["train", "--init-from", name, "--output", "run"])
    main(["evaluate", "--model", "m", "--kl-reference", name, "--output", "e"])
    main(["redteam", "--model", "m", "--red-lm", name, "--task", "toxicity"])
    main(["experiment", "--corpus", name, "--output", "x"])
    assert seen["score"].data.corpus == seen["score"].data.text_field == name
    assert seen["train"].model.init_from == name
    assert seen["evaluate"].evaluation.kl_reference == name
    assert seen["redteam"].redteam.red_lm == name
    assert seen["experiment"] == {"data.corpus": name}


def test_a_folder_with_an_awkward_name_is_the_one_scored(tmp_path, capsys):
    from phf.cli import main

    write_corpus(tmp_path / "x: y #z", 8)
    write_corpus(tmp_path / "x", 4)  # what `x: y #z` read as YAML would have pointed near
    main(["score", "--corpus", str(tmp_path / "x: y #z"), "--data", str(tmp_path / "d"), "scorer.num_workers=1",
          "data.heldout_fraction=0.25"])
    info = json.loads((tmp_path / "d" / "scored" / "info.json").read_text())
    assert info["corpus"] == str((tmp_path / "x: y #z").resolve())
    assert sum(read_scored(tmp_path / "d", s).num_rows for s in ("train", "heldout")) == 8


# --- wrong numbers and tracebacks ---------------------------------------------------------------------------

@pytest.mark.parametrize("method, override", [
    ("conditional", "objective.threshold=nan"), ("conditional", "objective.threshold=.nan"),
    ("conditional", "training.learning_rate=inf"), ("awr", "objective.beta=.inf"),
    ("conditional", "sampling.top_p=nan"), ("filtering", "objective.filter_threshold=-inf"),
    ("conditional", "objective.attribute_thresholds={pii: nan}")])
def test_non_finite_values_are_config_errors(method, override):
    from phf.config import load_config

    with pytest.raises(ConfigError, match=override.split("=")[0] + r".*(finite|infinity|nan|NaN)"):
        load_config("toxicity", method, ["scorer.attributes=[pii]", override])


def test_held_out_loss_uses_the_models_tokenizer_and_refuses_another_tasks_data(data_dir, tmp_path, tiny_mle_model):
    from phf.evaluation.evaluate import evaluate

    cfg, model_dir = tiny_config("mle"), tiny_mle_model
    own = evaluate(model_dir, cfg, tmp_path / "own", data_dir)["heldout_loss"]
    # the same scored corpus, in a folder whose tokenizer (by the name the config gives) is another one
    import shutil

    from phf.data.tokenizer import train_bpe

    other = tmp_path / "other"
    shutil.copytree(data_dir / "scored", other / "scored")
    train_bpe(["Prose, not code: the other folder's tokenizer knows other words."] * 50, 300,
              other / "tokenizer-bpe300")
    assert evaluate(model_dir, cfg, tmp_path / "on-other", other)["heldout_loss"] == pytest.approx(own, rel=1e-6)
    nl = tmp_path / "nl"
    (nl / "scored").mkdir(parents=True)
    info = json.loads((data_dir / "scored" / "info.json").read_text())
    (nl / "scored" / "info.json").write_text(json.dumps({**info, "scorer": {**info["scorer"], "name": "pii"}}))
    with pytest.raises(PHFError, match="scored with 'pii', the model's config uses 'pep8'"):
        evaluate(model_dir, cfg, tmp_path / "on-nl", nl)


def test_broken_model_folders_and_bad_arguments_give_one_line(data_dir, tmp_path, tiny_mle_model):
    model_dir = tiny_mle_model
    import shutil

    def broken(name, damage):
        folder = tmp_path / name
        shutil.copytree(model_dir, folder)
        damage(folder)
        return str(folder)

    no_tokenizer = broken("no-tokenizer", lambda f: [p.unlink() for p in f.glob("tokenizer*")])
    assert "no tokenizer in" in error_of(["sample", "--model", no_tokenizer])
    assert "no tokenizer in" in error_of(["evaluate", "--model", no_tokenizer])
    no_weights = broken("no-weights", lambda f: (f / "model.safetensors").unlink())
    assert "cannot load the model in" in error_of(["sample", "--model", no_weights])
    cut = broken("cut", lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:500]))
    assert "cannot load the model in" in error_of(["sample", "--model", cut])

    assert "is not valid YAML" in error_of(["train", "training.report_to=["])
    assert "0 to 65535" in error_of(["serve", "--model", str(model_dir), "--port", "99999"])
    assert "cannot load model" in error_of(["train", "--init-from", no_weights, "--data", str(data_dir),
                                           "--output", str(tmp_path / "ft"), *TINY, "training.num_tokens=2048"])


def test_a_model_that_is_not_gpt2_samples_and_one_without_positions_is_named(tmp_path, tiny_mle_model):
    """Positions come from the config, whatever the field is called (Llama: max_position_embeddings)."""
    from types import SimpleNamespace

    from transformers import LlamaConfig, LlamaForCausalLM

    from phf.cli import main
    from phf.data.tokenizer import load_tokenizer
    from phf.sampling.generate import context_window

    tokenizer = load_tokenizer(str(tiny_mle_model))
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=64))
    llama.save_pretrained(tmp_path / "llama")
    tokenizer.save_pretrained(tmp_path / "llama")
    main(["sample", "--model", str(tmp_path / "llama"), "-n", "2", "--output", str(tmp_path / "s.jsonl"), *TINY])
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 2
    with pytest.raises(PHFError, match="cannot tell the context window of a SimpleNamespace"):
        context_window(SimpleNamespace())


# --- diverging training, shared folders, outputs written whole -----------------------------------------------

def test_a_diverging_run_stops_at_its_step_and_keeps_its_finite_checkpoints(data_dir, tmp_path):
    run = tmp_path / "run"
    message = error_of(["train", "--data", str(data_dir), "--output", str(run), *TINY, "training.save_steps=1",
                        "training.learning_rate=1e9"])
    assert "training diverged at step" in message and "NaN or inf" in message and "--overwrite" in message
    assert not (run / "model").exists()  # never saved as a model
    kept = last_checkpoint(run)  # the weights before the step that diverged: said to have given the NaN
    assert kept is not None and f"{kept}, the last checkpoint, holds the weights that gave it" in message
    for checkpoint in run.glob("checkpoint-*"):  # every one saved before the bad step, with finite weights
        assert all(torch.isfinite(w).all() for w in weights(checkpoint).values())
    logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert all(r["loss"] == r["loss"] for r in logged if "loss" in r)  # no NaN logged as a number


def test_a_model_with_non_finite_weights_is_refused_as_it_is_loaded(tmp_path, tiny_mle_model):
    from safetensors.torch import save_file

    from tests.helpers import copied_run

    model = copied_run(tiny_mle_model, tmp_path / "run")
    diverged = {name: torch.full_like(w, float("nan")) for name, w in weights(model).items()}
    save_file(diverged, model / "model.safetensors", metadata={"format": "pt"})
    message = error_of(["sample", "--model", str(model), "--num-samples", "1"])
    assert f"the weights in {model} are not finite" in message
    # finite weights so large that the model's scores are not: said in one line too, by the sampler
    save_file({name: w * 1e30 for name, w in weights(tiny_mle_model).items()}, model / "model.safetensors",
              metadata={"format": "pt"})
    message = error_of(["sample", "--model", str(model), "--num-samples", "1"])
    assert "the model's next-token scores are NaN or inf" in message


def test_a_checkpoint_is_a_model_folder(data_dir, tmp_path):
    from phf.sampling.generate import load_model, sample

    run = tmp_path / "run"
    train(tiny_config("mle"), data_dir, run)
    checkpoint = last_checkpoint(run)
    assert (checkpoint / "tokenizer.json").exists() and (checkpoint / "phf.json").exists()
    assert len(sample(load_model(checkpoint), tiny_config("mle").sampling, ["", ""])) == 2


def test_a_run_folder_is_held_by_one_process_and_the_second_is_told_who(data_dir, tmp_path):
    from phf.files import owned

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom phf.files import owned\n"
                               f"with owned({str(run)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        message = error_of(["train", "--data", str(data_dir), "--output", str(run), *TINY])
        assert f"{run} is in use by process {holder.pid} on " in message and "phf" in message
        assert not (run / "config.yaml").exists() and not list(run.glob("checkpoint-*"))  # nothing written
        message = error_of(["experiment", "--output", str(run), "--methods", "mle", *TINY])
        assert f"is in use by process {holder.pid}" in message
    finally:
        holder.kill()
        holder.wait()
    with owned(run), owned(run):  # free once its holder is gone (even killed); a process may nest its own hold
        pass
    train(tiny_config("mle"), data_dir, run)


def test_two_trainings_into_one_folder_at_once_one_is_refused_and_the_folder_is_one_runs(data_dir, tmp_path):
    run = tmp_path / "run"
    procs = [start("train", "--data", data_dir, "--output", run, *TINY, *LONGER, f"training.learning_rate={lr}",
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for lr in (1e-2, 3e-3)]
    outcomes = [(p.wait(timeout=180), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in outcomes) == [0, 1], outcomes
    refused = next(err for code, err in outcomes if code == 1)
    # (on a busy machine the first may have finished before the second starts: then it is the model that refuses)
    assert "is in use by process" in refused or "holds the finished model" in refused
    assert "Traceback" not in refused
    winner = 1e-2 if outcomes[0][0] == 0 else 3e-3
    assert yaml.safe_load((run / "config.yaml").read_text())["training"]["learning_rate"] == winner
    assert logged_steps(run) == list(range(1, 49))  # one run's log, not two interleaved


def test_an_output_folder_that_is_a_file_or_read_only_is_said_before_any_work(data_dir, tmp_path, tiny_mle_model):
    import os

    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert f"--output {a_file} is a file" in error_of(["train", "--data", str(data_dir), "--output", str(a_file),
                                                       *TINY])
    assert f"--data {a_file} is a file" in error_of(["train", "--data", str(a_file), "--output",
                                                     str(tmp_path / "r"), *TINY])
    assert "is a file" in error_of(["score", "--data", str(a_file), *TINY])
    # A folder this user cannot write in: root writes in any mode's folder, but not in sysfs.
    locked = tmp_path / "locked" if os.geteuid() else Path("/sys/kernel")
    if os.geteuid():
        locked.mkdir(mode=0o555)
    elif not locked.is_dir():
        pytest.skip("no folder that root cannot write in")
    started = time.monotonic()
    message = error_of(["evaluate", "--model", str(tiny_mle_model), "--output", str(locked), *TINY])
    assert f"cannot write in --output {locked}" in message and time.monotonic() - started < 30
    message = error_of(["sample", "--model", str(tiny_mle_model), "--output", str(locked / "samples.jsonl")])
    assert f"cannot write in the folder of --output {locked}" in message


def test_an_evaluation_that_fails_part_way_leaves_the_earlier_one_whole(data_dir, tmp_path, tiny_mle_model,
                                                                       monkeypatch):
    import phf.evaluation.evaluate as evaluation
    from tests.helpers import copied_run

    model = copied_run(tiny_mle_model, tmp_path / "run")
    evaluation.evaluate(model, tiny_config("mle"), model.parent / "eval", data_dir)
    before = {p.name: p.read_bytes() for p in (model.parent / "eval").iterdir()}
    assert {"metrics.json", "samples.jsonl", "samples.csv", "config.yaml"} <= set(before)

    def full_disk(path, *args):
        path.write_text("half a ")
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(evaluation, "_write_csv", full_disk)
    with pytest.raises(OSError, match="No space left"):
        evaluation.evaluate(model, tiny_config("mle", "evaluation.num_samples=8"), model.parent / "eval", data_dir)
    assert {p.name: p.read_bytes() for p in (model.parent / "eval").iterdir()} == before


def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_the_run_resumes(data_dir, tmp_path):
    import resource

    run = tmp_path / "run"

    def small_disk():  # files past 200 kB cannot be written (the optimiser's state is larger): a full disk
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    argv = ["train", "--data", data_dir, "--output", run, *TINY]
    proc = subprocess.run(phf(*argv), preexec_fn=small_disk, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    said = [line for line in proc.stderr.splitlines() if line.startswith("phf train:")]
    assert len(said) == 1 and said[0].startswith(f"phf train: error: saving {run}/checkpoint-4 failed (")
    assert "full disk" in said[0] and said[0].endswith(f"`{shlex.join(['phf', *map(str, argv)])} --resume`")
    proc = subprocess.run(phf(*argv, "--resume"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "incomplete" in proc.stdout and logged_steps(run) == list(range(1, 9))


def test_two_interrupts_stop_an_experiment_running_arms_side_by_side(corpus_dir, tmp_path):
    out = tmp_path / "exp"
    proc = start("experiment", "--output", out, "--methods", "mle", "conditional", "--parallel", "2",
                 f"data.corpus={corpus_dir}", *TINY, *LONGER, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                 text=True)
    wait_for(lambda: all(logged_steps(out / arm) for arm in ("mle", "conditional")), timeout=300, what="arms")
    workers = children_of(proc.pid)
    proc.send_signal(signal.SIGINT)  # to the parent alone, twice
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130, proc.stderr.read()
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=10, what=f"workers {workers} still alive")
    assert "interrupted" in proc.stderr.read()


def test_an_arm_trained_on_data_since_rebuilt_is_never_reused(corpus_dir, tmp_path, capsys):
    """Nor the tokenizer and packed streams built from the data before."""
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(corpus_dir, corpus)
    out = tmp_path / "exp"
    argv = ["experiment", "--methods", "mle", "--output", str(out), f"data.corpus={corpus}", *TINY]
    main(argv)
    (corpus / "added.py").write_text("x=1\n" * 50)  # the corpus changes
    assert f"{out / 'data' / 'scored'} holds a scoring run of another corpus" in error_of(argv)
    shutil.rmtree(out / "data" / "scored")  # as that message advises
    message = error_of(argv)
    assert f"{out / 'mle'} was trained on data scored otherwise than {out / 'data'} holds now" in message
    assert (out / "mle" / "model" / "phf.json").exists()  # refused, not deleted
    shutil.rmtree(out / "mle")  # as this one advises: trained again, on the data as it is
    capsys.readouterr()
    main(argv)
    assert json.loads((out / "mle" / "data.json").read_text()) == scored_info(out / "data")
    assert "was trained on data scored otherwise than" in capsys.readouterr().out  # the tokenizer: trained again
    packed = [json.loads(p.read_text())["documents"] for p in (out / "data" / "packed").glob("train-*/meta.json")]
    assert len(packed) == 2 and packed[0] != packed[1]  # the old stream is not read: one from the corpus as it is


def test_an_evaluation_is_reused_only_while_what_it_was_built_from_is_unchanged(corpus_dir, tmp_path):
    import os

    out = tmp_path / "exp"
    argv = ["experiment", "--methods", "mle", "--output", str(out), f"data.corpus={corpus_dir}", *TINY]
    main(argv)
    metrics, weights_file = out / "mle" / "eval" / "metrics.json", out / "mle" / "model" / "model.safetensors"
    stamp = metrics.stat().st_mtime_ns
    main(argv)
    assert metrics.stat().st_mtime_ns == stamp  # reused
    os.utime(weights_file, ns=(weights_file.stat().st_atime_ns, weights_file.stat().st_mtime_ns + 10**9))
    main(argv)  # the model's weights were written again (a model trained anew): evaluated again
    assert metrics.stat().st_mtime_ns != stamp
    stamp = metrics.stat().st_mtime_ns
    main([*argv, "evaluation.num_samples=6"])  # other settings: evaluated again
    assert metrics.stat().st_mtime_ns != stamp and json.loads(metrics.read_text())["unconditional"]["num_samples"] == 6
