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
# # Coherence you can see: halves-MNIST (Appendix A.5)
#
# Each example of *halves-MNIST* is two MNIST digits squeezed to half width
# and set side by side; the label is their sum modulo 10.  A network that
# solves the task must look at both halves, but nothing forces any single
# neuron to.  If the first layer is locally specialized, its clusters should
# be **selective to one half**, while random groups of the same size mix both.
#
# We train MLPs on halves-MNIST, cluster them in the four ways of the paper and
# draw, for each first-layer subcluster, the Spearman correlation of its
# neurons' pre-ReLU activations with every input pixel over the test set,
# averaged after sign alignment (Algorithm 2).  Below each true picture are
# pictures of random groups of the same size (the paper's Figures 4 and 5);
# each column is scaled to [0, 1] on its own.

# %% tags=["parameters"]
profile = "quick"       # "smoke", "quick" or "paper"
k = None                # clusters; None means the profile k (16 outside smoke)
seed = 0
layer = "dense1"        # the first hidden layer
n_random = 4            # random groups drawn under each subcluster
threshold = 2 / 3       # share of the picture mass on one half that counts as "one-sided"

# %%
from IPython.display import display

from lsnb import explore, figures
from lsnb.record import show as show_record
from lsnb.study import Study

study = Study(profile, seed=seed)
timer = study.start(["mlp_halves"])

# %%
pictures, counts = study.halves(k=k, layer=layer, n_random=n_random, threshold=threshold)

# %% [markdown]
# ## Figure 5: true subclusters (top row) over random groups
#
# One panel per partitioning, for the first replicate.  A picture that is
# bright or dark on one side only belongs to a group that looks at one digit.

# %%
from lsnb.correlation import plot_correlation_grid

for (replicate, partitioning), result in pictures.items():
    if replicate == 0:
        figures.show(plot_correlation_grid(result, title=f"{partitioning} ({layer}, replicate 0)"))

# %% [markdown]
# ## One subcluster's card
#
# The lesion test of replicate 0's weight-graph partition, and the card of the
# first-layer subcluster whose lesion stands out most from its 19 random
# groups: where its accuracy drop falls among theirs, which classes (sums
# modulo 10) it hurts, and its correlation picture from above (red: pixels
# whose brightness goes with the subcluster's activation, blue: against).

# %%

tidy = study.lesions(["mlp_halves"], ["weights/network"])
first = tidy[(tidy["layer"] == layer) & (tidy["replicate"] == 0)]
if (0, "weights/network") in pictures and not first.empty:
    top = study.most_special(first, "acc_drop")
    drawn = pictures[(0, "weights/network")]
    display(explore.cluster_card(top, class_drops=study.class_drops(top),
                                 correlation=drawn.true[drawn.clusters.index(int(top["cluster"]))]))
else:
    print(f"replicate 0's weights/network partition has no subcluster in {layer}")

# %% [markdown]
# ## How many subclusters prefer one half?
#
# A picture is *one-sided* when at least the `threshold` share of its absolute
# mass lies on one half of the image.  The paper reports that almost all true
# subclusters are; for random groups we give the mean count over the random
# rows.  Rows with no subcluster in this layer are left blank.

# %%
display(counts)
display(counts.groupby("partitioning", sort=False)[["subclusters", "true one-sided",
                                                    "random one-sided (mean)"]].sum())

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
record = study.record(["mlp_halves"], tidy)
show_record(record)
explore.save_results("01_halves_mnist", record=record)

# %%
print(f"[timing] {timer}")
