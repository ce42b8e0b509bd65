"""int8 classifier: how many float tensors (int8-mixed) and how many calibration images, on the val split (GT crops)."""
import sys, json, time
from pathlib import Path
import numpy as np
from train.tf_env import tensorflow
tf = tensorflow(0)
from dermedge.splits import read_split_csv
from train.data import load_crop_arrays
from train.models import load_trained_model
from export import tflite
from export.build import _subset
from export.validate import classifier_figures
from edge_runtime.interpreter import TFLiteModel
splits = read_split_csv(Path("runs/classify/split.csv"))
model = load_trained_model(Path("runs/classify/classifier.keras"), "classifier")
labels = ("akiec","bcc","bkl","df","mel","nv","vasc")
val = load_crop_arrays(splits["val"], labels, 224, 0.15)
ref = model.predict(val.images.astype(np.float32), batch_size=64, verbose=0)
def rep(n, seed=0):
    return load_crop_arrays(_subset(splits["train"], n, seed), labels, 224, 0.15).images
rep200 = rep(200)
def score(tag, content):
    probs = TFLiteModel(content=content).run(val.images)
    f = classifier_figures(ref, probs, val.targets, labels)
    print(json.dumps({"tag": tag, "bytes": len(content), **{k: round(f[k], 4) for k in ("top1_agreement","max_prob_diff","balanced_accuracy","macro_auc")}}), flush=True)
t=time.time()
fb = classifier_figures(ref, ref, val.targets, labels); print("float val BA", fb["balanced_accuracy"], flush=True)
for k in [int(a) for a in sys.argv[1].split(",")]:
    c, _ = tflite.convert(model, "int8-mixed" if k else "int8", tflite.representative_from(rep200), k)
    score(f"K={k} rep=200", c); print("  t", round(time.time()-t), flush=True)
if len(sys.argv) > 2:
    for n in [int(a) for a in sys.argv[2].split(",")]:
        c, _ = tflite.convert(model, "int8", tflite.representative_from(rep(n)))
        score(f"K=0 rep={n}", c); print("  t", round(time.time()-t), flush=True)
