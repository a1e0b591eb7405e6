"""Everything one storage command resolves once: settings, registry, store, reporter.

No cyclopts here: the full command line (`cacher.cli.options`) and the fast path
(`cacher.cli.fastpath`) build the same session. What it resolves (settings, the store behind
the gate and under the scope, soft failure, the stored key, the codec) is `cacher.job.Job`,
which the Python API (`cacher.api`) opens too; a session adds the reporter that its warnings
and notices reach.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cacher.cli.report import Reporter
from cacher.job import Job
from cacher.registry import Registry


class Session(Job):
    """A `Job` that reports: its warnings and notices go to the command's reporter."""

    def __init__(
        self,
        flags: Mapping[str, Any],
        registry: Registry,
        report: Reporter,
        *,
        config_flag: str | None = None,
    ) -> None:
        """``flags``: settings given on the command line (None: not given), over the config
        file and ``CACHER_*`` variables; ``config_flag``: ``--config``."""
        self.report = report
        super().__init__(flags, registry, config_flag=config_flag, warn=report.warn, say=report.say)
