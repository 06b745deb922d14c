"""Synthetic street worlds written in the exact KITTI-raw and Cityscapes file formats, with exact ground truth.

A world (pipeline.synth.world) is a textured street: road with lane markings, sidewalks, building blocks with
window grids, poles/bins/kiosks, parked cars and independently moving cars (one ahead in the ego lane moving with
the camera, same-direction and oncoming ones). It is ray cast in NumPy (pipeline.synth.render). Output is a pure
function of the config (seed included).

KITTI (`write_kitti(out, KittiSynthConfig)`, `rmdepth synth kitti OUT`):
  <date>/calib_cam_to_cam.txt, calib_velo_to_cam.txt, calib_imu_to_velo.txt    real field names and formats
  <date>/<date>_drive_NNNN_sync/image_02|image_03/data/%010d.png + timestamps.txt
  <date>/<date>_drive_NNNN_sync/velodyne_points/data/%010d.bin (float32 N x 4: x fwd, y left, z up, reflectance;
                                 the front half (x > 0) of a 64-beam scan, +2..-24.8 deg, range <= 120 m)
                                 + timestamps.txt, timestamps_start.txt, timestamps_end.txt
  <date>/<date>_drive_NNNN_sync/oxts/data/%010d.txt (30 values, vf = true forward speed), dataformat.txt,
                                 timestamps.txt
  truth: <date>/<date>_drive_NNNN_sync/rmdepth_truth/image_02|image_03/%010d.npz and rmdepth_truth/world.json
  Calibration: the real 2011_09_26 rotations (R_rect_00, velo-to-cam, imu-to-velo, re-orthonormalised); K = the
  real P_rect_02 intrinsics scaled to the rendered size (pipeline.intrinsics.resize_K); S_rect_xx = the rendered
  size; P_rect_02[0,3] = 0.06 fx, P_rect_03[0,3] = -0.48 fx (0.54 m baseline). Images are the rectified views.
  Velodyne points project onto image_02 pixels with P_rect_02 @ R_rect_00 @ Tr_velo_to_cam at round(u), round(v)
  (pixel centres at integers); monodepth2's extra `- 1` ("to match KITTI matlab") shifts them by one pixel, as
  it does on the real data. Each drive is its own world, seeded by (seed, drive number): drives rendered in
  separate calls (e.g. in parallel, with first_drive/num_drives) are byte-identical to one call. A drive may stand
  still for a while (WorldConfig.stop_fraction), giving static frames with oxts vf = 0.
Cityscapes (`write_cityscapes(out, CityscapesSynthConfig)`, `rmdepth synth cityscapes OUT`):
  leftImg8bit_sequence/<split>/<city>/<city>_<seq:06d>_<frame:06d>_leftImg8bit.png   every frame of each snippet;
      frame numbers are contiguous within a snippet and start at a per-snippet offset; the annotated frame is
      index 19 of the snippet (frame number = first + 19; the last frame if a snippet has fewer than 20)
  leftImg8bit/<split>/<city>/<name>_leftImg8bit.png, camera/<split>/<city>/<name>_camera.json,
  disparity/<split>/<city>/<name>_disparity.png (uint16, d = (p - 1) / 256, p = 0 invalid, depth = B fx / d)
      for the annotated frame only; camera.json intrinsics are those of the rendered size
  truth: rmdepth_truth/<split>/<city>/<name>_truth.npz for every frame, <city>_<seq:06d>_world.json per snippet

Faults for reader tests (KittiSynthConfig/CityscapesSynthConfig.faults, `--fault`): see pipeline.synth.faults.

Truth .npz keys (`load_truth(path)` -> Truth; `truth_path(image_path)` finds it):
  depth   float32 HxW  camera z in metres (exact, per pixel centre); sky = SKY_DEPTH (1000.0, finite)
  moving  bool HxW     pixels of independently moving cars
  instance int32 HxW   0 = road/sidewalk/sky (and hood), j + 1 = object j: the "instance" value of its boxes
                       in world.json (a car is two boxes, body and cabin; look speeds up by this value as is)
  sky     bool HxW
  hood    bool HxW     Cityscapes only: the ego car's hood (its depth is the hood's own, 1.0..2.2 m)
  pose_cam_to_world float64 4x4: camera (x right, y down, z forward) to world (X right, Y down, road plane Y = 0,
          Z along the street); relative pose of frames a, b: inv(pose_b) @ pose_a maps camera a to camera b
  K       float64 3x3 intrinsics of the rendered image (pixel centres at integers)
  time_s  float64 seconds since the snippet's/drive's first frame
"""

from pipeline.synth.cityscapes import write_cityscapes
from pipeline.synth.config import CityscapesSynthConfig, KittiSynthConfig, WorldConfig
from pipeline.synth.kitti import write_kitti
from pipeline.synth.render import SKY_DEPTH
from pipeline.synth.truth import Truth, load_truth, truth_path

__all__ = [
    "SKY_DEPTH",
    "CityscapesSynthConfig",
    "KittiSynthConfig",
    "Truth",
    "WorldConfig",
    "load_truth",
    "truth_path",
    "write_cityscapes",
    "write_kitti",
]
