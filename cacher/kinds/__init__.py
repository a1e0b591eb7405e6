"""Built-in artifact kinds, registered under ``cacher.kinds`` like any plugin's."""
