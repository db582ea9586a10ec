"""Peak private memory of a process tree, sampled with little overhead.

Private memory (Private_Clean + Private_Dirty, /proc/<pid>/smaps_rollup) is what the peer
comparison reports: FuxiCTR's Ray loader maps large shared pages that inflate RSS. But the
kernel walks every page table of the process to answer smaps_rollup: ~74 ms for one read of
a 2.2 GB RAT training process here (`python benchmark/peers/memory.py`: 40 ms for a process
holding 2 GB in 4 kB pages, 0.05 ms for its status file), so reading it every 0.2 s took about a third of one of the
machine's two cores from the run being timed (and holds the process's mmap lock meanwhile).

`TreeMemorySampler` polls the cheap counters instead (RssAnon from /proc/<pid>/status, ~70 us)
every `interval` seconds and reads smaps_rollup only when the tree's anonymous memory has
grown by `regrow` since the last read, or `max_gap` seconds have passed, and never more often
than `duty` of one core allows (the next read waits `(1 - duty) / duty` times the last read's
duration). The peak of anonymous memory is kept too, as a cross-check of the private peak.
"""

import os
import threading
import time


def tree_pids(pid):
    """`pid` and all its live descendants."""
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        try:
            kids = []
            for t in os.listdir(f"/proc/{p}/task"):
                kids += [int(c) for c in open(f"/proc/{p}/task/{t}/children").read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        out.append(p)
        stack += kids
    return out


def _sum_fields(path, fields):
    total = 0
    try:
        for line in open(path):
            if line.startswith(fields):
                total += int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return total


def private_kb(pids):
    """Private_Clean + Private_Dirty (kB) summed over `pids` (expensive: walks the page tables)."""
    return sum(_sum_fields(f"/proc/{p}/smaps_rollup", ("Private_Clean:", "Private_Dirty:")) for p in pids)


def anon_kb(pids):
    """RssAnon (kB) summed over `pids` (cheap: kernel counters)."""
    return sum(_sum_fields(f"/proc/{p}/status", ("RssAnon:",)) for p in pids)


class TreeMemorySampler:
    """Samples the process tree under `pid` in a daemon thread until `stop()`.

    Attributes after `stop()`: `peak_private_kb`, `peak_anon_kb`, `private_reads` (smaps_rollup
    reads of the tree) and `read_seconds` (their total time: the sampler's own cost).
    """

    def __init__(self, pid, interval=0.2, regrow=0.02, max_gap=10.0, duty=0.1):
        self.pid, self.interval, self.regrow, self.max_gap, self.duty = pid, interval, regrow, max_gap, duty
        self.peak_private_kb = self.peak_anon_kb = 0
        self.private_reads, self.read_seconds = 0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self

    def poll(self, state):
        """One sample; `state` carries the anon level and time of the last private read."""
        pids = tree_pids(self.pid)
        if not pids:
            return
        anon = anon_kb(pids)
        self.peak_anon_kb = max(self.peak_anon_kb, anon)
        now = time.perf_counter()
        due = (self.private_reads == 0 or anon > state["anon"] * (1 + self.regrow)
               or now - state["at"] >= self.max_gap)
        if due and now >= state["not_before"]:
            priv = private_kb(pids)
            took = time.perf_counter() - now
            self.private_reads += 1
            self.read_seconds += took
            self.peak_private_kb = max(self.peak_private_kb, priv)
            state.update(anon=anon, at=now, not_before=now + took * (1 - self.duty) / self.duty)

    def _run(self):
        state = {"anon": 0, "at": 0.0, "not_before": 0.0}
        while not self._stop.is_set():
            self.poll(state)
            self._stop.wait(self.interval)


def shared_library_pages(python=None, settle=15.0):
    """A TensorFlow process's private memory alone and with a second TensorFlow process alive: its
    shared libraries' resident pages count as Private_Clean while no other process maps them, as
    Shared_Clean once one does. Returns {"alone": kB, "beside another": kB} of Private_Clean."""
    import subprocess
    import sys

    code = "import tensorflow as tf, time; tf.zeros(1); print('ready', flush=True); time.sleep(600)"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    start = [python or sys.executable, "-c", code]
    procs = []
    try:
        out = {}
        for label in ("alone", "beside another"):
            procs.append(subprocess.Popen(start, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True))
            procs[-1].stdout.readline()  # imported and initialised
            time.sleep(settle if len(procs) == 1 else 2.0)
            out[label] = _sum_fields(f"/proc/{procs[0].pid}/smaps_rollup", ("Private_Clean:",))
        return out
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main():
    """Time one smaps_rollup read against one status read of a process (the cost this module avoids);
    `--shared-libs`: how a TensorFlow process's private memory depends on a second one being alive."""
    import argparse

    import numpy as np

    ap = argparse.ArgumentParser(description="time /proc reads of a process: smaps_rollup vs status")
    ap.add_argument("--pid", type=int, default=None, help="process to read (default: this one, after --alloc-gb)")
    ap.add_argument("--alloc-gb", type=float, default=2.0, help="memory this process allocates and touches first")
    ap.add_argument("--reads", type=int, default=20)
    ap.add_argument("--shared-libs", action="store_true",
                    help="Private_Clean of a TensorFlow process alone vs beside a second TensorFlow process")
    a = ap.parse_args()
    if a.shared_libs:
        for label, kb in shared_library_pages().items():
            print(f"TensorFlow process {label}: Private_Clean {kb:,} kB")
        return
    hold = None
    if a.pid is None:
        try:  # 4 kB pages, as TF's heap gets: NumPy otherwise asks for huge pages, 512x fewer entries to walk
            np._core.multiarray._set_madvise_hugepage(False)
        except AttributeError:
            pass
        hold = np.ones(int(a.alloc_gb * (1 << 30)) // 8)  # touched: resident, private
    pid = a.pid or os.getpid()
    if not os.path.exists(f"/proc/{pid}/smaps_rollup"):
        raise SystemExit(f"error: /proc/{pid}/smaps_rollup not found (no such process, or not Linux)")
    for name, fn in (("smaps_rollup (private memory)", lambda: private_kb([pid])),
                     ("status (RssAnon)", lambda: anon_kb([pid]))):
        t = time.perf_counter()
        for _ in range(a.reads):
            fn()
        print(f"{name}: {(time.perf_counter() - t) / a.reads * 1e3:.2f} ms per read of pid {pid}")
    del hold


if __name__ == "__main__":
    main()
