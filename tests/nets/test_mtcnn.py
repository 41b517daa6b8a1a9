"""MTCNN networks: output shapes, input normalisation, the dense layers' order, strict loading."""
from __future__ import annotations

import pytest
import torch

from mmer.nets.mtcnn import (
    WEIGHT_FILES,
    MtcnnWeightError,
    ONet,
    PNet,
    RNet,
    load_mtcnn,
    normalise,
)
from mmer.nets.ported import load_state_strict

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread


def _random_nets() -> tuple[PNet, RNet, ONet]:
    torch.manual_seed(0)
    return PNet().eval(), RNet().eval(), ONet().eval()


def test_network_output_shapes():
    pnet, rnet, onet = _random_nets()
    with torch.no_grad():
        prob, off = pnet(torch.randn(2, 3, 50, 40))
        assert prob.shape == (2, 20, 15) and off.shape == (2, 4, 20, 15)
        assert pnet(torch.randn(1, 3, 12, 12))[0].shape == (1, 1, 1)
        prob, off = rnet(torch.randn(5, 3, 24, 24))
        assert prob.shape == (5,) and off.shape == (5, 4)
        prob, off, marks = onet(torch.randn(3, 3, 48, 48))
        assert prob.shape == (3,) and off.shape == (3, 4) and marks.shape == (3, 10)
    assert torch.all((prob >= 0) & (prob <= 1))


def test_normalise_maps_pixels_to_unit_range():
    x = torch.tensor([0, 127.5, 255.0]).view(1, 3, 1, 1)
    assert torch.allclose(normalise(x).flatten(), torch.tensor([-127.5 / 128, 0.0, 127.5 / 128]))


def test_dense_layers_read_features_in_channel_width_height_order():
    # The converted Caffe dense weights expect (C, W, H) flattening; see mmer.nets.mtcnn.
    x = torch.arange(2 * 2 * 3, dtype=torch.float32).view(1, 2, 2, 3)   # (B, C, H, W)
    flat = RNet().features.flatten(x)
    assert flat[0, :6].tolist() == [x[0, 0, h, w].item() for w in range(3) for h in range(2)]


def test_strict_loading_reports_missing_and_unexpected_keys():
    state = RNet().state_dict()
    del state["conv5_2.bias"]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(MtcnnWeightError) as err:
        load_state_strict(RNet(), state, "mtcnn_rnet.pt", error=MtcnnWeightError)
    message = str(err.value)
    assert "mtcnn_rnet.pt" in message and "conv5_2.bias" in message and "extra.weight" in message


def test_strict_loading_refuses_a_shape_mismatch():
    state = PNet().state_dict()
    state["conv4_1.weight"] = torch.zeros(3, 32, 1, 1)
    with pytest.raises(MtcnnWeightError, match="conv4_1.weight"):
        load_state_strict(PNet(), state, "mtcnn_pnet.pt", error=MtcnnWeightError)


def test_load_mtcnn_round_trip_and_missing_key_names_the_file(tmp_path, caplog):
    nets = _random_nets()
    for net, key in zip(nets, ("pnet", "rnet", "onet"), strict=True):
        torch.save(net.state_dict(), tmp_path / WEIGHT_FILES[key])
    loaded = load_mtcnn(tmp_path)
    assert "mtcnn_pnet.pt: SHA-256" in caplog.text  # random weights are not the tested file
    assert torch.equal(loaded[2].conv6_3.weight, nets[2].conv6_3.weight)
    assert not loaded[0].training
    state = nets[2].state_dict()
    del state["features.prelu5.weight"]
    torch.save(state, tmp_path / WEIGHT_FILES["onet"])
    with pytest.raises(MtcnnWeightError, match=r"mtcnn_onet\.pt.*features\.prelu5\.weight"):
        load_mtcnn(tmp_path)


def test_load_mtcnn_missing_file_says_what_to_put_where(tmp_path):
    with pytest.raises(MtcnnWeightError, match="mtcnn_pnet.pt"):
        load_mtcnn(tmp_path)
