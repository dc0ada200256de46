"""SIP OPTIONS keepalives per second: Kamailio + KEMI (sipio) against native kamailio.cfg.

Both Kamailio instances run the same checks (scanner drop, Max-Forwards, keepalive answer,
sanity) with the same number of workers. SIPp sends the same load to each in turn. Printed:
answered requests per second, failures, and Kamailio CPU time per request (all processes of
its group, from /proc), which is the figure that does not depend on SIPp's own speed.

    python -m bench.options_rate [--calls 20000] [--rate 4000] [--children 2]
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

from control.demo import sipp
from control.settings import Settings
from control.stack import supervisor
from control.stack.components import CLEAN_PATH
from control.stack.ports import free_port, free_stack_ports
from control.stack.process import ProcessRecord, group_members, spawn, stop

HERE = Path(__file__).parent
TICK = os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pgid: int) -> float:
    total = 0
    for pid in group_members(pgid):
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICK


def measure(label: str, pgid: int, target: str, calls: int, rate: int) -> dict[str, float | str]:
    sipp.run(sipp.scenario("options.xml"), target, calls=200, rate=500, timeout=30)  # warm up
    cpu_before = group_cpu_seconds(pgid)
    started = time.perf_counter()
    result = sipp.run(
        sipp.scenario("options.xml"),
        target,
        calls=calls,
        rate=rate,
        timeout=120,
        extra=["-buff_size", str(sipp.LOAD_BUFFER), "-rate_max", str(rate)],
    )
    wall = time.perf_counter() - started
    cpu = group_cpu_seconds(pgid) - cpu_before
    failed = _failed_calls(result.output)
    ok = calls - failed
    return {
        "label": label,
        "answered_per_s": ok / wall,
        "failed": failed,
        "cpu_us_per_req": cpu / max(ok, 1) * 1e6,
    }


def _failed_calls(output: str) -> int:
    match = re.search(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", output)
    return int(match.group(1)) if match else 0


def start_native(run_dir: Path, children: int) -> tuple[ProcessRecord, int]:
    port = free_port(tcp=False)
    cfg = (HERE / "native_options.cfg.tmpl").read_text()
    cfg = cfg.replace("@children@", str(children)).replace("@sip_port@", str(port))
    cfg = cfg.replace("@run_dir@", str(run_dir))
    cfg_path = run_dir / "native.cfg"
    cfg_path.write_text(cfg)
    record = spawn(
        "kamailio-native",
        ["kamailio", "-f", str(cfg_path), "-DD", "-E", "-Y", str(run_dir), "-m", "128"],
        {"PATH": CLEAN_PATH},
        run_dir / "native.log",
        run_dir,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if sipp.run(sipp.scenario("options.xml"), f"127.0.0.1:{port}", timeout=2).ok:
            return record, port
        time.sleep(0.2)
    stop(record)
    raise RuntimeError("native kamailio did not answer; see " + str(run_dir / "native.log"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rate", type=int, default=4000)
    parser.add_argument("--children", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sipio-bench-") as tmp:
        settings = Settings(
            state_dir=Path(tmp) / "stack",
            **free_stack_ports(50),
            kamailio_children=args.children,
            api_workers=1,
        )
        supervisor.up(settings)
        native, native_port = start_native(Path(tmp), args.children)
        try:
            kemi = next(
                r for r in supervisor.load_records(settings.state_dir) if r.name == "kamailio"
            )
            rows = [
                measure(
                    "native kamailio.cfg",
                    native.pid,
                    f"127.0.0.1:{native_port}",
                    args.calls,
                    args.rate,
                ),
                measure(
                    "sipio KEMI (python)",
                    kemi.pid,
                    f"127.0.0.1:{settings.sip_port}",
                    args.calls,
                    args.rate,
                ),
            ]
        finally:
            stop(native)
            supervisor.down(settings.state_dir)

    print(
        f"\nSIP OPTIONS keepalive, {args.calls} requests offered at {args.rate}/s, "
        f"{args.children} UDP workers, {os.cpu_count()} cores"
    )
    print(f"{'config':<22} {'answered/s':>11} {'failed':>7} {'kamailio CPU us/req':>20}")
    for row in rows:
        print(
            f"{row['label']:<22} {row['answered_per_s']:>11.0f} {row['failed']:>7} "
            f"{row['cpu_us_per_req']:>20.1f}"
        )
    base, kemi_row = rows
    extra = float(kemi_row["cpu_us_per_req"]) - float(base["cpu_us_per_req"])
    print(f"KEMI cost over native: {extra:+.1f} us of Kamailio CPU per request")


if __name__ == "__main__":
    main()
