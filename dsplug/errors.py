"""One error hierarchy for dsplug.

Every error a user can cause derives from :class:`DsplugError`. Messages name the offending
value (file, field, plugin name) and say how to fix it; the CLI prints the message on one line
and exits with code 2. Wrap lower-level exceptions with ``raise ... from err`` so ``--debug``
can show the cause.
"""

from __future__ import annotations


class DsplugError(Exception):
    """Base class of every error dsplug raises on purpose (exit code 2 in the CLI)."""


class RecipeError(DsplugError):
    """A recipe file, key, value or override is invalid."""


class PluginError(DsplugError):
    """A plugin is missing, broken, duplicated or violates the plugin contract."""


class PluginNotFound(PluginError):
    """No installed plugin has the requested name."""


class PluginBroken(PluginError):
    """A plugin is installed but fails to import or load."""


class WeightsError(PluginError):
    """Pretrained weights are missing or unreadable (never silently replaced by random ones)."""


class AudioError(DsplugError):
    """An audio file cannot be read, is empty, or holds invalid samples."""


class DataError(DsplugError):
    """A manifest, partition, label or class list is invalid."""


class TrainError(DsplugError):
    """Training cannot start or continue (e.g. a bad checkpoint to resume from)."""


class ExportError(DsplugError):
    """A model cannot be exported, converted or loaded for inference."""


class MetadataMissing(ExportError):
    """A ``.tflite`` file carries no TFLite Model Metadata (exported before dsplug embedded it)."""


class RunError(DsplugError):
    """A run directory is in use, belongs to another recipe, lacks files or cannot be written."""


class SweepError(DsplugError):
    """A sweep cannot be prepared, run, submitted or summarised."""


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
