"""The benchmark's report: the ratios the targets are about, the table, and the machine it ran on."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import psutil


def ratios(ms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the ratios the targets are about, per server."""

    def get(server: str, kind: str, mode: str) -> dict[str, Any] | None:
        return next((m for m in ms if (m["server"], m["kind"], m["mode"]) == (server, kind, mode)), None)

    out: list[dict[str, Any]] = []
    for server in dict.fromkeys(m["server"] for m in ms):

        def ratio(name: str, a: Any, b: Any, target: str, ok: Any, server: str = server) -> None:
            if a is None or b is None:
                return
            value = a["seconds"] / b["seconds"]
            out.append(
                {
                    "server": server,
                    "ratio": name,
                    "value": round(value, 2),
                    "target": target,
                    "met": None if ok is None else bool(ok(value)),
                }
            )

        for mode in ("serial", "parallel"):
            ratio(
                f"backup / bare query_iterator drain ({mode})",
                get(server, "backup", mode),
                get(server, "bare drain (query_iterator)", mode),
                "<= 1.10",
                lambda v: v <= 1.10,
            )
            ratio(
                f"backup / columnar page drain ({mode})",
                get(server, "backup", mode),
                get(server, "bare drain (columnar pages)", mode),
                "(the read floor)",
                None,
            )
            ratio(
                f"restore by insert / bare insert ({mode})",
                get(server, "restore by insert", mode),
                get(server, "bare insert", mode),
                "<= 1.10",
                lambda v: v <= 1.10,
            )
        ratio(
            "restore by insert / restore by bulk import",
            get(server, "restore by insert", "parallel"),
            get(server, "restore by bulk import", "parallel"),
            ">= 3",
            lambda v: v >= 3,
        )
        for kind in (
            "bare drain (query_iterator)",
            "bare drain (columnar pages)",
            "backup",
            "bare insert",
            "restore by insert",
        ):
            ratio(
                f"{kind}: parallel speed-up",
                get(server, kind, "serial"),
                get(server, kind, "parallel"),
                ">= 1.5 (backup, 2.3.5)" if kind == "backup" else "(report)",
                (lambda v: v >= 1.5) if kind == "backup" and server == "235" else None,
            )
    return out


def print_table(ms: list[dict[str, Any]], rs: list[dict[str, Any]], data_mb: float) -> None:
    """Print the measurements and the ratios.

    ``CPU s`` is the measured process's CPU, ``Milvus`` and ``S3`` those servers' CPU over the same time;
    ``ours`` is all three as a share of the machine's cores (100% = every core busy with this measurement),
    ``other`` the cores used meanwhile by anything else.
    """
    cores = psutil.cpu_count() or 1
    head = (
        f"{'server':6} {'measurement':30} {'mode':8} {'seconds':>8} {'rows/s':>8} {'MB/s':>6} "
        f"{'peak RSS':>9} {'CPU s':>6} {'Milvus':>7} {'S3':>5} {'ours':>5} {'other':>6} {'load':>5}"
    )
    print("\n" + head)
    print("-" * len(head))
    for m in ms:
        rows_s = m["rows"] / m["seconds"] if m["seconds"] else 0
        cpu = m["cpu_seconds"] + sum(m["server_cpu"].values())
        print(
            f"{m['server']:6} {m['kind']:30} {m['mode']:8} {m['seconds']:8.1f} {rows_s:8.0f} "
            f"{data_mb / m['seconds']:6.1f} {m['rss_peak'] / 1e6:7.0f}MB {m['cpu_seconds']:6.1f} "
            f"{m['server_cpu'].get('milvus', 0):7.1f} {m['server_cpu'].get('s3', 0):5.1f} "
            f"{100 * cpu / (cores * m['wall']):4.0f}% {m['other_cores']:6.2f} {m['load_before']:5.1f}"
        )
    print("\n" + f"{'server':6} {'ratio':55} {'value':>6}  target")
    for r in rs:
        met = "" if r["met"] is None else ("  met" if r["met"] else "  NOT met")
        print(f"{r['server']:6} {r['ratio']:55} {r['value']:6.2f}  {r['target']}{met}")


def machine() -> dict[str, Any]:
    import importlib.metadata as md

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("pymilvus", "milvus-lite", "milvus", "pyarrow", "numpy", "boto3"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {
        "cores": psutil.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "loadavg_start": os.getloadavg(),
    }
