"""actionrec: human action recognition pipeline (UCF101, CNN-RNN, DVC + MLflow)."""

from actionrec import native_logs as _native_logs

_native_logs.install()  # TensorFlow's start-up lines stay out of stage and test output
