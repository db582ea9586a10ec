"""The peer harness's memory sampler: it must count the whole tree's private memory, leave
shared pages out, and read the expensive smaps_rollup only when memory grows."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

pytestmark = pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(),
                                reason="needs Linux /proc/<pid>/smaps_rollup")

CHILD = """
import subprocess, sys, time
import numpy as np
from multiprocessing import shared_memory
shm = shared_memory.SharedMemory(create=True, size=300 << 20)
np.frombuffer(shm.buf, dtype=np.uint8)[:] = 1          # shared: the grandchild maps it too
own = np.ones(200 << 20, dtype=np.uint8)               # private: 200 MB
grand = subprocess.Popen([sys.executable, "-c", '''
import sys, time
import numpy as np
from multiprocessing import shared_memory, resource_tracker
shm = shared_memory.SharedMemory(name=sys.argv[1])
resource_tracker.unregister(shm._name, "shared_memory")
s = int(np.frombuffer(shm.buf, dtype=np.uint8).sum())  # touch every shared page
own = np.ones(100 << 20, dtype=np.uint8)               # private: 100 MB
print("ready", flush=True)
time.sleep(3)
''', shm.name], stdout=subprocess.PIPE, text=True)
grand.stdout.readline()
print("ready", flush=True)                             # both have mapped and touched the shared pages
time.sleep(0.5)
late = np.ones(150 << 20, dtype=np.uint8)              # private growth the sampler must catch: 150 MB
time.sleep(2)
grand.wait()
shm.close(); shm.unlink()
"""


def test_sampler_counts_private_tree_memory_and_skips_shared_pages():
    from benchmark.peers.memory import TreeMemorySampler

    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    sampler = TreeMemorySampler(proc.pid, interval=0.05).start()
    assert proc.wait(timeout=60) == 0
    sampler.stop()
    peak_mb = sampler.peak_private_kb / 1024
    # 200 + 100 + 150 MB private plus two interpreters with NumPy (~100 MB); the 300 MB both
    # map is shared (counting it would give >= 750)
    assert 450 <= peak_mb < 450 + 250, peak_mb
    assert sampler.peak_anon_kb / 1024 >= 450
    assert sampler.private_reads >= 2  # the first poll, then the 150 MB growth


def test_sampler_reads_smaps_rarely_while_memory_is_flat():
    from benchmark.peers.memory import TreeMemorySampler

    proc = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(50 << 20); time.sleep(2)"])
    time.sleep(0.3)
    sampler = TreeMemorySampler(proc.pid, interval=0.01, max_gap=10.0).start()
    proc.wait(timeout=30)
    sampler.stop()
    assert sampler.peak_private_kb / 1024 >= 50
    assert sampler.peak_anon_kb / 1024 >= 50
    # ~170 cheap polls, but the private memory is read once (no growth, max_gap not reached)
    assert sampler.private_reads <= 2, sampler.private_reads
