"""Process helpers: the implementation ships in `cacher.testing._proc`."""

from cacher.testing._proc import cleanup_at_exit, log_tail, stop_process

__all__ = ["cleanup_at_exit", "log_tail", "stop_process"]
