"""An export as a transformers model: ``PrunedModelForSequenceClassification`` for ``transformers.pipeline``.

Like Optimum's ``ORTModelForSequenceClassification``, the class is a ``PreTrainedModel`` whose forward runs a
graph, not torch: ``model(input_ids=..., attention_mask=...)`` returns a ``SequenceClassifierOutput`` whose
``logits`` come from the export's runtime (padding-free for a pruned graph), and ``last_kept_counts`` holds the
tokens kept per layer of that call. Its ``config`` holds the export's labels (``id2label``, ``num_labels``,
``problem_type``) under the model type ``ltp-deploy-pruned``, registered with transformers' Auto classes so that
pipelines accept it. It holds no torch parameters and runs where its runtime runs (``to`` another device is refused).

Example::

    from transformers import pipeline
    model = PrunedModelForSequenceClassification.from_pretrained("out/sst2-onnx", threads=2)
    classify = pipeline("text-classification", model=model, tokenizer=model.tokenizer)
    classify(["a gripping film", "tedious"])      # [{"label": "1", "score": 0.97}, {"label": "0", ...}]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from ltp_deploy.api import TextClassifier, load
from ltp_deploy.errors import LtpDeployError

MODEL_TYPE = "ltp-deploy-pruned"


class PrunedConfig(PretrainedConfig):
    """What a pipeline reads of the model: ``num_labels``, ``id2label`` / ``label2id``, ``problem_type``."""

    model_type = MODEL_TYPE


class PrunedModelForSequenceClassification(PreTrainedModel):
    """A loaded export behind transformers' model interface. Make one with ``from_pretrained``.

    Attributes:
        classifier: the ``api.TextClassifier`` it runs (``.runtime``, ``.tokenizer``); tokenizer: the export's own;
        last_kept_counts: ``(batch, layers)`` kept tokens of the last forward call.
    """

    config_class = PrunedConfig
    main_input_name = "input_ids"

    def __init__(self, config: PrunedConfig, classifier: TextClassifier):
        super().__init__(config)
        self.classifier = classifier
        self.tokenizer = classifier.tokenizer
        self.last_kept_counts: np.ndarray | None = None

    @classmethod
    def from_pretrained(cls, path: str | Path, *, backend: str | None = None, device: str = "cpu",
                        threads: int | None = None, **_ignored) -> PrunedModelForSequenceClassification:
        """Load an export folder (or a dense ONNX folder) with ``api.load``'s options.

        Raises:
            LtpDeployError: as ``api.load``.
        """
        classifier = load(path, backend=backend, device=device, threads=threads)
        labels = classifier.labels
        fields = {"num_labels": 1 if labels is None else len(labels), "pad_token_id": classifier.config.pad_token_id,
                  "max_position_embeddings": classifier.config.max_position_embeddings}
        if labels is None:
            fields["problem_type"] = "regression"
        else:
            fields.update(id2label=dict(enumerate(labels)), label2id={name: i for i, name in enumerate(labels)},
                          problem_type="single_label_classification")
        return cls(PrunedConfig(**fields), classifier)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, **_unused) -> SequenceClassifierOutput:
        """Run one right-padded batch through the graph; ``logits`` (B, num_labels) float32 on the CPU."""
        ids = _numpy(input_ids)
        batch = {"input_ids": ids, "attention_mask": np.ones_like(ids) if attention_mask is None else
                 _numpy(attention_mask), "token_type_ids": np.zeros_like(ids) if token_type_ids is None else
                 _numpy(token_type_ids)}
        logits, kept = self.classifier.runtime.run(batch)
        self.last_kept_counts = kept
        return SequenceClassifierOutput(logits=torch.from_numpy(np.ascontiguousarray(logits)))

    @property
    def device(self) -> torch.device:
        return torch.device(self.classifier.runtime.device)

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def to(self, *args, **kwargs) -> PrunedModelForSequenceClassification:
        """No-op on the runtime's own device; another device is refused (load it there instead)."""
        target = next((a for a in (*args, kwargs.get("device")) if isinstance(a, (str, torch.device))), None)
        if target is not None and torch.device(target).type != self.device.type:
            raise LtpDeployError(f"This model runs on its runtime's {self.device.type}: load it with "
                                 f"device={torch.device(target).type!r} instead of moving it.")
        return self

    @classmethod
    def can_generate(cls) -> bool:
        return False


def _numpy(t) -> np.ndarray:
    return (t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)).astype(np.int64)


AutoConfig.register(MODEL_TYPE, PrunedConfig, exist_ok=True)
AutoModelForSequenceClassification.register(PrunedConfig, PrunedModelForSequenceClassification, exist_ok=True)
