"""One error hierarchy for dsplug.

Every error a user can cause derives from :class:`DsplugError`, and also from the built-in
exception of what is wrong (a bad value is a ``ValueError``, an unknown plugin a ``LookupError``,
a plugin that fails to import an ``ImportError``, unreadable weights or a full disk an
``OSError``, work that cannot go on a ``RuntimeError``), so ``except ValueError`` catches a bad
recipe, manifest or audio file. Messages name the offending value (file, field, plugin name)
and say how to fix it; the CLI prints the message on one line
and exits with code 2. Wrap lower-level exceptions with ``raise ... from err`` so ``--debug``
can show the cause.
"""

from __future__ import annotations


class DsplugError(Exception):
    """Base class of every error dsplug raises on purpose (exit code 2 in the CLI)."""


# -- a value is wrong: each is also a ValueError ------------------------------------------------
class RecipeError(DsplugError, ValueError):
    """A recipe file, key, value or override is invalid."""


class DataError(DsplugError, ValueError):
    """A manifest, partition, label or class list is invalid."""


class AudioError(DsplugError, ValueError):
    """An audio file cannot be read, is empty, or holds invalid samples."""


# -- a plugin is missing, broken or cannot do what the recipe asks ------------------------------
class PluginError(DsplugError):
    """A plugin is missing, broken, duplicated or violates the plugin contract."""


class PluginNotFound(PluginError, LookupError):
    """No installed plugin has the requested name."""


class PluginBroken(PluginError, ImportError):
    """A plugin is installed but fails to import or load."""


class TaskNotSupported(RecipeError, PluginError):
    """The recipe's plugin cannot do the recipe's task (a classification head for regression,
    say): wherever it is found, before the run or while the model is built."""


class WeightsError(PluginError, OSError):
    """Pretrained weights are missing or unreadable (never silently replaced by random ones)."""


# -- work cannot go on: each is also a RuntimeError ----------------------------------------------
class TrainError(DsplugError, RuntimeError):
    """Training cannot start or continue (e.g. a bad checkpoint to resume from)."""


class ExportError(DsplugError, RuntimeError):
    """A model cannot be exported, converted or loaded for inference."""


class MetadataMissing(ExportError):
    """A ``.tflite`` file carries no TFLite Model Metadata (exported before dsplug embedded it)."""


class RunError(DsplugError, RuntimeError):
    """A run directory is in use, belongs to another recipe, lacks files or cannot be written."""


class SweepError(DsplugError, RuntimeError):
    """A sweep cannot be prepared, run, submitted or summarised."""


# -- the machine refused ----------------------------------------------------------------------
class DiskFullError(DsplugError, OSError):
    """The disk (or the user's quota) filled while a file was written; nothing half-written was kept."""


#: Top-level modules of the ``train`` extra; the base install (the inference runtime) has none.
TRAIN_MODULES = frozenset({"tensorflow", "tf_keras", "tensorflow_model_optimization", "librosa", "matplotlib", "sklearn"})

#: Top-level modules of the other optional extras, by extra.
EXTRA_MODULES: dict[str, frozenset[str]] = {
    "train": TRAIN_MODULES,
    "mic": frozenset({"sounddevice"}),
    "explain": frozenset({"shap"}),
}


def install_extra(extra: str) -> str:
    """How to add an optional extra of dsplug, e.g. ``install_extra("mic")``.

    dsplug is not on a public package index: the extra is installed from the source tree or
    from a built wheel, so the text names both.
    """
    return (
        f"install dsplug[{extra}]: from the source tree `pip install '.[{extra}]'`, or from a built "
        f"wheel `pip install 'dsplug-<version>-py3-none-any.whl[{extra}]'`"
    )


def extra_of(err: BaseException) -> str | None:
    """The extra whose missing module caused ``err`` (an import error), or None."""
    name = getattr(err, "name", None)
    if not isinstance(err, ModuleNotFoundError) or not name:
        return None
    top = name.split(".")[0]
    return next((extra for extra, modules in EXTRA_MODULES.items() if top in modules), None)


def missing_module_hint(err: BaseException) -> str:
    """A fix for an import error: which extra or package to install (``""`` if not an import error)."""
    name = getattr(err, "name", None)
    if not isinstance(err, ModuleNotFoundError) or not name:
        return ""
    extra = extra_of(err)
    if extra is not None:
        return f"{name} is not installed: {install_extra(extra)}"
    return f"install the package that provides the module {name!r}"
