# The one place commands live. `make run` and `make test` install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
# The lease long-poll's own ASGI process (Procfile.dev `longpoll`); PORT serves it too, on a thread.
LONGPOLL_PORT ?= 8001

.PHONY: run test local-carriers smpp-peer lint lint-imports format check-deploy migrations-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

# A local .env with a fresh secret key, DEBUG on, loopback-friendly webhooks, and live messages by the routing
# table to the local carriers (seed_demo's local-smpp and local-http), whose receipts come back to PUBLIC_BASE_URL.
.env:
	@printf 'DEBUG=true\nSECRET_KEY=%s\n' "$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(64))')" > .env
	@printf 'WEBHOOK_ALLOW_PRIVATE_TARGETS=true\n' >> .env
	@printf 'LIVE_CARRIER=routes\nPUBLIC_BASE_URL=http://127.0.0.1:$(PORT)\n' >> .env
	@echo "wrote .env (local development settings)"

## run: install, migrate, seed the demo tenant, then web + dispatcher + workers + beat on 127.0.0.1:$(PORT), the SMPP
## connector and the local SMPP and HTTP carriers (manage.py local_carriers)
run: $(VENV)/.runtime .env local-carriers
	mkdir -p var/broker
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	PORT=$(PORT) $(BIN)/python manage.py seed_demo
	WEB_ACCESS_LOG=- WEB_PORT=$(PORT) LONGPOLL_PORT=$(LONGPOLL_PORT) PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f Procfile.dev start

## test: install (incl. headless Chromium), check the import contracts and migrations, run the whole suite
test: $(VENV)/.dev .env chromium local-carriers lint-imports
	mkdir -p var/broker
	$(BIN)/python manage.py makemigrations --check --dry-run --settings smsportal.test_settings
	$(BIN)/pytest

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (Debian package) for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

## local-carriers: node-smpp for the local SMSC (messaging/carriers/local/smsc.js) and the SMPP tests' peer
## (npm ci when missing or the lock changed; Node.js from Debian when missing). smpp-peer: its old name.
LOCAL_CARRIERS := messaging/carriers/local
local-carriers: $(LOCAL_CARRIERS)/node_modules/.installed
smpp-peer: local-carriers

$(LOCAL_CARRIERS)/node_modules/.installed: $(LOCAL_CARRIERS)/package-lock.json
	@command -v npm >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm >/dev/null; }
	npm ci --prefix $(LOCAL_CARRIERS) --no-audit --no-fund
	touch $@

## lint-imports: the import contracts of .importlinter (layers; no app imports another app's models).
# PYTHONPATH=. so that `numbers` is our app (numbers/__init__.py keeps the standard module's classes),
# not the standard library module the tool itself imports first.
lint-imports: $(VENV)/.dev
	PYTHONPATH=. $(BIN)/lint-imports --no-cache

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## check-deploy: Django's deployment checks with production settings (DEBUG off)
check-deploy: $(VENV)/.runtime
	DEBUG=false SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(64))') \
	  ALLOWED_HOSTS=sms.example.com PUBLIC_BASE_URL=https://sms.example.com \
	  $(BIN)/python manage.py check --deploy --fail-level WARNING

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache
