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
# # The whole run at a glance
#
# The lesion and feature-visualization results of this build together, as the
# paper's Tables 7 and 8 form one family: the Benjamini–Hochberg correction is
# applied over both at once (the chapters each correct their own page's
# cells, as the line under each of their summaries says).  The
# results are read from the cache the two chapters wrote; nothing is
# recomputed when they ran with the same parameters.  Click a cell of the
# heatmap for the chapter that holds its table.

# %% tags=["parameters"]
profile = "quick"                         # "smoke", "quick" or "paper"
nets = ["mlp_mnist", "cnn_mnist", "vgg"]   # the networks of the lesion and visualization chapters
partitionings = ["weights/network", "weights/layer", "activations/network", "activations/layer"]
precision_twins = ["mlp_mnist", "cnn_mnist"]    # also trained in float32 (first replicate); the VGGs would add ~3 min
seed = 0
alpha = 0.05

# %%
import pandas as pd
from IPython.display import display

from lsnb import explore, report, stats
from lsnb.record import show as show_record
from lsnb.study import Study

study = Study(profile, seed=seed)
timer = study.start(nets)
lesion_tidy, visual_tidy = study.lesions(nets, partitionings), study.featvis(nets, partitionings)[0]
lesions, visual = study.combined(lesion_tidy, alpha=alpha), study.combined(visual_tidy, alpha=alpha)
lesions, visual = stats.family_bh(lesions, visual, alpha=alpha,
                                  family="Tables 7 and 8 together, the paper's family (the lesion and "
                                         "feature-visualization cells of this page)")
both = pd.concat([lesions, visual], ignore_index=True)
chapter = {m: "02_lesions" for m in ("acc_drop", "class_range")} | {m: "03_feature_visualization"
                                                                     for m in ("vis_score", "softmax_entropy")}
print(stats.bh_family_line(lesions))

# %%
explore.new_page()
published = pd.concat([report.published(7), report.published(8)], ignore_index=True)
display(explore.fisher_overview(both, published=published,
                                link=lambda network, partitioning, measure: f"{chapter[measure]}.html"))
explore.interactive_table(explore.format_summary(both), caption=study.source_note(nets))

# %% [markdown]
# Our significance marks (`significant`) come from the joint correction; a
# cell's `null_fisher` and `null_effect` are its own null reference (see
# {doc}`../reading`).

# %%
explore.save_results("09_at_a_glance", summary=both)

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
record = study.record(nets, lesion_tidy, visual_tidy)
show_record(record)
explore.save_results("09_at_a_glance", record=record)

# %% [markdown]
# ## The arithmetic behind these numbers
#
# Every lesion runs in float32 and gives the counts of the naive path.  Training
# and the visualization steps run in the profile's precision, which may be
# bfloat16 (float32 master weights; the finished images scored in float32).
# Here is what that changes, on the first replicate of each network.
#
# * `test_accuracy` is the book's network. `float32_twin_accuracy` is a twin
#   trained in float32 from the same seed on the same batches.  Both are read
#   against `accuracy_band`.  The networks with a twin are those named in
#   `precision_twins`.  A network trained in float32 anyway (by the profile,
#   or on a CPU without bfloat16) has no twin, as there is nothing to compare.
# * `vis_spearman` is the rank correlation between the visualization scores of
#   `vis_groups` sampled subclusters (weights/network) optimised in
#   `vis_precision` and optimised in float32.  Both runs start from the same
#   images and take the same `vis_steps`.  `vis_median_ratio` is the median of
#   their score ratios and `vis_max_difference` the largest relative difference
#   of one subcluster's two scores.  A correlation near 1 means the test ranks
#   groups as float32 would.  Subclusters of different sizes score far apart,
#   so the largest difference says more about how close the two runs are.

# %%
precision = study.precision_check(nets, twins=precision_twins)
display(precision.set_index("network").fillna("-"))   # "-": no twin trained
explore.save_results("09_at_a_glance", precision=precision)

# %%
print(f"[timing] {timer}")
