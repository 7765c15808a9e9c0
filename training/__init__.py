"""defectkit training: models, tf.data input pipeline, losses, metrics, train / evaluate / infer.

Nothing here imports TensorFlow at package import time; the heavy modules import it themselves.
"""
