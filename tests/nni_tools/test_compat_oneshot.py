"""The one-shot fixes of the compat module: NNI's own Lightning one-shot loop trains the supernet space,
reproducibly, and its weight-keeping ``freeze`` works."""

from __future__ import annotations

import warnings

import pytest
import torch

from nni_asenas.imagenet import space as mobilenet
from nni_asenas.imagenet.supernet import MobileNetSupernet, MobileNetSupernetSpace
from nni_asenas.nni_tools.compat import SeededRandomOneShot, SeededRandomSamplingModule

warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module.*")


def _train_with_nni(seed: int) -> tuple[list[dict], dict[str, torch.Tensor], MobileNetSupernetSpace]:
    import nni
    from nni.nas.evaluator.pytorch import Classification, DataLoader

    torch.manual_seed(0)
    space = MobileNetSupernetSpace(width_mult=0.25, num_classes=3)
    strategy = SeededRandomOneShot(seed=seed)
    strategy.mutate_model(space)
    before = {key: value.clone() for key, value in space.state_dict().items()}
    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(8) % 3
    data = nni.trace(torch.utils.data.TensorDataset)(images, labels)
    evaluator = Classification(train_dataloaders=DataLoader(data, batch_size=4),
                               val_dataloaders=DataLoader(data, batch_size=4), num_classes=3, max_epochs=1,
                               limit_val_batches=0, accelerator="cpu", devices=1, logger=False,
                               enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                               export_onnx=False)
    oneshot = strategy.mutate_evaluator(evaluator)
    module = oneshot.module
    assert isinstance(module, SeededRandomSamplingModule)
    samples: list[dict] = []
    resample = module.resample

    def recording() -> dict:
        samples.append(resample())
        return samples[-1]

    module.resample = recording  # type: ignore[method-assign]
    oneshot.evaluate(space)
    changed = {key for key, value in space.state_dict().items() if not torch.equal(value, before[key])}
    return samples, {key: space.state_dict()[key] for key in sorted(changed)}, space


@pytest.mark.slow  # three Lightning fits: a minute or two on two cores
def test_nni_one_shot_loop_trains_the_supernet_space_reproducibly() -> None:
    samples, changed, space = _train_with_nni(seed=4)
    assert len(samples) == 2 and samples[0] != samples[1]
    assert set(samples[0]) == set(mobilenet.decisions())
    assert any(key.startswith("stages.") and key.endswith("weight") for key in changed)  # shared weights trained
    again, changed_again, _ = _train_with_nni(seed=4)
    assert again == samples
    assert changed.keys() == changed_again.keys()
    assert all(torch.equal(changed[key], changed_again[key]) for key in changed)
    other, _, _ = _train_with_nni(seed=5)
    assert other != samples
    # the trained space is what the package's supernet wraps and extracts from
    supernet = MobileNetSupernet(space=space).eval()
    arch = samples[1]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        supernet.activate(arch)
        assert torch.equal(supernet.extract(arch).eval()(x), supernet(x))


def test_seeded_sampling_is_reproducible_and_drives_every_layer() -> None:
    from nni.nas.evaluator.pytorch.lightning import ClassificationModule

    space = MobileNetSupernetSpace(width_mult=0.25, num_classes=3)
    SeededRandomOneShot(seed=0).mutate_model(space)

    def draws(seed: int) -> list[dict]:
        training = ClassificationModule(num_classes=3, export_onnx=False)
        training.set_model(space)
        module = SeededRandomSamplingModule(training, seed=seed)
        return [module.resample() for _ in range(3)]

    first = draws(7)
    assert first == draws(7) and first != draws(8) and len({repr(s) for s in first}) == 3
    supernet = MobileNetSupernet(space=space).eval()  # wrapping activates the largest; make the last draw active again
    training = ClassificationModule(num_classes=3, export_onnx=False)
    training.set_model(space)
    module = SeededRandomSamplingModule(training, seed=7)
    sample = [module.resample() for _ in range(3)][-1]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = supernet(x)
        assert torch.equal(supernet.extract(sample).eval()(x), out)
