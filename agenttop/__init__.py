"""agenttop: `top` for AI-agent systems, fed by OpenTelemetry."""

__version__ = "0.1.0"
