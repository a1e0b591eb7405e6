"""Built-in codecs, registered under ``cacher.codecs`` like any plugin's."""
