"""How long scoring takes, as a multiple of one training epoch over the same examples.

For an MLP, a VGG-style CNN, MobileNetV2 and ResNet50 (``keras.applications``,
``weights=None``) on 32×32 RGB digits (the embedded digits, upsampled), in both
Keras flavours: the time of one pass of each score (grad×weight, Fisher, OBD's
exact Gauss-Newton diagonal) over N examples divided by the time of one
training epoch over the same N examples (batch 32, Adam), measured in the same
process. Each score is run factored (Dense and convolution kernels from one
backward pass per pseudo-output, the default) and per-example (one gradient
per example; on fewer examples, against an epoch over those). With
``--devices 1 2`` every configuration runs again under a MirroredStrategy over
2 logical CPU devices (the same cores: it shows the path works and what it
costs, not a speed-up). A last part scores a streamed ``tf.data`` pipeline of N
and 10·N examples and reports each process's peak resident memory.

Every configuration runs in its own process (logical devices must be set before
TensorFlow starts; peak memory is per process).

    python benchmarks/scoring_speed.py [--archs mlp vgg mobilenetv2 resnet50]
        [--flavors keras3 tf_keras] [--devices 1 2] [--examples 256]
        [--exact-examples 64] [--quiet] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
ARCHS = ("mlp", "vgg", "mobilenetv2", "resnet50")
SCORES = ("gradxweight", "fisher", "obd")
TARGETS = {"gradxweight": 2.0, "fisher": 2.0, "obd": 4.0}  # epochs, on MobileNetV2 and ResNet50


def _peak_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _build(km, arch: str):
    layers = km.layers
    if arch == "mlp":
        return km.Sequential([km.Input((32, 32, 3)), layers.Flatten(),
                              layers.Dense(256, activation="relu"),
                              layers.Dense(128, activation="relu"), layers.Dense(10)])  # fmt: skip
    if arch == "vgg":
        stack = [km.Input((32, 32, 3))]
        for width in (32, 64, 128):
            stack += [layers.Conv2D(width, 3, padding="same", activation="relu"),
                      layers.Conv2D(width, 3, padding="same", activation="relu"),
                      layers.MaxPooling2D()]  # fmt: skip
        return km.Sequential([*stack, layers.Flatten(), layers.Dense(128, activation="relu"),
                              layers.Dense(10)])  # fmt: skip
    build = {"mobilenetv2": km.applications.MobileNetV2, "resnet50": km.applications.ResNet50}[arch]
    return build(weights=None, input_shape=(32, 32, 3), classes=10, classifier_activation=None)


def _digits(n: int):
    import numpy as np
    import tensorflow as tf

    import keras_forget as kf

    (x, y), _ = kf.datasets.load("digits", seed=0)
    reps = -(-n // len(y))
    x, y = np.concatenate([x] * reps)[:n], np.concatenate([y] * reps)[:n]
    return np.repeat(tf.image.resize(x, (32, 32)).numpy(), 3, axis=-1).astype("float32"), y


def _epoch_seconds(model, x, y) -> float:
    """The fastest of 3 timed epochs (after one that traces)."""
    model.fit(x[:32], y[:32], batch_size=32, epochs=1, verbose=0)  # trace
    times = []
    for _ in range(3):
        start = time.perf_counter()
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        times.append(time.perf_counter() - start)
    return min(times)


def _forget_seconds(model, x, y) -> float:
    """One ``kf.prune_for_class`` call (class 3, defaults), tracing included."""
    import keras_forget as kf

    start = time.perf_counter()
    try:
        kf.prune_for_class(model, (x, y), target_class=3, verbose=False)
    except kf.KerasForgetError as error:  # recorded, not hidden
        print(f"  forget failed: {error}", flush=True)
        return float("nan")
    return time.perf_counter() - start


def _score_seconds(model, x, y, name: str, factored: bool, strategy) -> float:
    import contextlib

    from keras_forget.data import Data
    from keras_forget.scores.accumulate import score
    from keras_forget.scores.gradient import Fisher, GradXWeight
    from keras_forget.scores.obd import OBD
    from keras_forget.scores.objective import Objective

    make = {"gradxweight": GradXWeight, "fisher": Fisher, "obd": OBD}[name]
    method, objective = make(factored=factored), Objective(from_logits=True)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        score(model, Data.of((x[:32], y[:32])), method, objective, batch_size=32, verbose=False)
        start = time.perf_counter()
        score(model, Data.of((x, y)), method, objective, batch_size=32, verbose=False)
    return time.perf_counter() - start


def worker(args) -> dict:
    """One flavour × device count: every architecture's epoch and score times."""
    import tensorflow as tf

    args.devices = args.devices[0]
    if args.devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        config = [tf.config.LogicalDeviceConfiguration()] * args.devices
        tf.config.set_logical_device_configuration(cpu, config)
    import keras
    import tf_keras

    km = {"keras3": keras, "tf_keras": tf_keras}[args.flavor]
    strategy = None
    if args.devices > 1:
        strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(args.devices)])
    rows, forgets = [], []
    for arch in args.archs:
        km.utils.set_random_seed(0)
        model = _build(km, arch)
        model.compile(km.optimizers.Adam(1e-3),
                      km.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
        for factored, n in ((True, args.examples), (False, args.exact_examples)):
            if not factored and args.devices > 1:
                continue
            x, y = _digits(n)
            epoch = _epoch_seconds(model, x, y)
            for name in args.scores:
                seconds = _score_seconds(model, x, y, name, factored, strategy)
                row = {"arch": arch, "flavor": args.flavor, "devices": args.devices,
                       "score": name, "factored": factored, "examples": n,
                       "params": int(model.count_params()), "epoch_seconds": epoch,
                       "score_seconds": seconds, "epochs": seconds / epoch}  # fmt: skip
                rows.append(row)
                if not args.quiet:
                    print(f"  {args.flavor} x{args.devices} {arch} {name} "
                          f"factored={factored} n={n}: {seconds:.2f}s = "
                          f"{row['epochs']:.2f} epochs", flush=True)  # fmt: skip
        if args.devices == 1:
            x, y = _digits(args.examples)
            forget = {"arch": arch, "flavor": args.flavor, "examples": args.examples,
                      "seconds": _forget_seconds(model, x, y)}  # fmt: skip
            forgets.append(forget)
            if not args.quiet:
                print(f"  {args.flavor} {arch} forget: {forget['seconds']:.1f}s", flush=True)
        keras.backend.clear_session()
    return {"rows": rows, "forget": forgets, "peak_rss_mib": _peak_rss_mib()}


def memory_worker(args) -> dict:
    """Fisher on the MLP over a streamed tf.data pipeline of ``args.examples`` examples."""
    import keras
    import tensorflow as tf

    from keras_forget.data import Data
    from keras_forget.scores.accumulate import score
    from keras_forget.scores.gradient import Fisher
    from keras_forget.scores.objective import Objective

    keras.utils.set_random_seed(0)
    model = _build(keras, "mlp")
    x, y = _digits(1797)
    reps = -(-args.examples // len(y))
    stream = (tf.data.Dataset.from_tensor_slices((x, y)).repeat(reps).take(args.examples)
              .batch(32).prefetch(tf.data.AUTOTUNE))  # fmt: skip
    data = Data.of(stream, model)
    start = time.perf_counter()
    score(model, data, Fisher(), Objective(from_logits=True), verbose=False)
    return {"examples": args.examples, "seconds": time.perf_counter() - start,
            "peak_rss_mib": _peak_rss_mib()}  # fmt: skip


def _spawn(argv: list[str]) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        path = handle.name
    try:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        done = subprocess.run([sys.executable, __file__, *argv, "--worker-out", path], env=env)
        if done.returncode != 0:
            return {"error": f"exit {done.returncode}", "argv": argv}
        with open(path) as handle:
            return json.load(handle)
    finally:
        os.unlink(path)


def _table(rows: list[dict]) -> list[str]:
    lines = [f"{'arch':12} {'flavor':9} {'dev':>3} {'score':12} {'path':12} {'n':>5} "
             f"{'epoch s':>8} {'score s':>8} {'epochs':>7}"]  # fmt: skip
    for r in rows:
        path = "factored" if r["factored"] else "per-example"
        lines.append(f"{r['arch']:12} {r['flavor']:9} {r['devices']:>3} {r['score']:12} "
                     f"{path:12} {r['examples']:>5} {r['epoch_seconds']:>8.2f} "
                     f"{r['score_seconds']:>8.2f} {r['epochs']:>7.2f}")  # fmt: skip
    return lines


def _targets(rows: list[dict]) -> list[str]:
    lines = []
    for r in rows:
        if r["arch"] in ("mobilenetv2", "resnet50") and r["factored"] and r["devices"] == 1:
            met = r["epochs"] <= TARGETS[r["score"]]
            lines.append(f"{'met' if met else 'MISSED':7} {r['arch']} {r['flavor']} "
                         f"{r['score']}: {r['epochs']:.2f} epochs "
                         f"(target <= {TARGETS[r['score']]:g})")  # fmt: skip
    for arch in ("mobilenetv2", "resnet50"):
        for name in SCORES:
            pair = {r["flavor"]: r["score_seconds"] for r in rows
                    if r["arch"] == arch and r["score"] == name and r["factored"]
                    and r["devices"] == 1}  # fmt: skip
            if len(pair) == 2:
                ratio = pair["tf_keras"] / pair["keras3"]
                lines.append(f"{'met' if ratio <= 1.3 else 'MISSED':7} {arch} {name}: tf_keras / "
                             f"Keras 3 scoring time {ratio:.2f} (target <= 1.3)")  # fmt: skip
    return lines


def _forget_table(forgets: list[dict]) -> list[str]:
    lines = ["kf.prune_for_class(class 3, defaults), one call with tracing, seconds:"]
    for f in forgets:
        lines.append(f"  {f['arch']:12} {f['flavor']:9} {f['seconds']:7.1f}")
    return lines


def _forget_targets(forgets: list[dict]) -> list[str]:
    lines = []
    for arch in ARCHS:
        pair = {f["flavor"]: f["seconds"] for f in forgets if f["arch"] == arch}
        if len(pair) == 2:
            ratio = pair["tf_keras"] / pair["keras3"]
            lines.append(f"{'met' if ratio <= 1.3 else 'MISSED':7} {arch}: tf_keras / Keras 3 "
                         f"time to forget {ratio:.2f} (target <= 1.3)")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", nargs="+", choices=ARCHS, default=list(ARCHS))
    parser.add_argument("--flavors", nargs="+", choices=("keras3", "tf_keras"),
                        default=["keras3", "tf_keras"])  # fmt: skip
    parser.add_argument("--devices", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--scores", nargs="+", choices=SCORES, default=list(SCORES))
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--exact-examples", type=int, default=64)
    parser.add_argument("--memory-examples", type=int, default=2000)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--out", default=os.path.join(RESULTS, "scoring_speed.json"))
    parser.add_argument("--worker", choices=("speed", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--flavor", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sys.path.insert(0, os.path.join(HERE, ".."))
        result = worker(args) if args.worker == "speed" else memory_worker(args)
        with open(args.worker_out, "w") as handle:
            json.dump(result, handle)
        return

    sys.path.insert(0, HERE)
    from provenance import provenance

    started, origin = time.perf_counter(), provenance()
    common = ["--archs", *args.archs, "--scores", *args.scores,
              "--examples", str(args.examples), "--exact-examples", str(args.exact_examples),
              *(["--quiet"] if args.quiet else [])]  # fmt: skip
    runs, rows, forgets, failures = [], [], [], []
    for flavor in args.flavors:
        for devices in args.devices:
            argv = ["--worker", "speed", "--flavor", flavor, "--devices", str(devices), *common]
            result = _spawn(argv)
            runs.append({"flavor": flavor, "devices": devices,
                         "peak_rss_mib": result.get("peak_rss_mib")})  # fmt: skip
            rows += result.get("rows", [])
            forgets += result.get("forget", [])
            if "error" in result:
                failures.append(result)
    memory = [_spawn(["--worker", "memory", "--examples", str(n)])
              for n in (args.memory_examples, 10 * args.memory_examples)]  # fmt: skip
    lines = ["Scoring time as a multiple of one training epoch over the same examples "
             "(batch 32, 32x32 RGB digits; same process)", *_table(rows), "",
             "peak resident memory per process (MiB): " + ", ".join(
                 f"{r['flavor']} x{r['devices']}: {r['peak_rss_mib']:.0f}" for r in runs
                 if r["peak_rss_mib"] is not None),
             "streamed tf.data, Fisher on the MLP: " + ", ".join(
                 f"{m.get('examples')} examples: peak {m.get('peak_rss_mib', float('nan')):.0f} MiB"
                 for m in memory), "", *_forget_table(forgets), "",
             "targets:", *_targets(rows), *_forget_targets(forgets)]  # fmt: skip
    print("\n".join(lines))
    out = {"provenance": origin, "config": vars(args), "rows": rows, "forget": forgets,
           "runs": runs,
           "memory": memory, "failures": failures,
           "targets": _targets(rows) + _forget_targets(forgets),
           "seconds": time.perf_counter() - started}  # fmt: skip
    from keras_forget.files import write_json

    write_json(args.out, out)
    print(f"\nwrote {args.out} ({out['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
