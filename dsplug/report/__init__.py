"""Reports of a run people can read.

* :mod:`dsplug.report.markdown`: ``report.md`` and the self-contained ``report.html``
  (:func:`~dsplug.report.markdown.write_report`), and sections added later by other commands
  (:func:`~dsplug.report.markdown.add_to_report`).
* :mod:`dsplug.report.figures`: the PNG figures the report links (confusion matrix, training
  curves, example images per class).
"""
