"""Depth/motion networks and the training step: parameter count, ablations, gradients, DDP, batch independence."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from model.config import DepthNetConfig, LossConfig, MotionNetConfig
from model.depth_net import DepthNet, num_parameters
from model.geometry import invert_pose
from model.nets import RMDepthNets, build_nets, predict_depth, predict_ego_motion
from model.train_step import StepOutput, forward_loss, train_step, visuals
from tests.model import scene

H, W = 32, 96
PAPER_PARAMS = 2.97e6


def _batch(batch_size: int = 2, seed: int = 0, height: int = H) -> SimpleNamespace:
    g = torch.Generator().manual_seed(seed)
    frames = torch.rand(batch_size, 3, 3, height, W, generator=g)
    K = scene.intrinsics(height, W).float().expand(batch_size, 3, 3).clone()
    return SimpleNamespace(frames_aug_BSCHW=frames, frames_BSCHW=frames, K_B33=K)


def test_default_depth_net_has_the_papers_parameter_count():
    count = num_parameters(DepthNet(DepthNetConfig()))
    print(f"depth net parameters: {count:,}")
    assert abs(count / PAPER_PARAMS - 1) < 0.03, count


@pytest.mark.parametrize(
    "depth_kw, motion_kw, loss_kw",
    [
        ({}, {}, {}),
        ({"rmu_steps": (1, 1, 1)}, {}, {}),
        ({"rmu_steps": (2, 2, 2)}, {}, {}),
        ({"rmu_steps": (4, 2, 2)}, {}, {}),
        ({"use_modulation": False}, {}, {}),
        ({"use_rmu": False}, {}, {}),
        ({"use_residual_upsampling": False}, {}, {}),
        ({"norm": "group"}, {"norm": "group"}, {}),
        ({"norm": "none"}, {}, {}),
        ({}, {"use_warping": False}, {}),
        ({}, {"field_trains_encoder": False}, {}),
        ({}, {"use_object_motion": False}, {}),
        ({}, {}, {"motion_regularizer": "li_sparsity"}),
        ({}, {}, {"motion_regularizer": "none", "use_automask": False, "use_min_reprojection": False}),
        ({}, {}, {"num_scales": 1, "ssim_weight": 0.0}),
        ({}, {}, {"scale_resolution": "native"}),
        ({}, {}, {"mask_out_of_view": False}),
        ({"arch": "resnet18"}, {}, {}),
        ({"init_depth": 10.0}, {"translation_scale": 1.0}, {"velocity_weight": 0.05}),
    ],
)
def test_ablations_build_train_and_every_parameter_gets_a_gradient(depth_kw, motion_kw, loss_kw):
    torch.manual_seed(0)
    nets = build_nets(DepthNetConfig(**depth_kw), MotionNetConfig(**motion_kw))
    cfg = LossConfig(motion_burnin_start=0, motion_burnin_end=0, **loss_kw)
    # reflection padding at 1/32 resolution needs >= 2 rows there: 64-row frames for the ResNet18 net
    out = forward_loss(nets, _batch(height=64 if depth_kw.get("arch") == "resnet18" else H), cfg, step=0)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    missing = [n for n, p in nets.named_parameters() if p.grad is None]
    assert not missing, missing  # DDP without find_unused_parameters needs every parameter in the graph


def test_ablations_change_the_parameter_count_as_expected():
    full = num_parameters(DepthNet(DepthNetConfig()))
    steps = num_parameters(DepthNet(DepthNetConfig(rmu_steps=(1, 1, 1))))
    no_mod = num_parameters(DepthNet(DepthNetConfig(use_modulation=False)))
    no_res = num_parameters(DepthNet(DepthNetConfig(use_residual_upsampling=False)))
    assert steps == full  # weights are shared across the recurrent steps
    assert no_mod < full and no_res < full


def test_step_output_contract_and_burn_in():
    torch.manual_seed(0)
    nets = build_nets(DepthNetConfig(), MotionNetConfig())
    cfg = LossConfig(motion_burnin_start=5, motion_burnin_end=10)
    # give the (zero-initialised) motion heads weights so that a non-zero field can appear
    for level in nets.motion.object_levels:
        torch.nn.init.normal_(level.out.weight, std=0.01)
    early = forward_loss(nets, _batch(), cfg, step=0)
    assert isinstance(early, StepOutput)
    # no object-motion work while its scale is zero: the field is not computed at all
    assert early.outputs.motion_B3HW is None
    early.loss.backward()
    assert all(p.grad is None for p in nets.motion.object_levels.parameters())
    pics = visuals(early.outputs, _batch().K_B33)
    assert pics.depth_B1HW.shape == (2, 1, H, W) and not pics.depth_B1HW.requires_grad
    assert pics.motion_field_B3HW.shape == (2, 3, H, W) and pics.motion_field_B3HW.abs().max() == 0
    assert pics.flow_B2HW.shape == (2, 2, H, W) and pics.moving_mask_B1HW.shape == (2, 1, H, W)
    assert early.logs["motion_scale"] == 0.0 and early.logs["motion_reg"] == 0.0
    for key in ("photometric", "smoothness", "motion_reg", "automask_fraction", "loss", "pose_forward",
                "pose_spread", "depth_floor_fraction", "depth_ceiling_fraction"):
        assert isinstance(early.logs[key], float)
    late = forward_loss(nets, _batch(), cfg, step=10)
    assert late.logs["motion_scale"] == 1.0
    assert late.outputs.motion_B3HW.abs().max() > 0 and late.logs["motion_reg"] > 0
    depth = early.outputs.depth_B1HW
    assert depth.min() >= 0.1 - 1e-4 and depth.max() <= 100.0 + 1e-3


def test_burn_in_as_a_fraction_of_the_run():
    cfg = LossConfig(motion_burnin_start=0.25, motion_burnin_end=0.5, motion_burnin_unit="fraction")
    assert [cfg.motion_scale(s, total_steps=400) for s in (0, 99, 100, 150, 200, 399)] == [0, 0, 0, 0.5, 1, 1]
    with pytest.raises(ValueError, match="total number of steps"):
        cfg.motion_scale(10)
    with pytest.raises(ValueError, match="fractions"):
        LossConfig(motion_burnin_start=0.5, motion_burnin_end=2, motion_burnin_unit="fraction")


@pytest.mark.parametrize("use_warping", [True, False])
def test_field_trains_encoder_decides_whether_the_field_reaches_the_shared_encoder(use_warping):
    """The field's gradient reaches the shared encoder only with field_trains_encoder; the field levels learn either
    way, and the pose path's gradient into the encoder is the same in both."""
    def grads(trains: bool, of: str) -> dict[str, torch.Tensor | None]:
        torch.manual_seed(0)
        net = build_nets(DepthNetConfig(), MotionNetConfig(field_trains_encoder=trains, use_warping=use_warping)).motion
        a, b = _batch().frames_BSCHW[:, 0], _batch(seed=1).frames_BSCHW[:, 0]
        depth = torch.full((a.shape[0], 1, H, W), 10.0)
        K = scene.intrinsics(H, W).float().expand(a.shape[0], 3, 3)
        T = net.pose(a, b)
        for level in net.object_levels:  # zero-initialised outputs: give the field levels something to pass on
            torch.nn.init.normal_(level.out.weight, std=0.1)
        field = net.object_motion(a, b, depth, K, T)
        (T[:, :3, 3].sum() if of == "pose" else field.square().sum()).backward()
        return {n: p.grad for n, p in net.named_parameters()}

    on, off = grads(True, "field"), grads(False, "field")
    encoder = [n for n in on if n.startswith("encoder.")]
    assert all(on[n] is not None and on[n].abs().sum() > 0 for n in encoder)
    assert all(off[n] is None for n in encoder)
    levels = [n for n in on if n.startswith("object_levels.")]
    assert levels and all(off[n] is not None and off[n].abs().sum() > 0 for n in levels)
    pose_on, pose_off = grads(True, "pose"), grads(False, "pose")
    assert all(torch.equal(pose_on[n], pose_off[n]) for n in encoder)


def test_pose_pairs_are_fed_in_time_order_and_the_previous_frame_is_inverted():
    torch.manual_seed(0)
    nets = build_nets(DepthNetConfig(), MotionNetConfig(use_object_motion=False)).eval()
    batch = _batch(batch_size=3)
    with torch.no_grad():
        out = nets(batch.frames_aug_BSCHW, batch.K_B33)
    prev, target, nxt = batch.frames_aug_BSCHW.unbind(1)
    assert torch.allclose(out.T_B44[:3], invert_pose(predict_ego_motion(nets, prev, target)), atol=1e-5)
    assert torch.allclose(out.T_B44[3:], predict_ego_motion(nets, target, nxt), atol=1e-5)


@pytest.mark.parametrize("prior", [0.0, 1.0])
def test_pose_output_depends_on_the_input_at_initialisation(prior):
    """The collapse the learning notes found: the old pose path's output varied across inputs by 3e-5 against
    0.05 from its biases, and its last weights got 100x less gradient than their bias. With normalisation and
    signal-preserving init the input must matter; the forward-motion prior adds a bias of `prior` metres."""
    torch.manual_seed(0)
    motion = build_nets(DepthNetConfig(), MotionNetConfig(init_forward_motion=prior)).motion.train()
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(8, 3, H, W, generator=g), torch.rand(8, 3, H, W, generator=g)
    T = motion.pose(a, b)
    t_N3 = T[:, :3, 3]
    spread = float(t_N3.std(dim=0).norm())
    assert spread > 0.05, spread
    if prior:
        assert t_N3[:, 2].mean() < -0.8 * prior  # forward: points of the earlier frame come closer
        assert spread < 0.5 * prior
    (t_N3.sum() + T[:, :3, :3].sum()).backward()
    last = motion.pose_decoder.convs[-1]
    assert last.weight.grad.norm() > 0.5 * last.bias.grad.norm()


def test_velocity_loss_uses_only_samples_with_a_true_motion():
    torch.manual_seed(0)
    nets = build_nets(DepthNetConfig(), MotionNetConfig(use_object_motion=False))
    cfg = LossConfig(velocity_weight=1.0)
    batch = _batch()
    unknown = SimpleNamespace(**vars(batch), gt_T_BS44=torch.full((2, 3, 4, 4), float("nan")))
    assert forward_loss(nets, unknown, cfg, step=0).logs["velocity"] == 0.0
    T = torch.eye(4).repeat(2, 3, 1, 1)
    T[:, 0, 2, 3], T[:, 2, 2, 3] = 1.0, -1.0  # 1 m forward motion a frame
    known = SimpleNamespace(**vars(batch), gt_T_BS44=T)
    out = forward_loss(nets, known, cfg, step=0)
    pred_len = out.outputs.T_B44[:, :3, 3].norm(dim=1)
    assert out.logs["velocity"] == pytest.approx(float((pred_len - 1.0).abs().mean()), rel=1e-5)
    assert "pose_cosine" in out.logs and "pose_length_ratio" in out.logs


def test_train_step_updates_the_weights():
    torch.manual_seed(0)
    nets = build_nets(DepthNetConfig(), MotionNetConfig(use_object_motion=False))
    before = [p.detach().clone() for p in nets.parameters()]
    opt = torch.optim.Adam(nets.parameters(), lr=1e-3)
    out = train_step(nets, opt, _batch(), LossConfig(), step=0, grad_clip_norm=1.0)
    assert "grad_norm" in out.logs
    assert sum(not torch.equal(a, b) for a, b in zip(before, nets.parameters())) > 0.9 * len(before)


def test_bf16_mixed_precision_keeps_outputs_geometry_and_loss_in_float32():
    """train.precision=bf16: the convolutions run in bfloat16 (autocast), the outputs, pose matrices, field and
    loss stay float32, the loss is close to the float32 one, and every parameter gets a float32 gradient."""
    torch.manual_seed(0)
    nets = build_nets(DepthNetConfig(), MotionNetConfig())
    for level in nets.motion.object_levels:
        torch.nn.init.normal_(level.out.weight, std=0.01)
    cfg = LossConfig(motion_burnin_start=0, motion_burnin_end=0)
    ref = forward_loss(nets, _batch(), cfg, step=0)
    mixed = forward_loss(nets, _batch(), cfg, step=0, compute_dtype=torch.bfloat16)
    o = mixed.outputs
    assert all(d.dtype == torch.float32 for d in o.disps)
    assert o.depth_B1HW.dtype == o.T_B44.dtype == o.motion_B3HW.dtype == mixed.loss.dtype == torch.float32
    ref_loss, mixed_loss = float(ref.loss.detach()), float(mixed.loss.detach())
    assert mixed_loss == pytest.approx(ref_loss, rel=0.05)
    assert mixed_loss != ref_loss  # the convolutions did run in bfloat16
    # the pose is a rigid motion to float32 accuracy, not a bfloat16-rounded matrix
    R = o.T_B44[:, :3, :3]
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand_as(R), atol=1e-5)
    mixed.loss.backward()
    grads = [p.grad for p in nets.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_eval_depth_is_independent_of_batch_size_and_any_input_size_works():
    torch.manual_seed(0)
    net = DepthNet(DepthNetConfig()).eval()
    images = torch.rand(3, 3, H, W)
    together = predict_depth(net, images)
    for i in range(3):
        assert torch.allclose(
            predict_depth(net, images[i : i + 1]), together[i : i + 1], rtol=1e-4, atol=1e-5
        )
    assert predict_depth(net, torch.rand(1, 3, 50, 70)).shape == (1, 1, 50, 70)
    nets = build_nets(DepthNetConfig(), MotionNetConfig()).eval()
    assert predict_depth(nets, images).shape == (3, 1, H, W)


def test_train_step_under_ddp_matches_the_plain_module(tmp_path):
    torch.manual_seed(0)
    nets = build_nets(DepthNetConfig(norm="group"), MotionNetConfig())
    reference = build_nets(DepthNetConfig(norm="group"), MotionNetConfig())
    reference.load_state_dict(nets.state_dict())
    cfg = LossConfig(motion_burnin_start=0, motion_burnin_end=0)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        ddp = DistributedDataParallel(nets)
        torch.manual_seed(1)
        out = forward_loss(ddp, _batch(), cfg, step=0)
        out.loss.backward()
    finally:
        dist.destroy_process_group()
    torch.manual_seed(1)
    ref = forward_loss(reference, _batch(), cfg, step=0)
    ref.loss.backward()
    assert torch.allclose(out.loss, ref.loss)
    for (name, p), q in zip(nets.named_parameters(), reference.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name


def test_config_validation():
    with pytest.raises(ValueError, match="rmu_steps"):
        DepthNetConfig(rmu_steps=(9, 2))
    with pytest.raises(ValueError, match="rmu_steps"):
        DepthNetConfig(rmu_steps=(0, 2, 2))
    with pytest.raises(ValueError, match="norm"):
        DepthNetConfig(norm="layer")
    with pytest.raises(ValueError, match="min_depth"):
        DepthNetConfig(min_depth=10.0, max_depth=1.0)
    with pytest.raises(ValueError, match="encoder_channels"):
        MotionNetConfig(encoder_channels=(16, 32))
    with pytest.raises(TypeError):
        DepthNetConfig((9, 2, 2))  # keyword-only
    cfg = DepthNetConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.norm = "none"  # type: ignore[misc]


def test_nets_module_holds_both_networks():
    nets = build_nets(DepthNetConfig(), MotionNetConfig())
    assert isinstance(nets, RMDepthNets)
    keys = nets.state_dict().keys()
    assert any(k.startswith("depth.") for k in keys) and any(k.startswith("motion.") for k in keys)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_train_step_runs_on_the_gpu_with_device_taken_from_the_inputs():
    nets = build_nets(DepthNetConfig(), MotionNetConfig()).cuda()
    cpu_batch = _batch()
    batch = SimpleNamespace(**{k: v.cuda() for k, v in vars(cpu_batch).items()})
    out = forward_loss(nets, batch, LossConfig(motion_burnin_start=0, motion_burnin_end=0), step=0)
    out.loss.backward()
    pics = visuals(out.outputs, batch.K_B33)
    assert pics.depth_B1HW.is_cuda and pics.flow_B2HW.is_cuda and torch.isfinite(out.loss)


def test_rmu_matches_the_concat_form_of_its_equations():
    """RMU splits conv_a(cat[F, h]) for speed; check it against eqs. 4a-5b written literally."""
    from model.layers import RMU

    torch.manual_seed(0)
    rmu = RMU(8, 8, steps=3)
    feat, h = torch.randn(2, 8, 6, 7), torch.randn(2, 8, 6, 7)
    expected = h
    for _ in range(3):
        w, b = rmu.conv_a(torch.cat([feat, expected], dim=1)).chunk(2, dim=1)
        f_prime = torch.tanh(rmu.conv_b(w * feat + b))
        z = torch.sigmoid(rmu.conv_c(torch.cat([expected, f_prime], dim=1)))
        expected = (1 - z) * expected + z * f_prime
    assert torch.allclose(rmu(feat, h), expected, atol=1e-5)
