"""Third-party code vendored unchanged (see ``NOTICE.md`` in this folder).

:mod:`dsplug.artifacts.vendor.metadata_schema_py_generated`
    The flatc-generated Python code of the TFLite Model Metadata schema
    (``metadata_schema.fbs``, namespace ``tflite``, file identifier ``M001``), Apache-2.0,
    copied from the mediapipe 1.2.3 wheel (``mediapipe/tasks/metadata/``); tflite-support ships
    the same schema. :mod:`dsplug.artifacts.tflite_metadata` writes and reads the metadata with it.
"""
