"""What a serving process loads: every module a worker imports is memory it holds for its
whole life (issue 12 allows a worker 100 MiB), so the tooling and the libraries that only
rare paths need stay out of the serve path's imports."""

from __future__ import annotations

import subprocess
import sys

import orjson

from tests.test_layers import ROOT

# Tooling (bench, loadtest, plots, test drivers) and what only a public-key deployment
# (PyJWT; `cryptography`'s bindings) or the job runner (pgqueuer with pydantic) needs.
NEVER_SERVING = ("bench", "loadtest", "numpy", "matplotlib", "locust", "schemathesis", "jinja2")
LAZY = ("jwt", "cryptography.hazmat", "pgqueuer", "pydantic")


def loaded_by(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running `code`."""
    listing = "import sys, orjson; print(orjson.dumps(sorted(sys.modules)).decode())"
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\n{listing}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return set(orjson.loads(done.stdout.splitlines()[-1]))


def under(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(f"{p}.") for p in packages))


def test_a_worker_without_jobs_loads_no_tooling_pyjwt_or_pgqueuer() -> None:
    # What `serve --no-jobs` runs in each worker: the runner and the app it builds.
    modules = loaded_by(
        "from core.settings import Settings\n"
        "from server.app import create_app\n"
        "import server.runner\n"
        "create_app(Settings(redis_url='redis://x', database_url='postgresql://x',"
        " secret='s' * 32, run_jobs=False))"
    )
    assert "server.app" in modules  # the check sees what it should
    assert under(modules, NEVER_SERVING + LAZY) == []


def test_the_check_sees_a_lazy_import_once_it_runs() -> None:
    assert under(loaded_by("from core.jobs.runner import JobRunner"), LAZY) != []
