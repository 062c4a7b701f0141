"""pyvmomi adapter: read a host's configuration, apply a plan, place hosts, compliance."""

from stateless.vcenter.apply import ApplyResult
from stateless.vcenter.client import VCenterClient
from stateless.vcenter.read import HostRef, HostView
from stateless.vcenter.session import Session

__all__ = ["ApplyResult", "HostRef", "HostView", "Session", "VCenterClient"]
