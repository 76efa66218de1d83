"""Every model Keras ships, every verb: it works, or it says why — never a raw exception.

For each model (every constructor in ``keras.applications``, those of ``tf_keras.applications``,
plus LSTM / GRU / Bidirectional, Transformer-block, Lambda and subclassed classifiers):
weights=None, the smallest input it accepts, 10 classes, a short training on upsampled
digits; then five verbs:

* ``forget``: ``kf.prune_for_class(model, train, 3)`` (weights, defaults)
* ``obd``: ``kf.prune(model, train, sparsity=0.5, method="obd")``
* ``unit_forget``: ``kf.prune_for_class(model, train, 3, granularity="unit")``
* ``shrink``: ``kf.prune(model, train, sparsity=0.3, granularity="unit", shrink=True)``
* ``export``: ``kf.export(model, tmp, tflite=True, sample=test inputs)``

Each cell is ``ok``, ``ok, N left whole``, ``refused: <KerasForgetError subclass>`` or
``RAW <exception type>`` (a bug). Each model runs in its own process, so its peak memory is
measured alone and a crash cannot take the table down. Models above ``--max-params`` are
listed as not run, with their size.

    python benchmarks/model_zoo.py                          # the whole zoo (hours on 2 cores)
    python benchmarks/model_zoo.py --models MobileNetV2 LSTM --flavors keras3
    python benchmarks/model_zoo.py --resume     # go on with an interrupted run (rows are
                                                # written to --out after every model)
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

APPLICATIONS = (
    "VGG16 VGG19 Xception ResNet50 ResNet101 ResNet152 ResNet50V2 ResNet101V2 ResNet152V2 "
    "InceptionV3 InceptionResNetV2 MobileNet MobileNetV2 MobileNetV3Small MobileNetV3Large "
    "DenseNet121 DenseNet169 DenseNet201 NASNetMobile NASNetLarge "
    "EfficientNetB0 EfficientNetB1 EfficientNetB2 EfficientNetB3 EfficientNetB4 EfficientNetB5 "
    "EfficientNetB6 EfficientNetB7 EfficientNetV2B0 EfficientNetV2B1 EfficientNetV2B2 "
    "EfficientNetV2B3 EfficientNetV2S EfficientNetV2M EfficientNetV2L "
    "ConvNeXtTiny ConvNeXtSmall ConvNeXtBase ConvNeXtLarge ConvNeXtXLarge"
).split()
#: Constructors only tf_keras.applications has.
TF_KERAS_ONLY = tuple(
    [f"RegNet{kind}{size}" for kind in "XY" for size in
     ("002", "004", "006", "008", "016", "032", "040", "064", "080", "120", "160", "320")]
    + [f"ResNetRS{depth}" for depth in (50, 101, 152, 200, 270, 350, 420)]
)  # fmt: skip
CUSTOM = ("LSTM", "GRU", "Bidirectional", "Transformer", "Lambda", "Subclassed")
VERBS = ("forget", "obd", "unit_forget", "shrink", "export")
#: The last line of a Python traceback: ``SomeError: message``.
ERROR_LINE = re.compile(r"^[A-Za-z_.]*(Error|Exception|Interrupt)\b")
#: Smallest inputs for constructors that refuse 32x32.
MIN_INPUT = {"Xception": 71, "InceptionV3": 75, "InceptionResNetV2": 75}


# --------------------------------------------------------------------------- one model
def _keras(flavor: str):
    if flavor == "tf_keras":
        import tf_keras

        return tf_keras
    import keras

    return keras


def _custom(name: str, km):
    """Small classifiers of kinds keras.applications does not ship."""
    layers = km.layers
    if name in ("LSTM", "GRU", "Bidirectional"):
        inner = (layers.GRU if name == "GRU" else layers.LSTM)(32)
        core = layers.Bidirectional(inner) if name == "Bidirectional" else inner
        return km.Sequential([km.Input((8, 8)), core, layers.Dense(10, activation="softmax")])
    if name == "Transformer":
        inputs = km.Input((8, 8))
        x = layers.Dense(32)(inputs)
        attention = layers.MultiHeadAttention(num_heads=2, key_dim=16, name="mha")(x, x)
        x = layers.LayerNormalization()(layers.Add()([x, attention]))
        ffn = layers.Dense(32, name="ffn2")(layers.Dense(64, activation="relu", name="ffn1")(x))
        x = layers.LayerNormalization()(layers.Add()([x, ffn]))
        x = layers.GlobalAveragePooling1D()(x)
        return km.Model(inputs, layers.Dense(10, activation="softmax")(x))
    if name == "Lambda":
        inputs = km.Input((8, 8, 1))
        x = layers.Dense(64, activation="relu")(layers.Flatten()(inputs))
        x = layers.Lambda(lambda t: t * 2.0)(x)
        return km.Model(inputs, layers.Dense(10, activation="softmax")(x))

    class Subclassed(km.Model):
        def __init__(self):
            super().__init__()
            self.flat = layers.Flatten()
            self.hidden = layers.Dense(64, activation="relu")
            self.out = layers.Dense(10, activation="softmax")

        def call(self, x):
            return self.out(self.hidden(self.flat(x)))

    import numpy as np

    model = Subclassed()
    model(np.zeros((1, 8, 8, 1), "float32"))
    return model


def _application(name: str, km, size: int):
    build = getattr(km.applications, name)
    kwargs = dict(weights=None, input_shape=(size, size, 3), classes=10)
    try:
        return build(**kwargs)
    except ValueError as error:  # some constructors state their minimum size
        import re

        found = re.search(r"no smaller than (\d+)", str(error))
        if not found:
            raise
        kwargs["input_shape"] = (int(found.group(1)),) * 2 + (3,)
        return build(**kwargs)


def _input_shape(model) -> tuple:
    """One example's input shape, for graph and subclassed models alike."""
    from keras_forget import _keras

    return tuple(_keras.input_shape(model)[1:])


def _data(model, n_train: int, n_test: int):
    """Digits shaped for the model: rows as a sequence, or upsampled 3-channel images."""
    import numpy as np
    import tensorflow as tf

    import keras_forget as kf

    (x, y), (xt, yt) = kf.datasets.load("digits", seed=0)
    x, y, xt, yt = x[:n_train], y[:n_train], xt[:n_test], yt[:n_test]
    shape = _input_shape(model)
    if len(shape) == 2:
        return (x[..., 0], y), (xt[..., 0], yt)
    if shape == (8, 8, 1):
        return (x, y), (xt, yt)

    def image(a):
        a = tf.image.resize(a, shape[:2]).numpy()
        return np.repeat(a, shape[2], axis=-1).astype("float32")

    return (image(x), y), (image(xt), yt)


def _cell(call):
    """Runs one verb: ``(status, seconds, details)``."""
    import keras_forget as kf

    tick = time.perf_counter()
    try:
        details = call() or {}
        left = details.pop("left_whole", 0)
        status = f"ok, {left} left whole" if left else "ok"
    except kf.KerasForgetError as error:
        status, details = f"refused: {type(error).__name__}", {"message": str(error)[:300]}
    except Exception as error:  # noqa: BLE001  (a raw exception is what this measures)
        status = f"RAW {type(error).__name__}"
        details = {"message": str(error)[:300], "trace": traceback.format_exc()[-1500:]}
    return status, round(time.perf_counter() - tick, 2), details


def _summary(result) -> dict:
    report = result.report
    out = {"left_whole": len(getattr(report, "left_whole", ()) or ())}
    for name in ("before", "after"):
        e = getattr(report, name)
        if e is not None:
            out[name] = {"accuracy": e.accuracy, "forget": e.forget_accuracy,
                          "retain": e.retain_accuracy}  # fmt: skip
    out["params_after"] = int(result.model.count_params())
    return out


def run_one(name: str, flavor: str, args) -> dict:
    """Builds, trains and runs every verb on one model; returns its row."""
    import keras_forget as kf

    km = _keras(flavor)
    km.utils.set_random_seed(0)
    row = {"model": name, "flavor": flavor}
    tick = time.perf_counter()
    if name in CUSTOM:
        model = _custom(name, km)
    else:
        model = _application(name, km, MIN_INPUT.get(name, args.size))
    params = int(model.count_params())
    row.update(params=params, input=list(_input_shape(model)))
    if params > args.max_params:
        row["skipped"] = f"{params / 1e6:.1f} M params > --max-params {args.max_params / 1e6:.0f} M"
        return row
    train, test = _data(model, args.train, args.test)
    model.compile(km.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    epochs = args.custom_epochs if name in CUSTOM else args.epochs
    model.fit(*train, epochs=epochs, batch_size=32, verbose=0)
    row["build_train_seconds"] = round(time.perf_counter() - tick, 1)
    row["trained_accuracy"] = float(model.evaluate(*test, verbose=0)[1])
    run = dict(eval_data=test, verbose=False)
    cells = {
        "forget": lambda: _summary(kf.prune_for_class(model, train, 3, **run)),
        "obd": lambda: _summary(kf.prune(model, train, sparsity=0.5, method="obd", **run)),
        "unit_forget": lambda: _summary(
            kf.prune_for_class(model, train, 3, granularity="unit", **run)
        ),
        "shrink": lambda: _summary(
            kf.prune(model, train, sparsity=0.3, granularity="unit", shrink=True, **run)
        ),
        "export": lambda: _export(model, test[0][:8]),
    }
    row["peak_rss_mb_trained"] = _peak_mb()
    for verb in args.verbs:
        status, seconds, details = _cell(cells[verb])
        # The process's peak so far: the verb that raises it is the one that needs the memory.
        row[verb] = {"status": status, "seconds": seconds, **details, "peak_rss_mb": _peak_mb()}
        row[verb].update(_held_mb())
    row["peak_rss_mb"] = _peak_mb()
    return row


def _held_mb() -> dict:
    """Memory the process holds after a verb: resident, then after garbage collection,
    then after glibc hands its free pages back (``malloc_trim``): what is left is in use."""
    out = {"rss_mb_after": _rss_mb()}
    gc.collect()
    out["rss_mb_after_gc"] = _rss_mb()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        return out
    out["rss_mb_after_trim"] = _rss_mb()
    return out


def _rss_mb() -> int:
    """This process's resident memory now, in MiB (Linux)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20)


def _peak_mb() -> int:
    """This process's peak resident memory so far, in MiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _export(model, sample) -> dict:
    import keras_forget as kf

    with tempfile.TemporaryDirectory() as tmp:
        report = kf.export(model, tmp, tflite=True, sample=sample, verbose=False)
    return {
        "max_abs_diff": report.max_abs_diff,
        "parity_discriminates": getattr(report, "parity_discriminates", None),
    }


# --------------------------------------------------------------------------- the table
def _child(name: str, flavor: str, args) -> dict:
    command = [sys.executable, __file__, "--one", name, "--flavors", flavor,
               "--verbs", *args.verbs, "--size", str(args.size), "--epochs", str(args.epochs),
               "--custom-epochs", str(args.custom_epochs),
               "--train", str(args.train), "--test", str(args.test),
               "--max-params", str(args.max_params)]  # fmt: skip
    tick = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"model": name, "flavor": flavor, "crashed": f"timeout after {args.timeout} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        errors = [line for line in done.stderr.splitlines() if ERROR_LINE.match(line)]
        tail = errors[-1] if errors else (done.stderr or done.stdout)[-800:]
        return {"model": name, "flavor": flavor, "crashed": f"exit {done.returncode}: {tail}"}
    row = json.loads(lines[-1])
    row["wall_seconds"] = round(time.perf_counter() - tick, 1)
    return row


def _short(cell: dict | None) -> str:
    if cell is None:
        return "-"
    return cell["status"].replace("refused: ", "no: ").replace(" left whole", " whole")


def _forgetting(cell: dict | None) -> str:
    """Forget and retain accuracy before -> after the weight-level forget verb."""
    if not cell or "before" not in cell or "after" not in cell:
        return "-"
    b, a = cell["before"], cell["after"]
    if b.get("forget") is None:
        return "-"
    return f"{b['forget']:.2f}>{a['forget']:.2f} {b['retain']:.2f}>{a['retain']:.2f}"


def table(rows: list[dict], verbs: tuple[str, ...]) -> str:
    """One line per model: the trained accuracy, each verb's status, forgetting, memory, time."""
    head = f"{'model':<20} {'flavor':<8} {'params':>8} {'acc':>5} "
    head += " ".join(f"{v:<22}" for v in verbs)
    lines = [head + f" {'forget f / retain':<19} {'peak MB':>7} {'s':>6}"]
    for r in rows:
        start = f"{r['model']:<20} {r['flavor']:<8} {r.get('params', 0) / 1e6:>7.1f}M "
        if "skipped" in r or "crashed" in r:
            lines.append(start + (r.get("skipped") or "CRASHED " + r["crashed"][:80]))
            continue
        accuracy = r.get("trained_accuracy")
        start += f"{accuracy:>5.2f} " if accuracy is not None else f"{'-':>5} "
        cells = " ".join(f"{_short(r.get(v)):<22}" for v in verbs)
        tail = f" {_forgetting(r.get('forget')):<19} {r.get('peak_rss_mb', 0):>7}"
        lines.append(start + cells + tail + f" {r.get('wall_seconds', 0):>6}")
    return "\n".join(lines)


def score(rows: list[dict], verbs: tuple[str, ...]) -> str:
    ran = [r for r in rows if "skipped" not in r]
    parts = []
    for verb in verbs:
        good = sum(1 for r in ran if r.get(verb, {}).get("status", "").startswith("ok"))
        parts.append(f"{verb} {good}/{len(ran)}")
    raw = sum(1 for r in ran for v in verbs if r.get(v, {}).get("status", "").startswith("RAW"))
    crashed = sum(1 for r in ran if "crashed" in r)
    skipped = len(rows) - len(ran)
    return ", ".join(parts) + f"; raw errors {raw}; crashed {crashed}; not run (size) {skipped}"


def _previous(path: str) -> list[dict]:
    """Rows an earlier (possibly interrupted) run wrote to ``path``; none if it is absent."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)["rows"]


def _write(path: str, origin: dict, settings: dict, rows: list[dict], **extra) -> None:
    """Writes the rows so far, atomically, so an interrupted run keeps what it measured."""
    from keras_forget.files import write_json

    write_json(path, {"provenance": origin, "settings": settings, "rows": rows, **extra})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", help="default: every application and custom model")
    p.add_argument("--flavors", nargs="*", default=["keras3", "tf_keras"])
    p.add_argument("--verbs", nargs="*", default=list(VERBS), choices=VERBS)
    p.add_argument("--size", type=int, default=32, help="input side (models accepting it)")
    p.add_argument("--epochs", type=int, default=2, help="training epochs of an application")
    p.add_argument(
        "--custom-epochs",
        type=int,
        default=30,
        help="training epochs of the small custom classifiers (cheap, so trained well)",
    )
    p.add_argument("--train", type=int, default=400, help="training / scoring examples")
    p.add_argument("--test", type=int, default=200)
    p.add_argument("--max-params", type=float, default=30e6)
    p.add_argument("--timeout", type=int, default=1800, help="seconds per model")
    p.add_argument("--out", default=os.path.join(HERE, "results", "model_zoo.json"))
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows already in --out and run only the missing ones",
    )
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.verbs = tuple(args.verbs)
    if args.one:
        print(json.dumps(run_one(args.one, args.flavors[0], args), default=float))
        return 0
    from provenance import provenance

    origin = provenance()
    settings = vars(args) | {"verbs": list(args.verbs)}
    rows = _previous(args.out) if args.resume else []
    done = {(r["model"], r["flavor"]) for r in rows}
    for flavor in args.flavors:
        extra = TF_KERAS_ONLY if flavor == "tf_keras" else ()
        for name in args.models or [*APPLICATIONS, *extra, *CUSTOM]:
            if (name, flavor) in done:
                continue
            rows.append(_child(name, flavor, args) | {"commit": origin.get("commit")})
            print(table(rows[-1:], args.verbs).splitlines()[-1], flush=True)
            _write(args.out, origin, settings, rows, complete=False)
    print()
    print(table(rows, args.verbs))
    line = score(rows, args.verbs)
    print(line)
    _write(args.out, origin, settings, rows, complete=True, score=line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
