"""Random container names in Docker's "adjective_noun" style, from our own word lists:
things one keeps in a box, and how they might be."""

from __future__ import annotations

import os

ADJECTIVES = (
    "amber", "brave", "bright", "calm", "clever", "cosy", "crisp", "eager", "fierce", "gentle",
    "glad", "golden", "happy", "hidden", "honest", "humble", "jolly", "keen", "kind", "lively",
    "lucky", "merry", "mighty", "modest", "nimble", "noble", "patient", "plucky", "polite",
    "proud", "quiet", "quick", "rapid", "serene", "sharp", "shy", "silent", "sleepy", "smart",
    "snug", "steady", "sturdy", "swift", "tidy", "tiny", "trusty", "vivid", "warm", "wise",
    "witty",
)
NOUNS = (
    "acorn", "anchor", "badger", "beacon", "bramble", "button", "candle", "cedar", "comet",
    "compass", "cricket", "crystal", "ember", "falcon", "feather", "fern", "garnet", "harbor",
    "heron", "juniper", "kettle", "lantern", "lark", "lotus", "magnet", "maple", "marble",
    "meadow", "nectar", "otter", "pebble", "pepper", "pine", "quartz", "quill", "raven",
    "ribbon", "saffron", "sparrow", "spindle", "thimble", "thistle", "tulip", "walnut",
    "willow", "wren", "yarrow", "zephyr", "hazel", "cobalt",
)


def random_name(with_number: bool = False) -> str:
    r = int.from_bytes(os.urandom(4), "little")
    name = f"{ADJECTIVES[r % len(ADJECTIVES)]}_{NOUNS[(r >> 8) % len(NOUNS)]}"
    return f"{name}{(r >> 16) % 10}" if with_number else name
