"""Run configuration: component configs composed into one `RunConfig`, named presets, `--set` overrides.

Component configs live next to their component (`pipeline/*/config.py`, `model/config.py`, `engine/config.py`);
this package only composes them. Every config is a frozen, keyword-only dataclass validated in `__post_init__`.
"""

from configs.core import apply_overrides, from_dict, from_json, to_dict, to_json

__all__ = ["apply_overrides", "from_dict", "from_json", "to_dict", "to_json"]
