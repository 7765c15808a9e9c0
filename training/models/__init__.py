"""Model architectures and their registry: `name` in the config's `[model]` section → a `ModelSpec`.

This package holds architectures only (`flexunet`, `ssim_ae`, `cam_classifier`); how a model is
trained, evaluated and run is a pipeline (`training.segmentation`, `training.anomaly`), and
`training.pipelines` pairs each model name with its pipeline.

How to add a model (this interface is stable; the detectors of issue 6 plug in here)
----------------------------------------------------------------------------------
1. Create `training/models/<name>.py` that defines a module-level ``SPEC = ModelSpec(...)``
   (`training.models.spec.ModelSpec`).
   The module must NOT import tensorflow/keras at import time (import inside functions), because
   config validation and `--help` load the spec without TensorFlow.
2. Add the module to `BUILTIN` in `training/models/registry.py`; third-party code may call
   `registry.register(spec)` instead. A model trained differently from FlexUNet registers its
   pipeline with `training.pipelines.register`.

A `ModelSpec` holds:
- ``name``: the value of ``[model] name``.
- ``description``: one line, shown in error messages and `summary`.
- ``defaults``: ``{key: default}`` for the model's own ``[model]`` keys. The type of each value is the
  key's type (an int default also accepts ints only, a float default accepts ints and floats, a list
  default fixes the element type and — when non-empty — the length). Use ``training.schema.Key`` for
  more control: ``Key(default=None, kind="float", optional=True, choices=(...), min=0, help="...")``.
  A config that names a key not in ``defaults`` gets "unknown key; did you mean ...?".
- ``extra_keys``: ``{section: {key: default-or-Key}}`` — keys the model adds to other sections
  (e.g. ``{"train": {"ssim_window": 11}}``); same rules as ``defaults``.
- ``validate(config) -> list[str]``: optional extra checks on the merged config, returning messages
  (e.g. "image_size 500 is not divisible by 2^(n-1)..."); they are reported with the config path.
- ``build(config, num_classes) -> keras.Model``: the network (``num_classes`` = classes in
  ``dataset.json``; for a two-class detector pass what suits you).
- ``custom_objects``: ``{name: object}`` needed by ``keras.saving.load_model`` for this model
  (layers, losses); the generic loader merges them with the segmentation losses/metrics.

`registry.build_model(config, num_classes)` finds the spec named by ``config.model["name"]`` and builds it;
an unknown name raises `InputError` listing the valid names.
"""
