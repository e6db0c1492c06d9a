"""The command line: exit codes and one-line messages for users' mistakes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import ROOT, write_recipe
from dsplug import __version__
from dsplug.cli import app

runner = CliRunner()
DEMO = ROOT / "recipes" / "demo.yaml"


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("command", [[], ["plugins"], ["validate", "x"], ["run", "x"], ["manifest", "x"]])
def test_version_and_help_on_every_command(command):
    result = invoke(*command[:1], "--version")
    assert result.exit_code == 0 and __version__ in result.output
    result = invoke(*command[:1], "--help")
    assert result.exit_code == 0 and "Usage" in result.output


def test_plugins_lists_all_groups_and_the_example_plugin():
    result = invoke("plugins")
    assert result.exit_code == 0, result.output
    for group in ("backbones", "colormaps", "augmentations", "heads"):
        assert f"{group} (" in result.output
    assert "sunset" in result.output and "dsplug-example-colormaps" in result.output
    assert "BROKEN" not in result.output
    one = invoke("plugins", "heads")
    assert "mlp" in one.output and "backbones" not in one.output
    bad = invoke("plugins", "head")
    assert bad.exit_code == 2 and "did you mean 'heads'?" in bad.output


def test_validate_accepts_the_demo_and_rejects_a_typo(tmp_path):
    ok = invoke("validate", DEMO)
    assert ok.exit_code == 0, ok.output
    assert "valid" in ok.output and "624 files, 5 classes" in ok.output
    text = DEMO.read_text().replace("final_fit:", "final_fti:").replace("../data", str(ROOT / "data"))
    bad = write_recipe(tmp_path / "typo.yaml", text)
    result = invoke("validate", bad)
    assert result.exit_code == 2
    assert "train.final_fti: unknown key; did you mean train.final_fit?" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("data: [unclosed\n", "not valid YAML"),
        ("data: {manifest: /no/such/manifest.csv}\n", "manifest '/no/such/manifest.csv' does not exist"),
        ("data: {manifest: m.csv}\nmodel: {head: {name: mpl}}\n", "no head plugin named 'mpl'"),
    ],
)
def test_bad_input_ends_in_one_clear_line_and_exit_2(tmp_path, content, message):
    (tmp_path / "m.csv").write_text("file,label\na.wav,x\n")
    path = write_recipe(tmp_path / "bad.yaml", content)
    result = invoke("validate", path)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_manifest_with_missing_columns(tmp_path):
    (tmp_path / "m.csv").write_text("file,label\na.wav,x\n")
    path = write_recipe(tmp_path / "r.yaml", "data: {manifest: m.csv}\n")
    result = invoke("run", path, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert "missing column(s) path" in result.output
    # checks come first: a refused run writes nothing
    assert not (tmp_path / "run").exists()


def test_missing_recipe_file():
    result = invoke("run", "no-such-recipe.yaml")
    assert result.exit_code == 2 and "does not exist" in result.output


def test_real_script_exit_code_and_debug_traceback(tmp_path):
    exe = Path(sys.executable).parent / "dsplug"
    bad = write_recipe(tmp_path / "bad.yaml", "data: {manifest: x.csv}\ntrain: {lr: fast}\n")
    plain = subprocess.run([exe, "validate", bad], capture_output=True, text=True)
    assert plain.returncode == 2
    assert plain.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "train.lr: expected a number, got 'fast'" in plain.stderr
    assert "Traceback" not in plain.stderr
    debug = subprocess.run([exe, "--debug", "validate", bad], capture_output=True, text=True)
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_without_training_dependencies_the_fix_is_named(tmp_path):
    """A base (runtime-only) install: training commands say which extra to install."""
    blocker = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'tensorflow', 'tf_keras'}:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from dsplug.cli import main\n"
        "sys.argv = ['dsplug', 'validate', sys.argv[1]]\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", blocker, str(DEMO)], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "install dsplug[train]: from the source tree `pip install '.[train]'`" in result.stderr
    assert "pip install 'dsplug[" not in result.stderr  # dsplug is not on a public index
    assert "Traceback" not in result.stderr


def _commands() -> list[str]:
    import typer.main

    return list(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", ["", *_commands()])
def test_help_reads_like_the_docs(command):
    """Metavars, not typer's types: `RECIPE`, `KEY=VALUE`, `N`; flags without one; no `{recipe}`."""
    result = invoke(*[command][: bool(command)], "--help")
    assert result.exit_code == 0, result.output
    for typer_style in ("<bool>", "<str>", "<int>", "<float>", "<path>", "<list", "{"):
        assert typer_style not in result.output, (command, typer_style, result.output)
    if command in ("run", "validate", "sweep", "compare", "plot"):
        assert "--set" in result.output and "KEY=VALUE" in result.output
    if command in ("run", "sweep", "compare", "plot", "explain", "init", "manifest"):
        assert "-o" in result.output and "--out" in result.output  # -o is the output path everywhere


def test_usage_names_arguments_by_their_metavar():
    assert "predict [OPTIONS] MODEL AUDIO..." in " ".join(invoke("predict", "--help").output.split())
    assert "explain [OPTIONS] RUN [AUDIO]" in " ".join(invoke("explain", "--help").output.split())


def test_set_and_its_alias_override_a_recipe_value():
    for flag in ("--set", "--override"):
        result = invoke("validate", DEMO, flag, "train.final_fit=false")
        assert result.exit_code == 0, result.output
    bad = invoke("validate", DEMO, "--set", "train.final_fti=false")
    assert bad.exit_code == 2 and "train.final_fti: unknown key; did you mean train.final_fit?" in bad.output


@pytest.mark.parametrize("command", ["run", "validate", "sweep", "compare"])
@pytest.mark.parametrize("form", [["-o", "train.lr=0.01"], ["-otrain.lr=0.01"]])
def test_the_old_override_flag_is_refused_with_the_new_one(tmp_path, monkeypatch, command, form):
    """-o meant --override in these commands: `-o KEY=VALUE` is refused, naming --set; never a path."""
    monkeypatch.chdir(tmp_path)
    extra = ["--backbones", "squeezenet_v1"] if command == "compare" else []
    result = invoke(command, DEMO, *extra, *form)
    assert result.exit_code == 2
    assert "--set train.lr=0.01" in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []  # nothing written: no run directory named 'train.lr=0.01'


def test_o_with_a_path_is_the_output_of_run(tmp_path):
    result = invoke("run", tmp_path / "missing.yaml", "-o", tmp_path / "run")
    assert result.exit_code == 2 and "does not exist" in result.output and "--set" not in result.output
    sbatch = invoke("sweep", tmp_path / "missing.yaml", "--sbatch", "-ojob=1")  # an option's value is not -o
    assert sbatch.exit_code == 2 and "--set" not in sbatch.output


def test_missing_glyph_warnings_stay_off_the_terminal(tmp_path):
    """A class name in a script the figure font lacks is drawn as boxes without a warning per glyph."""
    code = (
        "import sys, warnings\n"
        "from matplotlib.figure import Figure\n"
        "from matplotlib.backends.backend_agg import FigureCanvasAgg\n"
        "from dsplug.console import terminal\n"
        "def draw():\n"
        "    fig = Figure(); FigureCanvasAgg(fig); fig.gca().set_title('\\u97f3\\u8c03 \\U0001f941'); fig.savefig(sys.argv[1])\n"
        "if sys.argv[2] == 'cli':\n"
        "    with terminal(debug=False):\n"
        "        draw()\n"
        "else:\n"
        "    draw()\n"
    )
    import subprocess
    import sys

    plain = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.png"), "plain"], capture_output=True, text=True, timeout=120)
    cli = subprocess.run([sys.executable, "-c", code, str(tmp_path / "b.png"), "cli"], capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0 and "missing from" in plain.stderr  # matplotlib does warn
    assert cli.returncode == 0 and "missing from" not in cli.stderr, cli.stderr
    assert (tmp_path / "b.png").stat().st_size > 0
