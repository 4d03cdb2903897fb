# Two commands: `make run` (demo server) and `make test` (the whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
PIP    := $(BIN)/python -m pip install --disable-pip-version-check --quiet

.PHONY: run test lint format check serve serve-prod clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (found " + sys.version.split()[0] + ")")'
	$(PYTHON) -m venv $(VENV)

# Reinstall only when a requirements file changes.
$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(PIP) -r requirements.txt
	@touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(PIP) -r requirements-dev.txt
	@touch $@ $(VENV)/.runtime-installed

run: $(VENV)/.runtime-installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	@echo ""
	@echo "Config Registry is serving on http://$(HOST):$(PORT)/"
	@echo "  admin:     http://$(HOST):$(PORT)/admin/"
	@echo "  health:    http://$(HOST):$(PORT)/healthz  http://$(HOST):$(PORT)/readyz"
	@echo "  websocket: ws://$(HOST):$(PORT)/ws/"
	@echo ""
	$(MAKE) --no-print-directory serve

serve: $(VENV)/.runtime-installed
	$(BIN)/uvicorn project.asgi:application --host $(HOST) --port $(PORT) --http h11 --ws wsproto \
	  --ws-max-size 65536 --lifespan off --timeout-graceful-shutdown 5

# Production layout on one host (README, "Deployment"): gunicorn (threaded workers, project/gunicorn.conf.py)
# serves HTTP (API, admin, pages) on PORT, uvicorn serves WebSockets on WS_PORT; a reverse proxy routes /ws/ to it;
# run_scheduler applies scheduled change requests.
# Needs the production environment (DEBUG=false, DATABASE_URL, REDIS_URL, keys, ALLOWED_HOSTS).
HTTP_WORKERS ?= 2
HTTP_THREADS ?= 16
WS_WORKERS   ?= 2
WS_PORT      ?= 8001
# Every process of the serving writes its metrics here; /metrics sums them (prometheus_client's multi-process mode).
PROMETHEUS_MULTIPROC_DIR ?= $(CURDIR)/var/metrics
serve-prod: export PROMETHEUS_MULTIPROC_DIR := $(PROMETHEUS_MULTIPROC_DIR)
serve-prod: $(VENV)/.runtime-installed
	rm -rf "$(PROMETHEUS_MULTIPROC_DIR)" && mkdir -p "$(PROMETHEUS_MULTIPROC_DIR)"
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py check --deploy
	trap 'kill 0' INT TERM EXIT; \
	$(BIN)/gunicorn project.wsgi:application -c project/gunicorn.conf.py --workers $(HTTP_WORKERS) \
	  --threads $(HTTP_THREADS) --bind $(HOST):$(PORT) & \
	$(BIN)/uvicorn project.asgi:application --workers $(WS_WORKERS) --host $(HOST) --port $(WS_PORT) \
	  --ws wsproto --ws-max-size 65536 --lifespan off --timeout-graceful-shutdown 5 & \
	$(BIN)/python manage.py run_scheduler & \
	wait

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff's rules and style (pyproject.toml): `make format` applies them.
lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

check: $(VENV)/.runtime-installed
	$(BIN)/python manage.py check

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
