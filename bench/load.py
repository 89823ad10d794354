"""Load generation with wrk: the Lua scripts that shape the request bodies, and one bounded run.

Three kinds of body:

- static: one body for every request (wrk builds the request once);
- repeated: a few bodies in turn (switchyard's classifier cache answers after the first pass);
- unique: a new prompt per request, never seen before by the running switchyard, of a
  given number of encoder tokens. The first words spell out a number unique to the
  run, thread and request (its digits in base len(WORDS)); the rest are drawn from a
  seeded generator. Every word of WORDS is one WordPiece token of all-MiniLM-L6-v2, so a
  prompt of `tokens` tokens has `tokens - 2` words ([CLS] and [SEP] make up the rest).

Every script's `done` prints one JSON line with wrk's own totals and percentiles.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.configs import SYSTEM_PROMPT, chat_body
from extproc.tools.devstack import taskset

_WORD_TEXT = """
the a patient doctor asked about dose pain fever child medicine safe daily code python error
function list file data server request test build deploy bank loan money tax account pay price
market stock fund credit trip travel hotel flight city beach train ticket map road write story
poem song letter email short long simple clear what how why when where which who can should
would could will is are was please help me you we they it this that my your our their good best
new old big small first last next other same more most time day week year month hour morning
night today tomorrow make use find show tell give take get keep start stop check explain
compare with from into over under after before between during without school student teacher
class book paper history science math music art food cook meal dinner lunch recipe water coffee
tea bread rice game team play win score player ball season match sport house room door car bus
phone computer window light power energy plan idea question answer problem reason result
example way part
"""
WORDS = tuple(_WORD_TEXT.split())
RESULT_MARK = "BENCH_RESULT "

_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  local p = {}
  for _, q in ipairs({50, 90, 99, 99.9}) do p[tostring(q)] = latency:percentile(q) end
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"mean_us":%f,"max_us":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"p999_us":%d}\\n',
    "RESULT_MARK", summary.requests, summary.duration, summary.bytes, e.connect, e.read,
    e.write, e.status, e.timeout, latency.mean, latency.max, p["50"], p["90"], p["99"],
    p["99.9"]))
end
""".replace("RESULT_MARK", RESULT_MARK)

_HEADERS = 'local headers = {["Content-Type"] = "application/json"}\n'


def _lua_string(text: str | bytes) -> str:
    raw = text.decode() if isinstance(text, bytes) else text
    if "]==]" in raw:
        raise ValueError("body would end the Lua long string")
    return f"[==[{raw}]==]"


def static_script(body: bytes) -> str:
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = {_lua_string(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n' + _DONE
    )


def repeated_script(bodies: list[bytes]) -> str:
    items = ",\n".join(_lua_string(body) for body in bodies)
    return (
        _HEADERS
        + f"local bodies = {{\n{items}\n}}\n"
        + """
local requests = {}
local n = 0
function init(args)
  for i, body in ipairs(bodies) do requests[i] = wrk.format("POST", nil, headers, body) end
end
function request()
  n = n % #requests + 1
  return requests[n]
end
"""
        + _DONE
    )


def unique_script(tokens: int) -> str:
    words = ", ".join(f'"{word}"' for word in WORDS)
    # The body is chat_body()'s, with the prompt in the middle.
    prefix, suffix = chat_body("\x00").decode().split("\\u0000")
    assert SYSTEM_PROMPT in prefix
    return (
        _HEADERS
        + f"local words = {{{words}}}\n"
        + f"local n_words = {tokens - 2}\n"
        + f"local prefix = {_lua_string(prefix)}\n"
        + f"local suffix = {_lua_string(suffix)}\n"
        + """
local W = #words
local threads = 0
local counter = 0
function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end
function init(args)
  nonce = tonumber(args[1]) or 0
end
function request()
  counter = counter + 1
  -- Unique per run (nonce), wrk thread and request; exact in a double below 2^53.
  local x = (nonce * 64 + (thread_id or 0)) * 16777216 + counter
  local parts = {}
  local seed = x % 2147483646 + 1
  while x > 0 and #parts < n_words do
    local digit = x % W
    parts[#parts + 1] = words[digit + 1]
    x = (x - digit) / W
  end
  while #parts < n_words do
    seed = (seed * 48271) % 2147483647
    parts[#parts + 1] = words[seed % W + 1]
  end
  return wrk.format("POST", nil, headers, prefix .. table.concat(parts, " ") .. suffix)
end
"""
        + _DONE
    )


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float
    non_2xx: int
    """wrk's status errors: responses with a status of 400 or more."""
    socket_errors: int
    """connect, read and write errors and timeouts."""

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


def wrk_command(
    url: str, script: Path, connections: int, seconds: int, nonce: int, cpus: str | None
) -> list[str]:
    return [
        *taskset(cpus),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
        "--",
        str(nonce),
    ]


def parse_wrk(output: str) -> WrkResult:
    line = next((line for line in output.splitlines() if line.startswith(RESULT_MARK)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{output[-2000:]}")
    raw = json.loads(line.removeprefix(RESULT_MARK))
    seconds = raw["duration_us"] / 1e6
    return WrkResult(
        requests=raw["requests"],
        seconds=round(seconds, 3),
        rps=round(raw["requests"] / seconds, 1) if seconds else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        p999_ms=raw["p999_us"] / 1000,
        mean_ms=round(raw["mean_us"] / 1000, 3),
        max_ms=raw["max_us"] / 1000,
        non_2xx=raw["status"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
    )


def run_wrk(command: list[str], seconds: int) -> WrkResult:
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-2000:]}")
    return parse_wrk(done.stdout)
