"""The associative-memory benchmarks as commands (quick settings; nothing is timed here)."""

import json

from memagent.cli import main


def test_capacity_quick_writes_json_and_plot(tmp_path, capsys):
    out, png = tmp_path / "cap.json", tmp_path / "cap.png"
    assert main(["bench", "capacity", "--quick", "--json", str(out), "--plot", str(png)]) == 0
    data = json.loads(out.read_text())
    assert data["pixels"] == 64 and abs(data["threshold"] - 60 * 64 / 784) < 1e-9
    res = data["results"]
    assert set(res) == {"noise", "halved"}
    assert {"dot", "cosine", "euclidean", "manhattan", "max", "identity (1/d)"} <= set(res["noise"])
    for curves in res.values():
        for c in curves.values():
            assert len(c["mean"]) == len(data["sizes"])
            assert all(0 <= m <= 1 for m in c["mean"])
    assert png.stat().st_size > 10_000
    assert "| euclidean" in capsys.readouterr().out


def test_sequential_quick(tmp_path):
    out = tmp_path / "seq.json"
    assert main(["bench", "sequential", "--quick", "--orders", "2", "--techniques",
                 "naive,rehearsal", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [r[0] for r in data["mean_after_last"]] == ["naive", "rehearsal"]
    assert len(data["matrices"]["naive/n=2"]) == 2


def test_retrieval_quick(tmp_path):
    out = tmp_path / "ret.json"
    assert main(["bench", "retrieval", "--quick", "--patterns", "300", "--dim", "16",
                 "--batch", "32", "--device", "cpu", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["agreement"] == 1.0
    assert data["rows"][0][0].startswith("torch.cdist")


def test_bad_flags_exit_2(capsys):
    assert main(["bench", "sequential", "--techniques", "naive,replay", "--quick"]) == 2
    assert "unknown technique 'replay'" in capsys.readouterr().err
    assert main(["bench", "sequential", "--orders", "2,x"]) == 2
    assert main(["bench", "capacity", "--sigma", "0"]) == 2
    assert main(["bench", "retrieval", "--patterns", "0"]) == 2
