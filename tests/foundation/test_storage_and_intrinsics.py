from __future__ import annotations

import numpy as np
import pytest

from pipeline import storage
from pipeline.intrinsics import crop_K, flip_K, resize_K


def _project(K, p):
    uvw = K @ p
    return uvw[:2] / uvw[2]


@pytest.mark.parametrize("src,dst", [((1242, 375), (640, 192)), ((416, 128), (208, 64))])
def test_resize_K_maps_pixel_centres(src, dst):
    K = np.array([[721.5, 0, 609.6], [0, 721.5, 172.9], [0, 0, 1.0]])
    p = np.array([3.0, -1.0, 20.0])
    u, v = _project(K, p)
    u2, v2 = _project(resize_K(K, src, dst), p)
    sx, sy = dst[0] / src[0], dst[1] / src[1]
    # pixel-centre convention: the point's position relative to the image edges scales exactly
    assert np.isclose((u2 + 0.5) / dst[0], (u + 0.5) / src[0])
    assert np.isclose((v2 + 0.5) / dst[1], (v + 0.5) / src[1])
    assert np.isclose(u2, sx * (u + 0.5) - 0.5) and np.isclose(v2, sy * (v + 0.5) - 0.5)


def test_crop_and_flip_K():
    K = np.array([[100.0, 0, 50.0], [0, 100.0, 20.0], [0, 0, 1.0]])
    p = np.array([0.5, 0.2, 4.0])
    u, v = _project(K, p)
    uc, vc = _project(crop_K(K, 7, 3), p)
    assert np.isclose(uc, u - 7) and np.isclose(vc, v - 3)
    # flipping the scene (x -> -x) and the image must agree
    uf, vf = _project(flip_K(K, 101), p * np.array([-1, 1, 1]))
    assert np.isclose(uf, 101 - 1 - u) and np.isclose(vf, v)


def test_local_atomic_write_and_listing(tmp_path):
    url = str(tmp_path / "a" / "b.txt")
    storage.write_text(url, "hello")
    assert storage.read_text(url) == "hello"
    assert storage.listdir(str(tmp_path / "a")) == ["b.txt"]
    assert storage.listdir(str(tmp_path / "missing")) == []


@pytest.mark.s3
def test_s3_round_trip(s3_bucket, tmp_path):
    url = storage.join(s3_bucket, "dir", "x.bin")
    storage.write_bytes(url, b"\x00\x01")
    assert storage.exists(url)
    assert storage.read_bytes(url) == b"\x00\x01"
    local = tmp_path / "y.bin"
    local.write_bytes(b"abc")
    storage.put_file(str(local), storage.join(s3_bucket, "dir", "y.bin"))
    assert storage.listdir(storage.join(s3_bucket, "dir")) == ["x.bin", "y.bin"]
    storage.get_file(storage.join(s3_bucket, "dir", "y.bin"), str(tmp_path / "z.bin"))
    assert (tmp_path / "z.bin").read_bytes() == b"abc"


@pytest.mark.s3
def test_s3_errors_name_the_url(s3_bucket, tmp_path):
    missing = "s3://rmd-no-such-bucket-7f3a/shards/summary.json"
    with pytest.raises(FileNotFoundError, match="s3://rmd-no-such-bucket-7f3a/shards/summary.json"):
        storage.read_bytes(missing)
    with pytest.raises(FileNotFoundError, match=f"{s3_bucket}/nothing/here"):
        storage.read_text(f"{s3_bucket}/nothing/here")


def test_a_file_where_a_folder_is_expected_is_one_clear_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match="afile: exists and is not a folder"):
        storage.makedirs(str(tmp_path / "afile"))
    with pytest.raises(NotADirectoryError, match="a parent of it is a file"):
        storage.makedirs(str(tmp_path / "afile" / "sub"))
