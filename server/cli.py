"""The `slotrush` command: serve, worker, token, services, the bench and faults harnesses,
and the season simulator and analytics report.

Each subcommand imports what it needs when it runs, so `slotrush token` is quick and the
tooling (bench.harness, bench.faults.cli, bench.season.cli, bench.outcomes.cli) is only
needed by the commands that run it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from types import FrameType
from typing import TYPE_CHECKING

from core.settings import Settings
from server import his_sync_cli

if TYPE_CHECKING:
    from bench.embedded import ServiceUrls
    from core.token_keys import SigningKey

# Subcommands whose arguments and behaviour belong to another module:
# add_arguments(parser) -> None and run(args) -> int.
_DELEGATED = {
    "bench": "bench.harness",
    "faults": "bench.faults.cli",
    "simulate": "bench.season.cli",
    "report": "bench.outcomes.cli",
    "demo": "bench.demo",
    "sandbox-pay": "server.sandbox_pay.cli",
}
_SECRET_ENV = "SLOTRUSH_SECRET"


class CliError(Exception):
    """A mistake of the caller's: printed as one line, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    try:
        if args.command in _DELEGATED:
            return _delegate(args.command, rest)
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        command: Callable[[argparse.Namespace], int] = args.run
        return command(args)
    except CliError as exc:
        print(f"slotrush: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slotrush", description="Booking core for hospital appointment flash crowds."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument(
        "--strategy",
        default=os.environ.get("SLOTRUSH_STRATEGY", Settings.strategy),
        help="a registered strategy name, or module:Class (default: %(default)s)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    serve.add_argument(
        "--port", type=_port, default=8080, help="0 picks a free one (default: %(default)s)"
    )
    serve.add_argument(
        "--workers", type=_positive, default=1, help="processes (default: %(default)s)"
    )
    serve.add_argument(
        "--dev",
        action="store_true",
        help="start embedded Redis and PostgreSQL for an unset REDIS_URL or DATABASE_URL, and "
        f"generate and print {_SECRET_ENV} if it is not set (never in production)",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="with --dev: seed demo hospitals, sessions and bookings once serving, and print "
        "links that open /book and /console signed in",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request as JSON")
    serve.add_argument(
        "--no-jobs",
        action="store_true",
        help="run no durable jobs in the server's processes (leave them to slotrush worker)",
    )
    serve.set_defaults(run=_serve)

    worker = commands.add_parser(
        "worker", help="run the durable jobs (hold expiry, day-end settlement) without serving"
    )
    worker.add_argument(
        "--strategy",
        default=os.environ.get("SLOTRUSH_STRATEGY", Settings.strategy),
        help="the strategy the servers use, whose release path expiry frees numbers through "
        "(default: %(default)s)",
    )
    worker.set_defaults(run=_worker)

    token = commands.add_parser(
        "token", help=f"print a JWT signed with {_SECRET_ENV} or with --private-key"
    )
    token.add_argument("patient_id", nargs="?", metavar="PATIENT_ID")
    role = token.add_mutually_exclusive_group()
    role.add_argument("--admin", action="store_true", help="a platform admin token")
    role.add_argument(
        "--hospital-admin", metavar="HOSPITAL_ID", help="a token of one hospital's administrator"
    )
    token.add_argument(
        "--private-key",
        metavar="FILE",
        help=f"sign with this PEM private key (Ed25519: EdDSA, RSA: RS256), not {_SECRET_ENV}",
    )
    token.add_argument(
        "--kid", help="the key id the token names (servers verifying by JWKS pick keys by it)"
    )
    token.add_argument(
        "--ttl",
        type=_positive,
        default=3600,
        help="seconds until it expires (default: %(default)s)",
    )
    token.set_defaults(run=_token)

    his_sync = commands.add_parser(
        "his-sync", help="send a HIS schedule feed (JSON or CSV) to a server's HIS sync"
    )
    his_sync_cli.add_arguments(his_sync)
    his_sync.set_defaults(run=_his_sync)

    services = commands.add_parser(
        "services", help="start embedded Redis and PostgreSQL, print their URLs, wait"
    )
    services.add_argument(
        "--redis-cluster",
        type=int,
        metavar="PRIMARIES",
        help="start a Redis Cluster of this many primaries, each with a replica",
    )
    services.set_defaults(run=_services)

    for name, module in _DELEGATED.items():
        # add_help=False: `slotrush bench --help` is the harness's own help.
        commands.add_parser(name, help=f"run {module} (see slotrush {name} --help)", add_help=False)
    return parser


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is not in 0..65535")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


# --- serve --------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from core.ratelimit import parse_limit
    from server.cors import parse_origins
    from server.runner import ServeOptions, serve
    from strategies import strategy_class

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = _settings(strategy=args.strategy, run_jobs=not args.no_jobs)
    try:
        strategy_class(settings.strategy)
        parse_limit(settings.rate_limit_patient)
        parse_limit(settings.rate_limit_address)
        parse_origins(settings.cors_origins)
    except (ValueError, ImportError) as exc:
        raise CliError(str(exc)) from None
    settings = _with_token_key(settings, dev=args.dev)
    if not args.dev:
        _require_stores(settings)
    if args.demo:
        _seed_demo_once_serving(settings, args)
    options = ServeOptions(
        host=args.host, port=args.port, workers=args.workers, access_log=args.access_log
    )
    with _stores_or_embedded(settings) as urls:
        settings = replace(settings, redis_url=urls.redis_url, database_url=urls.database_url)
        return serve(settings, options)


def _seed_demo_once_serving(settings: Settings, args: argparse.Namespace) -> None:
    """Seed the demo through the API from a thread, once the server answers: dev only,
    with a port known beforehand and a secret to mint the pages' tokens with."""
    if not args.dev:
        raise CliError("--demo seeds made-up data: only with --dev")
    if args.port == 0 or settings.secret is None:
        raise CliError("--demo needs a fixed --port and an HS256 secret to mint tokens with")
    from bench.demo import seed_and_announce

    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}"
    threading.Thread(
        target=seed_and_announce, args=(url, settings.secret), name="demo", daemon=True
    ).start()


def _require_stores(settings: Settings) -> None:
    """Production serves the ledger it is given: an embedded one would be deleted at exit."""
    urls = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
    missing = [name for name, url in urls.items() if url is None]
    if missing:
        unset = " and ".join(missing) + (" are" if len(missing) > 1 else " is")
        raise CliError(
            f"{unset} not set: serve needs your own servers (--dev starts throwaway ones)"
        )


@contextmanager
def _stores_or_embedded(
    settings: Settings, *, redis_cluster: int | None = None
) -> Iterator[ServiceUrls]:
    """The stores the settings name, with embedded throwaway servers for those left unset."""
    from bench.embedded import NoServerBinary, running_services

    with ExitStack() as stack:
        try:
            services = running_services(
                settings.redis_url, settings.database_url, redis_cluster=redis_cluster
            )
            urls = stack.enter_context(services)
        except NoServerBinary as exc:
            raise CliError(str(exc)) from None
        yield urls


def _with_token_key(settings: Settings, *, dev: bool) -> Settings:
    """The settings once their token key is known to work: the public key or JWKS file
    loads, or the secret is strong enough (made up and printed with --dev)."""
    from core.tokens import token_verifier

    if settings.secret is None and not (settings.jwt_public_key or settings.jwt_jwks):
        if not dev:
            raise CliError(f"{_SECRET_ENV} is not set: export one of 32+ bytes, or use --dev")
        settings = replace(settings, secret=secrets.token_urlsafe(32))
        print(f"{_SECRET_ENV}={settings.secret}", flush=True)
    try:
        token_verifier(settings)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return settings


def _settings(**overrides: object) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except ValueError as exc:
        raise CliError(f"bad setting in the environment: {exc}") from None


# --- worker -------------------------------------------------------------------------------


def _worker(args: argparse.Namespace) -> int:
    from server.worker import work
    from strategies import strategy_class

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = _settings(strategy=args.strategy)
    try:
        strategy_class(settings.strategy)
    except (ValueError, ImportError) as exc:
        raise CliError(str(exc)) from None
    _require_stores(settings)
    return work(settings)


# --- token --------------------------------------------------------------------------------


def _token(args: argparse.Namespace) -> int:
    from core.tokens import issue_token

    if args.patient_id is None and not args.admin and args.hospital_admin is None:
        raise CliError("give a PATIENT_ID, or --admin, or --hospital-admin HOSPITAL_ID")
    settings = _settings()
    try:
        token = issue_token(
            _signing_key(args, settings.secret),
            subject=args.patient_id,
            admin=args.admin,
            hospital_id=args.hospital_admin,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl=args.ttl,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(token)
    return 0


def _his_sync(args: argparse.Namespace) -> int:
    token = args.token
    if token is None:
        from core.tokens import issue_token

        settings = _settings()
        if settings.secret is None:
            raise CliError(f"give --token, or set {his_sync_cli.TOKEN_ENV} or {_SECRET_ENV}")
        token = issue_token(
            settings.secret,
            admin=True,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl=300,
        )
    if not args.file.is_file():
        raise CliError(f"{args.file}: no such file")
    return his_sync_cli.run(args, token)


def _signing_key(args: argparse.Namespace, secret: str | None) -> str | SigningKey:
    """The private key of --private-key (ValueError if it does not load), else the secret."""
    from core.token_keys import load_signing_key

    if args.private_key is not None:
        return load_signing_key(args.private_key, args.kid)
    if args.kid is not None:
        raise CliError("--kid names the key of --private-key, which is missing")
    if secret is None:
        raise CliError(f"{_SECRET_ENV} is not set (or sign with --private-key FILE)")
    return secret


# --- services -----------------------------------------------------------------------------


def _services(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = _settings()
    with (
        _until_signalled() as stopped,
        _stores_or_embedded(settings, redis_cluster=args.redis_cluster) as urls,
    ):
        print(f"REDIS_URL={urls.redis_url}")
        print(f"DATABASE_URL={urls.database_url}", flush=True)
        stopped.wait()
    return 0


@contextmanager
def _until_signalled() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT while inside; the handlers before are restored."""
    stopped = threading.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    for sig in signals:
        signal.signal(sig, on_signal)
    try:
        yield stopped
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --- bench and faults ---------------------------------------------------------------------


def _delegate(command: str, argv: list[str]) -> int:
    module_name = _DELEGATED[command]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the harness itself missing is the caller's problem; a missing import inside
        # it is a bug and keeps its traceback.
        if exc.name not in (module_name, module_name.partition(".")[0]):
            raise
        raise CliError(f"slotrush {command} needs {module_name}, which is not installed") from None
    parser = argparse.ArgumentParser(prog=f"slotrush {command}")
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
