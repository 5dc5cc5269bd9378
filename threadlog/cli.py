"""The `threadlog` command: `run` the whole service, `migrate` the schema."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

from shared.db import apply_schema

from .devenv import EmbeddedNats, EmbeddedPostgres
from .stack import Stack

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    return Path(os.environ.get("THREADLOG_DATA_DIR") or PROJECT_ROOT / ".threadlog").resolve()


def api_key_for(folder: Path) -> tuple[str, bool]:
    """THREADLOG_API_KEY, or a key generated once and kept in the data folder. True when generated here."""
    if key := os.environ.get("THREADLOG_API_KEY"):
        return key, False
    from shared.apikeys import new_key

    path = folder / "api_key"
    if path.exists():
        return path.read_text().strip(), True
    key = new_key()
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(key)
    path.chmod(0o600)
    return key, True


def cmd_run(args: argparse.Namespace) -> int:
    folder = data_dir()
    postgres = nats = None
    database_url = os.environ.get("DATABASE_URL")
    nats_url = os.environ.get("NATS_URL")
    if not database_url:
        postgres = EmbeddedPostgres(folder / "postgres")
        database_url = postgres.start()
        print(f"threadlog: embedded PostgreSQL at {database_url} (data in {postgres.pgdata})", flush=True)
    if not nats_url:
        nats = EmbeddedNats(folder / "nats", port=int(os.environ.get("THREADLOG_NATS_PORT", "0")) or None)
        nats_url = nats.start()
        print(f"threadlog: embedded NATS JetStream at {nats_url}", flush=True)
    asyncio.run(apply_schema(database_url))
    key, generated = api_key_for(folder)
    openai_key = os.environ.get("OPENAI_API_KEY")
    stack = Stack(database_url=database_url, nats_url=nats_url, log_dir=folder / "logs", api_key=key,
                  port=int(os.environ.get("THREADLOG_PORT", "8080")), workers=args.workers,
                  openai_base_url=os.environ.get("OPENAI_BASE_URL"), openai_api_key=openai_key)
    stopping = False

    def on_signal(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
        model = ("the OFFLINE model (threadlog's own deterministic stand-in, not a real LLM)" if stack.local_model
                 else os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"))
        print(
            "\nthreadlog is running.\n"
            f"  base URL : {stack.base_url}\n"
            f"  API key  : {key}{'  (generated; set THREADLOG_API_KEY to choose one)' if generated else ''}\n"
            f"  model    : {model}\n"
            f"  logs     : {stack.log_dir}\n"
            f'  try      : OpenAI(base_url="{stack.base_url}", api_key="{key}").beta.threads.create()\n'
            "Ctrl-C stops everything.\n", flush=True)
        while not stopping:
            time.sleep(0.5)
            for service in stack.services:
                if not service.alive and not stopping:
                    print(f"threadlog: {service.name} exited; restarting (log: {service.log_path})", flush=True)
                    service.start()
    finally:
        print("threadlog: stopping…", flush=True)
        stack.stop()
        if nats:
            nats.stop()
        if postgres:
            postgres.stop()
        print("threadlog: stopped.", flush=True)
    return 0


def database_url() -> str:
    """DATABASE_URL, or the embedded server `make run` started (when it is running)."""
    if url := os.environ.get("DATABASE_URL"):
        return url
    embedded = EmbeddedPostgres(data_dir() / "postgres")
    if embedded.running():
        return embedded.url
    raise SystemExit("DATABASE_URL is not set and no embedded PostgreSQL is running (start one with `make run`)")


def cmd_migrate(_args: argparse.Namespace) -> int:
    asyncio.run(apply_schema(database_url()))
    print("schema applied")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import main as replay

    return replay(database_url(), fresh=args.fresh, verify=args.verify, do_swap=not args.no_swap)


def cmd_audit(args: argparse.Namespace) -> int:
    from . import audit

    if args.audit_command == "export":
        filters = audit.Filters(thread=args.thread, run=args.run, tenant=args.tenant, since=args.since,
                                until=args.until)
        return audit.main_export(database_url(), filters, args.output)
    if args.audit_command == "verify":
        return audit.main_verify(database_url(), args.expect_head)
    print(asyncio.run(audit.head(database_url())))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from . import admin

    if args.keys_command == "create":
        return admin.keys_create(database_url(), args.project, args.admin)
    if args.keys_command == "list":
        return admin.keys_list(database_url(), args.project)
    return admin.keys_revoke(database_url(), args.key_id)


def cmd_budgets(args: argparse.Namespace) -> int:
    from . import admin

    if args.budgets_command == "set":
        return admin.budgets_set(database_url(), args.project, args.tokens, args.period, args.per_thread)
    return admin.budgets_clear(database_url(), args.project)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="threadlog", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the whole service (embedded PostgreSQL and NATS unless configured)")
    run.add_argument("--workers", type=int, default=1, help="run-worker processes")
    run.set_defaults(func=cmd_run)
    migrate = sub.add_parser("migrate", help="apply the schema to DATABASE_URL")
    migrate.set_defaults(func=cmd_migrate)
    replay = sub.add_parser("replay", help="rebuild every read model from the log, then swap them in")
    replay.add_argument("--fresh", action="store_true", help="start over instead of resuming an interrupted replay")
    replay.add_argument("--verify", action="store_true", help="compare the rebuilt read models with the live ones")
    replay.add_argument("--no-swap", action="store_true", help="rebuild (and verify) only; keep the live tables")
    replay.set_defaults(func=cmd_replay)
    audit = sub.add_parser("audit", help="export events; verify the tamper-evident chain")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    export = audit_sub.add_parser("export", help="events as JSON Lines")
    export.add_argument("--thread")
    export.add_argument("--run")
    export.add_argument("--tenant")
    export.add_argument("--since", type=datetime.fromisoformat, help="ISO time, inclusive")
    export.add_argument("--until", type=datetime.fromisoformat, help="ISO time, exclusive")
    export.add_argument("--output", help="file (default: stdout)")
    verify = audit_sub.add_parser("verify", help="check every event against the hash chain")
    verify.add_argument("--expect-head", help="SEQ:HASH recorded earlier (from `audit head`), kept outside the DB")
    audit_sub.add_parser("head", help="print the chain's head as SEQ:HASH, to keep somewhere safe")
    audit.set_defaults(func=cmd_audit)
    keys = sub.add_parser("keys", help="API keys of projects (stored hashed)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="a new key (printed once)")
    create.add_argument("--project", default="proj_default")
    create.add_argument("--admin", action="store_true", help="an operator key that reads across projects")
    listing = keys_sub.add_parser("list")
    listing.add_argument("--project")
    revoke = keys_sub.add_parser("revoke")
    revoke.add_argument("key_id")
    keys.set_defaults(func=cmd_keys)
    budgets = sub.add_parser("budgets", help="token budgets of projects")
    budgets_sub = budgets.add_subparsers(dest="budgets_command", required=True)
    budget = budgets_sub.add_parser("set")
    budget.add_argument("--project", default="proj_default")
    budget.add_argument("--tokens", type=int, required=True)
    budget.add_argument("--period", choices=["day", "month", "total"], default="month")
    budget.add_argument("--per-thread", action="store_true", help="a budget for each thread of the project")
    clear = budgets_sub.add_parser("clear")
    clear.add_argument("--project", default="proj_default")
    budgets.set_defaults(func=cmd_budgets)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
