"""Reading the exact ground truth written beside a synthetic tree (layout in pipeline.synth's docstring)."""

from __future__ import annotations

import io
import posixpath
import re
from dataclasses import dataclass

import numpy as np

from pipeline import storage

TRUTH_DIR = "rmdepth_truth"
_KITTI_IMAGE = re.compile(r"^(?P<drive>.*)/(?P<cam>image_0[23])/data/(?P<frame>\d{10})\.png$")
_CS_IMAGE = re.compile(
    r"^(?P<root>.*)/(?:leftImg8bit_sequence|leftImg8bit)/(?P<split>[^/]+)/(?P<city>[^/]+)/"
    r"(?P<name>[^/]+_\d{6}_\d{6})_leftImg8bit\.png$"
)


@dataclass(frozen=True, kw_only=True)
class Truth:
    """Exact truth of one rendered frame."""

    depth_HW: np.ndarray  # float32 camera z in metres; sky = pipeline.synth.SKY_DEPTH
    moving_HW: np.ndarray  # bool: pixels of independently moving cars
    instance_HW: np.ndarray  # int32: 0 road/sky, j + 1 object j (= the "instance" value of its world.json boxes)
    sky_HW: np.ndarray  # bool
    pose_cam_to_world: np.ndarray  # float64 4x4 (world frame: X right, Y down, Z along the street)
    K_33: np.ndarray  # float64 intrinsics of the rendered image
    time_s: float
    hood_HW: np.ndarray | None = None  # Cityscapes: the ego car's hood (depth there is the hood's own depth)

    # Short names matching the .npz keys.
    @property
    def depth(self) -> np.ndarray:
        return self.depth_HW

    @property
    def moving(self) -> np.ndarray:
        return self.moving_HW

    @property
    def K(self) -> np.ndarray:  # noqa: N802
        return self.K_33


def load_truth(path: str) -> Truth:
    """Load one truth .npz (local path or URL)."""
    with np.load(io.BytesIO(storage.read_bytes(path))) as z:
        return Truth(
            depth_HW=z["depth"],
            moving_HW=z["moving"].astype(bool),
            instance_HW=z["instance"],
            sky_HW=z["sky"].astype(bool),
            pose_cam_to_world=z["pose_cam_to_world"],
            K_33=z["K"],
            time_s=float(z["time_s"]),
            hood_HW=z["hood"].astype(bool) if "hood" in z.files else None,
        )


def truth_path(image_path: str) -> str:
    """The truth file of a rendered image, from the image's path in a synthetic tree.

    KITTI  <date>/<drive>/image_02/data/0000000005.png -> <date>/<drive>/rmdepth_truth/image_02/0000000005.npz
    Cityscapes <root>/leftImg8bit_sequence/<split>/<city>/<name>_leftImg8bit.png (or leftImg8bit/...)
               -> <root>/rmdepth_truth/<split>/<city>/<name>_truth.npz
    """
    p = image_path.replace("\\", "/")
    m = _KITTI_IMAGE.match(p)
    if m:
        return posixpath.join(m["drive"], TRUTH_DIR, m["cam"], m["frame"] + ".npz")
    m = _CS_IMAGE.match(p)
    if m:
        return posixpath.join(m["root"], TRUTH_DIR, m["split"], m["city"], m["name"] + "_truth.npz")
    raise ValueError(f"{image_path}: not an image path of a KITTI or Cityscapes synthetic tree")
