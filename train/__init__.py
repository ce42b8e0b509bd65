"""Training of the segmenter (U-Net/FCN) and the classifier (MobileNetV2) with tf-keras.

Import TensorFlow only through `train.tf_env.tensorflow()`, which sets TF_USE_LEGACY_KERAS
first: tensorflow-model-optimization refuses Keras 3 models.
"""
