"""Input limits of a bare graph (no export metadata or config.json beside it), read from its embedding tables.

A BERT/RoBERTa graph looks its inputs up in three tables, each the data input of a ``Gather``: the word table
(``vocab_size`` rows), the position table (``max_position_embeddings`` rows) and the token-type table
(``type_vocab_size`` rows). ltp-deploy exports, Optimum exports and ``torch.onnx`` keep the Hugging Face names
(``*.word_embeddings.weight``, ``*.position_embeddings.weight``, ``*.token_type_embeddings.weight``) on those
tensors, in ONNX and in OpenVINO IR alike, so a table is found as a 2-D constant, read by a ``Gather``, whose name
holds one of those stems. Only shapes are read: for ONNX, the initializer dims without loading the weights.

RoBERTa numbers positions from ``pad_token_id + 1`` (``positions = cumsum(ids != pad) + pad``), so its longest
input is ``positions - pad - 1`` (``EncoderConfig.max_length``). Its graph compares ``input_ids`` with the pad
id (an ``Equal``/``NotEqual`` of the input and a scalar constant); a BERT graph never does, and its longest input is
the position table's row count. A table that is not found, or a RoBERTa-named graph whose pad id is not found,
leaves that limit None (unchecked); no table at all gives None, as before.

Example::

    onnx_graph_limits("bare/model.onnx")           # InputLimits(vocab_size=30522, type_vocab_size=2, max_length=512)
    openvino_graph_limits(ov.Core().read_model("bare/model.xml"))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ltp_deploy.runtimes.inputs import InputLimits

TABLES = {"word_embeddings": "vocab", "position_embeddings": "positions", "token_type_embeddings": "types"}
_DEQUANTIZE = ("Convert", "Subtract", "Multiply")  # fp16 / int8 weights reach the Gather through these (OpenVINO)


def onnx_graph_limits(path: str | Path) -> InputLimits | None:
    """The limits of the ONNX graph at ``path``, from its initializer (and ``Constant``) shapes; weights are not
    loaded. None when the graph holds none of the three tables."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path), load_external_data=False).graph
    tensors = {t.name: t for t in graph.initializer}
    tensors.update({n.output[0]: a.t for n in graph.node if n.op_type == "Constant" for a in n.attribute
                    if a.name == "value"})
    quantized = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}  # int8 (QDQ)
    rows: dict[str, int] = {}
    pad = None
    for node in graph.node:
        table = quantized.get(node.input[0], node.input[0]) if node.op_type == "Gather" else None
        if table in tensors and len(tensors[table].dims) == 2:
            _add_table(rows, table, int(tensors[table].dims[0]))
        elif node.op_type == "Equal" and "input_ids" in node.input:
            other = tensors.get(next((i for i in node.input if i != "input_ids"), ""))
            if other is not None and not other.dims and other.data_location != onnx.TensorProto.EXTERNAL:
                pad = _scalar_id(numpy_helper.to_array(other))
    return limits_of_tables(rows, pad, roberta=_named_roberta(tensors))


def openvino_graph_limits(model) -> InputLimits | None:
    """The limits of an ``openvino.Model`` (``Core.read_model`` of an IR or an ONNX file), from its ``Constant``
    shapes. None when the graph holds none of the three tables."""
    rows: dict[str, int] = {}
    pad, names = None, set()
    for op in model.get_ops():
        kind = op.get_type_name()
        if kind == "Gather":
            table = _constant_source(op.input_value(0).get_node())
            if table is not None and len(table.get_output_shape(0)) == 2:
                table_names = {table.get_friendly_name(), *table.output(0).get_names()}
                names |= table_names
                for name in table_names:
                    _add_table(rows, name, int(table.get_output_shape(0)[0]))
        elif kind in ("Equal", "NotEqual"):
            pad = _pad_compared(op) if pad is None else pad
    return limits_of_tables(rows, pad, roberta=any("roberta" in n for n in names))


def limits_of_tables(rows: dict[str, int], pad: int | None, roberta: bool = False) -> InputLimits | None:
    """``InputLimits`` from table row counts (``rows`` keyed "vocab", "positions", "types") and the pad id the graph
    compares ``input_ids`` with (RoBERTa; None for BERT). A RoBERTa-named graph (``roberta``) without a pad id has
    no known length limit. None when no table was found."""
    if not rows:
        return None
    positions = rows.get("positions")
    if positions is not None and pad is not None:
        max_length = positions - pad - 1  # RoBERTa reserves pad_token_id + 1 slots (EncoderConfig.max_length)
        max_length = max_length if max_length > 0 else None
    else:
        max_length = None if roberta else positions
    return InputLimits(rows.get("vocab"), rows.get("types"), max_length)


def _add_table(rows: dict[str, int], name: str, count: int) -> None:
    for stem, key in TABLES.items():
        if stem in name:
            rows.setdefault(key, count)


def _named_roberta(tensors) -> bool:
    return any("roberta" in name and any(stem in name for stem in TABLES) for name in tensors)


def _constant_source(node):
    """The ``Constant`` a Gather's data comes from, through fp16/int8 decompression ops; None if not constant."""
    while node.get_type_name() in _DEQUANTIZE:
        node = node.input_value(0).get_node()
    return node if node.get_type_name() == "Constant" else None


def _pad_compared(op) -> int | None:
    """The scalar id an ``Equal``/``NotEqual`` compares the ``input_ids`` parameter with, else None."""
    nodes = [v.get_node() for v in op.input_values()]
    if not any(n.get_type_name() == "Parameter" and "input_ids" in n.output(0).get_names() for n in nodes):
        return None
    for node in nodes:
        if node.get_type_name() == "Constant" and int(np.prod(node.get_output_shape(0), dtype=np.int64)) == 1:
            return _scalar_id(node.get_data())
    return None


def _scalar_id(value) -> int | None:
    array = np.asarray(value)
    return int(array.reshape(-1)[0]) if array.size == 1 and array.dtype.kind in "iu" else None
