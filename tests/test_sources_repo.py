"""One RepoView per command (issue 10): a Hub repo is listed once, whatever the command does with it afterwards.

Counted on the fake Hub (tests/hub_server.py): listing requests (`tree`), and every ranged read of a file, which
must never be repeated with the same range. Before the view, `inspect --quant` on a repo of quants listed twice
(once to decide whether to print the table of quants, once to load), and `fit` over a repo of quants listed once
for the table and once more per quant.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from inspector import api
from inspector.errors import SourceError, UsageError
from inspector.formats import read_checkpoint
from inspector.sources import HubOptions, HubRepoView, open_repo, resolve_local
from tests.hub_server import FakeHub
from tests.test_hub import env, hub, repos, same_numbers  # noqa: F401  (fixtures)


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from inspector.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


def no_range_read_twice(hub: FakeHub) -> None:
    """No file range was asked for twice (a retry after a failed answer would be fine; there are none here)."""
    reads = Counter((r.path, r.range) for r in hub.records if r.range is not None)
    assert all(n == 1 for n in reads.values()), [k for k, n in reads.items() if n > 1]
    assert all(r.status < 400 for r in hub.records), [r for r in hub.records if r.status >= 400]


def test_inspect_with_quant_lists_the_repo_once(hub: FakeHub, repos: dict[str, Path],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(["inspect", "org/quants", "--quant", "Q4_K_M", "--format", "json", "-v"], capsys)
    assert code == 0 and json.loads(out)["quant"]["mode"] == "selected"
    assert hub.count("tree") == 1
    # the listing, then each of the 3 shards once: /resolve and the CDN it redirects to
    assert hub.count() == 1 + 2 * 3 and hub.count("cdn") == 3
    no_range_read_twice(hub)
    assert f"Fetched: {hub.count()} requests, {hub.bytes_sent():,} bytes" in err  # -v says what the server saw


def test_inspect_of_a_safetensors_repo_lists_once_and_reads_side_files_once(
        hub: FakeHub, repos: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(["inspect", "org/sharded", "-v"], capsys)
    assert code == 0
    kinds = Counter((r.kind, r.path.rsplit("/", 1)[-1]) for r in hub.records if r.kind in ("tree", "resolve"))
    assert hub.count("tree") == 1
    assert kinds[("resolve", "model.safetensors.index.json")] == kinds[("resolve", "config.json")] == 1
    no_range_read_twice(hub)
    assert f"Fetched: {hub.count()} requests" in err


def test_fit_over_a_repo_of_quants_lists_once(hub: FakeHub, repos: dict[str, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(["fit", "org/quants", "--budget", "cuda:0=2GiB", "--budget", "cpu=2GiB", "--format", "json"],
                       capsys)
    doc = json.loads(out)
    assert code == 0 and {q["quant"] for q in doc["quants"]} == {"model-Q8_0.gguf", "Q4_K_M/model-Q4_K_M"}
    assert hub.count("tree") == 1
    # both quants' headers, each file read once: 1 single file + 3 shards, each /resolve + CDN
    assert hub.count("cdn") == 4 and hub.count("resolve") == 4 and hub.count() == 1 + 8
    no_range_read_twice(hub)


def test_the_repo_view_api(hub: FakeHub, repos: dict[str, Path]) -> None:
    view = open_repo("org/quants", HubOptions())
    assert isinstance(view, HubRepoView) and view.kind == "hub" and view.description == "hf://org/quants@main"
    assert [(q.name, q.quant, len(q.files)) for q in view.quants()] == [("Q4_K_M/model-Q4_K_M", "Q4_K_M", 3),
                                                                         ("model-Q8_0.gguf", "Q8_0", 1)]
    listing = view.listing()
    assert listing is not None and [r.name for r in listing.rows] == [q.name for q in view.quants()]
    assert view.choices() == listing.rows
    with pytest.raises(UsageError, match="holds 2 GGUF models"):
        view.select()
    by_quant = view.select("Q8_0")
    by_model = view.select(model="Q4_K_M/model-Q4_K_M")
    assert by_quant.quant_selected and not by_model.quant_selected and len(by_model.files) == 3
    same_numbers(read_checkpoint(by_model), read_checkpoint(resolve_local(str(repos["quants"]), quant="Q4_K_M")))
    with pytest.raises(SourceError, match="no GGUF model named 'Q2_K'"):
        view.select(model="Q2_K")
    with pytest.raises(SourceError, match="no GGUF file or split set named with quant IQ1_S"):
        view.select("IQ1_S")
    assert hub.count("tree") == 1  # every answer above came from the one listing
    assert view.fetch_stats() == {"requests": hub.count(), "bytes": hub.bytes_sent()}


def test_file_option_narrows_the_view(hub: FakeHub, repos: dict[str, Path]) -> None:
    view = open_repo("org/quants", HubOptions(file="Q4_K_M"))
    assert view.listing() is None  # one model in that folder: nothing to choose
    assert len(view.select().files) == 3
    with pytest.raises(SourceError, match="no file or folder 'Q5_K_M' in the repo"):
        open_repo("org/quants", HubOptions(file="Q5_K_M")).select()


def test_api_functions_accept_a_view(hub: FakeHub, repos: dict[str, Path]) -> None:
    view = open_repo("org/sharded")
    assert api.listing(view) is None
    checkpoint = api.load(view)
    result = api.inspect(view, experts_on="cpu")
    assert result.checkpoint.nbytes == checkpoint.nbytes
    assert hub.count("tree") == 1
    resolved = api.resolve("org/quants")  # several quants, nothing selected: the listing
    assert resolved.rows and hub.count("tree") == 2  # a second SOURCE opened: listed once too


def test_counts_include_first_blocks_on_the_wire(repos: dict[str, Path], env: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Selecting a model starts fetching its first blocks; the view's counts wait for what is on the wire (here
    0.2 s per answer) instead of reporting before the server has counted it."""
    from tests.test_hub import make_hub

    slow = make_hub(repos, monkeypatch, latency=0.2)
    try:
        view = open_repo("org/quants", HubOptions())
        view.select("Q8_0")  # resolved, never read: its first block is fetched all the same
        stats = view.fetch_stats()
        assert stats == {"requests": slow.count(), "bytes": slow.bytes_sent()}
        assert slow.count("cdn") == 1  # the one first block, counted by both sides
    finally:
        slow.stop()
