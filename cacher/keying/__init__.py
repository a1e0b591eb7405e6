"""Key machinery: what a key may be, templates, content hashes, platform names, scopes."""
