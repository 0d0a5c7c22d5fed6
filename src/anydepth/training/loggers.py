"""Experiment loggers: :class:`RunLogger`, a wandb logger whose run survives a SLURM requeue and that works without
an account.

From YAML: ``trainer.logger: {class_path: anydepth.training.loggers.RunLogger, init_args: {name: teacher-vits,
project: anydepth, save_dir: outputs}}``; ``--trainer.logger false`` logs nothing (Lightning's own switch).
"""

from __future__ import annotations

import hashlib
import netrc
import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info

DEFAULT_BASE_URL = "https://api.wandb.ai"  # wandb's default server (WANDB_BASE_URL overrides it)
MAX_RUN_ID_LENGTH = 64
_NOT_IN_RUN_ID = re.compile(r"[^A-Za-z0-9._-]")


def run_id(name: str) -> str:
    """The wandb run id of a run name: every character other than a letter, digit, ``.``, ``_`` or ``-`` becomes
    ``-`` (wandb refuses ``:;,#?/'`` and whitespace at the ends); a result longer than 64 characters is cut and
    ends with 8 hex digits of the name's SHA-1, so long names that share a prefix keep distinct ids."""
    run = _NOT_IN_RUN_ID.sub("-", name)
    if len(run) <= MAX_RUN_ID_LENGTH:
        return run
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{run[: MAX_RUN_ID_LENGTH - len(digest) - 1]}-{digest}"


def _netrc_path() -> Path:
    """The netrc file wandb reads: ``$NETRC``, else ``~/.netrc`` or ``~/_netrc``, whichever exists."""
    if os.environ.get("NETRC"):
        return Path(os.environ["NETRC"]).expanduser()
    unix, windows = Path("~/.netrc").expanduser(), Path("~/_netrc").expanduser()
    return windows if windows.exists() and not unix.exists() else unix


def has_wandb_credentials() -> bool:
    """Whether ``wandb.init`` would find credentials without prompting, decided offline as wandb 0.31 does
    (``wandb.sdk.lib.wbauth``): ``WANDB_API_KEY`` or ``WANDB_IDENTITY_TOKEN_FILE``, else a netrc entry with a
    password for the host of ``WANDB_BASE_URL`` (default api.wandb.ai). A server chosen only in wandb's settings
    file (``wandb login --host``) is not looked up: set ``WANDB_BASE_URL`` or ``WANDB_MODE=online`` for it."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL).netloc
    try:
        entry = netrc.netrc(_netrc_path()).authenticators(host)
    except (OSError, netrc.NetrcParseError):  # no file, unreadable or malformed: wandb finds no key either
        return False
    return bool(entry and entry[2])


class RunLogger(WandbLogger):
    """:class:`~lightning.pytorch.loggers.WandbLogger` with two defaults for cluster runs.

    - The wandb run ``id`` is :func:`run_id` of ``name`` unless ``id`` (or its alias ``version``) is given, and
      ``resume="allow"``: a requeued or resubmitted job with the same ``name`` continues the same wandb run, and
      Lightning's default checkpoint directory ``<save_dir>/<project>/<id>/checkpoints`` stays the same, so
      ``--ckpt_path last`` finds it. (``resume`` is explicit because jsonargparse passes every ``wandb.init``
      default, ``resume=None`` included, through ``**kwargs``.)
    - Without credentials (:func:`has_wandb_credentials` is False) the run is offline (``mode="offline"``: files
      under ``<save_dir>/wandb/offline-run-*``, uploaded later with ``wandb sync``), said once in a log line on
      rank 0. A ``WANDB_MODE`` environment variable, ``mode`` or ``offline=True`` decide instead.

    Every other argument is WandbLogger's (``project``, ``save_dir``, ``log_model``, ...); other keyword
    arguments go to ``wandb.init`` (``entity``, ``group``, ``tags``, ...).
    """

    def __init__(
        self,
        name: str | None = None,
        id: str | None = None,
        version: str | None = None,
        offline: bool = False,
        mode: Literal["online", "offline", "disabled", "shared"] | None = None,
        resume: Literal["allow", "never", "must", "auto"] | bool | None = "allow",
        **kwargs: Any,
    ) -> None:
        if name and not (id or version):
            id = run_id(name)
        if mode is None and not (offline or "WANDB_MODE" in os.environ or has_wandb_credentials()):
            mode = "offline"
            rank_zero_info(
                f"wandb: no credentials (WANDB_API_KEY, or `wandb login`): logging run {id or name or '(unnamed)'} "
                f"offline under {kwargs.get('save_dir', '.')}/wandb; upload it later with `wandb sync`, or set "
                "WANDB_MODE to choose"
            )
        super().__init__(name=name, id=id, version=version, offline=offline, mode=mode, resume=resume, **kwargs)
