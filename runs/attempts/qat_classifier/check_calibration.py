"""The fix: qat-int8 classifier agreement with Keras before any fine-tuning, with calibrated ranges.

Run from the repository root: python runs/attempts/qat_classifier/check_calibration.py
Same 150 test crops and 200 training crops as diagnose_ranges.py.
"""
import os; os.environ["TF_USE_LEGACY_KERAS"] = "1"
import time
from pathlib import Path
import numpy as np
from dermedge.splits import read_split_csv
from train.data import load_crop_arrays
from export.keras_io import flatten_classifier
from train.models import load_trained_model as load_model
from export import optimize
from export.build import _freeze_batchnorm
from edge_runtime.labels import HAM10000_CLASSES

m = load_model("runs/classify/classifier.keras", "classifier")
sp = read_split_csv(Path("runs/classify/split.csv"))
x = load_crop_arrays(sp["test"][:150], HAM10000_CLASSES, 224).images.astype(np.float32)
c = load_crop_arrays(sp["train"][:200], HAM10000_CLASSES, 224).images.astype(np.float32)
ref = m.predict(x, verbose=0)
flat = _freeze_batchnorm(flatten_classifier(m))
t = time.time()
q = optimize.quantization_aware(flat, calibration=c)
print("quantization_aware with calibration:", round(time.time() - t, 1), "s", flush=True)
p = q.predict(x, verbose=0)
print("agreement before fine-tuning:", (p.argmax(1) == ref.argmax(1)).mean(),
      "max |dp|:", round(float(np.abs(p - ref).max()), 3), flush=True)
