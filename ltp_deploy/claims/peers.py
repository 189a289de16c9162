"""The INT8 peers a user would deploy instead of a pruned graph, made from Optimum's dense export of the same dense
checkpoint (the ``optimum`` step of a claims run):

* ONNX Runtime: ``optimum-cli onnxruntime quantize --onnx_model OPTIMUM --avx2 -o OUT`` (Optimum's dynamic
  quantization; it writes ``model_quantized.onnx`` beside the config), a step of its own (``ort_peer_argv``);
* OpenVINO: NNCF post-training quantization of that same graph converted to an IR (``nncf_peer``), what
  optimum-intel's ``OVQuantizer`` does (transformer preset), calibrated on the training sentences ltp-deploy's own
  INT8 exports use (``exporters.int8.CALIBRATION_ROWS`` seeded rows of the task's train split).

Run the OpenVINO one as ``python -m ltp_deploy.claims.peers OPTIMUM OUT --task TASK``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ORT_PEER_GRAPH = "model_quantized.onnx"  # what `optimum-cli onnxruntime quantize` names its graph
OV_PEER_GRAPH = "model.xml"


def ort_peer_argv(optimum_cli: str, optimum: Path, out: Path) -> list[str]:
    """The command that makes Optimum's INT8 graph for ONNX Runtime from its dense export ``optimum``."""
    return [optimum_cli, "onnxruntime", "quantize", "--onnx_model", str(optimum), "--avx2", "-o", str(out)]


def nncf_peer(optimum: Path, out: Path, task: str, overwrite: bool = True) -> Path:
    """NNCF-quantize the foreign dense graph in ``optimum`` for OpenVINO and write ``out/model.xml`` with copies of
    its ``config.json`` and tokenizer files (so ``bench --compare`` opens it as a foreign dense graph).

    Raises:
        LtpDeployError: ``optimum`` is not a foreign dense export, the task has no training split, or NNCF is
            missing.
    """
    import openvino as ov

    from ltp_deploy.artifact import HF_CONFIG, open_foreign
    from ltp_deploy.tokenizer import TOKENIZER_FILES, load_tokenizer
    from ltp_deploy.data import load_examples
    from ltp_deploy.exporters.int8 import (CALIBRATION_ROWS, CALIBRATION_SEED, _import_nncf, _NncfQuiet,
                                           calibration_feeds)
    from ltp_deploy.outputs import atomic_dir

    nncf = _import_nncf("The OpenVINO INT8 peer")
    art = open_foreign(optimum)
    tokenizer = load_tokenizer(art.folder)
    pool = load_examples(None, task, "train").subset(CALIBRATION_ROWS, seed=CALIBRATION_SEED)
    model = ov.convert_model(str(art.graph))
    names = {name for port in model.inputs for name in port.get_names()}
    feeds = [{k: v for k, v in feed.items() if k in names}
             for feed in calibration_feeds(tokenizer, pool, art.config, art.config.max_length)]
    with _NncfQuiet():
        quantized = nncf.quantize(model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(feeds))
    with atomic_dir(out, "export", inputs=(optimum,), overwrite=overwrite) as tmp:
        ov.save_model(quantized, str(tmp / OV_PEER_GRAPH), compress_to_fp16=False)
        for name in (HF_CONFIG, *TOKENIZER_FILES):
            if (art.folder / name).is_file():
                shutil.copy2(art.folder / name, tmp / name)
    return Path(out) / OV_PEER_GRAPH


def main(argv: list[str] | None = None) -> int:
    from ltp_deploy.errors import LtpDeployError

    parser = argparse.ArgumentParser(prog="python -m ltp_deploy.claims.peers",
                                     description="NNCF INT8 of a foreign dense ONNX export, for OpenVINO.")
    parser.add_argument("optimum", type=Path, help="the dense export (optimum-cli export onnx)")
    parser.add_argument("out", type=Path, help="the folder to write (model.xml, config, tokenizer)")
    parser.add_argument("--task", required=True, help="the task whose training split calibrates it")
    args = parser.parse_args(argv)
    try:
        graph = nncf_peer(args.optimum, args.out, args.task)
    except LtpDeployError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {graph} (NNCF INT8 of {args.optimum})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
