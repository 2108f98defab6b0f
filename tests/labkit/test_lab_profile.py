"""Lab(rabbitmq=...) and LABKIT_RABBITMQ pick the embedded broker's profile; a bad value fails at once."""

import pytest

from labkit.lab import Lab


@pytest.mark.parametrize("profile, version", [("3.10", "3.10.8"), ("4.3", "4.3.0")])
async def test_the_lab_starts_its_broker_in_the_profile_asked_for(monkeypatch, profile, version):
    monkeypatch.delenv("AMQP_URL", raising=False)
    async with Lab(rabbitmq=profile) as lab:
        channel = await lab.channel()
        assert channel.connection.server_properties["version"] == version


def test_the_environment_variable_is_the_default(monkeypatch):
    monkeypatch.setenv("LABKIT_RABBITMQ", "3.10")
    assert Lab().rabbitmq == "3.10"
    assert Lab(rabbitmq="4.3").rabbitmq == "4.3"  # the argument wins


@pytest.mark.parametrize("value", ["3.13", "4", 4.0, ""])
def test_a_bad_profile_names_the_argument_and_the_choices(monkeypatch, value):
    monkeypatch.delenv("LABKIT_RABBITMQ", raising=False)
    with pytest.raises(ValueError, match=r"rabbitmq must be one of '4.3', '3.10'"):
        Lab(rabbitmq=value)


def test_a_bad_environment_variable_is_named(monkeypatch):
    monkeypatch.setenv("LABKIT_RABBITMQ", "5.0")
    with pytest.raises(ValueError, match="LABKIT_RABBITMQ must be one of"):
        Lab()
