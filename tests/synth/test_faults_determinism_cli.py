"""Determinism from the seed, fault injection, and the `rmdepth synth` command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pykitti
import pytest
from PIL import Image

from jobs.cli import main
from pipeline.synth import CityscapesSynthConfig, KittiSynthConfig, write_cityscapes, write_kitti
from pipeline.synth.faults import parse_fault

SMALL = (96, 32)


def _tree_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_world(tmp_path):
    cfg = KittiSynthConfig(num_drives=1, num_frames=2, size_wh=SMALL, seed=11)
    write_kitti(str(tmp_path / "a"), cfg, progress=False)
    write_kitti(str(tmp_path / "b"), cfg, progress=False)
    a, b = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) > 10
    assert all(a[k] == b[k] for k in a)
    write_kitti(str(tmp_path / "c"), KittiSynthConfig(num_drives=1, num_frames=2, size_wh=SMALL, seed=12),
                progress=False)
    c = _tree_bytes(tmp_path / "c")
    png = "2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000001.png"
    assert c[png] != a[png]
    cs = CityscapesSynthConfig(cities=("erfurt",), num_sequences=1, num_frames=2, size_wh=(64, 32), seed=2)
    write_cityscapes(str(tmp_path / "d"), cs, progress=False)
    write_cityscapes(str(tmp_path / "e"), cs, progress=False)
    assert _tree_bytes(tmp_path / "d") == _tree_bytes(tmp_path / "e")


def test_a_drive_does_not_depend_on_the_others(tmp_path):
    """Drives can be rendered in separate calls (e.g. in parallel): drive 2 alone equals drive 2 of a 2-drive run."""
    write_kitti(str(tmp_path / "a"), KittiSynthConfig(num_drives=2, num_frames=2, size_wh=SMALL, seed=5),
                progress=False)
    write_kitti(str(tmp_path / "b"), KittiSynthConfig(num_drives=1, first_drive=2, num_frames=2, size_wh=SMALL,
                                                     seed=5), progress=False)
    a, b = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    assert b.keys() <= a.keys()
    assert all(a[k] == b[k] for k in b)
    # ... and two worker processes give the same tree as one.
    summary = write_kitti(str(tmp_path / "c"), KittiSynthConfig(num_drives=2, num_frames=2, size_wh=SMALL, seed=5),
                          progress=False, workers=2)
    assert _tree_bytes(tmp_path / "c") == a
    assert summary["num_files"] == len(a) and [d["drive"] for d in summary["drives"]] == [
        "2011_09_26_drive_0001_sync", "2011_09_26_drive_0002_sync"]


def test_kitti_faults(tmp_path):
    faults = tuple(parse_fault(s, "kitti") for s in (
        "corrupt-png:1:1", "corrupt-png:2:0:image_03", "empty-velodyne:1:0", "short-drive:2", "malformed-calib"))
    cfg = KittiSynthConfig(num_drives=2, num_frames=3, size_wh=SMALL, seed=1, faults=faults)
    write_kitti(str(tmp_path), cfg, progress=False)
    date = tmp_path / "2011_09_26"
    d1, d2 = date / "2011_09_26_drive_0001_sync", date / "2011_09_26_drive_0002_sync"
    with pytest.raises(OSError):
        Image.open(d1 / "image_02" / "data" / "0000000001.png").load()
    Image.open(d1 / "image_02" / "data" / "0000000000.png").load()  # neighbours are fine
    with pytest.raises(OSError):
        Image.open(d2 / "image_03" / "data" / "0000000000.png").load()
    assert (d1 / "velodyne_points" / "data" / "0000000000.bin").stat().st_size == 0
    assert (d1 / "velodyne_points" / "data" / "0000000001.bin").stat().st_size > 0
    assert len(list((d1 / "image_02" / "data").iterdir())) == 3
    for sub in ("image_02/data", "image_03/data", "velodyne_points/data", "oxts/data"):
        assert len(list((d2 / sub).iterdir())) == 2
    assert len((d2 / "oxts" / "timestamps.txt").read_text().splitlines()) == 2
    with pytest.raises(ValueError):  # P_rect_02 has 7 numbers: cannot be reshaped to 3x4
        pykitti.raw(str(tmp_path), "2011_09_26", "0001")


def test_missing_calib(tmp_path):
    cfg = KittiSynthConfig(num_drives=1, num_frames=1, size_wh=SMALL, velodyne=False, stereo=False,
                           faults=(parse_fault("missing-calib", "kitti"),))
    write_kitti(str(tmp_path), cfg, progress=False)
    date = tmp_path / "2011_09_26"
    assert not (date / "calib_cam_to_cam.txt").exists()
    assert (date / "calib_velo_to_cam.txt").exists()
    assert (date / "2011_09_26_drive_0001_sync" / "image_02" / "data" / "0000000000.png").exists()


def test_cityscapes_faults(tmp_path):
    faults = tuple(parse_fault(s, "cityscapes") for s in (
        "corrupt-png:bonn:0:3", "missing-camera:bonn:1", "malformed-camera:berlin:0"))
    cfg = CityscapesSynthConfig(split="test", cities=("bonn", "berlin"), num_sequences=2, num_frames=20,
                                size_wh=(64, 32), truth=False, faults=faults)
    summary = write_cityscapes(str(tmp_path), cfg, progress=False)
    first = {(s["city"], s["sequence"]): s["first_frame"] for s in summary["snippets"]}
    bad = tmp_path / "leftImg8bit_sequence" / "test" / "bonn" / f"bonn_000000_{first['bonn', 0] + 3:06d}_leftImg8bit.png"
    with pytest.raises(OSError):
        Image.open(bad).load()
    cams = {p.name for p in (tmp_path / "camera" / "test" / "bonn").iterdir()}
    assert cams == {f"bonn_000000_{first['bonn', 0] + 19:06d}_camera.json"}
    broken = tmp_path / "camera" / "test" / "berlin" / f"berlin_000000_{first['berlin', 0] + 19:06d}_camera.json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.read_text())
    assert not (tmp_path / "rmdepth_truth").exists()


@pytest.mark.parametrize(
    "spec, dataset",
    [("corrupt-png:1", "kitti"), ("corrupt-png:x:1", "kitti"), ("melt", "kitti"), ("missing-calib:3", "kitti"),
     ("corrupt-png:aachen:0", "cityscapes"), ("missing-calib", "cityscapes")],
)
def test_bad_fault_specs(spec, dataset):
    with pytest.raises(ValueError, match="fault"):
        parse_fault(spec, dataset)


def test_faults_outside_the_tree_are_rejected():
    with pytest.raises(ValueError, match="drive 7"):
        KittiSynthConfig(num_drives=2, faults=(parse_fault("empty-velodyne:7:0", "kitti"),))
    with pytest.raises(ValueError, match="frame 5"):
        KittiSynthConfig(num_drives=1, num_frames=5, faults=(parse_fault("corrupt-png:1:5", "kitti"),))


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["synth", "kitti", "OUT", "--size", "416by128"], "--size"),
        (["synth", "kitti", "OUT", "--size", "8x8"], "size_wh"),
        (["synth", "kitti", "OUT", "--frames", "0"], "num_frames"),
        (["synth", "kitti", "OUT", "--fault", "corrupt-png:9:0"], "drive 9"),
        (["synth", "cityscapes", "OUT", "--cities", "Bad City"], "city"),
    ],
)
def test_cli_usage_errors_exit_2_with_one_line(argv, needle, tmp_path, capsys):
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("rmdepth synth: error:") and needle in err[-1]
    assert not any("Traceback" in line for line in err)
    assert not (tmp_path / "out").exists()


def test_cli_writes_a_tree_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "cs"
    assert main(["synth", "cityscapes", str(out), "--size", "64x32", "--frames", "3", "--sequences", "1",
                 "--cities", "lindau", "--split", "val", "--seed", "4"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["dataset"] == "cityscapes" and summary["num_frames"] == 3
    files = sorted(p.name for p in (out / "leftImg8bit_sequence" / "val" / "lindau").iterdir())
    assert len(files) == 3 and all(f.startswith("lindau_000000_") for f in files)


def test_synth_help_lists_both_datasets(capsys):
    with pytest.raises(SystemExit) as e:
        main(["synth", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "kitti" in out and "cityscapes" in out


def test_module_help_documents_options():
    res = subprocess.run([sys.executable, "-m", "jobs.synth", "kitti", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0
    for opt in ("--drives", "--frames", "--size", "--seed", "--moving-objects", "--date", "--fault", "short-drive"):
        assert opt in res.stdout


@pytest.mark.s3
def test_write_to_object_storage(s3_bucket):
    from pipeline import storage

    url = f"{s3_bucket}/kitti"
    write_kitti(url, KittiSynthConfig(num_drives=1, num_frames=1, size_wh=SMALL, stereo=False), progress=False)
    names = storage.listdir(f"{url}/2011_09_26")
    assert {"calib_cam_to_cam.txt", "calib_velo_to_cam.txt", "calib_imu_to_velo.txt"} <= set(names)
    png = storage.read_bytes(f"{url}/2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000000.png")
    assert np.asarray(Image.open(__import__("io").BytesIO(png))).shape == (SMALL[1], SMALL[0], 3)
