"""The README's settings table lists every setting, and nothing that is not one."""

import re

from fxhost.settings import Settings, env_name
from restkit import REPO

#: Variables in the table that are not Settings fields (read by the CLI itself).
NOT_SETTINGS = {"FXHOST_DEBUG"}


def test_every_setting_is_in_the_readme_table():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(FXHOST_[A-Z0-9_]+)` \|", section, re.M))
    settings = {env_name(field) for field in Settings.__struct_fields__}
    assert settings - documented == set(), "settings missing from README's table"
    assert documented - settings - NOT_SETTINGS == set(), "README's table names no such setting"
