"""engine.flops must equal an independent counter (ptflops, aten backend) exactly."""
from __future__ import annotations

import random

import pytest
import torch
from ptflops import get_model_complexity_info

from engine.errors import PfsError
from engine.flops import count_macs, count_params, dense_macs
from engine.gating import create_model
from sample_models import list_models

SMALL_INPUT = {"resnet50": (3, 64, 64), "mobilenet_v1": (3, 64, 64), "mobilenet_v2_imagenet": (3, 64, 64)}


def ptflops_count(model, size):
    model.eval()
    macs, params = get_model_complexity_info(model, tuple(size), as_strings=False, backend="aten",
                                             print_per_layer_stat=False, verbose=False)
    gates = sum(g.weight.numel() for g in model.gates().values())
    return macs, params - gates


def random_widths(model, rng):
    return {g: rng.randint(1, w) for g, w in model.widths.items()}


@pytest.mark.parametrize("name", list_models())
def test_macs_and_params_match_ptflops_dense_and_random_widths(name):
    rng = random.Random(name)
    size = SMALL_INPUT.get(name, (3, 32, 32))
    dense = create_model(name)
    assert (count_macs(dense, size), count_params(dense)) == ptflops_count(dense, size)
    for _ in range(2):
        widths = random_widths(dense, rng)
        pruned = create_model(name, widths=widths)
        assert (count_macs(pruned, size), count_params(pruned)) == ptflops_count(pruned, size)
        # counting the dense model "at" other widths is what search does: no rebuild
        assert count_macs(dense, size, widths=widths) == count_macs(pruned, size)
        assert count_params(dense, widths) == count_params(pruned)


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_shortcut_variants_and_expansion_match_ptflops(shortcut):
    for m in (create_model("resnet20", shortcut=shortcut, expand=1.5),
              create_model("resnet20", shortcut=shortcut, in_channels=1, num_classes=7)):
        size = (m.in_channels, 28, 28)
        assert (count_macs(m, size), count_params(m)) == ptflops_count(m, size)


def test_reference_sizes_from_the_paper():
    # shortcut B (1x1 projection + BN, the official code's) is the default; A stays selectable
    assert count_macs(create_model("resnet56")) == 125_747_850
    assert count_macs(create_model("resnet56", shortcut="A")) == 125_485_706
    assert round(count_macs(create_model("resnet110")) / 1e6) == 253
    assert round(count_macs(create_model("vgg16")) / 1e6, 1) == 313.2
    with torch.device("meta"):
        r50 = create_model("resnet50", num_classes=1000)
        mb1 = create_model("mobilenet_v1", num_classes=1000)
        mb2 = create_model("mobilenet_v2_imagenet", num_classes=1000)
    assert round(count_macs(r50) / 1e9, 2) == 4.09
    assert round(count_macs(mb1) / 1e6, 1) == 568.7
    # torchvision's MobileNet-V2 counts 300,775,272 MACs and 3,504,872 params with ptflops (aten)
    assert (count_macs(mb2), count_params(mb2)) == (300_775_272, 3_504_872)


def test_default_resnet56_is_shortcut_b_and_matches_ptflops():
    m = create_model("resnet56")
    assert m.spec["arch"]["shortcut"] == "B"
    assert (count_macs(m), count_params(m)) == ptflops_count(m, (3, 32, 32))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v1", "mobilenet_v2_imagenet"])
def test_imagenet_models_match_ptflops_at_224(name):
    m = create_model(name, num_classes=1000)
    assert (count_macs(m), count_params(m)) == ptflops_count(m, (3, 224, 224))


def test_dense_macs_ignore_expansion_and_pruning():
    wide = create_model("resnet20", expand=2.0)
    assert dense_macs(wide) == count_macs(create_model("resnet20"))
    assert count_macs(wide) > 3.5 * dense_macs(wide)


def test_bad_input_sizes_are_clear_errors():
    m = create_model("resnet20")
    with pytest.raises(PfsError, match="channels"):
        count_macs(m, (1, 32, 32))
    with pytest.raises(PfsError, match="C,H,W"):
        count_macs(m, (3, 32))


@pytest.mark.parametrize("name", ["vgg16", "mobilenet_v1"])
def test_fashion_mnist_sized_inputs_reaching_1x1_maps_are_counted(name):
    # 28x28 pools down to a 1x1 map: the trace must not trip over BN's batch statistics
    m = create_model(name, in_channels=1)
    assert (count_macs(m, (1, 28, 28)), count_params(m)) == ptflops_count(m, (1, 28, 28))
    if name == "vgg16":  # four max-pools cannot take a 4x4 image
        with pytest.raises(PfsError, match="too small"):
            count_macs(create_model(name), (3, 4, 4))
