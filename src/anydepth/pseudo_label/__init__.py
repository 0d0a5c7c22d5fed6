"""Pseudo labels, the "data engine" step of Depth Anything (Sec. 3.2): a teacher's relative disparity for every image
of unlabeled shards, written as new shards for student training (``MixedDataModule(pseudo_shards=...)``).

``pseudo_label(checkpoint, inputs, out)`` (``anydepth pseudo-label``, :mod:`~anydepth.pseudo_label.run`) runs
``lightning.Trainer.predict`` (:func:`~anydepth.prediction.offline_trainer`) with
:class:`PseudoLabelDataModule` (the input shards still to do, read once), :class:`PseudoLabeler` (the teacher) and
:class:`PseudoLabelWriter` (the output shards). The teacher sees clean images, preprocessed as for evaluation
(:class:`~anydepth.data.transforms.EvalTransform`: aspect kept, shorter side >= ``input_size``, sides multiples of
14), ImageNet-normalised on the device; with ``flip_tta`` the prediction is averaged with the un-flipped prediction
of the flipped image. The prediction is upsampled (:func:`~anydepth.models.preprocess.upsample_prediction`) to the
image as stored in the shard. Images of different sizes cannot share a batch: keep ``batch_size=1`` (the default)
unless every input image has one size.

Output directory ``out``:

- ``.anydepth.lock``: :class:`~anydepth.locks.OutputLock`, held by global rank 0 for the whole run, so a second run
  into the same directory stops at once naming the first (:func:`~anydepth.pseudo_label.run.pseudo_label`).
- ``pseudo.json``, written first: the settings (teacher checkpoint path and sha256, ``flip_tta``, ``input_size``,
  the input shards as resolved paths, and their sample counts).
- ``shard-NNNNNN.tar``: the pseudo labels of input shard NNNNNN, i.e. position NNNNNN in
  ``resolve_shards(inputs)``. Every sample keeps its key and the ORIGINAL bytes of its image (same field,
  ``image.jpg`` or ``image.png``: no re-encoding) and of its ``sky.png`` if any, and gets ``label.npy`` (float16, the
  teacher's disparity min-max normalised to [0, 1] per map: float16 keeps ~3 significant digits and overflows above
  65504, so a [0, 1] map keeps its relative precision; the training transforms normalise per map anyway),
  ``mask.png`` (valid = finite: a teacher disparity of exactly 0 is the farthest point, not a missing value, which
  the schema's default mask ``label > 0`` would drop) and ``meta.json`` (the input's, with ``label_kind``
  ``relative_disparity``).
- ``shard-NNNNNN.json``: the shard's completion record (``samples``, ``bytes``, ``sha256``, ``skipped``), written
  after the shard (:class:`~anydepth.shards.writer.ShardWriter`: ``.tmp`` file, fsync, rename).
- ``manifest.json``, written last: every non-empty shard, ``label_kind`` ``relative_disparity``, source
  ``pseudo-label``, the skipped samples, and ``extra`` = the settings of ``pseudo.json``.

A shard is finished as soon as it holds as many samples as its input shard's manifest count. Samples that cannot be
decoded are skipped (and logged) by the data pipeline, so shards still open when the predict loop ends are finished
with what they got and their record lists the shortfall; an input shard of which nothing was readable gets a
0-sample record. Such shards count as done.

Resume. A run into a directory that holds ``pseudo.json`` continues it (``resume=True``, the default): a shard whose
``.tar`` and ``.json`` record exist with matching size is kept, everything else is redone; ``.tmp`` leftovers are
removed. Resuming with another teacher (by sha256, not path), ``flip_tta``, ``input_size`` or input list (compared
as resolved paths: relative, absolute or via a symlink, the same shards are the same inputs) is refused
with a :class:`PseudoLabelError`, as is a directory holding shards not written by this tool.

DDP (``devices``/``num_nodes``/``strategy``, e.g. SLURM). Global rank 0 checks the directory, writes ``pseudo.json`` and
lists the pending input shards in ``PseudoLabelDataModule.setup``; the list is broadcast
(``trainer.strategy.broadcast``) so every rank agrees. Rank ``r`` of ``R`` reads pending shards ``r, r + R, ...``
(:func:`~anydepth.shards.dealing.deal`) and its DataLoader workers split those
(:class:`~anydepth.shards.reader.ShardDataset`, non-resampled, no shuffle), so every input sample is read once and each
output shard is written by exactly one rank, without coordination. At the end every rank sends rank 0 the completion
records it wrote (a synchronisation point, like a barrier; rank 0 need not see other ranks' files promptly, as on NFS)
and rank 0 writes ``manifest.json``. ``out`` must be on a file system every rank sees.
"""

from __future__ import annotations

from anydepth.pseudo_label.labeler import PseudoLabelDataModule, PseudoLabeler
from anydepth.pseudo_label.run import pseudo_label
from anydepth.pseudo_label.state import (
    LABEL_DTYPE,
    LABEL_KIND,
    SOURCE,
    STATE_NAME,
    PseudoLabelError,
    check_output,
    prepare_output,
    write_manifest,
)
from anydepth.pseudo_label.writer import PseudoLabelWriter, pseudo_label_record

__all__ = [
    "LABEL_DTYPE",
    "LABEL_KIND",
    "SOURCE",
    "STATE_NAME",
    "PseudoLabelDataModule",
    "PseudoLabelError",
    "PseudoLabelWriter",
    "PseudoLabeler",
    "check_output",
    "prepare_output",
    "pseudo_label",
    "pseudo_label_record",
    "write_manifest",
]
