"""Generated run names ("brave-otter-412"), as MLflow users are used to."""

from __future__ import annotations

import random

_ADJECTIVES = (
    "able agile amber ample bold brave bright brisk calm clever cool crisp curious daring deft eager "
    "fair fancy fast fierce fine firm gentle glad grand happy hardy honest humble jolly keen kind lively "
    "loud lucky merry mighty modest neat nimble noble plucky polite proud quick quiet rapid rare rosy "
    "shiny silent sleek smart snappy solid steady stellar sunny swift tidy vast vivid warm wise witty zesty"
).split()
_NOUNS = (
    "ant ape bass bat bear bee bird boar cat carp colt crab crane crow deer dog dove duck eagle eel elk "
    "finch fish fox frog goat goose gull hare hawk hen heron horse ibis jay koala lamb lark lion lynx mink "
    "mole moth mouse newt otter owl ox panda pig pike puma quail ram raven robin seal shark sheep shrew "
    "skunk sloth snail snake squid stork swan tapir tiger toad trout turtle vole wasp whale wolf wren yak"
).split()


def generate_run_name() -> str:
    r = random.SystemRandom()
    return f"{r.choice(_ADJECTIVES)}-{r.choice(_NOUNS)}-{r.randint(1, 999)}"
