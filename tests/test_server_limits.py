"""`phf serve` under load and abuse: request limits answered with 4xx before any work, a request dropped
once its client has gone, bursts of connections answered (200 or 503) rather than reset, and internal
failures kept out of answers. Servers are all on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import fields

import pytest

import phf.sampling.generate as generate_module
from phf.cli import main
from phf.lm import LocalLM
from phf.lm.server import Limits, start_server


@pytest.fixture(scope="module")
def lm(tiny_mle_model):
    return LocalLM(tiny_mle_model, batch_size=2)  # small batches: a request of many samples runs many of them


@contextmanager
def serving(lm, **limits):
    server, thread, base_url = start_server(lm, "127.0.0.1", 0, Limits(**limits))
    try:
        yield server, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    """What the server answers to `data`, read to the end of the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def post(port: int, body, headers: dict | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Length": str(len(data)), **(headers or {})}
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items() if v is not None)
    answer = raw(port, f"POST /v1/completions HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + data)
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def test_an_oversized_body_is_refused_before_it_is_read(lm):
    with serving(lm) as (_, port):
        # 50 MB announced, 64 KiB sent: the answer comes without the rest (a server reading it all would wait)
        answer = raw(port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 52428800\r\n\r\n"
                     + b"x" * 65536, timeout=5)
    assert answer.startswith(b"HTTP/1.0 413 ") and b"at most 1048576" in answer


def test_content_length_is_required_and_must_be_a_number(lm):
    with serving(lm) as (_, port):
        status, body = post(port, b'{"prompt": "x"}', {"Content-Length": None})
        assert status == 411 and "Content-Length" in body["error"]["message"]
        status, body = post(port, b'{"prompt": "x"}', {"Content-Length": "-1"})
        assert status == 400 and "Content-Length" in body["error"]["message"]


@pytest.mark.parametrize("request_body, named", [
    ({"prompt": "x", "n": 129, "max_tokens": 0}, "`n`"),  # the default limit
    ({"prompt": ["x"] * 129, "max_tokens": 0}, "at most 128"),
    ({"prompt": ["x"] * 3, "n": 100, "max_tokens": 0}, "300 samples"),  # each within its limit, not together
    ({"prompt": "x", "max_tokens": 8}, "`max_tokens`"),  # Limits(max_tokens=4), as set below
    ({"prompt": "x" * 100, "max_tokens": 0}, "tokens long"),  # Limits(max_prompt_tokens=20)
    ({"prompt": "\ud800", "max_tokens": 1}, "`prompt` is not valid text"),
    ({"prompt": ["fine", "a\udc00b"], "max_tokens": 1}, "`prompt[1]` is not valid text: a lone surrogate at "
                                                         "character 1"),
], ids=["n", "prompts", "samples", "max_tokens", "prompt_tokens", "surrogate", "surrogate_in_list"])
def test_requests_beyond_the_limits_are_bad_requests(lm, monkeypatch, request_body, named):
    calls = []
    monkeypatch.setattr(LocalLM, "generate", lambda *args, **kwargs: calls.append(args))
    with serving(lm, max_tokens=4, max_prompt_tokens=20) as (_, port):
        status, body = post(port, request_body)
    assert status == 400 and named in body["error"]["message"] and body["error"]["type"] == "invalid_request_error"
    assert not calls  # refused before any sampling


def test_a_body_nested_too_deep_is_a_bad_request(lm):
    with serving(lm) as (_, port):
        status, body = post(port, b"[" * 500_000 + b"]" * 500_000)
    assert status == 400 and "nested too deep" in body["error"]["message"]


def test_a_request_asking_too_much_is_refused_while_the_model_is_busy(lm):
    with serving(lm) as (server, port), server.lock:
        status, body = post(port, {"prompt": "x", "n": 129})
    assert status == 400 and "`n`" in body["error"]["message"]


def test_the_model_bounds_max_tokens_by_default(lm):
    with serving(lm) as (_, port):
        status, body = post(port, {"prompt": "x", "max_tokens": lm.window - 1})
        assert status == 400 and f"from 0 to {lm.window - 2}" in body["error"]["message"]
        assert post(port, {"prompt": "x", "max_tokens": lm.window - 2})[0] == 200


def test_an_internal_failure_is_a_short_500(lm, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("secret internal detail")
    monkeypatch.setattr(LocalLM, "generate", fail)
    with serving(lm) as (_, port):
        status, body = post(port, {"prompt": "x", "max_tokens": 2})
    assert status == 500 and "secret" not in body["error"]["message"] and body["error"]["type"] == "server_error"


def test_limits_leave_sampling_as_it_was(lm):
    request = {"prompt": ["", "import "], "n": 3, "max_tokens": 5, "seed": 7}  # 6 samples, 3 batches of 2
    with serving(lm) as (_, port):
        status, body = post(port, request)
    assert status == 200
    each = [p for p in request["prompt"] for _ in range(3)]
    assert [c["text"] for c in body["choices"]] == lm.generate(each, max_new_tokens=5, seed=7)


@pytest.fixture
def batches(monkeypatch):
    """Samples made so far, counted batch by batch, and an event set once the first batch is done."""
    made, first = [], threading.Event()
    real = generate_module._sample_batch

    def counted(*args, **kwargs):
        texts = real(*args, **kwargs)
        made.extend(texts)
        first.set()
        return texts
    monkeypatch.setattr(generate_module, "_sample_batch", counted)
    return made, first


def test_a_client_that_leaves_frees_the_model(lm, batches):
    made, first = batches
    total = 64  # 32 batches of 30 tokens: seconds of work on a CPU
    request = json.dumps({"prompt": "import ", "n": total, "max_tokens": lm.window - 2}).encode()
    with serving(lm) as (_, port):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(request), request))
        assert first.wait(10)
        sock.close()  # the client leaves mid-request
        start = time.monotonic()
        status, body = post(port, {"prompt": "x", "max_tokens": 2})
        assert status == 200 and time.monotonic() - start < 5
        dropped_at = len(made) - 1  # the following request made one sample
        time.sleep(0.3)
        assert len(made) == dropped_at + 1  # nothing more of the dropped request after it
    assert dropped_at < total


def test_a_request_waiting_for_the_model_leaves_with_its_client(lm, batches):
    made, _ = batches
    with serving(lm, max_connections=1) as (server, port):
        with server.lock:  # the model is busy
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n{"prompt": "x"}')
            time.sleep(0.3)
            assert raw(port, b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.0 503 ")
            sock.close()
            # the waiting request leaves while the model is still busy, and its connection slot is free
            deadline = time.monotonic() + 5
            while not raw(port, b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.0 200 "):
                assert time.monotonic() < deadline
                time.sleep(0.05)
        time.sleep(0.3)
    assert not made  # it never sampled


def test_a_burst_of_connections_is_answered_not_reset(lm):
    count, answers, errors = 200, [], []
    ready = threading.Barrier(count)

    def client():
        ready.wait()
        try:
            answers.append(raw(port, b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n", timeout=30))
        except OSError as e:
            errors.append(e)
    with serving(lm) as (_, port):
        threads = [threading.Thread(target=client) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors
    assert len(answers) == count and all(a.startswith((b"HTTP/1.0 200 ", b"HTTP/1.0 503 ")) for a in answers)
    busy = [a for a in answers if a.startswith(b"HTTP/1.0 503 ")]
    assert all(b"Retry-After: 1" in a for a in busy)


def test_serve_options_state_each_limit_and_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for field in fields(Limits):
        option = "--" + field.name.replace("_", "-")
        assert option in text
        if field.default is not None:
            assert f"default: {field.default}" in text
