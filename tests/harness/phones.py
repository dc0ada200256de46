"""SIPp phones and trunks (shared with ``sipio demo``)."""

from control.demo.phones import Phone, first_request_line, header, trunk_call

__all__ = ["Phone", "first_request_line", "header", "trunk_call"]
