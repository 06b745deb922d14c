"""DALI graphs (pipeline mode): read -> decode -> ROI resize -> flip -> colour twist, the same on CPU and GPU.

Shape legend: S frames of a triplet (prev, tgt, next), C=3, H, W training size; per-sample outputs (no batch dim).

The @pipeline_def functions take data-only arguments; batch_size, num_threads, device_id, seed and
prefetch_queue_depth are given by the caller. `decode_device` is "mixed" (nvJPEG, everything after runs on the GPU)
or "cpu" (with device_id=None). Augmentation parameters come from `params_source` through external_source, one row
per sample (see `augment.py`), so the graph has no random operators of its own. Conditionals skip the work that is
an identity for a sample (no resample when the ROI is the whole frame at the training size; no colour twist when
colour jitter was not drawn): identical output, less CPU time on the CPU backend.

Train outputs: frames_aug_SCHW uint8 (colour-twisted), frames_SCHW uint8 (same geometry, no colour), k float32 (9,),
meta uint8 (meta.json bytes, zero-padded to the longest in the batch), shape int64 (H0, W0, C) of the stored tgt.jpg,
and the geometric parameters as applied (flip int32, roi_start / roi_end float32 (y, x) relative), from which the
loader computes the intrinsics.
Eval outputs: image_CHW uint8, k, meta, gt uint8 (gt.npy bytes, zero-padded), shape.
"""

from __future__ import annotations

from nvidia.dali import fn, pipeline_def, types

from pipeline.loader.shardset import EVAL_COMPONENTS, TRAIN_COMPONENTS

READER_NAME = "Reader"
TRAIN_OUTPUTS = ("frames_aug", "frames", "k", "meta", "shape", "flip", "roi_start", "roi_end")
EVAL_OUTPUTS = ("image", "k", "meta", "gt", "shape")


def _resize(img, height, width, roi_start=None, roi_end=None):
    kw = {} if roi_start is None else {"roi_start": roi_start, "roi_end": roi_end, "roi_relative": True}
    return fn.resize(img, size=[height, width], interp_type=types.INTERP_LINEAR, antialias=True, **kw)


def _resize_unless(keep, img, height, width, roi_start, roi_end):
    """Skip resampling where the ROI is the whole frame and the frame already has the training size."""
    if keep:
        out = img
    else:
        out = _resize(img, height, width, roi_start, roi_end)
    return out


def _twist_if(color_on, img, bri, con, sat, hue):
    """Colour jitter only where it was drawn (probability color_prob): the identity twist still costs CPU time."""
    if color_on:
        out = fn.color_twist(img, brightness=bri, contrast=con, saturation=sat, hue=hue)
    else:
        out = img
    return out


@pipeline_def(enable_conditionals=True)
def triplet_pipeline(*, paths, index_paths, height, width, decode_device, params_source):
    prev, tgt, nxt, k, meta = fn.readers.webdataset(
        paths=paths,
        index_paths=index_paths,
        ext=list(TRAIN_COMPONENTS),
        dtypes=[types.UINT8, types.UINT8, types.UINT8, types.FLOAT, types.UINT8],
        missing_component_behavior="error",
        random_shuffle=False,
        name=READER_NAME,
    )
    flip, roi_start, roi_end, roi_full, color_on, bri, con, sat, hue = fn.external_source(
        source=params_source,
        num_outputs=9,
        batch=True,
        batch_info=True,
        dtype=[types.INT32, types.FLOAT, types.FLOAT, types.BOOL, types.BOOL] + [types.FLOAT] * 4,
    )
    plain, aug = [], []
    for data in (prev, tgt, nxt):  # one parameter draw, applied to all three frames
        img = fn.decoders.image(data, device=decode_device, output_type=types.RGB)
        keep = roi_full & (fn.peek_image_shape(data)[0] == height) & (fn.peek_image_shape(data)[1] == width)
        img = fn.flip(_resize_unless(keep, img, height, width, roi_start, roi_end), horizontal=flip)
        plain.append(img)
        aug.append(_twist_if(color_on, img, bri, con, sat, hue))
    frames = fn.transpose(fn.stack(*plain), perm=[0, 3, 1, 2])
    frames_aug = fn.transpose(fn.stack(*aug), perm=[0, 3, 1, 2])
    meta = fn.pad(meta, fill_value=0)
    return frames_aug, frames, k, meta, fn.peek_image_shape(tgt), flip, roi_start, roi_end


@pipeline_def
def eval_pipeline(*, paths, index_paths, height, width, decode_device):
    tgt, k, meta, gt = fn.readers.webdataset(
        paths=paths,
        index_paths=index_paths,
        ext=list(EVAL_COMPONENTS),
        dtypes=[types.UINT8, types.FLOAT, types.UINT8, types.UINT8],
        missing_component_behavior="error",
        random_shuffle=False,
        name=READER_NAME,
    )
    img = fn.decoders.image(tgt, device=decode_device, output_type=types.RGB)
    img = fn.transpose(_resize(img, height, width), perm=[2, 0, 1])
    return img, k, fn.pad(meta, fill_value=0), fn.pad(gt, fill_value=0), fn.peek_image_shape(tgt)
