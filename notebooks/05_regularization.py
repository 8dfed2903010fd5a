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
# # Is it only redundancy? Regularized versus unregularized VGG (Appendix A.4)
#
# Dropout pushes a network to store the same information in several neurons,
# and clustering might then merely find groups of copies.  Such groups would
# look "important" and "coherent" for an uninteresting reason.  The paper
# checks by training the CIFAR VGG without dropout and L2 regularization, which
# should leave less redundancy: if the results are driven by redundant copies,
# they should weaken.  The paper finds the unregularized networks at least as
# specialized.  This notebook fills Tables 3 (lesions) and 4 (feature
# visualization).

# %% tags=["parameters"]
profile = "quick"                 # "smoke", "quick" or "paper"
nets = ["vgg", "vgg_unreg"]
partitionings = ["weights/network", "weights/layer", "activations/network", "activations/layer"]
k = None                          # None means the profile k
featvis = True                    # also run the feature-visualization half (Table 4)
seed = 0
alpha = 0.05

# %%
import pandas as pd
from IPython.display import display

from lsnb import explore, report, stats
from lsnb.record import show as show_record
from lsnb.study import Study

study = Study(profile, seed=seed)
note = study.source_note(nets)
timer = study.start(nets)

# %%
lesions = study.lesions(nets, partitionings, k=k)
lesion_summary = study.combined(lesions, alpha=alpha, family="the lesion cells of this page (Table 3)")
print(stats.bh_family_line(lesion_summary))
lesion_summary

# %% [markdown]
# ## Table 3: lesions, regularized versus unregularized
#
# The paper's regularized rows repeat its Table 1; its significance marks for
# the unregularized rows are unknown (`?`), as the paper prints no p values for
# them.

# %%
report.styled(report.paper_table(lesion_summary, table=3, alpha=alpha), note)

# %%
if featvis:
    vis, _ = study.featvis(nets, partitionings, k=k)
    vis_summary = study.combined(vis, alpha=alpha, family="the feature-visualization cells of this page (Table 4)")
    print(stats.bh_family_line(vis_summary))
    display(vis_summary)

# %% [markdown]
# ## Table 4: feature visualization, regularized versus unregularized
#
# The paper's Table 4 repeats Table 3's unregularized rows (a slip in the
# paper); we show them as printed.

# %%
if featvis:
    display(report.styled(report.paper_table(vis_summary, table=4, alpha=alpha), note))

# %%
both = pd.concat([lesion_summary] + ([vis_summary] if featvis else []), ignore_index=True)
display(both.pivot_table(index=["partitioning", "measure"], columns="network", values="fisher").round(2))

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
record = study.record(nets, lesions, *([vis] if featvis else []))
show_record(record)
explore.save_results("05_regularization", record=record)

# %%
print(f"[timing] {timer}")
