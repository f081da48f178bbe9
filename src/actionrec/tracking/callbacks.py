"""The Keras callback that logs every epoch to the active MLflow run.

Its own module, so that :mod:`~actionrec.tracking.runs` does not import Keras (and with it
TensorFlow, about 4 s of a process' start): ``compare@`` and ``actionrec track`` need runs,
not Keras.
"""

from __future__ import annotations

import keras

from actionrec.tracking.runs import metric_name


class EpochMetrics(keras.callbacks.Callback):
    """Log every epoch's logs to the active MLflow run: ``loss`` -> ``train_loss``,
    ``val_loss`` -> ``val_loss``, plus the optimizer's ``learning_rate``; step = epoch.
    The learning rate is also put into the epoch's ``logs``, so that the callbacks after
    this one (the ``EpochCheckpoint``: ``history.csv``) record it too, and
    :func:`~actionrec.tracking.recovery.finish_run` can log
    it from there when the server was away.

    Best effort: when the tracking server stops answering, training goes on; one line says
    so, later epochs are not sent, and :func:`~actionrec.tracking.recovery.finish_run` logs
    them from ``history.csv``.
    """

    def __init__(self, uri: str = "") -> None:
        super().__init__()
        self.uri = uri
        self.lost: Exception | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        import sys

        import mlflow

        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if logs is not None:
            logs["learning_rate"] = lr
        if self.lost is not None:
            return
        metrics = {metric_name(k): float(v) for k, v in (logs or {}).items()}
        metrics["learning_rate"] = lr
        try:
            mlflow.log_metrics(metrics, step=epoch)
        except Exception as err:  # noqa: BLE001 (any failure of the tracking call)
            self.lost = err
            print(f"warning: the MLflow tracking server {self.uri} stopped answering at epoch "
                  f"{epoch + 1} ({type(err).__name__}); training goes on and its epochs are "
                  "logged when the run is finished", file=sys.stderr, flush=True)
