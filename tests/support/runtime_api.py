"""Functions in other runtimes for the Runtime API tests: custom bootstraps, Node handlers."""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "runtimes"

needs_curl = pytest.mark.skipif(
    shutil.which("curl") is None, reason="the shell bootstrap example needs curl on PATH"
)
needs_node = pytest.mark.skipif(
    shutil.which("node") is None, reason="Node.js functions need node on PATH"
)

# A custom runtime written in Python (as a provided.al2023 bootstrap): each behaviour is chosen
# by the event, so one bootstrap drives every path of the Runtime API.
PY_BOOTSTRAP = f"""#!{sys.executable}
import base64, http.client, json, os, sys, time

HOST = os.environ["AWS_LAMBDA_RUNTIME_API"]
if os.environ.get("FAIL_INIT") == "report":
    print("init failing on purpose", flush=True)
    c = http.client.HTTPConnection(HOST)
    c.request("POST", "/2018-06-01/runtime/init/error",
              body=json.dumps({{"errorMessage": "no config", "errorType": "Init.Config"}}),
              headers={{"Lambda-Runtime-Function-Error-Type": "Init.Config"}})
    c.getresponse().read()
    sys.exit(1)
if os.environ.get("FAIL_INIT") == "exit":
    sys.exit(4)

notes = []

def call(method, path, body=b"", headers=None):
    c = http.client.HTTPConnection(HOST)
    try:
        c.request(method, "/2018-06-01/runtime" + path, body=body, headers=headers or {{}})
        r = c.getresponse()
        return r.status, r.read(), dict(r.getheaders())
    except OSError:
        sys.exit(1)  # the Runtime API is gone: never spin
    finally:
        c.close()

while True:
    status, event, headers = call("GET", "/invocation/next")
    if status != 200:
        sys.exit(1)
    rid = headers["Lambda-Runtime-Aws-Request-Id"]
    event = json.loads(event or b"{{}}")
    action = event.get("action", "echo")
    print(f"action {{action}}", flush=True)
    if action == "error":
        call("POST", f"/invocation/{{rid}}/error",
             json.dumps({{"errorMessage": "dice are missing", "errorType": "DiceError",
                          "stackTrace": ["line 1"]}}).encode(),
             {{"Lambda-Runtime-Function-Error-Type": "DiceError"}})
        continue
    if action == "error_then_exit":  # as Node.js does after an uncaught exception
        call("POST", f"/invocation/{{rid}}/error",
             json.dumps({{"errorMessage": "late failure", "errorType": "RangeError"}}).encode())
        time.sleep(0.3)
        os._exit(129)
    if action == "hang":
        time.sleep(60)
    if action == "gate":  # held until the test creates the file: no timing assumptions
        while not os.path.exists(event["gate"]):
            time.sleep(0.005)
    if action == "exit":
        os._exit(3)
    if action == "big":
        big = b"x" * (6 * 1024 * 1024 + 1)
        status, body, _ = call("POST", f"/invocation/{{rid}}/response", big)
        notes.append(["big", status, json.loads(body)["errorType"]])
        continue
    if action == "protocol":
        notes.append(["unknown id", call("POST", "/invocation/nope/response", b"{{}}")[0]])
    reply = {{"pid": os.getpid(), "headers": headers, "event": event, "notes": notes,
              "env": {{k: os.environ.get(k) for k in ("_HANDLER", "LAMBDA_TASK_ROOT",
                       "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE")}}}}
    notes = []
    status, _, _ = call("POST", f"/invocation/{{rid}}/response", json.dumps(reply).encode())
    again, body, _ = call("POST", f"/invocation/{{rid}}/response", b"{{}}")
    notes.append(["first", status])
    notes.append(["again", again, json.loads(body)["errorType"]])
"""


def write_runtime_functions(directory: Path, toml: str) -> Path:
    """A functions folder with the Python bootstrap (``pyboot/``) and the shell example."""
    directory.mkdir(parents=True, exist_ok=True)
    pyboot = directory / "pyboot"
    pyboot.mkdir(exist_ok=True)
    (pyboot / "bootstrap").write_text(PY_BOOTSTRAP)
    os.chmod(pyboot / "bootstrap", 0o700)
    shutil.copytree(EXAMPLES / "custom", directory / "custom", dirs_exist_ok=True)
    (directory / "functions.toml").write_text(textwrap.dedent(toml))
    return directory


DEFAULT_TOML = """
    [functions.custom]
    runtime = "provided.al2023"
    code = "custom"
    handler = "function.handler"

    [functions.pyboot]
    runtime = "provided.al2"
    code = "pyboot"
    handler = "anything.here"
    timeout = 2
    memory_size = 256
"""
