"""Files of predictions and ground truth made elsewhere: monodepth2's gt_depths.npz, its --ext_disp_to_eval .npy,
one map per key in an .npz; local paths or object-storage URLs (pipeline.storage). The evaluation itself
(engine.evaluate) does no I/O."""

from __future__ import annotations

import io

import numpy as np

from pipeline import storage


def load_map_list(url: str, *, what: str, allow_pickle: bool = False) -> list[np.ndarray]:
    """A list of 2-D float maps from a .npy (N x H x W, or an object array) or .npz file (key `data`, a single key,
    or one key per frame in file order). Ragged object arrays (monodepth2's gt_depths.npz) need pickle, which runs
    code from the file: it is refused unless `allow_pickle` (only for files you trust)."""
    if not storage.exists(url):
        raise FileNotFoundError(f"{what} file {url} does not exist")
    data = storage.read_bytes(url)
    try:
        arrays = _read_arrays(np.load(io.BytesIO(data), allow_pickle=allow_pickle, encoding="latin1"), url, what)
    except ValueError as e:
        if "allow_pickle" in str(e) or "pickled" in str(e):
            raise ValueError(
                f"{what} file {url} holds a pickled object array (e.g. monodepth2's ragged gt_depths.npz); "
                "pass --allow-pickle if you trust the file"
            ) from e
        if str(e).startswith(f"{what} file"):
            raise
        raise ValueError(f"{what} file {url} is not a valid .npy/.npz file: {e}") from e
    except (OSError, EOFError) as e:
        raise ValueError(f"{what} file {url} is not a valid .npy/.npz file: {e}") from e
    out = []
    for i, a in enumerate(arrays):
        a = np.squeeze(np.asarray(a, dtype=np.float32))
        if a.ndim != 2:
            raise ValueError(f"{what} file {url}: entry {i} has shape {a.shape}, expected a 2-D map")
        out.append(a)
    return out


def _read_arrays(loaded, url: str, what: str) -> list[np.ndarray]:
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        return _split(loaded, url, what)
    with loaded:
        names = list(loaded.files)
        if not names:
            raise ValueError(f"{what} file {url} contains no arrays")
        if "data" in names:
            return _split(loaded["data"], url, what)
        if len(names) == 1:
            return _split(loaded[names[0]], url, what)
        return [np.asarray(loaded[n]) for n in names]


def _split(arr: np.ndarray, url: str, what: str) -> list[np.ndarray]:
    if arr.dtype == object:
        return list(arr)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 2:
        return [arr]
    if arr.ndim != 3:
        raise ValueError(f"{what} file {url}: array of shape {arr.shape}, expected N x H x W")
    return list(arr)
