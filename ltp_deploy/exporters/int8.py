"""INT8 graphs: ONNX Runtime dynamic quantization and OpenVINO NNCF post-training quantization, with what feeds
the first keep decision left in fp32.

A threshold rule flips every token whose score sits near its threshold, so quantization error upstream of a
score changes the kept sets. Measured with ONNX Runtime on the 2x SST-2 checkpoint (MiniLM; SST-2 dev; fp32
pruned graph 86.93%; README, INT8), prediction agreement with the fp32 graph and batch-32 speed over it:

* every projection quantized (per output channel): 97.25% agreement, 87.16%, x1.76; the same tokens kept in layer
  1 in 30% of the sentences. Per-tensor weights: 93.7%.
* the layers before the first pruning layer and that layer's Q/K/V in fp32: the first decision holds in every
  sentence, 98.85% agreement, x1.33.
* and the Q/K/V projections of every pruning layer (what its score is computed from) in fp32: 99.08%, x1.31.
  A layer between two pruning layers that drops nothing counts as one (train's idle pruners).
  OpenVINO (NNCF) with the same scope: 99.20%.

The dense MiniLM itself agrees with its fp32 graph on 97.7% under full dynamic quantization: INT8 noise alone
flips sentences near the decision boundary, and the export's gate (99%) asks for the last scope, the default
(``fp32_scope``):

* the attention core (QK^T, softmax, PV) everywhere: the probabilities are the score (ONNX Runtime's dynamic
  quantizer only touches MatMuls with a constant weight; NNCF is told to ignore the others);
* every projection of the layers before the first pruning layer, and the Q/K/V projection of every layer from the
  first pruning layer to the last;
* the pooler and the classifier (a few rows per batch: nothing to gain), and a learned scorer (D x 1).

A dense graph (``--dense``) has no decision to protect: every projection is quantized, the strongest peer.

Schemes:

* ONNX Runtime, ``activations="dynamic"`` (the default): ``quantize_dynamic``; weights int8 per output channel,
  activations uint8 per tensor with scales computed at run time over the whole batch (no calibration), so a
  sentence's logits move with its batchmates (by up to 3e-3 on MiniLM, SST-2 dev, alone against batches of 32).
* ONNX Runtime, ``activations="static"``: ``quantize_static`` in QDQ form, weights int8 per output channel,
  activations uint8 per tensor with MinMax scales calibrated on ``CALIBRATION_ROWS`` seeded training sentences:
  a sentence gets the same logits and kept tokens alone and in any batch (bit for bit on the same sentences).
  Constant subgraphs (the fused Q/K/V weight is a Concat of three) are folded first by ONNX Runtime's basic
  optimisation level, so either quantizer sees constant weights.
* OpenVINO: ``nncf.quantize`` (transformer preset: SmoothQuant, fast bias correction) calibrated on
  ``CALIBRATION_ROWS`` seeded sentences of the task's training split, never dev.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.model import EncoderConfig
from ltp_deploy.output_locks import scratch_dir
from ltp_deploy.spec import PruningSpec

CALIBRATION_ROWS = 300
CALIBRATION_SEED = 0
KINDS = ("qkv", "out", "ffn_in", "ffn_out")  # the weight MatMuls of one layer, in execution order
ACTIVATIONS = ("dynamic", "static")  # ONNX Runtime's activation scales: per batch at run time, or calibrated
SCHEMES = {
    "onnx": "onnxruntime dynamic quantization: MatMul weights int8 per output channel, activations uint8 per "
            "tensor at run time",
    "onnx-static": "onnxruntime static quantization (QDQ): MatMul weights int8 per output channel, activations "
                   "uint8 per tensor, MinMax-calibrated",
    "openvino": "NNCF post-training quantization (transformer preset): weights int8 per channel, activations "
                "int8 calibrated",
}


@dataclass(frozen=True)
class Projection:
    """One weight MatMul of the graph: its node name, the encoder layer (None for the head) and its kind."""

    name: str
    layer: int | None
    kind: str  # one of KINDS, or "head"

    @property
    def label(self) -> str:
        return self.kind if self.layer is None else f"layer {self.layer} {self.kind}"


SCOPES = ("decisions", "all")  # what --int8-scope names: protect the keep decisions, or quantize every projection


def fp32_scope(cfg: EncoderConfig, spec: PruningSpec | None, scope: str = "decisions") -> set[tuple[int | None, str]]:
    """The (layer, kind) projections that stay fp32 (module docstring); the head is always among them.
    ``scope="all"`` quantizes every projection of the encoder (fastest; decisions move: agreement ~97%)."""
    keep: set[tuple[int | None, str]] = {(None, "head")}
    layers = spec.pruning_layers() if spec is not None else []
    if not layers or scope == "all":
        return keep
    keep |= {(layer, kind) for layer in range(layers[0]) for kind in KINDS}
    # A learned score reads the attention block's output: its output projection feeds the decision too.
    feeding = ("qkv", "out") if spec.scorer == "learned" else ("qkv",)
    # Idle layers between two pruning layers (threshold 0, ``train``'s idle pruners) count as pruning layers here:
    # quantizing their Q/K/V took SST-2's ONNX Runtime INT8 agreement from 99.08% to 98.97%, below the gate.
    return keep | {(layer, kind) for layer in range(layers[0], layers[-1] + 1) for kind in feeding}


def label_projections(matmuls: list[tuple[str, int, int]], cfg: EncoderConfig) -> list[Projection]:
    """Name each weight MatMul ``(name, in_dim, out_dim)``, given in execution order: four per layer (Q/K/V,
    output, feed-forward in and out; a learned scorer's D x 1 between the output and the feed-forward), then the
    head. Raises if the shapes do not follow that pattern."""
    d, i = cfg.hidden_size, cfg.intermediate_size
    shapes = {"qkv": (d, 3 * d), "out": (d, d), "ffn_in": (d, i), "ffn_out": (i, d)}
    labelled, n = [], 0  # n: the encoder projections seen so far
    for name, rows, cols in matmuls:
        if n < 4 * cfg.num_layers and (rows, cols) == (d, 1):
            labelled.append(Projection(name, n // 4, "scorer"))
            continue
        layer, kind = (n // 4, KINDS[n % 4]) if n < 4 * cfg.num_layers else (None, "head")
        if kind != "head" and (rows, cols) != shapes[kind]:
            raise LtpDeployError(f"INT8: weight MatMul {name} is {rows}x{cols} where layer {layer}'s {kind} "
                                 f"projection should be {shapes[kind][0]}x{shapes[kind][1]}: the graph does not "
                                 "have the encoder's layout; export it in fp32.")
        labelled.append(Projection(name, layer, kind))
        n += 1
    if n < 4 * cfg.num_layers:
        raise LtpDeployError(f"INT8: the graph has {n} weight MatMuls for {cfg.num_layers} layers (4 "
                             "each): it does not have the encoder's layout; export it in fp32.")
    return labelled


def split_scope(projections: list[Projection], cfg: EncoderConfig, spec: PruningSpec | None, scope: str):
    """(quantized, kept in fp32) projections under ``fp32_scope``; a learned scorer (D x 1) always stays fp32."""
    keep = fp32_scope(cfg, spec, scope)
    fp32 = [p for p in projections if (p.layer, p.kind) in keep or p.kind == "scorer"]
    return [p for p in projections if p not in fp32], fp32


def quantize_onnx(src: Path, dst: Path, cfg: EncoderConfig, spec: PruningSpec | None, scope: str = "decisions",
                  calibration: list[dict] | None = None, source: dict | None = None) -> dict:
    """Write the INT8 form of the fp32 graph ``src`` to ``dst``; return the metadata's ``quantization`` block.

    With ``calibration`` (feeds, one sentence each; ``source`` describes them) the activation scales are static
    (calibrated, batch-invariant), else dynamic (module docstring).
    """
    import onnx
    import onnxruntime as ort

    with scratch_dir("int8") as tmp:  # flocked and named by pid: a killed export's copy goes with the next one
        folded = tmp / "folded.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(str(folded)).graph
        weights = {t.name: tuple(t.dims) for t in graph.initializer}
        matmuls = [(n.name, *weights[n.input[1]]) for n in graph.node
                   if n.op_type == "MatMul" and len(weights.get(n.input[1], ())) == 2]
        projections = label_projections(matmuls, cfg)
        # The head's Linear layers export as Gemm, which the quantizer rewrites into "<name>_MatMul" + Add.
        projections += [Projection(f"{n.name}_MatMul", None, "head") for n in graph.node if n.op_type == "Gemm"]
        quantized, fp32 = split_scope(projections, cfg, spec, scope)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # "Please consider to run pre-processing": shape inference; not needed here
        try:
            _ort_quantize(folded, dst, [p.name for p in fp32], calibration)
        finally:
            root.setLevel(level)
    return _block("onnx" if calibration is None else "onnx-static", quantized, fp32, scope, calibration=source)


def _ort_quantize(src: Path, dst: Path, exclude: list[str], calibration: list[dict] | None) -> None:
    """ONNX Runtime's quantizer on the folded graph: dynamic, or static QDQ calibrated on ``calibration``."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_dynamic, quantize_static)

    common = {"op_types_to_quantize": ["MatMul"], "per_channel": True, "weight_type": QuantType.QInt8,
              "nodes_to_exclude": exclude, "extra_options": {"MatMulConstBOnly": True}}
    if calibration is None:
        quantize_dynamic(str(src), str(dst), **common)
        return

    class Feeds(CalibrationDataReader):
        def __init__(self):
            self.rows = iter(calibration)

        def get_next(self):
            return next(self.rows, None)

    quantize_static(str(src), str(dst), Feeds(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    calibrate_method=CalibrationMethod.MinMax, calibration_providers=["CPUExecutionProvider"],
                    **common)


def quantize_openvino(model, cfg: EncoderConfig, spec: PruningSpec | None, calibration: list[dict],
                      source: dict, scope: str = "decisions") -> tuple[object, dict]:
    """NNCF-quantize the fp32 ``openvino.Model``; ``calibration`` is a list of feeds (one sentence each).
    Returns the quantized model and the metadata's ``quantization`` block (``source`` describes the data)."""
    try:
        import nncf
    except ImportError:
        raise LtpDeployError("INT8 for OpenVINO needs NNCF, which is not installed: pip install nncf.") from None
    matmuls, attention = [], []
    for op in model.get_ordered_ops():
        if op.get_type_name() == "ScaledDotProductAttention":
            attention.append(op.get_friendly_name())
        elif op.get_type_name() == "MatMul":
            weight = _constant_source(op.input(1))
            if weight is None:
                attention.append(op.get_friendly_name())
            else:
                rows, cols = weight
                if op.get_attributes().get("transpose_b"):
                    rows, cols = cols, rows
                matmuls.append((op.get_friendly_name(), rows, cols))
    quantized, fp32 = split_scope(label_projections(matmuls, cfg), cfg, spec, scope)
    names = [*attention, *(p.name for p in fp32)]
    quiet = _NncfQuiet()
    with quiet:
        q = nncf.quantize(model, nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER,
                          subset_size=len(calibration), ignored_scope=nncf.IgnoredScope(names=names, validate=False))
    return q, _block("openvino", quantized, fp32, scope, calibration=source)


def missing_calibration(scheme: str) -> LtpDeployError:
    """The sentence refusing a calibrated ``scheme`` (e.g. "INT8 for OpenVINO") that was given no sentences."""
    return LtpDeployError(f"{scheme} is calibrated on training sentences: give --task TASK (a seeded slice of its "
                          "train split) or --calibration-data FILE.")


def calibration_set(tokenizer, examples, cfg: EncoderConfig, note: dict | None) -> tuple[list[dict], dict]:
    """(feeds, source): one feed per calibration sentence, and what the metadata records of them (``note``: e.g.
    split and seed)."""
    feeds = calibration_feeds(tokenizer, examples, cfg, cfg.max_length)
    return feeds, {"source": examples.source, "rows": len(feeds), **(note or {})}


def calibration_feeds(tokenizer, examples, cfg: EncoderConfig, max_length: int) -> list[dict[str, np.ndarray]]:
    """One feed per sentence (NNCF's unit), tokenised without padding."""
    from ltp_deploy.data import encode

    feeds = []
    for row in range(len(examples)):
        enc = encode(tokenizer, examples, max_length, indices=[row])
        feeds.append({name: enc[name] for name in cfg.input_names})
    return feeds


def _constant_source(port) -> tuple[int, int] | None:
    """The 2-D shape of the constant behind a MatMul input (through Convert/Transpose/Reshape), or None."""
    node = port.get_source_output().get_node()
    while node.get_type_name() in ("Convert", "Transpose", "Reshape", "Multiply", "Subtract"):
        node = node.input(0).get_source_output().get_node()
    if node.get_type_name() != "Constant":
        return None
    shape = tuple(port.get_partial_shape().to_shape())
    return shape if len(shape) == 2 else None


def _block(target: str, quantized: list[Projection], fp32: list[Projection], scope: str,
           calibration: dict | None) -> dict:
    return {"scheme": SCHEMES[target], "scope": scope, "quantized_matmuls": len(quantized),
            "fp32": ["attention core (QK^T, softmax, PV)", *(p.label for p in fp32)],
            "calibration": calibration}


class _NncfQuiet:
    """NNCF logs every ignored node and draws its own progress bars; an export prints one line."""

    def __enter__(self):
        import contextlib
        import io
        import logging

        self.logger = logging.getLogger("nncf")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)
        self.stack = contextlib.ExitStack()
        self.stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        self.stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
        return self

    def __exit__(self, *exc):
        self.stack.close()
        self.logger.setLevel(self.level)
        return False
