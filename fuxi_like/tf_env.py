"""Process-level TensorFlow settings, applied by the command-line entry points before TF starts.

- `TF_CPU_ALLOCATOR_USE_BFC=true`: TensorFlow's host (CPU) tensors come from its BFC pool
  allocator instead of plain malloc. With malloc, every step's large temporaries are fresh
  mmap'd pages the kernel faults in and zeroes again: a DeepFM step at batch 4096 on 2 cores
  took ~4,200 page faults and ~16 ms of kernel CPU per step, against ~150 and ~3 ms from the
  pool (`python benchmark/host_allocator.py`). The step time gained less and not every time:
  median ratio malloc/BFC 1.03 over 7 quiet pairs (0.85-1.17), ~1.09 with another job
  sharing the cores; the CPU it frees matters most when processes share a machine (sweeps).
  The pool keeps memory it has used for reuse, so RSS stays at the run's peak instead of
  falling between steps.
- `TF_CPU_BFC_MEM_LIMIT_IN_MB`: that pool's cap. TF's default is 64 GB whatever the machine;
  it is set to the machine's physical memory, so large in-memory datasets are not refused.
- `TF_CPP_MIN_LOG_LEVEL=2`: TF's C++ info and warning lines off; `3` for a CPU-only run
  (`configure(cpu_only=True)`, i.e. `--gpu -1`), where TF's one C++ error line is its CUDA platform
  failing `cuInit` on a machine without a GPU (errors that matter still raise in Python).

Each is a default: a value already in the environment wins (e.g. `TF_CPU_ALLOCATOR_USE_BFC=false`
to go back to malloc). Settings read when TF initialises have no effect once TensorFlow has been
imported; `configure()` then leaves them alone and says so in its return value.
"""

import os
import sys


def physical_memory_mb():
    """Total physical memory in MB, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20)
    except (AttributeError, ValueError, OSError):
        return None


def defaults(cpu_only=False):
    out = {"TF_CPP_MIN_LOG_LEVEL": "3" if cpu_only else "2", "TF_CPU_ALLOCATOR_USE_BFC": "true"}
    mb = physical_memory_mb()
    if mb:
        out["TF_CPU_BFC_MEM_LIMIT_IN_MB"] = str(mb)
    return out


def configure(cpu_only=False):
    """Apply the defaults the environment does not set. Returns {name: value} of those applied;
    empty when TensorFlow was already imported (too late for the allocator settings)."""
    if "tensorflow" in sys.modules:
        return {}
    applied = {}
    for k, v in defaults(cpu_only).items():
        if k not in os.environ:
            os.environ[k] = v
            applied[k] = v
    return applied
