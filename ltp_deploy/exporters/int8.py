"""INT8 graphs: static post-training quantization with NNCF (ONNX Runtime and OpenVINO alike) or ONNX Runtime's
dynamic quantization, each gated on the task metric, with as few projections left in fp32 as pass the gate.

A threshold rule flips every token whose score sits near its threshold, so quantization error upstream of a
score changes the kept sets; INT8 noise alone also flips sentences near the decision boundary (the dense graph of
the same weights agrees with its fp32 graph on ~99% of SST-2 dev). What a user loses is task metric, so that is
the gate (``validate.OutcomeReport``, default 0.5 point), the same for pruned and dense graphs.

Scopes (``fp32_scope``), tried in this order by the default ``auto`` until one passes; the attention core (QK^T,
softmax, PV: the probabilities are the score), the pooler and classifier, and a learned scorer (D x 1) always
stay fp32:

* ``all``: every projection quantized. The fastest; on the 2x SST-2 checkpoint (NNCF, SST-2 dev, 872 sentences)
  accuracy falls 0.57 point on both runtimes (layer-1 kept counts equal in half the sentences): refused.
* ``prefix``: the layers before the first pruning layer, which run on every token, stay fp32: the first decision
  is computed from fp32 hidden states. Same checkpoint: -0.00 (ONNX Runtime) / +0.11 (OpenVINO) point, 98.85% /
  99.20% of predictions as fp32: the default's choice there.
* ``decisions``: also the Q/K/V projections of every layer from the first pruning layer to the last (what each
  score is computed from; idle layers between two pruning layers count).

A dense graph (``--dense``) has no decision to protect: every projection is quantized.

Schemes:

* static (the default): ``nncf.quantize`` (transformer preset: SmoothQuant, fast bias correction), weights int8
  per channel, activations int8 per tensor with scales calibrated on ``CALIBRATION_ROWS`` seeded sentences of the
  task's training split (never dev). A sentence gets the same answer alone and in any batch. On ONNX Runtime the
  result is a QDQ graph; its embedding tables stay fp32 (``_nncf_onnx``). ONNX Runtime's own static quantizer was
  measured and dropped: on the dense MiniLM its MinMax scales kept 95.4% of predictions (Percentile 95.8%) where
  NNCF keeps 99.3%, at the same speed.
* ``activations="dynamic"`` (ONNX Runtime only): ``quantize_dynamic``; weights int8 per output channel, activations
  uint8 per tensor with scales computed at run time over the whole batch (no calibration), so a sentence's
  logits move with its batchmates.

Constant subgraphs (the fused Q/K/V weight is a Concat of three) are folded first by ONNX Runtime's basic
optimisation level, so either quantizer sees constant weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.exporters.validate import INT8_MAX_METRIC_DROP
from ltp_deploy.encoder_config import EncoderConfig
from ltp_deploy.output_locks import scratch_dir
from ltp_deploy.spec import PruningSpec

CALIBRATION_ROWS = 300
CALIBRATION_SEED = 0
KINDS = ("qkv", "out", "ffn_in", "ffn_out")  # the weight MatMuls of one layer, in execution order
ACTIVATIONS = ("dynamic", "static")  # ONNX Runtime's activation scales: per batch at run time, or calibrated
SCHEMES = {
    "onnx": "onnxruntime dynamic quantization: MatMul weights int8 per output channel, activations uint8 per "
            "tensor at run time",
    "onnx-static": "NNCF post-training quantization (transformer preset) in QDQ form for onnxruntime: MatMul "
                   "weights int8 per channel, activations int8 per tensor, calibrated; embedding tables fp32",
    "openvino": "NNCF post-training quantization (transformer preset): weights int8 per channel, activations "
                "int8 calibrated",
}


@dataclass(frozen=True)
class Int8Options:
    """How an INT8 export quantizes and when it passes (``export_onnx`` / ``export_openvino`` with
    ``precision="int8"``).

    Attributes:
        scope: "auto" (default: "all", then "prefix", then "decisions", the first that passes the gate; a dense
            graph: "all"), or one of "all", "prefix", "decisions" (``fp32_scope``).
        activations: ONNX Runtime's activation scales, "static" (default; calibrated, batch-invariant) or
            "dynamic" (per batch at run time, no calibration). OpenVINO's NNCF is always static.
        calibration: training sentences for static scales (never dev); ``calibration_note`` is what the metadata
            records of them (e.g. split and seed).
        max_metric_drop: the gate: points of the task's primary metric the INT8 graph may lose against the fp32
            model on the validation sentences (None: not gated; then ``min_agreement`` must be given).
        min_agreement, atol: optional further gates on prediction agreement and on max |logit diff|.
    """

    scope: str = "auto"
    activations: str = "static"
    calibration: object = None  # data.Examples
    calibration_note: dict | None = None
    max_metric_drop: float | None = INT8_MAX_METRIC_DROP
    min_agreement: float | None = None
    atol: float | None = None

    def checked(self, target: str, spec: PruningSpec | None) -> "Int8Options":
        """Self, after refusing values no export can use (one sentence each)."""
        import math

        scope_trials(self.scope, spec)
        if self.activations not in ACTIVATIONS:
            raise LtpDeployError(f"Unknown --int8-activations {self.activations!r}: use {' or '.join(ACTIVATIONS)}.")
        if self.max_metric_drop is not None and not (math.isfinite(self.max_metric_drop) and self.max_metric_drop >= 0):
            raise LtpDeployError(f"--max-metric-drop must be a finite number of points >= 0, got "
                                 f"{self.max_metric_drop}: e.g. 0.5.")
        if self.min_agreement is not None and not 0 < self.min_agreement <= 1:
            raise LtpDeployError(f"--min-agreement {self.min_agreement} is a fraction in (0, 1]: e.g. 0.99.")
        if self.atol is not None and not (math.isfinite(self.atol) and self.atol >= 0):
            raise LtpDeployError(f"atol must be a finite number >= 0, got {self.atol}: e.g. --atol 2.")
        if self.max_metric_drop is None and self.min_agreement is None:
            raise LtpDeployError("An INT8 export needs a gate: keep --max-metric-drop or give --min-agreement.")
        if self.static(target) and (self.calibration is None or len(self.calibration) == 0):
            raise missing_calibration("INT8 for OpenVINO" if target == "openvino" else
                                      "Static INT8 (the default on ONNX Runtime; --int8-activations dynamic needs "
                                      "none)")
        return self

    def static(self, target: str) -> bool:
        """Whether activation scales are calibrated on ``target``."""
        return target == "openvino" or self.activations == "static"


@dataclass(frozen=True)
class Projection:
    """One weight MatMul of the graph: its node name, the encoder layer (None for the head) and its kind."""

    name: str
    layer: int | None
    kind: str  # one of KINDS, or "head"

    @property
    def label(self) -> str:
        return self.kind if self.layer is None else f"layer {self.layer} {self.kind}"


# What --int8-scope names, from most to least quantized: every projection ("all"); all but the layers before the
# first pruning layer, which run on every token ("prefix"); all but what feeds the keep decisions ("decisions");
# or those in that order, keeping the first that passes the gate ("auto", the default).
SCOPES = ("auto", "all", "prefix", "decisions")


def scope_trials(scope: str, spec: PruningSpec | None) -> tuple[str, ...]:
    """The scopes an export tries, in order, for ``--int8-scope scope``; a dense graph has nothing to protect, and
    "prefix" is "all" when layer 0 prunes."""
    if scope not in SCOPES:
        raise LtpDeployError(f"Unknown --int8-scope {scope!r}: use {', '.join(SCOPES)}.")
    layers = spec.pruning_layers() if spec is not None else []
    if not layers:
        return ("all",)
    if scope != "auto":
        return (scope,)
    return ("all", "decisions") if layers[0] == 0 else ("all", "prefix", "decisions")


def fp32_scope(cfg: EncoderConfig, spec: PruningSpec | None, scope: str = "decisions") -> set[tuple[int | None, str]]:
    """The (layer, kind) projections that stay fp32 under ``scope`` (``SCOPES``; module docstring); the head always
    stays fp32."""
    keep: set[tuple[int | None, str]] = {(None, "head")}
    layers = spec.pruning_layers() if spec is not None else []
    if not layers or scope == "all":
        return keep
    keep |= {(layer, kind) for layer in range(layers[0]) for kind in KINDS}
    if scope == "prefix":
        return keep
    # A learned score reads the attention block's output: its output projection feeds the decision too.
    feeding = ("qkv", "out") if spec.scorer == "learned" else ("qkv",)
    # Idle layers between two pruning layers (threshold 0, ``train``'s idle pruners) count as pruning layers here:
    # quantizing their Q/K/V moved more decisions (docs/results/int8-history.md).
    return keep | {(layer, kind) for layer in range(layers[0], layers[-1] + 1) for kind in feeding}


def label_projections(matmuls: list[tuple[str, int, int]], cfg: EncoderConfig) -> list[Projection]:
    """Name each weight MatMul ``(name, in_dim, out_dim)``, given in execution order: per layer Q/K/V (one D x 3D
    GEMM, or three D x D ones where the OpenVINO graph fuses the layer's attention), the output, feed-forward in
    and out (a learned scorer's D x 1 between the output and the feed-forward), then the head. Raises if the
    shapes do not follow that pattern."""
    d, i = cfg.hidden_size, cfg.intermediate_size
    shapes = {"out": (d, d), "ffn_in": (d, i), "ffn_out": (i, d)}
    labelled, layer, left, qkv = [], 0, [], None  # left: the kinds the current layer still has; qkv: its Q/K/V shape
    for name, rows, cols in matmuls:
        if layer < cfg.num_layers and (rows, cols) == (d, 1):
            labelled.append(Projection(name, layer, "scorer"))
            continue
        if layer == cfg.num_layers:
            labelled.append(Projection(name, None, "head"))
            continue
        if not left:  # a layer starts: its first GEMM says which form its Q/K/V take
            separate = (rows, cols) == (d, d)
            left, qkv = ["qkv"] * (3 if separate else 1) + list(KINDS[1:]), ((d, d) if separate else (d, 3 * d))
        kind = left.pop(0)
        expected = qkv if kind == "qkv" else shapes[kind]
        if (rows, cols) != expected:
            raise LtpDeployError(f"INT8: weight MatMul {name} is {rows}x{cols} where layer {layer}'s {kind} "
                                 f"projection should be {expected[0]}x{expected[1]}: the graph does not "
                                 "have the encoder's layout; export it in fp32.")
        labelled.append(Projection(name, layer, kind))
        layer += not left
    if layer < cfg.num_layers:
        raise LtpDeployError(f"INT8: the graph's weight MatMuls cover {layer} of {cfg.num_layers} layers (4 each, "
                             "or 6 with Q, K and V apart): it does not have the encoder's layout; export it in fp32.")
    return labelled


def split_scope(projections: list[Projection], cfg: EncoderConfig, spec: PruningSpec | None, scope: str):
    """(quantized, kept in fp32) projections under ``fp32_scope``; a learned scorer (D x 1) always stays fp32."""
    keep = fp32_scope(cfg, spec, scope)
    fp32 = [p for p in projections if (p.layer, p.kind) in keep or p.kind == "scorer"]
    return [p for p in projections if p not in fp32], fp32


def quantize_onnx(src: Path, dst: Path, cfg: EncoderConfig, spec: PruningSpec | None, scope: str = "all",
                  calibration: list[dict] | None = None, source: dict | None = None) -> dict:
    """Write the INT8 form of the fp32 graph ``src`` to ``dst``; return the metadata's ``quantization`` block.

    With ``calibration`` (feeds, one sentence each; ``source`` describes them) the activation scales are static:
    NNCF's post-training quantization of the ONNX graph, in QDQ form; without, ONNX Runtime's dynamic
    quantization (module docstring).
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
        # The head's Linear layers export as Gemm; the dynamic quantizer rewrites them into "<name>_MatMul" + Add.
        gemms = [n.name for n in graph.node if n.op_type == "Gemm"]
        projections += [Projection(f"{name}_MatMul", None, "head") for name in gemms]
        quantized, fp32 = split_scope(projections, cfg, spec, scope)
        # The attention core (QK^T, PV: no constant weight) stays fp32: quantizing the softmax moves every score
        # (measured with ONNX Runtime's static quantizer, which ignores MatMulConstBOnly: a fifth of SST-2's
        # layer-1 kept counts changed even with a single projection after the last decision quantized).
        core = [n.name for n in graph.node if n.op_type == "MatMul" and len(weights.get(n.input[1], ())) != 2]
        exclude = [*core, *gemms, *(p.name for p in fp32)]
        if calibration is None:
            _ort_dynamic(folded, dst, exclude)
        else:
            _nncf_onnx(folded, dst, exclude, calibration)
    return _block("onnx" if calibration is None else "onnx-static", quantized, fp32, scope, calibration=source)


def _ort_dynamic(src: Path, dst: Path, exclude: list[str]) -> None:
    """ONNX Runtime's dynamic quantizer on the folded graph: MatMul weights int8 per output channel."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # "Please consider to run pre-processing": shape inference; not needed here
    try:
        quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul"], per_channel=True,
                         weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
                         extra_options={"MatMulConstBOnly": True})
    finally:
        root.setLevel(level)


def _nncf_onnx(src: Path, dst: Path, exclude: list[str], calibration: list[dict]) -> None:
    """NNCF's post-training quantization of the folded ONNX graph (QDQ), as ``quantize_openvino`` does for the IR.

    The embedding tables (Gather) stay fp32: ONNX Runtime does not fold a DequantizeLinear of a constant, so an
    int8 table would be dequantized whole on every call (measured: the dense MiniLM at batch 1 ran x0.92 of its
    fp32 graph with int8 tables, x1.60 without).
    """
    import onnx

    nncf = _import_nncf("INT8 with static activations on ONNX Runtime")
    with _NncfQuiet():
        model = nncf.quantize(onnx.load(str(src)), nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(calibration),
                              ignored_scope=nncf.IgnoredScope(names=exclude, types=["Gather"], validate=False))
    onnx.save(model, str(dst))


def _import_nncf(scheme: str):
    try:
        import nncf
    except ImportError:
        raise LtpDeployError(f"{scheme} needs NNCF, which is not installed: pip install nncf.") from None
    return nncf


def quantize_openvino(model, cfg: EncoderConfig, spec: PruningSpec | None, calibration: list[dict],
                      source: dict, scope: str = "all") -> tuple[object, dict]:
    """NNCF-quantize the fp32 ``openvino.Model``; ``calibration`` is a list of feeds (one sentence each).
    Returns the quantized model and the metadata's ``quantization`` block (``source`` describes the data)."""
    nncf = _import_nncf("INT8 for OpenVINO")
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
