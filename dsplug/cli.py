"""The ``dsplug`` command line (typer). Commands parse arguments, call the library and print.

Every error dsplug raises on purpose ends as one line ``error: ...`` on stderr; ``--debug`` shows
the traceback as well. Output paths are checked before any work. Exit codes:

* 0: done;
* 1: done, but some inputs were skipped (``dsplug predict`` on undecodable files);
* 2: refused: a recipe, data, path or model the user gave cannot be used (the message says why);
* 3: an unexpected error inside dsplug (a bug: rerun with ``--debug`` and report it);
* 130: interrupted (Ctrl-C).

``-o`` is the output path in every command that writes one; recipe overrides are
``--set KEY=VALUE`` (also ``--override``). ``-o KEY=VALUE``, the override before, is refused
with the new spelling.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

from dsplug.command import Command, Group, SetCommand
from dsplug.version import __version__
from dsplug.console import quiet_finalizers, refusal
from dsplug.errors import TRAIN_MODULES, DsplugError, RecipeError, install_extra, missing_module_hint

app = typer.Typer(
    name="dsplug",
    cls=Group,
    help="Plugin-based on-device audio recognition by transfer learning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"dsplug {__version__}")
        raise typer.Exit()


VersionOption = Annotated[
    Optional[bool],
    typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")]
RecipeArgument = Annotated[Path, typer.Argument(metavar="RECIPE", help="The recipe YAML file.")]
RunArgument = Annotated[Path, typer.Argument(metavar="RUN", help="A finished run directory (dsplug run RECIPE -o RUN).")]
ModelArgument = Annotated[Path, typer.Argument(metavar="MODEL", help="An exported .tflite (it carries its metadata), or a run directory.")]


def _set(help: str) -> typer.models.OptionInfo:
    """The recipe overrides option: ``--set KEY=VALUE``, repeatable (``--override`` is the same)."""
    return typer.Option("--set", "--override", metavar="KEY=VALUE", help=help)


class _CliReporter:
    """Prints information and draws tqdm progress bars on stderr."""

    def info(self, message: str) -> None:
        typer.echo(message)

    @contextlib.contextmanager
    def progress(self, *, total: int, description: str) -> Iterator[Callable[[int], None]]:
        from tqdm import tqdm

        with tqdm(total=total, desc=description, unit="", leave=False, file=sys.stderr,
                  disable=None) as bar:
            yield lambda done: bar.update(done - bar.n)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Logs to whatever ``sys.stderr`` is when a record is written (not the stream of the first
    command: a program calling the CLI several times, or a test runner, replaces it)."""

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def _setup(debug: bool) -> None:
    _state["debug"] = _state["debug"] or debug
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if _state["debug"] else logging.INFO)
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    for noisy in ("tensorflow", "absl", "h5py", "matplotlib", "numba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # dsplug reports broken plugins itself, with their error
    logging.getLogger("stevedore").setLevel(logging.ERROR)


def _fail(err: BaseException, *, message: str | None = None, code: int = 2) -> None:
    quiet_finalizers(err)
    if _state["debug"]:
        import traceback

        traceback.print_exception(err)
    text = message or str(err)
    if code == 3:
        text = " ".join(text.splitlines())
    typer.echo(f"error: {text}", err=True)
    raise typer.Exit(code=code)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """One line on stderr and an exit code for every error (see the module docstring)."""
    from dsplug.console import terminal

    try:
        with terminal(debug=_state["debug"]):
            yield
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise
    except DsplugError as err:
        _fail(err)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(code=130) from None
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] in TRAIN_MODULES:
            _fail(err, message=f"this command needs the training dependencies: {missing_module_hint(err)}")
        _fail(err, message=f"internal error: {err} (a bug in dsplug or a broken install; rerun with --debug)", code=3)
    except MemoryError as err:
        _fail(err, message="out of memory; use fewer or shorter files, a smaller batch (train.batch_size) or a machine with more memory")
    except Exception as err:  # noqa: BLE001  the machine refused (disk full, permissions), else a bug: one line
        line = refusal(err)
        _fail(err, message=line or f"internal error: {type(err).__name__}: {err} (a bug in dsplug: rerun with --debug and report it)", code=2 if line else 3)


@app.callback()
def _main(version: VersionOption = None, debug: DebugOption = False) -> None:
    """dsplug: train small audio classifiers on scarce data and ship them to devices."""
    _state["debug"] = debug


@app.command("plugins", cls=Command)
def plugins_cmd(
    group: Annotated[Optional[str], typer.Argument(metavar="GROUP", help="backbones, colormaps, augmentations or heads.")] = None,
    version: VersionOption = None,
    debug: DebugOption = False,
) -> None:
    """List installed plugins with the package and version that provide them."""
    _setup(debug)
    with _errors():
        from dsplug import registry

        infos = registry.list_plugins(group)
        for grp in [group] if group else registry.groups():
            rows = [i for i in infos if i.group == grp]
            typer.echo(f"{grp} ({len(rows)})")
            for info in rows:
                status = {"ok": "", "needs-extra": f"  ({info.error})"}.get(info.status, "  BROKEN: " + info.error)
                typer.echo(f"  {info.name:<22} {info.distribution} {info.version:<10} {info.summary}{status}")
        broken = sum(info.status == "broken" for info in infos)
        if broken:
            typer.echo(f"{broken} broken plugin(s): reinstall or fix them (see the errors above)", err=True)
        for extra in sorted({info.extra for info in infos if info.status == "needs-extra"}):
            count = sum(info.extra == extra for info in infos)
            typer.echo(f"{count} plugin(s) need dsplug[{extra}]: {install_extra(extra)}", err=True)


@app.command("validate", cls=SetCommand)
def validate_cmd(
    recipe: RecipeArgument,
    override: Annotated[list[str], _set("Set a recipe value, e.g. train.lr=0.001; repeatable. sweep.KEY=[a, b] sweeps KEY.")] = [],  # noqa: B006
    version: VersionOption = None,
    debug: DebugOption = False,
) -> None:
    """Check a recipe (keys, types, plugins, manifest) without running it."""
    _setup(debug)
    with _errors():
        from dsplug.workflows.run import check_recipe_file

        points, manifest, notes = check_recipe_file(recipe, overrides=override)
        first = points[0].recipe
        sweep = f", a sweep of {len(points)} points" if len(points) > 1 else ""
        typer.echo(
            f"{recipe}: valid (recipe version {first.version}{sweep}); manifest has "
            f"{len(manifest.items)} files, {len(manifest.classes)} classes"
        )
        for note in notes:
            typer.echo(f"  {note}")
        for point in points if len(points) > 1 else []:
            typer.echo(f"  {point.slug}")


@app.command("init", cls=Command)
def init_cmd(
    data: Annotated[Path, typer.Argument(metavar="DATA", help="A manifest CSV (path,label[,partition][,group]) or a folder of class folders.")],
    out: Annotated[Path, typer.Option("-o", "--out", metavar="PATH", help="The recipe file to write, e.g. recipe.yaml.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing recipe file.")] = False,
    version: VersionOption = None,
    debug: DebugOption = False,
) -> None:
    """Write the recipe to start from, chosen from the data, each value commented with why."""
    _setup(debug)
    with _errors():
        from dsplug.artifacts import check_output_file, write_atomic
        from dsplug.workflows.init import initial_recipe

        check_output_file(out, what="recipe file", option="-o", inputs=[data], force=force)
        write_atomic(out, initial_recipe(data, out=out))
        typer.echo(f"wrote {out}; check it with `dsplug validate {out}`, then `dsplug run {out}`")


@app.command("manifest", cls=Command)
def manifest_cmd(
    folder: Annotated[Path, typer.Argument(metavar="FOLDER", help="A folder with one subfolder of audio files per class (optionally inside train/devel/test folders).")],
    out: Annotated[Path, typer.Option("-o", "--out", metavar="CSV", help="The manifest CSV to write (paths relative to its folder).")],
    group_pattern: Annotated[Optional[str], typer.Option("--group-pattern", metavar="REGEX", help="Regular expression whose group, searched in each file name, is the speaker/session, e.g. '^(spk\\d+)_'.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    version: VersionOption = None,
    debug: DebugOption = False,
) -> None:
    """Write the manifest CSV a folder of class folders stands for, to edit it (a recipe may also name the folder)."""
    _setup(debug)
    with _errors():
        from dsplug.artifacts import check_output_file
        from dsplug.data import write_folder_manifest

        check_output_file(out, what="manifest", option="-o", force=force)
        written = write_folder_manifest(folder, out=out, group_pattern=group_pattern)
        classes = sorted({row.label for row in written.rows})
        origin = "labels" + " and partitions" * written.partitioned + " from the folders" + (
            ", groups from the file names" if "group" in written.columns else "")
        typer.echo(f"wrote {out}: {len(written.rows)} files, {len(classes)} classes ({', '.join(classes)}); {origin}")
        for message in written.warnings:
            typer.echo(f"warning: {message}", err=True)


@app.command("run", cls=SetCommand)
def run_cmd(
    recipe: RecipeArgument,
    override: Annotated[list[str], _set("Set a recipe value, e.g. train.lr=0.001; repeatable. sweep.KEY=[a, b] sweeps KEY: one run per value.")] = [],  # noqa: B006
    out: Annotated[Optional[Path], typer.Option("-o", "--out", metavar="DIR", help="Run directory (default runs/NAME).")] = None,
    version: VersionOption = None,
    debug: DebugOption = False,
) -> None:
    """Run a recipe: read the data, train, evaluate and export, everything in the run directory."""
    _setup(debug)
    with _errors():
        from dsplug.workflows.run import plan_runs, run_point

        planned = plan_runs(recipe, overrides=override, out=out)  # every point checked before any work
        for number, (point, run_dir) in enumerate(planned, start=1):
            if len(planned) > 1:
                typer.echo(f"[{number}/{len(planned)}] {point.slug}")
            run_point(point, run_dir=run_dir, reporter=_CliReporter())


@app.command("plot", cls=Command)
def plot_cmd(
    audio: Annotated[Path, typer.Argument(metavar="AUDIO", help="An audio file (wav, flac, ogg, mp3).")],
    out: Annotated[Path, typer.Option("-o", "--out", metavar="PNG", help="PNG file to write.")],
    recipe: Annotated[Optional[Path], typer.Option("--recipe", metavar="RECIPE", help="Take sample rate, chunking and front-end settings from this recipe.")] = None,
    override: Annotated[list[str], _set("With --recipe: set one of its values; repeatable.")] = [],  # noqa: B006
    chunk: Annotated[int, typer.Option("--chunk", metavar="N", help="Which chunk of the file to draw (0 is the first).")] = 0,
    grid: Annotated[bool, typer.Option("--grid", help="Draw all chunks of the file in one figure.")] = False,
    version: VersionOption = None,
    debug: DebugOption = False,
) -> None:
    """Draw the image exactly as the model sees it (before the backbone's normalisation)."""
    _setup(debug)
    with _errors():
        from dsplug.artifacts import check_writable_file
        from dsplug.recipe.loader import load_recipe
        from dsplug.workflows.run import default_recipe, plot_audio

        if override and not recipe:
            raise RecipeError("--set needs --recipe: it changes a recipe file's values")
        check_writable_file(out, what="image (-o)")
        settings = load_recipe(recipe, overrides=override)[0].recipe if recipe else default_recipe()
        for path in plot_audio(audio, recipe=settings, out=out, chunk=chunk, grid=grid):
            typer.echo(f"wrote {path}")


@app.command("sweep", cls=SetCommand)
def sweep_cmd(
    target: Annotated[str, typer.Argument(metavar="RECIPE", help="A recipe with list values, or 'summarize'.")],
    directory: Annotated[Optional[Path], typer.Argument(metavar="DIR", help="With 'summarize': the sweep directory.")] = None,
    override: Annotated[list[str], _set("Set a recipe value, e.g. train.lr=0.001; repeatable. sweep.KEY=[a, b] sweeps KEY.")] = [],  # noqa: B006
    out: Annotated[Optional[Path], typer.Option("-o", "--out", metavar="DIR", help="Sweep directory (default runs/NAME-sweep).")] = None,
    executor: Annotated[str, typer.Option("--executor", metavar="local|slurm", help="local (parallel processes here) or slurm (a job array).")] = "local",
    jobs: Annotated[int, typer.Option("--jobs", metavar="N", help="local: points run at once.")] = 1,
    submit: Annotated[bool, typer.Option("--submit", help="slurm: hand the script to sbatch.")] = False,
    sbatch: Annotated[list[str], typer.Option("--sbatch", metavar="OPTION", help="slurm: an extra #SBATCH line, e.g. '--gres=gpu:1'; repeatable.")] = [],  # noqa: B006
    version: VersionOption = None,
    debug: DebugOption = False,
) -> None:
    """Run every point of a sweep (finished points are skipped), or summarise a sweep directory.

    dsplug sweep RECIPE --set 'sweep.train.lr=[0.01, 0.001]' [--executor local|slurm] [--jobs N];
    dsplug sweep summarize DIR
    """
    _setup(debug)
    with _errors():
        from dsplug.workflows import sweep

        if target == "summarize":
            if directory is None:
                raise DsplugError("usage: dsplug sweep summarize DIR")
            rows = sweep.summarize(directory)
            typer.echo(sweep.format_summary(rows))
            typer.echo(f"wrote {directory / 'summary.md'} and {directory / 'summary.csv'}")
            return
        if executor not in ("local", "slurm"):
            raise DsplugError(f"--executor must be local or slurm, got {executor!r}")
        from dsplug.artifacts import check_writable_dir
        from dsplug.recipe.loader import load_recipe

        points = load_recipe(Path(target), overrides=override)
        if len(points) < 2:
            typer.echo("note: the recipe has no sweep block (sweep: or --set sweep.KEY=[...]), so the sweep has one point", err=True)
        folder = out or Path("runs") / f"{points[0].recipe.name}-sweep"
        check_writable_dir(folder, what="sweep directory (--out)")
        prepared = sweep.prepare(points, out=folder)
        finished = sum(done for _, _, done in prepared)
        typer.echo(f"{len(prepared)} point(s) in {folder}; {finished} already finished")
        if executor == "slurm":
            _, message = sweep.write_slurm(prepared, out=folder, options=sbatch, submit=submit)
            typer.echo(message)
            return
        def report(point_dir: Path, code: int) -> None:
            status = "done" if code == 0 else f"FAILED (exit {code}, see {point_dir / 'run.log'})"
            typer.echo(f"{status}: {point_dir.name}")

        codes = sweep.run_local(prepared, jobs=jobs, on_done=report)
        failed = [name for name, code in codes.items() if code]
        if failed:
            raise DsplugError(f"{len(failed)} point(s) failed: {', '.join(failed)}; see their run.log")
        typer.echo(sweep.format_summary(sweep.summarize(folder)))


@app.command("compare", cls=SetCommand)
def compare_cmd(
    recipe: Annotated[Path, typer.Argument(metavar="RECIPE", help="The recipe to run once per backbone.")],
    backbones: Annotated[str, typer.Option("--backbones", metavar="NAMES", help="Comma-separated backbone names, each optionally NAME:WEIGHTS to override the recipe's weights, e.g. densenet121:none,efficientnet_lite0:imagenet.")],
    override: Annotated[list[str], _set("Set a recipe value for every run, e.g. train.lr=0.001; repeatable.")] = [],  # noqa: B006
    out: Annotated[Optional[Path], typer.Option("-o", "--out", metavar="DIR", help="Folder of the runs and the table (default runs/NAME-compare).")] = None,
    version: VersionOption = None,
    debug: DebugOption = False,
) -> None:
    """One table per backbone: UAR (CI), parameters, TFLite size fp32/int8, latency, training time."""
    _setup(debug)
    with _errors():
        from dsplug.artifacts import check_writable_dir
        from dsplug.recipe.loader import load_recipe
        from dsplug.workflows.compare import compare, format_table

        names = [b.strip() for b in backbones.split(",") if b.strip()]
        folder = out or Path("runs") / f"{load_recipe(recipe, overrides=override)[0].recipe.name}-compare"
        check_writable_dir(folder, what="comparison directory (--out)")
        rows = compare(recipe, backbones=names, out=folder, overrides=override, reporter=_CliReporter())
        typer.echo(format_table(rows))
        typer.echo(f"wrote {folder / 'compare.md'} and {folder / 'compare.csv'}")


@app.command("export", cls=Command)
def export_cmd(
    run_dir: RunArgument,
    quantize: Annotated[list[str], typer.Option("--quantize", metavar="MODE", help="dynamic, float16, int8 or qat; repeatable (float32 is always exported). Default: the recipe's export.quantize.")] = [],  # noqa: B006
    prune: Annotated[Optional[float], typer.Option("--prune", metavar="SPARSITY", help="Target sparsity in (0, 1): magnitude pruning during a short fine-tune. Default: the recipe's export.prune.")] = None,
    representative: Annotated[Optional[int], typer.Option("--representative", metavar="N", help="int8/qat: calibration chunks drawn from the training audio. Default: export.representative_size.")] = None,
    prune_epochs: Annotated[Optional[int], typer.Option("--prune-epochs", metavar="N", help="With --prune: fine-tuning epochs while the sparsity rises. Default: export.prune_epochs.")] = None,
    qat_epochs: Annotated[Optional[int], typer.Option("--qat-epochs", metavar="N", help="With --quantize qat: epochs of quantization-aware fine-tuning. Default: export.qat_epochs.")] = None,
    int8_float_threshold: Annotated[Optional[float], typer.Option("--int8-float-threshold", metavar="STEPS", help="With --quantize int8: classifier layers whose quantisation error exceeds this many quantisation steps (RMS) stay float32. Default: export.int8_float_threshold.")] = None,
    full_integer: Annotated[bool, typer.Option("--full-integer", help="With --quantize int8: quantise every classifier layer (no float32 layers; for integer-only accelerators).")] = False,
    web: Annotated[Optional[Path], typer.Option("--web", metavar="DIR", help="Also write a static web app (MediaPipe in the browser: microphone and file classification) with the exported models into this folder.")] = None,
    mediapipe: Annotated[Optional[Path], typer.Option("--mediapipe", metavar="DIR", help="With --web: the folder of an npm install of @mediapipe/tasks-audio (default: $DSPLUG_MEDIAPIPE_WEB, ./node_modules, ~/.cache/dsplug/web).")] = None,
    version: VersionOption = None,
    debug: DebugOption = False,
) -> None:
    """Export a finished run to TFLite (audio in, probabilities out): quantisation, pruning, parity report.

    Every .tflite carries its metadata (labels, sample rate, chunk length) as standard TFLite
    Model Metadata, so it runs alone in dsplug and in MediaPipe Tasks. Options not given are
    taken from the run's recipe (its `export:` section).
    """
    _setup(debug)
    with _errors():
        from dsplug.artifacts import RunDir
        from dsplug.deploy.export import export_config, export_run

        run = RunDir(run_dir)
        run.require([], command="export")
        run.check_writable()
        run.check_finished(command="export")
        if web is not None:  # before the long export: is the bundle there, can the app be written?
            from dsplug.artifacts import check_writable_dir
            from dsplug.deploy.web import find_bundle

            find_bundle(mediapipe)
            check_writable_dir(web, what="web app folder (--web)")
        asked = bool(quantize) or full_integer or any(v is not None for v in (prune, representative, prune_epochs, qat_epochs, int8_float_threshold))
        result = run.reusable_export() if web is not None and not asked else None
        reused = result is not None
        if reused:  # --web alone: the run's models as they are
            typer.echo(f"using the models the run exported: {', '.join(result['models'])}")
        else:
            with run.lock(command="dsplug export"):
                config = export_config(
                    run, quantize=quantize, prune=prune, representative_size=representative, prune_epochs=prune_epochs,
                    qat_epochs=qat_epochs, int8_float_threshold=int8_float_threshold, full_integer=full_integer,
                )
                result = export_run(run, config=config, progress=_CliReporter().progress)
        markdown = run / RunDir.EXPORT_REPORT
        if markdown.is_file() and not reused:
            from dsplug.report.markdown import EXPORT_SECTION, add_to_report, export_lines

            typer.echo(markdown.read_text(encoding="utf-8"))
            if (run / RunDir.REPORT).is_file():  # the report people open shows the new models too
                add_to_report(run.path, markdown="\n".join([EXPORT_SECTION, *export_lines(markdown.read_text(encoding="utf-8"))]))
        typer.echo(f"wrote {run / RunDir.EXPORT}")
        if web is not None:
            from dsplug.deploy.web import write_web_app

            models = sorted(result["models"], key=lambda name: (name != RunDir.TFLITE_MODEL, name))
            write_web_app([run / name for name in models], web, bundle=mediapipe)
            typer.echo(f"wrote the web app {web}: serve it with `python -m http.server -d {web}` and open http://localhost:8000")


@app.command("explain", cls=Command)
def explain_cmd(
    run_dir: RunArgument,
    audio: Annotated[Optional[Path], typer.Argument(metavar="AUDIO", help="The audio file to explain (omit with --examples).")] = None,
    out: Annotated[Optional[Path], typer.Option("-o", "--out", metavar="PNG", help="PNG to write (default: next to the run or the audio).")] = None,
    method: Annotated[str, typer.Option("--method", metavar="gradients|occlusion|shap", help="shap, occlusion or gradients (integrated gradients).")] = "gradients",
    target: Annotated[Optional[str], typer.Option("--class", metavar="CLASS", help="Explain this class (default: the predicted one).")] = None,
    chunk: Annotated[int, typer.Option("--chunk", metavar="N", help="Which chunk of the file (0 is the first).")] = 0,
    examples: Annotated[Optional[int], typer.Option("--examples", metavar="N", help="Per class, the N most confident correct and incorrect devel files; added to report.md and report.html.")] = None,
    version: VersionOption = None,
    debug: DebugOption = False,
) -> None:
    """Which spectrogram regions drove a prediction: attribution map over the image the model saw."""
    _setup(debug)
    with _errors():
        from dsplug import explain
        from dsplug.artifacts import RunDir, check_writable_file
        from dsplug.report.markdown import add_to_report

        if (audio is None) == (examples is None):
            raise DsplugError("give either AUDIO or --examples N")
        if out is not None:
            check_writable_file(out, what="image (-o)")
        RunDir(run_dir).check_finished(command="explain")
        if examples is not None:
            result = explain.explain_examples(run_dir, n=examples, method=method, out=out)
            add_to_report(run_dir, markdown=result.markdown)
            typer.echo(f"wrote {result.figure} and added the examples to {run_dir / 'report.md'} and report.html")
            return
        assert audio is not None
        target_out = out or run_dir / f"{audio.stem}-{method}.png"
        result = explain.explain_audio(run_dir, audio, method=method, target=target, out=target_out, chunk=chunk)
        probabilities = ", ".join(f"{k} {v:.2f}" for k, v in result["probabilities"].items())
        typer.echo(f"{audio.name}: predicted {result['predicted']} ({probabilities}); explained {result['target']} with {method}")
        typer.echo(f"wrote {result['path']}")


ThreadsOption = Annotated[Optional[int], typer.Option("--threads", metavar="N", help="TFLite interpreter threads (default 1).")]


#: With --csv, a table of more files than this shows the first PREDICT_ROWS only (the CSV has all).
PREDICT_ROWS = 40


@app.command("predict", cls=Command)
def predict_cmd(
    model: ModelArgument,
    audio: Annotated[list[Path], typer.Argument(metavar="AUDIO...", help="Audio files and/or folders (searched recursively).")],
    csv_out: Annotated[Optional[Path], typer.Option("--csv", metavar="CSV", help="Write chunk- and file-level rows to this CSV.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the predictions as JSON.")] = False,
    aggregate: Annotated[str, typer.Option("--aggregate", metavar="mean|vote", help="Chunk to file: mean or vote.")] = "mean",
    top_k: Annotated[Optional[int], typer.Option("--top-k", metavar="K", help="Show the K most probable classes per file (table, CSV and JSON).")] = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", metavar="N", help="Files decoded and run at once (default: every core; 1: one thread).")] = None,
    threads: ThreadsOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --csv file.")] = False,
    version: VersionOption = None,
    debug: DebugOption = False,
) -> None:
    """Predict classes of audio files with an exported model (no TensorFlow needed).

    Prints per file the predicted class and its confidence (or, with --top-k, the K most
    probable classes): one line for one file, a table for several, then the files per
    predicted class. On stderr: one note per kind of change made to the audio (resampled,
    mixed to mono, padded), the skipped files and a closing line with the speed. With --csv
    and more than 40 files the table shows the first 40 (the CSV has every file and chunk).
    Files are decoded and run one per core (--jobs); the results do not depend on it. A file
    that cannot be decoded, and a file in a folder whose extension is not an audio format, is
    skipped with a line: the others are predicted and the exit code is 1. If no file can be
    decoded the command fails (exit code 2).
    """
    _setup(debug)
    with _errors():
        from dsplug.artifacts import check_output_file
        from dsplug.runtime import collect_audio_files, load_model, output, predict_batch

        if csv_out is not None:
            folders = [p for p in audio if p.is_dir()]
            inputs = [model, *(p for p in audio if not p.is_dir()), *(collect_audio_files(folders) if folders else [])]
            check_output_file(csv_out, what="predictions CSV", option="--csv", inputs=inputs, force=force)
        loaded = load_model(model, threads=threads)
        if top_k is not None:
            output.check_top_k(top_k, task=loaded.task)
        batch = predict_batch(loaded, audio, aggregate=aggregate, jobs=jobs, progress=_CliReporter().progress)  # type: ignore[arg-type]
        predictions = batch.predictions
        if as_json:
            typer.echo(output.predictions_json(predictions, top_k=top_k or 0, skipped=batch.skipped))
        else:
            rows = PREDICT_ROWS if csv_out is not None and len(predictions) > PREDICT_ROWS else None
            for line in output.format_predictions(predictions, top_k=top_k or 1, max_rows=rows):
                typer.echo(line + (f" (every file is in {csv_out})" if line.startswith("... and") else ""))
            if len(predictions) > 1 and (counts := output.format_class_counts(predictions)):
                typer.echo("")
                typer.echo("\n".join(counts))
        notes = [] if as_json else [f"note: {n}" for n in batch.notes]  # JSON holds them per file
        for line in [*notes, *output.format_skipped(batch.skipped)]:
            typer.echo(line, err=True)
        if csv_out:
            typer.echo(f"wrote {output.write_predictions_csv(csv_out, predictions, top_k=top_k or 0)}", err=as_json)
        if len(predictions) + len(batch.skipped) > 1:
            typer.echo(output.format_batch_summary(batch), err=True)
        if batch.skipped:
            raise typer.Exit(code=1)


@app.command("stream", cls=Command)
def stream_cmd(
    model: ModelArgument,
    file: Annotated[Optional[Path], typer.Option("--file", metavar="AUDIO", help="Stream this audio file.")] = None,
    mic: Annotated[bool, typer.Option("--mic", help="Stream from the default microphone (needs sounddevice).")] = False,
    fast: Annotated[bool, typer.Option("--fast", help="With --file: as fast as possible, not at real-time pace.")] = False,
    seconds: Annotated[Optional[float], typer.Option("--seconds", metavar="SECONDS", help="With --mic: stop after this long (default: Ctrl-C).")] = None,
    hop: Annotated[Optional[float], typer.Option("--hop", metavar="SECONDS", help="Seconds between decisions (default: a quarter chunk).")] = None,
    smoothing: Annotated[int, typer.Option("--smoothing", metavar="N", help="Average the last N windows' probabilities.")] = 1,
    threads: ThreadsOption = None,
    version: VersionOption = None,
    debug: DebugOption = False,
) -> None:
    """Real-time sliding-window inference with per-window latency; ends with mean/p95 latency and real-time factor."""
    _setup(debug)
    with _errors():
        from dsplug.runtime import load_model, stream_file, stream_microphone
        from dsplug.runtime.stream import format_stream_result, format_stream_summary

        if (file is None) == (not mic):
            raise DsplugError("give exactly one source: --file AUDIO or --mic")
        loaded = load_model(model, threads=threads)
        show = lambda result: typer.echo(format_stream_result(result))  # noqa: E731
        if file is not None:
            summary = stream_file(loaded, file, realtime=not fast, hop_seconds=hop, smoothing=smoothing, on_result=show)
        else:
            summary = stream_microphone(loaded, seconds=seconds, hop_seconds=hop, smoothing=smoothing, on_result=show)
        typer.echo(format_stream_summary(summary))


@app.command("bench", cls=Command)
def bench_cmd(
    model: ModelArgument,
    runs: Annotated[int, typer.Option("--runs", metavar="N", help="Timed runs after warm-up.")] = 50,
    warmup: Annotated[int, typer.Option("--warmup", metavar="N", help="Untimed warm-up runs.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    threads: ThreadsOption = None,
    version: VersionOption = None,
    debug: DebugOption = False,
) -> None:
    """Latency (mean, p50, p95), memory, size and parameters of an exported model."""
    _setup(debug)
    with _errors():
        import json

        from dsplug.runtime.bench import bench, format_bench

        result = bench(model, threads=threads, runs=runs, warmup=warmup)
        typer.echo(json.dumps(result, indent=2, default=str) if as_json else format_bench(result))


def main() -> None:
    """Entry point of the ``dsplug`` script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
