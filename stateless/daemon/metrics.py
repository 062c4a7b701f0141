"""The daemon's Prometheus metrics, in the registry `/metrics` serves."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.births = Counter("stateless_births", "birth messages by outcome", ["outcome"],
                              registry=registry)
        self.applies = Counter("stateless_applies", "applies by result", ["result"],
                               registry=registry)
        self.apply_seconds = Histogram("stateless_apply_seconds", "time to apply one host",
                                       registry=registry)
        self.calls = Counter("stateless_vcenter_calls", "SOAP calls made by applies, placement "
                             "included", registry=registry)
        self.queue = Gauge("stateless_queue", "hosts queued or being applied", registry=registry)
        self.hosts = Gauge("stateless_hosts", "hosts by state", ["state"], registry=registry)
        self.drift = Counter("stateless_drift", "drift found, by source", ["source"],
                             registry=registry)
        self.retries = Counter("stateless_apply_retries", "transient apply failures that were "
                               "rescheduled", registry=registry)
        self.directory_up = Gauge("stateless_directory_up", "1 while the directory's change "
                                  "feed is connected and synchronized, else 0", registry=registry)
        self.problems = Gauge("stateless_directory_problems", "entries or values in the "
                              "directory that could not be turned into the model (see "
                              "`stateless problems`)", registry=registry)
        self.scans = Counter("stateless_scans", "compliance scans completed", registry=registry)
