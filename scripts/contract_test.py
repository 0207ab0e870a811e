#!/usr/bin/env python3
"""Holds a running xn hub to its OpenAPI document (Sources/XNHub/openapi.yaml).

Usage:
    python3 scripts/contract_test.py PATH_TO_XN_BINARY [--spec PATH_TO_OPENAPI_YAML]

Needs Python 3.11+, jsonschema and PyYAML (pip install jsonschema PyYAML).

Starts hubs on 127.0.0.1 port 0 with temporary data folders, exercises every operation of the
document with good and bad input, and checks for each response that its status code is declared
for the operation, its content type is declared, its JSON body validates against the declared
schema and its declared headers are present and valid. It also checks that the served
/openapi.yaml is the repository file byte for byte, that the document's request schemas accept
what the hub accepts and refuse what it refuses, and that every path and method of the document
was exercised. One hub gets bearer tokens (the first made on the open hub, the others with it)
and is held to the document's 401, 403, token and ownership answers; the WebSocket routes are
also asked with a real upgrade (101, or a refused one), and an attach session types into a job
so that its transcript can be read back (asciicast v2, each line checked against the document).
One hub has limits of its own (--limit-*, --max-output, --max-timeout) that jobs may not exceed.
Prints one line per check; exits 1 listing every failure.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from xn_wire import HTTP_TIMEOUT, Response, WebSocket, upgrade

DOC_URI = "urn:xn:openapi"
BANNER = re.compile(r"xn hub listening on http://127\.0\.0\.1:(\d+)")
START_TIMEOUT = 30.0

MAX_BODY = 1 << 20
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
ZERO_ID = "0" * 40
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SECRET = re.compile(r"xn_[A-Za-z0-9_-]{43}")


# ---------------------------------------------------------------------------------------------
# Results


class Results:
    def __init__(self) -> None:
        self.count = 0
        self.failures: list[str] = []

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        self.count += 1
        if ok:
            print(f"PASS {what}", flush=True)
        else:
            text = f"{what}: {detail}" if detail else what
            self.failures.append(text)
            print(f"FAIL {text}", flush=True)
        return ok


# ---------------------------------------------------------------------------------------------
# The document


def escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


class Spec:
    """The OpenAPI document, with JSON Schema validation of any location inside it."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.doc = yaml.safe_load(raw)
        resource = Resource.from_contents(self.doc, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(DOC_URI, resource)

    def at(self, pointer: str) -> Any:
        node = self.doc
        for token in pointer.split("/")[1:]:
            token = token.replace("~1", "/").replace("~0", "~")
            node = node[int(token)] if isinstance(node, list) else node[token]
        return node

    def deref(self, node: Any, pointer: str) -> tuple[Any, str]:
        """Follows local `$ref`s of OpenAPI objects (responses, headers, parameters)."""
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/") or seen > 20:
                raise ValueError(f"cannot follow $ref {ref!r} at {pointer}")
            pointer = ref[1:]
            node = self.at(pointer)
            seen += 1
        return node, pointer

    def validator(self, pointer: str) -> Draft202012Validator:
        return Draft202012Validator({"$ref": f"{DOC_URI}#{pointer}"}, registry=self.registry)

    def errors(self, pointer: str, instance: Any) -> list[str]:
        found = sorted(self.validator(pointer).iter_errors(instance), key=lambda e: list(e.absolute_path))
        return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in found]

    def operations(self) -> set[tuple[str, str]]:
        ops = set()
        for path, item in self.doc.get("paths", {}).items():
            for method in item:
                if method in HTTP_METHODS:
                    ops.add((method.upper(), path))
        return ops

    def operation_pointer(self, method: str, template: str) -> str:
        return f"/paths/{escape(template)}/{method.lower()}"


# ---------------------------------------------------------------------------------------------
# A hub process


class Hub:
    """One `xn hub` on 127.0.0.1, port 0, with a temporary data folder."""

    def __init__(self, binary: str, extra: list[str], label: str) -> None:
        self.binary = binary
        self.extra = extra
        self.label = label
        self.data = tempfile.mkdtemp(prefix="xn-contract-")
        self.log = tempfile.TemporaryFile()
        self.process: subprocess.Popen[bytes] | None = None
        self.base = ""

    def start(self) -> None:
        argv = [self.binary, "hub", "-p", "0", "-i", "127.0.0.1", "--data", self.data,
                "--kill-grace", "1", "--grace", "1", *self.extra]
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log, start_new_session=True)
        lines: queue.Queue[bytes | None] = queue.Queue()

        def drain(stream: Any) -> None:
            for line in iter(stream.readline, b""):
                lines.put(line)
            lines.put(None)

        threading.Thread(target=drain, args=(self.process.stdout,), daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{self.label}: no banner within {START_TIMEOUT:.0f} s{self.stderr_tail()}")
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.process.wait(timeout=5)
                raise RuntimeError(
                    f"{self.label}: hub exited ({self.process.returncode}) before listening{self.stderr_tail()}")
            match = BANNER.search(line.decode("utf-8", "replace"))
            if match:
                self.base = f"http://127.0.0.1:{match.group(1)}"
                print(f"---- {self.label}: {' '.join(argv[1:])} -> {self.base}", flush=True)
                return

    def stderr_tail(self) -> str:
        self.log.seek(0)
        text = self.log.read().decode("utf-8", "replace").strip()
        return f"\n--- hub stderr ---\n{text[-4000:]}" if text else ""

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=10)
        if process is not None and process.stdout is not None:
            process.stdout.close()
        self.log.close()
        shutil.rmtree(self.data, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# HTTP


def http(base: str, method: str, path: str, body: bytes | None = None, timeout: float = HTTP_TIMEOUT,
         headers: dict[str, str] | None = None) -> Response:
    headers = {**({"Content-Type": "application/json"} if body is not None else {}), **(headers or {})}
    request = urllib.request.Request(base + path, data=body, method=method, headers=headers)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return Response(answer.status, answer.headers, answer.read(), time.monotonic() - started)
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, error.headers, error.read(), time.monotonic() - started)


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token is not None else {}


# ---------------------------------------------------------------------------------------------
# The contract checks


class Contract:
    def __init__(self, spec: Spec, results: Results) -> None:
        self.spec = spec
        self.results = results
        self.exercised: set[tuple[str, str]] = set()

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        return self.results.check(ok, what, detail)

    @staticmethod
    def path(template: str, id: str | None, name: str | None, query: dict[str, str] | None,
             session: str | None = None) -> str:
        path = template.replace("{id}", urllib.parse.quote(id, safe="")) if id is not None else template
        # Token names need no escaping (`@` and `.` are fine in a path); a `%` is sent as it is,
        # so a test can send a name percent-encoded (the hub decodes it).
        path = path.replace("{name}", urllib.parse.quote(name, safe="@.%")) if name is not None else path
        path = path.replace("{session}", urllib.parse.quote(session, safe="")) if session is not None else path
        if query:
            path += "?" + urllib.parse.urlencode(query)
        return path

    def call(self, hub: Hub, method: str, template: str, label: str, *, id: str | None = None,
             name: str | None = None, session: str | None = None, query: dict[str, str] | None = None,
             body: Any = None, raw: bytes | None = None, token: str | None = None,
             headers: dict[str, str] | None = None, expect: int | None = None,
             request_ok: bool | None = None) -> Response | None:
        """One request to a documented operation, checked against the document.

        `body` is sent as JSON (`raw` as is). `request_ok` says whether the document's request
        schema should accept `body`: it should agree with the hub. `token` is sent as a bearer
        token; `headers` are sent as they are.
        """
        path = self.path(template, id, name, query, session)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        what = f"{method} {template} [{label}]"
        self.exercised.add((method, template))
        try:
            response = http(hub.base, method, path, data, headers={**bearer(token), **(headers or {})})
        except Exception as error:  # noqa: BLE001 - any transport failure is a failed check
            self.check(False, f"{what}: request completes", repr(error))
            return None
        if expect is not None:
            self.check(response.status == expect, f"{what}: status {expect}",
                       f"got {response.status} {response.body[:300]!r}")
        self.check_response(what, method, template, response)
        if request_ok is not None and body is not None:
            self.check_request_schema(what, method, template, body, request_ok)
        return response

    def call_upgrade(self, hub: Hub, template: str, label: str, *, id: str | None = None,
                     query: dict[str, str] | None = None, token: str | None = None, protocol: str | None = None,
                     expect: int | None = None) -> Response | None:
        """A WebSocket upgrade to a documented GET operation, checked against the document; a 101
        also has its Sec-WebSocket-Accept checked against the key sent. The connection is then
        closed."""
        return self.open_upgrade(hub, template, label, id=id, query=query, token=token, protocol=protocol,
                                 expect=expect, keep=False)[0]

    def open_upgrade(self, hub: Hub, template: str, label: str, *, id: str | None = None,
                     query: dict[str, str] | None = None, token: str | None = None, protocol: str | None = None,
                     expect: int | None = None, keep: bool = True) -> tuple[Response | None, WebSocket | None]:
        """`call_upgrade`, which with `keep` also gives the open WebSocket of a 101 (to be closed)."""
        path = self.path(template, id, None, query)
        headers = bearer(token) | ({"Sec-WebSocket-Protocol": protocol} if protocol else {})
        what = f"GET {template} [upgrade: {label}]"
        self.exercised.add(("GET", template))
        try:
            response, key, websocket = upgrade(hub.base, path, headers, keep=keep)
        except Exception as error:  # noqa: BLE001
            self.check(False, f"{what}: request completes", repr(error))
            return None, None
        if expect is not None:
            self.check(response.status == expect, f"{what}: status {expect}",
                       f"got {response.status} {response.body[:300]!r}")
        self.check_response(what, "GET", template, response)
        if response.status == 101:
            accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
            got = response.headers.get("Sec-WebSocket-Accept")
            self.check(got == accept, f"{what}: Sec-WebSocket-Accept answers the key", f"got {got!r}")
        return response, websocket

    def check_response(self, name: str, method: str, template: str, response: Response) -> None:
        op_pointer = self.spec.operation_pointer(method, template)
        try:
            operation = self.spec.at(op_pointer)
        except (KeyError, IndexError, TypeError):
            self.check(False, f"{name}: operation is in the document")
            return
        code = str(response.status)
        declared = operation.get("responses", {})
        if not self.check(code in declared, f"{name}: status {code} is declared",
                          f"declared: {sorted(declared)}; body {response.body[:300]!r}"):
            return
        answer, pointer = self.spec.deref(declared[code], f"{op_pointer}/responses/{code}")
        self.check_answer(name, answer, pointer, response)

    def check_answer(self, name: str, answer: dict[str, Any], pointer: str, response: Response) -> None:
        content = answer.get("content", {})
        if not content:
            self.check(response.body == b"", f"{name}: no body, as declared", f"got {response.body[:200]!r}")
        elif self.check(response.media_type in content, f"{name}: content type {response.media_type!r} is declared",
                        f"declared: {sorted(content)}"):
            if response.media_type == "application/json":
                try:
                    value = response.json()
                except ValueError as error:
                    self.check(False, f"{name}: body is JSON", f"{error}: {response.body[:300]!r}")
                else:
                    schema = f"{pointer}/content/{escape(response.media_type)}/schema"
                    problems = self.spec.errors(schema, value)
                    self.check(not problems, f"{name}: body matches the schema", "; ".join(problems[:5]))
        for header_name, header in answer.get("headers", {}).items():
            header, header_pointer = self.spec.deref(header, f"{pointer}/headers/{escape(header_name)}")
            value = response.headers.get(header_name)
            if value is None:
                self.check(not header.get("required", False), f"{name}: header {header_name} present")
                continue
            candidates: list[Any] = [value]
            if re.fullmatch(r"-?[0-9]+", value):
                candidates.append(int(value))
            valid = any(not self.spec.errors(f"{header_pointer}/schema", c) for c in candidates)
            self.check(valid, f"{name}: header {header_name}={value!r} matches its schema")

    def check_unrouted(self, hub: Hub, method: str, path: str, expect: int, schema: str,
                       token: str | None = None, label: str = "unknown route") -> None:
        """A route the hub does not serve: the documented fallback status and body."""
        name = f"{method} {path} [{label}]"
        try:
            response = http(hub.base, method, path, headers=bearer(token))
        except Exception as error:  # noqa: BLE001
            self.check(False, f"{name}: request completes", repr(error))
            return
        self.check(response.status == expect, f"{name}: status {expect}", f"got {response.status}")
        try:
            value = response.json()
        except ValueError:
            self.check(False, f"{name}: body is JSON", repr(response.body[:200]))
            return
        problems = self.spec.errors(f"/components/schemas/{schema}", value)
        self.check(not problems, f"{name}: body matches {schema}", "; ".join(problems))
        if expect == 401:
            self.check(response.headers.get("WWW-Authenticate") == "Bearer", f"{name}: WWW-Authenticate: Bearer",
                       f"got {response.headers.get('WWW-Authenticate')!r}")

    def check_request_schema(self, name: str, method: str, template: str, body: Any, accepted: bool) -> None:
        op_pointer = self.spec.operation_pointer(method, template)
        request_body = self.spec.at(op_pointer).get("requestBody")
        if request_body is None:
            self.check(False, f"{name}: operation declares a request body")
            return
        request_body, pointer = self.spec.deref(request_body, f"{op_pointer}/requestBody")
        problems = self.spec.errors(f"{pointer}/content/application~1json/schema", body)
        if accepted:
            self.check(not problems, f"{name}: request schema accepts what the hub accepts", "; ".join(problems))
        else:
            self.check(bool(problems), f"{name}: request schema refuses what the hub refuses",
                       "the document's schema accepts this body")

    def error_is(self, response: Response | None, name: str, code: str, field: str | None = None) -> None:
        """A v1 error's machine code and field."""
        if response is None:
            return
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            self.check(False, f"{name}: error code {code}", f"body {response.body[:200]!r}")
            return
        self.check(error.get("code") == code, f"{name}: error code {code}", f"got {error.get('code')!r}")
        if field is not None:
            self.check(error.get("field") == field, f"{name}: error field {field}", f"got {error.get('field')!r}")


def json_of(response: Response | None) -> Any:
    if response is None:
        return None
    try:
        return response.json()
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# Scenarios


def run_document_checks(spec: Spec, c: Contract) -> None:
    schemas = spec.doc.get("components", {}).get("schemas", {})
    for name in sorted(schemas):
        try:
            Draft202012Validator.check_schema(schemas[name])
            ok, detail = True, ""
        except Exception as error:  # noqa: BLE001
            ok, detail = False, str(error).splitlines()[0]
        c.check(ok, f"document: components.schemas.{name} is a valid JSON Schema", detail)
        if ok:
            try:
                spec.validator(f"/components/schemas/{escape(name)}").is_valid({})  # resolves its $refs
            except Exception as error:  # noqa: BLE001
                c.check(False, f"document: components.schemas.{name} refs resolve", repr(error))
    compat = schemas.get("CompatRequest", {}).get("properties")
    c.check(compat is not None and compat == schemas.get("JobSpec", {}).get("properties"),
            "document: CompatRequest has the same fields as JobSpec")
    bearer_scheme = spec.doc.get("components", {}).get("securitySchemes", {}).get("bearer", {})
    c.check(bearer_scheme.get("type") == "http" and bearer_scheme.get("scheme") == "bearer",
            "document: components.securitySchemes.bearer is HTTP bearer")
    c.check(spec.doc.get("security") == [{"bearer": []}, {}], "document: security is a bearer token or nothing",
            f"got {spec.doc.get('security')!r}")
    for method, path in sorted(spec.operations(), key=lambda op: (op[1], op[0])):
        operation = spec.at(spec.operation_pointer(method, path))
        responses = operation.get("responses", {})
        if operation.get("security") == []:
            c.check("401" not in responses and "403" not in responses,
                    f"document: {method} {path} needs no token and declares no 401 or 403")
            continue
        c.check("401" in responses and "403" in responses, f"document: {method} {path} declares 401 and 403")


def run_meta(hub: Hub, c: Contract) -> None:
    r = c.call(hub, "GET", "/healthz", "serving", expect=200)
    c.check((json_of(r) or {}) == {"status": "ok"}, "GET /healthz: status ok and nothing else")
    r = c.call(hub, "GET", "/readyz", "recovered", expect=200)
    c.check((json_of(r) or {}) == {"status": "ready"}, "GET /readyz: status ready and nothing else")
    r = c.call(hub, "GET", "/v1/workers", "no worker connected", expect=200)
    c.check((json_of(r) or {}).get("workers") == [], "GET /v1/workers: empty without workers")
    # A page of another origin, or a rebound name: refused before anything else, as documented.
    evil = {"Origin": "http://evil.example"}
    r = c.call(hub, "POST", "/v1/jobs", "page of another origin", body={"command": "true"}, headers=evil,
               expect=403)
    c.error_is(r, "POST /v1/jobs from a page of another origin", "forbidden")
    c.call(hub, "POST", "/", "page of another origin", body={"command": "true"}, headers=evil, expect=403)
    r = c.call(hub, "GET", "/v1/jobs", "rebound name", headers={"Host": "attacker.example"}, expect=403)
    c.error_is(r, "GET /v1/jobs under a rebound name", "forbidden")
    c.call(hub, "GET", "/healthz", "any Host", headers={"Host": "lb.internal"}, expect=200)
    r = c.call(hub, "GET", "/metrics", "exposition", expect=200)
    if r is not None:
        text = r.body.decode("utf-8", "replace")
        c.check(r.headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
                "GET /metrics: Prometheus text format 0.0.4", f"got {r.headers.get('Content-Type')!r}")
        c.check("# TYPE xn_jobs_submitted_total counter" in text, "GET /metrics: xn_jobs_submitted_total is a counter")
    r = c.call(hub, "GET", "/openapi.yaml", "served document", expect=200)
    if r is not None:
        c.check(r.body == c.spec.raw, "GET /openapi.yaml: served document equals the repository file byte for byte",
                f"served {len(r.body)} bytes, file has {len(c.spec.raw)} bytes (is the binary built from this file?)")


def poll(hub: Hub, path: str, done: Any, seconds: float = 10.0) -> Any:
    """GETs `path` until `done(json)` or the time runs out; returns the last JSON."""
    deadline = time.monotonic() + seconds
    value = None
    while time.monotonic() < deadline:
        try:
            value = http(hub.base, "GET", path, timeout=10).json()
        except (ValueError, OSError):
            value = None
        if value is not None and done(value):
            return value
        time.sleep(0.05)
    return value


def run_compat(hub: Hub, c: Contract) -> None:
    r = c.call(hub, "POST", "/", "valid submit, string args, unknown field",
               body={"command": "echo", "args": "hello  compat", "not_a_field": True}, expect=202, request_ok=True)
    job = json_of(r)
    if isinstance(job, dict) and "id" in job:
        c.check(job.get("arguments") == ["hello", "compat"], "POST /: string args are split on whitespace",
                f"got {job.get('arguments')!r}")
        c.check(job.get("code") is None, "POST /: code is null for a new job", f"got {job.get('code')!r}")
        poll(hub, "/" + job["id"], lambda v: v.get("code") is not None or v.get("err") is not None)
        r = c.call(hub, "GET", "/{id}", "finished job", id=job["id"], expect=200)
        done = json_of(r) or {}
        c.check(done.get("code") == 0 and done.get("stdout") == "hello compat\n",
                "GET /{id}: exit code 0 and stdout", f"got code {done.get('code')!r} stdout {done.get('stdout')!r}")
        r = c.call(hub, "GET", "/{id}", "upper-case id", id=job["id"].upper(), expect=200)
        c.check((json_of(r) or {}).get("id") == job["id"], "GET /{id}: upper-case id finds the job")
    c.call(hub, "GET", "/{id}", "unknown id", id=ZERO_ID, expect=404)
    c.call(hub, "GET", "/{id}", "malformed id", id="not-a-job-id", expect=501)
    c.call(hub, "GET", "/{id}", "39 hex characters", id="a" * 39, expect=501)
    c.call(hub, "POST", "/", "bad JSON", raw=b'{"command": "echo",', expect=400)
    c.call(hub, "POST", "/", "body not an object", body=["echo"], expect=400, request_ok=False)
    c.call(hub, "POST", "/", "missing command", body={"args": ["x"]}, expect=400, request_ok=False)
    c.call(hub, "POST", "/", "non-string command", body={"command": 5}, expect=400, request_ok=False)
    c.call(hub, "POST", "/", "args of wrong type", body={"command": "echo", "args": 5}, expect=400, request_ok=False)
    c.call(hub, "POST", "/", "body over 1 MiB", body={"command": "echo", "args": ["x" * MAX_BODY]}, expect=413)


def submit_v1(hub: Hub, c: Contract, label: str, body: Any, wait: str | None = None,
              token: str | None = None) -> dict[str, Any]:
    query = {"wait": wait} if wait is not None else None
    r = c.call(hub, "POST", "/v1/jobs", label, query=query, body=body, token=token, expect=201, request_ok=True)
    value = json_of(r)
    return value if isinstance(value, dict) else {}


def run_v1(hub: Hub, c: Contract) -> None:
    # Submit: good bodies.
    plain = submit_v1(hub, c, "valid submit", {"command": "echo", "args": ["hello", "v1"], "name": "greeting"})
    c.check("id" in plain and "stdout" not in plain and "stderr" not in plain,
            "POST /v1/jobs: answer without wait has no stdout/stderr", f"keys {sorted(plain)}")
    c.check("id" in plain and "owner" not in plain, "POST /v1/jobs: no owner on a hub without tokens")
    mixed = submit_v1(hub, c, "wait=5, invalid UTF-8 output, exit 3", {
        "command": "sh", "args": ["-c", r"printf 'ab\377cd'; printf oops >&2; exit 3"]}, wait="5")
    c.check(mixed.get("state") == "failed" and mixed.get("exit_code") == 3,
            "POST /v1/jobs?wait=5: job ended failed with exit code 3",
            f"state {mixed.get('state')!r} exit_code {mixed.get('exit_code')!r}")
    c.check(mixed.get("stdout") == "ab\ufffdcd" and mixed.get("stderr") == "oops",
            "POST /v1/jobs?wait=5: output text with invalid bytes replaced by U+FFFD",
            f"stdout {mixed.get('stdout')!r} stderr {mixed.get('stderr')!r}")
    rich = submit_v1(hub, c, "wait=5, env, cwd, stdin, null args, timeout", {
        "command": "sh", "args": ["-c", 'cat; echo "$XN_CONTRACT"; pwd'], "env": {"XN_CONTRACT": "yes"},
        "cwd": "/", "stdin": "from stdin\n", "timeout": 30, "name": None, "callback": None}, wait="5")
    c.check(rich.get("state") == "succeeded" and rich.get("stdout") == "from stdin\nyes\n/\n",
            "POST /v1/jobs?wait=5: env, cwd and stdin reach the process",
            f"state {rich.get('state')!r} stdout {rich.get('stdout')!r}")
    timed = submit_v1(hub, c, "wait=5, timeout 0.3 s", {"command": "sleep", "args": "10", "timeout": 0.3}, wait="5")
    c.check(timed.get("state") == "timed_out" and "err" in timed,
            "POST /v1/jobs?wait=5: job past its timeout ends timed_out with err", f"got {timed.get('state')!r}")
    missing = submit_v1(hub, c, "wait=5, command that does not exist",
                        {"command": "xn-contract-no-such-command"}, wait="5")
    c.check(missing.get("state") == "failed" and "err" in missing and "exit_code" not in missing,
            "POST /v1/jobs?wait=5: unknown command fails with err and no exit_code", f"got {missing!r}"[:300])

    # Submit: bad input.
    r = c.call(hub, "POST", "/v1/jobs", "bad JSON", raw=b"{nope", expect=400)
    c.error_is(r, "POST /v1/jobs [bad JSON]", "invalid_body")
    r = c.call(hub, "POST", "/v1/jobs", "body not an object", body=[], expect=400, request_ok=False)
    c.error_is(r, "POST /v1/jobs [body not an object]", "invalid_body")
    bad_bodies: list[tuple[str, Any, str]] = [
        ("missing command", {"args": []}, "command"),
        ("non-string command", {"command": 5}, "command"),
        ("empty command", {"command": ""}, "command"),
        ("args of wrong type", {"command": "echo", "args": {"a": 1}}, "args"),
        ("args item of wrong type", {"command": "echo", "args": ["ok", 1]}, "args"),
        ("unknown field", {"command": "echo", "timout": 5}, "timout"),
        ("env value not a string", {"command": "echo", "env": {"A": 1}}, "env"),
        ("zero timeout", {"command": "echo", "timeout": 0}, "timeout"),
        ("boolean timeout", {"command": "echo", "timeout": True}, "timeout"),
        ("name over 200 characters", {"command": "echo", "name": "n" * 201}, "name"),
        ("callback not http", {"command": "echo", "callback": "file:///etc/passwd"}, "callback"),
        ("NUL in command", {"command": "ec\0ho"}, "command"),
        ("NUL in an args item", {"command": "echo", "args": ["a\0b"]}, "args"),
        ("NUL in cwd", {"command": "echo", "cwd": "/tmp\0"}, "cwd"),
        ("NUL in an env name", {"command": "echo", "env": {"A\0B": "x"}}, "env"),
        ("NUL in an env value", {"command": "echo", "env": {"A": "x\0"}}, "env"),
        ("empty label name", {"command": "echo", "labels": {"": "x"}}, "labels"),
    ]
    for label, body, field in bad_bodies:
        r = c.call(hub, "POST", "/v1/jobs", label, body=body, expect=400, request_ok=False)
        c.error_is(r, f"POST /v1/jobs [{label}]", "invalid_field", field)
    for wait in ("abc", "-1", "301"):
        r = c.call(hub, "POST", "/v1/jobs", f"wait={wait}", query={"wait": wait}, body={"command": "echo"},
                   expect=400)
        c.error_is(r, f"POST /v1/jobs [wait={wait}]", "invalid_query", "wait")
    r = c.call(hub, "POST", "/v1/jobs", "body over 1 MiB", body={"command": "echo", "args": ["x" * MAX_BODY]},
               expect=413)
    c.error_is(r, "POST /v1/jobs [body over 1 MiB]", "body_too_large")

    # Get.
    if "id" in plain:
        r = c.call(hub, "GET", "/v1/jobs/{id}", "wait=5", id=plain["id"], query={"wait": "5"}, expect=200)
        got = json_of(r) or {}
        c.check(got.get("state") == "succeeded" and got.get("stdout") == "hello v1\n" and got.get("stderr") == "",
                "GET /v1/jobs/{id}?wait=5: finished job with stdout and stderr",
                f"state {got.get('state')!r} stdout {got.get('stdout')!r}")
        c.check(got.get("name") == "greeting" and "finished_at" in got and "started_at" in got,
                "GET /v1/jobs/{id}: name and times present")
        r = c.call(hub, "GET", "/v1/jobs/{id}", "upper-case id", id=plain["id"].upper(), expect=200)
        c.check((json_of(r) or {}).get("id") == plain["id"], "GET /v1/jobs/{id}: upper-case id finds the job")
        r = c.call(hub, "GET", "/v1/jobs/{id}", "bad wait", id=plain["id"], query={"wait": "soon"}, expect=400)
        c.error_is(r, "GET /v1/jobs/{id} [bad wait]", "invalid_query", "wait")
    r = c.call(hub, "GET", "/v1/jobs/{id}", "unknown id", id=ZERO_ID, expect=404)
    c.error_is(r, "GET /v1/jobs/{id} [unknown id]", "job_not_found")
    r = c.call(hub, "GET", "/v1/jobs/{id}", "malformed id", id="xyz", expect=404)
    c.error_is(r, "GET /v1/jobs/{id} [malformed id]", "job_not_found", "id")

    # List.
    r = c.call(hub, "GET", "/v1/jobs", "all", expect=200)
    page = json_of(r) or {}
    jobs = page.get("jobs", [])
    c.check(all("stdout" not in j and "stderr" not in j for j in jobs), "GET /v1/jobs: listed jobs have no output text")
    ids = [j.get("id") for j in jobs]
    if "id" in plain and "id" in missing and plain["id"] in ids and missing["id"] in ids:
        c.check(ids.index(missing["id"]) < ids.index(plain["id"]), "GET /v1/jobs: newest first")
    r = c.call(hub, "GET", "/v1/jobs", "state filter", query={"state": "succeeded,timed_out"}, expect=200)
    states = {j.get("state") for j in (json_of(r) or {}).get("jobs", [])}
    c.check(bool(states) and states <= {"succeeded", "timed_out"}, "GET /v1/jobs?state=succeeded,timed_out: only those",
            f"got {sorted(map(str, states))}")
    r = c.call(hub, "GET", "/v1/jobs", "limit=1", query={"limit": "1"}, expect=200)
    first = json_of(r) or {}
    c.check(len(first.get("jobs", [])) == 1 and "next" in first, "GET /v1/jobs?limit=1: one job and a next cursor")
    if "next" in first:
        r = c.call(hub, "GET", "/v1/jobs", "before=next", query={"limit": "1", "before": first["next"]}, expect=200)
        second = json_of(r) or {}
        c.check(len(second.get("jobs", [])) == 1 and second["jobs"][0].get("id") != first["jobs"][0].get("id"),
                "GET /v1/jobs?before=next: the next older job")
    r = c.call(hub, "GET", "/v1/jobs", "empty page", query={"before": "1"}, expect=200)
    c.check(json_of(r) == {"jobs": []}, "GET /v1/jobs?before=1: empty last page without next", f"got {r and r.body!r}")
    for label, query, field in [
        ("unknown state", {"state": "running,bogus"}, "state"),
        ("limit 0", {"limit": "0"}, "limit"),
        ("limit 1001", {"limit": "1001"}, "limit"),
        ("limit not a number", {"limit": "ten"}, "limit"),
        ("before not a cursor", {"before": "abc"}, "before"),
    ]:
        r = c.call(hub, "GET", "/v1/jobs", label, query=query, expect=400)
        c.error_is(r, f"GET /v1/jobs [{label}]", "invalid_query", field)

    # Raw output.
    if "id" in mixed:
        jid = mixed["id"]
        for label, stream, query, want in [
            ("whole stream", "stdout", None, b"ab\xffcd"),
            ("offset=2", "stdout", {"offset": "2"}, b"\xffcd"),
            ("offset=1 limit=2", "stdout", {"offset": "1", "limit": "2"}, b"b\xff"),
            ("offset past the end", "stdout", {"offset": "100"}, b""),
            ("limit=0", "stdout", {"limit": "0"}, b""),
            ("whole stream", "stderr", None, b"oops"),
            ("offset=1", "stderr", {"offset": "1"}, b"ops"),
        ]:
            template = f"/v1/jobs/{{id}}/{stream}"
            r = c.call(hub, "GET", template, label, id=jid, query=query, expect=200)
            if r is not None:
                c.check(r.body == want, f"GET {template} [{label}]: exact bytes {want!r}", f"got {r.body!r}")
                total = 5 if stream == "stdout" else 4
                c.check(r.headers.get("X-Xn-Total-Bytes") == str(total)
                        and r.headers.get("X-Xn-Truncated") == "false"
                        and r.headers.get("X-Xn-Job-State") == "failed",
                        f"GET {template} [{label}]: header values",
                        f"{r.headers.get('X-Xn-Total-Bytes')} {r.headers.get('X-Xn-Truncated')} "
                        f"{r.headers.get('X-Xn-Job-State')}")
        for stream in ("stdout", "stderr"):
            template = f"/v1/jobs/{{id}}/{stream}"
            r = c.call(hub, "GET", template, "negative offset", id=jid, query={"offset": "-1"}, expect=400)
            c.error_is(r, f"GET {template} [negative offset]", "invalid_query", "offset")
            r = c.call(hub, "GET", template, "limit not a number", id=jid, query={"limit": "all"}, expect=400)
            c.error_is(r, f"GET {template} [limit not a number]", "invalid_query", "limit")
            r = c.call(hub, "GET", template, "unknown id", id=ZERO_ID, expect=404)
            c.error_is(r, f"GET {template} [unknown id]", "job_not_found")
            r = c.call(hub, "GET", template, "malformed id", id="nope", expect=404)
            c.error_is(r, f"GET {template} [malformed id]", "job_not_found", "id")

    # Cancel (and signals, while the sleeper runs).
    sleeper = submit_v1(hub, c, "sleep 30 to cancel", {"command": "sleep", "args": ["30"]})
    if "id" in sleeper:
        running = poll(hub, f"/v1/jobs/{sleeper['id']}", lambda v: v.get("state") == "running")
        c.check((running or {}).get("state") == "running", "sleep 30 is running before the cancel")
        r = c.call(hub, "POST", "/v1/jobs/{id}/signal", "CONT to a running job", id=sleeper["id"],
                   body={"signal": "SIGCONT"}, expect=202, request_ok=True)
        c.check((json_of(r) or {}).get("state") == "running",
                "POST /v1/jobs/{id}/signal: the job still runs after CONT")
        r = c.call(hub, "POST", "/v1/jobs/{id}/signal", "unknown signal", id=sleeper["id"],
                   body={"signal": "SEGV"}, expect=400, request_ok=True)
        c.error_is(r, "POST /v1/jobs/{id}/signal [unknown signal]", "invalid_field", "signal")
        r = c.call(hub, "POST", "/v1/jobs/{id}/signal", "extra field", id=sleeper["id"],
                   body={"signal": "INT", "to": "all"}, expect=400, request_ok=False)
        c.error_is(r, "POST /v1/jobs/{id}/signal [extra field]", "invalid_field", "signal")
        r = c.call(hub, "GET", "/v1/jobs/{id}", "running job", id=sleeper["id"], expect=200)
        c.check("started_at" in (json_of(r) or {}) and "finished_at" not in (json_of(r) or {}),
                "GET /v1/jobs/{id} [running job]: started_at present, finished_at absent")
        r = c.call(hub, "GET", "/v1/jobs/{id}/stdout", "running job", id=sleeper["id"], expect=200)
        c.check(r is not None and r.headers.get("X-Xn-Job-State") == "running",
                "GET /v1/jobs/{id}/stdout [running job]: X-Xn-Job-State running")
        r = c.call(hub, "POST", "/v1/jobs/{id}/cancel", "running job", id=sleeper["id"], expect=200)
        canceled = json_of(r) or {}
        c.check(canceled.get("state") == "canceled" and "stdout" in canceled and "finished_at" in canceled,
                "POST /v1/jobs/{id}/cancel: running job ends canceled", f"got {canceled.get('state')!r}")
        r = c.call(hub, "POST", "/v1/jobs/{id}/cancel", "already canceled", id=sleeper["id"], expect=409)
        c.error_is(r, "POST /v1/jobs/{id}/cancel [already canceled]", "job_finished")
    if "id" in plain:
        r = c.call(hub, "POST", "/v1/jobs/{id}/cancel", "finished job", id=plain["id"], expect=409)
        c.error_is(r, "POST /v1/jobs/{id}/cancel [finished job]", "job_finished")
    if "id" in plain:
        r = c.call(hub, "POST", "/v1/jobs/{id}/signal", "finished job", id=plain["id"],
                   body={"signal": 15}, expect=409, request_ok=True)
        c.error_is(r, "POST /v1/jobs/{id}/signal [finished job]", "job_not_running")
    r = c.call(hub, "POST", "/v1/jobs/{id}/signal", "unknown id", id=ZERO_ID, body={"signal": "TERM"}, expect=404)
    c.error_is(r, "POST /v1/jobs/{id}/signal [unknown id]", "job_not_found")
    r = c.call(hub, "POST", "/v1/jobs/{id}/cancel", "unknown id", id=ZERO_ID, expect=404)
    c.error_is(r, "POST /v1/jobs/{id}/cancel [unknown id]", "job_not_found")
    r = c.call(hub, "POST", "/v1/jobs/{id}/cancel", "malformed id", id="123", expect=404)
    c.error_is(r, "POST /v1/jobs/{id}/cancel [malformed id]", "job_not_found", "id")


def run_job_limits(hub: Hub, c: Contract) -> None:
    """`limits` and `max_output` on a hub without limits of its own: their shapes."""
    asked = {"cpu": 60, "memory": 1 << 40, "files": 1024, "procs": 4096}
    job = submit_v1(hub, c, "wait=5, every limit, max_output", {"command": "true", "limits": asked, "max_output": 100},
                    wait="5")
    c.check(job.get("limits") == asked and job.get("max_output") == 100 and job.get("state") == "succeeded",
            "POST /v1/jobs [every limit, max_output]: the view shows them; the job ran",
            f"got {job.get('limits')!r} {job.get('max_output')!r} {job.get('state')!r}")
    for label, body, limits in [
        ("empty limits, null max_output", {"command": "true", "limits": {}, "max_output": None}, None),
        ("null limits", {"command": "true", "limits": None}, None),
        ("a null limit, a whole-number float", {"command": "true", "limits": {"cpu": None, "files": 64.0}},
         {"files": 64}),
    ]:
        job = submit_v1(hub, c, label, body)
        c.check(job.get("limits") == limits and "max_output" not in job,
                f"POST /v1/jobs [{label}]: limits {limits!r} in the view, no max_output",
                f"got {job.get('limits')!r} {job.get('max_output')!r}")
    # max_output keeps that many bytes of each stream.
    job = submit_v1(hub, c, "wait=5, max_output 4", {
        "command": "sh", "args": ["-c", "printf 0123456789; printf abcdefgh >&2"], "max_output": 4}, wait="5")
    c.check(job.get("stdout") == "0123" and job.get("stderr") == "abcd" and job.get("stdout_bytes") == 4
            and job.get("stdout_truncated") is True and job.get("stderr_truncated") is True,
            "POST /v1/jobs?wait=5 [max_output 4]: 4 bytes of each stream kept, both truncated",
            f"got {job.get('stdout')!r} {job.get('stderr')!r} {job.get('stdout_truncated')!r}")
    if "id" in job:
        r = c.call(hub, "GET", "/v1/jobs/{id}/stdout", "max_output 4", id=job["id"], expect=200)
        c.check(r is not None and r.body == b"0123" and r.headers.get("X-Xn-Truncated") == "true",
                "GET /v1/jobs/{id}/stdout [max_output 4]: 4 bytes, X-Xn-Truncated true")
    job = submit_v1(hub, c, "wait=5, max_output 0", {"command": "echo", "args": ["gone"], "max_output": 0}, wait="5")
    c.check(job.get("stdout") == "" and job.get("stdout_truncated") is True and job.get("max_output") == 0,
            "POST /v1/jobs?wait=5 [max_output 0]: nothing kept, truncated", f"got {job.get('stdout')!r}")
    for label, body, field in [
        ("limits not an object", {"command": "true", "limits": [1]}, "limits"),
        ("limits a number", {"command": "true", "limits": 5}, "limits"),
        ("unknown limit", {"command": "true", "limits": {"cpus": 1}}, "limits.cpus"),
        ("limit 0", {"command": "true", "limits": {"cpu": 0}}, "limits.cpu"),
        ("negative limit", {"command": "true", "limits": {"files": -1}}, "limits.files"),
        ("fractional limit", {"command": "true", "limits": {"procs": 1.5}}, "limits.procs"),
        ("string limit", {"command": "true", "limits": {"memory": "1G"}}, "limits.memory"),
        ("boolean limit", {"command": "true", "limits": {"cpu": True}}, "limits.cpu"),
        ("limit above 2^53", {"command": "true", "limits": {"memory": 10 ** 16}}, "limits.memory"),
        ("negative max_output", {"command": "true", "max_output": -1}, "max_output"),
        ("fractional max_output", {"command": "true", "max_output": 2.5}, "max_output"),
        ("string max_output", {"command": "true", "max_output": "10"}, "max_output"),
        ("boolean max_output", {"command": "true", "max_output": False}, "max_output"),
    ]:
        r = c.call(hub, "POST", "/v1/jobs", label, body=body, expect=400, request_ok=False)
        c.error_is(r, f"POST /v1/jobs [{label}]", "invalid_field", field)
    # The compat route ignores unknown fields, not unknown limits.
    r = c.call(hub, "POST", "/", "limits and max_output", body={"command": "true", "limits": {"cpu": 5},
                                                               "max_output": 10}, expect=202, request_ok=True)
    compat = json_of(r) or {}
    if "id" in compat:
        r = c.call(hub, "GET", "/v1/jobs/{id}", "a compat job with limits", id=compat["id"], expect=200)
        got = json_of(r) or {}
        c.check(got.get("limits") == {"cpu": 5} and got.get("max_output") == 10,
                "POST / [limits and max_output]: the job has them", f"got {got.get('limits')!r}")
    c.call(hub, "POST", "/", "unknown limit", body={"command": "true", "limits": {"cpus": 1}}, expect=400,
           request_ok=False)
    c.call(hub, "POST", "/", "negative max_output", body={"command": "true", "max_output": -1}, expect=400,
           request_ok=False)


def run_hub_limits(hub: Hub, c: Contract) -> None:
    """A hub started with `--max-timeout 60 --max-output 1000 --limit-cpu 100 --limit-memory 1G
    --limit-files 256 --limit-procs 500`: jobs may ask for less, never more."""
    most = {"cpu": 100, "memory": 1 << 30, "files": 256, "procs": 500}
    job = submit_v1(hub, c, "limits at the hub's", {"command": "true", "limits": most, "max_output": 1000,
                                                    "timeout": 60})
    c.check(job.get("limits") == most and job.get("max_output") == 1000 and job.get("timeout") == 60,
            "POST /v1/jobs [limits at the hub's]: accepted as asked", f"got {job!r}"[:300])
    job = submit_v1(hub, c, "no timeout", {"command": "true"})
    c.check(job.get("timeout") == 60, "POST /v1/jobs [no timeout]: the hub's --max-timeout",
            f"got {job.get('timeout')!r}")
    job = submit_v1(hub, c, "timeout below the hub's", {"command": "true", "timeout": 0.5})
    c.check(job.get("timeout") == 0.5, "POST /v1/jobs [timeout below the hub's]: kept", f"got {job.get('timeout')!r}")
    for name, value in most.items():
        label = f"limits.{name} above the hub's"
        r = c.call(hub, "POST", "/v1/jobs", label, body={"command": "true", "limits": {name: value + 1}}, expect=400,
                   request_ok=True)
        c.error_is(r, f"POST /v1/jobs [{label}]", "invalid_field", f"limits.{name}")
        c.check(f"--limit-{name}" in str((json_of(r) or {}).get("error", {}).get("message")),
                f"POST /v1/jobs [{label}]: the message names --limit-{name}")
    for label, body, field in [
        ("max_output above the hub's", {"command": "true", "max_output": 1001}, "max_output"),
        ("timeout above the hub's", {"command": "true", "timeout": 60.5}, "timeout"),
    ]:
        r = c.call(hub, "POST", "/v1/jobs", label, body=body, expect=400, request_ok=True)
        c.error_is(r, f"POST /v1/jobs [{label}]", "invalid_field", field)
    r = c.call(hub, "POST", "/", "no timeout", body={"command": "true"}, expect=202, request_ok=True)
    compat = json_of(r) or {}
    if "id" in compat:
        r = c.call(hub, "GET", "/v1/jobs/{id}", "a compat job without timeout", id=compat["id"], expect=200)
        c.check((json_of(r) or {}).get("timeout") == 60, "POST / [no timeout]: the hub's --max-timeout")
    for label, body, flag in [
        ("limits.memory above the hub's", {"command": "true", "limits": {"memory": (1 << 30) + 1}}, "--limit-memory"),
        ("max_output above the hub's", {"command": "true", "max_output": 1001}, "--max-output"),
        ("timeout above the hub's", {"command": "true", "timeout": 61}, "--max-timeout"),
    ]:
        r = c.call(hub, "POST", "/", label, body=body, expect=400, request_ok=True)
        c.check(flag in str((json_of(r) or {}).get("error")), f"POST / [{label}]: the reason names {flag}")


def run_unknown_routes(hub: Hub, c: Contract) -> None:
    c.check_unrouted(hub, "GET", "/no/such/route", 501, "CompatNotImplemented")
    c.check_unrouted(hub, "PUT", "/", 501, "CompatNotImplemented")
    c.check_unrouted(hub, "GET", "/v1/nothing", 404, "Error")
    c.check_unrouted(hub, "DELETE", "/v1/jobs", 404, "Error")


def run_open_sockets(hub: Hub, c: Contract) -> None:
    """The WebSocket routes of a hub without tokens: 426 without an upgrade, 101 with one."""
    r = c.call(hub, "GET", "/v1/worker", "no upgrade", expect=426)
    c.error_is(r, "GET /v1/worker [no upgrade]", "upgrade_required")
    r = c.call_upgrade(hub, "/v1/worker", "xn.v3 offered", protocol="xn.v3", expect=101)
    c.check(r is not None and r.headers.get("Sec-WebSocket-Protocol") == "xn.v3",
            "GET /v1/worker [upgrade: xn.v3 offered]: Sec-WebSocket-Protocol xn.v3")
    r = c.call_upgrade(hub, "/v1/worker", "no subprotocol offered", expect=101)
    c.check(r is not None and r.headers.get("Sec-WebSocket-Protocol") is None,
            "GET /v1/worker [upgrade: no subprotocol offered]: no Sec-WebSocket-Protocol")
    job = submit_v1(hub, c, "wait=5, a job to attach to", {"command": "echo", "args": ["attached"]}, wait="5")
    if "id" not in job:
        return
    r = c.call(hub, "GET", "/v1/jobs/{id}/attach", "no upgrade", id=job["id"], expect=426)
    c.error_is(r, "GET /v1/jobs/{id}/attach [no upgrade]", "upgrade_required")
    r = c.call(hub, "GET", "/v1/jobs/{id}/attach", "no upgrade, mode=read-only", id=job["id"],
               query={"mode": "read-only"}, expect=426)
    c.error_is(r, "GET /v1/jobs/{id}/attach [no upgrade, mode=read-only]", "upgrade_required")
    c.call_upgrade(hub, "/v1/jobs/{id}/attach", "finished job", id=job["id"], query={"stdout": "0", "stderr": "0"},
                   expect=101)


def transcripts_of(hub: Hub, job: str, token: str | None = None, ended: int = 0) -> list[dict[str, Any]]:
    """A job's transcripts, once at least `ended` sessions have ended (or after 10 s): a session
    ends a moment after its client leaves."""
    value = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            value = http(hub.base, "GET", f"/v1/jobs/{job}/transcripts", headers=bearer(token), timeout=10).json()
        except (ValueError, OSError):
            value = {}
        sessions = value.get("transcripts", []) if isinstance(value, dict) else []
        if sum("ended_at" in t for t in sessions) >= ended:
            return sessions
        time.sleep(0.05)
    return value.get("transcripts", []) if isinstance(value, dict) else []


def asciicast(c: Contract, what: str, response: Response | None) -> tuple[dict[str, Any], list[list[Any]]]:
    """A transcript's asciicast v2 body, each line checked against AsciicastHeader or AsciicastEvent."""
    if response is None or response.status != 200:
        return {}, []
    text = response.body.decode("utf-8", "replace")
    c.check(text.endswith("\n"), f"{what}: lines end in a newline")
    lines = text.splitlines()
    try:
        values = [json.loads(line) for line in lines]
    except ValueError as error:
        c.check(False, f"{what}: every line is JSON", str(error))
        return {}, []
    if not c.check(bool(values), f"{what}: a header line"):
        return {}, []
    problems = c.spec.errors("/components/schemas/AsciicastHeader", values[0])
    c.check(not problems, f"{what}: the first line matches AsciicastHeader", "; ".join(problems[:5]))
    problems = [p for event in values[1:] for p in c.spec.errors("/components/schemas/AsciicastEvent", event)]
    c.check(not problems, f"{what}: every other line matches AsciicastEvent", "; ".join(problems[:5]))
    events = [e for e in values[1:] if isinstance(e, list) and e and isinstance(e[0], (int, float))]
    times = [e[0] for e in events]
    c.check(times == sorted(times), f"{what}: events in time order", f"got {times}")
    header = values[0] if isinstance(values[0], dict) else {}
    return header, events


def run_transcripts(hub: Hub, c: Contract) -> None:
    """Transcripts of attach sessions, on a hub without tokens."""
    job = submit_v1(hub, c, "tty cat to type into", {"command": "cat", "tty": {"rows": 30, "cols": 100}})
    if "id" not in job:
        return
    jid = job["id"]
    poll(hub, f"/v1/jobs/{jid}", lambda v: v.get("state") == "running")
    # A read-only session is not recorded.
    c.call_upgrade(hub, "/v1/jobs/{id}/attach", "read-only, not recorded", id=jid, query={"mode": "read-only"},
                   expect=101)
    # A session that types: a resize, input, and terminate (which cancels the job).
    r, ws = c.open_upgrade(hub, "/v1/jobs/{id}/attach", "types into a tty job", id=jid, expect=101)
    typed = b"typed into xn\n"
    shown = b""
    exit_message: dict[str, Any] = {}
    if ws is not None:
        try:
            ws.send_text({"type": "resize", "rows": 40, "cols": 120})
            ws.send_binary(typed)
            deadline = time.monotonic() + 10
            while b"typed into xn" not in shown and time.monotonic() < deadline:
                opcode, payload = ws.receive(deadline - time.monotonic())
                if opcode == WebSocket.BINARY and len(payload) >= 9:
                    shown += payload[9:]
            ws.send_text({"type": "terminate"})
            deadline = time.monotonic() + 10
            while not exit_message and time.monotonic() < deadline:
                opcode, payload = ws.receive(deadline - time.monotonic())
                if opcode == WebSocket.TEXT:
                    message = json.loads(payload)
                    if message.get("type") == "exit":
                        exit_message = message
        except (OSError, TimeoutError, ConnectionError, ValueError) as error:
            c.check(False, "attach session: typing and terminate go through", repr(error))
        finally:
            ws.close()
    c.check(b"typed into xn" in shown, "attach session: the input comes back as output", f"got {shown!r}")
    c.check(exit_message.get("job", {}).get("state") == "canceled", "attach session: terminate cancels the job",
            f"got {exit_message!r}"[:300])

    transcripts_of(hub, jid, ended=1)
    r = c.call(hub, "GET", "/v1/jobs/{id}/transcripts", "one session ended", id=jid, expect=200)
    listed = (json_of(r) or {}).get("transcripts", [])
    c.check(len(listed) == 1, "GET /v1/jobs/{id}/transcripts: one session (read-only ones are not recorded)",
            f"got {listed!r}"[:300])
    session = listed[0] if listed and isinstance(listed[0], dict) else {}
    c.check("ended_at" in session and "token" not in session and session.get("events", 0) >= 4,
            "GET /v1/jobs/{id}/transcripts: ended_at, no token on a hub without tokens, the events counted",
            f"got {session!r}")
    number = str(session.get("session", 0))
    r = c.call(hub, "GET", "/v1/jobs/{id}/transcripts/{session}", "the session", id=jid, session=number, expect=200)
    header, events = asciicast(c, "GET /v1/jobs/{id}/transcripts/{session} [the session]", r)
    c.check(header.get("width") == 100 and header.get("height") == 30 and header.get("version") == 2,
            "GET /v1/jobs/{id}/transcripts/{session}: the job's terminal size in the header",
            f"got {header!r}"[:300])
    c.check(header.get("xn", {}).get("peer") == session.get("peer") and "token" not in header.get("xn", {}),
            "GET /v1/jobs/{id}/transcripts/{session}: the peer, and no token, in the header")
    c.check(jid in str(header.get("title")), "GET /v1/jobs/{id}/transcripts/{session}: the title names the job")
    codes = [(e[1], e[2]) for e in events if len(e) == 3]
    output = "".join(data for code, data in codes if code == "o")
    c.check(("r", "120x40") in codes and ("i", typed.decode()) in codes and ("m", "terminate") in codes
            and "typed into xn" in output,
            "GET /v1/jobs/{id}/transcripts/{session}: the resize, the input, the output and the terminate",
            f"got {codes!r}"[:400])
    c.check(len(events) == session.get("events"), "GET /v1/jobs/{id}/transcripts: events counts the event lines",
            f"{len(events)} lines, events {session.get('events')!r}")

    # Not found: malformed ids, sessions that are not numbers, unknown ones, another job's.
    other = submit_v1(hub, c, "wait=5, another job", {"command": "true"}, wait="5")
    r = c.call(hub, "GET", "/v1/jobs/{id}/transcripts", "a job nobody attached to", id=other.get("id", ZERO_ID),
               expect=200)
    c.check(json_of(r) == {"transcripts": []}, "GET /v1/jobs/{id}/transcripts: empty for a job nobody attached to")
    r = c.call(hub, "GET", "/v1/jobs/{id}/transcripts", "unknown id", id=ZERO_ID, expect=200)
    c.check(json_of(r) == {"transcripts": []}, "GET /v1/jobs/{id}/transcripts [unknown id]: empty")
    r = c.call(hub, "GET", "/v1/jobs/{id}/transcripts", "malformed id", id="xyz", expect=404)
    c.error_is(r, "GET /v1/jobs/{id}/transcripts [malformed id]", "transcript_not_found")
    for label, id, number in [
        ("another job's session", other.get("id", ZERO_ID), number),
        ("unknown session", jid, "999999"),
        ("session 0", jid, "0"),
        ("session not a number", jid, "first"),
        ("malformed id", "xyz", number),
    ]:
        r = c.call(hub, "GET", "/v1/jobs/{id}/transcripts/{session}", label, id=id, session=number, expect=404)
        c.error_is(r, f"GET /v1/jobs/{{id}}/transcripts/{{session}} [{label}]", "transcript_not_found")


def run_tokens(hub: Hub, c: Contract) -> None:
    """A hub started with `--no-local --max-queued-per-token 2`: no job starts at once, so every
    submission is queued and counts against its token's queue cap. It starts without tokens."""
    r = c.call(hub, "GET", "/v1/tokens", "hub without tokens", expect=200)
    c.check(json_of(r) == {"tokens": []}, "GET /v1/tokens [hub without tokens]: no tokens", f"got {r and r.body!r}")
    r = c.call(hub, "POST", "/v1/tokens", "first token, without a token", body={"name": "root", "role": "admin"},
               expect=201, request_ok=True)
    first = json_of(r) or {}
    admin = first.get("secret")
    c.check(isinstance(admin, str) and bool(SECRET.fullmatch(admin)), "POST /v1/tokens: the answer has the secret",
            f"got {first!r}"[:300])
    c.check(first.get("name") == "root" and first.get("role") == "admin"
            and not {"allow", "labels", "max_queued", "revoked_at"} & set(first),
            "POST /v1/tokens: name and role as asked, no limits, not revoked", f"got keys {sorted(first)}")
    if not isinstance(admin, str):
        return
    r = c.call(hub, "POST", "/v1/tokens", "second token, without a token", body={"name": "intruder", "role": "admin"},
               expect=401)
    c.error_is(r, "POST /v1/tokens [second token, without a token]", "unauthorized")

    def make(name: str, body: dict[str, Any]) -> str:
        r = c.call(hub, "POST", "/v1/tokens", f"make {name}", body={"name": name, **body}, token=admin,
                   expect=201, request_ok=True)
        value = json_of(r) or {}
        return value.get("secret", "") if isinstance(value, dict) else ""

    alice = make("alice", {"role": "submit"})
    bob = make("bob", {"role": "submit"})
    reader = make("reader", {"role": "read"})
    worker = make("worker-1", {"role": "worker"})
    # Limits: its own whitelist and label, and no job may wait queued.
    r = c.call(hub, "POST", "/v1/tokens", "make limited",
               body={"name": "limited", "role": "submit", "allow": ["true"], "labels": {"pool": "a"}, "max_queued": 0},
               token=admin, expect=201, request_ok=True)
    made = json_of(r) or {}
    limited = made.get("secret", "")
    c.check(made.get("allow") == ["true"] and made.get("labels") == {"pool": "a"} and made.get("max_queued") == 0,
            "POST /v1/tokens [make limited]: allow, labels and max_queued 0 shown", f"got {made!r}"[:300])
    pooled = make("pooled", {"role": "submit", "allow": ["true"], "labels": {"pool": "a"}})
    # Empty limits are no limits, and are left out; so are nulls. Names may hold . @ - _.
    r = c.call(hub, "POST", "/v1/tokens", "empty and null limits",
               body={"name": "gone.bot@example", "role": "read", "allow": [], "labels": {}, "max_queued": None},
               token=admin, expect=201, request_ok=True)
    made = json_of(r) or {}
    gone = made.get("secret", "")
    c.check(not {"allow", "labels", "max_queued"} & set(made),
            "POST /v1/tokens [empty and null limits]: allow, labels and max_queued left out",
            f"got keys {sorted(made)}")
    r = c.call(hub, "POST", "/v1/tokens", "name of 64 characters", body={"name": "n" * 64, "role": "read"},
               token=admin, expect=201, request_ok=True)
    r = c.call(hub, "POST", "/v1/tokens", "whole-number float max_queued",
               body={"name": "float_cap", "role": "submit", "max_queued": 2.0}, token=admin, expect=201,
               request_ok=True)
    c.check((json_of(r) or {}).get("max_queued") == 2, "POST /v1/tokens [whole-number float max_queued]: 2")

    # Bad token requests.
    r = c.call(hub, "POST", "/v1/tokens", "bad JSON", raw=b"{", token=admin, expect=400)
    c.error_is(r, "POST /v1/tokens [bad JSON]", "invalid_body")
    r = c.call(hub, "POST", "/v1/tokens", "body not an object", body=["root"], token=admin, expect=400,
               request_ok=False)
    c.error_is(r, "POST /v1/tokens [body not an object]", "invalid_body")
    for label, body, field in [
        ("unknown field", {"name": "x1", "role": "read", "scope": "all"}, "scope"),
        ("missing name", {"role": "read"}, "name"),
        ("name not a string", {"name": 5, "role": "read"}, "name"),
        ("empty name", {"name": "", "role": "read"}, "name"),
        ("name with a space", {"name": "a b", "role": "read"}, "name"),
        ("name with a slash", {"name": "a/b", "role": "read"}, "name"),
        ("name over 64 characters", {"name": "n" * 65, "role": "read"}, "name"),
        ("name with a non-ASCII letter", {"name": "jos\u00e9", "role": "read"}, "name"),
        ("name with a non-ASCII digit", {"name": "ci\u0661", "role": "read"}, "name"),
        ("missing role", {"name": "x1"}, "role"),
        ("unknown role", {"name": "x1", "role": "root"}, "role"),
        ("null role", {"name": "x1", "role": None}, "role"),
        ("allow not a list", {"name": "x1", "role": "submit", "allow": "true"}, "allow"),
        ("allow item not a string", {"name": "x1", "role": "submit", "allow": [1]}, "allow"),
        ("empty allow entry", {"name": "x1", "role": "submit", "allow": [""]}, "allow"),
        ("allow on a read token", {"name": "x1", "role": "read", "allow": ["true"]}, "allow"),
        ("allow on a worker token", {"name": "x1", "role": "worker", "allow": ["true"]}, "allow"),
        ("label value not a string", {"name": "x1", "role": "submit", "labels": {"pool": 1}}, "labels"),
        ("empty label name", {"name": "x1", "role": "submit", "labels": {"": "a"}}, "labels"),
        ("negative max_queued", {"name": "x1", "role": "submit", "max_queued": -1}, "max_queued"),
        ("fractional max_queued", {"name": "x1", "role": "submit", "max_queued": 1.5}, "max_queued"),
        ("boolean max_queued", {"name": "x1", "role": "submit", "max_queued": True}, "max_queued"),
        ("string max_queued", {"name": "x1", "role": "submit", "max_queued": "3"}, "max_queued"),
        ("slots on a submit token", {"name": "x1", "role": "submit", "slots": 2}, "slots"),
        ("slots above 1024", {"name": "x1", "role": "worker", "slots": 1025}, "slots"),
        ("negative slots", {"name": "x1", "role": "worker", "slots": -1}, "slots"),
    ]:
        r = c.call(hub, "POST", "/v1/tokens", label, body=body, token=admin, expect=400, request_ok=False)
        c.error_is(r, f"POST /v1/tokens [{label}]", "invalid_field", field)
    r = c.call(hub, "POST", "/v1/tokens", "worker token with labels and slots",
               body={"name": "gpu-1", "role": "worker", "labels": {"gpu": "1"}, "slots": 8}, token=admin, expect=201,
               request_ok=True)
    made = json_of(r) or {}
    c.check(made.get("labels") == {"gpu": "1"} and made.get("slots") == 8,
            "POST /v1/tokens [worker token with labels and slots]: both shown", f"got {made!r}"[:300])
    r = c.call(hub, "POST", "/v1/tokens", "name taken", body={"name": "alice", "role": "read"}, token=admin,
               expect=409, request_ok=True)
    c.error_is(r, "POST /v1/tokens [name taken]", "token_exists", "name")
    r = c.call(hub, "POST", "/v1/tokens", "body over 64 KiB",
               body={"name": "x1", "role": "submit", "allow": ["x" * (64 << 10)]}, token=admin, expect=413)
    c.error_is(r, "POST /v1/tokens [body over 64 KiB]", "body_too_large")

    # The list: every token, never a secret.
    r = c.call(hub, "GET", "/v1/tokens", "as admin", token=admin, expect=200)
    listed = {t.get("name"): t for t in (json_of(r) or {}).get("tokens", []) if isinstance(t, dict)}
    wanted = {"root", "alice", "bob", "reader", "worker-1", "gpu-1", "limited", "pooled", "gone.bot@example", "float_cap",
              "n" * 64}
    c.check(set(listed) == wanted, "GET /v1/tokens: every token made", f"got {sorted(listed)}")
    c.check(not any("secret" in t for t in listed.values()), "GET /v1/tokens: no secrets")
    c.check(listed.get("limited", {}).get("labels") == {"pool": "a"}, "GET /v1/tokens: limits shown")

    # Revoking.
    r = c.call(hub, "GET", "/v1/jobs", "token about to be revoked", token=gone, expect=200)
    r = c.call(hub, "DELETE", "/v1/tokens/{name}", "revoke", name="gone.bot@example", token=admin, expect=200)
    revoked = json_of(r) or {}
    c.check(revoked.get("name") == "gone.bot@example" and "revoked_at" in revoked,
            "DELETE /v1/tokens/{name}: the token with revoked_at", f"got {revoked!r}"[:300])
    # The hub percent-decodes the name: %40 is @.
    r = c.call(hub, "DELETE", "/v1/tokens/{name}", "revoke again, percent-encoded", name="gone.bot%40example",
               token=admin, expect=200)
    c.check((json_of(r) or {}).get("name") == "gone.bot@example"
            and (json_of(r) or {}).get("revoked_at") == revoked.get("revoked_at"),
            "DELETE /v1/tokens/{name} [revoke again, percent-encoded]: the same token, revoked_at unchanged")
    r = c.call(hub, "DELETE", "/v1/tokens/{name}", "unknown name, percent-encoded", name="no%2Fbody", token=admin,
               expect=404)
    c.error_is(r, "DELETE /v1/tokens/{name} [unknown name, percent-encoded]", "token_not_found", "name")
    r = c.call(hub, "DELETE", "/v1/tokens/{name}", "unknown name", name="nobody", token=admin, expect=404)
    c.error_is(r, "DELETE /v1/tokens/{name} [unknown name]", "token_not_found", "name")
    r = c.call(hub, "POST", "/v1/tokens", "revoked name", body={"name": "gone.bot@example", "role": "read"},
               token=admin, expect=409, request_ok=True)
    c.error_is(r, "POST /v1/tokens [revoked name]", "token_exists", "name")
    r = c.call(hub, "GET", "/v1/tokens", "after the revoke", token=admin, expect=200)
    after = {t.get("name"): t for t in (json_of(r) or {}).get("tokens", []) if isinstance(t, dict)}
    c.check("revoked_at" in after.get("gone.bot@example", {}) and "revoked_at" not in after.get("alice", {}),
            "GET /v1/tokens [after the revoke]: revoked_at on the revoked token only")

    # Jobs carry their owner; each token has at most 2 queued (--max-queued-per-token 2).
    mine = submit_v1(hub, c, "alice: sleep 30", {"command": "sleep", "args": ["30"]}, token=alice)
    c.check(mine.get("owner") == "alice" and mine.get("state") == "queued",
            "POST /v1/jobs [alice]: queued, owner alice", f"got {mine.get('owner')!r} {mine.get('state')!r}")
    r = c.call(hub, "POST", "/", "alice", body={"command": "true"}, token=alice, expect=202, request_ok=True)
    compat = json_of(r) or {}
    r = c.call(hub, "POST", "/v1/jobs", "alice: third queued job", body={"command": "true"}, token=alice,
               expect=429, request_ok=True)
    c.error_is(r, "POST /v1/jobs [alice: third queued job]", "queue_full")
    c.check("alice" in str((json_of(r) or {}).get("error", {}).get("message")),
            "POST /v1/jobs [alice: third queued job]: the message names the token")
    c.call(hub, "POST", "/", "alice: third queued job", body={"command": "true"}, token=alice, expect=429,
           request_ok=True)
    bobs = submit_v1(hub, c, "bob", {"command": "true"}, token=bob)
    roots = submit_v1(hub, c, "admin", {"command": "true"}, token=admin)
    if "id" in compat:
        r = c.call(hub, "GET", "/v1/jobs/{id}", "alice's compat job, as reader", id=compat["id"], token=reader,
                   expect=200)
        c.check((json_of(r) or {}).get("owner") == "alice", "GET /v1/jobs/{id}: a compat submission has its owner")
        c.call(hub, "GET", "/{id}", "as reader", id=compat["id"], token=reader, expect=200)
    r = c.call(hub, "GET", "/v1/jobs", "as reader", token=reader, expect=200)
    owners = [j.get("owner") for j in (json_of(r) or {}).get("jobs", [])]
    c.check(sorted(owners) == ["alice", "alice", "bob", "root"], "GET /v1/jobs: every job has its owner",
            f"got {owners}")
    c.call(hub, "GET", "/v1/workers", "as reader", token=reader, expect=200)
    c.call(hub, "GET", "/openapi.yaml", "as reader", token=reader, expect=200)

    # 401: no token, an unknown one, a revoked one, malformed headers; on every operation.
    job = mine.get("id", ZERO_ID)
    operations: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/", {"body": {"command": "true"}}),
        ("GET", "/{id}", {"id": job}),
        ("GET", "/openapi.yaml", {}),
        ("GET", "/metrics", {}),
        ("POST", "/v1/jobs", {"body": {"command": "true"}}),
        ("GET", "/v1/jobs", {}),
        ("GET", "/v1/jobs/{id}", {"id": job}),
        ("GET", "/v1/jobs/{id}/stdout", {"id": job}),
        ("GET", "/v1/jobs/{id}/stderr", {"id": job}),
        ("POST", "/v1/jobs/{id}/cancel", {"id": job}),
        ("POST", "/v1/jobs/{id}/signal", {"id": job, "body": {"signal": "INT"}}),
        ("GET", "/v1/jobs/{id}/attach", {"id": job, "query": {"mode": "read-only"}}),
        ("GET", "/v1/jobs/{id}/transcripts", {"id": job}),
        ("GET", "/v1/jobs/{id}/transcripts/{session}", {"id": job, "session": "1"}),
        ("GET", "/v1/workers", {}),
        ("GET", "/v1/worker", {}),
        ("GET", "/v1/tokens", {}),
        ("POST", "/v1/tokens", {"body": {"name": "x2", "role": "read"}}),
        ("DELETE", "/v1/tokens/{name}", {"name": "bob"}),
    ]
    for who, headers in [
        ("no token", {}),
        ("unknown token", bearer("xn_" + "A" * 43)),
        ("revoked token", bearer(gone)),
        ("Basic scheme", {"Authorization": "Basic cm9vdDpyb290"}),
        ("Bearer without a secret", {"Authorization": "Bearer"}),
    ]:
        for method, template, args in operations:
            r = c.call(hub, method, template, who, headers=headers, expect=401, **args)
            if r is not None and template not in ("/", "/{id}"):
                c.error_is(r, f"{method} {template} [{who}]", "unauthorized")
        c.check_unrouted(hub, "GET", "/no/such/route", 401, "CompatUnauthorized", label=f"unknown route, {who}")
        # The health checks answer without a token, and whatever header comes.
        c.call(hub, "GET", "/healthz", who, headers=headers, expect=200)
        c.call(hub, "GET", "/readyz", who, headers=headers, expect=200)
    c.check_unrouted(hub, "GET", "/v1/nothing", 401, "Error", label="unknown route, no token")
    c.check_unrouted(hub, "GET", "/no/such/route", 501, "CompatNotImplemented", token=reader,
                     label="unknown route, read token")
    c.check_unrouted(hub, "GET", "/v1/nothing", 404, "Error", token=reader, label="unknown route, read token")
    c.check_unrouted(hub, "GET", "/no/such/route", 403, "CompatForbidden", token=worker,
                     label="unknown route, worker token")
    c.check_unrouted(hub, "GET", "/v1/nothing", 403, "Error", token=worker, label="unknown route, worker token")

    # 403: roles.
    def forbidden(method: str, template: str, label: str, token: str, **args: Any) -> Response | None:
        r = c.call(hub, method, template, label, token=token, expect=403, **args)
        if r is not None and template not in ("/", "/{id}"):
            c.error_is(r, f"{method} {template} [{label}]", "forbidden")
        return r

    forbidden("POST", "/v1/jobs", "read token submits", reader, body={"command": "true"}, request_ok=True)
    forbidden("POST", "/", "read token submits", reader, body={"command": "true"}, request_ok=True)
    forbidden("POST", "/v1/jobs/{id}/cancel", "read token cancels", reader, id=job)
    forbidden("POST", "/v1/jobs/{id}/signal", "read token signals", reader, id=job, body={"signal": "INT"})
    r = forbidden("GET", "/v1/jobs/{id}/attach", "read token asks to type", reader, id=job)
    c.check("read-only" in str((json_of(r) or {}).get("error", {}).get("message")),
            "GET /v1/jobs/{id}/attach [read token asks to type]: the reason points to mode=read-only")
    forbidden("GET", "/v1/worker", "read token", reader)
    forbidden("GET", "/v1/tokens", "submit token", alice)
    forbidden("POST", "/v1/tokens", "submit token", alice, body={"name": "x3", "role": "admin"}, request_ok=True)
    forbidden("DELETE", "/v1/tokens/{name}", "submit token", alice, name="bob")
    forbidden("GET", "/v1/worker", "submit token", alice)
    for label, token in [("read token", reader), ("submit token, its own job", alice)]:
        forbidden("GET", "/v1/jobs/{id}/transcripts", label, token, id=job)
        forbidden("GET", "/v1/jobs/{id}/transcripts/{session}", label, token, id=job, session="1")
    for method, template, args in operations:
        if template != "/v1/worker":
            forbidden(method, template, "worker token", worker, **args)
    # 403: another token's job.
    forbidden("POST", "/v1/jobs/{id}/cancel", "bob cancels alice's job", bob, id=job)
    forbidden("POST", "/v1/jobs/{id}/signal", "bob signals alice's job", bob, id=job, body={"signal": "INT"})
    forbidden("GET", "/v1/jobs/{id}/attach", "bob asks to type into alice's job", bob, id=job)

    # 426: allowed, but not upgraded.
    for label, token, query in [
        ("read token, mode=read-only", reader, {"mode": "read-only"}),
        ("bob watches alice's job", bob, {"mode": "read-only"}),
        ("alice types into her job", alice, None),
        ("admin types into alice's job", admin, None),
    ]:
        r = c.call(hub, "GET", "/v1/jobs/{id}/attach", label, id=job, query=query, token=token, expect=426)
        c.error_is(r, f"GET /v1/jobs/{{id}}/attach [{label}]", "upgrade_required")
    for label, token in [("worker token", worker), ("admin token", admin)]:
        r = c.call(hub, "GET", "/v1/worker", label, token=token, expect=426)
        c.error_is(r, f"GET /v1/worker [{label}]", "upgrade_required")

    # Upgrades: 101 when allowed; refused ones get the same answer as without the upgrade.
    r = c.call_upgrade(hub, "/v1/worker", "worker token", token=worker, protocol="xn.v3", expect=101)
    c.check(r is not None and r.headers.get("Sec-WebSocket-Protocol") == "xn.v3",
            "GET /v1/worker [upgrade: worker token]: Sec-WebSocket-Protocol xn.v3")
    c.call_upgrade(hub, "/v1/jobs/{id}/attach", "read token, mode=read-only", id=job, query={"mode": "read-only"},
                   token=reader, expect=101)
    c.call_upgrade(hub, "/v1/jobs/{id}/attach", "alice types into her job", id=job, token=alice, expect=101)
    r = c.call_upgrade(hub, "/v1/worker", "no token", protocol="xn.v3", expect=401)
    c.error_is(r, "GET /v1/worker [upgrade: no token]", "unauthorized")
    r = c.call_upgrade(hub, "/v1/worker", "read token", token=reader, protocol="xn.v3", expect=403)
    c.error_is(r, "GET /v1/worker [upgrade: read token]", "forbidden")
    r = c.call_upgrade(hub, "/v1/jobs/{id}/attach", "read token asks to type", id=job, token=reader, expect=403)
    c.error_is(r, "GET /v1/jobs/{id}/attach [upgrade: read token asks to type]", "forbidden")
    r = c.call_upgrade(hub, "/v1/jobs/{id}/attach", "bob asks to type into alice's job", id=job, token=bob,
                       expect=403)
    c.error_is(r, "GET /v1/jobs/{id}/attach [upgrade: bob asks to type into alice's job]", "forbidden")
    r = c.call_upgrade(hub, "/v1/jobs/{id}/attach", "no such job", id="0" * 40, token=admin, expect=404)
    c.error_is(r, "GET /v1/jobs/{id}/attach [upgrade: no such job]", "job_not_found")

    # Transcripts: only alice's session could type, so only it is recorded, with her token's name.
    transcripts_of(hub, job, token=admin, ended=1)
    r = c.call(hub, "GET", "/v1/jobs/{id}/transcripts", "admin", id=job, token=admin, expect=200)
    listed = (json_of(r) or {}).get("transcripts", [])
    c.check([t.get("token") for t in listed] == ["alice"] and "ended_at" in listed[0],
            "GET /v1/jobs/{id}/transcripts [admin]: alice's session only, with her token, ended",
            f"got {listed!r}"[:300])
    if listed:
        number = str(listed[0].get("session"))
        r = c.call(hub, "GET", "/v1/jobs/{id}/transcripts/{session}", "admin", id=job, session=number, token=admin,
                   expect=200)
        header, _ = asciicast(c, "GET /v1/jobs/{id}/transcripts/{session} [admin]", r)
        c.check(header.get("xn", {}).get("token") == "alice" and header.get("width") == 80
                and header.get("height") == 24,
                "GET /v1/jobs/{id}/transcripts/{session} [admin]: token alice, 80x24 for a job without tty",
                f"got {header!r}"[:300])
        forbidden("GET", "/v1/jobs/{id}/transcripts/{session}", "submit token, its own session", alice, id=job,
                  session=number)

    # Owners act on their own jobs; admins on any.
    r = c.call(hub, "POST", "/v1/jobs/{id}/signal", "alice signals her queued job", id=job, body={"signal": "INT"},
               token=alice, expect=409, request_ok=True)
    c.error_is(r, "POST /v1/jobs/{id}/signal [alice signals her queued job]", "job_not_running")
    r = c.call(hub, "POST", "/v1/jobs/{id}/cancel", "alice cancels her job", id=job, token=alice, expect=200)
    c.check((json_of(r) or {}).get("state") == "canceled" and (json_of(r) or {}).get("owner") == "alice",
            "POST /v1/jobs/{id}/cancel [alice cancels her job]: canceled, owner alice")
    if "id" in bobs:
        r = c.call(hub, "POST", "/v1/jobs/{id}/cancel", "admin cancels bob's job", id=bobs["id"], token=admin,
                   expect=200)
        c.check((json_of(r) or {}).get("state") == "canceled", "POST /v1/jobs/{id}/cancel [admin]: any job")
    if "id" in roots:
        c.call(hub, "POST", "/v1/jobs/{id}/cancel", "admin cancels its own job", id=roots["id"], token=admin,
               expect=200)

    # A token's own limits.
    r = c.call(hub, "POST", "/v1/jobs", "outside the token's whitelist", body={"command": "echo"}, token=limited,
               expect=403, request_ok=True)
    c.error_is(r, "POST /v1/jobs [outside the token's whitelist]", "command_not_allowed", "command")
    c.check(str((json_of(r) or {}).get("error", {}).get("message")).endswith("(this token's whitelist)"),
            "POST /v1/jobs [outside the token's whitelist]: the message says whose whitelist")
    r = c.call(hub, "POST", "/v1/jobs", "another value of the token's label",
               body={"command": "true", "labels": {"pool": "b"}}, token=limited, expect=403, request_ok=True)
    c.error_is(r, "POST /v1/jobs [another value of the token's label]", "labels_not_allowed", "labels")
    for label, body in [("token with max_queued 0", {"command": "true"}),
                        ("token with max_queued 0, its own label", {"command": "true", "labels": {"pool": "a"}})]:
        r = c.call(hub, "POST", "/v1/jobs", label, body=body, token=limited, expect=429, request_ok=True)
        c.error_is(r, f"POST /v1/jobs [{label}]", "queue_full")
    r = c.call(hub, "POST", "/", "outside the token's whitelist", body={"command": "echo"}, token=limited,
               expect=400, request_ok=True)
    c.check("this token's whitelist" in str((json_of(r) or {}).get("error")),
            "POST / [outside the token's whitelist]: the reason says whose whitelist")
    c.call(hub, "POST", "/", "another value of the token's label", body={"command": "true", "labels": {"pool": "b"}},
           token=limited, expect=400, request_ok=True)
    c.call(hub, "POST", "/", "token with max_queued 0", body={"command": "true"}, token=limited, expect=429,
           request_ok=True)
    pooled_job = submit_v1(hub, c, "token with labels", {"command": "true", "labels": {"gpu": "1"}}, token=pooled)
    c.check(pooled_job.get("labels") == {"gpu": "1", "pool": "a"} and pooled_job.get("owner") == "pooled",
            "POST /v1/jobs [token with labels]: the token's labels are added to the job's",
            f"got {pooled_job.get('labels')!r}")


def run_whitelist_and_purge(hub: Hub, c: Contract) -> None:
    """A hub started with `-w echo -n 1 --slots 1`."""
    r = c.call(hub, "POST", "/v1/jobs", "command outside the whitelist", body={"command": "sh"}, expect=403)
    c.error_is(r, "POST /v1/jobs [command outside the whitelist]", "command_not_allowed", "command")
    r = c.call(hub, "POST", "/", "command outside the whitelist", body={"command": "sh"}, expect=400)
    c.check("sh" in str((json_of(r) or {}).get("error")), "POST / [command outside the whitelist]: reason names it")
    old = submit_v1(hub, c, "-n 1: first job", {"command": "echo", "args": ["old"]}, wait="5")
    c.check(old.get("command") == "echo" and str(old.get("program", "")).startswith("/")
            and old.get("stdout") == "old\n",
            "POST /v1/jobs [whitelisted bare name]: command as sent, program the file that ran",
            f"got command {old.get('command')!r} program {old.get('program')!r}")
    new = submit_v1(hub, c, "-n 1: second job", {"command": "echo", "args": ["new"]}, wait="5")
    if "id" not in old or "id" not in new:
        return
    # Purging happens when a job is created (as in http-runner): the third submission removes
    # the finished jobs beyond the newest one.
    third = submit_v1(hub, c, "-n 1: third job", {"command": "echo", "args": ["third"]}, wait="5")
    r = c.call(hub, "GET", "/v1/jobs/{id}", "-n 1: oldest finished job purged", id=old["id"], expect=404)
    c.error_is(r, "GET /v1/jobs/{id} [-n 1: purged]", "job_not_found")
    c.call(hub, "GET", "/{id}", "-n 1: oldest finished job purged", id=old["id"], expect=404)
    c.call(hub, "GET", "/v1/jobs/{id}/stdout", "-n 1: purged", id=old["id"], expect=404)
    c.call(hub, "GET", "/v1/jobs/{id}", "-n 1: newest finished job kept", id=new["id"], expect=200)
    r = c.call(hub, "GET", "/v1/jobs", "-n 1: one finished job left besides the new one", expect=200)
    left = [j.get("id") for j in (json_of(r) or {}).get("jobs", [])]
    c.check(left == [third.get("id"), new["id"]], "GET /v1/jobs [-n 1]: only the newest finished job is kept", f"got {left}")


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binary", help="path to the xn binary")
    parser.add_argument("--spec", default=str(Path(__file__).resolve().parent.parent / "Sources/XNHub/openapi.yaml"),
                        help="the OpenAPI document (default: Sources/XNHub/openapi.yaml of this repository)")
    args = parser.parse_args()
    if not os.access(args.binary, os.X_OK):
        print(f"error: {args.binary} is not an executable", file=sys.stderr)
        return 2

    results = Results()
    spec = Spec(Path(args.spec).read_bytes())
    c = Contract(spec, results)
    run_document_checks(spec, c)

    hubs: list[Hub] = []
    try:
        main_hub = Hub(args.binary, [], "hub")
        hubs.append(main_hub)
        main_hub.start()
        run_meta(main_hub, c)
        run_compat(main_hub, c)
        run_v1(main_hub, c)
        run_job_limits(main_hub, c)
        run_unknown_routes(main_hub, c)
        run_open_sockets(main_hub, c)
        run_transcripts(main_hub, c)

        policy_hub = Hub(args.binary, ["-w", "echo", "-n", "1", "--slots", "1"], "hub -w echo -n 1")
        hubs.append(policy_hub)
        policy_hub.start()
        run_whitelist_and_purge(policy_hub, c)

        limits_hub = Hub(args.binary, ["--max-timeout", "60", "--max-output", "1000", "--limit-cpu", "100",
                                       "--limit-memory", "1G", "--limit-files", "256", "--limit-procs", "500"],
                         "hub with limits")
        hubs.append(limits_hub)
        limits_hub.start()
        run_hub_limits(limits_hub, c)

        token_hub = Hub(args.binary, ["--no-local", "--max-queued-per-token", "2"], "hub with tokens")
        hubs.append(token_hub)
        token_hub.start()
        run_tokens(token_hub, c)
    except Exception as error:  # noqa: BLE001 - reported as a failure, hubs still stopped
        results.check(False, "contract run completes", f"{type(error).__name__}: {error}")
    finally:
        for hub in hubs:
            hub.stop()

    for method, path in sorted(spec.operations(), key=lambda op: (op[1], op[0])):
        c.check((method, path) in c.exercised, f"coverage: {method} {path} was exercised")
    undocumented = c.exercised - spec.operations()
    c.check(not undocumented, "coverage: every exercised operation is in the document", str(sorted(undocumented)))

    print()
    print(f"{results.count} checks, {len(results.failures)} failed")
    if results.failures:
        print("FAILURES:")
        for failure in results.failures:
            print(f"  - {failure}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
