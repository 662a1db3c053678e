"""`make demo` never waits minutes for a vastsim boot that takes seconds."""

from __future__ import annotations

from providers.settings import parse_settings
from workflow import demo


def test_the_demo_gives_up_within_a_minute_but_well_after_vastsims_boot() -> None:
    settings = parse_settings({**demo.SETTINGS, "sshPublicKey": "ssh-ed25519 AAAA demo"})
    worst = settings.ready_timeout_s * settings.max_attempts
    assert worst <= 60, f"a stuck demo boot would wait {worst:.0f} s"
    assert settings.ready_timeout_s >= 5 * (demo.BOOT_SECONDS + 1)  # room on a busy machine
