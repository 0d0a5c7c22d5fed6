"""The Lightning side of the data: worker transforms (:mod:`.transforms`) and the DataModules (:mod:`.datamodules`).

The on-disk contract they read lives in :mod:`anydepth.shards`, the dataset readers in :mod:`anydepth.sources`.
"""
