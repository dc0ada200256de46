"""FreeSWITCH's SIP side for end-to-end tests, on the media node's address.

Kamailio hands flow calls to the media node of dispatcher set 1; here that node is this UA.
As UAS it takes the INVITE (100 at once, 200 with SDP when the flow's ``answer`` runs, ACK,
CANCEL before the answer, BYE either way, Record-Route honoured for its own in-dialog
requests), turns the INVITE's ``X-Sipio-*`` headers into the channel's ``sip_h_*`` variables
and places the ESL outbound session into the controller through :class:`FreeSwitchPeer`
(the call keeps the SIP Call-ID, as FreeSWITCH's ``sip_call_id`` does).

The peer runs the applications; this UA plugs into it through the caller script
(:attr:`Caller.react`) only: ``answer`` sends the 200; ``bridge`` sends an INVITE back to
Kamailio from the same socket with the dial string's ``sip_h_`` headers and holds the
application until the bridge ends, setting ``originate_disposition`` the way mod_sofia does
(``call_timeout`` → CANCEL and NO_ANSWER, 486 → USER_BUSY, ...). A BYE from the caller ends
whatever application runs as a caller hang-up; a hang-up by the flow (or the end of the
dialplan) sends BYE to the caller and to a bridged callee.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid as uuidlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

from tests.esl.fs_originate import Leg, Originator
from tests.esl.peer import Caller, CallRecord, FreeSwitchPeer, Reaction

T1 = 0.5  # retransmission interval (RFC 3261 T1), doubled up to T2 like a real UA
T2 = 4.0
TRANSACTION_SEC = 32 * T1 / 4  # give up on a request nobody answers (shortened for tests)
# mod_sofia's hangup causes for final responses (sofia_glue_sip_cause_to_freeswitch)
CAUSES = {
    403: "CALL_REJECTED", 404: "UNALLOCATED_NUMBER", 408: "RECOVERY_ON_TIMER_EXPIRE",
    480: "NO_USER_RESPONSE", 482: "EXCHANGE_ROUTING_ERROR", 486: "USER_BUSY",
    487: "ORIGINATOR_CANCEL", 503: "NORMAL_TEMPORARY_FAILURE", 600: "USER_BUSY",
    603: "CALL_REJECTED",
}  # fmt: skip


# --- messages -----------------------------------------------------------------------------------


@dataclass
class Message:
    first: str
    headers: list[tuple[str, str]]
    body: str = ""

    @property
    def is_request(self) -> bool:
        return not self.first.startswith("SIP/2.0")

    @property
    def method(self) -> str:
        return self.first.split(" ", 1)[0] if self.is_request else self.cseq[1]

    @property
    def uri(self) -> str:
        return self.first.split(" ")[1]

    @property
    def code(self) -> int:
        return int(self.first.split(" ")[1])

    def get(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        key = name.lower()
        return [v for n, v in self.headers if n.lower() == key]

    @property
    def call_id(self) -> str:
        return self.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        number, method = (self.get("CSeq") or "0 X").split()
        return int(number), method

    def encode(self) -> bytes:
        body = self.body.encode()
        lines = [self.first, *(f"{n}: {v}" for n, v in self.headers if n != "Content-Length")]
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


COMPACT = {"i": "Call-ID", "f": "From", "t": "To", "v": "Via", "m": "Contact", "l": "Content-Length",
           "c": "Content-Type"}  # fmt: skip


def parse(data: bytes) -> Message | None:
    text = data.decode(errors="replace")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    if not lines or not lines[0]:
        return None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # folded continuation
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
            continue
        name, _, value = line.partition(":")
        name = COMPACT.get(name.strip(), name.strip())
        # Via and Record-Route may carry several values in one header line
        if name.lower() in ("via", "record-route", "route"):
            headers += [(name, v.strip()) for v in split_commas(value)]
        else:
            headers.append((name, value.strip()))
    return Message(lines[0], headers, body)


def split_commas(value: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in value:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [p for p in (*parts, current) if p.strip()]


def tag_of(value: str | None) -> str | None:
    match = re.search(r";\s*tag=([^;>\s]+)", value or "")
    return match.group(1) if match else None


def uri_of(value: str) -> str:
    match = re.search(r"<([^>]+)>", value)
    return (match.group(1) if match else value.split(";")[0]).strip()


def hostport(uri: str) -> tuple[str, int]:
    rest = uri.split(":", 1)[1] if uri.startswith("sip:") else uri
    rest = rest.split("@", 1)[-1].split(";")[0].split("?")[0]
    host, _, port = rest.partition(":")
    return host, int(port or 5060)


def branch() -> str:
    return f"z9hG4bK{uuidlib.uuid4().hex[:16]}"


def _ring_sec(variables: dict[str, str]) -> float:
    """A leg rings for its own ``leg_timeout``, else the bridge's ``call_timeout`` (60 s)."""
    return float(variables.get("leg_timeout") or variables.get("call_timeout") or 60)


def _disposition(causes: list[str]) -> str:
    """What FreeSWITCH reports when no leg answered: a timeout beats a busy leg beats the rest."""
    for cause in ("NO_ANSWER", "USER_BUSY"):
        if cause in causes:
            return cause
    return causes[0] if causes else "DESTINATION_OUT_OF_ORDER"


def sdp(ip: str, port: int) -> str:
    return (
        f"v=0\r\no=FreeSWITCH 1 1 IN IP4 {ip}\r\ns=FreeSWITCH\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n"
    )


# --- dialogs ------------------------------------------------------------------------------------


@dataclass
class Dialog:
    """One call leg as this UA sees it."""

    call_id: str
    local_uri: str  # our From/To value without tag
    local_tag: str
    remote_uri: str = ""
    remote_tag: str | None = None
    target: str = ""  # remote Contact: R-URI of our in-dialog requests
    routes: list[str] = field(default_factory=list)
    cseq: int = 1
    confirmed: bool = False
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    ended_by: str | None = None  # "remote" | "local" | "cancel"


def _options(text: str) -> dict[str, str]:
    variables: dict[str, str] = {}
    for item in re.findall(r"(?:[^,']|'[^']*')+", text):
        name, _, value = item.partition("=")
        variables[name.strip()] = value.strip().strip("'")
    return variables


def dial_legs(arg: str) -> list[tuple[dict[str, str], str, str]]:
    """``{global vars}[leg vars]sofia/<profile>/<user>@<host:port>,[...]...`` → one
    (variables, user, host:port) per leg rung together; a leg's own variables win."""
    common: dict[str, str] = {}
    if arg.startswith("{"):
        common = _options(arg[1 : arg.index("}")])
        arg = arg[arg.index("}") + 1 :]
    legs = []
    for leg in split_commas(arg.replace("[", "<").replace("]", ">")):
        leg = leg.replace("<", "[").replace(">", "]").strip()
        own: dict[str, str] = {}
        if leg.startswith("["):
            own, leg = _options(leg[1 : leg.index("]")]), leg[leg.index("]") + 1 :]
        endpoint = leg.split("/", 2)[2] if leg.startswith("sofia/") else leg
        user, _, proxy = endpoint.rpartition("@")
        legs.append(({**common, **own}, user, proxy))
    return legs


@dataclass
class Bridge:
    """One leg a ``bridge`` application dials back through the proxy."""

    user: str  # as the dial string names it (the peer matches the answering leg by it)
    dialog: Dialog
    invite: Message
    proxy: tuple[str, int]
    responses: list[int] = field(default_factory=list)
    answered: bool = False
    cancelling: bool = False


@dataclass
class Call:
    """A call the proxy delivered: the A-leg, the peer's record and any bridges."""

    dialog: Dialog
    invite: Message
    script: Caller
    record: CallRecord | None = None
    last_response: bytes = b""
    bridges: list[Bridge] = field(default_factory=list)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class FsSip(asyncio.DatagramProtocol):
    """The media node's SIP UA. ``script(invite)`` gives each incoming call its caller script
    (DTMF, queue results ...): what FreeSWITCH's media side would have collected."""

    def __init__(
        self,
        peer: FreeSwitchPeer,
        controllers: list[tuple[str, int]],
        script: Callable[[Message], Caller] | None = None,
        *,
        ip: str = "127.0.0.1",
        rtp_port: int = 16384,
    ) -> None:
        self.peer, self.controllers, self.script = peer, controllers, script
        self.ip, self.rtp_port = ip, rtp_port
        self.port = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.calls: dict[str, Call] = {}
        self.legs: dict[str, Bridge] = {}  # B-leg Call-ID → bridge
        self.dialogs: dict[str, Call | Bridge] = {}  # our tag → leg: in-dialog requests
        self.pending: dict[tuple[str, int, str], asyncio.Queue[Message]] = {}
        self.log: list[tuple[str, str]] = []  # ("in"|"out", first line): for assertions
        self.tasks: set[asyncio.Task[Any]] = set()
        self.finished: list[Call] = []

    async def start(self, port: int) -> FsSip:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(self.ip, port))
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.port = transport.get_extra_info("sockname")[1]

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.transport is not None:
            self.transport.close()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @property
    def contact(self) -> str:
        return f"<sip:mod_sofia@{self.ip}:{self.port}>"

    # --- wire -----------------------------------------------------------------------------------
    def send(self, message: Message, address: tuple[str, int]) -> bytes:
        data = message.encode()
        assert self.transport is not None
        self.transport.sendto(data, address)
        self.log.append(("out", message.first))
        return data

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = parse(data)
        if message is None or not message.get("Call-ID"):
            return  # keepalives
        self.log.append(("in", message.first))
        if not message.is_request:
            number, method = message.cseq
            queue = self.pending.get((message.call_id, number, method))
            if queue is not None:
                queue.put_nowait(message)
            elif message.code >= 200 and method == "INVITE":
                self.spawn(self._late_final(message, addr))
            return
        # In-dialog requests carry our tag in To; a bridge that the proxy loops back here
        # (a callee's fallback to a media target) shares the Call-ID, not the tag.
        to_tag = tag_of(message.get("To"))
        leg = self.dialogs.get(to_tag) if to_tag else None
        known = self.calls.get(message.call_id)
        if message.method == "OPTIONS":
            self.send(self.response(message, 200, "OK"), addr)
        elif isinstance(leg, Bridge):
            self._b_request(leg, message, addr)
        elif isinstance(leg, Call):
            self._a_request(leg, message, addr)
        elif to_tag is None and message.method in ("INVITE", "CANCEL") and known is not None:
            self._a_request(known, message, addr)  # retransmitted INVITE, or CANCEL
        elif message.method == "INVITE" and to_tag is None:
            self._new_call(message, addr)
        elif message.method != "ACK":
            self.send(self.response(message, 481, "Call/Transaction Does Not Exist"), addr)

    def response(
        self, request: Message, code: int, reason: str, *, tag: str | None = None, body: str = ""
    ) -> Message:
        to = request.get("To") or ""
        if tag and tag_of(to) is None:
            to += f";tag={tag}"
        headers = [("Via", v) for v in request.all("Via")]
        headers += [("From", request.get("From") or ""), ("To", to),
                    ("Call-ID", request.call_id), ("CSeq", request.get("CSeq") or "")]  # fmt: skip
        if request.method == "INVITE" and 100 < code < 300:
            headers += [("Record-Route", r) for r in request.all("Record-Route")]
            headers.append(("Contact", self.contact))
        if body:
            headers.append(("Content-Type", "application/sdp"))
        return Message(f"SIP/2.0 {code} {reason}", headers, body)

    def request(self, dialog: Dialog, method: str, *, cseq: int | None = None) -> Message:
        """An in-dialog request along the route set (loose routing: sent to the first route)."""
        if cseq is None:
            dialog.cseq += 1
            cseq = dialog.cseq
        headers = [
            ("Via", f"SIP/2.0/UDP {self.ip}:{self.port};rport;branch={branch()}"),
            ("Max-Forwards", "70"),
            ("From", f"{dialog.local_uri};tag={dialog.local_tag}"),
            ("To", dialog.remote_uri + (f";tag={dialog.remote_tag}" if dialog.remote_tag else "")),
            ("Call-ID", dialog.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        headers += [("Route", r) for r in dialog.routes]
        return Message(f"{method} {dialog.target} SIP/2.0", headers)

    def next_hop(self, dialog: Dialog) -> tuple[str, int]:
        return hostport(uri_of(dialog.routes[0]) if dialog.routes else dialog.target)

    async def transact(
        self, message: Message, address: tuple[str, int], *, until_final: bool = True
    ) -> Message | None:
        """Send a request, retransmitting on UDP until a response (a final one for non-INVITE
        requests); the first response that ends the wait, None on timeout."""
        number, method = message.cseq
        key = (message.call_id, number, method)
        queue: asyncio.Queue[Message] = asyncio.Queue()
        self.pending[key] = queue
        data = self.send(message, address)
        interval, waited = T1, 0.0
        try:
            while waited < TRANSACTION_SEC:
                try:
                    reply = await asyncio.wait_for(queue.get(), interval)
                except TimeoutError:
                    waited += interval
                    assert self.transport is not None
                    self.transport.sendto(data, address)
                    interval = min(interval * 2, T2)
                    continue
                if reply.code >= 200 or not until_final:
                    return reply
                interval = T2  # provisional: stop hurrying (non-INVITE)
        finally:
            self.pending.pop(key, None)
        return None

    async def _late_final(self, reply: Message, addr: tuple[str, int]) -> None:
        """A retransmitted final response after its transaction: ACK it again (2xx)."""
        bridge = self.legs.get(reply.call_id)
        if bridge is not None and 200 <= reply.code < 300 and bridge.dialog.confirmed:
            ack = self.request(bridge.dialog, "ACK", cseq=bridge.invite.cseq[0])
            self.send(ack, self.next_hop(bridge.dialog))

    # --- A-leg: calls Kamailio delivers ---------------------------------------------------------
    def _new_call(self, invite: Message, addr: tuple[str, int]) -> None:
        dialog = Dialog(
            call_id=invite.call_id,
            local_uri=(invite.get("To") or "").split(";tag=")[0],
            local_tag=uuidlib.uuid4().hex[:10],
            remote_uri=(invite.get("From") or "").split(";tag=")[0],
            remote_tag=tag_of(invite.get("From")),
            target=uri_of(invite.get("Contact") or ""),
            routes=list(invite.all("Record-Route")),  # UAS: in order
            cseq=0,
        )
        script = self.script(invite) if self.script else Caller()
        call = Call(dialog, invite, script)
        self.calls[invite.call_id] = call
        self.dialogs[dialog.local_tag] = call
        call.last_response = self.send(self.response(invite, 100, "Trying"), addr)
        self.spawn(self._run(call, addr))

    def _a_request(self, call: Call, message: Message, addr: tuple[str, int]) -> None:
        method = message.method
        if method == "INVITE" and tag_of(message.get("To")) is None:
            assert self.transport is not None
            self.transport.sendto(call.last_response, addr)  # retransmission
        elif method == "ACK":
            call.acked.set()
            call.dialog.confirmed = True
        elif method == "CANCEL":
            self.send(self.response(message, 200, "OK"), addr)
            if not call.answered.is_set():
                data = self.send(self.response(call.invite, 487, "Request Terminated",
                                               tag=call.dialog.local_tag), addr)  # fmt: skip
                call.last_response = data
                self._caller_gone(call, "cancel")
        elif method == "BYE":
            self.send(self.response(message, 200, "OK"), addr)
            self._caller_gone(call, "remote")
        else:
            self.send(self.response(message, 200, "OK"), addr)

    def _caller_gone(self, call: Call, how: str) -> None:
        if call.dialog.ended.is_set():
            return
        call.dialog.ended_by = how
        call.dialog.ended.set()
        self.spawn(self.peer.caller_hangup(call.dialog.call_id))  # what runs ends: caller gone
        for bridge in call.bridges:
            self.spawn(self._end_bridge(bridge))

    async def _run(self, call: Call, addr: tuple[str, int]) -> None:
        headers = {n: v for n, v in call.invite.headers if n.lower().startswith("x-sipio-")}
        caller = Caller(react=lambda app, arg, n: self._react(call, addr, app, arg, n))
        try:
            call.record = await self.peer.call(
                self.controllers, headers, caller, call_id=call.invite.call_id, timeout=600
            )
        finally:
            if not call.dialog.ended.is_set():  # the flow (or the dialplan's end) hung up
                await self._hang_up_caller(call, addr)
            for bridge in call.bridges:
                await self._end_bridge(bridge)
            call.done.set()
            self.finished.append(call)

    async def _hang_up_caller(self, call: Call, addr: tuple[str, int]) -> None:
        call.dialog.ended_by = "local"
        call.dialog.ended.set()
        if not call.answered.is_set():
            call.last_response = self.send(
                self.response(call.invite, 480, "Temporarily Unavailable",
                              tag=call.dialog.local_tag), addr,
            )  # fmt: skip
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.acked.wait(), 4)
        await self.transact(self.request(call.dialog, "BYE"), self.next_hop(call.dialog))

    def _answer(self, call: Call, addr: tuple[str, int]) -> None:
        if call.answered.is_set():
            return
        call.answered.set()
        ok = self.response(call.invite, 200, "OK", tag=call.dialog.local_tag,
                           body=sdp(self.ip, self.rtp_port))  # fmt: skip
        call.last_response = self.send(ok, addr)
        self.spawn(self._retransmit_200(call, addr))

    async def _retransmit_200(self, call: Call, addr: tuple[str, int]) -> None:
        interval = T1
        for _ in range(7):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.acked.wait(), interval)
            if call.acked.is_set() or call.dialog.ended.is_set():
                return
            assert self.transport is not None
            self.transport.sendto(call.last_response, addr)
            interval = min(interval * 2, T2)

    # --- the applications this UA takes part in -------------------------------------------------
    def _react(self, call: Call, addr: tuple[str, int], app: str, arg: str, n: int) -> Reaction:
        if call.dialog.ended.is_set():
            return Reaction(hangup=True)  # the caller left between two applications
        if app == "answer":
            self._answer(call, addr)
        elif app == "bridge":
            ring: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
            reaction = Reaction(ring=ring, hold=asyncio.Event(), variables={})
            self._answer(call, addr)  # mod_sofia answers the A-leg before bridging media
            self.spawn(self._bridge(call, reaction, ring, arg))
            return reaction
        return call.script.reaction(app, arg)

    # --- B-legs: the bridge back through Kamailio -----------------------------------------------
    async def _bridge(
        self, call: Call, reaction: Reaction, ring: asyncio.Future[str | None], arg: str
    ) -> None:
        """Ring every leg at once; the first answer wins and the others are cancelled."""
        legs = [self._leg(call, variables, user, proxy) for variables, user, proxy in
                dial_legs(arg)]  # fmt: skip
        winner, causes = await self.ring([(leg, _ring_sec(v)) for leg, v in legs])
        if winner is None:
            disposition = _disposition(causes)
            reaction.variables["originate_disposition"] = disposition
            reaction.variables["DIALSTATUS"] = "NOANSWER" if disposition == "NO_ANSWER" else (
                "BUSY" if disposition == "USER_BUSY" else "CHANUNAVAIL")  # fmt: skip
            if not ring.done():
                ring.set_result(None)
            return
        if not ring.done():
            ring.set_result(winner.user)
        await winner.dialog.ended.wait()  # talking: until either side hangs up
        assert reaction.hold is not None
        reaction.hold.set()

    async def ring(self, legs: list[tuple[Bridge, float]]) -> tuple[Bridge | None, list[str]]:
        """Every leg at once (each with its ring time); the first answer wins, the others
        are cancelled. Returns the winner and the causes of the legs that failed."""
        attempts = {asyncio.ensure_future(self._originate(leg, ring)): leg for leg, ring in legs}
        winner: Bridge | None = None
        causes: list[str] = []
        pending = set(attempts)
        while pending and winner is None:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for attempt in done:
                cause = attempt.result()
                if cause == "SUCCESS" and winner is None:
                    winner = attempts[attempt]
                else:
                    causes.append(cause)
        for attempt in pending:  # the losers: CANCEL (or BYE if their 200 crosses it)
            self.spawn(self._end_bridge(attempts[attempt]))
        return winner, causes

    def _leg(
        self, call: Call | None, variables: dict[str, str], user: str, proxy: str
    ) -> tuple[Bridge, dict[str, str]]:
        """A B-leg INVITE to the proxy; ``call`` None: an originated leg (no A-leg)."""
        host, _, port = proxy.partition(":")
        invited = call.invite.get("From") if call is not None else None
        caller = uri_of(invited or "").removeprefix("sip:").split("@")[0]
        number = variables.get("origination_caller_id_number") or caller or "0000000000"
        name = variables.get("origination_caller_id_name") or number
        call_id = f"{uuidlib.uuid4()}"
        dialog = Dialog(call_id, f'"{name}" <sip:{number}@{self.ip}>', uuidlib.uuid4().hex[:10],
                        remote_uri=f"<sip:{user}@{proxy}>", target=f"sip:{user}@{proxy}")  # fmt: skip
        headers = [
            ("Via", f"SIP/2.0/UDP {self.ip}:{self.port};rport;branch={branch()}"),
            ("Max-Forwards", "70"),
            ("From", f"{dialog.local_uri};tag={dialog.local_tag}"),
            ("To", dialog.remote_uri),
            ("Call-ID", call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", self.contact),
            ("User-Agent", "FreeSWITCH-mod_sofia/1.10 (sipio test)"),
        ]
        headers += [(k.removeprefix("sip_h_"), v) for k, v in variables.items()
                    if k.startswith("sip_h_")]  # fmt: skip
        invite = Message(f"INVITE {dialog.target} SIP/2.0", headers, sdp(self.ip, self.rtp_port))
        leg = Bridge(user, dialog, invite, (host, int(port or 5060)))
        if call is not None:
            call.bridges.append(leg)
        self.legs[call_id] = leg
        self.dialogs[dialog.local_tag] = leg
        return leg, variables

    async def _originate(self, bridge: Bridge, timeout: float) -> str:
        dialog, invite = bridge.dialog, bridge.invite
        queue: asyncio.Queue[Message] = asyncio.Queue()
        key = (dialog.call_id, 1, "INVITE")
        self.pending[key] = queue
        data = self.send(invite, bridge.proxy)
        deadline = asyncio.get_running_loop().time() + timeout
        interval, provisional, cancelled = T1, False, False
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0 and not cancelled:
                    cancelled = True
                    self.spawn(self._cancel(bridge))  # call_timeout
                    deadline = asyncio.get_running_loop().time() + TRANSACTION_SEC
                    continue
                if left <= 0:
                    return "NO_ANSWER"  # not even the 487 came back
                wait = left if provisional else min(interval, left)
                try:
                    reply = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    if not provisional and not cancelled:
                        assert self.transport is not None
                        self.transport.sendto(data, bridge.proxy)
                        interval = min(interval * 2, T2)
                    continue
                bridge.responses.append(reply.code)
                if reply.code < 200:
                    provisional = True
                    continue
                dialog.remote_tag = tag_of(reply.get("To"))
                if reply.code < 300:
                    dialog.target = uri_of(reply.get("Contact") or dialog.target)
                    dialog.routes = list(reversed(reply.all("Record-Route")))  # UAC: reversed
                    dialog.confirmed = True
                    self.send(self.request(dialog, "ACK", cseq=1), self.next_hop(dialog))
                    if cancelled or bridge.cancelling or self._a_gone(bridge):
                        # answered as we gave up (timeout, another leg won, caller gone)
                        self.spawn(self._end_bridge(bridge))
                        return "NO_ANSWER" if cancelled else "ORIGINATOR_CANCEL"
                    bridge.answered = True
                    return "SUCCESS"
                self._ack_failure(bridge, reply)
                dialog.ended_by = "remote"
                dialog.ended.set()
                if cancelled and reply.code == 487:
                    return "NO_ANSWER"  # our call_timeout, as mod_sofia reports it
                return CAUSES.get(reply.code, "NORMAL_TEMPORARY_FAILURE")
        finally:
            self.pending.pop(key, None)

    def _a_gone(self, bridge: Bridge) -> bool:
        return any(
            b is bridge and c.dialog.ended.is_set() for c in self.calls.values() for b in c.bridges
        )

    def _ack_failure(self, bridge: Bridge, reply: Message) -> None:
        """ACK of a non-2xx final: same branch as the INVITE, hop by hop."""
        invite = bridge.invite
        headers = [
            ("Via", invite.get("Via") or ""),
            ("Max-Forwards", "70"),
            ("From", invite.get("From") or ""),
            ("To", reply.get("To") or ""),
            ("Call-ID", invite.call_id),
            ("CSeq", "1 ACK"),
        ]
        self.send(Message(f"ACK {invite.uri} SIP/2.0", headers), bridge.proxy)

    async def _cancel(self, bridge: Bridge) -> None:
        if bridge.cancelling:
            return
        bridge.cancelling = True
        invite = bridge.invite
        headers = [
            ("Via", invite.get("Via") or ""),
            ("Max-Forwards", "70"),
            ("From", invite.get("From") or ""),
            ("To", invite.get("To") or ""),
            ("Call-ID", invite.call_id),
            ("CSeq", "1 CANCEL"),
        ]
        await self.transact(Message(f"CANCEL {invite.uri} SIP/2.0", headers), bridge.proxy)

    def _b_request(self, bridge: Bridge, message: Message, addr: tuple[str, int]) -> None:
        if message.method == "BYE":
            self.send(self.response(message, 200, "OK"), addr)
            if not bridge.dialog.ended.is_set():
                bridge.dialog.ended_by = "remote"
                bridge.dialog.ended.set()
        elif message.method != "ACK":
            self.send(self.response(message, 200, "OK"), addr)

    async def _end_bridge(self, bridge: Bridge) -> None:
        """Hang up the B-leg (BYE once it is up; an unanswered one is CANCELled by its own
        originate when the caller leaves)."""
        dialog = bridge.dialog
        if dialog.ended.is_set():
            return
        if not dialog.confirmed:
            self.spawn(self._cancel(bridge))
            return
        dialog.ended_by = "local"
        dialog.ended.set()
        await self.transact(self.request(dialog, "BYE"), self.next_hop(dialog))

    # --- for tests ------------------------------------------------------------------------------
    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Until every call delivered so far has finished."""
        async with asyncio.timeout(timeout):
            for call in list(self.calls.values()):
                await call.done.wait()


class SipOriginator(Originator):
    """The inbound stand-in's ``bgapi originate`` placing real SIP legs from the media node
    (this UA) through Kamailio, as mod_sofia would: the agents' legs at once (``leg_timeout``),
    the first answer wins and the others are cancelled; then the caller's leg
    (``call_timeout``); the talk ends with the first BYE and the other side gets one."""

    def __init__(self, sip: FsSip) -> None:
        super().__init__()
        self.sip = sip
        self.up: dict[str, list[Bridge]] = {}  # agent leg uuid -> its SIP legs (agent, caller)

    async def ring_agents(self, legs: list[Leg]) -> tuple[str | None, str]:
        placed = {
            leg.uuid: self.sip._leg(None, leg.options, leg.user, leg.proxy)[0] for leg in legs
        }
        rings = [(placed[leg.uuid], float(leg.options.get("leg_timeout", 30))) for leg in legs]
        answered, causes = await self.sip.ring(rings)
        winner = next((uuid for uuid, b in placed.items() if b is answered), None)
        if winner is not None:
            self.up[winner] = [placed[winner]]
        return winner, _disposition(causes) if causes else "NO_ANSWER"

    async def ring_caller(self, agent: Leg, caller: Leg) -> bool:
        leg, _ = self.sip._leg(None, caller.options, caller.user, caller.proxy)
        self.up[agent.uuid].append(leg)
        timeout = float(caller.options.get("call_timeout", 30))
        return await self.sip._originate(leg, timeout) == "SUCCESS"

    async def talk(self, agent: Leg, caller: Leg, kill: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(b.dialog.ended.wait()) for b in self.up[agent.uuid]]
        waits.append(asyncio.ensure_future(kill.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def release(self, agent: Leg) -> None:
        for leg in self.up.pop(agent.uuid, []):
            await self.sip._end_bridge(leg)
