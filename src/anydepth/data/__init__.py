"""Data: the shard schema, dataset readers, the shard builder and the LightningDataModules."""

from anydepth.data.schema import LABEL_KINDS, Sample, SampleError, decode_sample, encode_sample, validate_sample

__all__ = ["LABEL_KINDS", "Sample", "SampleError", "decode_sample", "encode_sample", "validate_sample"]
