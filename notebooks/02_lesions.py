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
# the replicates by the Bates distribution, and the whole table is corrected by
# Benjamini–Hochberg (see {doc}`../reading`).  The results fill the lesion
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

# %%
from lsnb import figures, report
from lsnb.study import Study

study = Study(profile, seed=seed, imagenet_dir=imagenet_dir, imagenet_weights=imagenet_weights)
all_nets = study.available(nets + imagenet_nets)
note = study.source_note(all_nets)
timer = study.start(nets + imagenet_nets)

# %%
tidy = study.lesions(all_nets, partitionings, k=k)
summary = study.combined(tidy, alpha=alpha)
print(f"BH critical p value over this table: {summary.attrs['bh_critical_p']:.3g} (paper: 0.025)")
summary

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
# groups on average; `*` marks an effect more than two standard errors above 1.

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

# %%
print(f"[timing] {timer}")
