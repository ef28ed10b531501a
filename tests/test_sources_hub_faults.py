"""Hub efficiency and Hub faults (issue 16 #3-#4, issue 17 #4), counted on the fake Hub (tests/hub_server.py).

Efficiency: a safetensors repo costs at most 2 requests per shard (its /resolve and the CDN redirect) plus the
listing, index and config.json, with body bytes close to the headers; a GGUF split set costs one request per file
plus one per redirect plus the listing; no range is read twice; the client's own count equals the server's.

Faults: truncated bodies, a wrong Content-Range, a server ignoring Range, 5xx bursts, 429 with Retry-After and a
rate limit by concurrency, redirect loops, a listing that changes between pages, an index naming shards that
404. Each either succeeds after retries that are counted, or fails with one clear line, and never downloads
weights. Nothing here measures time: retries wait 0 s (Retry-After: 0, a patched backoff base).
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from inspector.errors import CkptSizeError, RemoteError, SourceError
from inspector.formats import read_checkpoint
from inspector.sources import hub_http, open_repo, resolve_local
from inspector.sources.hub import GGUF_FIRST_BLOCK, ST_FIRST_BLOCK, gguf_shard_block, resolve_hub
from inspector.sources.hub_http import HubError, HubNetworkError, Throttle
from tests._bytes import Q4_K, Q4_K_BLOCK, Q4_K_BYTES, STRING, U16, I32, gguf_header, kv, pad, tinfo
from tests.hub_server import FakeHub, point_huggingface_hub_at
from tests.test_hub import env, header_len, same_numbers  # noqa: F401  (fixture)

N_SHARDS = 12


@pytest.fixture(scope="module")
def st_repo(sparse_mixtral) -> Path:  # type: ignore[no-untyped-def]
    return sparse_mixtral(N_SHARDS)


@pytest.fixture(scope="module")
def st_repo_b(sparse_mixtral) -> Path:  # type: ignore[no-untyped-def]
    """Another revision of the repo: the same model in 5 shards (other file names, other sizes)."""
    return sparse_mixtral(5)


def write_split_gguf(folder: Path, prefix: str, count: int) -> list[Path]:
    """A llama.cpp split set of `count` files, one Q4_K tensor per file after the first (as Thireus ships them),
    written field by field (tests/_bytes.py): header, padding, then a sparse data region."""
    folder.mkdir(parents=True, exist_ok=True)
    ne = (2048, 7168)
    nbytes = math.prod(ne) // Q4_K_BLOCK * Q4_K_BYTES
    paths = []
    for i in range(count):
        kvs = ([kv("general.architecture", STRING, "llama")] if i == 0 else []) + [
            kv("split.no", U16, i), kv("split.count", U16, count), kv("split.tensors.count", I32, count - 1)]
        infos = [tinfo(f"blk.{i - 1}.ffn_down.weight", ne, Q4_K, 0)] if i else []
        head = gguf_header(kvs, infos)
        path = folder / f"{prefix}-{i + 1:05d}-of-{count:05d}.gguf"
        with open(path, "wb") as f:
            f.write(head + bytes(pad(len(head)) - len(head)))
            f.truncate(pad(len(head)) + (nbytes if i else 0))
        paths.append(path)
    return paths


def start(monkeypatch: pytest.MonkeyPatch, repos: dict[str, Path], **options: object) -> FakeHub:
    hub = FakeHub(**options).start()  # type: ignore[arg-type]
    point_huggingface_hub_at(hub.url, monkeypatch)
    for repo_id, folder in repos.items():
        hub.add_repo(repo_id, folder)
    return hub


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_http, "RETRY_BASE_WAIT", 0.0)


def ranged(hub: FakeHub, kind: str = "cdn") -> list:
    return [r for r in hub.records if r.kind == kind and r.range is not None]


def counted_equals_server(resolved_or_view: object, hub: FakeHub) -> None:
    stats = resolved_or_view.fetch_stats()  # type: ignore[attr-defined]
    assert stats == {"requests": hub.count(), "bytes": hub.bytes_sent()}, (stats, hub.count(), hub.bytes_sent())


# ==================================================================================================================
# efficiency (issue 16 #3)
# ==================================================================================================================
def test_safetensors_shards_cost_two_requests_each_and_about_their_headers(
        env: Path, st_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = start(monkeypatch, {"org/st": st_repo})
    try:
        resolved = resolve_hub("org/st")
        same_numbers(read_checkpoint(resolved), read_checkpoint(resolve_local(str(st_repo))))
        shards = sorted(st_repo.glob("*.safetensors"))
        assert hub.count("tree") == 1
        assert hub.count("resolve") == len(shards) + 2  # each shard, the index, config.json
        assert hub.count("cdn") == len(shards)  # the redirect of each shard
        assert hub.count() == 3 + 2 * len(shards)
        reads = Counter((r.path, r.range) for r in ranged(hub))
        assert max(reads.values()) == 1  # no range read twice
        headers = sum(header_len(p) for p in shards)
        assert headers <= hub.bytes_sent("cdn") <= 1.2 * headers + 4096 * len(shards)
        counted_equals_server(resolved, hub)
    finally:
        hub.stop()


def test_a_gguf_split_set_of_1087_files_costs_one_request_per_file_plus_redirects(
        env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "split"
    paths = write_split_gguf(folder / "Q4_K", "model-Q4_K", 1087)
    # files with an odd shard number go through the CDN, the others are answered by /resolve itself
    hub = start(monkeypatch, {"org/split": folder}, redirect=lambda rel: int(rel[-19:-14]) % 2 == 1)
    try:
        resolved = resolve_hub("org/split")
        remote = read_checkpoint(resolved)
        same_numbers(remote, read_checkpoint(resolve_local(str(paths[0]))))
        redirected = (1087 + 1) // 2
        # 1,088 entries (1,087 files + 1 folder) are 2 pages of 1,000: page 1 says there is more, so the branch
        # is pinned to its commit (1 small request) and both pages are read at it (1 page is read twice)
        assert hub.count("info") == 1 and hub.count("tree") == 3
        assert hub.count("resolve") == 1087 and hub.count("cdn") == redirected
        assert hub.count() == 1087 + redirected + 3 + 1
        assert max(Counter((r.path, r.range) for r in hub.records if r.range).values()) == 1
        assert all(r.path.split("/resolve/")[1].startswith(hub.repos["org/split"].commits["main"])
                   for r in hub.records if r.kind == "resolve")  # every file read at the pinned commit
        # bytes: each file's first block and nothing more (no header continued past it); a later shard of a
        # 1,087-file set gets 4 KiB (a model's tensor infos spread over 1,087 files), ~20x these ~190-byte headers
        sizes = [p.stat().st_size for p in paths]
        assert gguf_shard_block(1087) == 4096
        blocks = [min(GGUF_FIRST_BLOCK, sizes[0])] + [min(4096, n) for n in sizes[1:]]
        assert sum(f.header_bytes for f in remote.files) < sum(blocks)
        assert hub.bytes_sent("cdn") + hub.bytes_sent("resolve") == sum(blocks)
        counted_equals_server(resolved, hub)
    finally:
        hub.stop()


@pytest.mark.parametrize("files, block", [(2, 128 << 10), (3, 88 << 10), (9, 32 << 10), (64, 4 << 10),
                                          (1087, 4 << 10)])
def test_gguf_shard_blocks_share_a_models_tensor_infos(files: int, block: int) -> None:
    assert gguf_shard_block(files) == block
    # a set of gguf-split's default 128 tensors a shard, ~96 bytes a tensor info, fits in one read
    assert gguf_shard_block(math.ceil(1761 / 128)) >= 128 * 96


def test_huggingface_hubs_own_requests_are_counted(env: Path, st_repo: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With a stored login, huggingface_hub builds the request headers (only it knows whether the token needs an
    OAuth refresh), and with telemetry on it fetches its agent registry meanwhile: that request is on the wire too,
    and -v counts it. Without a stored login (token from --token or HF_TOKEN, or none), ckpt-size builds the
    headers itself and nothing else is sent."""
    from huggingface_hub import constants
    from huggingface_hub.utils import _detect_agent

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", False)
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(tmp_path / "agents.json"))
    monkeypatch.setattr(_detect_agent, "_registry", None)
    hub = start(monkeypatch, {"org/st": st_repo})
    try:
        resolved = resolve_hub("org/st")
        read_checkpoint(resolved)
        assert hub.count("other") == 0
        assert resolved.fetch_stats()["requests"] == hub.count() == 3 + 2 * N_SHARDS
        hub.reset()
        token_file = tmp_path / "stored-token"
        token_file.write_text("hf_good\n")
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(token_file))
        resolved = resolve_hub("org/st")
        read_checkpoint(resolved)
        assert hub.count("other") == 1  # GET /api/agent-harnesses (404 here)
        assert resolved.fetch_stats()["requests"] == hub.count() == 1 + 3 + 2 * N_SHARDS
        assert all(r.auth for r in hub.records if r.kind in ("tree", "resolve"))  # the stored token was sent
    finally:
        hub.stop()


# ==================================================================================================================
# rate limits and server errors
# ==================================================================================================================
def test_throttle_halves_once_per_round_pauses_and_recovers() -> None:
    now = [100.0]
    t = Throttle(8, clock=lambda: now[0])
    tickets = [t.acquire() for _ in range(8)]
    assert t.in_flight == 8 and set(tickets) == {0}
    t.release(tickets[0], throttled=True, wait=2.0)  # a 429 asking for 2 s
    assert t.limit == 4 and t.resume_at == 102.0
    for ticket in tickets[1:6]:  # the rest of that round's 429s do not halve again
        t.release(ticket, throttled=True, wait=0.0)
    assert t.limit == 4 and t.decreases == 1 and t.resume_at == 102.0
    t.release(tickets[6])
    t.release(tickets[7])
    now[0] = 102.0  # the pause is over: a new round, whose 429 halves again
    assert t.acquire() == 1
    t.release(1, throttled=True)
    assert t.limit == 2 and t.decreases == 2
    for _ in range(2 + 3 + 4 + 5 + 6 + 7):  # each `limit` successes in a row add one slot, up to the start
        t.release(t.acquire())
    assert t.limit == 8
    for _ in range(20):
        t.release(t.acquire())
    assert t.limit == 8  # never above where it started


def test_concurrency_adapts_to_a_rate_limit(env: Path, st_repo: Path, monkeypatch: pytest.MonkeyPatch,
                                            fast_retries: None) -> None:
    """The CDN allows 3 requests at a time and answers 429 (Retry-After: 0) beyond that. 16 readers would each
    exhaust their 5 tries; the throttle narrows to what the server takes and every shard is read."""
    monkeypatch.setattr(hub_http, "WORKERS", 16)
    # an admitted request holds its slot for 50 ms: requests sent together overlap whatever the machine's load
    hub = start(monkeypatch, {"org/st": st_repo}, max_concurrent=3, latency=0.05)
    try:
        view = open_repo("org/st")
        resolved = view.select()
        same_numbers(read_checkpoint(resolved), read_checkpoint(resolve_local(str(st_repo))))
        throttled = sum(1 for r in hub.records if r.status == 429)
        assert throttled > 0 and view.client.throttle.decreases >= 1  # type: ignore[attr-defined]
        assert hub.peak_busy <= 3
        assert throttled < 4 * N_SHARDS  # bounded: not 5 tries for every shard
        counted_equals_server(resolved, hub)  # every 429 was a request
    finally:
        hub.stop()


def test_retry_after_longer_than_the_cap_is_one_clear_error(env: Path, st_repo: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    hub = start(monkeypatch, {"org/st": st_repo}, fail_first=1000, fail_status=429, retry_after="3600")
    try:
        with pytest.raises(HubNetworkError, match="asks to wait 3600 s before retrying") as info:
            read_checkpoint(resolve_hub("org/st"))
        assert "\n" not in str(info.value)
        assert sum(1 for r in hub.records if r.status == 429) == 1  # given up at once, not after 5 waits
    finally:
        hub.stop()


def test_429_without_retry_after_backs_off_and_succeeds(env: Path, st_repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                       fast_retries: None) -> None:
    hub = start(monkeypatch, {"org/st": st_repo}, fail_first=4, fail_status=429, retry_after=None)
    try:
        view = open_repo("org/st")
        resolved = view.select()
        same_numbers(read_checkpoint(resolved), read_checkpoint(resolve_local(str(st_repo))))
        assert sum(1 for r in hub.records if r.status == 429) == 4
        assert view.client.throttle.decreases >= 1  # type: ignore[attr-defined]  # a 429 is a rate limit
        counted_equals_server(resolved, hub)
    finally:
        hub.stop()


def _server_errors(status: int) -> Any:
    return pytest.param({"fail_first": 3, "fail_status": status},
                        lambda hub: sum(1 for r in hub.records if r.status == status) == 3
                        and hub.count() == 3 + 2 * N_SHARDS + 3, id=f"{status}-burst")


# Answers that fail, are cut short or carry the wrong Content-Range are asked again: the checkpoint read is the
# local one, and the client's count is the server's.
@pytest.mark.parametrize("fault, check", [
    *(_server_errors(status) for status in (500, 502, 503, 504)),
    # three answers cut short, each asked again (with its hop)
    pytest.param({"truncate_first": 3}, lambda hub: hub.count() == 3 + 2 * N_SHARDS + 3, id="truncated-bodies"),
    # two ranged answers with the wrong Content-Range, each asked again at the CDN
    pytest.param({"bad_range_first": 2}, lambda hub: hub.count("cdn") == N_SHARDS + 2, id="wrong-content-range"),
])
def test_broken_answers_are_retried(env: Path, st_repo: Path, monkeypatch: pytest.MonkeyPatch, fast_retries: None,
                                    fault: dict[str, Any], check: Any) -> None:
    hub = start(monkeypatch, {"org/st": st_repo}, **fault)
    try:
        resolved = resolve_hub("org/st")
        same_numbers(read_checkpoint(resolved), read_checkpoint(resolve_local(str(st_repo))))
        assert check(hub)
        counted_equals_server(resolved, hub)
    finally:
        hub.stop()


# ==================================================================================================================
# answers broken every time
# ==================================================================================================================
def _five_tries_per_file(hub: FakeHub) -> bool:
    per_file = Counter(r.path for r in ranged(hub))
    return max(per_file.values()) == 5 and hub.bytes_sent("cdn") <= 5 * len(per_file) * ST_FIRST_BLOCK


@pytest.mark.parametrize("fault, words, check", [
    # the index, 5 times; nothing after it
    pytest.param({"truncate_first": 10_000}, (), lambda hub: hub.count("tree") == 1 and hub.count("resolve") == 5,
                 id="truncated-bodies"),
    pytest.param({"bad_range_first": 10_000},
                 ("kept sending broken answers (asked for bytes 0-", "the server sent 1-"), _five_tries_per_file,
                 id="wrong-content-range"),
])
def test_answers_broken_every_time_end_in_one_line(env: Path, st_repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                   fast_retries: None, fault: dict[str, Any],
                                                   words: tuple[str, ...], check: Any) -> None:
    hub = start(monkeypatch, {"org/st": st_repo}, **fault)
    try:
        with pytest.raises(HubNetworkError) as info:
            read_checkpoint(resolve_hub("org/st"))
        message = str(info.value)
        assert all(w in message for w in (*words, "after 5 tries")) and "\n" not in message
        assert check(hub)
    finally:
        hub.stop()


def test_a_server_ignoring_range_never_sends_the_weights(env: Path, st_repo: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    hub = start(monkeypatch, {"org/st": st_repo}, ignore_range=True)
    try:
        resolved = resolve_hub("org/st")
        same_numbers(read_checkpoint(resolved), read_checkpoint(resolve_local(str(st_repo))))
        assert all(f.range_ignored for f in resolved.files)
        weights = sum(p.stat().st_size for p in st_repo.glob("*.safetensors"))
        headers = sum(header_len(p) for p in st_repo.glob("*.safetensors"))
        assert weights > 50 * (1 << 30)  # ~90 GB of (sparse) weights behind these 12 files
        assert resolved.fetch_stats()["bytes"] < 2 * headers + (1 << 20)  # we read the headers and hung up
        assert hub.count() == 3 + 2 * N_SHARDS
    finally:
        hub.stop()


def test_redirect_loop_is_one_clear_error(env: Path, st_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shard = sorted(p.name for p in st_repo.glob("*.safetensors"))[0]
    hub = start(monkeypatch, {"org/st": st_repo}, redirect_loop={shard})
    try:
        with pytest.raises(HubNetworkError, match="redirect loop") as info:
            read_checkpoint(resolve_hub("org/st"))
        assert "\n" not in str(info.value)
        loops = [r for r in hub.records if shard in r.path or r.path == "/loop"]
        assert len(loops) == 2  # /resolve, the CDN's hop back: the repeat is caught before it is sent, no retry
    finally:
        hub.stop()


# ==================================================================================================================
# the repo changing under us
# ==================================================================================================================
def test_a_listing_that_changes_between_pages_is_read_at_one_commit(
        env: Path, st_repo: Path, st_repo_b: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = start(monkeypatch, {"org/st": st_repo}, page_size=4, change_after_page={"org/st": st_repo_b})
    try:
        resolved = resolve_hub("org/st")
        # page 1 showed the 12-shard state; the branch then moved to the 5-shard commit, which the pin names:
        # every page and every file is of that commit
        same_numbers(read_checkpoint(resolved), read_checkpoint(resolve_local(str(st_repo_b))))
        assert len(resolved.files) == 5 and hub.count("info") == 1
        counted_equals_server(resolved, hub)
    finally:
        hub.stop()


def test_without_a_pin_a_changed_listing_is_read_again(env: Path, st_repo: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    grown = tmp_path / "grown"
    import shutil
    import subprocess

    subprocess.run(["cp", "-r", "--sparse=always", str(st_repo), str(grown)], check=True)
    (grown / "LICENSE").write_text("new file, sorted before page 1's last entry\n")
    (grown / "NOTICE").write_text("another\n")
    hub = start(monkeypatch, {"org/st": st_repo}, page_size=4, no_pin=True, change_after_page={"org/st": grown})
    try:
        resolved = resolve_hub("org/st")
        same_numbers(read_checkpoint(resolved), read_checkpoint(resolve_local(str(grown))))
        pages = math.ceil((N_SHARDS + 4) / 4)  # shards, index, config.json, LICENSE, NOTICE
        assert hub.count("tree") > 1 + pages  # page 1, page(s) that repeated an entry, then all pages again
    finally:
        hub.stop()
        shutil.rmtree(grown)


def test_revision_moving_while_files_are_read(env: Path, st_repo: Path, st_repo_b: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_http, "WINDOW", 1)
    monkeypatch.setattr(hub_http, "WORKERS", 1)
    hub = start(monkeypatch, {"org/st": st_repo})
    try:
        resolved = open_repo("org/st").select()  # the index was read: its answer named the commit
        hub.move_branch(hub.repos["org/st"], "main", st_repo)  # same files, a new commit
        with pytest.raises(HubError, match="revision 'main' moved while it was read") as info:
            read_checkpoint(resolved)
        assert "--revision " in str(info.value) and "\n" not in str(info.value)
    finally:
        hub.stop()


def test_an_index_naming_shards_that_404(env: Path, st_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shard = sorted(p.name for p in st_repo.glob("*.safetensors"))[3]
    hub = start(monkeypatch, {"org/st": st_repo}, missing={shard})
    try:
        with pytest.raises(SourceError, match=f"no file '{shard}' in the repo") as info:
            read_checkpoint(resolve_hub("org/st"))
        assert "\n" not in str(info.value) and info.value.exit_code == 1
        assert sum(1 for r in hub.records if shard in r.path) == 1  # a 404 is an answer: not retried
        assert hub.bytes_sent("cdn") <= 1.2 * sum(header_len(p) for p in st_repo.glob("*.safetensors")) + 65536
    finally:
        hub.stop()


def test_an_index_naming_shards_the_listing_lacks(env: Path, st_repo: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import subprocess

    repo = tmp_path / "lacking"
    subprocess.run(["cp", "-r", "--sparse=always", str(st_repo), str(repo)], check=True)
    index = json.loads((repo / "model.safetensors.index.json").read_text())
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = "model-00099-of-00099.safetensors"
    (repo / "model.safetensors.index.json").write_text(json.dumps(index))
    hub = start(monkeypatch, {"org/st": repo})
    try:
        with pytest.raises(SourceError, match="missing model-00099-of-00099.safetensors") as info:
            resolve_hub("org/st")
        assert isinstance(info.value, CkptSizeError) and not isinstance(info.value, RemoteError)
        assert hub.count("cdn") == 0  # decided from the listing and the index: no shard was read
    finally:
        hub.stop()


def test_errors_from_the_cli_are_one_line(env: Path, st_repo: Path, monkeypatch: pytest.MonkeyPatch,
                                          fast_retries: None, capsys: pytest.CaptureFixture[str]) -> None:
    from inspector.cli import main

    shard = sorted(p.name for p in st_repo.glob("*.safetensors"))[0]
    for options in ({"truncate_first": 10_000}, {"bad_range_first": 10_000}, {"redirect_loop": {shard}},
                    {"missing": {shard}}, {"fail_first": 10_000, "fail_status": 502}):
        hub = start(monkeypatch, {"org/st": st_repo}, **options)
        try:
            with pytest.raises(SystemExit) as e:
                main(["inspect", "org/st"])
            _, err = capsys.readouterr()
            assert e.value.code == 1 and len(err.strip().splitlines()) == 1 and err.startswith("Error: "), err
        finally:
            hub.stop()

