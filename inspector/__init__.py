"""ckpt-size: exact bytes per device for GGUF and safetensors checkpoints, read from their headers only."""
from __future__ import annotations

from .api import inspect, load
from .errors import CkptSizeError
from .model import Checkpoint, FileInfo, TensorInfo
from .summary import Group, Inspection

__all__ = ["Checkpoint", "CkptSizeError", "FileInfo", "Group", "Inspection", "TensorInfo", "__version__", "inspect",
           "load"]
from .version import __version__  # noqa: E402
