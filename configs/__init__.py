"""Named runs: `configs.presets` returns a RunConfig (engine/run_config.py) per preset name; change one with
`--set a.b=value` (engine/config_io.py). Component configs live next to their component (`pipeline/*/config.py`,
`model/config.py`, `engine/config.py`); every config is a frozen, keyword-only dataclass validated in `__post_init__`.
"""
