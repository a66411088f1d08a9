# The page uses typographic signs on purpose: multiplication sign, en dash, micro sign.
# ruff: noqa: RUF001, RUF002
"""Formatting helpers and one section of docs/performance.md per scenario, each rendered
from that scenario's results file (see bench/report.py)."""

from __future__ import annotations

from typing import Any


def g(value: float | None, digits: int = 3) -> str:
    """A readable number: 3 significant digits, thousands kept whole."""
    if value is None:
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def s(spread: dict[str, Any] | None, digits: int = 3) -> str:
    """median (min–max) of several runs; the median alone for one run."""
    if not spread:
        return "–"
    if len(spread["runs"]) == 1:
        return g(spread["median"], digits)
    return f"{g(spread['median'], digits)} ({g(spread['min'], digits)}–{g(spread['max'], digits)})"


def met(flag: bool) -> str:
    return "**met**" if flag else "**not met**"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def lb_stream(r: dict[str, Any]) -> list[str]:
    rows = []
    for name in ("direct", "lb", "nginx"):
        proxy = r["proxy_cpu_s_per_gib"].get(name)
        rows.append(
            [
                name,
                s(r["seconds"][name]),
                s(r["throughput_mib_s"][name]),
                s(r["client_cpu_s"][name]),
                s(proxy) if proxy else "–",
            ]
        )
    rss, ngx = r["lb_rss_mib"], r["nginx_rss_mib"]
    return [
        f"### 1. LB streaming: 1 GiB multipart upload to a sink instance ({r['rounds']} rounds)",
        "",
        *table(
            ["Path", "Seconds", "MiB/s", "curl CPU s", "Proxy CPU s per GiB"],
            rows,
        ),
        f"Ratios within each round, medians: lb/direct {r['ratio_lb_direct']:.2f} ×, "
        f"lb/nginx {r['ratio_lb_nginx']:.2f} ×, nginx/direct {r['ratio_nginx_direct']:.2f} ×"
        + (
            f" (load average at the start {r['load_average_at_start'][0]:.2f}). "
            if "load_average_at_start" in r
            else ". "
        )
        + f"lb RSS {rss['before']:.1f} MiB before, peak {rss['peak']:.1f} MiB, growth "
        f"{rss['growth']:.1f} MiB; nginx (master + worker) {ngx['before']:.1f} MiB before, "
        f"peak {ngx['peak']:.1f} MiB.",
        "",
    ]


def lb_small(r: dict[str, Any]) -> list[str]:
    lines = [
        f"### 2. LB small requests: {r['body_bytes']:,}-byte multipart transcription, "
        f"{r['connections']} connections, {r['seconds_per_run']:g} s × {r['rounds']} rounds",
        "",
    ]
    for mode, title in (
        ("saturated", "Saturated (back to back)"),
        ("paced", f"Paced (each connection pauses 0–{2 * r['paced_delay_ms']} ms)"),
    ):
        m = r[mode]
        rows = [
            [
                name,
                s(m[name]["rps"]),
                s(m[name]["p50_ms"]),
                s(m[name]["p99_ms"]),
                s(m[name]["proxy_cpu_us_per_request"]),
                s(m[name]["instance_cpu_us_per_request"]),
                s(m[name]["wrk_cpu_us_per_request"]),
                str(m[name]["errors"]),
            ]
            for name in ("direct", "lb", "nginx")
        ]
        lines += [
            f"{title}:",
            "",
            *table(
                [
                    "Path",
                    "req/s",
                    "p50 ms",
                    "p99 ms",
                    "proxy CPU µs/req",
                    "instance CPU µs/req",
                    "wrk CPU µs/req",
                    "errors",
                ],
                rows,
            ),
            f"lb adds {m['lb_added_p50_ms']:+.2f} ms at p50, nginx "
            f"{m['nginx_added_p50_ms']:+.2f} ms; lb/nginx p50 {m['ratio_lb_nginx_p50']:.2f} ×, "
            f"lb/nginx req/s {m['ratio_lb_nginx_rps']:.2f} ×.",
            "",
        ]
    return lines


def lb_routing(r: dict[str, Any]) -> list[str]:
    names = {
        "lb": "lb (least load)",
        "round_robin": "round-robin",
        "seed": "seed (least polled active_jobs, 30 s poll)",
    }
    rows = [
        [
            label,
            s(r["routers"][key]["mean_s"]),
            s(r["routers"][key]["p50_s"]),
            s(r["routers"][key]["p95_s"]),
            " / ".join(str(n) for n in r["routers"][key]["raw"][0]["jobs_per_instance"]),
        ]
        for key, label in names.items()
    ]
    return [
        f"### 3. LB routing: {r['jobs']} jobs in bursts, 4 instances × "
        f"{r['slots_per_instance']} slots, outside jobs {r['outside_jobs']} "
        f"({r['rounds']} rounds)",
        "",
        f"Job times 1–5 s scaled by {r['scale']:g} (so {r['scale']:g}–{5 * r['scale']:g} s); "
        f"arrivals over {r['arrival_span_s']:.1f} s at about {100 * r['offered_load']:.0f} % "
        "of the free capacity. Time to completion in seconds:",
        "",
        *table(["Router", "mean", "p50", "p95", "jobs per instance (run 1)"], rows),
        f"lb p95 is {100 * r['lb_p95_improvement_over_best_baseline']:.0f} % lower than the "
        "better baseline.",
        "",
    ]


def _profile(profile: dict[str, Any] | None, what: str) -> list[str]:
    if not profile or not profile["samples"]:
        return []
    return [
        f"Where {what} goes (py-spy, {profile['samples']} samples of busy time during one "
        "more run; a sample counts for the first matching category):",
        "",
        *table(
            ["Category", "share"],
            [[c["name"], f"{100 * c['share']:.1f} %"] for c in profile["categories"]],
        ),
        "Top functions by own time:",
        "",
        *table(
            ["Function", "share"],
            [[f"`{c['name']}`", f"{100 * c['share']:.1f} %"] for c in profile["top_own"][:8]],
        ),
    ]


def gateway_ingest(r: dict[str, Any]) -> list[str]:
    names = {
        "bare": "bare aiohttp (reads the body, answers 202 JSON)",
        "gateway": f"gateway, RATE_LIMITS={r['gateway_settings']['RATE_LIMITS']}",
        "limited": "gateway, shipped limits (mostly 429)",
    }
    rows = [
        [
            label,
            s(r[key]["rps"]),
            s(r[key]["p50_ms"]),
            s(r[key]["p99_ms"]),
            s(r[key]["cpu_us_per_request"]),
            s(r[key]["redis_cpu_us_per_request"]),
        ]
        for key, label in names.items()
    ]
    ratios = r["ratios"]
    load = r["load_average_at_start"]
    lim = r["limited"]
    return [
        f"### 4. Gateway ingest: TTS JSON, one process, {r['connections']} connections, "
        f"{r['seconds_per_run']:g} s × {r['rounds']} rounds, side by side",
        "",
        f"Load average at the start: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}. "
        f"Gateway: `python -m services.gateway`, ENVIRONMENT=production, LOG_LEVEL=INFO "
        f"(JSON logs to a file), {r['gateway_settings']['redis']}. Rate limiting: "
        f"{r['why_rate_limit']}.",
        "",
        *table(
            ["Server", "requests/s", "p50 ms", "p99 ms", "CPU µs/req", "Redis CPU µs/req"],
            rows,
        ),
        f"gateway/bare requests/s {s(ratios['gateway_over_bare_rps'], 2)} ×, "
        f"CPU per request {s(ratios['gateway_over_bare_cpu_per_request'], 2)} ×; "
        f"a 429 costs {s(lim['cpu_us_per_429'])} µs, "
        f"{s(ratios['cpu_429_over_accepted'], 2)} × an accepted submission "
        f"({100 * lim['refused_share']['median']:.1f} % of the limited gateway's answers were "
        f"429). Gateway errors: {r['gateway_errors']}.",
        "",
        *_profile(r["profile"].get("gateway"), "an accepted submission's CPU"),
        *_profile(r["profile"].get("limited"), "a 429's CPU"),
    ]


def pipeline(r: dict[str, Any]) -> list[str]:
    lat = r["latency_ms"]
    cpu = r["cpu_ms_per_task"]
    lines = [
        f"### 5. Pipeline: {r['task_type']}, {r['miners_per_task']} instant miners per task, "
        f"{r['validator_processes']} validator process",
        "",
        f"Throughput ({r['batch']} tasks at once, {r['rounds']} rounds): "
        f"**{s(r['tasks_per_s'])} tasks/s** per validator process"
        + (
            f"; with a second replica on the same Redis {s(r['two_replicas_tasks_per_s'])} "
            f"tasks/s, {r['scaling_1_to_2_replicas']:.2f} × one (both replicas share the "
            "machine's cores with the gateway, the miners and Redis)."
            if "scaling_1_to_2_replicas" in r
            else "."
        ),
        "",
        *table(
            ["Process", "CPU ms per task"],
            [[name, s(values)] for name, values in cpu.items()],
        ),
        f"Latency ({r['paced_tasks']} tasks, {r['paced_rate_per_s']:g} per second), ms:",
        "",
        *table(
            ["Interval", "p50", "p99"],
            [[name.replace("_", " "), g(v["p50"]), g(v["p99"])] for name, v in lat.items()],
        ),
        f"Signing: one `bt.http_auth.sign` takes {g(r['signing']['sign_us'])} µs "
        f"(a miner's verify {g(r['signing']['verify_us'])} µs); "
        f"{r['miners_per_task']} per task is "
        f"{100 * r['signing_share_estimate']:.1f} % of the validator's CPU per task.",
        "",
    ]
    lines += _profile(r.get("profile"), "the validator's CPU")
    return lines
