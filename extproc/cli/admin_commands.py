"""Commands that ask a running switchyard or Envoy: rollout, cache purge, report.

They reach switchyard's HTTP admin API (server.metrics_listen) with the bearer token from
server.admin_token_env, and print the answer's own reason when it refuses.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from extproc.cli.common import load_or_exit
from extproc.config import EnvoyConfig, ServerConfig
from extproc.errors import SwitchyardError


def _admin_headers(token_env: str) -> dict[str, str]:
    token = os.environ.get(token_env)
    return {"authorization": f"Bearer {token}"} if token else {}


def _local_url(address: str) -> str:
    """A listen address as a URL to reach it from this host (0.0.0.0 means any)."""
    host, _, port = address.rpartition(":")
    if host in ("0.0.0.0", "::", "[::]", ""):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def _admin_target(args: argparse.Namespace) -> tuple[str, str]:
    """switchyard's HTTP URL and the admin token's variable: the flags, else -c FILE's
    server.metrics_listen and server.admin_token_env, else the defaults."""
    config = load_or_exit(args.config) if args.config else None
    server = config.server if config else ServerConfig()
    url = args.url or _local_url(server.metrics_listen)
    return url, args.token_env or server.admin_token_env


class AdminError(SwitchyardError):
    """The admin API refused or could not be reached; the message is printed."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _call_admin(request: urllib.request.Request, url: str) -> str:
    """The answer's body; AdminError with the answer's own reason otherwise (a 400 or 404
    is bad input: exit 2)."""
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            body: str = response.read().decode()
            return body
    except urllib.error.HTTPError as exc:
        text = exc.read().decode()
        with contextlib.suppress(ValueError, KeyError, TypeError):
            text = str(json.loads(text)["error"])
        raise AdminError(text, 2 if exc.code in (400, 404) else 1) from None
    except urllib.error.URLError as exc:
        raise AdminError(f"cannot reach switchyard at {url}: {exc.reason}", 1) from None


def cmd_rollout(args: argparse.Namespace) -> int:
    url, token_env = _admin_target(args)
    base = f"{url.rstrip('/')}/rollout"
    status_request = urllib.request.Request(f"{base}/{args.route or ''}".rstrip("/"))
    try:
        if args.action != "status":
            if not args.route:
                print(f"switchyard rollout {args.action}: expected a ROUTE", file=sys.stderr)
                return 2
            action = urllib.request.Request(
                f"{base}/{args.route}/{args.action}",
                method="POST",
                data=b"",
                headers=_admin_headers(token_env),
            )
            answer = _call_admin(action, url)
            if args.json:
                print(answer)
                return 0
        status = json.loads(_call_admin(status_request, url))
    except AdminError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    print(json.dumps(status, indent=1) if args.json else format_rollout_status(status))
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    """`switchyard cache purge`: through the admin API, like the rollout actions."""
    url, token_env = _admin_target(args)
    query = urllib.parse.urlencode(
        {k: v for k, v in (("route", args.route), ("partition", args.partition)) if v}
    )
    target = f"{url.rstrip('/')}/cache/purge" + (f"?{query}" if query else "")
    request = urllib.request.Request(
        target, method="POST", data=b"", headers=_admin_headers(token_env)
    )
    try:
        print(_call_admin(request, url))
    except AdminError as exc:
        print(f"switchyard cache purge: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


def _hold(state: dict[str, Any]) -> str:
    hold = state.get("hold")
    if not hold:
        return "-"
    return (
        f"{hold['elapsed_s']:.0f}/{hold['seconds']:g} s, "
        f"{hold['requests_done']}/{hold['requests']} req"
    )


def format_rollout_status(status: dict[str, Any]) -> str:
    """`switchyard rollout status` (and every rollout action) as a table, then for each
    route the verdict, what it waits for and its last change."""
    lines = [
        f"store: {status['store']} ({'reachable' if status['store_available'] else 'UNREACHABLE'})"
        f"   replica: {status['replica']}   leader: {status['leader'] or 'none'}",
        "",
        f"{'route':<16} {'phase':<12} {'percent':>8}  {'canary':<18} {'steps':<22} "
        f"{'hold (time, requests here)':<28} {'version':>7}",
    ]
    for route, state in sorted(status["rollouts"].items()):
        steps = " > ".join(f"{step:g}" for step in state.get("steps", [])) or "-"
        lines.append(
            f"{route:<16} {state['phase']:<12} {state['percent']:>7.4g}%  "
            f"{state['backend']:<18} {steps:<22} {_hold(state):<28} {state['version']:>7}"
        )
        lines.append(f"  verdict: {state['verdict']}")
        if state.get("waiting_for"):
            lines.append(f"  waiting for: {state['waiting_for']}")
        lines.append(
            f"  last change: {state['updated_at'] or '-'} by {state['updated_by'] or '-'}: "
            f"{state['reason']}"
        )
    if not status["rollouts"]:
        lines.append("(no route has a canary)")
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:
    from extproc.rollout.report import ReportError, build_report, report_data

    config = load_or_exit(args.config) if args.config else None
    admin = args.admin or f"http://{(config.envoy if config else EnvoyConfig()).admin}"
    switchyard = args.switchyard or _local_url(
        (config.server if config else ServerConfig()).metrics_listen
    )
    try:
        if args.html is None:
            print(build_report(admin, switchyard, as_json=args.json))
            return 0
        from extproc.rollout.report_html import prometheus_history, render_html

        now = time.time()
        data = report_data(admin, switchyard)
        history = (
            prometheus_history(args.prometheus, data["canaries"], args.since, now)
            if args.prometheus
            else None
        )
        args.html.write_text(render_html(data, history, now))
    except ReportError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"wrote {args.html}")
    return 0
