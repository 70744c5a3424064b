import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tqdm import tqdm

FIXTURES = Path(__file__).parent / "fixtures"

# tqdm's monitor thread takes tqdm's locks every few seconds (a thread lock and a lock shared across forks, in that
# order). A test that forks while it holds them leaves the child blocked on the thread lock while holding the shared
# one, and then this process waits forever at its next progress bar (torch's exporter makes some): no monitor.
tqdm.monitor_interval = 0

if os.environ.get("PYTEST_XDIST_WORKER"):
    # each pytest-xdist worker (one per core, -n 2 in CI) computes on one thread: no oversubscription
    torch.set_num_threads(1)


def pytest_runtest_setup(item):
    """``gpu`` and ``tensorrt`` tests skip, saying why, where the machine lacks what they need."""
    if item.get_closest_marker("gpu") and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    if item.get_closest_marker("tensorrt"):
        from gimm_trt.core.trt import has_tensorrt

        if not has_tensorrt():
            pytest.skip("needs TensorRT >= 10.9 (its native libraries), which is not installed here")
    if item.get_closest_marker("tensorrt_rtx"):
        from gimm_trt.core.trt import has_tensorrt

        if not has_tensorrt("tensorrt-rtx"):
            pytest.skip("needs TensorRT-RTX >= 1.7 (pip install 'gimm-trt[tensorrt-rtx]'), which is not installed here")


def shared_dir(tmp_path_factory) -> Path:
    """A directory every process of this test session sees: under pytest-xdist each worker has a base temp
    directory of its own, and their common parent belongs to this session only."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared"
    root.mkdir(parents=True, exist_ok=True)
    return root


SHARED_RESOLUTION = "256x128"  # small; each side >= core.sizes.MIN_PROCESSING (128), as the model needs


@pytest.fixture(scope="session")
def shared_export(tmp_path_factory):
    """``shared_export(variant="R", precision="fp32", splat="plugin") -> dir``: a random-weight export at 256x128
    made once per test session, by whichever worker asks first, and shared by every test file (an R export is
    about two minutes of tracing on two cores). Tests read these directories and may add derived files (engines,
    parts); a test that changes a graph copies the directory first."""
    pytest.importorskip("onnx")
    from gimm_trt.core.files import file_lock
    from gimm_trt.export.exporter import ExportOptions, export
    from gimm_trt.model.spec import ModelSpec

    root = shared_dir(tmp_path_factory)

    def get(variant: str = "R", precision: str = "fp32", splat: str = "plugin"):
        # one directory per splat form: both forms share a directory name; fp16 is converted from its fp32 sibling
        with file_lock(root / f"{variant}-{splat}"):
            for p in dict.fromkeys(("fp32", precision)):
                model = ModelSpec(variant=variant, random_weights=True, precision=p)
                path = export(ExportOptions(model=model, resolution=SHARED_RESOLUTION, splat=splat), root / splat)
        return path

    return get


@pytest.fixture(scope="session")
def r_exports(shared_export) -> dict:
    """``{"fp32": dir, "fp16": dir}``: the shared R exports with the splat plugin node."""
    return {precision: shared_export("R", precision) for precision in ("fp32", "fp16")}


@pytest.fixture(scope="session")
def r_export_forms(shared_export) -> dict:
    """The shared R exports by form: ``plugin-fp32``, ``plugin-fp16`` and ``portable-fp32``."""
    forms = (("plugin", "fp32"), ("plugin", "fp16"), ("portable", "fp32"))
    return {f"{splat}-{precision}": shared_export("R", precision, splat) for splat, precision in forms}


CASES = {  # fixture -> (variant, synthetic seed), see fixtures/README.md
    "r_s0_128x224_n4_ds1": ("R", 0),
    "r_s1_147x225_n2_ds1": ("R", 1),
    "f_s2_128x224_n3_ds1": ("F", 2),
}


def load_case(name: str) -> dict:
    with np.load(FIXTURES / f"{name}.npz") as d:
        return {k: d[k] for k in d.files}


def robust_stats(a, b) -> dict:
    """|a - b| summarised so that a few flipped splat pixels (inherent, see fixtures/README.md) do not dominate."""
    a = torch.as_tensor(a, dtype=torch.float64).flatten()
    b = torch.as_tensor(b, dtype=torch.float64).flatten()
    assert a.shape == b.shape, (a.shape, b.shape)
    d = (a - b).abs()
    return {
        "mean": d.mean().item(),
        "p99": torch.quantile(
            d[torch.randperm(d.numel(), generator=torch.Generator().manual_seed(0))[:1_000_000]], 0.99
        ).item(),
        "max": d.max().item(),
        "frac": lambda thr: (d > thr).double().mean().item(),
    }


def assert_close_robust(name, a, b, *, mean, p99, thr, frac=0.005):
    s = robust_stats(a, b)
    above = s["frac"](thr)
    msg = (
        f"{name}: mean {s['mean']:.2e} (<= {mean}), p99 {s['p99']:.2e} (<= {p99}), "
        f"{above:.3%} above {thr} (<= {frac:.1%}), max {s['max']:.2e}"
    )
    assert s["mean"] <= mean and s["p99"] <= p99 and above <= frac, msg


FEATURES = ("fe_fmap0", "fe_fmap1", "fe_feat4_0", "fe_feat4_1", "fe_feat8_0", "fe_feat8_1")
KEYS = FEATURES + (
    "raft_flow",
    "nflow",
    "flow_scaler",
    "splat_w01",
    "splat_w10",
    "flowt",
    "flowt0_4",
    "flowt1_4",
    "imgt_pred",
)


def run_stages(case: dict, model) -> dict:
    """Every stored intermediate (``KEYS``), computed by our stages the way the official demo calls the model."""
    left, right, top, bottom = case["pad_lrtb"].tolist()
    img0 = F.pad(torch.from_numpy(case["img0"]), (left, right, top, bottom), mode="replicate")
    img1 = F.pad(torch.from_numpy(case["img1"]), (left, right, top, bottom), mode="replicate")
    ts = torch.tensor(case["timesteps"], dtype=torch.float32)
    ds = float(case["ds_factor"])
    x0 = F.interpolate(img0, scale_factor=ds, mode="bilinear")
    x1 = F.interpolate(img1, scale_factor=ds, mode="bilinear")
    out = {}
    with torch.inference_mode():
        # the estimator's own features: the fixtures store them before R's projections
        out.update(zip(FEATURES, model.flow.estimator(x0, x1)[2:]))
        f = model.flow(img0, img1, ds)
        out["raft_flow"] = torch.stack([f[0], f[1]], dim=2)
        out["nflow"], scale = model.motion.normalise(f[0], f[1])
        out["flow_scaler"] = scale.flatten()
        out["splat_w01"], out["splat_w10"] = model.motion.splat_weights(f[0], f[1])
        flowt = model.motion(f[0], f[1], ts)
        out["flowt"] = flowt
        out["flowt0_4"], out["flowt1_4"], _, _ = model.synthesis.quarter_flows(x0, x1, *f[4:8], flowt, ts)
        frames = model.synthesis(img0, img1, *f[2:], flowt, ts, ds)
        h, w = case["img0"].shape[-2:]
        out["imgt_pred"] = frames[:, :, top : top + h, left : left + w]
    return out


def bound_for(bounds: dict, key: str):
    """The (mean, p99, threshold, fraction) entry of ``bounds`` that applies to fixture array ``key``."""
    if key.startswith("fe_"):
        return bounds["fe"]
    if key.startswith("splat_w"):
        return bounds["splat_w"]
    if key in ("flowt0_4", "flowt1_4"):
        return bounds["flowt_4"]
    return bounds[key]
