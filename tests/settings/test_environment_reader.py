"""The one prefixed-environment reader: each getter's value, default, and the message for a
value it cannot read, which names the variable and repeats the value."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import pytest

from ordertasks.handlers.environment import PrefixedEnvironment
from ordertasks.handlers.errors import ConfigurationError


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


def reader(**variables: str) -> PrefixedEnvironment:
    return PrefixedEnvironment({f"ORDERTASKS_{k}": v for k, v in variables.items()})


def refusal(call: object) -> str:
    assert callable(call)
    with pytest.raises(ConfigurationError) as raised:
        call()
    return str(raised.value)


def test_text_is_the_value_and_unset_or_empty_is_the_default() -> None:
    env = reader(HOST="relay.example", EMPTY="")
    assert env.text("HOST") == "relay.example"
    assert env.text("EMPTY", "fallback") == "fallback"
    assert env.text("MISSING") is None


def test_the_prefix_is_part_of_the_name_and_unprefixed_reads_foreign_variables() -> None:
    env = PrefixedEnvironment({"HOST": "bare", "ORDERTASKS_HOST": "ours", "CLOUD_TASKS_EMULATOR_HOST": "h:1"})
    assert env.text("HOST") == "ours"
    assert env.unprefixed().text("CLOUD_TASKS_EMULATOR_HOST") == "h:1"
    assert env.variable("SMTP_PORT") == "ORDERTASKS_SMTP_PORT"


@pytest.mark.parametrize("word, value", [("true", True), ("ON", True), (" Yes ", True), ("1", True),
                                         ("false", False), ("Off", False), ("no", False), ("0", False)])
def test_flag_accepts_the_eight_words_in_any_case(word: str, value: bool) -> None:
    assert reader(VERIFY=word).flag("VERIFY", not value) is value


@pytest.mark.parametrize("word", ["enabled", "y", "ture", "2", "t", "required"])
def test_an_unknown_boolean_names_the_variable_and_the_words(word: str) -> None:
    message = refusal(lambda: reader(OIDC_VERIFY=word).flag("OIDC_VERIFY", True))
    assert message.startswith(f"ORDERTASKS_OIDC_VERIFY={word!r} is not a boolean: use one of true/false")


def test_an_unset_flag_is_its_default() -> None:
    assert reader().flag("OIDC_VERIFY", True) is True
    assert reader(OIDC_VERIFY="").flag("OIDC_VERIFY", False) is False


def test_number_reads_floats_and_whole_numbers() -> None:
    env = reader(TIMEOUT="2.5", PORT=" 587 ")
    assert env.number("TIMEOUT", 10.0) == 2.5
    assert env.whole("PORT", 25) == 587 and isinstance(env.whole("PORT", 25), int)
    assert env.number("MISSING", 10.0) == 10.0


@pytest.mark.parametrize("value", ["x", "5s", "1,5", "ten"])
def test_a_bad_number_names_the_variable(value: str) -> None:
    message = refusal(lambda: reader(SMTP_TIMEOUT=value).number("SMTP_TIMEOUT", 10.0))
    assert message == f"ORDERTASKS_SMTP_TIMEOUT={value!r} is not a number: give a number, e.g. 10"


def test_a_fraction_is_not_a_whole_number() -> None:
    message = refusal(lambda: reader(SMTP_PORT="587.5").whole("SMTP_PORT", 1025))
    assert message == "ORDERTASKS_SMTP_PORT='587.5' is not a number: give a whole number, e.g. 1025"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_not_a_finite_number_is_refused(value: str) -> None:
    message = refusal(lambda: reader(DELAY_SCALE=value).number("DELAY_SCALE", 1.0))
    assert f"ORDERTASKS_DELAY_SCALE={value!r} is not a number" in message


def test_ranges_are_checked_and_named() -> None:
    assert "use a number from 1 to 65535" in refusal(lambda: reader(P="0").whole("P", 1, minimum=1, maximum=65535))
    assert "use a number of at least 0" in refusal(lambda: reader(S="-1").number("S", 1.0, minimum=0))
    assert "greater than 0" in refusal(lambda: reader(T="0").number("T", 1.0, positive=True))
    assert reader(T="0.01").number("T", 1.0, positive=True) == 0.01


def test_path_expands_the_home_directory(tmp_path: Path) -> None:
    assert reader(DIR=str(tmp_path)).path("DIR") == tmp_path
    assert reader(DIR="~/state").path("DIR") == Path.home() / "state"
    assert reader().path("DIR", tmp_path) == tmp_path


def test_names_splits_on_commas_and_drops_empty_items() -> None:
    assert reader(EMAILS=" a@x.example, ,b@x.example ,").names("EMAILS") == ("a@x.example", "b@x.example")
    assert reader().names("EMAILS") == ()


def test_choice_is_exact_and_lists_the_accepted_values() -> None:
    assert reader(COLOUR="blue").choice("COLOUR", Colour, Colour.RED, what="a colour") is Colour.BLUE
    assert reader().choice("COLOUR", Colour, Colour.RED, what="a colour") is Colour.RED
    message = refusal(lambda: reader(COLOUR="Blue").choice("COLOUR", Colour, Colour.RED, what="a colour",
                                                           note=" (paint)"))
    assert message == "ORDERTASKS_COLOUR='Blue' is not a colour: use red or blue (paint)"
