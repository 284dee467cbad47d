import pytest

from slimvision.config import parse_count
from slimvision.errors import ConfigError
from slimvision.registry import Registry


def test_registry_refuses_duplicate_names():
    reg = Registry("thing")
    reg.add("a", 1)
    with pytest.raises(ConfigError, match="already registered"):
        reg.add("a", 2)
    assert reg.get("a") == 1


def test_registry_unknown_name_lists_known():
    reg = Registry("thing")
    reg.add("alpha", 1)
    with pytest.raises(ConfigError, match="known: alpha"):
        reg.get("beta")


@pytest.mark.parametrize("text,value", [("30M", 30e6), ("1.5G", 1.5e9), ("250k", 250e3), ("1200", 1200.0), (7, 7.0)])
def test_parse_count_suffixes(text, value):
    assert parse_count(text) == value


def test_parse_count_rejects_garbage():
    with pytest.raises(ConfigError, match="cannot read"):
        parse_count("lots")
