"""MusicGen on a CUDA GPU: lofi through ONNX Runtime's CUDA provider against PyTorch on CUDA.

Run by hand on a machine with an NVIDIA GPU, from the repository root, with a Python that has
onnxruntime-gpu (``pip install 'lofitui[cuda]'``), the ``fixtures`` extra (torch built for CUDA,
transformers, optimum-onnx) and lofi's runtime dependencies::

    PYTHONPATH=. python tests/bench/bench_cuda.py [--sizes small,medium,large] [--keep]
    PYTHONPATH=. python tests/bench/bench_cuda.py --dry-run      # anywhere: see below

For each size it locates, or builds with tests/fixtures/make_musicgen.py, a random-weight export
of that shape under ``--cache`` (default tests/bench/.cache/musicgen-<size>-random), then runs, each
in its own process, on the same weights and tokens:

- ``onnx-exact``: what ``lofi --device cuda`` runs, the public split decoder pair through the
  CUDA execution provider (lofi's fast decoder is CPU-only);
- ``pytorch``: transformers' MusicgenForConditionalGeneration on CUDA, fp32, with its KV cache;

and prints, as tests/bench/bench_musicgen.py does, ms per decoder step at positions 1 to 1500,
RTF for 10 s and 30 s tracks, a real 10 s track, peak GPU memory (nvidia-smi, the device's used
memory above what it was when the engine's process started), peak RSS, the speed-ups, and the
logit agreement of PyTorch against the ONNX files (which proves the weights are the same).

Cost: building small takes minutes; medium (~22 GB of fp32 files, ~32 GB free disk while it is
built) and large (~39 GB, ~55 GB while built) take much longer and need about 3x one decoder
file in RAM (7.4 / 13 GB); the free disk is checked before each build. A
size built here is deleted after its measurement unless ``--keep``, so the next one fits; pick
``--sizes`` to fit the time at hand. Results are printed as each size finishes and, with
``--json``, written after each size.

It fails with one line, before building anything, when ONNX Runtime offers no
CUDAExecutionProvider or torch sees no GPU, and an engine whose ONNX Runtime session fell back to
the CPU stops the run instead of being timed. ``--dry-run`` exercises everything else on the CPU
provider with the committed tiny fixture: locating, both engines in their processes, the table,
the ratios and the logit check.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_musicgen as mg

from lofitui.atomic import write_json_atomic

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TINY = ROOT / "tests" / "fixtures" / "musicgen-tiny"
SIZES = ("small", "medium", "large")
ENGINES = ("onnx-exact", "pytorch")
# Peak free disk a build needs: make_musicgen's temporary PyTorch save, the fp32 split pair, the
# merged decoder, T5 and EnCodec (the export itself ends at ~8 / 22 / 39 GB).
BUILD_DISK_GB = {"small": 11, "medium": 32, "large": 55}


class GpuPeak:
    """The device's peak used memory above its level at start, sampled with nvidia-smi.

    A device-wide reading works for any framework and inside containers (where nvidia-smi lists
    no process ids); the engines run one at a time, so the rise is this process's own.
    """

    def __init__(self, interval_s: float = 0.1) -> None:
        self._interval = interval_s
        self._base = self._used_mb()
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def _used_mb() -> float:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return float(out.split()[0])

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak_mb = max(self.peak_mb, self._used_mb() - self._base)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak_mb, self._used_mb() - self._base)


def preflight() -> str:
    """One line naming the GPU; exits with one line when CUDA is not usable by both engines."""
    import onnxruntime as ort

    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        raise SystemExit(
            f"bench_cuda: onnxruntime {ort.__version__} has no CUDAExecutionProvider "
            f"(offers {', '.join(providers)}): pip uninstall onnxruntime && "
            "pip install 'lofitui[cuda]' (or run --dry-run)"
        )
    import torch

    if not torch.cuda.is_available():
        raise SystemExit(f"bench_cuda: torch {torch.__version__} sees no CUDA device")
    if shutil.which("nvidia-smi") is None:
        raise SystemExit("bench_cuda: nvidia-smi is not on PATH (needed for peak GPU memory)")
    gpu = torch.cuda.get_device_name(0)
    return f"{gpu}, onnxruntime {ort.__version__}, torch {torch.__version__}"


def locate(size: str, cache: Path) -> tuple[Path, bool]:
    """The export for ``size`` and whether this run built it."""
    directory = cache / f"musicgen-{size}-random"
    if (directory / "decoder_with_past_model.onnx").is_file():
        return directory, False
    directory.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(directory).free / 1e9
    if free_gb < BUILD_DISK_GB[size]:
        raise SystemExit(
            f"bench_cuda: building {size} needs ~{BUILD_DISK_GB[size]} GB free in {cache}, "
            f"{free_gb:.0f} GB are"
        )
    print(f"building the {size} export in {directory}", flush=True)
    mg.build_export(directory, size)
    return directory, True


def child(args: argparse.Namespace) -> None:
    """One engine on one export, in this process: prints its RESULT line."""
    gpu = GpuPeak() if args.device == "cuda" else None
    if args.only == "pytorch":
        result = mg.run_torch(args.model, args.threads, args.device)
    else:
        result = mg.run_onnx(args.model, args.only, args.threads, args.device)
    result["peak_gpu_mb"] = gpu.stop() if gpu else None
    print("RESULT " + json.dumps(result))


def run_engine(name: str, model_dir: Path, device: str, threads: int) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--only",
            name,
            "--model",
            str(model_dir),
            "--device",
            device,
            "--threads",
            str(threads),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        tail = proc.stderr.strip().splitlines()[-12:]
        raise SystemExit(f"bench_cuda: {name} failed on {model_dir.name}:\n" + "\n".join(tail))
    return json.loads(line[7:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated, in order")
    parser.add_argument("--cache", type=Path, default=HERE / ".cache")
    parser.add_argument("--keep", action="store_true", help="keep the exports built by this run")
    parser.add_argument("--threads", type=int, help="CPU threads (default: 2 dry, else library's)")
    parser.add_argument("--json", type=Path, help="also write every result here")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="CPU provider on the tiny fixture: everything but CUDA itself",
    )
    parser.add_argument("--only", help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--device", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        child(args)
        return
    sizes = args.sizes.split(",")
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {', '.join(unknown)} (choose from {', '.join(SIZES)})")
    if args.dry_run:
        device, threads = "cpu", args.threads if args.threads is not None else 2
        print("dry run: CPU execution provider, tiny fixture (CUDA itself is not exercised)")
        plan = [("tiny", lambda: (TINY, False))]
    else:
        device, threads = "cuda", args.threads or 0
        print(preflight())
        plan = [(size, lambda size=size: locate(size, args.cache)) for size in sizes]
    everything: dict[str, dict[str, dict]] = {}
    for size, find in plan:
        model_dir, built = find()
        results = {}
        for name in ENGINES:
            print(f"running {name} on {model_dir.name} ({device})...", flush=True)
            results[name] = run_engine(name, model_dir, device, threads)
        everything[size] = results
        if args.json:
            write_json_atomic(args.json, everything)
        mg.print_table(results, f"musicgen-{size} shape, random weights, {device}")
        mg.print_ratios(results)
        mg.print_quality(results)
        if built and not args.keep:
            shutil.rmtree(model_dir)
            print(f"deleted {model_dir} (--keep keeps it)")


if __name__ == "__main__":
    main()
