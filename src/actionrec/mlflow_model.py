"""The MLflow pyfunc model of actionrec, logged as code ("models from code").

``mlflow.pyfunc.load_model(uri).predict(frames)`` takes ``(N, T, S, S, 3)`` uint8 RGB
frames (the contract in the model's ``meta.json``: sequence length, image size,
sampling, crop) and returns a DataFrame of class probabilities, one column per class.
The artifacts are the ``.keras`` file and its ``meta.json``; the ``actionrec``
package travels as code, so the custom layers load in safe mode anywhere.
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd


class VideoClassifier(mlflow.pyfunc.PythonModel):
    """Frames -> class probabilities, from a saved actionrec ``.keras`` model."""

    def load_context(self, context) -> None:
        import keras

        import actionrec.models.layers  # noqa: F401  (registers the custom layers)
        from actionrec.model_meta import ModelMeta

        self.model = keras.models.load_model(context.artifacts["keras_model"], safe_mode=True)
        # a plain mapping (predict reads it back through ModelMeta), validated on load
        self.meta = ModelMeta.read(context.artifacts["meta"]).model_dump(mode="json")

    # The hint is the one MLflow 3 leaves alone (no schema is inferred from np.ndarray): the
    # model is logged with an explicit tensor signature (tracking.runs.log_model), and without
    # a hint MLflow warns at import that one should be added.
    def predict(self, context, model_input: np.ndarray, params=None) -> pd.DataFrame:
        x = np.asarray(model_input, dtype=np.uint8)
        probs = self.model.predict(x, verbose=0)
        return pd.DataFrame(probs, columns=self.meta["classes"])


mlflow.models.set_model(VideoClassifier())
