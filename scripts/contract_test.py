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
was exercised. Prints one line per check; exits 1 listing every failure.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOC_URI = "urn:xn:openapi"
BANNER = re.compile(r"xn hub listening on http://127\.0\.0\.1:(\d+)")
START_TIMEOUT = 30.0
HTTP_TIMEOUT = 30.0
MAX_BODY = 1 << 20
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
ZERO_ID = "0" * 40


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


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes
    elapsed: float

    @property
    def media_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def json(self) -> Any:
        return json.loads(self.body)


def http(base: str, method: str, path: str, body: bytes | None = None, timeout: float = HTTP_TIMEOUT) -> Response:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = urllib.request.Request(base + path, data=body, method=method, headers=headers)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return Response(answer.status, answer.headers, answer.read(), time.monotonic() - started)
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, error.headers, error.read(), time.monotonic() - started)


# ---------------------------------------------------------------------------------------------
# The contract checks


class Contract:
    def __init__(self, spec: Spec, results: Results) -> None:
        self.spec = spec
        self.results = results
        self.exercised: set[tuple[str, str]] = set()

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        return self.results.check(ok, what, detail)

    def call(self, hub: Hub, method: str, template: str, label: str, *, id: str | None = None,
             query: dict[str, str] | None = None, body: Any = None, raw: bytes | None = None,
             expect: int | None = None, request_ok: bool | None = None) -> Response | None:
        """One request to a documented operation, checked against the document.

        `body` is sent as JSON (`raw` as is). `request_ok` says whether the document's request
        schema should accept `body`: it should agree with the hub.
        """
        path = template.replace("{id}", urllib.parse.quote(id, safe="")) if id is not None else template
        if query:
            path += "?" + urllib.parse.urlencode(query)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        name = f"{method} {template} [{label}]"
        self.exercised.add((method, template))
        try:
            response = http(hub.base, method, path, data)
        except Exception as error:  # noqa: BLE001 - any transport failure is a failed check
            self.check(False, f"{name}: request completes", repr(error))
            return None
        if expect is not None:
            self.check(response.status == expect, f"{name}: status {expect}",
                       f"got {response.status} {response.body[:300]!r}")
        self.check_response(name, method, template, response)
        if request_ok is not None and body is not None:
            self.check_request_schema(name, method, template, body, request_ok)
        return response

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

    def check_unrouted(self, hub: Hub, method: str, path: str, expect: int, schema: str) -> None:
        """A route the hub does not serve: the documented fallback status and body."""
        name = f"{method} {path} [unknown route]"
        try:
            response = http(hub.base, method, path)
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


def run_meta(hub: Hub, c: Contract) -> None:
    r = c.call(hub, "GET", "/v1/workers", "no worker connected", expect=200)
    c.check((json_of(r) or {}).get("workers") == [], "GET /v1/workers: empty without workers")
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


def submit_v1(hub: Hub, c: Contract, label: str, body: Any, wait: str | None = None) -> dict[str, Any]:
    query = {"wait": wait} if wait is not None else None
    r = c.call(hub, "POST", "/v1/jobs", label, query=query, body=body, expect=201, request_ok=True)
    value = json_of(r)
    return value if isinstance(value, dict) else {}


def run_v1(hub: Hub, c: Contract) -> None:
    # Submit: good bodies.
    plain = submit_v1(hub, c, "valid submit", {"command": "echo", "args": ["hello", "v1"], "name": "greeting"})
    c.check("id" in plain and "stdout" not in plain and "stderr" not in plain,
            "POST /v1/jobs: answer without wait has no stdout/stderr", f"keys {sorted(plain)}")
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


def run_unknown_routes(hub: Hub, c: Contract) -> None:
    c.check_unrouted(hub, "GET", "/no/such/route", 501, "CompatNotImplemented")
    c.check_unrouted(hub, "PUT", "/", 501, "CompatNotImplemented")
    c.check_unrouted(hub, "GET", "/v1/nothing", 404, "Error")
    c.check_unrouted(hub, "DELETE", "/v1/jobs", 404, "Error")


def run_whitelist_and_purge(hub: Hub, c: Contract) -> None:
    """A hub started with `-w echo -n 1 --slots 1`."""
    r = c.call(hub, "POST", "/v1/jobs", "command outside the whitelist", body={"command": "sh"}, expect=403)
    c.error_is(r, "POST /v1/jobs [command outside the whitelist]", "command_not_allowed", "command")
    r = c.call(hub, "POST", "/", "command outside the whitelist", body={"command": "sh"}, expect=400)
    c.check("sh" in str((json_of(r) or {}).get("error")), "POST / [command outside the whitelist]: reason names it")
    old = submit_v1(hub, c, "-n 1: first job", {"command": "echo", "args": ["old"]}, wait="5")
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
        run_unknown_routes(main_hub, c)

        policy_hub = Hub(args.binary, ["-w", "echo", "-n", "1", "--slots", "1"], "hub -w echo -n 1")
        hubs.append(policy_hub)
        policy_hub.start()
        run_whitelist_and_purge(policy_hub, c)
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
