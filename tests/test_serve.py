"""The Ray Serve service on 127.0.0.1: concurrent requests answered correctly (against ``Interpolator`` run here),
bad requests answered with a 4xx and a JSON error while the replica keeps serving, stalled clients that give
their work slots up while ``/health`` keeps answering, a health endpoint that says what runs.

GIMM-VFI-R with seeded random weights on 128x128 frames under a 224 MiB memory budget (enough for one 128x128
timestep untiled, 186 MiB by the memory model; 256x256 needs 260 MiB even tiled), one torch thread on both sides
(CPU results depend on the thread count). The request format, admission and the command's start-up checks are
checked without Ray.
"""

import asyncio
import importlib.util
import io
import json
import os
import socket
import struct
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
import zipfile
import zlib

import numpy as np
import pytest
import torch
from fakes import write_manifest

from gimm_trt.core.errors import InputError
from gimm_trt.core.stages import STAGES
from gimm_trt.model.spec import ModelSpec
from gimm_trt.serve.options import ServeOptions
from gimm_trt.serve.protocol import BadRequest, TooLarge, decode_request, decode_response, encode_request

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install 'gimm-trt[ray]')"
)

SIZE = 128
MAX_BYTES = 1 << 20  # small, so an oversized request is cheap to make
OPTIONS = ServeOptions(max_bytes=MAX_BYTES, max_timesteps=8)
SPEC = ModelSpec(variant="R", random_weights=True, seed=0, device="cpu", max_memory="224MiB")
WAIT_S = 300  # bound on any one wait
BODY_TIMEOUT_S = 10  # the service's; well over ALIVE_S, so a stalled client still holds its slot when it is checked
ALIVE_S = 5  # a generous bound on a /health answer (a liveness probe's): it takes milliseconds


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


def _png_header(width, height) -> bytes:
    """A PNG file whose header says ``width`` x ``height`` (its pixel data is a few bytes)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _npy_member(shape, data: bytes) -> bytes:
    """An .npz whose img0 header declares ``shape`` (uint8) over ``data``."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("img0.npy", header.getvalue() + data)
        z.writestr("img1.npy", header.getvalue() + data)
        ts = io.BytesIO()
        np.save(ts, np.float32([0.5]))
        z.writestr("timesteps.npy", ts.getvalue())
    return buf.getvalue()


def test_request_round_trip_and_refusals():
    img0, img1 = _pair(0)
    got = decode_request(encode_request(img0, _png(img1), [0.25, 0.5]), OPTIONS)
    assert np.array_equal(got.img0, img0) and np.array_equal(got.img1, img1)
    assert got.timesteps == [0.25, 0.5] and got.ds_scale is None
    assert decode_request(encode_request(img0, img1, [0.5], ds_scale=0.5), OPTIONS).ds_scale == 0.5
    cases = [
        (b"GIF89a not an archive", BadRequest, "not an .npz"),
        (encode_request(img0, img1[:64], [0.5]), BadRequest, "one size"),
        (encode_request(img0, b"\x89PNG\r\n\x1a\n but not really", [0.5]), BadRequest, "img1 is not a readable PNG"),
        (encode_request(img0, img1, [0.0, 0.5]), BadRequest, "strictly inside"),
        (encode_request(img0, img1, [float("nan")]), BadRequest, "strictly inside"),
        (encode_request(img0, img1, np.full(9, 0.5)), BadRequest, "at most 8"),
        (encode_request(img0, img1, [0.5], ds_scale=0.0), BadRequest, "ds_scale must lie in"),
        (encode_request(img0, img1, [0.5], ds_scale=1.5), BadRequest, "ds_scale must lie in"),
        (encode_request(img0, img1, [0.5], ds_scale=float("nan")), BadRequest, "ds_scale must lie in"),
        (_npz(img0=img0, img1=img1, timesteps=np.float32([0.5]), ds_scale=np.ones(2)), BadRequest, "one number"),
        (_npz(img0=img0, timesteps=np.float32([0.5])), BadRequest, "lacks img1"),
        (_npz(img0=img0.astype(np.float32), img1=img1, timesteps=np.float32([0.5])), BadRequest, "uint8"),
        (b"x" * (MAX_BYTES + 1), TooLarge, "limit"),
    ]
    for body, error, match in cases:
        with pytest.raises(error, match=match):
            decode_request(body, OPTIONS)
    # a small archive that unpacks past the limit is refused before it is unpacked
    buf = io.BytesIO()
    np.savez_compressed(buf, img0=np.zeros((1024, 1024, 3), np.uint8), img1=img1, timesteps=np.float32([0.5]))
    assert len(buf.getvalue()) < MAX_BYTES
    with pytest.raises(TooLarge, match="unpacks"):
        decode_request(buf.getvalue(), OPTIONS)


def test_service_options_are_checked():
    for fields, match in [
        (dict(max_pixels=0), "max_pixels must be an integer >= 1"),
        (dict(body_timeout_s=0), "body_timeout_s must be a number of seconds > 0"),
        (dict(body_timeout_s=float("inf")), "body_timeout_s"),
        (dict(batch_wait_s=-1), "batch_wait_s must be a number of seconds >= 0"),
        (dict(max_waiting=-1), "max_waiting must be an integer >= 0"),
    ]:
        with pytest.raises(InputError, match=match):
            ServeOptions(**fields)
    assert ServeOptions(max_batch_size=3).work_slots == 6


def test_frames_over_the_pixel_limit_are_refused():
    """Two 3328x3328 frames in a 65 KB archive, within the byte limit once unpacked: refused as over the pixel
    limit before the model (or its memory estimate) sees them; as PNG files, before they are decoded."""
    big = np.zeros((3328, 3328, 3), np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, img0=big, img1=big, timesteps=np.float32([0.5]))
    assert len(buf.getvalue()) < 1 << 17
    with pytest.raises(TooLarge, match=r"3328x3328 = 11075584 pixels; the limit is 8294400 \(max_pixels\)"):
        decode_request(buf.getvalue(), ServeOptions())
    png = _png_header(3328, 3328)
    with pytest.raises(TooLarge, match=r"img0 is 3328x3328 = 11075584 pixels.*max_pixels"):
        decode_request(encode_request(png, png, [0.5]), ServeOptions())
    # the limit is an option: a frame within it passes
    small = _pair(0)[0]
    got = decode_request(encode_request(small, small, [0.5]), ServeOptions(max_pixels=SIZE * SIZE))
    assert got.img0.shape == small.shape
    with pytest.raises(TooLarge, match="max_pixels"):
        decode_request(encode_request(small, small, [0.5]), ServeOptions(max_pixels=SIZE * SIZE - 1))


def test_hostile_files_get_4xx_before_anything_large_is_allocated():
    # an array header declaring (100000, 100000, 3) over 16 bytes: numpy would allocate 27.9 GiB for it
    tracemalloc.start()
    try:
        with pytest.raises(BadRequest, match=r"declares shape \(100000, 100000, 3\).* over 16 bytes"):
            decode_request(_npy_member((100000, 100000, 3), b"\0" * 16), OPTIONS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20
    # a PNG whose header says 20000x20000: PIL's own decompression-bomb limit, even with a pixel limit above it
    png = _png_header(20000, 20000)
    with pytest.raises(TooLarge, match="img0 is too large to decode"):
        decode_request(encode_request(png, png, [0.5]), ServeOptions(max_pixels=10**9))
    # only PNG and JPEG files reach a decoder: PostScript, GIF and BMP are refused by their first bytes
    from PIL import Image

    img = _pair(0)[0]
    for fmt in ("GIF", "BMP"):
        out = io.BytesIO()
        Image.fromarray(img).save(out, format=fmt)
        with pytest.raises(BadRequest, match="img0 is neither an .H,W,3. array nor a PNG or JPEG file"):
            decode_request(encode_request(out.getvalue(), img, [0.5]), OPTIONS)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 128 128\nshowpage\n"
    with pytest.raises(BadRequest, match="neither"):
        decode_request(encode_request(eps, img, [0.5]), OPTIONS)
    # a JPEG magic in front of PNG data: only the JPEG decoder is tried
    with pytest.raises(BadRequest, match="img0 is not a readable JPEG file"):
        decode_request(encode_request(b"\xff\xd8\xff" + _png(img), img, [0.5]), OPTIONS)
    jpeg = io.BytesIO()
    Image.fromarray(img).save(jpeg, format="JPEG", quality=95)
    got = decode_request(encode_request(jpeg.getvalue(), img, [0.5]), OPTIONS).img0
    assert got.shape == img.shape and np.abs(got.astype(int) - img).mean() < 3


# ---- admission: the model's checks and the memory budget, before the model runs (no Ray) ----


@pytest.fixture(scope="module")
def budgeted():
    from gimm_trt.runtime import Interpolator

    with pytest.warns(UserWarning, match="random weights"):
        return Interpolator.from_spec(SPEC)


def test_admission_checks_size_ds_and_memory_before_the_model_runs(budgeted, monkeypatch):
    from gimm_trt.serve.admission import Admission
    from gimm_trt.serve.protocol import Pair

    def ran(*args, **kwargs):
        raise AssertionError("the model ran")

    admission = Admission(budgeted)
    big = np.zeros((256, 256, 3), np.uint8)
    small = np.zeros((SIZE, SIZE, 3), np.uint8)
    with monkeypatch.context() as mp:
        mp.setattr(budgeted.backend, "flow", ran)
        # 256x256 at ds 1.0 needs 260 MiB even in tiles of 128: over the 224 MiB budget
        with pytest.raises(TooLarge, match=r"256x256 at ds_scale=1.0 need at least 0.25 GiB.*budget is 0.22 GiB"):
            admission.check(Pair(big, big, [0.5], None))
        # at ds 0.5 they fit (the flow runs at half size): the plan the run will use is made now
        assert admission.check(Pair(big, big, [0.5], 0.5)) == 0.5
        assert budgeted.budget.plan(256, 256, 0.5, 1) == (1, None)
        # 128x128 at ds 0.5 is processed at 64x64: too small for the model, a 400
        with pytest.raises(BadRequest, match="processed at 64x64") as refused:
            admission.check(Pair(small, small, [0.5], 0.5))
        assert refused.value.status == 400


# ---- gimm-serve's start-up (no Ray) ----


def _serve_cli(*args):
    from click.testing import CliRunner

    from gimm_trt.cli import serve

    return CliRunner().invoke(serve, [str(a) for a in args])


def test_serve_command_names_a_start_up_mistake_in_one_line_before_ray_starts(tmp_path, monkeypatch):
    from gimm_trt import distributed

    def ray_session(*args, **kwargs):
        raise AssertionError("Ray started")

    monkeypatch.setattr(distributed, "ray_session", ray_session)
    monkeypatch.setenv("GIMM_TRT_CHECKPOINTS", str(tmp_path))
    r_export = write_manifest(tmp_path / "R-fp32-224x128", {s: f"{s}.onnx" for s in STAGES}, variant="R")
    cases = [
        (("--variant", "R", "--device", "cpu"), f"checkpoint not found: {tmp_path / 'gimmvfi_r_arb.pt'}"),
        (("--random-weights", "--device", "cuda:abc"), "cuda:abc"),
        (("--export", tmp_path / "none", "--backend", "onnxruntime", "--device", "cpu"), "not a gimm-export directory"),
        (
            ("--export", r_export, "--variant", "F", "--backend", "onnxruntime", "--device", "cpu"),
            "made from GIMM-VFI-R",
        ),
    ]
    if not torch.cuda.is_available():
        cases.append((("--random-weights", "--device", "cuda"), "CUDA is not available"))
    for args, expected in cases:
        result = _serve_cli(*args)
        assert result.exit_code == 2, (args, result.output)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and expected in errors[0], result.stderr
        assert "Traceback" not in result.output


def test_serve_command_passes_its_limits_and_says_random_weights(monkeypatch):
    import contextlib

    from gimm_trt import distributed, serve

    built = {}

    def build_app(spec, options, replicas):
        built.update(spec=spec, options=options)
        return "app"

    monkeypatch.setattr(distributed, "ray_session", lambda address=None: contextlib.nullcontext())
    monkeypatch.setattr(serve, "build_app", build_app)
    monkeypatch.setattr(serve, "start", lambda app, host, port: f"http://{host}:{port}/")
    monkeypatch.setattr(serve, "serve_forever", lambda log: None)
    result = _serve_cli(
        "--random-weights", "--variant", "R", "--device", "cpu", "--max-memory", "2GiB", "--max-pixels", 10**6,
        "--body-timeout", 5, "--max-mb", 2,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "serving GIMM-VFI-R with random weights (not a trained model)" in result.stderr
    assert built["spec"].model.max_memory == 2 << 30
    assert built["options"] == ServeOptions(max_bytes=2 << 20, max_pixels=10**6, body_timeout_s=5.0)


# ---- the service on Ray ----


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from gimm_trt.distributed import WorkerSpec, ray_session
    from gimm_trt.serve import ServeOptions, build_app, start

    spec = WorkerSpec(model=SPEC, threads=1)
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))  # Ray must write nothing there (no saved token)
        with ray_session(num_cpus=1):
            from ray import serve

            try:
                options = ServeOptions(
                    max_bytes=MAX_BYTES, max_timesteps=8, batch_wait_s=0.05, body_timeout_s=BODY_TIMEOUT_S
                )
                app = build_app(spec, options, cpus_per_replica=0.5)
                url = start(app, port=_free_port(), timeout=WAIT_S)
                yield url
            finally:
                serve.shutdown()
    assert not (home / ".ray").exists()


@pytest.fixture(scope="module")
def local(budgeted):
    """The same model and budget in this process, one thread, as the reference."""
    from gimm_trt.runtime.video import to_uint8

    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def run(img0, img1, ts, ds_scale=None):
        return np.stack([to_uint8(f) for f in budgeted.interpolate(img0, img1, ts, ds_scale=ds_scale)])

    yield run
    torch.set_num_threads(threads)


def _call(url, path, body=None, method=None, timeout=WAIT_S):
    """(status, body) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(
        url.rstrip("/") + path, data=body, method=method, headers={"Content-Type": "application/octet-stream"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _health(url, timeout=WAIT_S) -> dict:
    status, body = _call(url, "/health", timeout=timeout)
    assert status == 200
    return json.loads(body)


def _stalled_client(url, declared=1000) -> socket.socket:
    """A client that sends its headers and two bytes of a body it says is ``declared`` bytes, then waits."""
    host, port = url.split("//")[1].strip("/").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=WAIT_S)
    head = (
        f"POST /interpolate HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode() + b"PK")
    return sock


def _answer(sock) -> tuple:
    """(status, body) of the HTTP answer that arrives on ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "the connection closed mid-answer"
        body += chunk
    return int(lines[0].split()[1]), body


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
        ("/interpolate", encode_request(img0, img1, [0.5], ds_scale=0.5), 400),  # processed at 64x64: too small
        ("/interpolate", encode_request(img0, img1, [0.5], ds_scale=2.0), 400),
        ("/interpolate", _npy_member((100000, 100000, 3), b"\0" * 16), 400),
        ("/interpolate", encode_request(_png_header(20000, 20000), img1, [0.5]), 413),  # PIL's bomb limit
        ("/interpolate", encode_request(b"%!PS-Adobe-3.0 EPSF-3.0\n", img1, [0.5]), 400),
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
def test_requests_over_the_limits_are_refused_before_the_model_runs(service, local):
    before = _health(service)
    assert "random weights" in before["weights"] and "not a trained model" in before["weights"]
    png = _png_header(3328, 3328)  # 11 Mpx: 72.6 GiB at ds 1.0 by the memory model
    status, body = _call(service, "/interpolate", encode_request(png, png, [0.5]))
    assert status == 413 and "max_pixels" in json.loads(body)["error"]
    big0, big1 = (np.repeat(np.repeat(f, 2, axis=0), 2, axis=1) for f in _pair(6))  # 256x256
    status, body = _call(service, "/interpolate", encode_request(big0, big1, [0.5]))
    assert status == 413
    assert "need at least 0.25 GiB" in json.loads(body)["error"] and "budget is 0.22 GiB" in json.loads(body)["error"]
    after = _health(service)
    assert after["requests"] == before["requests"] and after["refused"] == before["refused"] + 2
    # the same frames at a smaller ds_scale, asked for by the request, fit
    status, body = _call(service, "/interpolate", encode_request(big0, big1, [0.5], ds_scale=0.5))
    assert status == 200, body
    assert np.array_equal(decode_response(body), local(big0, big1, [0.5], ds_scale=0.5))


@needs_ray
def test_stalled_clients_give_their_slots_up_and_health_keeps_answering(service, local):
    """More clients than work slots send two bytes of their bodies and stop: /health still answers (a liveness
    probe's bound), each of them gets a 408 after the body timeout, and a valid request waiting behind them is
    answered."""
    slots = _health(service)["work_slots"]
    stalled = [_stalled_client(service) for _ in range(slots + 4)]
    try:
        deadline = time.monotonic() + WAIT_S
        while _health(service, timeout=ALIVE_S)["in_flight"] < len(stalled):  # all in, every slot taken
            assert time.monotonic() < deadline, "the stalled clients never reached the replica"
            time.sleep(0.1)
        img0, img1 = _pair(7)
        answer = []
        waiting = threading.Thread(
            target=lambda: answer.append(_call(service, "/interpolate", encode_request(img0, img1, [0.5])))
        )
        waiting.start()
        for sock in stalled:
            status, body = _answer(sock)
            assert status == 408 and "body_timeout_s" in json.loads(body)["error"]
        waiting.join(WAIT_S)
        assert answer and answer[0][0] == 200, answer
        assert np.array_equal(decode_response(answer[0][1]), local(img0, img1, [0.5]))
    finally:
        for sock in stalled:
            sock.close()
    assert _health(service, timeout=ALIVE_S)["in_flight"] == 0


@needs_ray
def test_a_failure_of_the_service_is_answered_in_json():
    from gimm_trt.serve.service import FrameService

    class Failing:
        async def _route(self, request):
            raise RuntimeError("disk on fire")

    answer = asyncio.run(FrameService.__call__(Failing(), None))
    assert answer.status_code == 500
    assert json.loads(answer.body) == {"error": "the service failed: RuntimeError: disk on fire"}


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
