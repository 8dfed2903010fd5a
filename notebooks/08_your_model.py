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
# # Your own model
#
# This notebook runs the paper's method on any saved Keras model: partition
# its neurons, test every subcluster against random groups of the same size
# from the same layer, and summarize with the null reference of each cell.
# Run it on your model with papermill (see the README):
#
# ```bash
# .venv/bin/jupytext --to ipynb --output /tmp/08.ipynb notebooks/08_your_model.py
# .venv/bin/papermill -k lsnb /tmp/08.ipynb /tmp/08.out.ipynb -p model_path my_model.keras -p data my_data.npz
# ```
#
# In the book it runs on the quick profile's MLP, saved to a `.keras` file
# first, so the page shows what you get.

# %% tags=["parameters"]
model_path = None                  # a saved .keras model; None: the book's MLP, saved to a file for the example
data = "mnist"                     # "mnist" or an .npz file with x_train, y_train, x_test, y_test
k = 16                             # clusters
partitionings = ["weights/network", "activations/network"]   # "<method>/<scope>", methods of lsnb.partition
measures = ["acc_drop", "class_range"]                        # or add "vis_score", "softmax_entropy"
n_random = 19                      # random groups per subcluster
n_samples = 1000                   # training inputs of activation-based groupings
n_test = None                      # test images used for the lesions (None: all)
seed = 0
profile = "quick"                  # sizes of the example model only

# %% [markdown]
# ## The model and the data, checked
#
# An unsupported layer, data that does not fit the model's input, labels out
# of range or a `k` larger than a layer can hold stop here with a message
# saying which.

# %%
from pathlib import Path

import pandas as pd
from IPython.display import display

import lsnb
from lsnb import explore, stats, usermodel
from lsnb.study import Study

if model_path is None:
    example = Study(profile, seed=seed).network("mlp_mnist", 0)
    model_path = explore.results_dir() / "example_mlp.keras"
    model_path.parent.mkdir(parents=True, exist_ok=True)
    example.model.save(model_path)
model = usermodel.load_model(model_path)
dataset = usermodel.load_data(data, model)
k = usermodel.check_k(model, k)
test = dataset.subset(n_test=n_test, seed=seed)          # stratified: every class in proportion, never the first n
x_test, y_test = test.x_test, test.y_test
name = Path(model_path).stem
print(f"{name}: {len(model.layers)} layers; data {dataset.describe()}; {len(x_test)} test images; k = {k}")

# %% [markdown]
# ## Partition and test

# %%
tables = []
for spec in partitionings:
    method, scope = spec.split("/")
    inputs = {"x": dataset.x_train, "n_samples": n_samples} if method == "activations" else {}
    part = lsnb.partition(model, method=method, scope=scope, k=k, seed=seed, **inputs)
    if part.subclusters():
        tables.append(lsnb.group_test(model, part, measures, data=(x_test, y_test), n_random=n_random,
                                      seed=seed, network=name, partitioning=spec))
    else:
        print(f"{spec}: no subcluster of size 2 or more that is not a whole layer; nothing to test")
tidy = pd.concat(tables, ignore_index=True)
summary = stats.summarize(tidy, seed=seed)
explore.format_summary(summary)

# %% [markdown]
# `fisher` above `null_fisher` (the same statistic with each random group in
# turn as the true one) means the subclusters stand out from random groups;
# `effect` above `null_effect` means they score higher on average (below, for
# the softmax entropy).  `tie_share` is the share of subclusters tied with a
# random group.

# %% [markdown]
# ## Explore

# %%
explore.new_page()
display(explore.subcluster_table(tidy, caption=f"{name}, seed {seed}, {n_random} random groups per subcluster"))
top = tidy.loc[tidy["percentile"].idxmin()]
display(explore.cluster_card(top))
explore.save_results("08_your_model", tidy=tidy, summary=summary)
