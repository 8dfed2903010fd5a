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
# # Feature visualization: coherence (Section 4.2)
#
# For a group of units we optimise an input image to excite all of them at once
# (the L1 norm of their pre-ReLU activations; for a channel, the L1 norm over
# positions).  A group that detects one feature together can be driven hard by
# one image: its **visualization score**, the objective on the final image, is
# high.  And the image should look like something the network recognises: the
# **softmax entropy** of the network's output on it is low.
#
# As for lesions, each subcluster is compared with 19 random groups of the same
# size and layer.  The results fill the feature-visualization columns of
# Tables 1, 2 and 8 and draw the paper's Figure 6 (true versus random
# visualizations) and a Figure 2 style histogram of visualization-score
# percentiles.

# %% tags=["parameters"]
profile = "quick"                        # "smoke", "quick" or "paper"
nets = ["mlp_mnist", "cnn_mnist", "vgg"]
imagenet_nets = ["vgg16", "vgg19"]       # run only when imagenet_dir holds images
imagenet_dir = None
imagenet_weights = "imagenet"
partitionings = ["weights/network", "weights/layer", "activations/network", "activations/layer"]
k = None                                 # None means the profile k (32 for ImageNet)
steps = None                             # optimisation steps; None means the profile featvis_steps
seed = 0
alpha = 0.05
ties = "random"                          # tie rule of the percentiles: "random" (exact), "conservative", "original"
grid_rows = 4                            # subclusters shown per Figure 6 panel
exemplar_k = 50                          # test images per group for the exemplar entropy
compare_lucid = True                     # also run Lucid (the authors' library) on one network
lucid_subclusters = 8                    # subclusters compared (None: all; Lucid renders one graph each)

# %%
import pandas as pd
from IPython.display import display

import lsnb
from lsnb import book, cache, exemplar, explore, featvis, figures, report, stats
from lsnb.featvis import plot_featvis_grid
from lsnb.record import show as show_record
from lsnb.study import Study

study = Study(profile, seed=seed, imagenet_dir=imagenet_dir, imagenet_weights=imagenet_weights,
              featvis_steps=steps)
all_nets = study.available(nets + imagenet_nets)
note = study.source_note(all_nets)
timer = study.start(nets + imagenet_nets)

# %% [markdown]
# ## One network by hand
#
# The group test with the visualization measures: one image is optimized for
# each subcluster and for each of its random groups, and the score (how strongly
# the image excites the group) and the softmax entropy of the network on that
# image are compared.  The measures are values passed in; here the pair that
# shares one visualization at this profile's number of steps.

# %% tags=["by-hand"]
mlp = study.network("mlp_mnist", 0)
with timer.stage("by hand"):   # cache.memo(kind, call, *arguments): the call, its result kept on disk
    part = cache.memo("partition", lsnb.partition, mlp.model, method="weights", scope="network",
                      k=study.profile.k, seed=seed, n_init=study.profile.n_init)
    measures = featvis.vis_measure_pair(steps=study.profile.featvis_steps_for("mlp"))
    by_hand = cache.memo("featvis", lsnb.group_test, mlp.model, part, measures, n_random=study.profile.n_random,
                         seed=seed, network="mlp_mnist", partitioning=part.name)
explore.format_summary(stats.summarize(by_hand, seed=seed))

# %% [markdown]
# ## Every network, replicate and partitioning
#
# `tie_share`, `null_fisher` and `null_effect` give each cell's own null
# reference (each random group in turn as the true one), as on the lesion page.

# %%
tidy, images = study.featvis(all_nets, partitionings, k=k)
summary = study.combined(tidy, alpha=alpha, ties=ties,
                         family="the feature-visualization cells of this page "
                                "(Tables 1, 2 and 8, every network run here)")
print(stats.bh_family_line(summary))
explore.format_summary(summary)

# %% [markdown]
# ## Did the visualizations converge?
#
# A visualization score compares groups only once the optimisation has reached
# its plateau; after too few steps the image still mostly shows its grey
# start.  For each network, a sample of the first replicate's subclusters is
# visualized with the steps used here and with four times as many (same seeds
# and settings): the median ratio of the two scores should be at least 0.9.
# Where it is not, the experiment record below flags the network's rows.

# %%
study.convergence_summary(all_nets)

# %% [markdown]
# ## Table 1 (feature-visualization columns): Fisher statistics

# %%
report.styled(report.paper_table(summary, table=1, alpha=alpha), note)

# %% [markdown]
# ## Table 2 (feature-visualization columns): effect measures
#
# Vis score: above 1 is coherent.  Softmax entropy: *below* 1 is coherent.  On
# our effects `*` marks one beyond the cell's own null effect on that side by a
# one-sided paired t test over the nets (5 %, never from one net); on the
# paper's, its rule: more than two standard errors from 1.

# %%
report.styled(report.paper_table(summary, table=2, alpha=alpha), note)

# %% [markdown]
# ## Table 8: Fisher statistic (p value) and effect measure together

# %%
report.styled(report.paper_table(summary, table=8, alpha=alpha), note)

# %%
figures.show(figures.fisher_heatmap(report.compare(summary, 8, alpha), title="Feature visualization: Fisher statistics"))
report.agreement_summary(summary, tables=(8,), alpha=alpha)

# %% [markdown]
# ## Figure 2: percentiles of the visualization score
#
# The paper's Figure 2 shows these histograms for the CIFAR VGG; here for every
# network.

# %%
for net in tidy["network"].unique():
    figures.show(figures.percentile_histograms(tidy, "vis_score", network=net))

# %% [markdown]
# ## Figure 6: true subclusters (left) beside random groups
#
# For each network, the first replicate's activations/network partitioning (or
# the first with subclusters): each row is one subcluster, from layers spread
# from the first to the last, its own visualization first.

# %%
for net in tidy["network"].unique():
    example = book.example_images(images, net)
    if example is None:
        print(f"{net}: no subcluster to draw")
        continue
    (_, _, partitioning), pics = example
    figures.show(plot_featvis_grid(pics, keys=book.spread_rows(pics, grid_rows), n_random=4,
                                  grayscale=net != "vgg", title=f"{net}, {partitioning}, replicate 0"))

# %% [markdown]
# ## Real images: the exemplar entropy
#
# Synthetic images can mislead: they are processed differently from natural
# images and can be manipulated.  The same question asked of real images: the
# `exemplar_k` test images that excite a group most (the same L1 objective,
# summed over positions for a channel), and the entropy of their classes
# (low: the group answers to one class).  Each subcluster is compared with the
# very same random groups as its visualization; it costs one forward pass
# over each network's whole test set.  The first table sets the three
# measures side by side (the two entropies are coherent when their effect is
# *below* 1); the second says whether the subclusters that stand out under the
# real images are those that stand out under the synthetic ones: the Spearman
# correlation of their percentiles over the subclusters of each network and
# partitioning (positive: the two kinds of evidence agree).

# %%
exemplars = study.exemplars(all_nets, partitionings, k=k, exemplar_options={"k": exemplar_k})
evidence = study.combined(pd.concat([tidy, exemplars], ignore_index=True), alpha=alpha, ties=ties)
display(exemplar.evidence_table(evidence))
display(exemplar.evidence_agreement(pd.concat([tidy, exemplars], ignore_index=True)))

# %% [markdown]
# ## Explore the subclusters
#
# Every subcluster of every run, sortable and searchable; then the card of the
# subcluster whose visualization score stands out most: its score (red) among
# its random groups' (grey), its image beside two of its random controls', and
# the three test images that excite it most.

# %%
explore.new_page()
display(explore.subcluster_table(pd.concat([tidy, exemplars], ignore_index=True), caption=note))
top = study.most_special(tidy, "vis_score")
pictures = images.get((top["network"], int(top["replicate"]), top["partitioning"]), {}).get(
    (top["layer"], int(top["cluster"])))
display(explore.cluster_card(top, images={
    **({} if pictures is None else {"subcluster": pictures[0], "random 1": pictures[1], "random 2": pictures[2]}),
    **study.exemplar_panels(top, k=exemplar_k)}))
display(explore.fisher_overview(summary, published=report.published(8)))
explore.save_results("03_feature_visualization", tidy=tidy, summary=summary, exemplars=exemplars)

# %% [markdown]
# ## The native engine versus Lucid
#
# `lsnb` optimizes the images with its own batched TensorFlow 2 engine; the
# authors used Lucid, which is TensorFlow 1 code.  Lucid runs here behind a
# small compatibility layer (`lsnb.featvis.lucid`), so both can visualize the
# same subclusters and the same random groups with the same settings, on the
# small CNN's weights/network partitioning (replicate 0; its first
# `lucid_subclusters` subclusters, to keep the book within its time budget).  The second table
# says how close they come in this run: the correlation of the two engines'
# true values and the mean gap between their percentiles, per measure.
#
# The visualization score is what both engines optimize, so it is the fair
# test of agreement.  The softmax entropy is a by-product: on images that
# drive the network to near-certainty it sits close to zero, where small
# differences between two engines' images reorder the ranks, so expect it
# to agree less than the score does.

# %%
if compare_lucid:
    side, backend_summary, agreement = study.backends("cnn_mnist", max_subclusters=lucid_subclusters)
    display(backend_summary)
    display(pd.DataFrame(agreement).T)

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
explore.save_results("03_feature_visualization", record=record)

# %%
print(f"[timing] {timer}")
