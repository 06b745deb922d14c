"""DALI on a GPU (device="mixed" decode, everything after on the GPU) against the CPU graph. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch

from pipeline.loader import AugmentConfig, LoaderConfig, build_eval_loader, build_train_loader

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _cfg(device: str) -> LoaderConfig:
    aug = AugmentConfig(flip_prob=0.5, color_prob=1.0, scale_crop_prob=1.0)
    return LoaderConfig(loader="dali", device=device, width=96, height=40, batch_size=4, augment=aug)


def test_gpu_graph_matches_cpu_graph(train_set, eval_set):
    gpu = list(build_train_loader(train_set, _cfg("gpu"), device_id=0).epoch_iterator(1))
    cpu = list(build_train_loader(train_set, _cfg("cpu")).epoch_iterator(1))
    assert [b.keys for b in gpu] == [b.keys for b in cpu]
    for g, c in zip(gpu, cpu):
        assert g.frames_BSCHW.is_cuda and g.K_B33.is_cuda
        assert torch.equal(g.K_B33.cpu(), c.K_B33)
        for name in ("frames_BSCHW", "frames_aug_BSCHW"):  # nvJPEG vs libjpeg-turbo decode: small differences
            assert (getattr(g, name).cpu() - getattr(c, name)).abs().mean() < 2 / 255
    ev_gpu = list(build_eval_loader(eval_set, _cfg("gpu"), device_id=0))
    ev_cpu = list(build_eval_loader(eval_set, _cfg("cpu")))
    assert [b.keys for b in ev_gpu] == [b.keys for b in ev_cpu]
    assert all((a.image_B3HW.cpu() - b.image_B3HW).abs().mean() < 2 / 255 for a, b in zip(ev_gpu, ev_cpu))
