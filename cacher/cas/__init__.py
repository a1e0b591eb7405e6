"""The content-addressed tree format (issue 30): a manifest per key names the packs holding a
tree's contents, so a tree that changed a little stores and sends a little.

Not wired into any command yet: these modules work on bytes and streams only. One job each:
`model` (the values), `names` (object names and pack references), `frames` (zstd frames),
`root` and `manifest` (the manifest object and its parts), `rules` (what a tree may hold), `units` (files into
content units), `scan` (a tree's entries), `pack` and `packread` (packs and their trailer
index), `save` (a tree into a manifest and packs), `plan` (what to send, what to fetch) and
`export` (a stored tree as a plain tar). docs/format.md specifies the format.
"""
