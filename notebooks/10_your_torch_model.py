# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python (lsnb)
#     language: python
#     name: lsnb
# ---

# %% [markdown]
# # Your own PyTorch model
#
# The paper's method on a saved PyTorch model: partition its neurons (Section
# 3.1), test every subcluster against random groups of the same size from the
# same layer (Section 4), and summarize with the null reference of each cell.
# It needs the extra `lsnb[torch]` (which `make test` installs) and runs
# outside the book (see the README):
#
# ```bash
# .venv/bin/jupytext --to ipynb --output /tmp/10.ipynb notebooks/10_your_torch_model.py
# .venv/bin/papermill -k lsnb /tmp/10.ipynb /tmp/10.out.ipynb -p model_path my_model.pt \
#     -p architecture my_module:MyNet -p input_shape "[1, 28, 28]" -p data my_data.npz
# ```
#
# `model_path` is a state dict (`torch.save(model.state_dict(), path)`) or a
# TorchScript file; `architecture` names the module class (`module:Class`,
# importable, built without arguments) its weights are loaded into.  With no
# `model_path` the notebook saves a small example CNN and random data first.

# %% tags=["parameters"]
model_path = None                  # a state dict or TorchScript file; None: a small example CNN saved first
architecture = None                # "module:Class" of the model (None only for the example)
input_shape = [1, 12, 12]          # one example's channel-first shape
data = None                        # an .npz with x_train, y_train, x_test, y_test (channel-first); None: random
k = 4                              # clusters
partitionings = ["weights/network", "activations/network"]   # "<method>/<scope>": weights, activations, leiden
measures = ["acc_drop", "class_range"]                        # or add "vis_score", "softmax_entropy"
n_random = 19                      # random groups per subcluster
n_samples = 1000                   # training inputs of activation-based groupings
seed = 0
profile = "quick"                  # unused by the torch path; kept for the book's parameter convention

# %% [markdown]
# ## The model and the data, checked
#
# A module torch.fx cannot trace or a layer the neuron graph does not support
# (named with its type), data that does not fit the input shape, labels out of
# range or a `k` larger than a layer can hold stop here with a message saying
# which.

# %%
import importlib

import pandas as pd

import lsnb.torch as lt
from lsnb import explore, stats

if model_path is None:
    model_path, architecture, data = lt.example_files(explore.results_dir() / "torch_example", seed=seed)
if architecture is None:
    raise ValueError("pass architecture='module:Class', the class whose state dict model_path holds")
module_name, _, class_name = str(architecture).partition(":")
net = lt.load(model_path, input_shape, architecture=getattr(importlib.import_module(module_name), class_name)())
dataset = lt.load_data(data, net)
k = lt.check_k(net, k)
print(f"{net.name}: {len(net.neuron_layers())} neuron layers; data {dataset.describe()}; k = {k}")

# %% [markdown]
# ## Partition and test

# %%
tables = []
for spec in partitionings:
    method, scope = spec.split("/")
    inputs = {"x": dataset.x_train, "n_samples": n_samples} if method == "activations" else {}
    part = lt.partition(net, method, scope, k=k, seed=seed, **inputs)
    if part.subclusters():
        tables.append(lt.group_test(net, part, measures, data=(dataset.x_test, dataset.y_test),
                                    n_random=n_random, seed=seed, network=net.name, partitioning=spec))
    else:
        print(f"{spec}: no subcluster of size 2 or more that is not a whole layer; nothing to test")
tidy = pd.concat(tables, ignore_index=True)
summary = stats.summarize(tidy, seed=seed)
explore.format_summary(summary)

# %% [markdown]
# The table reads as chapter 8's: `fisher` above `null_fisher` means the
# subclusters stand out from random groups.

# %%
explore.subcluster_table(tidy, caption=f"{net.name}, seed {seed}, {n_random} random groups per subcluster")
