"""`dermedge.train`: the segmenter (U-Net/FCN) and the classifier (MobileNetV2 or
EfficientNet-Lite, `backbones.py`) trained with tf-keras.

Import TensorFlow only through `dermedge.train.tf_env.tensorflow()`, which sets TF_USE_LEGACY_KERAS
first: tensorflow-model-optimization refuses Keras 3 models.
"""
