"""`rmdepth predict` on an image folder and a short video (PyAV), and `rmdepth export-onnx` with its onnxruntime
parity check, on a real (freshly initialised) checkpoint."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from jobs.cli import main


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    from tests.eval.helpers import make_checkpoint

    return make_checkpoint(str(tmp_path_factory.mktemp("pc") / "run" / "checkpoint_e000_s000000001"), step=1)


def _write_video(path: str, frames: int, w: int = 96, h: int = 64) -> None:
    import av

    with av.open(path, "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            img = np.zeros((h, w, 3), np.uint8)
            img[:, : (i + 1) * 10] = (200, 80, 30)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_predict_folder_and_video(tmp_path, small_checkpoint):
    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (50, 120, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 255, (64, 100, 3), dtype=np.uint8)).save(folder / "sub" / "b.jpg")
    video = str(tmp_path / "clip.mp4")
    _write_video(video, frames=5)
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", small_checkpoint, str(folder), video, "--out", str(out), "--every", "2"])
    assert rc == 0
    a = np.load(out / "imgs" / "a_depth.npy")
    assert a.shape == (50, 120) and a.dtype == np.float32 and np.all((a >= 0.1 - 1e-4) & (a <= 100 + 1e-3))
    assert np.load(out / "imgs" / "sub" / "b_depth.npy").shape == (64, 100)
    png = np.asarray(Image.open(out / "imgs" / "a_depth.png"))
    assert png.shape == (50, 120, 3)
    frames = sorted(f for f in os.listdir(out / "clip") if f.endswith(".npy"))
    assert frames == ["frame_000000_depth.npy", "frame_000002_depth.npy", "frame_000004_depth.npy"]
    assert np.load(out / "clip" / frames[0]).shape == (64, 96)


def test_predict_reports_corrupt_inputs(tmp_path, small_checkpoint, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.full((40, 80, 3), 100, np.uint8)).save(folder / "good.png")
    (folder / "bad.jpg").write_bytes(b"not a jpeg")
    rc = main(["predict", "--checkpoint", small_checkpoint, str(folder), "--out", str(tmp_path / "out")])
    assert rc == 1
    assert "bad.jpg" in capsys.readouterr().err
    assert (tmp_path / "out" / "imgs" / "good_depth.png").exists()


def test_export_onnx_parity(tmp_path, small_checkpoint, capsys):
    out = tmp_path / "m.onnx"
    rc = main(["export-onnx", "--checkpoint", small_checkpoint, "--out", str(out), "--exporter", "torchscript"])
    assert rc == 0 and out.stat().st_size > 0
    text = capsys.readouterr().out
    assert "max abs diff" in text
    import onnxruntime as ort
    import torch

    from engine.checkpoint import load_inference_model
    from model.nets import predict_depth

    net, cfg, _ = load_inference_model(small_checkpoint)
    x = torch.rand(3, 3, cfg.loader.height, cfg.loader.width)
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})[0]
    np.testing.assert_allclose(got, predict_depth(net, x).numpy(), atol=1e-3)
    # an impossible tolerance fails, and then no file is written
    rc = main(["export-onnx", "--checkpoint", small_checkpoint, "--out", str(tmp_path / "x.onnx"),
               "--exporter", "torchscript", "--tolerance", "1e-30"])
    assert rc == 1 and not (tmp_path / "x.onnx").exists()


@pytest.mark.slow
def test_export_onnx_dynamo_exporter(tmp_path, small_checkpoint):
    out = tmp_path / "d.onnx"
    assert main(["export-onnx", "--checkpoint", small_checkpoint, "--out", str(out), "--output", "disparity"]) == 0
    assert out.stat().st_size > 0


def test_flip_post_processing_wiring(small_checkpoint):
    import torch

    from engine.checkpoint import load_inference_model
    from engine.evaluate import post_process_disparity, predict_disparity
    from model.nets import predict_depth

    net, cfg, _ = load_inference_model(small_checkpoint)
    x = torch.rand(2, 3, cfg.loader.height, cfg.loader.width)
    plain = predict_disparity(net, x, use_post_process=False)
    assert torch.allclose(plain, 1.0 / predict_depth(net, x)[:, 0])
    flipped = 1.0 / predict_depth(net, x.flip(-1))[:, 0]
    pp = predict_disparity(net, x, use_post_process=True)
    assert torch.allclose(pp, post_process_disparity(plain, flipped.flip(-1)), atol=1e-6)
    # near the left border the flipped prediction is used, near the right border the plain one
    assert torch.allclose(pp[..., 0], flipped.flip(-1)[..., 0], atol=1e-6)
    assert torch.allclose(pp[..., -1], plain[..., -1], atol=1e-6)
