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
# # Lesions: importance and coherence (Section 4.1)
#
# Lesioning a subcluster removes its units from the network; we then measure
# the test set again.
#
# * **Importance** is the drop of the overall test accuracy.
# * **Coherence** is the *range* over classes of the per-class accuracy drops:
#   a group that matters for some digits and not for others has a wide range.
#
# Each subcluster is compared with 19 random groups of the same size from the
# same layer; the percentiles are combined into Fisher statistics per network,
# the replicates by the Bates distribution, and this page's table is corrected
# by Benjamini–Hochberg as one family, named in the line printed under it (see
# {doc}`../reading`; the paper's family, Tables 7 and 8 together, is on
# {doc}`09_at_a_glance`).  The results fill the lesion
# columns of the paper's Tables 1, 2 and 7, and its Figure 2 style percentile
# histograms.

# %% tags=["parameters"]
profile = "quick"                        # "smoke", "quick" or "paper"
nets = ["mlp_mnist", "cnn_mnist", "vgg"]  # small networks trained here
imagenet_nets = ["vgg16", "resnet18"]    # run only when imagenet_dir holds images
imagenet_dir = None                      # folder of ImageNet validation images, one sub-folder per class
imagenet_weights = "imagenet"            # "imagenet" (Keras cache) or a folder of <name>.h5 files
partitionings = ["weights/network", "weights/layer", "activations/network", "activations/layer"]
k = None                                 # clusters; None means the profile k (32 for ImageNet)
seed = 0
alpha = 0.05                             # false discovery rate of the BH correction
ties = "random"                          # tie rule of the percentiles: "random" (exact), "conservative", "original"

# %%
from IPython.display import display

import lsnb
from lsnb import cache, explore, figures, report, stats
from lsnb.record import show as show_record
from lsnb.study import Study

study = Study(profile, seed=seed, imagenet_dir=imagenet_dir, imagenet_weights=imagenet_weights)
all_nets = study.available(nets + imagenet_nets)
note = study.source_note(all_nets)
timer = study.start(nets + imagenet_nets)

# %% [markdown]
# ## One network by hand
#
# The whole procedure is three public calls: partition the network, test every
# subcluster against random groups of the same size from the same layer
# (`lsnb.group_test`, the same call works on any grouping and any measure), and
# summarize.  Here the first MLP replicate, weights/network.  Each expensive
# call goes through `lsnb.cache.memo`, which keeps its result on disk under a
# key of every argument (the model by its weights) and of the computation's
# version, so a rebuild of the book reads it instead of computing it again.

# %% tags=["by-hand"]
mlp = study.network("mlp_mnist", 0)
x_test, y_test = study.test_data(mlp)
with timer.stage("by hand"):   # cache.memo(kind, call, *arguments): the call, its result kept on disk
    part = cache.memo("partition", lsnb.partition, mlp.model, method="weights", scope="network",
                      k=study.profile.k, seed=seed, n_init=study.profile.n_init)
    by_hand = cache.memo("lesion", lsnb.group_test, mlp.model, part, ["acc_drop", "class_range"], data=(x_test, y_test),
                              n_random=study.profile.n_random, seed=seed, network="mlp_mnist",
                              partitioning=part.name)
explore.format_summary(stats.summarize(by_hand, seed=seed))

# %% [markdown]
# ## Every network, replicate and partitioning
#
# The same calls for every network and partitioning, each step cached.  Beside
# each Fisher statistic and effect measure stand the share of subclusters whose
# true value ties with a random one (`tie_share`) and the **null reference of
# that cell** (`null_fisher`, `null_effect`): the same statistic with each random
# group in turn playing the true one against the others.  The paper's 0.98 and 1
# hold only for continuous measures; read our numbers against the reference
# each cell really has (see {doc}`../reading`).

# %%
tidy = study.lesions(all_nets, partitionings, k=k)
summary = study.combined(tidy, alpha=alpha, ties=ties,
                         family="the lesion cells of this page (Tables 1, 2 and 7, every network run here)")
print(stats.bh_family_line(summary))
explore.format_summary(summary)

# %% [markdown]
# ## Table 1 (lesion columns): Fisher statistics
#
# Ours beside the paper's; `*` marks significance after Benjamini–Hochberg,
# `agrees` says whether both are significant or both are not.

# %%
report.styled(report.paper_table(summary, table=1, alpha=alpha), note)

# %% [markdown]
# ## Table 2 (lesion columns): effect measures
#
# Above 1: true subclusters matter more (or more selectively) than random
# groups on average.  On our effects `*` marks one beyond the cell's own null
# effect by a one-sided paired t test over the nets (5 %, never from one
# net); on the paper's, its rule: more than two standard errors above 1.

# %%
report.styled(report.paper_table(summary, table=2, alpha=alpha), note)

# %% [markdown]
# ## Table 7: Fisher statistic (p value) and effect measure together

# %%
report.styled(report.paper_table(summary, table=7, alpha=alpha), note)

# %%
figures.show(figures.fisher_heatmap(report.compare(summary, 7, alpha), title="Lesions: Fisher statistics"))
report.agreement_summary(summary, tables=(7,), alpha=alpha)

# %% [markdown]
# ## Figure 2: where the subclusters' percentiles fall
#
# A flat histogram is what random groups would give (Fisher ≈ 0.98); a pile at
# low percentiles means subclusters that beat their random controls.  One row
# of panels per network and measure, pooled over replicates.

# %%
for net in tidy["network"].unique():
    for measure in ("acc_drop", "class_range"):
        figures.show(figures.percentile_histograms(tidy, measure, network=net))

# %% [markdown]
# ## Explore the subclusters
#
# Every subcluster of every run: sort by a column, search for a network or a
# layer.  Below it, the card of the subcluster with the largest accuracy drop
# relative to its controls: its true value (red) among its random groups
# (grey), and the accuracy drop per class when it is lesioned.

# %%
explore.new_page()
display(explore.subcluster_table(tidy, caption=note))
top = study.most_special(tidy, "acc_drop")
display(explore.cluster_card(top, class_drops=study.class_drops(top)))
display(explore.fisher_overview(summary, published=report.published(7)))

# %% [markdown]
# ## Download the results

# %%
explore.save_results("02_lesions", tidy=tidy, summary=summary)

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
record = study.record(all_nets, tidy)
show_record(record)
explore.save_results("02_lesions", record=record)

# %%
print(f"[timing] {timer}")
