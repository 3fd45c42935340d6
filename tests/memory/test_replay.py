"""Short-term memory (MAN §3.1): class queues, balanced sampling, SB3 replay buffer."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from memagent.memory.replay import ClassBalancedReplayBuffer, ClassQueueMemory, queue_slots


def imbalanced_stream(rng, n=20_200, rare=(1, 2, 3), ratio=100):
    """Class 0 is `ratio` times as frequent as each rare class, in random order."""
    n_rare = n // (ratio + len(rare))
    keys = np.concatenate([np.zeros(n - n_rare * len(rare), int)] + [np.full(n_rare, c) for c in rare])
    return rng.permutation(keys)


def test_balanced_shares_from_100_to_1_stream():
    rng = np.random.default_rng(0)
    keys = imbalanced_stream(rng)
    mem = ClassQueueMemory(4, capacity=500, item_shape=(2,), seed=0)
    for chunk in np.array_split(np.arange(len(keys)), 37):  # uneven batch sizes
        mem.add(keys[chunk], np.stack([keys[chunk], chunk], 1).astype(np.float32))
    assert np.bincount(keys)[0] / np.bincount(keys)[1] >= 99
    s = mem.sample(40_000)
    shares = np.bincount(s.keys.numpy(), minlength=4) / 40_000
    np.testing.assert_allclose(shares, 0.25, atol=0.02)
    # items really come from the class they are keyed by, and one-hot keys match
    assert th.equal(s.items[:, 0].long(), s.keys)
    assert th.equal(s.onehot.argmax(1), s.keys) and s.onehot.shape == (40_000, 4)


def test_capacity_and_oldest_dropped_first():
    mem = ClassQueueMemory(3, capacity=5, item_shape=(), seed=1)
    mem.add([0, 1, 0], [0.0, 100.0, 1.0])
    # 12 more items of class 0 in one batch, interleaved with class 2: more than capacity
    keys = np.array([0, 2] * 12)
    vals = np.arange(2, 26, dtype=np.float32)
    mem.add(keys, vals)
    assert mem.counts.tolist() == [5, 1, 5] and len(mem) == 11
    assert mem.seen.tolist() == [14, 1, 12]
    # class 0 received 0, 1, then 2, 4, ..., 24: the newest five survive, oldest first
    assert mem.items_of(0).tolist() == [16.0, 18.0, 20.0, 22.0, 24.0]
    assert mem.items_of(2).tolist() == [17.0, 19.0, 21.0, 23.0, 25.0]
    mem.add([0], [99.0])
    assert mem.items_of(0).tolist() == [18.0, 20.0, 22.0, 24.0, 99.0]
    assert mem.storage.shape == (15,)  # preallocated, never grows


def test_queue_slots_cumcount():
    src, dst, per = queue_slots(np.array([1, 0, 1, 1]), np.array([0, 3]), capacity=4, n_classes=2)
    assert src is None and dst.tolist() == [7, 0, 4, 5]
    src, dst, per = queue_slots(np.array([1, 0, 1, 1]), np.array([0, 1]), capacity=2, n_classes=2)
    assert src.tolist() == [1, 2, 3] and dst.tolist() == [0, 2, 3]  # item 0 would be overwritten
    assert per.tolist() == [1, 3]


def test_bad_input_and_state_roundtrip(tmp_path):
    mem = ClassQueueMemory(4, capacity=3, item_shape=(2, 2), dtype=th.uint8, seed=0)
    with pytest.raises(ValueError, match="empty"):
        mem.sample(4)
    with pytest.raises(ValueError, match=r"n_classes=4"):
        mem.add([4], np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match=r"n_classes=4"):
        mem.add([-1], np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match="shape"):
        mem.add([0], np.zeros((1, 3, 2)))
    with pytest.raises(ValueError, match="capacity"):
        ClassQueueMemory(2, 0, (1,))
    mem.add([0, 3, 3], np.arange(12).reshape(3, 2, 2))
    path = mem.save(tmp_path / "stm.pt")
    back = ClassQueueMemory.load(path)
    assert back.counts.tolist() == mem.counts.tolist() and back.storage.dtype == th.uint8
    assert th.equal(back.sample(16).items, mem.sample(16).items)  # generator state restored
    with pytest.raises(ValueError, match="capacity"):
        ClassQueueMemory(4, 5, (2, 2)).load_state_dict(mem.state_dict())


def test_replay_buffer_balanced_and_keyed_by_state_id():
    obs_space = spaces.Box(0, 1, (3,), np.float32)
    buf = ClassBalancedReplayBuffer(400, obs_space, spaces.Discrete(2), device="cpu", n_envs=2,
                                    n_classes=4)
    assert buf.capacity == 100
    rng = np.random.default_rng(0)
    keys = imbalanced_stream(rng, n=2020).reshape(-1, 2)
    for k in keys:
        obs = np.stack([k, k, k], 1).astype(np.float32)
        buf.add(obs, obs + 1, np.zeros((2, 1)), k.astype(np.float32), np.zeros(2),
                [{"state_id": int(s)} for s in k])
    assert buf.counts.max() <= 100 and buf.size() == int(buf.counts.sum())
    s = buf.sample(8000)
    cls = s.observations[:, 0].long().numpy()
    np.testing.assert_allclose(np.bincount(cls, minlength=4) / 8000, 0.25, atol=0.03)
    assert th.equal(s.rewards[:, 0].long(), s.observations[:, 0].long())
    assert th.equal(s.next_observations, s.observations + 1)
    with pytest.raises(ValueError, match="n_classes=4"):
        buf.add(obs, obs, np.zeros((2, 1)), np.zeros(2), np.zeros(2), [{"state_id": 7}] * 2)


def test_replay_buffer_inside_dqn_keyed_by_action(tmp_path):
    from stable_baselines3 import DQN

    env = gym.make("CartPole-v1")
    model = DQN("MlpPolicy", env, buffer_size=1000, learning_starts=50, batch_size=32,
                train_freq=4, replay_buffer_class=ClassBalancedReplayBuffer,
                policy_kwargs={"net_arch": [16]}, seed=0, device="cpu")
    model.learn(300)
    buf = model.replay_buffer
    assert isinstance(buf, ClassBalancedReplayBuffer) and buf.n_classes == 2
    assert buf.size() == 300 and buf.counts.sum() == 300
    # keyed by action: every stored transition of queue a has action a
    for a in range(2):
        acts = buf.actions.reshape(-1)[a * buf.capacity: a * buf.capacity + buf.counts[a]]
        assert (acts == a).all()
    batch = buf.sample(64)
    assert batch.observations.shape == (64, 4) and batch.actions.shape == (64, 1)
    # SB3's pickle round trip keeps the queues (and no stale views of the old arrays)
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    model.load_replay_buffer(tmp_path / "buffer.pkl")
    back = model.replay_buffer
    assert back is not buf and back.counts.tolist() == buf.counts.tolist()
    back.observations[:] = 7.0  # the flat views must see the restored arrays
    assert (back.sample(16).observations == 7.0).all()
    with pytest.raises(ValueError, match="optimize_memory_usage"):
        ClassBalancedReplayBuffer(100, env.observation_space, env.action_space,
                                  optimize_memory_usage=True, handle_timeout_termination=False)
