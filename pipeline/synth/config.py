"""Configuration of the synthetic worlds (frozen, keyword-only, validated)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pipeline.synth.faults import Fault

KITTI_DATES = ("2011_09_26", "2011_09_28", "2011_09_29", "2011_09_30", "2011_10_03")
CITYSCAPES_CITIES = {
    "train": ("aachen", "bochum", "bremen", "cologne", "darmstadt", "dusseldorf", "erfurt", "hamburg"),
    "val": ("frankfurt", "lindau", "munster"),
    "test": ("berlin", "bielefeld", "bonn", "leverkusen", "mainz", "munich"),
}
_DATE = re.compile(r"^\d{4}_\d{2}_\d{2}$")
_CITY = re.compile(r"^[a-z][a-z0-9]*$")


def _check_size(size_wh: tuple[int, int], name: str = "size_wh") -> None:
    w, h = size_wh
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise ValueError(f"{name} must be between 16x16 and 8192x8192, got {w}x{h}")


@dataclass(frozen=True, kw_only=True)
class WorldConfig:
    """The street world shared by both dataset writers (units: metres, seconds)."""

    num_moving: int = 4  # independently moving cars (ahead in the ego lane, same direction, oncoming)
    parked_density: float = 0.6  # probability of a parked car per slot along each curb
    num_static_per_100m: float = 8.0  # poles, bins and kiosks on the sidewalks per 100 m of street
    ego_speed: float = 10.0  # mean forward speed of the ego car in m/s (KITTI at 10 Hz: ~1 m per frame)
    turn_amplitude_deg: float = 3.0  # heading oscillation of the ego car (gentle turns / lane weaving)
    camera_height: float = 1.65  # height of the camera above the road in metres
    stop_fraction: float = 0.0  # fraction of each drive (in its middle) the ego car stands still: static frames

    def __post_init__(self) -> None:
        if self.num_moving < 0 or self.num_moving > 64:
            raise ValueError(f"num_moving must be in [0, 64], got {self.num_moving}")
        if not 0.0 <= self.parked_density <= 1.0:
            raise ValueError(f"parked_density must be in [0, 1], got {self.parked_density}")
        if self.num_static_per_100m < 0:
            raise ValueError(f"num_static_per_100m must be >= 0, got {self.num_static_per_100m}")
        if not 0.0 <= self.ego_speed <= 40.0:
            raise ValueError(f"ego_speed must be in [0, 40] m/s, got {self.ego_speed}")
        if not 0.0 <= self.turn_amplitude_deg <= 6.0:
            raise ValueError(f"turn_amplitude_deg must be in [0, 6], got {self.turn_amplitude_deg}")
        if not 0.0 <= self.stop_fraction <= 0.8:
            raise ValueError(f"stop_fraction must be in [0, 0.8], got {self.stop_fraction}")
        if not 0.5 <= self.camera_height <= 3.0:
            raise ValueError(f"camera_height must be in [0.5, 3], got {self.camera_height}")


@dataclass(frozen=True, kw_only=True)
class KittiSynthConfig:
    """`rmdepth synth kitti`: drives of one date in the KITTI raw layout."""

    num_drives: int = 2
    num_frames: int = 40
    size_wh: tuple[int, int] = (416, 128)
    seed: int = 0
    date: str = "2011_09_26"
    first_drive: int = 1  # drive numbers are first_drive, first_drive+1, ... (4 digits in the folder name)
    fps: float = 10.0
    stereo: bool = True  # also render image_03 (the right colour camera, 0.54 m baseline)
    velodyne: bool = True
    lidar_beams: int = 64
    lidar_azimuths: int = 0  # rays per beam over the front 180 degrees; 0 = auto, 2.5 x the image width
    truth: bool = True  # write rmdepth_truth/ (exact depth, moving mask, pose) next to the dataset folders
    world: WorldConfig = field(default_factory=WorldConfig)
    faults: tuple[Fault, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.num_drives <= 9999:
            raise ValueError(f"num_drives must be in [1, 9999], got {self.num_drives}")
        if not 1 <= self.num_frames <= 100000:
            raise ValueError(f"num_frames must be in [1, 100000], got {self.num_frames}")
        _check_size(self.size_wh)
        if not _DATE.match(self.date):
            raise ValueError(f"date must look like 2011_09_26, got {self.date!r}")
        if not 0 <= self.first_drive <= 9999 - self.num_drives + 1:
            raise ValueError(f"first_drive must leave 4-digit drive numbers, got {self.first_drive}")
        if not 1.0 <= self.fps <= 100.0:
            raise ValueError(f"fps must be in [1, 100], got {self.fps}")
        if not 1 <= self.lidar_beams <= 256 or not (self.lidar_azimuths == 0 or 8 <= self.lidar_azimuths <= 8192):
            raise ValueError("lidar_beams must be in [1, 256] and lidar_azimuths 0 (auto) or in [8, 8192]")
        for f in self.faults:
            f.check_kitti(self)

    @property
    def num_lidar_azimuths(self) -> int:
        return self.lidar_azimuths or max(256, 8 * round(2.5 * self.size_wh[0] / 8))

    def drive_name(self, index: int) -> str:
        return f"{self.date}_drive_{self.first_drive + index:04d}_sync"


@dataclass(frozen=True, kw_only=True)
class CityscapesSynthConfig:
    """`rmdepth synth cityscapes`: 30-frame snippets in the Cityscapes layout."""

    split: str = "train"
    cities: tuple[str, ...] = ()  # default: the first two real cities of the split
    num_sequences: int = 2  # snippets per city
    num_frames: int = 30  # frames per snippet; the annotated frame is index 19 (or the last if fewer)
    size_wh: tuple[int, int] = (512, 256)
    seed: int = 0
    fps: float = 17.0
    baseline: float = 0.209313  # stereo baseline in metres written to camera.json and used for disparity
    truth: bool = True
    world: WorldConfig = field(default_factory=lambda: WorldConfig(camera_height=1.22))
    faults: tuple[Fault, ...] = ()

    def __post_init__(self) -> None:
        if self.split not in CITYSCAPES_CITIES:
            raise ValueError(f"split must be one of train, val, test, got {self.split!r}")
        for c in self.cities:
            if not _CITY.match(c):
                raise ValueError(f"city names must be lower-case letters/digits, got {c!r}")
        if not 1 <= self.num_sequences <= 999999:
            raise ValueError(f"num_sequences must be >= 1, got {self.num_sequences}")
        if not 1 <= self.num_frames <= 1000:
            raise ValueError(f"num_frames must be in [1, 1000], got {self.num_frames}")
        _check_size(self.size_wh)
        if not 1.0 <= self.fps <= 100.0:
            raise ValueError(f"fps must be in [1, 100], got {self.fps}")
        if not 0.05 <= self.baseline <= 2.0:
            raise ValueError(f"baseline must be in [0.05, 2] m, got {self.baseline}")
        for f in self.faults:
            f.check_cityscapes(self)

    @property
    def city_names(self) -> tuple[str, ...]:
        return self.cities or CITYSCAPES_CITIES[self.split][:2]

    @property
    def annotated_index(self) -> int:
        return min(19, self.num_frames - 1)
