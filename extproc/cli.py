"""The `switchyard` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from classifier.errors import ClassifierError
from extproc import __version__
from extproc.config import (
    Config,
    ServerConfig,
    config_warnings,
    environment_issues,
    insecure_backends,
    load_config,
    load_values_config,
    model_issues,
)
from extproc.errors import ConfigError
from extproc.logs import configure_logging
from extproc.rollout.canary import ACTIONS

DEFAULT_CONFIG = "switchyard.yaml"
log = logging.getLogger("switchyard")


def _load(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def _require_model(config: Config, source: str) -> None:
    """One clear line, before anything tries to load a model that is not there."""
    issues = model_issues(config)
    if issues:
        print(ConfigError(source, issues), file=sys.stderr)
        raise SystemExit(2)


def cmd_serve(args: argparse.Namespace) -> int:
    from extproc.app import Switchyard

    config = _load(args.config)
    _require_model(config, args.config)
    for issue in config_warnings(config):
        log.warning("config %s: %s", args.config, issue)
    try:
        app = Switchyard(Path(args.config), config)
        asyncio.run(app.run())
    except OSError as exc:
        print(f"switchyard: {exc}", file=sys.stderr)
        return 1
    return 0


def _warn_insecure(config: Config) -> None:
    for name in insecure_backends(config):
        print(
            f"WARNING: backend {name}: insecure_skip_verify is set, its TLS certificate is NOT "
            "verified: anyone on the path can read what is sent to it, keys included",
            file=sys.stderr,
        )


def cmd_check(args: argparse.Namespace) -> int:
    if args.diff:
        return _check_diff(args.diff[0], args.diff[1], args.prompts)
    source = args.values or args.config
    config = load_values_config(args.values) if args.values else _load(args.config)
    _warn_insecure(config)
    problems = environment_issues(config, os.environ)
    if problems and args.env:
        print(ConfigError(source, problems), file=sys.stderr)
        return 2
    for issue in [*problems, *config_warnings(config)]:
        print(f"WARNING: {source}: {issue}", file=sys.stderr)
    if args.model:
        from extproc.request.metrics import RequestMetrics
        from extproc.request.runtime import build_runtime
        from extproc.rollout.canary import Rollouts

        runtime = build_runtime(config, Rollouts(), RequestMetrics())
        if runtime.threshold_note:
            print(f"classifier: encoder {config.classifier.encoder}")
            for line in runtime.threshold_note.splitlines():
                print(f"  {line}")
    routes = ", ".join(route.name for route in config.routes) or "none"
    unchecked = (
        f"; {len(problems)} environment warning(s) above, which `check --env` refuses"
        if problems
        else ""
    )
    print(f"{source}: OK ({len(config.labels)} labels, routes: {routes}){unchecked}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from extproc.config import KEY_LINE, read_keys_file

    key = "sy-" + secrets.token_urlsafe(32)
    line = f"{args.name} {hashlib.sha256(key.encode()).hexdigest()}"
    if KEY_LINE.match(line) is None:
        print(
            f"keys: {args.name!r}: expected a name of letters, digits, '.', '_' or '-'",
            file=sys.stderr,
        )
        return 2
    if args.file is not None:
        path = Path(args.file)
        try:
            known = read_keys_file(path) if path.exists() else {}
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        if args.name in known.values():
            print(f"keys: {path}: client {args.name!r} is already there", file=sys.stderr)
            return 2
        text = path.read_text() if path.exists() else ""
        separator = "" if not text or text.endswith("\n") else "\n"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text + separator + line + "\n")
        os.replace(tmp, path)  # whole: the watcher never reads half a file
        print(f"added {args.name} to {path}", file=sys.stderr)
    else:
        print(f"add this line to the keys file: {line}", file=sys.stderr)
    # The key itself: shown this once, stored nowhere.
    print(key)
    return 0


def _read_prompts(path: str) -> list[str]:
    """One prompt per line; a JSON object line gives its "text" (a JSONL eval set)."""
    prompts = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("{"):
            line = str(json.loads(line).get("text", ""))
        if line:
            prompts.append(line)
    return prompts


def _check_diff(old_path: str, new_path: str, prompts_path: str | None) -> int:
    """What NEW changes for each label of OLD, and whether a reload would be refused."""
    from classifier.changes import moves
    from classifier.labels import LabelClassifier
    from extproc.request.runtime import block_issues, load_label_classifier

    old_config, new_config = _load(old_path), _load(new_path)
    try:
        prompts = _read_prompts(prompts_path) if prompts_path else []
    except (OSError, ValueError, AttributeError) as exc:
        print(f"switchyard: --prompts {prompts_path}: {exc}", file=sys.stderr)
        return 2
    old, new = load_label_classifier(old_config), load_label_classifier(new_config)
    if not isinstance(old, LabelClassifier) or not isinstance(new, LabelClassifier):
        print("switchyard: --diff compares example-based classifiers only", file=sys.stderr)
        return 2
    print(f"{old_path} -> {new_path}" + (f", {len(prompts)} prompts" if prompts else ""))
    for change in moves(old, new, prompts):
        print(f"  {change.explain()}")
    issues = block_issues(old, new, new_config)
    if issues:
        print(ConfigError(new_path, issues), file=sys.stderr)
        return 1
    print(f"{new_path}: a reload from {old_path} would be accepted")
    return 0


def cmd_envoy(args: argparse.Namespace) -> int:
    from extproc.envoy_config import bootstrap as xds_bootstrap
    from extproc.envoy_config import render

    config = _load(args.config)
    _warn_insecure(config)
    try:
        bootstrap = render(config) if args.static else xds_bootstrap(config)
    except ConfigError as exc:
        print(ConfigError(args.config, exc.issues), file=sys.stderr)
        return 2
    text = yaml.safe_dump(bootstrap, sort_keys=False, width=120)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_fake_backend(args: argparse.Namespace) -> int:
    from extproc.tools.fake_backend import Behaviour, Strictness, serve_fake_backend, server_tls

    if (args.tls_cert is None) != (args.tls_key is None):
        print("fake-backend: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    behaviour = Behaviour(latency_ms=args.latency_ms, error_rate=args.error_rate)
    strictness = Strictness(
        served_model=args.served_model, key=args.require_key, key_header=args.key_header
    )
    tls = server_tls(args.tls_cert, args.tls_key) if args.tls_cert else None
    asyncio.run(
        serve_fake_backend(
            args.name, args.host, args.port, behaviour, args.seed, strictness=strictness, tls=tls
        )
    )
    return 0


def cmd_build_model(args: argparse.Namespace) -> int:
    from classifier.build import build_model
    from classifier.build_use import build_use_model
    from classifier.labels import USE_SUBDIR

    path = build_model(Path(args.out))
    build_use_model(path / USE_SUBDIR)
    print(f"model written to {path} (multilingual encoder in {path / USE_SUBDIR})")
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from extproc.request.runtime import load_label_classifier

    config = _load(args.config)
    _require_model(config, args.config)
    classifier = load_label_classifier(config)
    if args.explain:
        print(f"encoder {config.classifier.encoder}")
        for line in classifier.explain_threshold().splitlines():
            print(f"  {line}")
    for prediction in classifier.classify(args.text):
        runner_up = (
            f"  (runner-up {prediction.runner_up} {prediction.runner_up_score:.3f})"
            if prediction.runner_up
            else ""
        )
        why = ""
        if args.explain:
            side = "<" if prediction.label == config.classifier.fallback else ">="
            asked = ", with the second opinion" if prediction.second_opinion else ""
            best = prediction.runner_up if side == "<" else prediction.label
            limit = classifier.thresholds[classifier.labels.index(best)] if best else 0.0
            why = f"  [best score {side} {best}'s threshold {limit:.3f}{asked}]"
        print(f"{prediction.label} {prediction.score:.3f}{runner_up}{why}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from classifier.evaluate import evaluate, format_report, load_jsonl
    from extproc.request.runtime import load_label_classifier

    config = _load(args.config)
    _require_model(config, args.config)
    rows = load_jsonl(Path(args.data))
    report = evaluate(load_label_classifier(config), rows, fallback=config.classifier.fallback)
    print(json.dumps(report.to_json()) if args.json else format_report(report))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from classifier.evaluate import load_jsonl
    from classifier.tune import choose, format_table, guesses_for, sweep
    from extproc.config_edit import write_threshold
    from extproc.request.runtime import load_label_classifier

    config = _load(args.config)
    _require_model(config, args.config)
    fallback = config.classifier.fallback
    rows = load_jsonl(Path(args.data))
    if not any(label == fallback for _, label in rows):
        print(
            f"{args.data}: no out-of-scope rows (label {fallback!r}); the table needs some",
            file=sys.stderr,
        )
        return 2
    classifier = load_label_classifier(config)
    table = sweep(guesses_for(classifier, rows), fallback)
    chosen = choose(table, target_oos_recall=args.target_oos_recall, max_misroute=args.max_misroute)
    print(f"{args.data}: {len(rows)} rows; thresholds now:")
    for line in classifier.explain_threshold().splitlines():
        print(f"  {line}")
    print(format_table(table, chosen))
    if chosen is None:
        print("no threshold meets the target on this dev set", file=sys.stderr)
        return 1
    print(
        f"chosen threshold {chosen.threshold:.3f}: in-scope {chosen.in_scope_accuracy:.1%}, "
        f"out-of-scope recall {chosen.oos_recall:.1%}, misroute {chosen.misroute:.1%}"
    )
    if args.write:
        try:
            write_threshold(Path(args.config), chosen.threshold)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        print(f"{args.config}: classifier.threshold set to {chosen.threshold:.3f}")
    return 0


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
    config = _load(args.config) if args.config else None
    server = config.server if config else ServerConfig()
    url = args.url or _local_url(server.metrics_listen)
    return url, args.token_env or server.admin_token_env


class AdminError(Exception):
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

    config = _load(args.config) if args.config else None
    admin = args.admin or (f"http://{config.envoy.admin}" if config else "http://127.0.0.1:9901")
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


def cmd_demo(args: argparse.Namespace) -> int:
    if args.fleet:
        from extproc.tools.fleet_demo import run_fleet_demo

        return run_fleet_demo(Path(args.config), _load(args.config))
    from extproc.tools.demo import run_demo

    return run_demo(Path(args.config), _load(args.config))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchyard", description="Envoy ext_proc sidecar for LLM routing and canaries."
    )
    parser.add_argument("--version", action="version", version=f"switchyard {__version__}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="switchyard YAML config")
        return p

    p = with_config(sub.add_parser("serve", help="run the ext_proc server"))
    p.set_defaults(func=cmd_serve)
    p = with_config(
        sub.add_parser(
            "check",
            help="validate a config; non-zero exit when invalid (environment problems: "
            "warnings, or errors with --env)",
        )
    )
    p.add_argument("--model", action="store_true", help="also load the classifier model")
    p.add_argument(
        "--env",
        action="store_true",
        help="refuse environment problems too: unset key variables, unreadable CA files, a "
        "missing model (run it where Envoy and switchyard run)",
    )
    p.add_argument(
        "--values",
        metavar="FILE",
        help="validate the config: part of a Helm values file instead of -c",
    )
    p.add_argument(
        "--diff",
        nargs=2,
        metavar=("OLD", "NEW"),
        help="per label, what NEW changes from OLD (thresholds, decisions that move); "
        "non-zero exit when a reload from OLD to NEW would be refused",
    )
    p.add_argument("--prompts", help="with --diff: a file of prompts (one a line, or JSONL)")
    p.set_defaults(func=cmd_check)
    p = with_config(
        sub.add_parser(
            "envoy",
            help="render Envoy's bootstrap (its routes and clusters then come from switchyard)",
        )
    )
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.add_argument(
        "--static",
        action="store_true",
        help="everything inline, no xDS (for envoy --mode validate; changes then need a restart)",
    )
    p.set_defaults(func=cmd_envoy)
    p = sub.add_parser("keys", help="client keys for auth.keys_file")
    keys = p.add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("add", help="print a new client key once, and add its line")
    p.add_argument("name", help="the client's name (metrics, sessions, the A/B report)")
    p.add_argument("--file", help="append the line to this keys file (else print it)")
    p.set_defaults(func=cmd_keys)
    p = sub.add_parser("fake-backend", help="run an OpenAI-compatible model simulator")
    p.add_argument("--name", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--served-model", help="answer 404 to any other model name, like vLLM")
    p.add_argument("--require-key", help="answer 401 unless the request carries this key")
    p.add_argument("--key-header", default="authorization", help="where --require-key is read")
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", help="the certificate's private key (PEM)")
    p.set_defaults(func=cmd_fake_backend)
    p = sub.add_parser("build-model", help="build the ONNX encoder from the packaged weights")
    p.add_argument("--out", default="build/model")
    p.set_defaults(func=cmd_build_model)
    p = with_config(sub.add_parser("classify", help="print the label of each text"))
    p.add_argument("text", nargs="+")
    p.add_argument(
        "--explain", action="store_true", help="print the threshold, how it was chosen, and why"
    )
    p.set_defaults(func=cmd_classify)
    p = with_config(sub.add_parser("eval", help="accuracy of the config's labels on a JSONL set"))
    p.add_argument("data")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)
    p = with_config(
        sub.add_parser("tune", help="threshold trade-off table from a labelled dev set")
    )
    p.add_argument("data", help="JSONL of {text, label}; out-of-scope rows carry the fallback")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--target-oos-recall", type=float, metavar="SHARE")
    target.add_argument("--max-misroute", type=float, metavar="SHARE")
    p.add_argument("--write", action="store_true", help="set classifier.threshold in the config")
    p.set_defaults(func=cmd_tune)

    def with_admin(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "-c",
            "--config",
            help="read switchyard's address (server.metrics_listen) and the token's "
            "variable (server.admin_token_env) from this config",
        )
        p.add_argument("--url", help="switchyard's HTTP URL (default http://127.0.0.1:9464)")
        p.add_argument(
            "--token-env",
            help="environment variable holding the admin token (default "
            f"{ServerConfig.model_fields['admin_token_env'].default})",
        )
        return p

    p = with_admin(
        sub.add_parser(
            "rollout",
            help="show or act on the canaries of a running switchyard (of the whole fleet with "
            "state.store: redis)",
        )
    )
    p.add_argument("action", choices=["status", *ACTIONS])
    p.add_argument("route", nargs="?", help="required for actions; optional for status")
    p.add_argument("--json", action="store_true", help="print JSON (an action: its answer)")
    p.set_defaults(func=cmd_rollout)
    p = with_admin(
        sub.add_parser(
            "cache", help="purge cached answers (of the whole fleet with state.store: redis)"
        )
    )
    p.add_argument("action", choices=["purge"])
    p.add_argument("--route", help="only this route's entries")
    p.add_argument(
        "--partition",
        help="only this partition's entries: a value (e.g. a tenant id) or source=value "
        "(header:x-tenant-id=acme, user=bob)",
    )
    p.set_defaults(func=cmd_cache)
    p = sub.add_parser("report", help="A/B table and canary verdicts from a running Envoy")
    p.add_argument(
        "-c",
        "--config",
        help="read Envoy's admin (envoy.admin) and switchyard's address from this config",
    )
    p.add_argument("--admin", help="Envoy admin URL (default http://127.0.0.1:9901)")
    p.add_argument("--switchyard", help="switchyard HTTP URL (default http://127.0.0.1:9464)")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--html", type=Path, metavar="FILE", help="write one self-contained HTML page instead"
    )
    p.add_argument(
        "--prometheus",
        metavar="URL",
        help="a Prometheus scraping switchyard: the HTML page then charts each canary over time",
    )
    p.add_argument(
        "--since", type=float, default=3600, help="seconds of history to chart (default 3600)"
    )
    p.set_defaults(func=cmd_report)
    p = with_config(sub.add_parser("demo", help="run Envoy, switchyard and fake backends locally"))
    p.add_argument(
        "--fleet",
        action="store_true",
        help="two Envoy + switchyard replicas sharing their rollout state in a local Redis",
    )
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except Exception as exc:  # the one boundary: a line, never a traceback
        log.debug("switchyard %s failed", args.command, exc_info=True)
        print(f"switchyard {args.command}: {_one_line(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, ClassifierError | ValueError) else 1


def _one_line(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, ClassifierError | OSError | ValueError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {exc} (--log-level debug prints where)"


if __name__ == "__main__":
    raise SystemExit(main())
