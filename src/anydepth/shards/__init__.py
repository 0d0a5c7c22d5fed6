"""The on-disk contract every stage reads and writes through: WebDataset tar shards plus ``manifest.json``.

:mod:`.schema` (one sample's files), :mod:`.manifest` (shard names, counts, sizes, sha256), :mod:`.writer` (atomic
shards and their completion records), :mod:`.specs` (shard specs to paths and counts), :mod:`.reader` (the seeded
per-rank, per-worker pipeline), :mod:`.verify` (``anydepth shards verify``) and :mod:`.dealing` (rank and world size,
shards dealt to ranks).
"""
