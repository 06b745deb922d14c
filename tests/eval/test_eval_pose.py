"""`rmdepth eval-pose` (issue 11): monodepth2's ego-motion ATE checked against an independent re-implementation
written here, on trajectories with known answers; bad input; the synthetic world in the KITTI odometry layout; the
checkpoint path end to end (in-process, two Ray workers, and through s3:// on a local moto server)."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from engine.pose_eval import MotionPart, PoseProtocol, merge_motions, score_sequence, split_pairs
from jobs.cli import main
from tests.eval.helpers import make_checkpoint, rmdepth

DRIVE = "2011_09_26_drive_0001_sync"
NUM_FRAMES = 12


# ------------------------------------------------------------------------------------------------------------------
# An independent re-implementation of monodepth2's evaluate_pose.py (from its source; no product code)
def _ref_dump_xyz(transforms):
    xyzs = []
    cam_to_world = np.eye(4)
    xyzs.append(cam_to_world[:3, 3])
    for T in transforms:
        cam_to_world = np.dot(cam_to_world, T)
        xyzs.append(cam_to_world[:3, 3])
    return np.array(xyzs)


def _ref_compute_ate(gtruth_xyz, pred_xyz_o):
    offset = gtruth_xyz[0] - pred_xyz_o[0]
    pred_xyz = pred_xyz_o + offset[None, :]
    scale = np.sum(gtruth_xyz * pred_xyz) / np.sum(pred_xyz**2)
    alignment_error = pred_xyz * scale - gtruth_xyz
    return np.sqrt(np.sum(alignment_error**2)) / gtruth_xyz.shape[0]


def _ref_ates(pred_poses, gt_global_poses, track_length=5):
    gt_local_poses = [np.linalg.inv(np.dot(np.linalg.inv(gt_global_poses[i - 1]), gt_global_poses[i]))
                      for i in range(1, len(gt_global_poses))]
    ates = []
    for i in range(0, len(gt_global_poses) - 1):
        local_xyzs = _ref_dump_xyz(pred_poses[i : i + track_length - 1])
        gt_local_xyzs = _ref_dump_xyz(gt_local_poses[i : i + track_length - 1])
        ates.append(_ref_compute_ate(gt_local_xyzs, local_xyzs))
    return np.array(ates)


def _rot(axis, angle):
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def _curvy_poses(n, seed=0):
    """Camera-to-world poses of a car-like trajectory: forward ~1 m/frame with turns, pitch jitter."""
    rng = np.random.default_rng(seed)
    G = [np.eye(4)]
    for _ in range(n - 1):
        T = np.eye(4)
        T[:3, :3] = _rot([0, 1, 0], rng.normal(0, 0.03)) @ _rot([1, 0, 0], rng.normal(0, 0.005))
        T[:3, 3] = [rng.normal(0, 0.02), rng.normal(0, 0.01), rng.uniform(0.6, 1.4)]
        G.append(G[-1] @ T)
    return np.stack(G)


def _true_motions(G):
    """monodepth2's gt_local_poses: inv(inv(G_i) @ G_{i+1}), frame i -> i+1."""
    return np.stack([np.linalg.inv(np.linalg.inv(G[i]) @ G[i + 1]) for i in range(len(G) - 1)])


def _write_poses_txt(path, G):
    with open(path, "w") as f:
        for P in G:
            f.write(" ".join(f"{v:.12e}" for v in P[:3].reshape(-1)) + "\n")


def _external(tmp_path, motions, G, *extra):
    np.save(tmp_path / "poses.npy", np.asarray(motions))
    if G is not None:
        _write_poses_txt(tmp_path / "09.txt", G)
    rc = main(["eval-pose", "--predictions", str(tmp_path / "poses.npy"), "--gt-poses", str(tmp_path / "09.txt"),
               "--json", str(tmp_path / "m.json"), *extra])
    return rc, (json.loads((tmp_path / "m.json").read_text()) if rc == 0 else None)


# ------------------------------------------------------------------------------------------------------------------
def test_protocol_matches_independent_implementation_and_known_answers(tmp_path):
    G = _curvy_poses(40)
    gt = _true_motions(G)
    # exact predictions: ATE 0
    rc, m = _external(tmp_path, gt.astype(np.float64), G)
    assert rc == 0 and m["ate_mean"] == pytest.approx(0.0, abs=1e-9) and m["ate_std"] == pytest.approx(0.0, abs=1e-9)
    assert m["num_snippets"] == 39 and m["translation_cosine"] == pytest.approx(1.0)
    # predictions scaled by any factor: ATE 0 (the protocol fits the scale per snippet)
    for factor in (0.031, 2.7):
        scaled = gt.copy()
        scaled[:, :3, 3] *= factor
        rc, m = _external(tmp_path, scaled, G)
        assert rc == 0 and m["ate_mean"] == pytest.approx(0.0, abs=1e-9)
        assert m["length_ratio_median"] == pytest.approx(factor)
    # noisy predictions: the product equals the independent implementation snippet by snippet
    rng = np.random.default_rng(3)
    noisy = gt.copy()
    noisy[:, :3, 3] += rng.normal(0, 0.05, size=(len(gt), 3))
    noisy[:, :3, :3] = np.stack([_rot(rng.normal(size=3), 0.01) for _ in gt]) @ noisy[:, :3, :3]
    ref = _ref_ates(noisy, G)
    rc, m = _external(tmp_path, noisy.astype(np.float32), G)  # monodepth2 saves float32
    ref32 = _ref_ates(noisy.astype(np.float32).astype(np.float64), G)
    assert rc == 0 and m["ate_mean"] == pytest.approx(ref32.mean(), rel=1e-9)
    assert m["ate_std"] == pytest.approx(ref32.std(), rel=1e-9) and m["ate_mean"] == pytest.approx(ref.mean(), rel=1e-4)
    score = score_sequence("x", noisy, G, protocol=PoseProtocol())
    np.testing.assert_allclose(score.model.ates_S, ref, rtol=1e-10)


def test_known_perturbation_gives_the_closed_form_value(tmp_path):
    """Straight drive (v m/frame along z); the prediction also drifts a m/frame sideways. Per snippet with m
    motions the least-squares scale is v^2/(v^2+a^2) and the ATE is sqrt(S_m v^2 a^2 / (v^2 + a^2)) / (m + 1),
    S_m = sum k^2 (k = 0..m)."""
    n, v, a = 10, 1.2, 0.15
    G = np.stack([np.eye(4)] * (n + 1))
    G[:, 2, 3] = v * np.arange(n + 1)
    pred = np.stack([np.eye(4)] * n)
    pred[:, :3, 3] = [-a, 0.0, -v]  # frame i -> i+1 moves points backwards
    expected = []
    for i in range(n):
        m = min(4, n - i)
        S = m * (m + 1) * (2 * m + 1) / 6
        expected.append(np.sqrt(S * v**2 * a**2 / (v**2 + a**2)) / (m + 1))
    np.testing.assert_allclose(_ref_ates(pred, G), expected, rtol=1e-12)
    rc, got = _external(tmp_path, pred, G)
    assert rc == 0
    assert got["ate_mean"] == pytest.approx(np.mean(expected), rel=1e-9)
    assert got["ate_std"] == pytest.approx(np.std(expected), rel=1e-9)
    # a standing camera (all identity): no scale to fit; the error is the distance of the true points from the start
    standing = [np.sqrt(np.sum((v * np.arange(min(4, n - i) + 1)) ** 2)) / (min(4, n - i) + 1) for i in range(n)]
    assert got["zero_motion_ate_mean"] == pytest.approx(np.mean(standing), rel=1e-9)
    rc, still = _external(tmp_path, np.stack([np.eye(4)] * n), G)
    assert rc == 0 and still["ate_mean"] == pytest.approx(np.mean(standing), rel=1e-9)


def test_devkit_relative_errors_match_an_independent_implementation():
    from model.pose_metrics import kitti_odometry_errors

    G = _curvy_poses(200, seed=5)
    rng = np.random.default_rng(1)
    P = G.copy()
    P[:, :3, 3] += np.cumsum(rng.normal(0, 0.05, size=(len(G), 3)), axis=0)
    lengths = (10.0, 20.0, 50.0)
    dist = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(G[:, :3, 3], axis=0), axis=1))])
    t_err, r_err = [], []
    for first in range(0, len(G), 10):
        for length in lengths:
            last = next((i for i in range(first, len(G)) if dist[i] > dist[first] + length), -1)
            if last == -1:
                continue
            e = np.linalg.inv(np.linalg.inv(P[first]) @ P[last]) @ (np.linalg.inv(G[first]) @ G[last])
            r_err.append(np.arccos(max(min(0.5 * (np.trace(e[:3, :3]) - 1), 1.0), -1.0)) / length)
            t_err.append(np.linalg.norm(e[:3, 3]) / length)
    got = kitti_odometry_errors(P, G, lengths=lengths, step=10)
    assert got["rpe_segments"] == len(t_err) > 0
    assert got["rpe_trans_pct"] == pytest.approx(100 * np.mean(t_err), rel=1e-9)
    assert got["rpe_rot_deg_per_100m"] == pytest.approx(np.degrees(np.mean(r_err)) * 100, rel=1e-9)


def test_pair_ranges_are_disjoint_and_merge_checks_exactly_once():
    for n in (0, 1, 7, 11):
        for world in (1, 2, 3, 5):
            ranges = split_pairs(n, world)
            assert len(ranges) == world and ranges[0][0] == 0 and ranges[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    eye = lambda k: np.stack([np.eye(4)] * k)  # noqa: E731
    parts = [MotionPart(sequence="09", start=3, motions_N44=eye(2)), MotionPart(sequence="09", start=0, motions_N44=eye(3))]
    assert merge_motions(parts, {"09": 5})["09"].shape == (5, 4, 4)
    with pytest.raises(ValueError, match="predicted more than once"):
        merge_motions([*parts, MotionPart(sequence="09", start=4, motions_N44=eye(1))], {"09": 5})
    with pytest.raises(ValueError, match="pairs 3..3 not predicted"):
        merge_motions([parts[1], MotionPart(sequence="09", start=4, motions_N44=eye(1))], {"09": 5})
    with pytest.raises(ValueError, match="5 frame pairs predicted but the sequence has 6"):
        merge_motions(parts, {"09": 6})


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    return [line for line in err if "error:" in line]


def test_bad_input_gives_one_clear_line(tmp_path, capsys):
    G = _curvy_poses(8)
    gt = _true_motions(G)
    txt, npy = tmp_path / "09.txt", tmp_path / "poses.npy"
    _write_poses_txt(txt, G)
    lines = txt.read_text().splitlines()
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join(lines[:2] + [" ".join(lines[2].split()[:11])] + lines[3:]) + "\n")
    np.save(npy, gt)
    argv = lambda pred, poses: ["eval-pose", "--predictions", str(pred), "--gt-poses", str(poses)]  # noqa: E731
    assert main(argv(npy, bad)) == 1
    (line,) = _error_line(capsys)
    assert str(bad) in line and "line 3 has 11 numbers, expected 12" in line
    nan_txt = tmp_path / "nan.txt"
    nan_line = lines[4].split()
    nan_line[3] = "nan"
    nan_txt.write_text("\n".join(lines[:4] + [" ".join(nan_line)] + lines[5:]) + "\n")
    assert main(argv(npy, nan_txt)) == 1
    (line,) = _error_line(capsys)
    assert str(nan_txt) in line and "line 5 has NaN" in line
    np.save(npy, gt[:-2])
    assert main(argv(npy, txt)) == 1
    (line,) = _error_line(capsys)
    assert str(npy) in line and "holds 5 motions" in line and "8 poses (expected 7 = frames - 1)" in line
    nan_pred = gt.copy()
    nan_pred[4, 0, 3] = np.nan
    np.save(npy, nan_pred)
    assert main(argv(npy, txt)) == 1
    (line,) = _error_line(capsys)
    assert str(npy) in line and "1 motions contain NaN or infinite values (first: entry 4)" in line
    np.save(npy, np.swapaxes(gt, 1, 2))
    assert main(argv(npy, txt)) == 1
    assert "not a rigid 4x4 transform" in _error_line(capsys)[0]
    np.save(npy, gt[:, :3, :3])
    assert main(argv(npy, txt)) == 1
    assert "expected (N, 4, 4) motions" in _error_line(capsys)[0]
    assert main(argv(tmp_path / "missing.npy", txt)) == 1
    assert "predictions file not found" in _error_line(capsys)[0]
    # usage errors: exit 2
    assert main(["eval-pose", "--predictions", str(npy)]) == 2
    assert "--predictions and --gt-poses go together" in _error_line(capsys)[0]
    assert main(["eval-pose", "--checkpoint", "ck", "--data", "d"]) == 2
    assert "--out" in _error_line(capsys)[0]
    assert main(["eval-pose", "--predictions", str(npy), "--gt-poses", str(txt), "--track-length", "1"]) == 2
    assert "track_length" in _error_line(capsys)[0]


def test_odometry_reader_errors_name_the_file(tmp_path):
    from pipeline.sources.kitti_odometry import load_odometry_sequence

    img = tmp_path / "sequences" / "09" / "image_2"
    img.mkdir(parents=True)
    for i in (0, 1, 2):
        (img / f"{i:06d}.png").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no ground-truth poses for sequence 09"):
        load_odometry_sequence(str(tmp_path), "09")
    (tmp_path / "poses").mkdir()
    _write_poses_txt(tmp_path / "poses" / "09.txt", _curvy_poses(2))
    with pytest.raises(ValueError, match=r"09.txt has 2 poses but .*image_2 has 3 frames"):
        load_odometry_sequence(str(tmp_path), "09")
    (img / "000001.png").unlink()
    with pytest.raises(ValueError, match="frame 1 missing"):
        load_odometry_sequence(str(tmp_path), "09")
    with pytest.raises(FileNotFoundError, match=r"sequence 10 not found \(sequences with image_2: 09\)"):
        load_odometry_sequence(str(tmp_path), "10")


# ------------------------------------------------------------------------------------------------------------------
# The synthetic world: a raw drive and the same drive in the KITTI odometry layout
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("poseworld")
    raw, odom = str(root / "raw"), str(root / "odom")
    rmdepth("synth", "kitti", raw, "--drives", "1", "--frames", str(NUM_FRAMES), "--size", "208x64", "--no-velodyne",
            "--quiet")
    rmdepth("synth", "kitti-odometry", odom, "--from", raw, "--quiet")
    ck = make_checkpoint(str(root / "ck" / "tiny" / "checkpoint_e000_s000000100"), step=100, seed=1)
    return {"raw": raw, "odom": odom, "checkpoint": ck}


def _truth_poses(raw, key):
    from pipeline.synth import load_truth

    drive = os.path.join(raw, "2011_09_26", DRIVE)
    if key == "rect0":
        with open(os.path.join(drive, "rmdepth_truth", "world.json")) as f:
            return np.array(json.load(f)["pose_rect0_to_world"])
    return np.stack([load_truth(os.path.join(drive, "rmdepth_truth", "image_02", f"{i:010d}.npz")).pose_cam_to_world
                     for i in range(NUM_FRAMES)])


def test_odometry_layout_from_the_synthetic_world(world):
    from pipeline.sources.calib import read_calib
    from pipeline.sources.kitti_odometry import load_odometry_sequence, read_poses

    seq_dir = os.path.join(world["odom"], "sequences", "09")
    assert sorted(os.listdir(os.path.join(seq_dir, "image_2")))[:2] == ["000000.png", "000001.png"]
    assert len(os.listdir(os.path.join(seq_dir, "image_3"))) == NUM_FRAMES
    with open(os.path.join(seq_dir, "image_2", "000005.png"), "rb") as a, \
         open(os.path.join(world["raw"], "2011_09_26", DRIVE, "image_02", "data", "0000000005.png"), "rb") as b:
        assert a.read() == b.read()
    cal = read_calib(os.path.join(seq_dir, "calib.txt"))
    assert {"P0", "P1", "P2", "P3", "Tr"} <= set(cal) and all(v.size == 12 for v in cal.values())
    rect0 = _truth_poses(world["raw"], "rect0")
    truth = np.linalg.inv(rect0[0])[None] @ rect0  # KITTI odometry: cam0 poses relative to the first frame
    poses = read_poses(os.path.join(world["odom"], "poses", "09.txt"))
    np.testing.assert_allclose(poses, truth, atol=1e-4)
    seq = load_odometry_sequence(world["odom"], "09")
    assert seq.num_frames == NUM_FRAMES and len(seq.times_s) == NUM_FRAMES and seq.times_s[1] == pytest.approx(0.1, abs=2e-3)


def test_ground_truth_and_zero_motion_on_the_synthetic_world(world, tmp_path):
    from pipeline.sources.kitti_odometry import load_raw_drive

    cam2 = _truth_poses(world["raw"], "cam2")
    truth_motions = _true_motions(cam2)
    # raw drive: camera 02 poses from oxts (pykitti) vs the renderer's own camera poses
    seq = load_raw_drive(world["raw"], DRIVE)
    score = score_sequence(seq.name, truth_motions, seq.poses_F44, protocol=PoseProtocol())
    assert score.model.metrics()["ate_mean"] < 1e-5
    # odometry layout through the CLI: the true image_2 motions against poses/09.txt (cam0): ATE ~0
    poses_txt = os.path.join(world["odom"], "poses", "09.txt")
    np.save(tmp_path / "poses.npy", truth_motions.astype(np.float32))
    out = tmp_path / "rep"
    rc = main(["eval-pose", "--predictions", str(tmp_path / "poses.npy"), "--gt-poses", poses_txt, "--json",
               str(tmp_path / "m.json"), "--out", str(out)])
    assert rc == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["ate_mean"] < 1e-3 and m["num_snippets"] == NUM_FRAMES - 1
    # zero motion: the ATE of a standing camera, from the truth
    xyz = (np.linalg.inv(cam2[0])[None] @ cam2)[:, :3, 3]
    standing = []
    for i in range(NUM_FRAMES - 1):
        pts = xyz[i : i + 5] - xyz[i]  # a snippet's true points relative to its first (camera rotation ~0 here)
        standing.append(np.sqrt(np.sum(pts**2)) / len(pts))
    np.save(tmp_path / "zero.npy", np.stack([np.eye(4)] * (NUM_FRAMES - 1)))
    rc = main(["eval-pose", "--predictions", str(tmp_path / "zero.npy"), "--gt-poses", poses_txt, "--json",
               str(tmp_path / "z.json")])
    assert rc == 0
    z = json.loads((tmp_path / "z.json").read_text())
    assert z["ate_mean"] == pytest.approx(np.mean(standing), rel=1e-2)
    assert z["ate_mean"] == pytest.approx(m["zero_motion_ate_mean"], rel=1e-9)
    assert {"metrics.json", "per_snippet.parquet", "trajectory.png", "report.md", "report.html"} <= set(os.listdir(out))


def _check_outputs(summary, snippets, names):
    assert set(summary["sequences"]) == set(names)
    for name in names:
        s = summary["sequences"][name]
        assert s["num_frames"] == NUM_FRAMES and s["metrics"]["num_snippets"] == NUM_FRAMES - 1
        assert s["metrics"]["ate_mean"] >= 0 and s["baseline"]["ate_mean"] > 0
    assert len(snippets) == len(names) * (NUM_FRAMES - 1)
    assert sorted((r["sequence"], r["start_frame"]) for r in snippets) == sorted(
        (n, i) for n in names for i in range(NUM_FRAMES - 1))  # every snippet counted once
    assert summary["metrics"]["ate_mean"] == pytest.approx(np.mean([r["ate"] for r in snippets]))


def test_checkpoint_on_odometry_and_raw_layouts_in_process(world, tmp_path):
    out = tmp_path / "odo"
    rc = main(["eval-pose", "--checkpoint", world["checkpoint"], "--data", world["odom"], "--sequences", "09",
               "--out", str(out), "--num-workers", "0", "--batch-size", "4", "--json", str(tmp_path / "m.json"),
               "--rpe-lengths", "2,5", "--rpe-step", "1"])
    assert rc == 0
    summary = json.loads((out / "metrics.json").read_text())
    snippets = pq.read_table(out / "per_snippet.parquet").to_pylist()
    _check_outputs(summary, snippets, ["09"])
    assert summary["checkpoint"]["step"] == 100 and summary["layout"] == "kitti-odometry"
    assert summary["metrics"]["rpe_segments"] > 0 and summary["protocol"]["track_length"] == 5
    md = (out / "report.md").read_text()
    assert "trajectory.png" in md and "zero motion (baseline)" in md and "<table>" in (out / "report.html").read_text()
    # the written predictions are monodepth2's poses.npy: fed back as external predictions they give the same ATE
    poses = np.load(out / "poses_09.npy")
    assert poses.shape == (NUM_FRAMES - 1, 4, 4) and poses.dtype == np.float32
    rc = main(["eval-pose", "--predictions", str(out / "poses_09.npy"), "--gt-poses",
               os.path.join(world["odom"], "poses", "09.txt"), "--json", str(tmp_path / "ext.json")])
    assert rc == 0
    ext = json.loads((tmp_path / "ext.json").read_text())
    assert ext["ate_mean"] == pytest.approx(summary["metrics"]["ate_mean"], rel=1e-9)
    # raw layout (oxts ground truth), default: every drive
    out = tmp_path / "raw"
    rc = main(["eval-pose", "--checkpoint", world["checkpoint"], "--data", world["raw"], "--out", str(out),
               "--num-workers", "0"])
    assert rc == 0
    summary = json.loads((out / "metrics.json").read_text())
    name = f"2011_09_26/{DRIVE}"
    _check_outputs(summary, pq.read_table(out / "per_snippet.parquet").to_pylist(), [name])
    assert summary["layout"] == "kitti-raw" and "oxts" in summary["sequences"][name]["gt_source"]
    assert summary["metrics"]["rpe_segments"] == 0 and summary["metrics"]["rpe_trans_pct"] is None  # < 100 m
    raw_motions = np.load(out / f"poses_2011_09_26_{DRIVE}.npy")
    np.testing.assert_allclose(raw_motions, poses, atol=1e-6)  # same image_02 frames, same predictions


@pytest.mark.ray
def test_two_ray_workers_equal_in_process(world, ray_local):
    from jobs.pose_runner import predict_sequences
    from pipeline.sources.kitti_odometry import load_odometry_sequence, load_raw_drive

    seqs = [load_odometry_sequence(world["odom"], "09"), load_raw_drive(world["raw"], DRIVE)]
    local = predict_sequences(checkpoint=world["checkpoint"], sequences=seqs, num_workers=0, batch_size=3)
    dist = predict_sequences(checkpoint=world["checkpoint"], sequences=seqs, num_workers=2, batch_size=3)
    assert dist.num_tasks == 2 and set(dist.motions) == {s.name for s in seqs}
    for s in seqs:
        assert dist.motions[s.name].shape == (NUM_FRAMES - 1, 4, 4)
        np.testing.assert_allclose(dist.motions[s.name], local.motions[s.name], atol=1e-5)


@pytest.mark.s3
def test_checkpoint_path_through_s3(world, s3_bucket):
    from pipeline import storage

    odom = f"{s3_bucket}/odometry"
    rmdepth("synth", "kitti-odometry", odom, "--from", world["raw"], "--quiet")
    ck = f"{s3_bucket}/runs/tiny/checkpoint_e000_s000000100"
    for name in os.listdir(world["checkpoint"]):
        storage.put_file(os.path.join(world["checkpoint"], name), f"{ck}/{name}")
    out = f"{s3_bucket}/eval-pose/tiny"
    rc = main(["eval-pose", "--checkpoint", ck, "--data", odom, "--sequences", "09", "--out", out,
               "--num-workers", "0", "--json", f"{out}/m.json"])
    assert rc == 0
    assert {"metrics.json", "per_snippet.parquet", "poses_09.npy", "trajectory.png", "report.md", "report.html",
            "m.json"} <= set(storage.listdir(out))
    summary = json.loads(storage.read_text(f"{out}/metrics.json"))
    snippets = pq.read_table(io.BytesIO(storage.read_bytes(f"{out}/per_snippet.parquet"))).to_pylist()
    _check_outputs(summary, snippets, ["09"])
    assert summary["checkpoint"]["url"] == ck
    assert json.loads(storage.read_text(f"{out}/m.json"))["ate_mean"] == pytest.approx(summary["metrics"]["ate_mean"])
