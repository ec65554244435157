"""Language models local and remote: LocalLM's scoring convention, `phf serve` and OpenAICompatibleLM
agreeing on it, and every way a server can fail becoming a one-line LMError. Servers are all on 127.0.0.1."""

from __future__ import annotations

import json
import math
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
import torch

from phf.cli import main
from phf.data.tokenizer import ALIGNED
from phf.errors import PHFError
from phf.lm import LMError, LocalLM, TextLogProb, load_lm
from phf.lm.local import windows
from phf.lm.openai_compatible import OpenAICompatibleLM
from phf.lm.server import start_server
from phf.model_folder import INFO_FILE
from tests.helpers import GOOD

SHORT = "def join(a, b):\n    return a\n"  # fits the tiny model's 32 positions
TEXTS = ["import os\n", GOOD, "x", "naïve café — ü ✓\n", "def f( a,b ):\n  return a"]


@pytest.fixture(scope="module")
def model_dir(tiny_mle_model):
    return tiny_mle_model


@pytest.fixture(scope="module")
def lm(model_dir):
    return LocalLM(model_dir, batch_size=2)  # small batches: several batches, mixed lengths in each


@pytest.fixture(scope="module")
def served(lm):
    server, thread, base_url = start_server(lm, "127.0.0.1", 0)
    yield base_url
    server.shutdown()
    server.server_close()
    thread.join()


def direct(lm, ids, scored):
    """log p of the last `scored` of `ids`, from one plain forward pass over them."""
    with torch.no_grad():
        logprobs = lm.loaded.model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    return [logprobs[i - 1, ids[i]].item() for i in range(len(ids) - scored, len(ids))]


def test_local_generate_returns_strings(lm):
    out = lm.generate(["", "import os\n", ""], max_new_tokens=6, seed=1)
    assert len(out) == 3 and all(isinstance(t, str) for t in out)
    assert lm.generate(["", "import os\n", ""], max_new_tokens=6, seed=1) == out  # the seed decides


def test_log_likelihood_is_a_whole_document_after_eos(lm):
    tok = lm.loaded.tokenizer
    [score] = lm.log_likelihood([SHORT])
    ids = lm.tokenize(SHORT)[0]
    assert lm.context == [tok.eos_token_id]  # phf's tokenizer: BOS is EOS
    assert score.tokens == len(ids) and score.chars == len(SHORT)
    assert score.logprob == pytest.approx(sum(direct(lm, lm.context + ids, len(ids))), abs=1e-4)


def test_padding_does_not_change_log_likelihood(lm):
    batched = lm.log_likelihood(TEXTS)
    for text, score in zip(TEXTS, batched, strict=True):
        [alone] = lm.log_likelihood([text])
        assert score.tokens == alone.tokens and score.logprob == pytest.approx(alone.logprob, abs=1e-5)
    assert lm.log_likelihood([""]) == [TextLogProb(0.0, 0, 0)]


def test_windows_score_every_token_once_with_half_a_window_of_context():
    for length, first, window in [(5, 1, 8), (8, 1, 8), (9, 2, 8), (40, 1, 8), (41, 2, 7)]:
        scored = {}  # token -> start of the slice scoring it
        for start, end, n in windows(length, first, window):
            assert end - start <= window and n <= end - start - 1
            scored |= {i: start for i in range(end - n, end)}
            assert all(i - start >= window // 2 or start == 0 for i in range(end - n, end))
        assert list(scored) == list(range(first, length))
        # A token's context does not depend on the tokens after it.
        longer = {i: start for start, end, n in windows(length + 3, first, window) for i in range(end - n, end)}
        assert all(longer[i] == start for i, start in scored.items())


def test_texts_longer_than_the_context_window_are_scored_in_full(lm):
    long = GOOD * 6
    ids = lm.tokenize(long)[0]
    window = lm.loaded.model.config.n_positions
    assert len(ids) > 3 * window
    [score] = lm.log_likelihood([long])
    got = lm.token_logprobs([ids])[0]
    assert score.tokens == len(ids) and math.isfinite(score.logprob) and score.logprob == pytest.approx(sum(got))
    full = lm.context + ids
    expected = []  # each slice's scored tokens, from a plain forward pass over that slice
    for start, end, n in windows(len(full), len(lm.context), window):
        expected += direct(lm, full[start:end], n)
    assert got == pytest.approx(expected, abs=1e-5)


def test_a_conditional_model_scores_texts_after_aligned(model_dir, tmp_path):
    # The same weights, marked conditional as `phf train` marks a conditional model: only the context differs.
    shutil.copytree(model_dir, tmp_path / "model")
    info = json.loads((model_dir / INFO_FILE).read_text())
    (tmp_path / "model" / INFO_FILE).write_text(json.dumps({**info, "objective": "conditional", "conditional": True}))
    cond = LocalLM(tmp_path / "model")
    tok = cond.loaded.tokenizer
    assert cond.context == [tok.eos_token_id, tok.convert_tokens_to_ids(ALIGNED)]
    ids = cond.tokenize(SHORT)[0]
    [score] = cond.log_likelihood([SHORT])
    assert score.logprob == pytest.approx(sum(direct(cond, cond.context + ids, len(ids))), abs=1e-4)
    [unconditional] = LocalLM(model_dir).log_likelihood([SHORT])
    assert abs(score.logprob - unconditional.logprob) > 1e-3


def test_served_model_matches_local_model(lm, served):
    remote = OpenAICompatibleLM(served, "tiny", max_retries=0, timeout=30)
    assert remote.name == f"tiny@{served}"
    out = remote.generate(["", "import os\n"], max_new_tokens=5)
    assert len(out) == 2 and all(isinstance(t, str) for t in out)
    texts = TEXTS + [GOOD * 6, ""]  # unicode, one longer than the window, an empty one
    for here, there in zip(lm.log_likelihood(texts), remote.log_likelihood(texts), strict=True):
        assert there.tokens == here.tokens and there.chars == here.chars
        assert there.logprob == pytest.approx(here.logprob, abs=1e-4)
    assert isinstance(load_lm(f"openai:tiny@{served}"), OpenAICompatibleLM)


def post(url, body):
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_server_speaks_the_completions_schema(lm, served):
    with urllib.request.urlopen(served + "/models", timeout=10) as response:
        assert json.loads(response.read())["data"][0]["id"] == lm.name
    status, body = post(served + "/completions", {"prompt": ["import ", "x"], "n": 2, "max_tokens": 3, "echo": True,
                                                  "logprobs": 0})
    assert status == 200 and [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    for choice, prompt in zip(body["choices"], ["import ", "import ", "x", "x"], strict=True):
        lp = choice["logprobs"]
        assert choice["text"].startswith(prompt) and None not in lp["token_logprobs"]
        echoed = [t for t, offset in zip(lp["tokens"], lp["text_offset"], strict=True) if offset < len(prompt)]
        assert "".join(echoed) == prompt and lp["text_offset"][0] == 0
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    for bad, named in [({"prompt": 3}, "`prompt`"), ({"prompt": "a", "temperature": 0}, "`temperature`"),
                       ({"prompt": "a", "echo": "yes"}, "`echo`"),
                       ({"prompt": "a", "max_tokens": 1000}, "max_new_tokens")]:
        status, body = post(served + "/completions", bad)
        assert status == 400 and named in body["error"]["message"]
    assert post(served + "/chat/completions", {})[0] == 404


# Stub servers for the ways a server fails.

@pytest.fixture
def fast_retries(monkeypatch):
    # The client's back-off starts at half a second; tests need its behaviour, not its patience.
    monkeypatch.setattr(openai._base_client, "INITIAL_RETRY_DELAY", 0.01)


def answer(prompts, text="ok", logprobs=None):
    return {"id": "c", "object": "text_completion", "created": 0, "model": "m",
            "choices": [{"index": i, "text": text, "finish_reason": "length", "logprobs": logprobs}
                        for i in range(len(prompts))]}


@contextmanager
def stub(respond):
    """A server that answers each POSTed request body with respond(body) -> (status, dict or bytes)."""
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            status, payload = respond(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass  # a client that gave up on a slow answer

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def client(url, **kwargs):
    return OpenAICompatibleLM(url, "m", **{"timeout": 5.0, "max_retries": 1, **kwargs})


def test_a_closed_port_is_an_lm_error_at_once(fast_retries):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    started = time.monotonic()
    with pytest.raises(LMError, match=f"cannot connect to {url}"):
        client(url).generate(["a"], max_new_tokens=1)
    assert time.monotonic() - started < 5


def test_a_slow_server_is_a_timeout(fast_retries):
    with stub(lambda body: (time.sleep(1.0), (200, answer(body["prompt"])))[1]) as url:
        with pytest.raises(LMError, match=r"did not answer within the 0.2 s timeout \(tried 2 times\)"):
            client(url, timeout=0.2).generate(["a"], max_new_tokens=1)


@pytest.mark.parametrize("payload, message", [
    (b"<html>oops</html>", "not JSON: <html>oops</html>"),
    ({"id": "c"}, "no `choices` list"),
    ({"choices": []}, "with 0 choices"),
    ({"choices": [{"index": 0}, {"index": 1}]}, "malformed choices"),
    ({"choices": [{"index": 0, "text": "a"}, {"index": 0, "text": "b"}]}, "malformed choices"),
])
def test_malformed_answers_are_lm_errors(payload, message):
    with stub(lambda body: (200, payload)) as url:
        with pytest.raises(LMError, match=message):
            client(url).generate(["a", "b"], max_new_tokens=1)


def test_http_errors_name_status_and_body(fast_retries):
    with stub(lambda body: (400, {"error": {"message": "model 'm' does not exist"}})) as url:
        with pytest.raises(LMError, match=rf"{url} answered HTTP 400: .*model 'm' does not exist"):
            client(url).generate(["a"], max_new_tokens=1)


def test_rate_limits_are_retried(fast_retries):
    calls = []

    def respond(body):
        calls.append(body)
        return (429, {"error": {"message": "slow down"}}) if len(calls) <= 2 else (200, answer(body["prompt"], "yes"))

    with stub(respond) as url:
        assert client(url, max_retries=2).generate(["a", "b"], max_new_tokens=3, seed=7) == ["yes", "yes"]
    assert len(calls) == 3 and calls[-1]["max_tokens"] == 3 and calls[-1]["seed"] == 7


def test_a_server_without_logprobs_cannot_score():
    with stub(lambda body: (200, answer(body["prompt"], body["prompt"][0] + " x"))) as url:
        with pytest.raises(LMError, match="does not offer token log-probabilities"):
            client(url).log_likelihood(["a"])


def vllm(tokens, values, generated=(" I", -9.0)):
    """A vLLM-style echo of a prompt: offsets count the characters of every token before, a BOS's too."""
    tokens, values = [*tokens, generated[0]], [*values, generated[1]]
    offsets = [sum(map(len, tokens[:i])) for i in range(len(tokens))]
    return lambda body: (200, answer(body["prompt"], body["prompt"][0] + generated[0],
                                     {"tokens": tokens, "token_logprobs": values, "text_offset": offsets}))


def test_a_bos_the_server_adds_is_not_counted():
    with stub(vllm(["<s>", "Hi", "."], [None, -1.0, -2.0])) as url:
        [score] = client(url).log_likelihood(["Hi."])
    assert (score.logprob, score.tokens, score.chars) == (-3.0, 2, 3)


def test_an_unscored_first_token_needs_a_doc_prefix():
    with stub(vllm(["Hi", "."], [None, -2.0])) as url:
        with pytest.raises(LMError, match="doc_prefix"):
            client(url).log_likelihood(["Hi."])
    with stub(vllm(["<|endoftext|>", "Hi", "."], [None, -1.0, -2.0])) as url:
        [score] = client(url, doc_prefix="<|endoftext|>").log_likelihood(["Hi."])
        assert (score.logprob, score.tokens, score.chars) == (-3.0, 2, 3)


def test_load_lm_specs(model_dir):
    remote = load_lm("openai:llama-3-8b@http://127.0.0.1:8000/v1")
    assert isinstance(remote, OpenAICompatibleLM) and remote.name == "llama-3-8b@http://127.0.0.1:8000/v1"
    assert isinstance(load_lm(str(model_dir)), LocalLM)
    for bad in ["openai:llama", "openai:@http://127.0.0.1:8000/v1", "openai:m@127.0.0.1:8000"]:
        with pytest.raises(PHFError, match="expected openai:MODEL@BASE_URL"):
            load_lm(bad)


def test_serve_command(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--help"])
    assert exit_info.value.code == 0 and "--port" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--model", str(tmp_path)])
    assert str(exit_info.value.code).startswith("phf serve: error: ") and "no model in" in str(exit_info.value.code)
