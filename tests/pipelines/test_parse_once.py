"""The glue parses each parameter section once per process (pipelines/params.py: parsed_once)."""

import pytest

from wpnas.errors import ConfigError
from wpnas.pipelines.params import run_config, search_config, space_config


def test_a_section_is_parsed_once_and_a_bad_one_fails_every_time():
    search = {"method": "random_search", "random_search": {"num_archs": 5}, "checkpoint_every": 2}
    first = search_config(search)
    assert search_config(dict(search)) is first  # same content, same typed config
    assert search_config({**search, "epochs": 3}) is not first
    assert space_config({"name": "nats_tss"})[1] is space_config({"name": "nats_tss"})[1]
    assert run_config({"seed": 1}) is run_config({"seed": 1}) != run_config({"seed": 2})
    for _ in range(2):
        with pytest.raises(ConfigError, match="search.random_search: unknown setting"):
            search_config({"random_search": {"num_arch": 5}})
