"""Everything MLflow, one module per job. Import the module you need; this package's
``__init__`` imports none of them, so a stage depends only on the jobs it uses.

- :mod:`~actionrec.tracking.store`: the tracking URI (resolved once per command:
  ``$MLFLOW_TRACKING_URI``, else ``mlflow.tracking_uri`` in params, else
  ``sqlite:///<repo>/mlflow.db``), whether a server answers, the experiment
  (``actionrec-<profile>`` unless ``mlflow.experiment`` names one; artifacts of a local
  store under ``<repo>/mlruns``). No Keras, no TensorFlow.
- :mod:`~actionrec.tracking.links`: MLflow UI links (the runs table, the compare view of
  the five runs in MLflow 3's model-training view).
- :mod:`~actionrec.tracking.lineage`: each run's data as MLflow datasets (the manifest
  rows of every split it used, the frame or feature store), digests from ``dvc.lock``.
- :mod:`~actionrec.tracking.runs`: one run per architecture per pipeline run, named after
  it and tagged with the git commit, DVC stage and profile; per-epoch metrics with the same
  names for the five architectures (``train_loss``, ``val_accuracy``, ``test_macro_f1``...)
  so the UI's compare view lines them up; the model logged as an MLflow pyfunc wrapping the
  ``.keras`` file (``actionrec`` as code, so it loads anywhere), registered as
  ``actionrec-<arch>``; test results; the ``champion`` alias; loading a logged model.
  No Keras at import (``compare@`` starts 4 s sooner).
- :mod:`~actionrec.tracking.callbacks`: the Keras callback that logs every epoch.
- :mod:`~actionrec.tracking.recovery`: a trained model's run that the server missed is
  kept on disk and logged later (``actionrec track``).
"""
