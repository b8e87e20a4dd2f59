"""The worker process: one warm execution environment running one function's handler.

It is started as a script (``python _worker.py``), never imported by the runtime, and uses
the standard library only so a cold start stays cheap. It speaks a framed protocol over its
original stdin/stdout; fd 1 is then pointed at stderr so stray output cannot corrupt it.

Frame: 8 bytes (header length, body length; unsigned big-endian 32-bit) + JSON header + body.

- worker -> runtime, once after init: ``{"ready": true}`` or ``{"ready": false, "error": {...},
  "log": "..."}`` (the handler module could not be loaded).
- runtime -> worker, per invocation: ``{"id", "arn", "deadline" (epoch ms), "client_context",
  "tenant_id"}``
  + the raw event bytes.
- worker -> runtime: ``{"error": bool, "log": "...", "memory_mb": int}`` + the reply bytes
  (the handler's result as JSON, or the AWS-shaped error object).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import struct
import sys
import time
import traceback
from typing import Any

_HEAD = struct.Struct(">II")
_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
_LOG_KEEP = 256 * 1024
"""Characters of a call's output kept for its log (the newest ones)."""
_DROPPED = "[... earlier output dropped ...]\n"


class _Capture:
    """A text stream that keeps what the handler prints or logs during one invocation."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.dropped = False

    def write(self, text: str) -> int:
        self.parts.append(text)
        self.size += len(text)
        if self.size > 2 * _LOG_KEEP:
            # Only the tail is ever shown (Lambda returns the last 4 KB): a handler that
            # prints without end must not grow the worker without end either.
            self.parts = [self.text()]
            self.size = _LOG_KEEP
            self.dropped = True
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return 2

    def text(self) -> str:
        joined = "".join(self.parts)
        if self.dropped or len(joined) > _LOG_KEEP:
            self.dropped = True
            return _DROPPED + joined[-_LOG_KEEP:].removeprefix(_DROPPED)
        return joined


class _LambdaLogHandler(logging.Handler):
    """Formats records like the AWS Python runtime and writes them to the current capture."""

    def __init__(self) -> None:
        super().__init__()
        self.request_id = ""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            millis = int(record.msecs)
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            sys.stdout.write(
                f"[{record.levelname}]\t{stamp}.{millis:03d}Z\t{self.request_id}\t{message}\n"
            )
        except Exception:
            self.handleError(record)


class ClientContext:
    """``context.client_context``: what the caller put in ``X-Amz-Client-Context``."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.client = raw.get("client")
        self.custom = raw.get("custom")
        self.env = raw.get("env")

    def __repr__(self) -> str:
        return f"ClientContext(client={self.client!r}, custom={self.custom!r}, env={self.env!r})"


class LambdaContext:
    """The ``context`` argument, with the attributes of the AWS Python runtime's."""

    def __init__(
        self,
        request_id: str,
        arn: str,
        deadline_ms: int,
        client_context: Any,
        tenant_id: str | None = None,
    ) -> None:
        self.aws_request_id = request_id
        self.tenant_id = tenant_id
        self.invoked_function_arn = arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = (
            ClientContext(client_context) if isinstance(client_context, dict) else None
        )
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function times out."""
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def __repr__(self) -> str:
        return (
            f"LambdaContext(aws_request_id={self.aws_request_id!r}, "
            f"function_name={self.function_name!r}, "
            f"invoked_function_arn={self.invoked_function_arn!r})"
        )


def _error(error_type: str, message: str, request_id: str, stack: list[str]) -> dict[str, Any]:
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": stack,
    }


def _user_stack(exc: BaseException) -> list[str]:
    """The traceback lines below this module, like the AWS runtime's ``stackTrace``."""
    entries = traceback.extract_tb(exc.__traceback__)
    entries = traceback.StackSummary.from_list(
        [e for e in entries if os.path.abspath(e.filename) != os.path.abspath(__file__)]
    )
    return entries.format()


def _load(handler_path: str) -> Any:
    """Import ``module.function``; raise (type, message) like the AWS runtime on failure."""
    module_name, _, function_name = handler_path.rpartition(".")
    if not module_name:
        raise _InitError(
            "Runtime.MalformedHandlerName",
            f"Bad handler '{handler_path}': not enough values to unpack (expected 2, got 1)",
        )
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as exc:
        raise _InitError(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{module_name}': {exc}",
            _user_stack(exc),
        ) from None
    except ImportError as exc:
        raise _InitError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from None
    except Exception as exc:
        raise _InitError(
            type(exc).__name__, str(exc), _user_stack(exc), log_traceback=exc
        ) from None
    function = getattr(module, function_name, None)
    if function is None or not callable(function):
        raise _InitError(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
        )
    return function


class _InitError(Exception):
    def __init__(
        self,
        error_type: str,
        message: str,
        stack: list[str] | None = None,
        log_traceback: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack = stack or []
        self.log_traceback = log_traceback


class _Worker:
    def __init__(self, handler_path: str) -> None:
        self.inp = os.fdopen(os.dup(0), "rb", buffering=0)
        self.out = os.fdopen(os.dup(1), "wb", buffering=0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(2, 1)  # stray writes to fd 1 land on stderr, never in the protocol
        self.handler_path = handler_path
        self.loop: Any = None
        self.log_handler = _LambdaLogHandler()
        root = logging.getLogger()
        for old in list(root.handlers):
            root.removeHandler(old)
        root.addHandler(self.log_handler)
        self.real_stdout = sys.stdout
        self.real_stderr = sys.stderr

    def send(self, header: dict[str, Any], body: bytes = b"") -> None:
        head = json.dumps(header, separators=(",", ":")).encode()
        self.out.write(_HEAD.pack(len(head), len(body)) + head + body)

    def read_exactly(self, size: int) -> bytes | None:
        chunks = []
        while size:
            chunk = self.inp.read(size)
            if not chunk:
                return None
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def capture(self) -> _Capture:
        capture = _Capture()
        sys.stdout = capture
        sys.stderr = capture
        return capture

    def release(self) -> None:
        sys.stdout = self.real_stdout
        sys.stderr = self.real_stderr

    def init(self) -> Any:
        capture = self.capture()
        try:
            function = _load(self.handler_path)
        except _InitError as exc:
            if exc.log_traceback is not None:
                traceback.print_exception(exc.log_traceback, file=capture)
            message = json.dumps(_error(exc.error_type, exc.message, "", exc.stack))
            capture.write(f"[ERROR] {exc.error_type}: {exc.message}\n")
            self.release()
            self.send({"ready": False, "error": json.loads(message), "log": capture.text()})
            return None
        self.release()
        self.send({"ready": True, "log": capture.text()})
        return function

    def call(self, function: Any, event: Any, context: LambdaContext) -> Any:
        result = function(event, context)
        if hasattr(result, "__await__"):
            # asyncio costs a cold start ~0.1 s to import: only async handlers pay for it.
            import asyncio

            if self.loop is None:
                self.loop = asyncio.new_event_loop()
                asyncio.set_event_loop(self.loop)
            result = self.loop.run_until_complete(result)
        return result

    def serve(self) -> None:
        function = self.init()
        if function is None:
            return
        while True:
            head = self.read_exactly(_HEAD.size)
            if head is None:
                return
            head_len, body_len = _HEAD.unpack(head)
            raw_header = self.read_exactly(head_len)
            raw_body = self.read_exactly(body_len) if body_len else b""
            if raw_header is None or raw_body is None:
                return
            header = json.loads(raw_header)
            self.invoke(function, header, raw_body)

    def invoke(self, function: Any, header: dict[str, Any], raw_body: bytes) -> None:
        request_id = header["id"]
        self.log_handler.request_id = request_id
        capture = self.capture()
        failed = False
        try:
            event = json.loads(raw_body) if raw_body else {}
            context = LambdaContext(
                request_id,
                header["arn"],
                header["deadline"],
                header.get("client_context"),
                header.get("tenant_id"),
            )
            result = self.call(function, event, context)
            try:
                body = json.dumps(result).encode()
            except (TypeError, ValueError) as exc:
                failed = True
                message = f"Unable to marshal response: {exc}"
                capture.write(f"[ERROR] Runtime.MarshalError: {message}\n")
                body = json.dumps(_error("Runtime.MarshalError", message, request_id, [])).encode()
        except Exception as exc:
            failed = True
            stack = _user_stack(exc)
            error_type = type(exc).__name__
            capture.write(
                f"[ERROR] {error_type}: {exc}\nTraceback (most recent call last):\n"
                + "".join(stack)
            )
            body = json.dumps(_error(error_type, str(exc), request_id, stack)).encode()
        finally:
            self.release()
        memory = _max_rss_mb()
        self.send({"error": failed, "log": capture.text(), "memory_mb": memory}, body)


def _max_rss_mb() -> int:
    """Peak resident memory of this process in MB (``VmHWM``: it starts afresh at exec)."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def main() -> None:
    """Entry point: ``python _worker.py TASK_ROOT MODULE.FUNCTION``."""
    task_root, handler_path = sys.argv[1], sys.argv[2]
    sys.path.insert(0, task_root)
    # This file's own directory must not shadow the handler's imports.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here or p == task_root]
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    worker = _Worker(handler_path)
    if level in _LEVELS:
        logging.getLogger().setLevel(level)
    try:
        worker.serve()
    except (BrokenPipeError, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    main()
