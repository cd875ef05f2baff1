"""What a data source is made of, known before loading (data/sources.py): the parameter checks'
image shape and number of classes."""

from wpnas.data.sources import DataConfig, expected_input_shape, expected_num_classes
from wpnas.pipelines.params import _input_shape, _num_classes


def test_source_facts_and_an_image_folder_counts_its_classes(tmp_path):
    assert expected_input_shape(DataConfig(source="digits")) == (1, 8, 8)
    assert expected_input_shape(DataConfig(source="cifar100", image_size=16)) == (3, 16, 16)
    assert expected_num_classes(DataConfig(source="cifar100")) == 100
    folder = DataConfig(source="image_folder", root=str(tmp_path), image_size=12)
    assert expected_num_classes(folder) == 0 and expected_input_shape(DataConfig(source="image_folder")) is None
    for name in ("cat", "dog", "owl", ".hidden"):
        (tmp_path / "train" / name).mkdir(parents=True)
    assert expected_num_classes(folder) == 3  # train/<class>, not a guess of 10
    params = {"data": {"source": "image_folder", "root": str(tmp_path), "image_size": 12}}
    assert _input_shape(params) == (3, 12, 12) and _num_classes(params) == 3
    missing = {"data": {"source": "image_folder", "root": str(tmp_path / "absent"), "image_size": 12}}
    assert _input_shape(missing) is None  # unknown classes: the checks that need the head skip
