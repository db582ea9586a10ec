"""What the core promises about its own shape: imports only go downward, a model folder is self-contained
and runs through its own run_expid.py, and every key an expid may set has one default, used by its owner."""

import ast
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fuxi_like.experiment import load_model_module, model_kwargs, validate_model_params
from fuxi_like.models import BaseModel, RetrievalModel
from fuxi_like.training.params import RUNNER_KEYS

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = sorted(d.name for d in (ROOT / "model_zoo").iterdir() if (d / "run_expid.py").is_file())


def _folder_models(name):
    module = load_model_module(ROOT / "model_zoo" / name)
    return {k: v for k, v in vars(module).items()
            if inspect.isclass(v) and issubclass(v, BaseModel) and v.__module__.startswith(module.__name__)}


# ------------------------------------------------------------------------------------- layering
def test_import_linter_contracts_hold():
    """setup.cfg's import-linter contracts: the core's layers import only downward and the core never
    imports a model folder, a benchmark or a test."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "lint-imports (import-linter) is not installed: pip install -e '.[test]'"
    r = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_imports_inside_functions_say_why():
    """An import inside a function hides a dependency from the layering check: only optional or native
    libraries are imported late, each with a `lazy: <reason>` comment on its line or the line above."""
    bare = []
    for f in sorted((ROOT / "fuxi_like").rglob("*.py")):
        lines = f.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        near = lines[sub.lineno - 1] + lines[sub.lineno - 2]
                        if "lazy:" not in near:
                            bare.append(f"{f.relative_to(ROOT)}:{sub.lineno}: {lines[sub.lineno - 1].strip()}")
    assert not bare, "imports inside functions without a 'lazy:' reason:\n" + "\n".join(sorted(set(bare)))


def test_paper_code_lives_in_its_folder():
    """The core holds no module a single paper uses; those moved into the paper's folder."""
    for gone in ("features/sample_retrieval.py", "retrieval/cross_stage.py", "retrieval/code_index.py",
                 "datasets/rar_seq.py"):
        assert not (ROOT / "fuxi_like" / gone).exists(), gone
    assert (ROOT / "model_zoo/RAT/src/sample_retrieval.py").is_file()
    assert "rar_seq" in load_model_module(ROOT / "model_zoo" / "RAR").RECIPES


# ------------------------------------------------------------------------- one default per key
def _used_names(func):
    tree = ast.parse(_dedent(inspect.getsource(func)))
    fn = tree.body[0]
    params = [a.arg for a in fn.args.args + fn.args.kwonlyargs]
    loaded = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return params, loaded


def _dedent(src):
    lines = src.splitlines()
    pad = len(lines[0]) - len(lines[0].lstrip())
    return "\n".join(line[pad:] for line in lines)


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_constructor_argument_is_used_by_its_constructor(folder):
    """A key the signature accepts but the constructor never reads is a key that silently does nothing
    (or reaches the model by another path with another default)."""
    classes = {**_folder_models(folder), "BaseModel": BaseModel, "RetrievalModel": RetrievalModel}
    unused = []
    for name, cls in classes.items():
        if "__init__" not in vars(cls):
            continue
        params, loaded = _used_names(cls.__init__)
        unused += [f"{name}.{p}" for p in params if p not in ("self", "feature_map") and p not in loaded]
    assert not unused, f"constructor arguments never read: {unused}"


@pytest.mark.parametrize("folder", FOLDERS)
def test_an_expid_that_omits_its_keys_gets_exactly_the_signature_defaults(folder):
    for name, cls in _folder_models(folder).items():
        raw = {"model": name, "dataset_id": "any", "expid": "E", "config_file": "model_config.yaml"}
        if cls.retrieval:  # evaluation settings, not hyperparameters: retrieval models rank, CTR models classify
            raw.update(metrics=["Recall@10", "NDCG@10"], monitor="NDCG@10")
        params = validate_model_params(raw, cls)
        sig = cls.hyperparameters()
        assert not set(sig) & set(RUNNER_KEYS), f"{name}: constructor arguments named like runner keys"
        for k, default in sig.items():
            want = list(default) if isinstance(default, tuple) else default
            assert params[k] == want, (name, k, params[k], want)
        for k, (_, default) in RUNNER_KEYS.items():
            if k not in raw:
                assert params[k] == default, (name, k)
        assert model_kwargs(params, cls) == {k: params[k] for k in sig}


def test_compile_and_fit_use_the_runner_defaults(tmp_path):
    """BaseModel.compile_from_params with no keys compiles exactly what RUNNER_KEYS says."""
    from fuxi_like.config import load_dataset_config
    from fuxi_like.data.build_dataset import build_dataset, load_feature_map
    from helpers import make_model_folder, synthetic_dataset

    cfg = make_model_folder(tmp_path, {"syn": synthetic_dataset(tmp_path, n_rows=500)}, {})
    fmap = load_feature_map(build_dataset(load_dataset_config(cfg, "syn")))
    m = _folder_models("LR")["LR"](fmap)
    m.compile_from_params({})
    assert float(m.optimizer.learning_rate) == pytest.approx(RUNNER_KEYS["learning_rate"][1])
    assert m.optimizer.global_clipnorm == RUNNER_KEYS["max_gradient_norm"][1]  # a global-norm clip, as FuxiCTR


# ----------------------------------------------------------------- every folder through its CLI
NOISE = ("cuInit", "does not have a `build()` method", "Traceback")


QUICK_CLI = ("DeepFM", "LR")  # the development tier (-m "not slow") runs these two; the full suite runs all


@pytest.mark.parametrize("folder", [f if f in QUICK_CLI else pytest.param(f, marks=pytest.mark.slow) for f in FOLDERS])
def test_folder_test_expid_runs_through_its_own_run_expid(folder, tmp_path):
    """`python run_expid.py` in the folder (its default expid, <Model>_test) trains, evaluates and appends a
    results row, on the CPU without a CUDA error line or a Keras build warning. Two epochs (`--set epochs=2`): the
    path is under test here, learning is tested per model elsewhere."""
    results = tmp_path / "results.csv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    env["CUDA_VISIBLE_DEVICES"] = ""
    r = subprocess.run([sys.executable, "run_expid.py", "--gpu", "-1", "--results", str(results), "--set", "epochs=2"],
                       cwd=ROOT / "model_zoo" / folder, capture_output=True, text=True, env=env, timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "\ntest " in "\n" + r.stdout or r.stdout.startswith("test "), r.stdout[-2000:]
    for bad in NOISE:
        assert bad not in out, f"{bad!r} in the output of {folder}'s run:\n{out[-3000:]}"
    rows = results.read_text().splitlines()
    assert len(rows) == 2 and f"{folder}_test" in rows[1]


# --------------------------------------------------------------------------------- declared hooks
HOOKED_MODEL = '''
import keras
import numpy as np
from keras import ops

from fuxi_like.layers import MLPBlock
from fuxi_like.models import BaseModel, register_model

CALLS = []


@register_model
class Hooked(BaseModel):
    def __init__(self, feature_map, model_id="Hooked", offset=0.0, **kwargs):
        super().__init__(feature_map, model_id=model_id, **kwargs)
        self.offset = float(offset)
        self.embedding = self.make_embedding(features=["c1", "c2"])
        self.mlp = MLPBlock((8,), output_dim=1)
        self.seen_extra = False

    def extra_inputs(self):
        CALLS.append("extra_inputs")
        return lambda split, arrays: {"row_const": np.full(len(arrays["label"]), self.offset, np.float32)}

    def adapt(self, pipeline):
        CALLS.append("adapt")

    def build_loss_layers(self, x):
        CALLS.append("build_loss_layers")
        assert "row_const" in x

    def training_callbacks(self, pipeline):
        CALLS.append("training_callbacks")
        return [keras.callbacks.LambdaCallback(on_train_begin=lambda logs: CALLS.append("fit"))]

    def call(self, inputs, training=None):
        emb = self.embedding(inputs)
        h = ops.concatenate([emb["c1"], emb["c2"]], axis=-1)
        return ops.sigmoid(self.mlp(h, training=training) + ops.reshape(inputs["row_const"], (-1, 1)))
'''


def test_runner_calls_the_declared_hooks_in_order_and_load_trained_skips_adapt(tmp_path):
    from fuxi_like.runner import load_trained, run_expid
    from helpers import make_model_folder, synthetic_dataset

    cfg = make_model_folder(tmp_path, {"syn": synthetic_dataset(tmp_path, n_rows=1500)},
                            {"H": {"model": "Hooked", "dataset_id": "syn", "epochs": 1, "batch_size": 256,
                                   "offset": 0.25}})
    (cfg.parent / "src").mkdir()
    (cfg.parent / "src" / "__init__.py").write_text(HOOKED_MODEL)
    mod = load_model_module(cfg.parent)
    run_expid(cfg, "H")
    assert mod.CALLS == ["extra_inputs", "adapt", "training_callbacks", "build_loss_layers", "fit"]
    mod.CALLS.clear()
    loaded = load_trained(cfg, "H")
    assert "adapt" not in mod.CALLS and mod.CALLS[0] == "extra_inputs"
    assert loaded["finished"] is not None and loaded["params"]["offset"] == 0.25
