"""`phf serve`: a small OpenAI-compatible completions server for one `LocalLM`, on the standard library.

It lets red-teaming and KL evaluation reach a phf checkpoint over HTTP as they would reach vLLM, and lets
tests exercise `OpenAICompatibleLM`. Not for production.

GET /v1/models; POST /v1/completions with `prompt` (a string or a list of strings; "" samples from the
document start), `max_tokens` (16), `temperature` (1; sampling only, so > 0), `top_p` (1), `seed` (0), `n` (1),
`echo` (false) and `logprobs` (null; any number asks for the chosen tokens' log-probs, never for alternatives).
`model` is not checked (there is one); other fields (`stop`, `best_of`...) are ignored.

Limits (`Limits`, `phf serve --max-...`): a request beyond one is refused before any work on it, with the
OpenAI error JSON: a body over 1 MiB by its Content-Length gets 413 unread (a POST without one, 411); more
than 128 prompts, n over 128, prompts x n over 256, max_tokens over what the model's positions leave (its
context window less 2), a prompt over 8192 tokens, or a prompt that is not valid text (a lone surrogate)
get 400. A prompt longer than the context window is allowed below that limit: it is scored in full (sliding
windows, as `LocalLM` scores), and sampling continues its last tokens. An unexpected failure is a 500 with a
short message; its traceback goes to the server's log.

Concurrency: each connection is served by a thread of its own, up to 64 at once (`max_connections`); the model
runs one request at a time, the others waiting for it in turn. A connection beyond them is answered 503 with
Retry-After: 1 at once (OpenAI clients retry it), and the listen backlog holds 1024 connections not yet
accepted, so a burst is answered rather than reset. A request whose client has closed its connection is
dropped, while waiting for the model or within one forward pass of it (one sampling step, one batch of
scoring), with no answer; nothing else changes, so a request that finishes gives the completions it gave
before. (A client that half-closes its connection after its request counts as gone.) A client that stalls
for 60 s while sending its request or reading the answer is dropped too, freeing its thread.

Log-probs are those of `LocalLM.token_logprobs`: every token is scored as part of the document
`prompt + completion`, after the model's document start. So an echoed prompt's first token has a log-prob too
(never null, unlike vLLM's and OpenAI's), and the sum over an echoed prompt is `LocalLM.log_likelihood` of it.
`text_offset` is where a token starts in the choice's `text`. The sampler returns text, not token ids, so the
completion's tokens are its text tokenized again: close to what was sampled, not always the same tokens (a
partial UTF-8 character comes back as U+FFFD).
"""

from __future__ import annotations

import json
import selectors
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from phf.errors import PHFError
from phf.lm.local import LocalLM


@dataclass(frozen=True)
class Limits:
    """What the server takes on. `phf serve` has an option for each (--max-body-bytes...)."""
    max_body_bytes: int = 1 << 20  # a request body, by its Content-Length, checked before reading it
    max_prompts: int = 128  # prompts in one request
    max_n: int = 128  # samples per prompt (OpenAI's own limit)
    max_choices: int = 256  # samples in one request: prompts x n
    max_tokens: int | None = None  # new tokens per sample; None: as many as the model's positions leave
    max_prompt_tokens: int = 8192  # tokens in one prompt (scoring costs every one of them, for every sample)
    max_connections: int = 64  # connections served at once, a thread each; more are answered 503


class BadRequest(ValueError):
    pass


class ClientGone(Exception):
    """The client closed its connection: its request is dropped, unanswered."""


def _param(request: dict, key: str, kind: type, default, valid, rule: str):
    value = request.get(key)
    if value is None:
        return default
    # JSON true would pass for an int (bool subclasses int), and 1 is a fine float.
    numeric = (int, float) if kind is float else kind
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, numeric) or not valid(value):
        raise BadRequest(f"`{key}` must be {rule}, not {json.dumps(value)}")
    return float(value) if kind is float else value


def _prompts(request: dict, limits: Limits) -> tuple[list[str], list[str]]:
    """The request's prompts, and their names for errors."""
    prompts = request.get("prompt", "")
    single = isinstance(prompts, str)
    if single:
        prompts = [prompts]
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise BadRequest("`prompt` must be a string or a non-empty list of strings (token ids are not supported)")
    if len(prompts) > limits.max_prompts:
        raise BadRequest(f"`prompt` lists {len(prompts)} prompts; this server takes at most {limits.max_prompts} "
                         "in one request")
    names = ["`prompt`"] if single else [f"`prompt[{i}]`" for i in range(len(prompts))]
    for prompt, name in zip(prompts, names, strict=True):
        try:  # JSON can spell half of a surrogate pair ("\ud800"), which is no text: the tokenizer would fail on it
            prompt.encode("utf-8")
        except UnicodeEncodeError as e:
            raise BadRequest(f"{name} is not valid text: a lone surrogate at character {e.start}") from None
    return prompts, names


def complete(lm: LocalLM, request: object, limits: Limits = Limits(),
             exclusive: Callable[[], AbstractContextManager] = nullcontext) -> dict:
    """The answer to a /v1/completions request, in the OpenAI schema; a BadRequest for one beyond `limits`.
    The work on the model (its tokenizer included) is done within `exclusive()`, entered once the request's
    fields are checked: a server's lock, which a request that asks too much need not wait for."""
    if not isinstance(request, dict):
        raise BadRequest("the request body must be a JSON object")
    prompts, names = _prompts(request, limits)
    # The sampler leaves a prompt at least 2 of the model's positions (`phf.sampling.generate.sample`).
    most = lm.window - 2 if limits.max_tokens is None else min(limits.max_tokens, lm.window - 2)
    why = "this server's limit" if most == limits.max_tokens else \
        f"the model has {lm.window} positions, and the sampler's max_new_tokens leaves a prompt 2 of them"
    max_tokens = _param(request, "max_tokens", int, 16, lambda v: 0 <= v <= most, f"from 0 to {most} ({why})")
    temperature = _param(request, "temperature", float, 1.0, lambda v: v > 0, "> 0 (this server only samples)")
    top_p = _param(request, "top_p", float, 1.0, lambda v: 0 < v <= 1, "in (0, 1]")
    seed = _param(request, "seed", int, 0, lambda v: True, "an integer")
    n = _param(request, "n", int, 1, lambda v: 1 <= v <= limits.max_n, f"an integer from 1 to {limits.max_n}")
    echo = _param(request, "echo", bool, False, lambda v: True, "true or false")
    logprobs = _param(request, "logprobs", int, None, lambda v: v >= 0, "an integer >= 0 or null")
    if len(prompts) * n > limits.max_choices:
        raise BadRequest(f"{len(prompts)} prompts x n={n} ask for {len(prompts) * n} samples; this server makes at "
                         f"most {limits.max_choices} in one request")
    each = [p for p in prompts for _ in range(n)]  # choice i*n + j is prompt i's j-th sample, as in OpenAI's API
    with exclusive():
        prompt_tokens = [lm.tokenize(p) for p in prompts]  # their text is at most a request body long
        for name, (ids, _) in zip(names, prompt_tokens, strict=True):
            if len(ids) > limits.max_prompt_tokens:
                raise BadRequest(f"{name} is {len(ids)} tokens long; this server takes at most "
                                 f"{limits.max_prompt_tokens}")
        completions = (lm.generate(each, max_new_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)
                       if max_tokens else [""] * len(each))
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


def _error_body(status: int, message: str) -> bytes:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}}).encode()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 60  # seconds a client may stall sending its request or reading the answer: no thread held for ever

    def _send(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, _error_body(status, message))

    def _unknown(self, route: str) -> bool:
        if self.path.split("?")[0].rstrip("/") == route:
            return False
        self._error(404, f"no route {self.command} {self.path}; this server answers GET /v1/models and "
                         "POST /v1/completions")
        return True

    def do_GET(self) -> None:
        if self._unknown("/v1/models"):
            return
        self._send(200, json.dumps({"object": "list", "data": [{"id": self.server.lm.name, "object": "model",
                                                                "created": 0, "owned_by": "phf"}]}).encode())

    def do_POST(self) -> None:
        if self._unknown("/v1/completions"):
            return
        limit, length = self.server.limits.max_body_bytes, self.headers.get("Content-Length")
        if length is None:
            return self._error(411, "a POST needs a Content-Length header (chunked bodies are not supported)")
        if not (length.isascii() and length.isdigit()):
            return self._error(400, f"Content-Length must be a number of bytes, not {length!r}")
        if int(length) > limit:
            # Answered before reading any of it; the connection then closes. A client still sending may see
            # its send fail, but the 413 is already on its way to it.
            return self._error(413, f"the request body is {length} bytes; this server takes at most {limit}")
        try:
            request = json.loads(self.rfile.read(int(length)) or b"null")
            body = complete(self.server.lm, request, self.server.limits, self._model)
        except ClientGone:
            return self.log_message("client gone: request dropped")
        except RecursionError:  # JSON nested deeper than Python parses
            return self._error(400, "the request body is JSON nested too deep")
        except (ValueError, PHFError) as e:  # a BadRequest, bad JSON, or a setting the sampler refuses
            return self._error(400, " ".join(str(e).split()))
        except Exception:  # the client gets a JSON error rather than a dropped connection; the details are ours
            self.log_error("%s", traceback.format_exc())
            return self._error(500, "internal server error (the server's log has the details)")
        self._send(200, json.dumps(body).encode())

    @contextmanager
    def _model(self) -> Iterator[None]:
        """The model, to this request alone; ClientGone once its client has gone, while waiting for the model
        or before any forward pass of it (one sampling step, one batch of scoring)."""
        while not self.server.lock.acquire(timeout=0.1):  # one request at a time; the others wait in turn
            if self._client_gone():
                raise ClientGone

        def check(module, args) -> None:
            if self._client_gone():
                raise ClientGone  # out of the sampler or scorer, which start afresh on the next request

        # A hook rather than sampling in pieces: one sampler call draws one random stream, so a request that
        # finishes gives the same completions as before.
        hook = self.server.lm.loaded.model.register_forward_pre_hook(check)
        try:
            yield
        finally:
            hook.remove()
            self.server.lock.release()

    def _client_gone(self) -> bool:
        """Whether the client has closed its connection: with its request read, the socket reads as ended."""
        try:
            with selectors.DefaultSelector() as waiting:  # not select.select: it fails on descriptors past 1023
                waiting.register(self.connection, selectors.EVENT_READ)
                return bool(waiting.select(0)) and not self.connection.recv(1, socket.MSG_PEEK)
        except OSError:  # reset by the client
            return True


class _Server(ThreadingHTTPServer):  # its request threads are daemons: a hung request cannot block an exit
    request_queue_size = 1024  # the listen backlog; socketserver's 5 had a burst of connections reset

    def __init__(self, lm: LocalLM, host: str, port: int, limits: Limits):
        super().__init__((host, port), _Handler)
        self.lm, self.limits, self.lock = lm, limits, threading.Lock()
        self.slots = threading.BoundedSemaphore(limits.max_connections)  # one per connection being served

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            return self._busy(request)
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def _busy(self, request: socket.socket) -> None:
        """A 503 from the accepting thread, without reading the request: a busy server answers at once. The
        client reads it even though the closing connection then drops its unread request."""
        body = _error_body(503, f"the server is busy ({self.limits.max_connections} connections at once); "
                                "retry shortly")
        head = (f"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n").encode()
        try:
            request.setblocking(False)  # the answer fits a new connection's empty send buffer; never wait here
            request.send(head + body)
        except OSError:  # the client has gone already
            pass
        self.shutdown_request(request)


def make_server(lm: LocalLM, host: str = "127.0.0.1", port: int = 8000,
                limits: Limits = Limits()) -> ThreadingHTTPServer:
    """A server bound to host:port (0: any free port), not yet serving: call its serve_forever()."""
    return _Server(lm, host, port, limits)


def start_server(lm: LocalLM, host: str = "127.0.0.1", port: int = 0,
                 limits: Limits = Limits()) -> tuple[ThreadingHTTPServer, threading.Thread, str]:
    """Serve `lm` from a background thread; returns the server (stop it with shutdown()), the thread and the
    base URL to give `OpenAICompatibleLM`."""
    server = make_server(lm, host, port, limits)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="phf-serve")
    thread.start()
    return server, thread, f"http://{host}:{server.server_address[1]}/v1"
