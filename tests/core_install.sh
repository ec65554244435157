#!/usr/bin/env bash
# What the core install (`pip install phf`, no extras) must do: score, train, sample and evaluate the PEP8 task at
# tiny size, and stop in one line naming the extra where a command needs one. `make check-core` runs it on a fresh
# .venv-core; tests/test_extras.py runs it with the extras' modules hidden. Uses the `phf` first on PATH.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
for i in $(seq 0 15); do
    printf 'import os\n\n\ndef join%d(a, b):\n    """Join."""\n    return os.path.join(a, b)\n' "$i" >"$work/corpus/good$i.py"
    printf 'import os,sys\ndef join%d( a,b ):\n  return os.path.join(a,b)\n' "$i" >"$work/corpus/bad$i.py"
done
tiny=(model.n_layer=1 model.n_head=2 model.n_embd=32 model.block_size=32 tokenizer.vocab_size=300
      training.batch_size=4 training.micro_batch_size=4 training.num_tokens=1024 training.save_steps=4
      scorer.num_workers=1 evaluation.num_samples=4 evaluation.samples_per_prompt=1 evaluation.expected_max_k=2
      evaluation.heldout_blocks=4 evaluation.signature_prompts=0 sampling.max_new_tokens=8 sampling.batch_size=4)
data=(--data "$work/data" "data.corpus=$work/corpus" data.heldout_fraction=0.25)

phf score "${data[@]}" "${tiny[@]}"
phf train --method conditional --output "$work/run" "${data[@]}" "${tiny[@]}"
phf sample --model "$work/run/model" -n 2 --output "$work/samples.jsonl" "${tiny[@]}"
test "$(wc -l <"$work/samples.jsonl")" -eq 2
phf evaluate --model "$work/run/model" "${data[@]}" "${tiny[@]}"
test -s "$work/run/eval/metrics.json"

# a command that needs an extra: one line that names it, exit status 1, no traceback
expect_extra() {  # EXTRA COMMAND...
    local extra=$1 status=0
    shift
    "$@" >"$work/out" 2>&1 || status=$?
    if [ "$status" -ne 1 ] || grep -q Traceback "$work/out" || ! tail -n 1 "$work/out" | grep -qF "pip install 'phf[$extra]'"; then
        echo "expected one line naming phf[$extra] from: $*" >&2
        cat "$work/out" >&2
        exit 1
    fi
    tail -n 1 "$work/out"
}
echo '{"text": "Call Ann Smith on (415) 555-0134. She lives in Oakland."}' >"$work/people.jsonl"
expect_extra text phf score --task pii --data "$work/pii" "data.corpus=$work/people.jsonl"
expect_extra eval phf evaluate --model "$work/run/model" --downstream humaneval "${data[@]}" "${tiny[@]}"
expect_extra eval phf experiment --output "$work/experiment" --downstream lambada "data.corpus=$work/corpus" "${tiny[@]}"
expect_extra ray phf score --executor ray --data "$work/ray" "data.corpus=$work/corpus"
expect_extra remote phf redteam --model openai:m@http://127.0.0.1:9/v1 --output "$work/redteam"
expect_extra tensorboard phf train --output "$work/tb" "${data[@]}" "${tiny[@]}" "training.report_to=[tensorboard]"
echo "core install: PEP8 scored, trained, sampled and evaluated; missing extras named"
