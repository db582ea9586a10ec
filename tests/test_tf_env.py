"""Process-level TF settings of the entry points (fuxi_like/tf_env.py): TensorFlow's host tensors come
from its BFC pool unless the environment says otherwise."""

import os
import subprocess
import sys

PROBE = """
import tensorflow as tf
x = tf.random.normal((256, 256))
y = x @ x
try:
    tf.config.experimental.get_memory_info("CPU:0")  # stats exist only for the BFC pool
    print("BFC")
except ValueError:
    print("malloc")
"""


def _run(code, **env):
    e = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPU_")}
    e.update(env, CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


def test_entry_points_select_tfs_bfc_host_allocator_and_respect_the_environment():
    # the model folders' run_expid.py entry (a config error still configures first), then TF
    code = ("import os\nfrom fuxi_like.cli import run_expid_main\n"
            "assert run_expid_main(['--config', '/nonexistent', '--expid', 'x']) == 2\n"
            "print(os.environ['TF_CPU_ALLOCATOR_USE_BFC'], int(os.environ['TF_CPU_BFC_MEM_LIMIT_IN_MB']) > 0)\n" + PROBE)
    assert _run(code) == ["true", "True", "BFC"]
    # the user's value wins: the entry point leaves it as it was. Which allocator TF then uses is TF's own
    # default, which differs between machines (some builds already pool host memory), so it is not asserted.
    assert _run(code, TF_CPU_ALLOCATOR_USE_BFC="false")[:2] == ["false", "True"]


def test_configure_is_a_no_op_once_tensorflow_is_imported():
    code = ("import tensorflow\nfrom fuxi_like.tf_env import configure\nimport os\n"
            "print(configure() == {}, 'TF_CPU_ALLOCATOR_USE_BFC' in os.environ)")
    assert _run(code) == ["True", "False"]
