"""Energy and carbon accounting of a run, as GreenRec reports it (arXiv 2403.04736).

`EnergyTracker` wraps codecarbon's `OfflineEmissionsTracker` (the optional extra `green`:
`pip install "fuxi_like[green]"`): started before training and stopped after the final
evaluation, it records the energy (kWh) of the whole span and at every epoch end (a Keras
callback), its CPU / RAM / GPU split, the CO2e (kg) at a configured carbon intensity, the way
codecarbon obtained the CPU figure (`energy_method`), the process CPU time and the wall time.
`run_expid` turns it on with the runner key `energy_tracking: true`; the figures go to extra
columns of the results row (`ENERGY_COLUMNS`), written by `append_row`, which widens the header
of a results CSV written before these columns existed.

Nothing leaves the machine and nothing is written to disk by codecarbon: no network look-up of the
location (offline tracker; the country or the intensity comes from the config), no Electricity Maps
token, no API, no `emissions.csv` (codecarbon's outputs are off; the readings are taken by an
in-memory output handler at `flush()`/`stop()`, codecarbon's public hooks).

What codecarbon measures (`energy_method`, one of `CPU_METHODS`): with readable RAPL counters
(`/sys/class/powercap/intel-rapl`, Linux) the CPU energy is measured (`intel_rapl`); without them
it is *estimated* from the CPU's TDP (from codecarbon's table, or 4 W per thread when the model is
unknown) and the CPU load (`cpu_load`: TDP x (0.1 + 0.9 load^3) for the whole machine, TDP x the
process's share of the cores in `process` mode), or 50 % of TDP (`constant`, without psutil).
RAM is always a model (about 5 W per DIMM slot, from the memory size), GPUs are measured through
NVML (their energy counters). A run on the CPU (`gpu=-1`) does not count the machine's GPUs.

Units: energy in kWh, CO2e in kg, carbon intensity in gCO2e/kWh; `apc` takes the CO2e unit
explicitly. Settings codecarbon reads from its own config (`.codecarbon.config`, `CODECARBON_*`
environment variables) that are not set here still apply, e.g. `pue`, `force_cpu_power`.
"""

import csv
import fcntl
import io
import json
import logging
import math
import os
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from ..errors import ConfigError, closest
from ..pretrained.text import MissingExtraError
from ..results import append_result

log = logging.getLogger("fuxi_like")

EXTRA = "green"
WORLD = "WORLD"
TRACKING_MODES = ("machine", "process")

# codecarbon's CPU modes (codecarbon.external.hardware.CPU._mode), as `energy_method`
CPU_METHODS = {
    "intel_rapl": "measured: Linux RAPL energy counters",
    "cpu_load": "estimated: TDP x CPU load (no readable energy counter)",
    "constant": "estimated: 50 % of TDP",
    "intel_power_gadget": "measured: Intel Power Gadget",
    "windows_emi": "measured: Windows Energy Meter Interface",
    "apple_powermetrics": "measured: macOS powermetrics",
    "raspberry": "measured: Raspberry Pi PMIC",
    "unknown": "codecarbon's hardware description could not be read",
}

# the results-row columns a tracked run adds after results.COLUMNS
ENERGY_COLUMNS = ["energy_kwh", "co2e_kg", "energy_cpu_kwh", "energy_ram_kwh", "energy_gpu_kwh", "energy_method",
                  "energy_tracking_mode", "carbon_country", "carbon_intensity_g_per_kwh", "apc",
                  "energy_per_epoch_kwh", "cpu_seconds", "tracked_seconds", "params_trainable", "params_total",
                  "energy_details"]


def require_codecarbon():
    """The codecarbon module, after checking that the `green` extra is installed."""
    try:
        import codecarbon  # lazy: optional extra `green`; the core does not depend on codecarbon
    except ImportError:
        raise MissingExtraError(f"energy_tracking needs codecarbon: pip install \"fuxi_like[{EXTRA}]\" "
                                f"(or set energy_tracking: false)") from None
    return codecarbon


def _energy_mix():
    from codecarbon.input import DataSource  # lazy: optional extra `green`

    return DataSource().get_global_energy_mix_data()


def world_intensity():
    """codecarbon's world-average carbon intensity, gCO2e/kWh (its `world_average`, IEA)."""
    require_codecarbon()
    from codecarbon.input import DataSource  # lazy: optional extra `green`

    return float(DataSource().get_carbon_intensity_per_source_data()["world_average"])


def check_energy_params(params, where="energy_tracking"):
    """Raise ConfigError for a tracking mode, country or intensity codecarbon would not use as meant
    (codecarbon itself only logs such errors and falls back to the world average)."""
    mode, country, intensity = params["energy_tracking_mode"], params["carbon_country"], params["carbon_intensity"]
    if mode not in TRACKING_MODES:
        raise ConfigError(f"{where}: energy_tracking_mode must be one of {', '.join(TRACKING_MODES)}, got {mode!r}")
    if intensity is not None and (isinstance(intensity, bool) or not isinstance(intensity, (int, float))
                                  or not math.isfinite(intensity) or intensity < 0):
        raise ConfigError(f"{where}: carbon_intensity must be a number of gCO2e/kWh >= 0 (or null), got {intensity!r}")
    require_codecarbon()
    if country != WORLD:
        codes = _energy_mix()
        if country not in codes:
            raise ConfigError(f"{where}: carbon_country {country!r} is not a 3-letter ISO code codecarbon knows"
                              f"{closest(country, [*codes, WORLD])}; use {WORLD!r} for the world average")


def apc(auc, co2e, unit="kg"):
    """GreenRec's sustainability metric, accuracy per carbon: ApC = (AUC% - 50) / CO2e x 100.

    auc: the AUC as a fraction in [0, 1] (what the zoo's metrics report); the formula uses it in
    percent, AUC% = 100 x auc, so a random model (AUC 0.5) scores 0.
    co2e: the run's emissions, in `unit`: "kg" (kgCO2e, what the results row records) or "g"
    (gCO2e). The value scales with the unit: ApC in g is ApC in kg / 1000, so compare only figures
    computed in the same unit (the results column `apc` uses kg, as its neighbour `co2e_kg`).
    Example: AUC 0.75 and 0.002 kgCO2e -> (75 - 50) / 0.002 x 100 = 1,250,000 (= 1,250 with 2 g).
    """
    if unit not in ("kg", "g"):
        raise ValueError(f"apc: unit must be 'kg' or 'g', got {unit!r}")
    if not 0.0 <= float(auc) <= 1.0:
        raise ValueError(f"apc: auc must be a fraction in [0, 1] (0.75, not 75), got {auc!r}")
    if not float(co2e) > 0:
        raise ValueError(f"apc: co2e must be > 0 {unit}CO2e, got {co2e!r}")
    return (100.0 * float(auc) - 50.0) / float(co2e) * 100.0


class _Readings:
    """An in-memory codecarbon output handler (its BaseOutput interface): keeps the cumulative
    EmissionsData that `flush()` and `stop()` hand it, writes nothing."""

    def __init__(self):
        self.last = None

    def out(self, total, delta):
        self.last = total

    def live_out(self, total, delta):
        pass

    def task_out(self, data, experiment_name):
        pass

    def exit(self):
        pass


class EnergyCallback(keras.callbacks.Callback):
    """Reads the tracker's cumulative energy at each epoch end (after the validation that
    TrainingMonitor runs at that epoch end, when this callback comes after it)."""

    def __init__(self, tracker):
        super().__init__()
        self.tracker = tracker

    def on_epoch_end(self, epoch, logs=None):
        self.tracker.epoch_end(epoch + 1)


class EnergyTracker:
    """Energy, CO2e and CPU time of one span of work (for a run: training + final evaluation).

    country: 3-letter ISO code of the grid (codecarbon's energy-mix table), or "WORLD" for
    codecarbon's world average (475 gCO2e/kWh in codecarbon 3.3); intensity (gCO2e/kWh) overrides it.
    tracking_mode: "machine" (codecarbon's default: the whole machine's CPU load and RAM) or
    "process" (this process's CPU time share and memory; fairer on a shared machine).
    gpu: the run's GPU index (as `run_expid --gpu`, counted within CUDA_VISIBLE_DEVICES), -1 for a
    CPU run, whose energy then leaves out the machine's GPUs.
    """

    def __init__(self, country=WORLD, intensity=None, tracking_mode="machine", gpu=-1, measure_power_secs=15):
        check_energy_params({"energy_tracking_mode": tracking_mode, "carbon_country": country,
                             "carbon_intensity": intensity}, where="EnergyTracker")
        cc = require_codecarbon()
        logging.getLogger("codecarbon").setLevel(logging.ERROR)  # as its log_level below, before its first message
        self.country, self.tracking_mode, self.gpu = country, tracking_mode, gpu
        if intensity is None and country == WORLD:
            intensity = world_intensity()
        self.intensity = float(intensity) if intensity is not None else None
        self._readings = _Readings()
        self._epochs = []
        self._started = self._report = None
        kwargs = {"project_name": "fuxi_like", "measure_power_secs": measure_power_secs, "tracking_mode": tracking_mode,
                  # no file, no API, no HTTP endpoint, no Electricity Maps: readings go to self._readings only
                  "output_methods": [], "output_handlers": [self._readings], "api_call_interval": -1,
                  "emissions_endpoint": None, "electricitymaps_api_token": None, "allow_multiple_runs": True,
                  "log_level": "error", "force_carbon_intensity_g_co2e_kwh": self.intensity}
        if country != WORLD:
            kwargs["country_iso_code"] = country
        if gpu is not None and gpu >= 0:
            visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
            kwargs["gpu_ids"] = [visible[gpu] if gpu < len(visible) else gpu]
        self._tracker = cc.OfflineEmissionsTracker(**kwargs)
        self.codecarbon_version = getattr(cc, "__version__", "?")

    @classmethod
    def from_params(cls, params, gpu=-1):
        check_energy_params(params, where=f"{params.get('config_file', 'model_config.yaml')}: {params.get('expid')}")
        return cls(country=params["carbon_country"], intensity=params["carbon_intensity"],
                   tracking_mode=params["energy_tracking_mode"], gpu=gpu)

    # ------------------------------------------------------------------ hardware
    def _hardware(self):
        return list(getattr(self._tracker, "_hardware", None) or [])  # codecarbon's private list: read, guarded

    def method(self):
        """How codecarbon gets the CPU energy here: a key of CPU_METHODS."""
        for hw in self._hardware():
            name = type(hw).__name__
            if name == "CPU":
                mode = getattr(hw, "_mode", None)
                return mode if mode in CPU_METHODS else "unknown"
            if name in ("AppleSiliconChip", "Raspberry") and getattr(hw, "chip_part", "") == "CPU":
                return "apple_powermetrics" if name == "AppleSiliconChip" else "raspberry"
        return "unknown"

    def _details(self):
        hw_info = self._tracker.get_detected_hardware()
        cpu = next((h for h in self._hardware() if type(h).__name__ == "CPU"), None)
        gpus = [h for h in self._hardware() if type(h).__name__ == "GPU"]
        return {"cpu_model": hw_info.get("cpu_model"), "cpu_tdp_w": getattr(cpu, "_tdp", None),
                "ram_method": "forced" if getattr(self._tracker, "_force_ram_power", None) is not None else "model",
                "ram_total_gb": hw_info.get("ram_total_size"),
                "gpu_method": "nvml" if gpus else "none", "gpu_model": hw_info.get("gpu_model") if gpus else "",
                "pue": getattr(self._tracker, "_pue", None), "codecarbon_version": self.codecarbon_version}

    # ------------------------------------------------------------------ tracking
    def start(self):
        self._tracker.get_detected_hardware()  # codecarbon's hardware probe (public), before start reads it
        if self.gpu is None or self.gpu < 0:  # a CPU run: leave out the GPUs (their idle power is not the run's)
            hw = self._hardware()
            if any(type(h).__name__ == "GPU" for h in hw):
                self._tracker._hardware = [h for h in hw if type(h).__name__ != "GPU"]
        self._started = (time.perf_counter(), time.process_time())
        self._tracker.start()
        return self

    def _reading(self):
        data = self._readings.last
        if data is None:
            return None
        return {"energy_kwh": float(data.energy_consumed), "co2e_kg": float(data.emissions),
                "cpu_kwh": float(data.cpu_energy), "ram_kwh": float(data.ram_energy), "gpu_kwh": float(data.gpu_energy)}

    def epoch_end(self, epoch):
        """Record the cumulative energy and CO2e at the end of `epoch` (1-based)."""
        if self._started is None or self._report is not None:
            return
        self._readings.last = None
        self._tracker.flush()  # codecarbon's public mid-run reading: measures, then calls our handler's out()
        r = self._reading()
        if r is not None:
            self._epochs.append({"epoch": int(epoch), "energy_kwh": r["energy_kwh"], "co2e_kg": r["co2e_kg"],
                                 "seconds": round(time.perf_counter() - self._started[0], 3)})

    def callback(self):
        return EnergyCallback(self)

    def stop(self):
        """Stop tracking; return the report (dict; see `ENERGY_COLUMNS` for the row it becomes)."""
        if self._report is not None or self._started is None:
            return self._report
        self._readings.last = None
        self._tracker.stop()
        wall, cpu = time.perf_counter() - self._started[0], time.process_time() - self._started[1]
        r = self._reading() or {}
        energy, co2e = r.get("energy_kwh", float("nan")), r.get("co2e_kg", float("nan"))
        prev, per_epoch = 0.0, []
        for e in self._epochs:
            per_epoch.append(e["energy_kwh"] - prev)
            prev = e["energy_kwh"]
        self._report = {
            "energy_kwh": energy, "co2e_kg": co2e, "energy_cpu_kwh": r.get("cpu_kwh"),
            "energy_ram_kwh": r.get("ram_kwh"), "energy_gpu_kwh": r.get("gpu_kwh"), "energy_method": self.method(),
            "energy_tracking_mode": self.tracking_mode, "carbon_country": self.country,
            # what codecarbon applied: co2e / energy (gCO2e/kWh)
            "carbon_intensity_g_per_kwh": round(co2e * 1000.0 / energy, 3) if energy and energy > 0 else self.intensity,
            "energy_per_epoch_kwh": per_epoch, "epochs": list(self._epochs),
            "cpu_seconds": round(cpu, 3), "tracked_seconds": round(wall, 3), "details": self._details(),
        }
        if not r:
            log.warning("energy tracking: codecarbon returned no reading (see its log); the row's energy is NaN")
        return self._report

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------- the results row
def count_params(model):
    """(trainable, total) parameter counts of a built Keras model."""
    trainable = int(sum(int(np.prod(v.shape)) for v in model.trainable_weights))
    return trainable, int(sum(int(np.prod(v.shape)) for v in model.weights))


def energy_row(report, model=None, test=None):
    """The results-row cells (ENERGY_COLUMNS) of a tracker's report; `test`: the test metrics, whose
    AUC gives `apc`: GreenRec's ApC with CO2e in kg (`apc(auc, co2e_kg, unit="kg")`)."""
    row = {k: report[k] for k in ENERGY_COLUMNS if k in report}
    auc, co2e = (test or {}).get("AUC"), report["co2e_kg"]
    row["apc"] = apc(auc, co2e, unit="kg") if auc is not None and co2e > 0 and 0 <= auc <= 1 else None
    if model is not None:
        row["params_trainable"], row["params_total"] = count_params(model)
    row["energy_details"] = dict(report["details"], epochs=report["epochs"])
    return row


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, sort_keys=True, default=str)
    return v


def append_row(path, row, extra_columns=ENERGY_COLUMNS):
    """`results.append_result` for a row with columns beyond results.COLUMNS (`extra_columns`).

    The results.COLUMNS cells are formatted by append_result itself (into a scratch file), the extra
    ones as JSON (lists, dicts) or plain values. Under the same exclusive lock as append_result:
    an empty file gets the header COLUMNS + extra_columns; a file whose header already has them gets
    the row in its header's order; an older file without them (a results CSV written before) gets
    its header widened in place, its rows padded with empty cells, before the row is added: no row
    and no column is dropped. The extra columns always follow COLUMNS, so rows that append_result
    writes later still line up (csv.DictReader gives None for their missing trailing cells).
    """
    path = Path(path)
    with tempfile.TemporaryDirectory() as d:
        scratch = Path(d) / "row.csv"
        append_result(scratch, row)
        with open(scratch, newline="", encoding="utf-8") as f:
            base_header, base_cells = list(csv.reader(f))
    names = base_header + [c for c in extra_columns if c not in base_header]
    values = dict(zip(base_header, base_cells))
    values.update({c: _cell(row.get(c)) for c in extra_columns})

    def line(cols):
        buf = io.StringIO()
        csv.writer(buf).writerow(cols)
        return buf.getvalue()

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with open(fd, "r+", newline="", encoding="utf-8", closefd=False) as f:
            text = f.read()
            if not text:
                f.write(line(names) + line([values.get(c, "") for c in names]))
            else:
                rows = list(csv.reader(io.StringIO(text)))
                header = rows[0]
                missing = [c for c in names if c not in header]
                if missing:  # an older results file: widen its header, pad its rows
                    header = header + missing
                    body = "".join(line(r + [""] * (len(header) - len(r))) for r in rows[1:])
                    new = line(header) + body
                    backup = path.with_name(f".{path.name}.widening")
                    backup.write_text(text, encoding="utf-8")  # the old content, in case of a crash mid-rewrite
                    f.seek(0)
                    f.write(new)
                    f.truncate()
                    f.flush()
                    os.fsync(fd)
                    backup.unlink()
                    log.info("%s: added columns %s to the header", path, ", ".join(missing))
                else:
                    f.seek(0, os.SEEK_END)
                    if not text.endswith("\n"):
                        f.write("\n")
                f.write(line([values.get(c, "") for c in header]))
            f.flush()
            os.fsync(fd)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


__all__ = [
    "CPU_METHODS",
    "ENERGY_COLUMNS",
    "EXTRA",
    "TRACKING_MODES",
    "WORLD",
    "EnergyCallback",
    "EnergyTracker",
    "apc",
    "append_row",
    "check_energy_params",
    "count_params",
    "energy_row",
    "require_codecarbon",
    "world_intensity",
]
