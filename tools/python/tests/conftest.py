import pathlib
import sys

import numpy as np
import onnxruntime as ort
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))


def ort_run(model, x):
    """onnxruntime's output for one sample (float32, batch of one)."""
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"x": np.asarray(x, dtype=np.float32)[None]})
    return y[0].astype(np.float64)


@pytest.fixture
def save(tmp_path):
    """Writes an onnx ModelProto into tmp_path and returns its path."""

    def _save(model, name="model.onnx"):
        p = tmp_path / name
        p.write_bytes(model.SerializeToString())
        return p

    return _save
