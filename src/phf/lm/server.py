"""`phf serve`: a small OpenAI-compatible completions server for one `LocalLM`, on the standard library.

It lets red-teaming and KL evaluation reach a phf checkpoint over HTTP as they would reach vLLM, and lets
tests exercise `OpenAICompatibleLM`. One request runs at a time (one lock around the model). Not for production.

GET /v1/models; POST /v1/completions with `prompt` (a string or a list of strings; "" samples from the
document start), `max_tokens` (16), `temperature` (1; sampling only, so > 0), `top_p` (1), `seed` (0), `n` (1),
`echo` (false) and `logprobs` (null; any number asks for the chosen tokens' log-probs, never for alternatives).
`model` is not checked (there is one); other fields (`stop`, `best_of`...) are ignored.

Log-probs are those of `LocalLM.token_logprobs`: every token is scored as part of the document
`prompt + completion`, after the model's document start. So an echoed prompt's first token has a log-prob too
(never null, unlike vLLM's and OpenAI's), and the sum over an echoed prompt is `LocalLM.log_likelihood` of it.
`text_offset` is where a token starts in the choice's `text`. The sampler returns text, not token ids, so the
completion's tokens are its text tokenized again: close to what was sampled, not always the same tokens (a
partial UTF-8 character comes back as U+FFFD).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from phf.errors import PHFError
from phf.lm.local import LocalLM


class BadRequest(ValueError):
    pass


def _param(request: dict, key: str, kind: type, default, valid, rule: str):
    value = request.get(key)
    if value is None:
        return default
    # JSON true would pass for an int (bool subclasses int), and 1 is a fine float.
    numeric = (int, float) if kind is float else kind
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, numeric) or not valid(value):
        raise BadRequest(f"`{key}` must be {rule}, not {json.dumps(value)}")
    return float(value) if kind is float else value


def complete(lm: LocalLM, request: object) -> dict:
    """The answer to a /v1/completions request, in the OpenAI schema."""
    if not isinstance(request, dict):
        raise BadRequest("the request body must be a JSON object")
    prompts = request.get("prompt", "")
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise BadRequest("`prompt` must be a string or a non-empty list of strings (token ids are not supported)")
    max_tokens = _param(request, "max_tokens", int, 16, lambda v: v >= 0, "an integer >= 0")
    temperature = _param(request, "temperature", float, 1.0, lambda v: v > 0, "> 0 (this server only samples)")
    top_p = _param(request, "top_p", float, 1.0, lambda v: 0 < v <= 1, "in (0, 1]")
    seed = _param(request, "seed", int, 0, lambda v: True, "an integer")
    n = _param(request, "n", int, 1, lambda v: v >= 1, "an integer >= 1")
    echo = _param(request, "echo", bool, False, lambda v: True, "true or false")
    logprobs = _param(request, "logprobs", int, None, lambda v: v >= 0, "an integer >= 0 or null")

    each = [p for p in prompts for _ in range(n)]  # choice i*n + j is prompt i's j-th sample, as in OpenAI's API
    completions = (lm.generate(each, max_new_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)
                   if max_tokens else [""] * len(each))
    prompt_tokens = [lm.tokenize(p) for p in prompts]
    completion_tokens = [lm.tokenize(c) for c in completions]
    scores = lm.token_logprobs([prompt_tokens[i // n][0] + c[0] for i, c in enumerate(completion_tokens)]) \
        if logprobs is not None else None
    choices = []
    for i, (prompt, completion) in enumerate(zip(each, completions, strict=True)):
        (p_ids, p_spans), (c_ids, c_spans) = prompt_tokens[i // n], completion_tokens[i]
        choice = {"index": i, "text": prompt + completion if echo else completion, "logprobs": None,
                  "finish_reason": "length" if max_tokens and len(c_ids) >= max_tokens else "stop"}
        if scores is not None:
            # Spans in the choice's text: the prompt's as they are (when echoed), the completion's after it.
            shift = len(prompt) if echo else 0
            spans = (p_spans if echo else []) + [(a + shift, b + shift) for a, b in c_spans]
            values = scores[i] if echo else scores[i][len(p_ids):]
            choice["logprobs"] = {"tokens": [choice["text"][a:b] for a, b in spans], "token_logprobs": values,
                                  "text_offset": [a for a, _ in spans], "top_logprobs": None}
        choices.append(choice)
    used = sum(len(ids) for ids, _ in prompt_tokens), sum(len(ids) for ids, _ in completion_tokens)
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": lm.name, "choices": choices,
            "usage": {"prompt_tokens": used[0], "completion_tokens": used[1], "total_tokens": sum(used)}}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        kind = "invalid_request_error" if status < 500 else "server_error"
        self._send(status, {"error": {"message": message, "type": kind, "param": None, "code": None}})

    def _unknown(self, route: str) -> bool:
        if self.path.split("?")[0].rstrip("/") == route:
            return False
        self._error(404, f"no route {self.command} {self.path}; this server answers GET /v1/models and "
                         "POST /v1/completions")
        return True

    def do_GET(self) -> None:
        if self._unknown("/v1/models"):
            return
        self._send(200, {"object": "list", "data": [{"id": self.server.lm.name, "object": "model", "created": 0,
                                                     "owned_by": "phf"}]})

    def do_POST(self) -> None:
        if self._unknown("/v1/completions"):
            return
        try:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
            with self.server.lock:  # one model, one request at a time
                body = complete(self.server.lm, request)
        except (ValueError, PHFError) as e:  # a BadRequest, bad JSON, or a setting the sampler refuses
            return self._error(400, " ".join(str(e).split()))
        except Exception as e:  # the client gets a JSON error rather than a dropped connection
            return self._error(500, f"{type(e).__name__}: {e}")
        self._send(200, body)


class _Server(ThreadingHTTPServer):  # its request threads are daemons: a hung request cannot block an exit
    def __init__(self, lm: LocalLM, host: str, port: int):
        super().__init__((host, port), _Handler)
        self.lm, self.lock = lm, threading.Lock()


def make_server(lm: LocalLM, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A server bound to host:port (0: any free port), not yet serving: call its serve_forever()."""
    return _Server(lm, host, port)


def start_server(lm: LocalLM, host: str = "127.0.0.1",
                 port: int = 0) -> tuple[ThreadingHTTPServer, threading.Thread, str]:
    """Serve `lm` from a background thread; returns the server (stop it with shutdown()), the thread and the
    base URL to give `OpenAICompatibleLM`."""
    server = make_server(lm, host, port)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="phf-serve")
    thread.start()
    return server, thread, f"http://{host}:{server.server_address[1]}/v1"
