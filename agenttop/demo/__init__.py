"""``agenttop demo``: a simulated multi-agent system that exports real OpenTelemetry traffic.

``scenario`` decides what the agents do (runs, failures, leaks, texts) as plain data;
``traffic`` sends it through the OpenTelemetry SDK over OTLP/gRPC. Importing this package
needs ``opentelemetry-sdk`` and ``opentelemetry-exporter-otlp-proto-grpc``.
"""

from agenttop.demo.traffic import DemoSettings, DemoStats, run_demo

__all__ = ["DemoSettings", "DemoStats", "run_demo"]
