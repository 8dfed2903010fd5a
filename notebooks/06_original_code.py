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
# # Where the original code departs from the paper
#
# `lsnb` implements the method as the paper describes it.  The authors' public
# code differs from that description in several places, sometimes by design
# and sometimes by mistake.  Where a difference can move numbers, `lsnb`
# offers the code's behaviour as a named option; this page runs **both
# variants** on the same networks and reports what changes.  The other
# departures are listed at the end with the reason they are not re-enacted.
# Each table below is its own Benjamini–Hochberg family: the cells of that
# table, every variant together (`significant`); `effect_special` is our
# effect against the cell's own null (see {doc}`../reading`).

# %% tags=["parameters"]
profile = "quick"                                   # "smoke", "quick" or "paper"
nets = ["mlp_mnist", "cnn_mnist"]                   # networks for the measure and visualization variants
partitionings = ["weights/network", "activations/network"]
vgg_net = "vgg"                                     # network for the batch-norm folding comparison
featvis_net = "mlp_mnist"                           # network for the visualization variant
path_partitionings = ["weights/network", "weights/layer", "activations/network", "activations/layer"]
seed = 0
alpha = 0.05

# %%
import numpy as np
import pandas as pd
from IPython.display import display

from lsnb import departures, explore, stats
from lsnb.record import show as show_record
from lsnb.study import Study

study = Study(profile, seed=seed)
timer = study.start(sorted(set(nets + [vgg_net, featvis_net, "mlp_halves"])))
columns = ["network", "partitioning", "measure", "variant", "n", "n_undefined", "fisher", "p", "effect", "se",
           "effect_special", "significant"]

# %% [markdown]
# ## 0. The measured path from our numbers to the paper's
#
# The lesion columns of Tables 1 (Fisher statistics) and 2 (effect measures)
# for the MLP and the CNN: first under the paper's method as `lsnb` implements
# it, then with each departure of the authors' code applied alone, then with
# all of them together (the "authors' pipeline"), each ± its spread over our
# replicates, beside the paper's value.  A step that cannot change a cell
# (batch-norm folding in a network without batch norm, the layer graph of a
# network-wide partition) is marked `(n/a)`.  Steps that change only the
# statistics (tie rule, effect term) reuse the cached lesions; the others are
# cached runs of their own.  The departures are defined once, in
# `lsnb.departures.DEPARTURES`.

# %%
path = departures.path_table(study, nets, path_partitionings)
display(departures.path_beside_paper(path, "fisher"))
departures.path_beside_paper(path, "effect")

# %% [markdown]
# Read along a row: a departure whose column moves the value towards the
# paper's explains part of the gap; the authors' pipeline column says whether
# their code at our data scale lands near their published numbers.  Our nets
# are trained on the embedded 5,000 digits and lesioned on its test digits,
# far fewer than the paper's 60,000 and 10,000, which no column here can undo.

# %% [markdown]
# ## 1. Batch norm in the VGG weight graph
#
# In the CIFAR VGG each batch norm follows a ReLU (Conv → ReLU → [pool] → BN),
# so it scales channel *c* by γ/√(σ²+ε) on its way *out* to the next
# convolution: `lsnb` folds that factor into the edges leaving the channel
# (`fold_batchnorm="outgoing"`, the default, exact for this order).  The
# authors meant to fold it into the convolution that produces the channel, its
# incoming kernel (`"incoming"`), but a misspelled layer-name test meant it never
# happened, so the published VGG weight-graph results use plain kernel norms
# (`False`).  We build all three graphs, compare the partitions with ours
# (adjusted Rand index, 1 = identical subclusters) and run the lesion test on
# each.

# %%
vgg_runs = departures.folding_runs(study, vgg_net)
display(departures.folding_agreement(study, vgg_net))
study.combined(vgg_runs, by=["variant"], alpha=alpha)[columns]

# %% [markdown]
# ## 2. What "accuracy" and "class range" mean
#
# The code measures accuracy as the *mean of the ten per-class accuracies*
# (class-balanced), not the overall accuracy, and normalizes the class range
# by the mean change: `np.ptp(changes / np.nanmean(changes))`, with `changes`
# the per-class accuracy changes, a peak-to-peak that is never negative
# whatever the sign of the mean.  When a lesion leaves the mean unchanged the
# value is undefined: infinite if every class changed, NaN (0/0) if some class
# did not.  The code's `compute_pvalue` ranks such a true value as the most
# special (every comparison with NaN is false), and `lsnb` does the same under
# `ties="original"`; under the other tie rules infinity ranks as the largest
# value and NaN beyond it, NaNs tied with one another.  In the effect terms NaN
# counts as 0 (the code's `np.nan_to_num`) and infinity gives the maximal term.
# Such subclusters are kept, not dropped: `n_undefined` counts them.  Same networks, same
# partitions, same random controls; only the measure differs.

# %%
measure_runs = departures.measure_runs(study, nets, partitionings)
study.combined(measure_runs, by=["variant"], alpha=alpha)[columns]

# %% [markdown]
# ## 3. Standard errors of the effect measure
#
# The code pools all subclusters of all replicates (and, for visualizations,
# all random draws) into one standard error, as if they were independent.  The
# nets are the independent units; pooling makes the error bars narrower.

# %%
paper_runs = measure_runs[measure_runs["variant"] == "paper"]
se_variants = pd.concat([study.combined(paper_runs, alpha=alpha, se=s).assign(se_from=s)
                         for s in ("nets", "pooled")], ignore_index=True)
se_variants.pivot_table(index=["network", "partitioning", "measure"], columns="se_from", values=["effect", "se"])

# %% [markdown]
# ## 4. Feature-visualization settings
#
# The code ran 65 steps (the paper says 100) with Lucid's Fourier, colour
# decorrelated parameterization, no transforms, the objective |mean over
# positions| instead of the L1 norm, skipped size-2 subclusters and drew random
# groups from dead units too.  `variant="original"` switches all of these
# together.

# %%
vis_runs = departures.visualization_runs(study, featvis_net, partitionings)
study.combined(vis_runs, by=["variant"], alpha=alpha)[columns]

# %% [markdown]
# ## 5. Sign alignment in the halves-MNIST pictures
#
# Algorithm 2 flips each neuron's picture when it is anticorrelated with the
# rest of its group.  In the code the loop acted on all units at once, so no
# neuron was flipped; only a final global flip happened.  Without alignment,
# opposite-signed neurons cancel and group pictures fade.

# %%
halves = departures.halves_runs(study, partitionings)
halves.groupby(["aligned", "partitioning"], sort=False)[["subclusters", "true one-sided",
                                                         "random one-sided (mean)"]].sum()

# %% [markdown]
# ## 6. Combining replicates: the Bates distribution
#
# The code's hand-written Bates CDF drops the last term of the Irwin–Hall sum.
# For five replicates whose p values average 0.34 it returns 0.1183 where the
# exact value is 0.1113.  Below, the two formulas at a few points for five
# replicates (the only case the code was used for), and, when this profile
# trains five replicates, the combined p values of our lesion runs with each.

# %%
grid = pd.DataFrame({"mean p": [0.1, 0.2, 0.34, 0.5, 0.7, 0.9]})
grid["exact"] = [stats.bates_cdf(x, 5) for x in grid["mean p"]]
grid["code"] = [stats.bates_cdf_original(x, 5) for x in grid["mean p"]]
display(grid.round(4))
per_net = stats.summarize(paper_runs, seed=study.seed)
keys = ["network", "partitioning", "measure"]
bates = per_net.groupby(keys).agg(nets=("p", "size"), mean_p=("p", "mean"))
bates["exact"] = [stats.bates_cdf(m, n) for m, n in zip(bates["mean_p"], bates["nets"])]
bates = bates[bates["nets"] == 5]
bates["code"] = [stats.bates_cdf_original(m, 5) for m in bates["mean_p"]]
bates if len(bates) else print("this profile does not train five replicates: no combined p values to compare")

# %% [markdown]
# ## 7. Benjamini–Hochberg when nothing is significant
#
# When no p value passes, there is no critical value; the code returned 1.0,
# which reads as "everything is significant".  Here BH over the class-range
# p values of our lesion runs alone:

# %%
class_p = study.combined(paper_runs, alpha=alpha).query("measure == 'class_range'")["p"].to_numpy()
reject, critical = stats.benjamini_hochberg(class_p, alpha=alpha)
print(f"{len(class_p)} class-range p values, {int(reject.sum())} significant; "
      f"critical p = {critical:.3g} (lsnb)" + ("; the code would print 1.0" if not reject.any() else ""))

# %% [markdown]
# ## 8. Unseeded activation clustering
#
# The code seeded the weight clustering but not the activation clustering, so
# its activation-based partitions cannot be reproduced exactly.  How much do
# two seeds of the same clustering differ?

# %%
departures.seed_agreement(study, nets)

# %% [markdown]
# ## Departures described but not re-enacted
#
# * **Weight-based layer-wise clustering of CNNs** put labels on the wrong
#   layers, and for MLPs read each layer's k from misaligned slices.  `lsnb`
#   has only the correct version: re-creating wrong label placement would test
#   the bug, not the method.
# * **VGG lesions were not clean**: zeroing a convolution's kernel and bias
#   still lets BN(0) = β − γμ/σ flow on, since batch norm follows the ReLU.
#   `lsnb` removes the unit's output where it enters the next layer.
# * **ImageNet softmax entropy** was measured on unpreprocessed images with a
#   different VGG implementation from the one the images were rendered on.
#   The ImageNet rows need the weights and images, which the default build
#   does not have.
#
# Each option used above is documented where it lives: `fold_batchnorm` in
# `lsnb.cluster.partition`, `variant` in `lsnb.lesion.lesion_test` and
# `lsnb.featvis.featvis_test`, `se` in `lsnb.stats.combine`, `align` in
# `lsnb.correlation.subcluster_pictures`.

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
record = study.record(nets, paper_runs)
show_record(record)
explore.save_results("06_original_code", record=record)

# %%
print(f"[timing] {timer}")
