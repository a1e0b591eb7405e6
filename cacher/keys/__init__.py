"""Built-in key functions, registered under ``cacher.keys`` like any plugin's."""
