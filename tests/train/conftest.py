import pytest

from wpnas.data.sources import DataConfig, build_image_splits


@pytest.fixture(scope="session")
def tiny_splits():
    """Real digits at 8x8, a few hundred images: the smallest data the real code paths take."""
    return build_image_splits(DataConfig(image_size=8, train_limit=400, valid_size=0.5))

