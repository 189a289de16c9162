"""Runtime adapters on real exported graphs: each agrees with the torch ``PrunedClassifier``; bad combinations fail.

Subjects: the pretrained MiniLM (BERT, 6 layers, token_type_ids) and a small random RoBERTa (no token_type_ids,
byte-level BPE), both with threshold specs that really drop tokens. Each graph is exported once per session
(``subject(...)`` caches; ``tests/test_openvino.py`` shares the same exports).
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.artifact import read_metadata
from ltp_deploy.exporters.onnx import export_onnx
from ltp_deploy.runtimes import open_runtime

from helpers import MINILM_SPEC, ROBERTA_SPEC, assert_agrees

# ------------------------------------------------------------------------------------------ the subjects prune

def test_specs_really_drop_tokens(subject):
    """Otherwise the agreement tests below would not exercise data-dependent shapes."""
    batch = subject.batches["mixed"]
    logits, kept = subject.expected(batch)
    assert np.abs(logits).max() > 0.5, "logits this small would make the 1e-4 tolerance meaningless"
    lengths = batch["attention_mask"].sum(1)
    assert subject.ckpt.spec == (MINILM_SPEC if subject.name == "minilm" else ROBERTA_SPEC)
    assert (kept[:, -1] < lengths).all(), f"every row should lose tokens: kept {kept.tolist()}, lengths {lengths}"
    assert ((kept > 1) & (kept < lengths[:, None])).any(), f"some layer should drop part of a row: {kept.tolist()}"
    assert len({tuple(row) for row in kept.tolist()}) > 1, "rows should keep different counts"
    assert (np.diff(kept, axis=1) <= 0).all(), "a dropped token never comes back"


# ------------------------------------------------------------------------------- every adapter matches torch

ADAPTERS = {
    "onnxruntime-cpu": lambda s: open_runtime(s.onnx),
    "openvino-xml": lambda s: open_runtime(s.xml),
    "openvino-onnx": lambda s: open_runtime(s.onnx, backend="openvino"),
    "torch": lambda s: open_runtime(s.folder),
}


@pytest.mark.parametrize("adapter", list(ADAPTERS))
@pytest.mark.parametrize("batch", ["b1", "mixed"])
def test_adapter_matches_torch(subject, adapter, batch):
    runtime = ADAPTERS[adapter](subject)
    assert_agrees(subject, runtime, subject.batches[batch])


@pytest.mark.parametrize("target", ["onnx", "openvino"])
@pytest.mark.slow
def test_single_sequence_graph_runs_row_by_row(subject, target):
    """``--single-sequence`` graphs take (1, T) inputs; every adapter calls them once per row of a larger batch,
    and the result is the batched torch model's."""
    graph = subject.single[target]
    assert read_metadata(graph)["single_sequence"] is True
    backends = ["onnxruntime", "openvino"] if target == "onnx" else ["openvino"]
    for backend in backends:
        runtime = open_runtime(graph, backend=backend)
        assert runtime.single_sequence, f"{runtime.name} did not see the graph's batch axis of 1"
        for name in ("b1", "mixed"):
            assert_agrees(subject, runtime, subject.batches[name])
        with pytest.raises(Exception):  # the graph itself takes one row only
            runtime._infer(runtime.feed(subject.batches["mixed"]))
    assert not open_runtime(subject.onnx).single_sequence and not open_runtime(subject.xml).single_sequence


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_default_export_runs_batches_of_one_on_its_batch1_graph(subject, target):
    """The default export holds the packed graph and the batch-1 graph; both agree with torch on every batch, and
    the folder's runtime sends exactly the batches of one to the batch-1 graph."""
    from ltp_deploy.runtimes.base import BatchOneRouter

    graph = subject.onnx if target == "onnx" else subject.xml
    meta = read_metadata(graph)
    assert meta["batch1_graph"] == f"model-b1{graph.suffix}" and meta["batch1_validation"]["passed"]
    router = open_runtime(graph.parent)
    assert isinstance(router, BatchOneRouter) and router.name == router.batched.name
    assert router.single.single_sequence and not router.batched.single_sequence
    for name in ("b1", "mixed"):  # each graph alone, the packed one at batch 1 too
        assert_agrees(subject, router.batched, subject.batches[name])
        assert_agrees(subject, router.single, subject.batches[name])
    calls = []
    for part in ("batched", "single"):
        runtime = getattr(router, part)
        infer = runtime._infer
        runtime._infer = lambda feed, infer=infer, part=part: calls.append(part) or infer(feed)
    for name in ("b1", "mixed", "b1"):
        assert_agrees(subject, router, subject.batches[name])
    assert calls == ["single", "batched", "single"]
    alone = open_runtime(graph.parent / meta["batch1_graph"])  # naming the batch-1 file loads it alone
    assert not isinstance(alone, BatchOneRouter) and alone.single_sequence


@pytest.mark.slow
def test_export_without_batch1_graph_runs_one_graph(roberta, tmp_path):
    from ltp_deploy.runtimes.base import BatchOneRouter

    out = export_onnx(roberta.ckpt, tmp_path / "one", batch1_graph=False).folder
    assert read_metadata(out)["batch1_graph"] is None and not (out / "model-b1.onnx").exists()
    runtime = open_runtime(out)
    assert not isinstance(runtime, BatchOneRouter)
    assert_agrees(roberta, runtime, roberta.batches["b1"])


def test_runtime_attributes(subject):
    expected = {"onnxruntime-cpu": "onnxruntime-cpu", "openvino-xml": "openvino-cpu",
                "openvino-onnx": "openvino-cpu", "torch": "torch-cpu"}
    for adapter, name in expected.items():
        runtime = ADAPTERS[adapter](subject)
        assert (runtime.name, runtime.device, runtime.precision, runtime.weights) == (name, "cpu", "fp32", "fp32")
        assert isinstance(runtime.load_seconds, float) and 0 < runtime.load_seconds < 120
        takes_types = subject.name == "minilm"
        assert ("token_type_ids" in runtime.input_names) == takes_types, runtime.input_names


def test_open_runtime_accepts_export_folders(roberta):
    assert open_runtime(roberta.onnx.parent).name == "onnxruntime-cpu"
    assert open_runtime(roberta.xml.parent).name == "openvino-cpu"
    assert open_runtime(roberta.onnx.parent, backend="openvino").name == "openvino-cpu"
    assert open_runtime(roberta.folder, backend="torch").name == "torch-cpu"


def test_threads_and_hint_reach_the_runtime(roberta):
    import openvino.properties as props
    import openvino.properties.hint as hints

    ort_rt = open_runtime(roberta.onnx, threads=1)
    assert ort_rt.session.get_session_options().intra_op_num_threads == 1
    ov_rt = open_runtime(roberta.xml, threads=1, hint="throughput")
    assert ov_rt.compiled.get_property(props.inference_num_threads()) == 1
    assert str(ov_rt.compiled.get_property(hints.performance_mode())).endswith("THROUGHPUT")  # str or enum
    assert ov_rt.compiled.get_property(hints.inference_precision()).get_type_name() == "f32"
    assert_agrees(roberta, ov_rt, roberta.batches["mixed"])
    torch_rt = open_runtime(roberta.folder, threads=1)
    before = torch.get_num_threads()
    assert_agrees(roberta, torch_rt, roberta.batches["mixed"])
    assert torch.get_num_threads() == before, "the torch adapter restores the process-wide thread count"


def test_io_binding_matches_plain_run(roberta):
    """The CUDA adapter's IO-binding path, run on ORT's CPU device where no GPU is present."""
    from ltp_deploy.runtimes.onnxruntime import IOBinder

    runtime = open_runtime(roberta.onnx).batched  # the packed graph at every batch size, as the binder runs it
    binder = IOBinder(runtime.session, "cpu")
    assert binder.widths == {"logits": 3, "kept_counts": 4}
    for name in ("mixed", "b1", "b1", "mixed"):  # batch size changes reallocate the output buffers
        batch = roberta.batches[name]
        want = runtime.run(batch)
        got = binder.run(runtime.feed(batch))
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
        assert binder._batch_size == batch["input_ids"].shape[0]


# ------------------------------------------------------------------------------------------------------ bf16

def test_openvino_bf16(roberta, monkeypatch):
    import openvino as ov

    from ltp_deploy.runtimes import openvino as ov_runtime

    if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        runtime = open_runtime(roberta.xml, precision="bf16")
        assert runtime.precision == "bf16"
        logits, kept = runtime.run(roberta.batches["mixed"])
        want_logits, _ = roberta.expected(roberta.batches["mixed"])
        assert logits.shape == want_logits.shape and np.isfinite(logits).all() and kept.shape == (6, 4)
    monkeypatch.setattr(ov_runtime, "cpu_capabilities", lambda core: ["FP32", "INT8", "BIN"])
    with pytest.raises(LtpDeployError, match="no bf16 support.*--precision fp32"):
        open_runtime(roberta.xml, precision="bf16")


# ------------------------------------------------------------------------------------------------------ CUDA

def _has_cuda_provider() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(not _has_cuda_provider(), reason="onnxruntime has no CUDAExecutionProvider "
                                                     "(install onnxruntime-gpu on a machine with a CUDA GPU)")
@pytest.mark.parametrize("batch", ["b1", "mixed"])
def test_onnxruntime_cuda_matches_torch(subject, batch):
    runtime = open_runtime(subject.onnx, device="cuda")
    assert (runtime.name, runtime.device) == ("onnxruntime-cuda", "cuda")
    assert "CUDAExecutionProvider" in runtime.session.get_providers()
    assert_agrees(subject, runtime, subject.batches[batch])
    assert_agrees(subject, runtime, subject.batches[batch])  # reused output buffers


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device")
def test_torch_cuda_matches_torch(roberta):
    runtime = open_runtime(roberta.folder, device="cuda")
    assert runtime.name == "torch-cuda"
    assert_agrees(roberta, runtime, roberta.batches["mixed"])


@pytest.mark.skipif(_has_cuda_provider(), reason="CUDAExecutionProvider is present: the missing-provider error "
                                                 "cannot occur here")
def test_cuda_without_provider_is_one_clear_error(roberta):
    with pytest.raises(LtpDeployError) as err:
        open_runtime(roberta.onnx, device="cuda")
    message = str(err.value)
    assert "\n" not in message
    assert "install onnxruntime-gpu with a CUDA-capable driver, or use --device cpu" in message


def test_cuda_session_without_cuda_is_refused(roberta, monkeypatch):
    """ORT falls back to the CPU when CUDA libraries fail to load; the adapter must refuse that session."""
    import onnxruntime as ort

    from ltp_deploy.runtimes import onnxruntime as ort_runtime

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort_runtime, "_session", lambda path, threads, providers: ort.InferenceSession(
        str(path), providers=["CPUExecutionProvider"]))
    with pytest.raises(LtpDeployError, match="could not start CUDAExecutionProvider.*--device cpu"):
        open_runtime(roberta.onnx, device="cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="torch sees a CUDA device")
def test_torch_cuda_without_gpu_is_one_clear_error(roberta):
    with pytest.raises(LtpDeployError, match="no CUDA device.*--device cpu"):
        open_runtime(roberta.folder, device="cuda")


# ----------------------------------------------------------------------------------------- bad combinations

BAD = [
    (lambda s: s.xml, {"backend": "onnxruntime"}, "runs with backend openvino"),
    (lambda s: s.onnx, {"backend": "torch"}, "runs with backend onnxruntime or openvino"),
    (lambda s: s.folder, {"backend": "onnxruntime"}, "checkpoint folder, which runs with backend torch"),
    (lambda s: s.xml, {"device": "cuda"}, "openvino runs on cpu only"),
    (lambda s: s.onnx, {"backend": "openvino", "device": "cuda"}, "onnxruntime or torch for cuda"),
    (lambda s: s.onnx, {"device": "tpu"}, "use cpu or cuda"),
    (lambda s: s.onnx, {"backend": "tensorrt"}, "use one of onnxruntime, openvino, torch"),
    (lambda s: s.onnx, {"precision": "bf16"}, "(--backend openvino for bf16)"),
    (lambda s: s.folder, {"precision": "fp16"}, "computes in fp32"),
    (lambda s: s.xml, {"precision": "int8"}, "computes in fp32 or bf16"),
    (lambda s: s.onnx, {"hint": "latency"}, "OpenVINO setting"),
    (lambda s: s.xml, {"hint": "fast"}, "use latency or throughput"),
    (lambda s: s.onnx, {"threads": 0}, "positive"),
    (lambda s: s.root / "nope.onnx", {}, "does not exist"),
    (lambda s: s.root, {}, "neither ltp_deploy_export.json nor config.json"),
    (lambda s: s.folder / "config.json", {}, "not a model file"),
]


@pytest.mark.parametrize("path, options, fragment", BAD, ids=[f"{i}-{b[2][:20]}" for i, b in enumerate(BAD)])
def test_bad_combination_is_one_line(roberta, path, options, fragment):
    with pytest.raises(LtpDeployError) as err:
        open_runtime(path(roberta), **options)
    message = str(err.value)
    assert "\n" not in message and fragment in message, message
