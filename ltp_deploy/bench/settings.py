"""``bench``'s settings: every option checked when ``BenchSettings`` is built, before anything loads."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.runtimes import BACKENDS, DEVICES

SCHEMA_VERSION = 1
KIND = "ltp-deploy-bench"
DEFAULT_BATCH_SIZES = (1, 8, 32)
DEFAULT_TASK = "sst2"
ORDERS = ("dataset", "length")  # batch order: the data's own (default), or length-sorted
SYNTHETIC_SEQUENCES = 256  # sequences drawn for --seq-len when --max-examples is not given
MIN_DEFAULT_ITERATIONS = 10  # the default (one pass over the data) times at least this many batches
ROLES = ("model", "other")


@dataclass(frozen=True)
class BenchSettings:
    """One benchmark run; every option is checked when the settings are built, before anything loads."""

    model: Path
    device: str = "cpu"
    backend: str | None = None  # None: chosen from the file type (.onnx -> onnxruntime, .xml -> openvino)
    data: str | None = None  # a data file; None: the task's dev split (default SST-2)
    task: str | None = None
    text_column: str | int | None = None
    text_pair_column: str | int | None = None
    seq_len: int | None = None  # synthetic batches of exactly this many tokens instead of real sentences
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    order: str = "dataset"  # "dataset": the data's own order; "length": similar lengths batched together
    warmup: int = 3
    iterations: int | None = None  # None: one pass over the data (at least MIN_DEFAULT_ITERATIONS batches)
    duration: float | None = None  # seconds of timed runs per batch size; with iterations, whichever ends first
    threads: int | None = None
    compare: Path | None = None
    max_examples: int | None = None
    seed: int = 0
    precision: str | None = None  # passed to the runtime only when given ("fp32"; "bf16" with openvino)
    hint: str | None = None  # OpenVINO performance hint ("latency" or "throughput"), passed only when given

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", Path(self.model))
        object.__setattr__(self, "batch_sizes", tuple(int(b) for b in self.batch_sizes))
        if self.compare is not None:
            object.__setattr__(self, "compare", Path(self.compare))
        _check_settings(self)

    @property
    def sort_by_length(self) -> bool:
        return self.order == "length"


def _check_settings(s: BenchSettings) -> None:
    if s.device.split(":")[0] not in DEVICES:
        raise LtpDeployError(f"Unknown device {s.device!r}: use one of {', '.join(DEVICES)} (or cuda:N).")
    if s.backend is not None and s.backend not in BACKENDS:
        raise LtpDeployError(f"Unknown backend {s.backend!r}: use one of {', '.join(BACKENDS)}.")
    if s.order not in ORDERS:
        raise LtpDeployError(f"Unknown order {s.order!r}: use dataset (the data's own order, what a server sees) "
                             "or length (length-sorted batches, less padding).")
    if not s.batch_sizes:
        raise LtpDeployError("No batch size given: pass at least one, e.g. --batch-size 1,8,32.")
    if any(b < 1 for b in s.batch_sizes):
        raise LtpDeployError(f"Batch sizes must be at least 1, got {list(s.batch_sizes)}.")
    if s.warmup < 0:
        raise LtpDeployError(f"Warm-up must be 0 or more calls, got {s.warmup}.")
    if s.iterations is not None and s.iterations < 0:
        raise LtpDeployError(f"Iterations must be positive, got {s.iterations}.")
    if s.duration is not None and not (s.duration > 0 and math.isfinite(s.duration)):
        raise LtpDeployError(f"Duration must be a positive number of seconds, got {s.duration}.")
    if s.iterations == 0 and s.duration is None:
        raise LtpDeployError("--iterations 0 times nothing: give a positive count, or a --duration in seconds.")
    if s.seq_len is not None and (s.data is not None or s.task is not None):
        raise LtpDeployError("Give either --seq-len (synthetic batches) or --data/--task (real text), not both.")
    if s.seq_len is not None and s.seq_len < 1:
        raise LtpDeployError(f"Sequence length must be at least 1 token, got {s.seq_len}.")
    if s.threads is not None and s.threads < 1:
        raise LtpDeployError(f"Threads must be at least 1, got {s.threads}.")
    if s.max_examples is not None and s.max_examples < 1:
        raise LtpDeployError(f"--max-examples must be at least 1, got {s.max_examples}.")
    for path in (s.model, s.compare):
        if path is not None and not path.exists():
            raise LtpDeployError(f"Model {path} does not exist: pass an exported graph, its folder, or a checkpoint.")
