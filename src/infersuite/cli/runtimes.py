"""`infersuite runtimes`: one model on each CPU runtime, timed side by side and checked
against PyTorch float32, with a runtime handbook's speed-up claims judged on this CPU.

    infersuite runtimes --model whisper-tiny-shape --rounds 40

Every variant (engines/module_variants.py) is built from the same float32 module, called on
the same input in interleaved rounds (measure/timing.py: each round calls each variant once,
in an order drawn per round) and compared with PyTorch float32's output on that input.
Writes runtimes.json and runtimes.md to --out; exit 0 when measured, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infersuite.atomic import write_text_atomic


def add_parser(subparsers: Any) -> None:
    from infersuite.engines.module_variants import VARIANTS
    from infersuite.models.whisper import list_asr_models

    parser = subparsers.add_parser(
        "runtimes", help="time one model on each CPU runtime, with speed-ups and agreement",
        description="PyTorch float32 vs torch.compile vs onnxruntime vs OpenVINO float32, "
                    "bf16, 8-bit weights and 8-bit post-training quantization, on the same "
                    "input in interleaved rounds: medians and p90 with intervals, speed-ups "
                    "with intervals, agreement with PyTorch float32, and the handbook's "
                    "claims (OpenVINO FP32 2x, INT8 5x) judged.")
    # the random-weight encoders over Whisper's 30-second window (not the trained model)
    parser.add_argument("--model", default="whisper-tiny-shape", choices=[
        e.name for e in list_asr_models() if e.tier != "trained"])
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, torch-fp32 first (default: {','.join(VARIANTS)})")
    parser.add_argument("--rounds", type=int, default=30, help="measured rounds (default 30)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured rounds (default 2)")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads for every runtime (default: this process's CPUs)")
    parser.add_argument("--batch", type=int, default=1, help="clips per call (default 1)")
    parser.add_argument("--calibration", type=int, default=8,
                        help="clips to calibrate the 8-bit quantization on (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports") / "runtimes")
    parser.set_defaults(func=run_runtimes)


def parse_variants(text: str) -> list[str]:
    from infersuite.engines.module_variants import REFERENCE, VARIANTS

    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"--variants: unknown {', '.join(unknown)}; expected some of "
                         f"{', '.join(VARIANTS)}")
    if not names or names[0] != REFERENCE or len(set(names)) != len(names):
        raise ValueError(f"--variants: list each once, {REFERENCE} first (the reference "
                         "the others are judged against)")
    return names


def _host() -> dict[str, Any]:
    from infersuite.baseline.fingerprint import count_cpus, read_cpu_isa_flags, read_cpu_model

    return {"cpu": read_cpu_model(), "cores": count_cpus(), "isa": read_cpu_isa_flags()}


def measure(args: argparse.Namespace, names: list[str], workdir: Path) -> dict[str, Any]:
    from infersuite.engines.module_variants import (
        REFERENCE,
        Inputs,
        VariantUnavailable,
        build_variant,
    )
    from infersuite.measure.timing import time_interleaved
    from infersuite.models.whisper import build_whisper_encoder, get_asr_entry, synth_features
    from infersuite.report.runtimes import build_rows

    entry = get_asr_entry(args.model)
    module = build_whisper_encoder(entry)
    mels = int(module.config.num_mel_bins)  # type: ignore[union-attr,arg-type]
    example = synth_features(mels, args.batch, args.seed)
    calibration = [synth_features(mels, args.batch, args.seed + 1000 + i)
                   for i in range(args.calibration)]
    threads = args.threads or _host()["cores"]
    inputs = Inputs(module, example, calibration, workdir, threads)
    variants, unavailable = {}, {}
    for name in names:
        print(f"building {name} ...", flush=True)
        try:
            variants[name] = build_variant(name, inputs)
        except VariantUnavailable as exc:
            unavailable[name] = str(exc)
            print(f"  unavailable: {exc}", flush=True)
        except Exception as exc:  # a runtime that fails on this model: the others still run
            if name == REFERENCE:
                raise
            first = str(exc).splitlines()[0] if str(exc) else ""
            unavailable[name] = f"failed to build: {type(exc).__name__}: {first}"
            print(f"  {unavailable[name]}", flush=True)
    outputs = {name: v.run(example) for name, v in variants.items()}
    print(f"timing {len(variants)} variants, {args.rounds} interleaved rounds ...", flush=True)
    start = time.perf_counter()
    calls: dict[str, Callable[[], object]] = {
        name: functools.partial(v.run, example) for name, v in variants.items()}
    times = time_interleaved(calls, args.rounds, args.warmup, args.seed)
    compiled = "torch-compile" if "torch-compile" in variants else None
    return {
        "schema": "infersuite.runtimes/1", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": _host(), "model": args.model,
        "input": {"shape": list(example.shape), "what": "log-mel features of synthetic audio "
                  "(tones, a glide, noise), padded to Whisper's 30-second window"},
        "settings": {"rounds": args.rounds, "warmup": args.warmup, "threads": threads,
                     "batch": args.batch, "calibration_clips": args.calibration,
                     "seed": args.seed, "timing_s": round(time.perf_counter() - start, 1)},
        "variants": [{"name": v.name, "runtime": v.runtime, "precision": v.precision,
                      "setup_s": round(v.setup_s, 2), **v.details} for v in variants.values()],
        "unavailable": unavailable, "samples_s": times,
        "rows": build_rows(times, outputs, REFERENCE, compiled),
    }


def render_markdown(document: dict[str, Any]) -> str:
    from infersuite.report.runtimes import render_table

    host = document["host"]
    lines = [f"# Runtimes on {host['cpu']} ({host['cores']} CPUs; "
             f"{', '.join(host['isa']) or 'no AVX-512/VNNI/AMX flags'})", "",
             f"Model `{document['model']}`, input {document['input']['shape']}, "
             f"{document['settings']['rounds']} interleaved rounds, "
             f"{document['settings']['threads']} threads.", "",
             render_table(document, fmt="github"), ""]
    lines += [f"- `{name}` unavailable: {why}" for name, why in document["unavailable"].items()]
    return "\n".join(lines) + "\n"


def run_runtimes(args: argparse.Namespace) -> int:
    import sys

    from infersuite.report.runtimes import render_table

    try:
        names = parse_variants(args.variants)
        if min(args.rounds, args.batch, args.calibration) < 1 or args.rounds < 2:
            raise ValueError("--rounds must be >= 2, --batch and --calibration >= 1")
    except ValueError as exc:
        print(f"infersuite runtimes: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="infersuite-runtimes-") as tmp:
        document = measure(args, names, Path(tmp))
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "runtimes.json", json.dumps(document, indent=1) + "\n")
    write_text_atomic(args.out / "runtimes.md", render_markdown(document))
    print(render_table(document))
    host = document["host"]
    print(f"host: {host['cpu']}, {host['cores']} CPUs, flags: {' '.join(host['isa'])}")
    print(f"written: {args.out / 'runtimes.json'}, {args.out / 'runtimes.md'}")
    return 0
