"""The orchestration: the only code that sees a whole recipe and the plugin registry together.

* :mod:`dsplug.workflows.run`: one recipe point -> a run directory (data, training, evaluation,
  export, report);
* :mod:`dsplug.workflows.sweep`: many points, locally or on SLURM, and their summary;
* :mod:`dsplug.workflows.compare`: one recipe over several backbones, as one table.

The stages they call (:mod:`dsplug.data`, :mod:`dsplug.pipeline`, :mod:`dsplug.train`,
:mod:`dsplug.evaluate`, :mod:`dsplug.report`, :mod:`dsplug.deploy`) take their own configuration
and ready objects.
"""
