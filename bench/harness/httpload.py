"""HTTP load with wrk: requests/s and the p50/p99 latency of one request, repeated at a fixed
number of concurrent clients."""

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# wrk's Lua hooks: an optional POST body, and a summary printed as one JSON line at the end
# (exact percentiles from wrk's own histogram, and every kind of error, non-2xx included).
LUA = """
local body = %s
if body ~= nil then
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
wrk.headers["Accept-Encoding"] = "identity"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,"errors":%%d,"non2xx":%%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def lua_string(s: str) -> str:
    # A Lua long string cannot contain its own closing bracket; the bodies here are JSON.
    assert "]==]" not in s
    return "[==[" + s + "]==]"


def wrk(url: str, clients: int, seconds: float, body=None) -> Load:
    threads = min(clients, 2)
    script = LUA % (lua_string(json.dumps(body)) if body is not None else "nil")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        path = f.name
    try:
        out = subprocess.run(
            ["wrk", "-t", str(threads), "-c", str(clients), "-d", f"{seconds}s", "--timeout", "30s",
             "-s", path, url],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        ).stdout
    finally:
        Path(path).unlink(missing_ok=True)
    line = next(l for l in out.splitlines() if l.startswith("WRKJSON "))
    s = json.loads(line[len("WRKJSON "):])
    rate = s["requests"] / (s["duration_us"] / 1e6) if s["duration_us"] else 0.0
    return Load(rate, s["p50_us"] / 1000, s["p99_us"] / 1000, s["requests"], s["errors"] + s["non2xx"])
