"""SIPp phones and trunks: devices that register and answer, callers, carriers. Used by
`sipio demo` and by the end-to-end tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from control.demo import sipp
from control.stack.ports import free_port


@dataclass
class Phone:
    """One device: it registers from a throw-away SIPp and answers on its own UAS port."""

    user: str
    password: str
    domain: str
    ip: str = "127.0.0.1"
    port: int = field(default_factory=lambda: free_port())

    def register(self, proxy: str, expires: int = 300) -> sipp.SippResult:
        return sipp.run(
            sipp.scenario("register.xml"),
            proxy,
            local_ip=self.ip,
            keys={
                "user": self.user,
                "domain": self.domain,
                "contact_port": self.port,
                "expires": expires,
            },
            auth=(self.user, self.password),
            timeout=10,
        )

    def answer(self, timeout: float = 20) -> sipp.SippProcess:
        return sipp.start(
            sipp.scenario("uas_answer.xml"), None, local_ip=self.ip, local_port=self.port,
            timeout=timeout,
        )  # fmt: skip

    def ring(self, timeout: float = 20) -> sipp.SippProcess:
        return sipp.start(
            sipp.scenario("uas_ring.xml"), None, local_ip=self.ip, local_port=self.port,
            timeout=timeout,
        )  # fmt: skip

    def call(self, proxy: str, dialled: str, scenario: str = "uac_call_auth.xml",
             timeout: float = 30) -> sipp.SippResult:  # fmt: skip
        return sipp.run(
            sipp.scenario(scenario), proxy, local_ip=self.ip,
            keys={"user": self.user, "domain": self.domain, "dialled": dialled},
            auth=(self.user, self.password), timeout=timeout,
        )  # fmt: skip


def trunk_call(proxy: str, source_ip: str, caller: str, dialled: str, domain: str,
               timeout: float = 30) -> sipp.SippResult:  # fmt: skip
    """A carrier delivering a call from ``source_ip`` (IP-authenticated, no digest)."""
    return sipp.run(
        sipp.scenario("uac_call.xml"), proxy, local_ip=source_ip,
        keys={"user": caller, "domain": domain, "dialled": dialled}, timeout=timeout,
    )  # fmt: skip


def first_request_line(messages: str, method: str = "INVITE") -> str | None:
    for line in messages.splitlines():
        if line.startswith(f"{method} "):
            return line
    return None


def header(messages: str, name: str) -> list[str]:
    """Values of a header in every message of a SIPp trace."""
    prefix = name.lower() + ":"
    return [
        line.split(":", 1)[1].strip()
        for line in messages.splitlines()
        if line.lower().startswith(prefix)
    ]
