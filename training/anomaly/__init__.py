"""Anomaly detectors without pixel labels: the SSIM autoencoder and the CAM good/anomaly classifier.

Numpy-only building blocks (`metrics`, `patches`, `thresholds`, `heatmap`) import no TensorFlow;
`ssim`, `train`, `evaluate` and `infer` import it when used. The registry entries live in
`training.models.ssim_ae` and `training.models.cam_classifier`.
"""
