"""rtpengine adapter: the ng-protocol client that anchors media for proxied calls."""

from control.rtpengine.ng import (
    NgClient,
    NgCommandError,
    NgError,
    NgProtocolError,
    NgTimeout,
)

__all__ = ["NgClient", "NgCommandError", "NgError", "NgProtocolError", "NgTimeout"]
