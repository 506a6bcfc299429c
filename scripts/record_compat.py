"""Record what real instrumentation libraries emit, as OTLP/JSON fixtures for
tests/test_compat.py.

Each setup instruments the ``openai`` client with one library, makes the calls an agent
makes against a fake OpenAI-compatible server started on loopback (a chat completion with
usage, an embedding, and chats the server answers with 429, 500 and 401), collects the
spans in memory and writes them, with the library versions, to ``tests/compat/NAME.json``
(an OTLP/JSON traces request per line, as ``agenttop import`` reads it).

Not run in CI: its dependencies are heavy. To re-record after a library changes:

    python3 -m venv /tmp/compat && /tmp/compat/bin/pip install openai opentelemetry-sdk \\
        opentelemetry-exporter-otlp-proto-common opentelemetry-instrumentation-openai-v2 \\
        openinference-instrumentation-openai openlit
    /tmp/compat/bin/python scripts/record_compat.py [SETUP...]

then read the new fixtures span by span and update the expectations in
tests/test_compat.py where the library's shapes changed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.metadata
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "compat"
# The model name tells the fake server how to answer.
FAILURES = {"gpt-4o-mini-ratelimit": 429, "gpt-4o-mini-broken": 500, "gpt-4o-mini-badkey": 401}


class FakeOpenAI(BaseHTTPRequestHandler):
    """Chat completions (with usage) and embeddings; errors as the model name asks."""

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - the handler's name
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        model = request.get("model", "")
        if model in FAILURES:
            status = FAILURES[model]
            self._reply(status, {"error": {"message": f"fake error {status}",
                                           "type": "fake", "code": str(status)}})
            return
        if self.path.endswith("/embeddings"):
            self._reply(200, {"object": "list", "model": model, "data": [
                {"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                "usage": {"prompt_tokens": 5, "total_tokens": 5}})
            return
        self._reply(200, {
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000,
            "model": model, "choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": "Your order 1042 ships tomorrow."}}],
            "usage": {"prompt_tokens": 21, "completion_tokens": 8, "total_tokens": 29}})


def instrument(setup: str, provider) -> list[str]:
    """Instrument the openai client with one library; the packages whose versions count."""
    if setup == "openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=provider)
        return ["opentelemetry-instrumentation-openai-v2", "openai"]
    if setup == "openinference-openai":
        from openinference.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=provider)
        return ["openinference-instrumentation-openai", "openai"]
    if setup == "openlit":
        import openlit

        openlit.init(tracer=provider.get_tracer("openlit"), disable_metrics=True,
                     disable_batch=True)
        return ["openlit", "openai"]
    raise SystemExit(f"unknown setup {setup!r}")


SETUPS = ("openai-v2", "openinference-openai", "openlit")


def record(setup: str, base_url: str) -> Path:
    import openai
    from google.protobuf import json_format
    from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": f"compat-{setup}"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    packages = instrument(setup, provider)
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=5)
    messages = [{"role": "user", "content": "Where is my order 1042?"}]
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    client.embeddings.create(model="text-embedding-3-small", input="order 1042")
    for model in FAILURES:
        with contextlib.suppress(openai.APIError):  # the failure is what is recorded
            client.chat.completions.create(model=model, messages=messages)
    provider.force_flush()
    request = encode_spans(exporter.get_finished_spans())
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    fixture = {
        "versions": {p: importlib.metadata.version(p) for p in packages},
        "request": _hex_ids(document),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{setup}.json"
    path.write_text(json.dumps(fixture, indent=1) + "\n")
    return path


def _hex_ids(value: object) -> object:
    """OTLP/JSON: trace and span ids as hex, not protobuf JSON's base64."""
    if isinstance(value, dict):
        return {k: (base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId")
                    and isinstance(v, str) else _hex_ids(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_hex_ids(v) for v in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("setups", nargs="*", metavar="SETUP",
                        help=f"one or more of {', '.join(SETUPS)} (default: all)")
    args = parser.parse_args()
    unknown = set(args.setups) - set(SETUPS)
    if unknown:
        parser.error(f"unknown setups: {', '.join(sorted(unknown))}")
    args.setups = args.setups or list(SETUPS)
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    failed = []
    for setup in args.setups:
        # One library per process: instrumentors patch the openai module for good.
        if len(args.setups) > 1:
            if subprocess.run([sys.executable, __file__, setup]).returncode:
                failed.append(setup)
            continue
        print(record(setup, base_url))
    server.shutdown()
    if failed:
        raise SystemExit(f"not recorded: {', '.join(failed)} (see above)")


if __name__ == "__main__":
    main()
