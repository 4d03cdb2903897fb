"""Bootstrap settings: the only module of the project that reads the environment.

Everything else (service secrets, signing keys, limits, flags) lives in the registry.
A system check (config_registry.E001) fails if any other module reads the environment.
"""

import hashlib
import json
import os
import secrets
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"  # git-ignored: SQLite file, generated development secrets

env = environ.Env()

DEBUG = env.bool("DEBUG", default=True)
REGISTRY_ENVIRONMENT = env.str("REGISTRY_ENVIRONMENT", default="development")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
REDIS_URL = env.str("REDIS_URL", default="")


def _development_secrets() -> dict[str, str]:
    """Generate the development keys once into a git-ignored file readable by its owner only."""
    path = VAR_DIR / "development-secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    VAR_DIR.mkdir(exist_ok=True)
    generated = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "CONFIG_REGISTRY_KEYS": Fernet.generate_key().decode(),
    }
    # O_EXCL: two processes starting at once must not overwrite each other's keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return json.loads(path.read_text())
    with os.fdopen(fd, "w") as handle:
        json.dump(generated, handle)
    return generated


def _required(name: str) -> str:
    value = env.str(name, default="")
    if value:
        return value
    if not DEBUG:
        raise ImproperlyConfigured(
            f"{name} is not set. With DEBUG=false it is required: set it in the environment "
            f"(see README, 'Production deployment')."
        )
    return _development_secrets()[name]


SECRET_KEY = _required("DJANGO_SECRET_KEY")
# Keys the audit log's hash chain (HMAC): whoever can write the database cannot recompute it. Not in
# the database; by default derived from DJANGO_SECRET_KEY. Changing it means earlier events no
# longer verify: keep it with the keys, as long as the audit log.
AUDIT_CHAIN_KEY = (
    env.str("AUDIT_CHAIN_KEY", default="")
    or hashlib.sha256(b"config-registry-audit-chain:" + SECRET_KEY.encode()).hexdigest()
)
# Comma-separated Fernet keys: the first encrypts, all decrypt (config_registry.crypto).
CONFIG_REGISTRY_KEYS = [k.strip() for k in _required("CONFIG_REGISTRY_KEYS").split(",") if k.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "config_registry",
    "chat",
]

MIDDLEWARE = [
    "config_registry.metrics.RequestMetrics",  # first: it times and counts every answer, redirects included
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# HTTPS in production (DEBUG=false): redirect, HSTS, secure cookies. Behind a TLS-terminating proxy
# set TRUST_X_FORWARDED_PROTO=true (the proxy must set X-Forwarded-Proto) so that redirects end.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]  # load balancers probe over plain HTTP
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = not DEBUG
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
    # A file, not memory, for the test database too: tests inspect the bytes at rest.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
    # Writers take the lock when their transaction begins (so a busy database is waited for, not
    # failed), and readers do not block writers (WAL).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL"}
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A connection pool per process (psycopg's), safe under ASGI and WSGI alike: Django's
    # persistent connections are not, under ASGI (each thread/context keeps its own).
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        # A request waits at most 5 s for a connection: with the database away it answers 503 soon.
        "min_size": 1,
        "max_size": env.int("DATABASE_POOL_SIZE", default=20),
        "timeout": 5,
    }
DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A process receives everything for its chat connections on one channel (config_registry.live's
# GroupRelay): room for bursts well past channels' default of 100 queued messages per channel.
RELAY_CHANNEL_CAPACITY = {"relay.*": 10_000}
# How often each process joins its channel-layer groups again: how soon it is back in them after
# Redis lost them (a restart: Redis here keeps nothing on disk).
CHANNEL_GROUP_REFRESH_SECONDS = env.float("CHANNEL_GROUP_REFRESH_SECONDS", default=30.0)
# How a commit that moved the registry reaches every process (config_registry.live.broadcast).
REGISTRY_BROADCASTER = (
    {"BACKEND": "config_registry.live.broadcast.RedisBroadcaster", "location": REDIS_URL}
    if REDIS_URL
    else {"BACKEND": "config_registry.live.broadcast.LocalBroadcaster"}
)
if REDIS_URL:
    from redis import asyncio as redis_asyncio
    from redis import backoff, retry
    from redis import exceptions as redis_errors

    # After Redis restarts, pooled connections are dead: retry once or twice on a fresh one,
    # so that recovery needs no restart of ours.
    def _redis_retry(module):
        return {
            "retry": module.Retry(backoff.ExponentialBackoff(cap=1.0, base=0.05), 3),
            "retry_on_error": [redis_errors.ConnectionError],
        }

    CACHES = {
        "default": {
            "BACKEND": "project.infra.redis_cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "config-registry",
            # One pool per process (project.infra.redis_cache), shared by every thread and consumer: when
            # all its connections are busy, wait for one (up to 5 s) instead of failing (redis-py's
            # default pool raises "Too many connections" past 100).
            "OPTIONS": {
                **_redis_retry(retry),
                "pool_class": "redis.BlockingConnectionPool",
                "max_connections": 100,
                "timeout": 5,
            },
        }
    }
    # Single-use records of chat tickets, apart from resolutions (which may come and go): the
    # Redis must not evict them (checked at start-up, config_registry.E003).
    CACHES["tickets"] = {**CACHES["default"], "KEY_PREFIX": "config-registry-tickets"}
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "project.infra.channel_layer.ResilientRedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # redis-py's pool raises instead of waiting when exhausted: size it for bursts of joins.
                        "max_connections": 1000,
                        # channels_redis waits on BZPOPMIN for 5 s; redis-py's default read timeout is also
                        # 5 s, so idle consumers would die of TimeoutError (1011). Read well past the wait.
                        "socket_timeout": 10,
                        "socket_keepalive": True,
                        **_redis_retry(redis_asyncio.retry),
                    }
                ],
                "channel_capacity": RELAY_CHANNEL_CAPACITY,
            },
        }
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        # Single-use records of chat tickets, apart from resolutions: a million tickets (60 s
        # each) in flight before the oldest record could be dropped (config_registry.E003).
        "tickets": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "chat-tickets",
            "OPTIONS": {"MAX_ENTRIES": 1_000_000},
        },
    }
    # (Its channel_capacity patterns are not compiled by channels 4: one capacity for every channel.)
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": max(RELAY_CHANNEL_CAPACITY.values())},
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat"
LOGOUT_REDIRECT_URL = "login"

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
WHITENOISE_USE_FINDERS = DEBUG  # development serves straight from the apps, no collectstatic
if DEBUG:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # empty until collectstatic; whitenoise wants it

# API rate per service token (or per user / address), as N/s, N/min, N/hour or N/day;
# 429 with Retry-After beyond it.
# Request bodies up to this size (a layer holds at most 8 MiB, config_registry.limits); 413 beyond.
DATA_UPLOAD_MAX_MEMORY_SIZE = 12 * 1024 * 1024
API_THROTTLE_RATE = env.str("API_THROTTLE_RATE", default="1200/min")

# Usage counters (which token reads which context): each process writes its counts at most this often.
USAGE_FLUSH_SECONDS = env.float("USAGE_FLUSH_SECONDS", default=60.0)

# Prometheus: /metrics answers a token with metrics:read, or these addresses without one (e.g. the scraper's,
# when it reaches the server directly: behind a proxy every request comes from the proxy's address).
METRICS_ALLOWED_ADDRESSES = env.list("METRICS_ALLOWED_ADDRESSES", default=[])
# Where every process of a multi-process serving writes its metrics (prometheus_client reads the same
# variable when it is imported; `make serve-prod` sets it). Empty: each process reports its own.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["config_registry.api.authentication.ServiceTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["config_registry.api.permissions.HasTokenScope"],
    "DEFAULT_THROTTLE_CLASSES": ["config_registry.api.throttling.PerTokenThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config_registry.api.parsers.SafeJSONParser"],
    # Answers in ASCII JSON (\u escapes): a row stored by an older release can always be encoded.
    "UNICODE_JSON": False,
    "EXCEPTION_HANDLER": "config_registry.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Config Registry API",
    "DESCRIPTION": "Resolved per-user configuration and versioned, encrypted layers. "
    "Authenticate with `Authorization: Bearer <service token>`.\n\n"
    "The drop-in protocols have documents of their own: [Vault KV v2](/api/v1/docs/vault), "
    "[Spring Cloud Config](/api/v1/docs/spring), [OpenFeature OFREP](/api/v1/docs/ofrep).",
    "PREPROCESSING_HOOKS": ["config_registry.protocols.openapi.api_paths_only"],
    # Operations in the order of use (the URLconf's: resolve first), not alphabetically; tags likewise.
    "SORT_OPERATIONS": False,
    "TAGS": [
        {"name": "resolve", "description": "a context's resolved configuration"},
        {"name": "me", "description": "the signed-in user's own configuration"},
        {"name": "layers", "description": "layers, versions, publishes, rollbacks, diffs"},
        {"name": "keys", "description": "where a key is set, and where it wins"},
        {"name": "compare", "description": "two contexts or two layers side by side"},
        {"name": "audit", "description": "the audit log"},
        {"name": "chat", "description": "chat tickets"},
    ],
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",  # assets served from this app, no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"ChangeKindEnum": ["added", "removed", "changed"]},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "project.logging.RedactSecrets"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "project.logging.JsonFormatter"},
    },
    # LOG_FORMAT=json for log collectors (the default with DEBUG=false); plain text for people.
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["redact"],
            "formatter": env.str("LOG_FORMAT", default="plain" if DEBUG else "json"),
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # The ASGI server's own loggers: through the same redacting handler.
    "loggers": {
        name: {"handlers": ["console"], "propagate": False, "filters": ["redact"]}
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "daphne", "gunicorn.error")
    },
}
