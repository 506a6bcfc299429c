"""Headless analysis of agent telemetry.

Layers and failures, health windows, alert rules, PII and prompt-injection scanning.
"""
