import pytest
import torch

from wpnas.data.sources import DataConfig, build_image_splits


@pytest.fixture(scope="session")
def tiny_splits():
    """Real digits at 8x8, a few hundred images: the smallest data the real code paths take."""
    return build_image_splits(DataConfig(image_size=8, train_limit=400, valid_size=0.5))


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
