"""QAT of the classifier, fine-tuned to match the float model's probabilities (distillation) vs labels."""
import sys, json, time
from pathlib import Path
import numpy as np
from train.tf_env import tensorflow
tf = tensorflow(0)
tf.keras.utils.set_random_seed(0)
from dermedge.splits import read_split_csv
from train.data import load_crop_arrays, classification_dataset
from train.models import load_trained_model
from export import tflite, optimize
from export.build import _distillation, _freeze_batchnorm, _subset
from export.keras_io import flatten_classifier
from export.validate import classifier_figures
from edge_runtime.interpreter import TFLiteModel
epochs, lr, n_train = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
splits = read_split_csv(Path("runs/classify/split.csv"))
teacher = load_trained_model(Path("runs/classify/classifier.keras"), "classifier")
labels = ("akiec","bcc","bkl","df","mel","nv","vasc")
val = load_crop_arrays(splits["val"], labels, 224, 0.15)
ref = teacher.predict(val.images.astype(np.float32), batch_size=64, verbose=0)
rep200 = load_crop_arrays(_subset(splits["train"], 200, 0), labels, 224, 0.15).images
train = load_crop_arrays(_subset(splits["train"], n_train, 0), labels, 224, 0.15)
def score(tag, content):
    probs = TFLiteModel(content=content).run(val.images)
    f = classifier_figures(ref, probs, val.targets, labels)
    print(json.dumps({"tag": tag, **{k: round(f[k], 4) for k in ("top1_agreement","max_prob_diff","balanced_accuracy","macro_auc")}}), flush=True)

base = _freeze_batchnorm(flatten_classifier(teacher))
student = optimize.quantization_aware(base, calibration=rep200)
c, _ = tflite.convert(student, "int8", tflite.representative_from(rep200)); score("qat ep0", c)
ds = classification_dataset(train, 7, 32, augment=True)
d = _distillation(student, teacher); d.compile(tf.keras.optimizers.Adam(lr))
for e in range(epochs):
    t = time.time(); d.fit(ds, epochs=1, verbose=2)
    c, _ = tflite.convert(student, "int8", tflite.representative_from(rep200)); score(f"kd-qat ep{e+1} lr{lr}", c)
    print("  epoch s", round(time.time() - t), flush=True)
