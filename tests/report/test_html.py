"""capsim report: one self-contained HTML file per set of results folders, parsed back."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from sim.errors import InputError
from sim.report.html import write_report
from sim.results.provenance import scenario_header

REPLICAS = "models.m.pools.p.replicas"
QUESTION = "Planning question: does a second replica halve the queue?"
SCENARIO = {
    "name": "tiny",
    "seed": 3,
    "duration_s": 30,
    "warmup_s": 3,
    "models": {
        "m": {
            "architecture": "llama-3.1-8b",
            "pools": {
                "p": {
                    "replicas": 1,
                    "max_num_seqs": 4,
                    "perf": {"model": "exponential", "mean_service_s": 0.5},
                }
            },
        }
    },
    "accounts": [{"name": "a"}],
    "traffic": [
        {
            "name": "t",
            "account": "a",
            "model": "m",
            "arrivals": {"process": "poisson", "rate_per_s": 4},
            "prompt_tokens": {"dist": "constant", "value": 100},
            "output_tokens": {"dist": "constant", "value": 10},
        }
    ],
}


def _capsim(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", *args], capture_output=True, text=True, cwd=cwd, check=False
    )


class Page(HTMLParser):
    """Every tag with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text())
    page.close()
    return page


def _assert_self_contained(page: Page) -> None:
    for tag, attrs in page.tags:
        assert tag not in ("link", "script", "iframe", "object", "embed"), tag
        for name in ("src", "href", "data", "srcset", "action"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith("data:image/png;base64,"), (tag, name, value[:60])
        assert "url(" not in attrs.get("style", "")


def _images(page: Page) -> list[bytes]:
    return [
        base64.b64decode(attrs["src"].removeprefix("data:image/png;base64,"))
        for tag, attrs in page.tags
        if tag == "img"
    ]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run and a sweep of a tiny scenario whose header asks a question, made by the CLI."""
    root = tmp_path_factory.mktemp("results")
    scenario = root / "tiny.yaml"
    scenario.write_text(f"# {QUESTION}\n#\n#   capsim run tiny.yaml\n" + yaml.safe_dump(SCENARIO))
    done = _capsim("run", "tiny.yaml", "--out", "run", "--seed", "5", "-q", cwd=root)
    assert done.returncode == 0, done.stderr
    grid = f"{REPLICAS}=1,2"
    done = _capsim("sweep", "tiny.yaml", "--grid", grid, "--seeds", "0-1", "--out", "sweep",
                   "--workers", "1", "-q", cwd=root)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return root


def test_the_header_comment_is_the_question() -> None:
    text = "# Planning question: x?\n#\n#   capsim run x.yaml\n#no space\nname: x\n# later\n"
    assert scenario_header(text) == "Planning question: x?\n\n  capsim run x.yaml\nno space"
    assert scenario_header("name: x\n") == ""


def test_a_run_folder_keeps_where_it_came_from(folders: Path) -> None:
    info = json.loads((folders / "run" / "run.json").read_text())
    assert info["question"].startswith(QUESTION)
    assert info["seed"] == 5 and info["overrides"] == ["seed=5"]
    assert info["command"] == "capsim run tiny.yaml --out run --seed 5 -q"
    sweep_run = json.loads((folders / "sweep" / "replicas=2,seed=1" / "run.json").read_text())
    assert sweep_run["command"].startswith("capsim run ") and "seed=1" in sweep_run["command"]
    made = json.loads((folders / "sweep" / "command.json").read_text())
    assert made["command"].startswith("capsim sweep tiny.yaml --grid")


def test_a_run_report_is_self_contained_with_tables_and_every_plot(folders: Path) -> None:
    out = folders / "run.html"
    done = _capsim("report", "run", "--out", str(out), cwd=folders)
    assert done.returncode == 0, done.stderr
    page = _parse(out)
    _assert_self_contained(page)
    text = "".join(page.text)
    assert QUESTION in text
    assert "capsim run tiny.yaml --out run --seed 5 -q" in text
    assert "capsim 0.1.0" in text or "0.1.0" in text
    assert sum(tag == "table" for tag, _ in page.tags) >= 2
    images = _images(page)
    assert len(images) == len(list((folders / "run" / "plots").glob("*.png"))) >= 3
    assert all(image.startswith(b"\x89PNG\r\n\x1a\n") for image in images)
    assert "mean_service_s" in text  # the scenario
    assert not [p for p in folders.iterdir() if p.name.endswith(".tmp")]


def test_one_report_for_a_sweep_and_a_run_without_plots(folders: Path, tmp_path: Path) -> None:
    out = tmp_path / "both.html"
    write_report([folders / "sweep", folders / "sweep" / "replicas=1,seed=0"], out)
    page = _parse(out)
    _assert_self_contained(page)
    text = "".join(page.text)
    assert "capsim sweep tiny.yaml --grid models.m.pools.p.replicas=1,2" in text
    assert QUESTION in text
    assert "Mean over seeds per grid point" in text
    assert sum(tag == "table" for tag, _ in page.tags) >= 3
    # sweep: one plot per key metric; the run (swept without --plots): its drawn standard plots
    assert len(_images(page)) >= 5


def test_a_compare_report_has_a_row_per_metric_with_intervals(folders: Path) -> None:
    compare = {**SCENARIO, "replications": 2, "variants": {"one": {}, "two": {REPLICAS: 2}}}
    (folders / "compare.yaml").write_text(f"# {QUESTION}\n" + yaml.safe_dump(compare))
    done = _capsim("compare", "compare.yaml", "--out", "cmp", "--workers", "1", "-q", cwd=folders)
    assert done.returncode == 0, done.stderr
    out = write_report([folders / "cmp"], folders / "cmp.html")
    page = _parse(out)
    _assert_self_contained(page)
    text = "".join(page.text)
    assert QUESTION in text and "capsim compare compare.yaml --out cmp" in text
    assert "paired difference from one" in text and "two - one" in text
    assert "m.all.ttft_s.p99" in text
    assert len(_images(page)) == len(list((folders / "cmp" / "plots").glob("*.png"))) >= 1


def test_a_plan_report_has_its_table_and_curves(folders: Path) -> None:
    over = ["--over", "traffic.t.arrivals.rate_per_s=1,6", "--max-replicas", "4"]
    options = ["--set", "replications=2", "--out", "plan", "--workers", "1", "-q"]
    done = _capsim("plan", "tiny.yaml", "--slo", "queue_mean_s<=0.5", *over, *options, cwd=folders)
    assert done.returncode == 0, done.stderr
    done = _capsim("report", "plan", "--out", "plan.html", cwd=folders)
    assert done.returncode == 0, done.stderr
    page = _parse(folders / "plan.html")
    _assert_self_contained(page)
    text = "".join(page.text)
    assert QUESTION in text and "capsim plan tiny.yaml --slo 'queue_mean_s<=0.5'" in text
    assert "(plan)" in text and "Fewest replicas per pool meeting every SLO" in text
    plan = pq.read_table(folders / "plan" / "plan.parquet").to_pylist()
    cells = [c for c in page.text if c.strip()]
    for row in plan:  # every level's row: its load, then met, then the replicas it needs
        at = cells.index(f"{row['rate_per_s']:.4g}")
        assert cells[at + 1 : at + 3] == [str(row["met"]), str(row["replicas.m.p"])]
    assert [row["replicas.m.p"] for row in plan] == sorted(row["replicas.m.p"] for row in plan)
    assert "replicas.m.p" in text and "cost_per_million_tokens_usd" in text
    images = _images(page)
    assert len(images) == 3 and all(image.startswith(b"\x89PNG") for image in images)
    captions = [attrs["alt"] for tag, attrs in page.tags if tag == "img"]
    assert captions == [
        "capacity: replicas against load",
        "cost per million tokens against load",
        "cost, revenue and margin per hour against load",
    ]


def test_what_is_not_a_results_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a capsim results folder"):
        write_report([tmp_path], tmp_path / "r.html")
    with pytest.raises(InputError, match=r"ending in \.html"):
        write_report([tmp_path], tmp_path / "r.pdf")
    done = _capsim("report", str(tmp_path / "missing"), cwd=tmp_path)
    assert done.returncode == 2 and "not a folder" in done.stderr
