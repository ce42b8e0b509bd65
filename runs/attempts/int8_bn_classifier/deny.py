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
path = sys.argv[1]
model = load_trained_model(Path(path), "classifier")
labels = ("akiec","bcc","bkl","df","mel","nv","vasc")
val = load_crop_arrays(splits["val"], labels, 224, 0.15)
ref = model.predict(val.images.astype(np.float32), batch_size=64, verbose=0)
logits = np.log(np.clip(ref, 1e-30, 1)); logits -= logits.max(1, keepdims=True)
print("log-prob range", np.percentile(logits, [0, 1, 50]), flush=True)
# pre-softmax: find dense layer output
dense = [l for l in model.layers if "Dense" in type(l).__name__][-1]
print("dense layer", dense.name, dense.activation, flush=True)
rep200 = load_crop_arrays(_subset(splits["train"], 200, 0), labels, 224, 0.15).images
rep = tflite.representative_from(rep200)
def score(tag, content):
    probs = TFLiteModel(content=content).run(val.images)
    f = classifier_figures(ref, probs, val.targets, labels)
    print(json.dumps({"tag": tag, **{k: round(f[k], 4) for k in ("top1_agreement","max_prob_diff","balanced_accuracy","macro_auc")}}), flush=True)
conv = tf.lite.TFLiteConverter.from_keras_model(model)
conv.optimizations = [tf.lite.Optimize.DEFAULT]; conv.representative_dataset = rep; conv.inference_input_type = tf.uint8
for ops in (["FULLY_CONNECTED", "SOFTMAX"], ["FULLY_CONNECTED", "SOFTMAX", "MEAN"], ["DEPTHWISE_CONV_2D"], ["ADD"]):
    dbg = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=lambda: __import__("itertools").islice(rep(), 20),
        debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=ops))
    score(f"deny {ops}", dbg.get_nondebug_quantized_model())
