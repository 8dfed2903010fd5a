"""Training speed and accuracy, float32 against mixed bfloat16, per architecture.

Usage::

    python benchmarks/training.py [--quick] [--archs mlp small_cnn vgg_cifar]
                                  [--n-train 4000] [--epochs N]
    python benchmarks/training.py --book vgg vgg_unreg

For each architecture (the paper's MLP and small CNN on the embedded digits,
the quick profile's quarter-width VGG on the 32x32 RGB digits, each at the
paper's batch size and the quick profile's model options) two nets from the
same seed train on the same batches, one under the float32 policy and one
under ``mixed_bfloat16`` (:mod:`lsnb.train`), one epoch each in turn, so both
see the same load on a shared machine.  The first epoch of each (tracing) is
not timed.  Printed per architecture: training images per second of each
(median over the timed epochs), the ratio, and the test accuracy of both
after the last epoch, the bfloat16 one measured on its float32 copy
(:func:`lsnb.train.as_float32`), as lesions see it.

Why bfloat16 speeds some architectures and not others is printed beside: the
*matmul share* of a float32 training step (its convolution and matmul FLOPs,
three times a forward pass per image, at the float32 rate of 2048 x 2048
matmuls measured in the same run, over the step's time) and the speed-up
bfloat16 would give if it ran every such FLOP at the bfloat16 rate and left
the rest of the step as it is (Amdahl's law, ``1 / (1 - s + s * r32 /
r16)``; halved memory traffic lets a step beat it a little).  A step
dominated by other work (batch norm, dropout, element-wise ops, the
optimizer's updates) has a low share and cannot gain much; narrow
convolutions that reach neither rate gain less.

``--book NET ...`` instead trains the book's own networks (the quick
profile's first replicate, :func:`lsnb.train.trained`, through the cache) in
both precisions and prints their seconds and test accuracies: the float32
twins that chapter 09 trains for the MLP and the CNN, for any network.
"""
from __future__ import annotations

import argparse
import time

import keras
import numpy as np

from lsnb import lesion, neurons, train

#: Data, batch size and model options per architecture (the quick profile's).
SETUPS = {
    "mlp": ("mnist", {}),
    "small_cnn": ("mnist", {}),
    "vgg_cifar": ("mnist_rgb32", {"width": 0.25, "bn_momentum": 0.9, "regularized": True}),
}
EPOCHS = {"mlp": 6, "small_cnn": 3, "vgg_cifar": 8}
#: The network of :data:`lsnb.train.NETS` each setup is (for its learning rate).
NETS = {"mlp": "mlp_mnist", "small_cnn": "cnn_mnist", "vgg_cifar": "vgg"}


def _config(arch: str, precision: str, model_kwargs: dict) -> dict:
    return {"arch": arch, "seed": 0, "replicate": 0, "precision": precision, "model_kwargs": model_kwargs,
            "lr": train.LEARNING_RATE.get(NETS[arch], 1e-3)}


def _compiled(config: dict, data) -> keras.Model:
    with train.dtype_policy(config["precision"]):
        model = train._build(config, data)
        model.compile(optimizer=keras.optimizers.Adam(config["lr"]), loss="sparse_categorical_crossentropy")
    return model


def compare(arch: str, n_train: int, epochs: int) -> dict:
    """Train ``arch`` in both precisions, epochs interleaved; images/s and test accuracy of each."""
    name, model_kwargs = SETUPS[arch]
    data = train.dataset(name, "quick").subset(n_train, None, seed=0)
    batch = train.BATCH_SIZE[arch]
    configs = {p: _config(arch, p, model_kwargs) for p in train.PRECISIONS}
    nets = {p: _compiled(c, data) for p, c in configs.items()}
    rates: dict = {p: [] for p in nets}
    for epoch in range(epochs):
        ds = train._tf_dataset(data.x_train, data.y_train, batch, epoch, False, 1)
        for precision, model in nets.items():
            with train.dtype_policy(precision):
                start = time.perf_counter()
                model.fit(ds, epochs=1, steps_per_epoch=train.steps_per_epoch(len(data.x_train), batch), verbose=0,
                          shuffle=False)
                seconds = time.perf_counter() - start
            if epoch:
                rates[precision].append(len(data.x_train) / seconds)
    result = {"arch": arch, "epochs": epochs, "n_train": len(data.x_train),
              "train_flops_per_image": 3.0 * lesion.forward_flops(nets["float32"])}
    for precision, model in nets.items():
        final = model if precision == "float32" else train.as_float32(model, configs[precision], data)
        result[f"{precision}_images_per_s"] = float(np.median(rates[precision]))
        result[f"{precision}_test_accuracy"] = train.accuracy(final, data.x_test, data.y_test)
    result["ratio"] = result["bfloat16_images_per_s"] / result["float32_images_per_s"]
    return result


def book_twins(nets: list[str]) -> None:
    """Train (or load) the quick profile's first replicate of each network in both precisions."""
    from lsnb.profiles import get_profile

    print(f"{'network':10s} {'precision':>9s} {'seconds':>8s} {'test acc':>9s}")
    for net in nets:
        for precision in train.PRECISIONS:
            tnet = train.trained(net, get_profile("quick").with_(precision=precision), replicate=0,
                                 progress=False, verbose=False)
            print(f"{net:10s} {tnet.config['precision']:>9s} {tnet.seconds:8.0f} {tnet.test_accuracy:9.4f}"
                  f"{' (from cache)' if tnet.from_cache else ''}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--epochs", type=int, help="epochs per net (default per architecture, at least 2)")
    parser.add_argument("--quick", action="store_true", help="2,000 training images, 3 epochs (a few minutes)")
    parser.add_argument("--book", nargs="+", choices=list(train.NETS), metavar="NET",
                        help="train the book's networks (quick profile, first replicate) in both precisions")
    args = parser.parse_args(argv)
    if args.book:
        book_twins(args.book)
        return
    n_train = 2000 if args.quick else args.n_train
    print(f"CPU bfloat16 instructions: {train.cpu_has_bf16()}")
    rates = {p: neurons.matmul_rate(2048, precision=p) for p in train.PRECISIONS}   # as the build measures them
    print("matmul rates: " + ", ".join(f"{p} {r / 1e9:.0f} GFLOP/s" for p, r in rates.items()))
    print(f"{'arch':10s} {'images':>7s} {'epochs':>6s} {'f32 img/s':>10s} {'bf16 img/s':>10s} {'ratio':>6s} "
          f"{'f32 test acc':>12s} {'bf16 test acc':>13s} {'matmul share':>12s} {'bound':>6s}")
    for arch in args.archs:
        epochs = max(2, args.epochs or (3 if args.quick else EPOCHS[arch]))
        r = compare(arch, n_train, epochs)
        share = r["train_flops_per_image"] * r["float32_images_per_s"] / rates["float32"]
        bound = 1.0 / (1.0 - share + share * rates["float32"] / rates["bfloat16"])
        print(f"{arch:10s} {r['n_train']:7d} {epochs:6d} {r['float32_images_per_s']:10.0f} "
              f"{r['bfloat16_images_per_s']:10.0f} {r['ratio']:6.2f} {r['float32_test_accuracy']:12.4f} "
              f"{r['bfloat16_test_accuracy']:13.4f} {100 * share:11.0f}% {bound:5.1f}x", flush=True)


if __name__ == "__main__":
    main()
