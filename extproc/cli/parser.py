"""`switchyard`'s arguments and the one place a command's error becomes its exit code."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from classifier.errors import ClassifierError
from extproc import __version__
from extproc.cli.admin_commands import cmd_cache, cmd_report, cmd_rollout
from extproc.cli.config_commands import cmd_check, cmd_envoy, cmd_keys
from extproc.cli.model_commands import cmd_build_model, cmd_classify, cmd_eval, cmd_tune
from extproc.cli.run_commands import cmd_demo, cmd_fake_backend, cmd_serve
from extproc.config import ClassifierConfig, EnvoyConfig, ServerConfig
from extproc.errors import ConfigError
from extproc.logs import configure_logging
from extproc.rollout.canary import ACTIONS

DEFAULT_CONFIG = "switchyard.yaml"
SWITCHYARD_URL = f"http://{ServerConfig().metrics_listen}"
log = logging.getLogger("switchyard")


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
    # How worker 0 starts worker i (server.workers); not for people.
    p.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--worker-fd", type=int, default=-1, help=argparse.SUPPRESS)
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
    p.add_argument("--out", default=str(ClassifierConfig().model))
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
        p.add_argument("--url", help=f"switchyard's HTTP URL (default {SWITCHYARD_URL})")
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
    p.add_argument("--admin", help=f"Envoy admin URL (default http://{EnvoyConfig().admin})")
    p.add_argument("--switchyard", help=f"switchyard HTTP URL (default {SWITCHYARD_URL})")
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
