"""One loaded runtime shared by threads: every caller gets its own batch's answer (``Runtime``'s thread safety).

Subject: a small random BERT with a threshold spec that really drops tokens, exported once to ONNX (batched graph
only, to keep the export short; ``BatchOneRouter`` is checked over two runtimes of that graph). Each runtime first
answers every batch alone, one call after another; then 4 threads, released together, run all the batches in their
own shuffled orders, twice, on that one runtime. Every answer must equal the sequential answer for the same batch
(logits within 1e-5, kept counts identical), with no exception, and torch's process-wide thread count must be
what it was. The batches mix sizes 1 to 8 and lengths 3 to 64: real sentences and random valid ids.

Before the pools and locks, the shared OpenVINO request raised "Infer Request is busy" and returned other batches'
outputs; torch restored another thread's thread count for good; the IO binder bound one thread's output buffers
into another's call.
"""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
import torch

from helpers import SENTENCES
from ltp_deploy.checkpoint import load_checkpoint
from ltp_deploy.data import Examples, encode
from ltp_deploy.exporters.onnx import export_onnx
from ltp_deploy.runtimes import open_runtime
from ltp_deploy.runtimes.base import BatchOneRouter
from ltp_deploy.spec import PruningSpec

SPEC = PruningSpec.threshold([0, 0.004, 0.008, 0.012])
THREADS, ROUNDS = 4, 2
SIZES = (1, 2, 3, 5, 8)
RUNTIMES = {
    "onnxruntime": lambda m: open_runtime(m.export),
    "openvino-latency": lambda m: open_runtime(m.export, backend="openvino"),  # one request: calls take turns
    "openvino-throughput": lambda m: open_runtime(m.export, backend="openvino", hint="throughput"),  # a pool
    "torch": lambda m: open_runtime(m.folder, threads=1),  # threads set: the process-wide setting is swapped
    # batches of one go to the second runtime, the rest to the first: two request pools under one router
    "router-openvino": lambda m: BatchOneRouter(open_runtime(m.graph, backend="openvino"),
                                                open_runtime(m.graph, backend="openvino")),
}
# Unguarded, the last thread to restore torch's thread count leaves its stale value behind about 3 times in 4 (the
# last restore wins): three rounds catch it almost surely.
REPEATS = {"torch": 3}


class Model:
    """The checkpoint folder, its ONNX export and the batches every runtime answers."""

    def __init__(self, folder, graph):
        self.folder, self.graph, self.export = folder, graph, graph.parent
        self.batches = _batches(load_checkpoint(folder))


@pytest.fixture(scope="module")
def model(make_bert, tmp_path_factory) -> Model:
    folder = make_bert(spec=SPEC, name="threads-bert")
    out = tmp_path_factory.mktemp("threads") / "onnx"
    return Model(folder, export_onnx(load_checkpoint(folder), out, batch1_graph=False).graph)


def _batches(ckpt) -> list[dict[str, np.ndarray]]:
    """24 batches: real sentences (sizes 1-8, lengths set by the longest) and random valid ids (lengths 3-64)."""
    rng = np.random.default_rng(0)
    texts = Examples(texts=list(dict.fromkeys(SENTENCES)), text_pairs=None, labels=None, source="conftest")
    out = []
    for i in range(12):
        size = SIZES[i % len(SIZES)]
        out.append(encode(ckpt.tokenizer(), texts, 128, indices=rng.choice(len(texts), size=size)))
    for i in range(12):
        size, length = SIZES[i % len(SIZES)], int(rng.integers(3, 65))
        lengths = rng.integers(1, length + 1, size=size)
        lengths[0] = length  # the batch is as long as its longest row
        mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int64)
        ids = rng.integers(0, ckpt.config.vocab_size, size=(size, length)) * mask
        types = rng.integers(0, 2, size=(size, length)) * mask
        out.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    return out


def hammer(call, batches) -> tuple[dict[int, list], list[str]]:
    """``call(batch)`` from THREADS threads released together, each over every batch ROUNDS times in its own
    order: ``({batch index: [answers]}, [exceptions as text])``."""
    answers: dict[int, list] = {i: [] for i in range(len(batches))}
    errors: list[str] = []
    start = threading.Barrier(THREADS)

    def work(seed: int) -> None:
        order = [i for _ in range(ROUNDS) for i in random.Random(seed).sample(range(len(batches)), len(batches))]
        start.wait()
        for i in order:
            try:
                answers[i].append(call(batches[i]))  # list.append is atomic under the GIL
            except Exception as e:  # noqa: BLE001 (every failure is collected and reported below)
                errors.append(f"batch {i}: {type(e).__name__}: {str(e)[:120]}")

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread is still running after 120 s: a deadlock?"
    return answers, errors


def assert_same_answers(answers, want, errors) -> None:
    assert not errors, f"{len(errors)} calls failed, e.g. {errors[:3]}"
    wrong = []
    for i, got in answers.items():
        assert len(got) == THREADS * ROUNDS
        for logits, kept in got:
            if not (logits.shape == want[i][0].shape and np.allclose(logits, want[i][0], rtol=1e-5, atol=1e-5)
                    and np.array_equal(kept, want[i][1])):
                wrong.append(f"batch {i}: shape {logits.shape}, want {want[i][0].shape}")
    assert not wrong, f"{len(wrong)} of {THREADS * ROUNDS * len(answers)} answers differ, e.g. {wrong[:3]}"


@pytest.mark.parametrize("name", list(RUNTIMES))
@pytest.mark.slow
def test_threads_sharing_one_runtime_get_their_own_answers(model, name):
    runtime = RUNTIMES[name](model)
    want = [runtime.run(b) for b in model.batches]
    before = torch_threads()
    for _ in range(REPEATS.get(name, 1)):
        answers, errors = hammer(runtime.run, model.batches)
        assert_same_answers(answers, want, errors)
        assert torch_threads() == before, "torch's thread count was not restored"


def torch_threads() -> tuple[int, int]:
    """torch's intra-op thread count as this thread and a new thread see it. With torch's OpenMP backend,
    ``set_num_threads`` in a worker thread changes that thread and the default of threads started later, not the
    main thread: the second number is where a restore race shows."""
    seen = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return torch.get_num_threads(), seen[0]


@pytest.mark.slow
def test_io_binder_threads_get_their_own_buffers(model):
    """The CUDA adapter's IO binding (``IOBinder``), run on ORT's CPU device where no GPU is present."""
    from ltp_deploy.runtimes.onnxruntime import IOBinder

    runtime = open_runtime(model.graph)  # the packed graph at every batch size, as the binder runs it
    binder = IOBinder(runtime.session, "cpu")
    want = [runtime.run(b) for b in model.batches]
    answers, errors = hammer(lambda batch: binder.run(runtime.feed(batch)), model.batches)
    assert_same_answers(answers, want, errors)


@pytest.mark.slow
def test_onnxruntime_cuda_threads(model):
    import onnxruntime as ort

    from ltp_deploy.runtimes.onnxruntime import CUDA_PROVIDER

    if CUDA_PROVIDER not in ort.get_available_providers():
        pytest.skip("no CUDA here (onnxruntime lacks CUDAExecutionProvider): the IO binder's per-thread buffers are "
                    "checked on ORT's CPU device by test_io_binder_threads_get_their_own_buffers")
    runtime = open_runtime(model.export, device="cuda")
    want = [runtime.run(b) for b in model.batches]
    answers, errors = hammer(runtime.run, model.batches)
    assert_same_answers(answers, want, errors)
