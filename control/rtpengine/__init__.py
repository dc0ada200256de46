"""rtpengine adapter: the ng-protocol client and node pool that anchor media for calls.

See docs/rtpengine.md. `NgClient` talks to one node, `NgPool` spreads calls over several
and keeps each call on its node, `AsyncNg` serves either to asyncio code.
"""

from control.rtpengine.aio import AsyncNg
from control.rtpengine.commands import SdpReply
from control.rtpengine.errors import (
    NgCallNotFound,
    NgCommandError,
    NgConnectionError,
    NgError,
    NgNoNodeAvailable,
    NgOverloaded,
    NgProtocolError,
    NgTimeout,
    NgUnavailable,
    NgUnsupportedCommand,
)
from control.rtpengine.ng import NgClient
from control.rtpengine.options import MediaOptions
from control.rtpengine.pool import NgPool, Node

__all__ = [
    "AsyncNg",
    "MediaOptions",
    "NgCallNotFound",
    "NgClient",
    "NgCommandError",
    "NgConnectionError",
    "NgError",
    "NgNoNodeAvailable",
    "NgOverloaded",
    "NgPool",
    "NgProtocolError",
    "NgTimeout",
    "NgUnavailable",
    "NgUnsupportedCommand",
    "Node",
    "SdpReply",
]
