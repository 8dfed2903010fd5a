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
# # Grouping methods head to head
#
# The paper partitions neurons with four spectral clusterings
# ({weights, activations} x {network, layer}).  Later work groups units in
# other ways: modularity communities (Leiden) of the same graphs, a
# downstream graph of how the output depends on each unit (Lange, Rolnick &
# Kording 2022), or simply by the class that drives a unit most.  This chapter
# puts them side by side on the same networks: how many groups each finds,
# the Newman modularity and normalized cut of each on its own graph, how much
# any two agree (adjusted Rand index against a within-layer permutation null),
# how stable each is under another clustering seed, and how clusterable the
# networks are at all (Filan et al. 2021: the n-cut of the weight partition
# against the same network with its weights shuffled within each layer).
# Every method lives in `lsnb.cluster.partition` and `lsnb.grouping`.
#
# A random partition with the sizes of the weights/network one is included as
# the grouping that should agree with nothing beyond its null.

# %% tags=["parameters"]
profile = "quick"          # "smoke", "quick" or "paper"
nets = ["mlp_mnist", "cnn_mnist"]
replicate = 0
seed = 0
n_permutations = 20        # agreement null (shuffles per pair of groupings)
n_shuffles = 10            # clusterability null (shuffled networks per net)
n_gradient_samples = 500   # inputs of the gradient and class-preference groupings
stability_seeds = [0, 1]

# %%
import numpy as np
import pandas as pd
import seaborn as sns
import matplotlib.pyplot as plt
from IPython.display import display

import lsnb
from lsnb import experiments as ex, grouping

timer = ex.start_notebook(nets, profile, seed)
PAPER = ["weights/network", "weights/layer", "activations/network", "activations/layer"]


def methods_for(tnet, net: str) -> dict:
    """Every grouping of one network, by name."""
    x, y = tnet.data.x_train, tnet.data.y_train
    parts = {name: ex.get_partition(tnet, net, profile, replicate, name, seed=seed) for name in PAPER}
    k = ex.k_for(net, profile)
    for on in ("weights", "activations"):
        part = lsnb.partition(tnet.model, method="leiden", on=on, x=x, seed=seed,
                              n_samples=ex.get_profile(profile).n_activation_samples)
        parts[part.name] = part
    part = lsnb.partition(tnet.model, method="gradients", k=k, x=x, y=y, seed=seed, n_samples=n_gradient_samples)
    parts[part.name] = part
    part = lsnb.partition(tnet.model, method="class_preference", x=x, y=y, seed=seed, n_samples=n_gradient_samples)
    parts[part.name] = part
    part = lsnb.partition(None, method="random", like=parts["weights/network"], seed=seed)
    parts[part.name] = part
    return parts


# %%
partitions = {}
with timer.stage("partitions"):
    for net in nets:
        partitions[net] = methods_for(ex.network(net, profile, replicate=replicate, seed=seed), net)
rows = [{"net": net, "grouping": name, "groups": len(part.subclusters()),
         "modularity": part.info.get("modularity"), "ncut": part.info.get("ncut"),
         "communities": part.info.get("n_communities"), "seconds": part.info.get("seconds")}
        for net, parts in partitions.items() for name, part in parts.items()]
pd.DataFrame(rows).round(3)

# %% [markdown]
# ## Agreement between groupings
#
# Adjusted Rand index over the network (a unit's label is its layer and
# cluster) and, in brackets, its percentile among within-layer shuffles of the
# column's labels.  Over the network even shuffled labels agree that units of
# different layers are apart, so read each value against its null, not
# against 0.

# %%
with timer.stage("agreement"):
    matrices = {net: grouping.agreement_matrix(parts, n_permutations=n_permutations, seed=seed)
                for net, parts in partitions.items()}
fig, axes = plt.subplots(1, len(nets), figsize=(7 * len(nets), 6), squeeze=False)
for ax, (net, (value, pct)) in zip(axes[0], matrices.items()):
    notes = value.round(2).astype(str) + "\n(" + pct.round(0).fillna(100).astype(int).astype(str) + ")"
    sns.heatmap(value, annot=notes, fmt="", vmin=0, vmax=1, cmap="viridis", ax=ax, cbar=False)
    ax.set_title(f"{net}: ARI (null percentile)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Stability under the clustering seed
#
# The same weights clustered with other seeds.  Units of independently trained
# replicates do not correspond, so agreement across replicates is not
# defined and is not shown.

# %%
with timer.stage("stability"):
    stable = []
    for net in nets:
        tnet = ex.network(net, profile, replicate=replicate, seed=seed)
        for name in PAPER:
            runs = [ex.get_partition(tnet, net, profile, replicate, name, seed=s) for s in stability_seeds]
            table = grouping.stability(runs, n_permutations=n_permutations, seed=seed)
            stable.append(table[table.layer == "network"].assign(net=net, grouping=name))
pd.concat(stable)[["net", "grouping", "seed_a", "seed_b", "measure", "observed", "null_mean", "percentile"]].round(3)

# %% [markdown]
# ## Clusterability (Filan et al. 2021)
#
# The n-cut of the spectral weight partition against the n-cuts of the same
# network with the weights of each layer shuffled.  A low percentile means
# the trained weights are more clusterable than their shuffles.

# %%
with timer.stage("clusterability"):
    clus = []
    for net in nets:
        tnet = ex.network(net, profile, replicate=replicate, seed=seed)
        result = grouping.clusterability(tnet.model, n_shuffles=n_shuffles, k=ex.k_for(net, profile), seed=seed,
                                         n_init=ex.get_profile(profile).n_init)
        clus.append({"net": net, "ncut": result.ncut, "shuffled_mean": float(np.mean(result.shuffled)),
                     "shuffled_min": float(np.min(result.shuffled)), "percentile": result.percentile})
pd.DataFrame(clus).round(3)

# %%
print(f"[timing] {timer}")
