"""External load tools the bench drives: nginx as the comparison proxy, wrk as the generator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import WORK, Server, run_timed
from devnet.redis_server import free_port

NGINX_CONF = """\
worker_processes 1;
{user}
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 0;
    upstream whisperx {{
        least_conn;
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location /v1/audio/transcriptions {{
            proxy_pass http://whisperx;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )


def nginx_version() -> str | None:
    binary = nginx_binary()
    if binary is None:
        return None
    out = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr.strip()
    return out.removeprefix("nginx version: ")


class Nginx(Server):
    """nginx as the same least-connection streaming proxy as the lb: one worker, no request
    or response buffering, keep-alive upstream connections; everything in a temp dir."""

    def __init__(self, instances: Sequence[Server]) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (make bench installs it)")
        self.tmp = tempfile.mkdtemp(prefix="bench-nginx-")
        port = free_port()
        # As root, nginx's workers would drop to nobody, who cannot enter the temp dir.
        user = "user root root;" if os.geteuid() == 0 else ""
        servers = "\n".join(f"        server 127.0.0.1:{s.port};" for s in instances)
        conf = Path(self.tmp) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user=user, tmp=self.tmp, servers=servers, port=port))
        super().__init__("nginx", [binary, "-p", self.tmp, "-c", str(conf)], port)

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------------------- wrk

WRK_SCRIPT = r"""
-- POST the body in BENCH_BODY with BENCH_TYPE. BENCH_DELAY_MS > 0 paces each connection
-- with a pause drawn uniformly from 0 to twice that, so that the connections drift out of
-- step instead of arriving in synchronised bursts.
wrk.method = "POST"
wrk.path = os.getenv("BENCH_PATH")
wrk.headers["Content-Type"] = os.getenv("BENCH_TYPE")
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if pause > 0 then
  function delay() return math.random(0, 2 * pause) end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
"""


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def wrk_post(
    url: str,
    body: Path,
    content_type: str,
    *,
    connections: int,
    seconds: float,
    delay_ms: float = 0.0,
) -> dict[str, Any]:
    """Drive ``url`` with wrk (one thread, ``connections`` keep-alive connections).

    Returns wrk's figures plus its own CPU seconds (the generator's share of the machine).
    """
    binary = wrk_binary()
    if binary is None:
        raise RuntimeError("wrk is not installed (make bench installs it)")
    script = WORK / "post.lua"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(WRK_SCRIPT)
    base, _, path = url.partition("://")[2].partition("/")
    env = {
        "BENCH_PATH": "/" + path,
        "BENCH_TYPE": content_type,
        "BENCH_BODY": str(body),
        "BENCH_DELAY_MS": f"{delay_ms:g}",
    }
    argv = [
        binary, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s",
        "-s", str(script), f"http://{base}",
    ]  # fmt: skip
    timed = run_timed(argv, timeout=seconds + 60, env=env)
    line = timed.stdout.decode().strip().splitlines()[-1] if timed.stdout.strip() else "{}"
    figures = json.loads(line)
    if not figures:
        raise RuntimeError(f"wrk printed nothing for {url}")
    seconds_run = figures["duration_us"] / 1e6
    figures["rps"] = figures["requests"] / seconds_run
    figures["errors"] = sum(
        figures[k]
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    figures["p50_ms"] = figures["p50_us"] / 1000
    figures["p99_ms"] = figures["p99_us"] / 1000
    figures["wrk_cpu_s"] = timed.cpu
    return figures


# --------------------------------------------------------------------------- results
