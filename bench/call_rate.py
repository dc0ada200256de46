"""REGISTERs and calls per second through the KEMI routing, beside a native kamailio.cfg.

Three Kamailio instances get the same users, the same SIPp load and the same worker count:
a native kamailio.cfg, the KEMI routing with media anchored by our Python ng client, and the
same KEMI routing with media anchored by Kamailio's C rtpengine module (``media_driver``
"module"), all on the same rtpengine and Redis. Digest REGISTER of every user, then
authenticated INVITE -> 200 -> ACK -> BYE calls between registered users. Printed per config:
completed/s, failures and Kamailio CPU per operation (all processes of its group), the ratio
KEMI / native, and the Python media path's own cost: KEMI (python) - KEMI (C module).

    python -m bench.call_rate [--tenants 100] [--registers 2000] [--calls 1000] [--rate 200]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import start_one
from bench.options_rate import _failed_calls, group_cpu_seconds
from control.core.digest import digest_hashes
from control.demo import sipp
from control.kamailio.rpc import KamailioRpc
from control.settings import Settings
from control.stack import supervisor
from control.stack.components import CLEAN_PATH, Kamailio
from control.stack.ports import free_port, free_stack_ports
from control.stack.process import ProcessRecord, spawn, stop
from tests.harness.provision import Provisioner

HERE = Path(__file__).parent
PASSWORD = "bench-password-1"
CALLER, CALLEE = "caller", "callee"  # one of each per tenant; the tenant's domain is the realm


@dataclass
class Target:
    label: str
    pgid: int
    address: str
    rpc_socket: Path


def sip_workers(target: Target) -> list[int]:
    """The processes that run the SIP routes (request, reply, branch, failure), where the
    media path's cost lands; the rest (timers, RPC) cost the same per second, not per call."""
    processes = KamailioRpc(target.rpc_socket).call("core.psx")
    return [int(p["PID"]) for p in processes if str(p["DSC"]).startswith("udp receiver")]


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        raw = Path(f"/proc/{pid}/stat").read_text()
        fields = raw[raw.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / os.sysconf("SC_CLK_TCK")


def domains(count: int) -> list[str]:
    return [f"t{i}.bench.example" for i in range(count)]


def injection(path: Path, rows: list[str]) -> Path:
    path.write_text("SEQUENTIAL\n" + "".join(f"{r};\n" for r in rows))
    return path


def run_load(
    target: Target, scenario: str, inf: Path, calls: int, rate: int, user: str,
    keys: dict[str, str | int],
) -> dict[str, float]:  # fmt: skip
    workers = sip_workers(target)
    cpu_before, workers_before = group_cpu_seconds(target.pgid), cpu_seconds(workers)
    started = time.perf_counter()
    result = sipp.run(
        HERE / "scenarios" / scenario, target.address, calls=calls, rate=rate, timeout=300,
        keys={"user": user, **keys}, auth=(user, PASSWORD),
        extra=["-inf", str(inf), "-buff_size", str(sipp.LOAD_BUFFER), "-rate_max", str(rate)],
    )  # fmt: skip
    wall = time.perf_counter() - started
    cpu = group_cpu_seconds(target.pgid) - cpu_before
    workers_cpu = cpu_seconds(workers) - workers_before
    done = calls - _failed_calls(result.output)
    return {"per_s": done / wall, "failed": calls - done, "cpu_us": cpu / max(done, 1) * 1e6,
            "workers_us": workers_cpu / max(done, 1) * 1e6}  # fmt: skip


def start_native(
    work: Path, children: int, realms: list[str], rtpengine: tuple[str, int]
) -> tuple[ProcessRecord, int]:
    port = free_port(tcp=False)
    credentials = "\n".join(
        f'    $sht(creds=>{user}@{realm}) = "{digest_hashes(user, realm, PASSWORD).ha1}";'
        for realm in realms
        for user in (CALLER, CALLEE)
    )
    cfg = (HERE / "native_calls.cfg.tmpl").read_text()
    values = {
        "children": str(children),
        "sip_port": str(port),
        "run_dir": str(work),
        "credentials": credentials,
        "ng_host": rtpengine[0],
        "ng_port": str(rtpengine[1]),
    }
    for key, value in values.items():
        cfg = cfg.replace(f"@{key}@", value)
    (work / "native_calls.cfg").write_text(cfg)
    record = spawn(
        "kamailio-native",
        ["kamailio", "-f", str(work / "native_calls.cfg"), "-DD", "-E", "-Y", str(work),
         "-m", "256"],
        {"PATH": CLEAN_PATH}, work / "native_calls.log", work,
    )  # fmt: skip
    time.sleep(1.5)
    return record, port


def start_module_kemi(settings: Settings, work: Path) -> tuple[ProcessRecord, int, Path]:
    """A second KEMI Kamailio on the same config DB, Redis and rtpengine, whose media goes
    through the C rtpengine module."""
    port = free_port()
    module = settings.model_copy(
        update={"state_dir": work / "module", "sip_port": port, "media_driver": "module",
                "db_url": settings.db_url}
    )  # fmt: skip
    module.save()
    return start_one(Kamailio(module), timeout=20), port, module.kamailio_rpc_socket


def provision_kemi(settings: Settings, realms: list[str]) -> None:
    prov = Provisioner(settings)
    for realm in realms:
        tenant = prov.tenant(realm, realm)
        for name in (CALLER, CALLEE):
            user = tenant.make("sip_users", {"username": name})
            tenant.make("sip_devices", {"user_id": user["id"], "auth_username": name,
                                        "realm": realm, "password": PASSWORD})  # fmt: skip
    time.sleep(settings.config_check_sec * 2 + 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--registers", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--children", type=int, default=2)
    args = parser.parse_args()
    realms = domains(args.tenants)
    with tempfile.TemporaryDirectory(prefix="sipio-bench-") as tmp:
        work = Path(tmp)
        settings = Settings(
            state_dir=work / "stack", **free_stack_ports(2000),  # 500 calls at once
            kamailio_children=args.children, api_workers=2, config_check_sec=0.5,
        )  # fmt: skip
        supervisor.up(settings)
        native, native_port = start_native(
            work, args.children, realms, (settings.ng_host, settings.ng_port)
        )
        module, module_port, module_rpc = start_module_kemi(settings, work)
        uas_port = free_port()
        uas = sipp.start(HERE / "scenarios" / "uas_bench.xml", None, local_port=uas_port,
                         calls=10**6, timeout=600,
                         extra=["-buff_size", str(sipp.LOAD_BUFFER)])  # fmt: skip
        try:
            provision_kemi(settings, realms)
            kemi = next(
                r for r in supervisor.load_records(settings.state_dir) if r.name == "kamailio"
            )
            targets = [
                Target(
                    "native kamailio.cfg",
                    native.pid,
                    f"127.0.0.1:{native_port}",
                    work / "native_calls_rpc.sock",
                ),
                Target(
                    "sipio KEMI (python)",
                    kemi.pid,
                    f"127.0.0.1:{settings.sip_port}",
                    settings.kamailio_rpc_socket,
                ),
                Target("sipio KEMI (C module)", module.pid, f"127.0.0.1:{module_port}", module_rpc),
            ]
            inf = injection(work / "realms.csv", realms)
            rows = []
            for target in targets:
                # Callees register towards the one answering SIPp; callers are measured.
                callees = run_load(target, "reg_bench.xml", inf, len(realms), 200, CALLEE,
                                   {"contact_port": uas_port})  # fmt: skip
                assert callees["failed"] == 0, f"{target.label}: callee registration failed"
                registers = run_load(target, "reg_bench.xml", inf, args.registers, args.rate * 2,
                                     CALLER, {"contact_port": free_port()})  # fmt: skip
                calls = run_load(target, "uac_bench.xml", inf, args.calls, args.rate, CALLER,
                                 {"dialled": CALLEE})  # fmt: skip
                rows.append((target.label, registers, calls))
        finally:
            uas.stop()
            stop(native)
            stop(module)
            supervisor.down(settings.state_dir)

    print(f"\n{args.tenants} tenants x 2 users, "
          f"{args.registers} REGISTERs offered at {args.rate * 2}/s, "
          f"{args.calls} calls offered at {args.rate}/s, {args.children} workers, "
          f"{os.cpu_count()} cores")  # fmt: skip
    print(f"{'config':<22} {'REGISTER/s':>10} {'fail':>5} {'CPU us/reg':>11}   "
          f"{'calls/s':>8} {'fail':>5} {'CPU us/call':>12} {'SIP workers':>12}")  # fmt: skip
    for label, reg, call in rows:
        print(f"{label:<22} {reg['per_s']:>10.0f} {reg['failed']:>5.0f} {reg['cpu_us']:>11.1f}   "
              f"{call['per_s']:>8.0f} {call['failed']:>5.0f} {call['cpu_us']:>12.1f} "
              f"{call['workers_us']:>12.1f}")  # fmt: skip
    (_, nreg, ncall), (_, kreg, kcall), (_, _, mcall) = rows
    reg_ratio = kreg["cpu_us"] / max(nreg["cpu_us"], 1e-9)
    print(f"KEMI / native Kamailio CPU: REGISTER x{reg_ratio:.2f}, "
          f"call x{kcall['cpu_us'] / max(ncall['cpu_us'], 1e-9):.2f}")  # fmt: skip
    print(f"Python media path, Kamailio CPU per call over the C rtpengine module: "
          f"{kcall['cpu_us'] - mcall['cpu_us']:+.1f} us (all processes), "
          f"{kcall['workers_us'] - mcall['workers_us']:+.1f} us (SIP workers); native kamailio.cfg "
          f"{ncall['cpu_us']:.1f} / {ncall['workers_us']:.1f} us per call; "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
