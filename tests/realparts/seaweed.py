"""SeaweedFS for the test suite: the implementation ships in `cacher.testing.seaweed`."""

from cacher.testing.seaweed import *  # noqa: F403
from cacher.testing.seaweed import DISABLED_PORT_FLAGS, SeaweedS3, find_weed, s3_client, weed_port_flags

__all__ = ["DISABLED_PORT_FLAGS", "SeaweedS3", "find_weed", "s3_client", "weed_port_flags"]
