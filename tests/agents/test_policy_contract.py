"""SB3's policy contract on MemoryActorCriticPolicy: what goes through the memory, what raises."""

import numpy as np
import pytest
import torch
from memagent.envs import make_vec
from stable_baselines3 import PPO

from memagent.policies import MemoryActorCriticPolicy

ENV = "memagent/TMaze-v0"


def _policy(memory="gru"):
    torch.manual_seed(0)
    env = make_vec(ENV, 2, seed=0)
    return MemoryActorCriticPolicy(env.observation_space, env.action_space, lambda _: 1e-3,
                                   memory=memory), env


def _episode(env, steps=6):
    """Observations ``(steps, 2, ...)`` of the first steps of two fresh episodes."""
    obs = [env.reset()]
    for _ in range(steps - 1):
        obs.append(env.step([0, 0])[0])  # action 0 every step: no episode ends this soon
    return torch.as_tensor(np.stack(obs))


@pytest.mark.parametrize("memory", ["gru", "hopfield"])
def test_get_distribution_and_predict_values_read_the_memory(memory):
    policy, env = _policy(memory)
    obs = _episode(env)  # (T, B, ...)
    T, B = obs.shape[:2]
    starts = torch.zeros(T, B)
    starts[0] = 1.0
    state = policy.initial_state(B)
    with torch.no_grad():
        values, _, _ = policy.evaluate_sequence(obs, torch.zeros(T * B), state, starts)
        logits = policy.action_net(policy._latent(obs, state, starts)[0])  # (T*B, n_actions)
        s = state
        for t in range(T):  # step by step, carrying the state forward() returns
            dist = policy.get_distribution(obs[t], s, starts[t])
            v = policy.predict_values(obs[t], s, starts[t])
            torch.testing.assert_close(dist.distribution.logits,
                                       torch.log_softmax(logits[t * B:(t + 1) * B], -1))
            torch.testing.assert_close(v, values[t * B:(t + 1) * B], atol=1e-5, rtol=1e-4)
            _, _, _, s = policy(obs[t], s, starts[t])
        # the last step read with a fresh memory is not the last step read after the episode
        fresh = policy.predict_values(obs[-1])
        assert not torch.allclose(fresh, values[-B:], atol=1e-4)
        # state=None: every obs is an episode's first step (fresh state, starts 1)
        torch.testing.assert_close(fresh, policy.predict_values(obs[-1], policy.initial_state(B),
                                                                torch.ones(B)))
        torch.testing.assert_close(policy.get_distribution(obs[0]).distribution.probs,
                                   policy.get_distribution(obs[0], state, starts[0]).distribution.probs)


def test_evaluate_actions_and_stateless_forward_raise_naming_the_fix():
    policy, env = _policy()
    obs = torch.as_tensor(env.reset())
    with pytest.raises(TypeError, match=r"evaluate_actions.*MemoryPPO.*evaluate_sequence"):
        policy.evaluate_actions(obs, torch.zeros(2))
    with pytest.raises(TypeError, match=r"forward\(obs\).*MemoryPPO"):
        policy(obs)


def test_sb3_ppo_with_a_memory_policy_fails_clearly():
    """SB3's PPO would train the policy without its memory: it stops at the first step."""
    model = PPO(MemoryActorCriticPolicy, make_vec(ENV, 2, seed=0), n_steps=8, batch_size=8,
                device="cpu")
    with pytest.raises(TypeError, match="MemoryPPO"):
        model.learn(16)


def test_memory_none_keeps_the_contract():
    policy, env = _policy(memory=None)
    obs = torch.as_tensor(env.reset())
    with torch.no_grad():
        v = policy.predict_values(obs)
        actions, values, _, state = policy(obs, (), torch.ones(2))
    torch.testing.assert_close(v, values)
    assert state == ()
    assert policy.get_distribution(obs).distribution.probs.shape == (2, env.action_space.n)


@pytest.mark.parametrize("memory", ["gru", "hopfield"])
def test_critic_trains_memory_false_stops_only_the_value_gradient_at_the_core(memory):
    env = make_vec(ENV, 2, seed=0)
    obs = _episode(env)
    T, B = obs.shape[:2]
    starts = torch.zeros(T, B)
    starts[0] = 1.0
    grads = {}
    for flag in (True, False):
        torch.manual_seed(0)
        policy = MemoryActorCriticPolicy(env.observation_space, env.action_space, lambda _: 1e-3,
                                         memory=memory, critic_trains_memory=flag)
        values, log_prob, _ = policy.evaluate_sequence(obs, torch.zeros(T * B), policy.initial_state(B), starts)
        values.sum().backward(retain_graph=True)  # the critic's loss alone
        core = [p.grad for p in policy.memory.parameters()]
        grads[flag] = (sum(0.0 if g is None else float(g.abs().sum()) for g in core),
                       float(policy.value_net.weight.grad.abs().sum()))
        policy.zero_grad()
        log_prob.sum().backward()  # the actor's loss still trains the core
        assert sum(float(p.grad.abs().sum()) for p in policy.memory.parameters() if p.grad is not None) > 0
    assert grads[True][0] > 0 and grads[True][1] > 0
    assert grads[False][0] == 0.0 and grads[False][1] > 0  # the value head still learns
    with pytest.raises(ValueError, match="critic_trains_memory"):
        MemoryActorCriticPolicy(env.observation_space, env.action_space, lambda _: 1e-3,
                                memory=memory, critic_trains_memory="no")
