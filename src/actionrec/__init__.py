"""actionrec: human action recognition pipeline (UCF101, CNN-RNN, DVC + MLflow).

Importing the package (or any module of it) changes nothing process-wide: the entry
points (the stages, the ``actionrec`` command) filter TensorFlow's native log lines
(:func:`actionrec.pipeline.prepare_process`), and a notebook or test that wants the same
calls :func:`actionrec.native_logs.install` before importing Keras.
"""
