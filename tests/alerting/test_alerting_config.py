"""The ``alerting`` section: the example documents the defaults; bad receivers are named."""

import pytest
from pydantic import ValidationError

from collector.configfile import load_config
from schemas.alerting import AlertingConfig, EmailReceiver, SlackReceiver
from tests.paths import EXAMPLES


def test_example_alerting_section_is_the_defaults():
    assert load_config(EXAMPLES / "collector.yaml").alerting == AlertingConfig()


def test_console_is_the_default_receiver():
    config = AlertingConfig()
    assert config.route.receiver == "console"
    assert config.receiver("console").console is not None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"route": {"receiver": "pager"}}, "route receiver 'pager' is not defined"),
        ({"route": {"routes": [{"receiver": "x", "match": {"a": "b"}}]}}, "receiver 'x'"),
        ({"receivers": [{"name": "a", "console": {}}] * 2}, "two receivers share a name"),
        ({"receivers": [{"name": "a"}]}, "give exactly one of slack, email, console"),
        ({"route": {"continue": True}}, "Extra inputs are not permitted"),
    ],
)
def test_bad_alerting_sections(data, message):
    with pytest.raises(ValidationError) as info:
        AlertingConfig.model_validate(data)
    assert message in str(info.value)


def test_receiver_options():
    with pytest.raises(ValidationError, match="set webhook_url, or bot_token and channel"):
        SlackReceiver()
    with pytest.raises(ValidationError, match="a bot_token needs a channel"):
        SlackReceiver(bot_token="x")
    base = {"host": "h", "sender": "a@b", "to": ["c@d"]}
    with pytest.raises(ValidationError, match="choose starttls: true or tls: true"):
        EmailReceiver(**base, tls=True, starttls=True)
    assert EmailReceiver(**base, tls=True, port=465).starttls is False
    with pytest.raises(ValidationError, match="username and password go together"):
        EmailReceiver(**base, username="u")
