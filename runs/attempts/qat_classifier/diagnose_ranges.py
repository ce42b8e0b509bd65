"""Why qat-int8 breaks the classifier: tfmot activation ranges start at +-6, activations reach ~112.

Run from the repository root: python runs/attempts/qat_classifier/diagnose_ranges.py
"""
import os; os.environ["TF_USE_LEGACY_KERAS"]="1"
import numpy as np, time
from pathlib import Path
from dermedge.splits import read_split_csv
from train.data import load_crop_arrays
from export.keras_io import load_model, flatten_classifier
from export import optimize
from export.build import _freeze_batchnorm
from edge_runtime.labels import HAM10000_CLASSES
import tensorflow as tf
m = load_model("runs/classify/classifier.keras", "classifier")
sp = read_split_csv(Path("runs/classify/split.csv"))
T = load_crop_arrays(sp["test"][:150], HAM10000_CLASSES, 224); x = T.images.astype(np.float32)
C = load_crop_arrays(sp["train"][:200], HAM10000_CLASSES, 224); c = C.images.astype(np.float32)
ref = m.predict(x, verbose=0)
flat = _freeze_batchnorm(flatten_classifier(m))
# largest float activation magnitude anywhere in the network, on calibration crops
probe = tf.keras.Model(flat.input, [l.output for l in flat.layers[1:] if "project_BN" in l.name or "add" in l.name])
acts = probe.predict(c[:32], verbose=0)
print("max |activation| of project_BN/add outputs:", round(max(float(np.abs(a).max()) for a in acts), 2), flush=True)
q = optimize.quantization_aware(flat)
print("before:", (q.predict(x, verbose=0).argmax(1) == ref.argmax(1)).mean(), flush=True)
call = tf.function(lambda b: q(b, training=True))
t = time.time()
for step in range(4500):
    i = (step * 8) % 192
    call(tf.constant(c[i:i+8]))
print("after 4500 EMA steps:", (q.predict(x, verbose=0).argmax(1) == ref.argmax(1)).mean(), round(time.time()-t), "s", flush=True)
