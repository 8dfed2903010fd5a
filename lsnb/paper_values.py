"""The published values of Tables 1-8 of Hod et al., transcribed once, as data.

One text block per table, laid out like the paper's table (one line per row).
A cell is ``F`` (Fisher statistic), ``F(p)`` (with its p value), ``E±S``
(effect measure ± standard error) or ``-`` (not reported); a column is named
``measure:fisher`` or ``measure:effect``.  :func:`lsnb.report.published`
reads them into one tidy table tagged with table and row; the accuracy bands
of Appendix A.2 (:data:`ACCURACY_BANDS`) are read by :mod:`lsnb.record`.
"""

TABLE_1 = """
network   partitioning        acc_drop:fisher class_range:fisher vis_score:fisher softmax_entropy:fisher
mlp_mnist weights/network     2.13 0.91 1.32 0.92
mlp_mnist weights/layer       2.05 0.91 1.21 1.23
mlp_mnist activations/network 1.46 1.00 1.34 1.15
mlp_mnist activations/layer   1.69 1.03 1.36 1.12
cnn_mnist weights/network     1.29 0.84 1.10 0.93
cnn_mnist weights/layer       1.10 0.94 1.02 0.99
cnn_mnist activations/network 1.73 0.70 1.09 0.90
cnn_mnist activations/layer   1.46 0.92 1.05 0.98
vgg       weights/network     1.50 2.12 1.46 0.99
vgg       weights/layer       1.15 1.27 1.00 0.97
vgg       activations/network 1.40 0.97 2.34 1.08
vgg       activations/layer   1.56 1.03 2.67 1.12
vgg16     weights/network     2.54 0.49 1.72 1.19
vgg16     weights/layer       2.15 0.56 1.90 1.06
vgg16     activations/network 1.89 0.63 1.82 1.07
vgg16     activations/layer   1.66 0.70 1.85 0.98
vgg19     weights/network     -    -    1.91 1.03
vgg19     weights/layer       -    -    2.23 1.00
vgg19     activations/network -    -    1.87 1.10
vgg19     activations/layer   -    -    2.01 0.98
resnet18  weights/network     1.42 1.13 -    -
resnet18  weights/layer       1.29 0.99 -    -
resnet18  activations/network 1.30 0.92 -    -
resnet18  activations/layer   1.31 0.96 -    -
"""

TABLE_2 = """
network   partitioning        acc_drop:effect class_range:effect vis_score:effect softmax_entropy:effect
mlp_mnist weights/network     1.123±0.058 0.701±0.036 1.003±0.004 1.105±0.021
mlp_mnist weights/layer       1.061±0.048 0.676±0.029 1.024±0.004 0.931±0.016
mlp_mnist activations/network 0.883±0.038 0.646±0.024 1.02±0.003  0.997±0.013
mlp_mnist activations/layer   0.929±0.040 0.687±0.025 1.026±0.003 1.011±0.012
cnn_mnist weights/network     0.837±0.048 0.527±0.031 0.998±0.004 1.026±0.008
cnn_mnist weights/layer       0.814±0.046 0.635±0.033 1.004±0.003 1.007±0.007
cnn_mnist activations/network 1.078±0.061 0.543±0.039 0.933±0.006 1.025±0.011
cnn_mnist activations/layer   0.939±0.060 0.625±0.043 0.925±0.005 0.970±0.010
vgg       weights/network     0.682±0.066 0.407±0.042 0.871±0.011 1.124±0.012
vgg       weights/layer       0.808±0.041 0.692±0.033 1.013±0.006 0.992±0.012
vgg       activations/network 0.926±0.032 0.679±0.023 1.327±0.005 0.950±0.009
vgg       activations/layer   0.956±0.030 0.695±0.021 1.379±0.004 0.930±0.008
vgg16     weights/network     1.205±0.050 0.790±0.010 1.043±0.005 0.998±0.001
vgg16     weights/layer       1.168±0.019 0.825±0.005 1.076±0.003 0.991±0.001
vgg16     activations/network 1.129±0.026 0.859±0.006 1.066±0.003 1.000±0.001
vgg16     activations/layer   1.063±0.021 0.876±0.005 1.056±0.003 1.001±0.001
vgg19     weights/network     -           -           1.061±0.004 1.003±0.001
vgg19     weights/layer       -           -           1.099±0.003 1.001±0.001
vgg19     activations/network -           -           1.046±0.003 0.996±0.001
vgg19     activations/layer   -           -           1.081±0.002 1.004±0.001
resnet18  weights/network     0.926±0.045 0.957±0.011 -           -
resnet18  weights/layer       0.971±0.016 0.971±0.004 -           -
resnet18  activations/network 0.979±0.017 0.977±0.004 -           -
resnet18  activations/layer   0.983±0.014 0.967±0.004 -           -
"""

TABLE_3 = """
network   partitioning        acc_drop:fisher acc_drop:effect class_range:fisher class_range:effect
vgg       weights/network     1.50 0.682±0.066 2.12 0.407±0.042
vgg       weights/layer       1.15 0.808±0.041 1.27 0.692±0.033
vgg       activations/network 1.40 0.926±0.032 0.97 0.679±0.023
vgg       activations/layer   1.56 0.956±0.030 1.03 0.695±0.021
vgg_unreg weights/network     1.27 1.033±0.007 1.13 0.995±0.015
vgg_unreg weights/layer       0.94 0.994±0.004 0.92 1.042±0.011
vgg_unreg activations/network 1.48 1.032±0.003 1.25 1.022±0.011
vgg_unreg activations/layer   1.76 1.049±0.003 1.17 1.077±0.010
"""

# Table 4's unregularized rows repeat Table 3's (a slip in the paper, kept as printed).
TABLE_4 = """
network   partitioning        vis_score:fisher vis_score:effect softmax_entropy:fisher softmax_entropy:effect
vgg       weights/network     1.46 0.871±0.011 0.99 1.124±0.012
vgg       weights/layer       1.00 1.013±0.006 0.97 0.992±0.012
vgg       activations/network 2.34 1.327±0.005 1.08 0.950±0.009
vgg       activations/layer   2.67 1.379±0.004 1.12 0.930±0.008
vgg_unreg weights/network     1.27 1.033±0.007 1.13 0.995±0.015
vgg_unreg weights/layer       0.94 0.994±0.004 0.92 1.0424±0.011
vgg_unreg activations/network 1.48 1.032±0.003 1.25 1.022±0.011
vgg_unreg activations/layer   1.76 1.049±0.003 1.17 1.077±0.010
"""

TABLE_5 = """
network k  partitioning        acc_drop:fisher acc_drop:effect class_range:fisher class_range:effect
vgg     8  weights/network     1.85 0.910±0.102 1.94 0.270±0.045
vgg     8  weights/layer       1.03 0.854±0.047 1.17 0.828±0.039
vgg     8  activations/network 1.49 0.966±0.038 0.98 0.748±0.030
vgg     8  activations/layer   1.77 1.051±0.035 0.93 0.752±0.027
vgg     12 weights/network     1.63 0.737±0.078 2.01 0.388±0.045
vgg     12 weights/layer       1.05 0.867±0.042 1.09 0.736±0.035
vgg     12 activations/network 1.44 0.901±0.035 1.04 0.721±0.028
vgg     12 activations/layer   1.57 0.994±0.032 0.96 0.694±0.023
vgg     16 weights/network     1.50 0.682±0.066 2.12 0.407±0.042
vgg     16 weights/layer       1.15 0.808±0.041 1.27 0.692±0.033
vgg     16 activations/network 1.40 0.926±0.032 0.97 0.679±0.023
vgg     16 activations/layer   1.56 0.956±0.030 1.03 0.695±0.021
"""

TABLE_6 = """
network k  partitioning        vis_score:fisher vis_score:effect softmax_entropy:fisher softmax_entropy:effect
vgg     8  weights/network     1.87 1.011±0.016 1.18 1.028±0.017
vgg     8  weights/layer       0.83 0.974±0.005 0.90 1.059±0.015
vgg     8  activations/network 2.61 1.345±0.006 1.02 0.940±0.010
vgg     8  activations/layer   2.72 1.358±0.005 1.06 0.946±0.009
vgg     12 weights/network     1.59 0.959±0.013 0.89 1.106±0.013
vgg     12 weights/layer       0.96 0.993±0.005 1.12 0.945±0.012
vgg     12 activations/network 2.60 1.363±0.005 1.12 0.917±0.009
vgg     12 activations/layer   2.73 1.364±0.004 1.07 0.928±0.008
vgg     16 weights/network     1.46 0.871±0.011 0.99 1.124±0.012
vgg     16 weights/layer       1.00 1.013±0.006 0.97 0.992±0.012
vgg     16 activations/network 2.34 1.327±0.005 1.08 0.950±0.009
vgg     16 activations/layer   2.67 1.379±0.004 1.12 0.930±0.008
"""

TABLE_7 = """
network   partitioning        acc_drop:fisher acc_drop:effect class_range:fisher class_range:effect
mlp_mnist weights/network     2.13(1e-17)  1.123±0.058 0.91(0.82)  0.701±0.036
mlp_mnist weights/layer       2.05(5e-27)  1.061±0.048 0.91(0.91)  0.676±0.029
mlp_mnist activations/network 1.46(2e-11)  0.883±0.038 1.00(0.56)  0.646±0.024
mlp_mnist activations/layer   1.69(6e-22)  0.929±0.040 1.03(0.32)  0.687±0.025
cnn_mnist weights/network     1.29(2e-5)   0.837±0.048 0.84(0.98)  0.527±0.031
cnn_mnist weights/layer       1.10(0.063)  0.814±0.046 0.94(0.82)  0.635±0.033
cnn_mnist activations/network 1.73(4e-10)  1.078±0.061 0.70(1.00)  0.543±0.039
cnn_mnist activations/layer   1.46(2e-7)   0.939±0.060 0.92(0.84)  0.625±0.043
vgg       weights/network     1.50(4e-8)   0.682±0.066 2.12(2e-29) 0.407±0.042
vgg       weights/layer       1.15(0.021)  0.808±0.041 1.27(2e-4)  0.692±0.033
vgg       activations/network 1.40(2e-11)  0.926±0.032 0.97(0.85)  0.679±0.023
vgg       activations/layer   1.56(2e-23)  0.956±0.030 1.03(0.27)  0.695±0.021
vgg16     weights/network     2.54(3e-23)  1.205±0.050 0.49(1.00)  0.790±0.010
vgg16     weights/layer       2.15(2e-57)  1.168±0.019 0.56(1.00)  0.825±0.005
vgg16     activations/network 1.89(1e-19)  1.129±0.026 0.63(1.00)  0.859±0.006
vgg16     activations/layer   1.66(2e-24)  1.063±0.021 0.70(1.00)  0.876±0.005
resnet18  weights/network     1.42(3e-4)   0.926±0.045 1.13(0.13)  0.957±0.011
resnet18  weights/layer       1.29(4e-9)   0.971±0.015 0.99(0.55)  0.971±0.004
resnet18  activations/network 1.30(6e-7)   0.979±0.017 0.92(0.92)  0.977±0.004
resnet18  activations/layer   1.31(5e-10)  0.971±0.015 0.96(0.794) 0.967±0.004
"""

TABLE_8 = """
network   partitioning        vis_score:fisher vis_score:effect softmax_entropy:fisher softmax_entropy:effect
mlp_mnist weights/network     1.32(0.001)  1.003±0.004 0.92(0.71)  1.105±0.021
mlp_mnist weights/layer       1.21(0.002)  1.024±0.004 1.23(0.023) 0.931±0.016
mlp_mnist activations/network 1.34(4e-5)   1.020±0.003 1.15(0.025) 0.997±0.013
mlp_mnist activations/layer   1.36(9e-7)   1.026±0.003 1.12(0.013) 1.011±0.012
cnn_mnist weights/network     1.10(0.082)  0.998±0.004 0.93(0.86)  1.026±0.008
cnn_mnist weights/layer       1.02(0.34)   1.004±0.003 0.99(0.52)  1.007±0.007
cnn_mnist activations/network 1.09(0.27)   0.933±0.006 0.90(0.83)  1.025±0.011
cnn_mnist activations/layer   1.05(0.22)   0.925±0.005 0.98(0.67)  0.970±0.010
vgg       weights/network     1.46(7e-8)   0.871±0.011 0.99(0.61)  1.124±0.012
vgg       weights/layer       1.00(0.44)   1.013±0.006 0.97(0.62)  0.992±0.012
vgg       activations/network 2.34(6e-64)  1.327±0.005 1.08(0.045) 0.950±0.009
vgg       activations/layer   2.67(8e-121) 1.379±0.004 1.12(0.013) 0.930±0.008
vgg16     weights/network     1.72(6e-8)   1.043±0.005 1.19(0.052) 0.998±0.001
vgg16     weights/layer       1.90(3e-39)  1.076±0.003 1.06(0.16)  0.991±0.001
vgg16     activations/network 1.83(3e-15)  1.066±0.003 1.07(0.21)  1.000±0.001
vgg16     activations/layer   1.85(1e-34)  1.056±0.003 0.98(0.63)  1.001±0.001
vgg19     weights/network     1.91(2e-10)  1.061±0.004 1.03(0.40)  1.003±0.001
vgg19     weights/layer       2.23(4e-81)  1.099±0.003 1.00(0.46)  1.001±0.001
vgg19     activations/network 1.87(6e-22)  1.046±0.003 1.10(0.089) 0.996±0.001
vgg19     activations/layer   2.01(3e-27)  1.081±0.002 0.98(0.65)  1.004±0.001
"""

#: Every table by its number in the paper.
TABLES = {1: TABLE_1, 2: TABLE_2, 3: TABLE_3, 4: TABLE_4, 5: TABLE_5, 6: TABLE_6, 7: TABLE_7, 8: TABLE_8}

#: Test accuracy of the paper's trained networks (Appendix A.2), lowest and highest over replicates.
#: The VGG's band is on CIFAR-10; the paper reports none for the unregularized VGG or halves-MNIST.
ACCURACY_BANDS = {
    "mlp_mnist": (0.976, 0.982),
    "cnn_mnist": (0.991, 0.994),
    "vgg": (0.828, 0.866),
}
