"""Prometheus metrics, one registry per app (several apps in one process, e.g. tests, never collide).

Routes are labelled by their template (`/v1/reports/{report_id}`), never the raw path, so label
cardinality stays bounded. `gemid serve --workers N` (N > 1) runs N HTTP processes and any of them may
answer a scrape, so it switches prometheus_client to its multiprocess mode (PROMETHEUS_MULTIPROC_DIR): each
process writes its counts to a shared folder and `/metrics` sums them, so every scrape shows the service's
totals, not one process's.
"""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own switch, read when it is first imported

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("gemid_http_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("gemid_http_request_duration_seconds", "HTTP request latency by route",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.identifications = Counter("gemid_identifications_total", "Reports produced, by species decision",
                                       ["decision"], registry=self.registry)
        self.file_errors = Counter("gemid_file_errors_total", "Photos refused, by error code",
                                   ["code"], registry=self.registry)
        self.inference = Histogram("gemid_inference_seconds",
                                   "Seconds to analyse one photo (decode, segment, classify, grade)",
                                   buckets=LATENCY_BUCKETS, registry=self.registry)
        self.store_bytes = Gauge("gemid_store_photo_bytes", "Bytes used by the stored photos",
                                 registry=self.registry, multiprocess_mode="max")
        self.store_max_bytes = Gauge("gemid_store_photo_max_bytes", "GEMID_MAX_STORE_BYTES (0: no limit)",
                                     registry=self.registry, multiprocess_mode="max")
        self.busy = Counter("gemid_busy_refusals_total", "Requests refused 503 because GEMID_MAX_IN_FLIGHT were "
                            "already in flight", registry=self.registry)
        self.confirmed = Counter("gemid_confirmed_total", "Reports confirmed (first confirmation of each)",
                                 registry=self.registry)
        self.field_correct = Counter("gemid_field_correct_total", "Confirmed reports whose answer matched the "
                                     "confirmed label, by answer (photo: photo-only top-1; conclusion)",
                                     ["answer"], registry=self.registry)
        self.shadow = Counter("gemid_shadow_total", "Stored photos given to the shadow model, by outcome "
                              "(agreed / disagreed with the served top-1, skipped: queue full, failed)",
                              ["outcome"], registry=self.registry)
        self.drift_psi = Gauge("gemid_drift_psi", "PSI of the last 7 days' capture statistic against the "
                               "training photos' (gemid.serve.drift)", ["statistic"], registry=self.registry,
                               multiprocess_mode="max")
        self.drift_moved = Gauge("gemid_drift_moved", "1 when the statistic moved over the last 7 days (PSI over "
                                 "its line, enough photos)", ["statistic"], registry=self.registry,
                                 multiprocess_mode="max")
        self.drift_photos = Gauge("gemid_drift_photos", "Photos in the last 7 days' drift window",
                                  registry=self.registry, multiprocess_mode="max")
        # an Info metric in all but name: Info has no multiprocess form; this one exposes the same sample
        self.model = Gauge("gemid_model_info", "The model bundle being served", ["name", "version", "variant"],
                           registry=self.registry, multiprocess_mode="max")

    def set_model(self, name: str, version: str, variant: str) -> None:
        self.model.labels(name, version, variant).set(1)

    def exposition(self) -> bytes:
        """The text a scrape gets: this app's registry, or every HTTP process's counts in multiprocess mode."""
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every HTTP request (errors included) by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)
