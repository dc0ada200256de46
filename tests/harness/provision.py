"""Provisioning through the running stack's API (shared with ``sipio demo``)."""

from control.demo.provision import Provisioner, Tenant

__all__ = ["Provisioner", "Tenant"]
