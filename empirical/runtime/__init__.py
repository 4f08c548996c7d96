"""Running studies: atomic result files, provenance, CUDA float32 precision settings and the per-unit cache."""
from __future__ import annotations

from empirical.runtime.cache import UnitCache  # noqa: F401
from empirical.runtime.environment import COMMIT_ENV, device_info, git_commit, provenance, versions  # noqa: F401
from empirical.runtime.files import atomic_write_text, read_json, write_csv, write_json  # noqa: F401
from empirical.runtime.precision import fp32_mode, fp32_precision, set_fp32, set_fp32_ieee  # noqa: F401
