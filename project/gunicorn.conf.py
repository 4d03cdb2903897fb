"""gunicorn's settings for the production HTTP serving (`make serve-prod`; README, Deployment).

Threaded workers: a thread waits for a request's bytes at most a few seconds before its connection
goes back to the worker's poller, so slow clients cannot take every worker (the sync worker was
held by two). Workers and threads per worker are set on the command line (HTTP_WORKERS, HTTP_THREADS).
"""

worker_class = "gthread"
threads = 16
# A listening socket per worker (SO_REUSEPORT): the kernel spreads new connections across the workers. With
# one shared socket a threaded worker takes every connection that arrives while it is awake (a client that
# opens its keep-alive connections at once lands on one worker and the other idles: README, Performance).
reuse_port = True
timeout = 30  # a worker silent this long is restarted
graceful_timeout = 10
keepalive = 5
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190


def post_fork(server, worker):
    """A client that stops sending mid-request is dropped after CLIENT_READ_TIMEOUT seconds instead
    of holding its thread: the kernel's receive timeout, inherited by every accepted connection."""
    import logging
    import socket
    import struct

    for listener in worker.sockets:
        listener.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", CLIENT_READ_TIMEOUT, 0))
    log = logging.getLogger("gunicorn.error")
    log.addFilter(_slow_client_dropped)
    # With reuse_port the workers bind, not the arbiter: say when this one's socket takes connections.
    log.info("Worker %s listening at: %s", worker.pid, ", ".join(str(listener) for listener in worker.sockets))


def _slow_client_dropped(record) -> bool:
    # The receive timeout surfaces as an error with a traceback per client: one plain line instead,
    # so that slow clients cannot fill the log.
    if record.exc_info and isinstance(record.exc_info[1], BlockingIOError):
        record.msg, record.args = (
            "dropped a client that sent nothing for %s s in the middle of its request",
            (CLIENT_READ_TIMEOUT,),
        )
        record.exc_info, record.exc_text, record.levelname, record.levelno = None, None, "INFO", 20
    return True


CLIENT_READ_TIMEOUT = 5


def child_exit(server, worker):
    """A finished worker's metrics are marked dead (prometheus_client's multi-process mode): its share of
    the live gauges stops counting; its counters stay in the sums."""
    from project import settings  # the one reader of the environment

    if settings.PROMETHEUS_MULTIPROC_DIR:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, settings.PROMETHEUS_MULTIPROC_DIR)
