"""Setting an episode's cue (what the agent must remember): reset(options={"cue": c}) and
engine.queue_cues, used by `memagent render` to play one episode per cue."""

import gymnasium as gym
import numpy as np
import pytest
from memagent.envs import make_vec

import memagent  # noqa: F401


def _cue(engine):
    """The cue value of world 0, read back from the world's own state."""
    if hasattr(engine, "items"):
        return int("".join(map(str, engine.items[0])), 2)
    return int((engine.key if hasattr(engine, "key") else engine.cue)[0])


@pytest.mark.parametrize(("env_id", "n_values"), [("memagent/TMaze-v0", 2),
                                                  ("memagent/KeyDoor-v0", 3),
                                                  ("memagent/RecallSequence-v0", 8)])
def test_reset_option_sets_the_cue(env_id, n_values):
    env = gym.make(env_id)
    engine = env.unwrapped.engine
    assert engine.n_cue_values == n_values
    for c in reversed(range(n_values)):
        env.reset(seed=0, options={"cue": c})
        assert _cue(engine) == c
    seen = {(env.reset(seed=s), _cue(engine))[1] for s in range(40)}  # no option: random again
    assert len(seen) > 1


def test_queued_cues_go_to_the_next_resets_and_leave_the_rest_of_the_episode_alone():
    plain = make_vec("memagent/KeyDoor-v0", 2, seed=4)
    queued = make_vec("memagent/KeyDoor-v0", 2, seed=4)
    queued.engine.queue_cues([2, 0, 1])
    plain.reset(), queued.reset()  # both worlds reset: cues 2, 0; cue 1 waits
    assert list(queued.engine.key) == [2, 0]
    np.testing.assert_array_equal(plain.engine.region, queued.engine.region)  # same distractors
    np.testing.assert_array_equal(plain.engine.doors, queued.engine.doors)  # same door order
    for _ in range(60):  # the next episode to start takes cue 1 (moving up: the 42-step limit)
        _, _, dones, _ = queued.step(np.zeros(2, dtype=np.int64))
        if dones.any():
            assert queued.engine.key[np.flatnonzero(dones)[0]] == 1
            break
    else:
        pytest.fail("no episode ended")


def test_cue_errors():
    with pytest.raises(ValueError, match="has no cue to set"):
        gym.make("memagent/Screens-v0").reset(options={"cue": 0})
    with pytest.raises(ValueError, match=r"cues must be in 0..1, got 2"):
        gym.make("memagent/TMaze-v0").reset(options={"cue": 2})
