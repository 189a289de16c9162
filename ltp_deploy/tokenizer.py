"""A checkpoint's tokenizer: loaded without running any code the folder ships, saved as its known files only.

Example::

    tokenizer = load_tokenizer("runs/sst2-hold", vocab_size=30522)
    save_tokenizer(tokenizer, "out/export")          # tokenizer.json, tokenizer_config.json, ...
"""

from __future__ import annotations

from pathlib import Path

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.paths import read_json

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.txt", "vocab.json", "merges.txt", "sentencepiece.bpe.model", "spiece.model")


def load_tokenizer(folder: str | Path, vocab_size: int | None = None):
    """The checkpoint's tokenizer: ``AutoTokenizer``, or RoBERTa byte-level BPE built from bare
    ``vocab.json`` + ``merges.txt`` (what LTP folders ship; transformers 5 turns those into a 5-token tokenizer).

    Raises:
        LtpDeployError: no tokenizer files, or a tokenizer far smaller than the model's ``vocab_size``.
    """
    from transformers import AutoTokenizer

    folder = Path(folder)
    _refuse_custom_code(folder)
    try:
        if not (folder / "tokenizer.json").is_file() and (folder / "vocab.json").is_file() \
                and (folder / "merges.txt").is_file():
            tokenizer = _roberta_bpe(folder)
        else:  # trust_remote_code=False: never run (or ask to run) code shipped in the folder
            tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    except Exception as e:  # noqa: BLE001 - tokenizer files that do not parse fail in many ways; all mean the same
        raise LtpDeployError(
            f"No usable tokenizer in {folder} ({type(e).__name__}): save the model's own tokenizer files "
            "(tokenizer.json, or vocab.json + merges.txt) beside config.json."
        ) from None
    if vocab_size and not vocab_size // 2 <= len(tokenizer) <= vocab_size:
        raise LtpDeployError(
            f"The tokenizer in {folder} has {len(tokenizer)} tokens but the model's vocabulary has {vocab_size}: the "
            "files are incomplete or not this model's; save the model's own tokenizer (tokenizer.json) beside "
            "config.json."
        )
    return tokenizer


def save_tokenizer(tokenizer, folder: str | Path) -> None:
    """Save ``tokenizer`` into ``folder``, keeping only the known tokenizer files (``TOKENIZER_FILES``)."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ltp-deploy-tokenizer-") as tmp:
        tokenizer.save_pretrained(tmp)
        for name in TOKENIZER_FILES:
            if (Path(tmp) / name).is_file():
                shutil.copyfile(Path(tmp) / name, Path(folder) / name)


def _refuse_custom_code(folder: Path) -> None:
    """A tokenizer that declares its own Python code (``auto_map``) is refused: no code in a checkpoint runs."""
    config = folder / "tokenizer_config.json"
    if not config.is_file():
        return
    declared = read_json(config).get("auto_map")
    py_files = sorted(p.name for p in folder.glob("*.py"))
    if declared:
        raise LtpDeployError(
            f"{config} declares custom tokenizer code (auto_map{', ' + ', '.join(py_files) if py_files else ''}), "
            "which ltp-deploy refuses to run: save a standard tokenizer (tokenizer.json from a stock "
            "transformers tokenizer) beside config.json."
        )


def _roberta_bpe(folder: Path):
    from tokenizers import ByteLevelBPETokenizer, processors
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    specials = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
                "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>"}
    bpe._tokenizer.post_processor = processors.RobertaProcessing(("</s>", bpe.token_to_id("</s>")),
                                                                 ("<s>", bpe.token_to_id("<s>")))
    return RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, **specials)
