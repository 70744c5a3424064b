"""The Ray Serve service on 127.0.0.1: concurrent requests answered correctly (against ``Interpolator`` run here),
bad requests answered with a 4xx and a JSON error while the replica keeps serving, a health endpoint.

GIMM-VFI-R with seeded random weights on 128x128 frames, one torch thread on both sides (CPU results depend on
the thread count). The request format itself is checked without Ray.
"""

import importlib.util
import io
import json
import os
import socket
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from gimm_trt.model.spec import ModelSpec
from gimm_trt.serve.protocol import BadRequest, TooLarge, decode_request, decode_response, encode_request

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install 'gimm-trt[ray]')"
)

SIZE = 128
MAX_BYTES = 1 << 20  # small, so an oversized request is cheap to make
WAIT_S = 300  # bound on any one wait


def _pair(seed):
    rng = np.random.default_rng(seed)
    base = torch.from_numpy(rng.random((2, 3, 8, 8), dtype=np.float32))
    up = torch.nn.functional.interpolate(base, size=(SIZE, SIZE), mode="bicubic").clamp(0, 1)
    return [(f * 255).round().to(torch.uint8).permute(1, 2, 0).numpy() for f in up]


def _png(img) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# ---- the format (no Ray) ----


def test_request_round_trip_and_refusals():
    img0, img1 = _pair(0)
    got0, got1, ts = decode_request(encode_request(img0, _png(img1), [0.25, 0.5]), max_bytes=MAX_BYTES, max_timesteps=8)
    assert np.array_equal(got0, img0) and np.array_equal(got1, img1) and ts == [0.25, 0.5]
    cases = [
        (b"GIF89a not an archive", BadRequest, "not an .npz"),
        (encode_request(img0, img1[:64], [0.5]), BadRequest, "one size"),
        (encode_request(img0, b"\x89PNG but not really", [0.5]), BadRequest, "img1 is neither"),
        (encode_request(img0, img1, [0.0, 0.5]), BadRequest, "strictly inside"),
        (encode_request(img0, img1, [float("nan")]), BadRequest, "strictly inside"),
        (encode_request(img0, img1, np.full(9, 0.5)), BadRequest, "at most 8"),
        (_npz(img0=img0, timesteps=np.float32([0.5])), BadRequest, "lacks img1"),
        (_npz(img0=img0.astype(np.float32), img1=img1, timesteps=np.float32([0.5])), BadRequest, "uint8"),
        (b"x" * (MAX_BYTES + 1), TooLarge, "limit"),
    ]
    for body, error, match in cases:
        with pytest.raises(error, match=match):
            decode_request(body, max_bytes=MAX_BYTES, max_timesteps=8)
    # a small archive that unpacks past the limit is refused before it is unpacked
    buf = io.BytesIO()
    np.savez_compressed(buf, img0=np.zeros((1024, 1024, 3), np.uint8), img1=img1, timesteps=np.float32([0.5]))
    assert len(buf.getvalue()) < MAX_BYTES
    with pytest.raises(TooLarge, match="unpacks"):
        decode_request(buf.getvalue(), max_bytes=MAX_BYTES, max_timesteps=8)


# ---- the service on Ray ----


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from gimm_trt.distributed import WorkerSpec, ray_session
    from gimm_trt.serve import ServeOptions, build_app, start

    spec = WorkerSpec(model=ModelSpec(variant="R", random_weights=True, seed=0, device="cpu"), threads=1)
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))  # Ray must write nothing there (no saved token)
        with ray_session(num_cpus=1):
            from ray import serve

            try:
                app = build_app(
                    spec, ServeOptions(max_bytes=MAX_BYTES, max_timesteps=8, batch_wait_s=0.05), cpus_per_replica=0.5
                )
                url = start(app, port=_free_port(), timeout=WAIT_S)
                yield url
            finally:
                serve.shutdown()
    assert not (home / ".ray").exists()


@pytest.fixture(scope="module")
def local():
    """The same model in this process, one thread, as the reference."""
    from gimm_trt.runtime import Interpolator
    from gimm_trt.runtime.video import to_uint8

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.warns(UserWarning, match="random weights"):
        interp = Interpolator.from_checkpoint(variant="R", random_weights=True, seed=0)

    def run(img0, img1, ts):
        return np.stack([to_uint8(f) for f in interp.interpolate(img0, img1, ts)])

    yield run
    torch.set_num_threads(threads)


def _call(url, path, body=None, method=None):
    """(status, body) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(
        url.rstrip("/") + path, data=body, method=method, headers={"Content-Type": "application/octet-stream"}
    )
    try:
        with urllib.request.urlopen(req, timeout=WAIT_S) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _health(url) -> dict:
    status, body = _call(url, "/health")
    assert status == 200
    return json.loads(body)


@needs_ray
def test_concurrent_requests_are_answered_correctly(service, local):
    before = _health(service)
    pairs = [(*_pair(1), [0.5]), (*_pair(2), [0.25, 0.75]), (*_pair(3), [0.5])]
    answers = [None] * len(pairs)

    def client(i):
        img0, img1, ts = pairs[i]
        body = encode_request(img0, _png(img1) if i == 1 else img1, ts)  # one sends a PNG file
        answers[i] = _call(service, "/interpolate", body)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(pairs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=WAIT_S)
    assert not any(t.is_alive() for t in threads)
    for (img0, img1, ts), (status, body) in zip(pairs, answers):
        assert status == 200, body
        frames = decode_response(body)
        assert frames.shape == (len(ts), SIZE, SIZE, 3) and frames.dtype == np.uint8
        assert np.array_equal(frames, local(img0, img1, ts))
    after = _health(service)
    assert after["requests"] - before["requests"] == len(pairs)
    assert after["largest_batch"] >= 2, "concurrent requests were not batched"


@needs_ray
def test_bad_requests_get_4xx_and_the_replica_keeps_serving(service, local):
    pid = _health(service)["pid"]
    img0, img1 = _pair(4)
    bad = [
        ("/interpolate", b"\x00\x01 not an archive", 400),
        ("/interpolate", encode_request(img0, img1[:, :96], [0.5]), 400),
        ("/interpolate", encode_request(img0, os.urandom(300), [0.5]), 400),
        ("/interpolate", encode_request(img0, img1, [0.5, 1.0]), 400),
        ("/interpolate", encode_request(img0[:64, :64], img1[:64, :64], [0.5]), 400),  # too small for the model
        ("/interpolate", b"\x00" * (MAX_BYTES + 4096), 413),
        ("/nowhere", b"", 404),
    ]
    for path, body, status in bad:
        got, answer = _call(service, path, body)
        assert got == status, (path, answer[:200])
        assert json.loads(answer)["error"]
    assert _call(service, "/interpolate", method="GET")[0] == 405
    health = _health(service)
    assert health["pid"] == pid and health["refused"] >= len(bad) - 1
    status, body = _call(service, "/interpolate", encode_request(img0, img1, [0.5]))
    assert status == 200 and np.array_equal(decode_response(body), local(img0, img1, [0.5]))


@needs_ray
def test_service_listens_on_loopback_only(service):
    import psutil

    port = int(service.rsplit(":", 1)[1].strip("/"))
    ours = {os.getpid()} | {p.pid for p in psutil.Process().children(recursive=True)}
    listening = [c for c in psutil.net_connections(kind="inet") if c.pid in ours and c.status == psutil.CONN_LISTEN]
    assert port in {c.laddr.port for c in listening}
    open_to_network = [
        (c.laddr, psutil.Process(c.pid).name())
        for c in listening
        if c.laddr.ip not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")
    ]
    assert not open_to_network
