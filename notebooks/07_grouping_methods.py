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
alpha = 0.05
n_permutations = 20        # agreement null (shuffles per pair of groupings)
n_shuffles = 10            # clusterability null (shuffled networks per net)
clusterability_nets = ["mlp_mnist", "cnn_mnist", "vgg", "vgg_unreg", "mlp_halves"]   # every trained net of the book
n_samples = 500            # inputs of the activation-Leiden, gradient and class-preference groupings
stability_seeds = [0, 1]
tests = ["lesion", "featvis"]   # acc drop and class range; vis score and softmax entropy

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import display

import numpy as np

import lsnb
from lsnb import comparison, explore, figures, graph, grouping, stats
from lsnb.controls import FunctionMeasure
from lsnb.record import show as show_record
from lsnb.study import Study

study = Study(profile, seed=seed)
timer = study.start(nets, note=f"Replicate {replicate} only.", replicates=[replicate])
partitions = {net: comparison.groupings(study, net, replicate, n_samples) for net in nets}
pd.concat([comparison.describe(parts).assign(network=net) for net, parts in partitions.items()]).round(3)

# %% [markdown]
# ## Do the groups of each method stand out from random groups?
#
# Each grouping's subclusters are lesioned, and visualized, against 19 random
# groups of the same size from the same layer, with the same controls rule,
# test images, visualization settings and statistics as the lesion and
# visualization chapters (the paper's four rows are those chapters' results,
# read from the cache).  Beside every Fisher statistic and effect
# stands its null reference: with the random partition, our statistics should
# sit at that reference; with class preference, a grouping coherent with the
# label by construction, the class range shows what the measure can detect.

# %%
tidy = pd.concat([comparison.group_tests(study, net, parts, replicate, test)
                  for test in tests for net, parts in partitions.items()], ignore_index=True)
summary = study.combined(tidy, alpha=alpha, family="the cells of this page's summary (every grouping and test)")
print(stats.bh_family_line(summary))
explore.format_summary(summary)

# %% [markdown]
# ## Your own groups, your own measure
#
# `lsnb.group_test` takes any groups and any measure.  Here the groups are the
# MLP's first hidden layer split by the class that drives each unit most, and
# the measure is written in three lines: the mean pre-activation of a group's
# units over the test images, one value per mask (true groups and their random
# controls come together).  Same controls rule and statistics as everywhere.

# %%
mlp = study.network("mlp_mnist", replicate)
x_test, y_test = study.test_data(mlp)
mean_preactivation = {layer: values.mean(axis=0) for layer, values in
                      graph.unit_activations(mlp.model, x_test).items()}
measure = FunctionMeasure("mean_preactivation", higher_is_special=True,
                          fn=lambda model, layer, masks, data: masks @ mean_preactivation[layer] / masks.sum(axis=1))
by_class = next(part for name, part in partitions["mlp_mnist"].items() if name.startswith("class_preference"))
own = lsnb.group_test(mlp.model, by_class, measure, n_random=study.profile.n_random, seed=seed,
                      network="mlp_mnist", partitioning=by_class.name)
explore.format_summary(stats.summarize(own, seed=seed))

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
fig.tight_layout()
figures.show(fig)

# %% [markdown]
# ## Stability under the clustering seed
#
# The same weights clustered with other seeds.  Units of independently trained
# replicates do not correspond, so agreement across replicates is not
# defined and is not shown.

# %%
comparison.stability_table(study, nets, replicate, stability_seeds, n_permutations).round(3)

# %% [markdown]
# ## Clusterability (Filan et al. 2021)
#
# The n-cut of the spectral weight partition against the n-cuts of the same
# network with the weights of each layer shuffled.  A low percentile means
# the trained weights are more clusterable than their shuffles.

# %%
comparison.clusterability_table(study, clusterability_nets, n_shuffles, replicate).round(3)

# %%
explore.save_results("07_grouping_methods", tidy=tidy, summary=summary)

# %% [markdown]
# ## Experiment record
#
# What every number on this page rests on, one row per network and replicate:
# the training examples (real and augmented), test accuracy beside the paper's
# band, the lesion test images per class, dead units, subclusters tested and
# skipped by the size rule, tie shares, whether the visualizations converged
# and the degrees of freedom of the effects' standard errors.  Weak rows are
# named in plain words above the table (see {doc}`../reading`).

# %%
record = study.record(nets, tidy)
show_record(record)
explore.save_results("07_grouping_methods", record=record)

# %%
print(f"[timing] {timer}")
