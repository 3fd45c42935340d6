"""Run-folder lookup: `latest` names the newest run."""

import pytest


def test_latest_names_the_newest_run(tmp_path):
    import os

    from memagent.runs import CONFIG_FILE, check_run_dir

    with pytest.raises(FileNotFoundError, match="no runs in .* run `memagent train` first"):
        check_run_dir("latest", root=tmp_path)
    for i, name in enumerate(["b_old", "a_new"]):
        (tmp_path / name).mkdir()
        (tmp_path / name / CONFIG_FILE).write_text("{}")
        os.utime(tmp_path / name / CONFIG_FILE, (1000 + i, 1000 + i))
    (tmp_path / "not_a_run").mkdir()
    assert check_run_dir("latest", root=tmp_path) == tmp_path / "a_new"
