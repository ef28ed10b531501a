"""The layer a layer-dependent quantization rule looks at (llama-quant.cpp `layer_info`, ik_llama.cpp's copy):
dense models use the running counter of that tensor kind; MoE models (n_expert > 1) parse blk.N from the name and
refuse names without one or with a block outside [0, block_count)."""
import pytest

from inspector.errors import QuantizeError
from inspector.quant.rules import ModelFacts, layer_info

DENSE = ModelFacts("llama", n_layer_all=28, n_head=24, n_head_kv=8, n_expert=0)
MOE = ModelFacts("qwen3moe", n_layer_all=48, n_head=32, n_head_kv=4, n_expert=128)


def test_dense_models_count_tensors_not_names() -> None:
    assert layer_info(DENSE, 5, "blk.20.ffn_down.weight", "llama-quantize") == (5, 28)


def test_moe_models_read_the_block_from_the_name() -> None:
    assert layer_info(MOE, 0, "blk.47.ffn_down_exps.weight", "llama-quantize") == (47, 48)


@pytest.mark.parametrize("quantizer", ["llama-quantize", "ik_llama.cpp's llama-quantize"])
def test_moe_names_without_a_valid_block_are_refused(quantizer: str) -> None:
    with pytest.raises(QuantizeError, match=rf"^{quantizer} cannot determine the layer of tensor 'ffn_down.weight'"):
        layer_info(MOE, 0, "ffn_down.weight", quantizer)
    with pytest.raises(QuantizeError, match=r"layer 48 is outside \[0, 48\) \(qwen3moe.block_count is 48\)"):
        layer_info(MOE, 0, "blk.48.ffn_down_exps.weight", quantizer)
