"""Prometheus metrics (prometheus_client): what is counted, and the request middleware. Imports nothing of
the project, so that any module may count. Served by health.metrics."""

import time

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "config_registry_http_requests_total", "HTTP requests answered, by route, method and status code",
    ["endpoint", "method", "code"],
)  # fmt: skip
REQUEST_SECONDS = Histogram(
    "config_registry_http_request_seconds", "Time to answer an HTTP request, by route", ["endpoint"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)  # fmt: skip
RESOLVE_ANSWERS = Counter(
    "config_registry_resolve_answers_total",
    "Resolve answers by where they came from: memory (this process), shared (the shared cache) or resolved",
    ["source"],
)
RESOLVE_ANSWERS_MEMORY = RESOLVE_ANSWERS.labels("memory")  # the warm path: no label look-up
PUBLISHES = Counter("config_registry_publishes_total", "Versions published (publish, rollback, import)", ["action"])
AUDIT_EVENTS = Counter("config_registry_audit_events_total", "Audit events written, by action", ["action"])
SOCKETS = Gauge(
    "config_registry_websockets", "Open WebSocket connections, by kind (chat, watch)", ["kind"],
    multiprocess_mode="livesum",
)  # fmt: skip
CHAT_SOCKETS, WATCH_SOCKETS = SOCKETS.labels("chat"), SOCKETS.labels("watch")
FANOUT_SECONDS = Histogram(
    "config_registry_chat_fanout_seconds",
    "Time from a registry move to every connected chat user of a process having their new configuration",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class RequestMetrics:
    """Counts and times every HTTP request by its route (the URL pattern, so that paths with names or
    numbers do not each become a series)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        start = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        endpoint = match.route if match is not None else "(no route)"
        REQUEST_SECONDS.labels(endpoint).observe(time.perf_counter() - start)
        REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
        return response
