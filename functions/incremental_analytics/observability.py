"""Logger, Tracer and Metrics, defined once. Logs are structured key-values and never carry event payloads."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "incremental-analytics"
NAMESPACE = "IncrementalAnalytics"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
