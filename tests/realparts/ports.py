"""Loopback ports: the implementation ships in `cacher.testing.ports`."""

from cacher.testing.ports import LOOPBACK, free_port, free_ports, port_open, wait_port

__all__ = ["LOOPBACK", "free_port", "free_ports", "port_open", "wait_port"]
