"""The package installs as designed: envs/ and agents/ under memagent, the CLI answers."""

import subprocess
import sys


def test_top_level_dirs_install_under_memagent():
    import memagent.agents
    import memagent.envs

    assert memagent.envs.__name__ == "memagent.envs"
    assert memagent.agents.__name__ == "memagent.agents"
    # no generic top-level name leaks into site-packages
    import importlib.util

    for generic in ("envs", "agents"):
        spec = importlib.util.find_spec(generic)
        assert spec is None or "site-packages" not in str(spec.origin), spec


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "memagent", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "bench" in out


def test_public_names_at_the_top_level_without_torch_on_import():
    code = ("import sys, memagent; assert 'torch' not in sys.modules, 'import memagent imported torch'; "
            "from memagent import MemoryPPO, ManAgent, MemoryCore, ClassQueueMemory, Agent, TrainConfig; "
            "from memagent.agents.memory_ppo import MemoryPPO as M; assert MemoryPPO is M; "
            "assert 'MemoryPPO' in dir(memagent)")
    subprocess.run([sys.executable, "-c", code], check=True)
    import memagent

    for name in memagent.__all__:  # every listed name resolves
        getattr(memagent, name)
    try:
        memagent.NoSuchThing  # noqa: B018
    except AttributeError as err:
        assert "NoSuchThing" in str(err)
    else:
        raise AssertionError("an unknown name must raise AttributeError")
