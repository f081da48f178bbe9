"""``models/<arch>/meta.json``: what a trained model is, and how its input is made.

One typed reader and writer, used by training (writes it beside ``model.keras``),
evaluation, ``actionrec predict`` and the MLflow pyfunc model (read it). The input
contract (``classes``, ``sequence_length``, ``image_size``, ``sampling``,
``short_clip``, ``crop``) is what predict needs to turn a video into the model's
``(N, T, S, S, 3)`` uint8 RGB input exactly as training did.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from actionrec.errors import ActionrecError
from actionrec.io import write_json

META_FILE = "meta.json"

#: Keys of ``meta.json`` that the input contract needs.
CONTRACT_KEYS = ("classes", "sequence_length", "image_size", "sampling", "short_clip", "crop")


class MetaError(ActionrecError):
    """A ``meta.json`` is missing, not JSON, or lacks keys of the input contract."""


class ModelMeta(BaseModel):
    """The content of ``meta.json``.

    Attributes:
        architecture: ``models.<name>`` key (``lrcn``...).
        classes: class names; index = output column of the model's ``(N, C)`` softmax.
        sequence_length: ``T``, frames per clip.
        image_size: ``S``, square side of each frame in pixels.
        sampling, short_clip, crop: ``frames.*`` of params.yaml at training time
            (:func:`~actionrec.data.video.sample_indices`,
            :func:`~actionrec.data.video.crop_resize`).
        trained_on: ``frames`` (end to end) or ``features`` (head on cached backbone features).
        epochs_trained: epochs run (early stopping may end before ``epochs``).
        mlflow_run_id, mlflow_experiment: the training run in MLflow.
        parameters: the whole model's parameter count (backbone included).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    architecture: str | None = None
    classes: list[str] = Field(min_length=1)
    num_classes: int | None = None
    sequence_length: int = Field(gt=0)
    image_size: int = Field(gt=0)
    sampling: Literal["uniform", "first"]
    short_clip: Literal["pad", "loop"]
    crop: Literal["center", "none"]
    input: str = "uint8 RGB (N, T, S, S, 3)"
    trained_on: Literal["frames", "features"] | None = None
    epochs_trained: int | None = None
    seed: int | None = None
    mlflow_run_id: str | None = None
    mlflow_experiment: str | None = None
    parameters: int | None = None

    @classmethod
    def from_mapping(cls, data: dict, source: str) -> ModelMeta:
        """Validate a ``meta.json`` mapping.

        Raises:
            MetaError: a contract key is missing or of the wrong type; ``source`` names
                the file or model in the message.
        """
        missing = [k for k in CONTRACT_KEYS if k not in data]
        if missing:
            raise MetaError(f"{source}: meta.json lacks {missing}; was this model saved by "
                            "`actionrec train`?")
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            bad = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise MetaError(f"{source}: meta.json is invalid ({bad})") from None

    @classmethod
    def read(cls, path: str | Path) -> ModelMeta:
        """Read ``path`` (a ``meta.json``, or the model folder holding one).

        Raises:
            MetaError: the file is missing or invalid (the message says which).
        """
        path = Path(path)
        file = path / META_FILE if path.is_dir() else path
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise MetaError(f"{file} is missing: it is written by training beside "
                            "model.keras (the input contract and the classes)") from None
        except json.JSONDecodeError as err:
            raise MetaError(f"{file} is not JSON: {err}") from None
        return cls.from_mapping(data, str(file))

    def write(self, model_dir: str | Path) -> Path:
        """Write ``<model_dir>/meta.json`` atomically; returns its path."""
        file = Path(model_dir) / META_FILE
        write_json(file, self.model_dump(mode="json"))
        return file
