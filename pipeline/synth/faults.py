"""Fault injection for tests of the readers: broken files inside an otherwise valid tree.

Syntax of one `--fault` value (repeatable):

KITTI (DRIVE is the drive number, e.g. 1 for 2011_09_26_drive_0001_sync; FRAME the 0-based frame index):
  corrupt-png:DRIVE:FRAME[:CAM]   the PNG of that frame is garbled (valid signature, truncated, junk bytes);
                                  CAM is image_02 (default) or image_03
  empty-velodyne:DRIVE:FRAME      that frame's velodyne .bin is 0 bytes
  short-drive[:DRIVE]             that drive (default: the last one) has only 2 frames
  missing-calib                   the date has no calib_cam_to_cam.txt
  malformed-calib                 calib_cam_to_cam.txt exists, but P_rect_02 has 7 numbers instead of 12
Cityscapes (SEQ is the sequence number in the file names, FRAME the 0-based index within the snippet):
  corrupt-png:CITY:SEQ:FRAME      that leftImg8bit_sequence PNG is garbled
  missing-camera:CITY:SEQ         the snippet's camera.json is absent
  malformed-camera:CITY:SEQ       the snippet's camera.json is not valid JSON
"""

from __future__ import annotations

from dataclasses import dataclass

KITTI_FAULTS = ("corrupt-png", "empty-velodyne", "short-drive", "missing-calib", "malformed-calib")
CITYSCAPES_FAULTS = ("corrupt-png", "missing-camera", "malformed-camera")
SHORT_DRIVE_FRAMES = 2


@dataclass(frozen=True, kw_only=True)
class Fault:
    kind: str
    drive: int | None = None  # KITTI drive number
    city: str | None = None  # Cityscapes city
    sequence: int | None = None  # Cityscapes sequence number
    frame: int | None = None
    camera: str = "image_02"

    def check_kitti(self, cfg) -> None:
        if self.kind not in KITTI_FAULTS:
            raise ValueError(f"fault {self.kind!r} is not a KITTI fault (one of {', '.join(KITTI_FAULTS)})")
        drives = range(cfg.first_drive, cfg.first_drive + cfg.num_drives)
        if self.drive is not None and self.drive not in drives:
            raise ValueError(f"fault {self.kind}: drive {self.drive} is not one of the drives {list(drives)}")
        if self.frame is not None and not 0 <= self.frame < cfg.num_frames:
            raise ValueError(f"fault {self.kind}: frame {self.frame} is outside 0..{cfg.num_frames - 1}")
        if self.camera == "image_03" and not cfg.stereo:
            raise ValueError(f"fault {self.kind}: image_03 is not rendered (stereo is off)")
        if self.kind == "empty-velodyne" and not cfg.velodyne:
            raise ValueError("fault empty-velodyne: the velodyne is not rendered")

    def check_cityscapes(self, cfg) -> None:
        if self.kind not in CITYSCAPES_FAULTS:
            raise ValueError(
                f"fault {self.kind!r} is not a Cityscapes fault (one of {', '.join(CITYSCAPES_FAULTS)})"
            )
        if self.city not in cfg.city_names:
            raise ValueError(f"fault {self.kind}: city {self.city!r} is not one of {list(cfg.city_names)}")
        if not 0 <= (self.sequence or 0) < cfg.num_sequences:
            raise ValueError(f"fault {self.kind}: sequence {self.sequence} is outside 0..{cfg.num_sequences - 1}")
        if self.frame is not None and not 0 <= self.frame < cfg.num_frames:
            raise ValueError(f"fault {self.kind}: frame {self.frame} is outside 0..{cfg.num_frames - 1}")


def _int(text: str, what: str, spec: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"bad fault {spec!r}: {what} must be an integer, got {text!r}") from None


def parse_fault(spec: str, dataset: str) -> Fault:
    """Parse one `--fault` value for dataset 'kitti' or 'cityscapes' (see the module docstring)."""
    parts = spec.split(":")
    kind, args = parts[0], parts[1:]
    if dataset == "kitti":
        if kind in ("corrupt-png",) and len(args) in (2, 3):
            cam = args[2] if len(args) == 3 else "image_02"
            if cam not in ("image_02", "image_03"):
                raise ValueError(f"bad fault {spec!r}: camera must be image_02 or image_03")
            return Fault(kind=kind, drive=_int(args[0], "DRIVE", spec), frame=_int(args[1], "FRAME", spec),
                         camera=cam)
        if kind == "empty-velodyne" and len(args) == 2:
            return Fault(kind=kind, drive=_int(args[0], "DRIVE", spec), frame=_int(args[1], "FRAME", spec))
        if kind == "short-drive" and len(args) <= 1:
            return Fault(kind=kind, drive=_int(args[0], "DRIVE", spec) if args else None)
        if kind in ("missing-calib", "malformed-calib") and not args:
            return Fault(kind=kind)
        raise ValueError(
            f"bad fault {spec!r}: expected corrupt-png:DRIVE:FRAME[:CAM], empty-velodyne:DRIVE:FRAME, "
            "short-drive[:DRIVE], missing-calib or malformed-calib"
        )
    if dataset == "cityscapes":
        if kind == "corrupt-png" and len(args) == 3:
            return Fault(kind=kind, city=args[0], sequence=_int(args[1], "SEQ", spec),
                         frame=_int(args[2], "FRAME", spec))
        if kind in ("missing-camera", "malformed-camera") and len(args) == 2:
            return Fault(kind=kind, city=args[0], sequence=_int(args[1], "SEQ", spec))
        raise ValueError(
            f"bad fault {spec!r}: expected corrupt-png:CITY:SEQ:FRAME, missing-camera:CITY:SEQ or "
            "malformed-camera:CITY:SEQ"
        )
    raise ValueError(f"unknown dataset {dataset!r}")


def garble_png(data: bytes) -> bytes:
    """A PNG that starts like one but cannot be decoded: keep the signature and IHDR, cut and scramble the rest."""
    keep = min(len(data), 33 + 40)  # 8-byte signature + 25-byte IHDR chunk + a little of the next chunk
    return data[:keep] + b"\x00garbled-by-rmdepth-synth\xff" * 3
