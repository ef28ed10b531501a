"""Hub sources against a fake Hub on 127.0.0.1 (tests/hub_server.py), with HF_ENDPOINT pointed at it.

The repos are built by the fixture generator (and a small split-set writer here). Every numeric claim is
"the Hub path gives exactly what the local path gives for the same files", plus counted requests and bytes:
one request per listing page, one per side file (index, config.json), one ranged read per model file when its
header fits the first block (two requests: /resolve and the CDN it redirects to), and body bytes close to the
header bytes. The client's own count (`fetch_stats`, `-v`) is what the server counted. Faults are in
tests/test_sources_hub_faults.py, one listing per command in tests/test_sources_repo.py.
"""
from __future__ import annotations

import json
import socket
import struct
import subprocess
import time
from pathlib import Path

import gguf
import pytest

from fixtures.generate import write_gguf, write_safetensors, write_split_gguf
from inspector.errors import RemoteError, SourceError, UsageError
from inspector.formats import read_checkpoint
from inspector.sources import hub_http
from inspector.sources.hub import (
    GGUF_FIRST_BLOCK,
    HubListing,
    HubRef,
    is_hub_ref,
    parse_hub_ref,
    plan_from_listing,
    quant_label,
    resolve_hub,
)
from inspector.sources.hub_errors import (HubGatedRepo, HubNetworkError, HubOfflineError, HubRepoNotFound,
                                         HubRevisionNotFound, HubUnauthorized)
from inspector.sources.local import resolve_local
from tests.hub_server import FakeHub, point_huggingface_hub_at

VOCAB = 40_000  # a SentencePiece-sized tokenizer: the first GGUF file's header is ~0.6 MB, as in real repos


# ==================================================================================================================
# fixture repos
# ==================================================================================================================
def llama_tensors(n_layers: int, qtype: int) -> list[tuple[str, tuple[int, ...], int]]:
    d, ff, vocab = 2048, 5632, 32000
    F32 = int(gguf.GGMLQuantizationType.F32)
    out = [("token_embd.weight", (vocab, d), qtype)]
    for i in range(n_layers):
        out += [(f"blk.{i}.attn_norm.weight", (d,), F32), (f"blk.{i}.attn_q.weight", (d, d), qtype),
                (f"blk.{i}.attn_k.weight", (256, d), qtype), (f"blk.{i}.attn_v.weight", (256, d), qtype),
                (f"blk.{i}.attn_output.weight", (d, d), qtype), (f"blk.{i}.ffn_norm.weight", (d,), F32),
                (f"blk.{i}.ffn_gate.weight", (ff, d), qtype), (f"blk.{i}.ffn_up.weight", (ff, d), qtype),
                (f"blk.{i}.ffn_down.weight", (d, ff), qtype)]
    return out + [("output_norm.weight", (d,), F32), ("output.weight", (vocab, d), qtype)]


def tokenizer_kvs(n: int = VOCAB) -> dict[str, tuple[gguf.GGUFValueType, object]]:
    return {"tokenizer.ggml.model": (gguf.GGUFValueType.STRING, "llama"),
            "tokenizer.ggml.tokens": (gguf.GGUFValueType.ARRAY, [f"tok{i}" for i in range(n)])}


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hub-repos")
    out: dict[str, Path] = {}
    # sharded safetensors (index + config.json), sparse: real file sizes, data regions are holes
    out["sharded"] = root / "sharded"
    write_safetensors(out["sharded"], "mixtral-8x7b", shards=4, mode="sparse")
    (out["sharded"] / "README.md").write_text("# sharded\n")
    # single safetensors at main; an F16 variant at refs/pr/1
    out["single"] = root / "single"
    write_safetensors(out["single"] / "model.safetensors", "llama-3.2-3b", mode="sparse")
    out["single-pr"] = root / "single-pr"
    write_safetensors(out["single-pr"] / "model.safetensors", "llama-3.2-3b", dtype="F16", mode="sparse")
    # several GGUF quants: a single file, a split set in a folder, a multimodal projector
    q = root / "quants"
    out["quants"] = q
    write_gguf(q / "model-Q8_0.gguf", "llama-3.2-3b", tensor_type="Q8_0", mode="sparse",
               extra_kv={k: v for k, v in tokenizer_kvs().items()})
    model_kvs = {"general.architecture": (gguf.GGUFValueType.STRING, "llama"),
                 "general.name": (gguf.GGUFValueType.STRING, "tiny llama"),
                 "llama.block_count": (gguf.GGUFValueType.UINT32, 4), **tokenizer_kvs()}
    model_kvs.pop("general.architecture")  # GGUFWriter writes it for shard 1
    write_split_gguf(q / "Q4_K_M", "model-Q4_K_M", llama_tensors(4, int(gguf.GGMLQuantizationType.Q4_K)), 3,
                     model_kvs)
    write_gguf(q / "mmproj-model-F16.gguf", "llama-3.2-3b", tensor_type="F16", mode="header", n_layers=1)
    (q / "README.md").write_text("# quants\n")
    # a GGUF with a tokenizer far larger than the first block (~2.9 MB of header)
    big = root / "bigtok"
    out["bigtok"] = big
    write_gguf(big / "model-Q8_0.gguf", "llama-3.2-3b", tensor_type="Q8_0", mode="sparse",
               extra_kv={k: v for k, v in tokenizer_kvs(200_000).items()})
    return out


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No stored token, no implicit HF_TOKEN, telemetry off, a private cache; fast retries."""
    from huggingface_hub import constants

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hub_http, "RETRY_BASE_WAIT", 0.01)
    return tmp_path


def make_hub(repos: dict[str, Path], monkeypatch: pytest.MonkeyPatch, **options: object) -> FakeHub:
    hub = FakeHub(**options).start()  # type: ignore[arg-type]
    point_huggingface_hub_at(hub.url, monkeypatch)
    hub.add_repo("org/sharded", repos["sharded"])
    hub.add_repo("org/single", repos["single"], revisions={"refs/pr/1": repos["single-pr"], "v1.0": repos["single"]})
    hub.add_repo("org/quants", repos["quants"])
    hub.add_repo("org/bigtok", repos["bigtok"])
    hub.add_repo("org/gated", repos["single"], gated=True)
    hub.add_repo("org/private", repos["single"], private=True)
    return hub


@pytest.fixture
def hub(repos: dict[str, Path], env: Path, monkeypatch: pytest.MonkeyPatch):
    server = make_hub(repos, monkeypatch)
    yield server
    server.stop()


def same_numbers(remote, local) -> None:
    """The Hub checkpoint equals the local one: every tensor (name, shape, dtype, bytes, offset) and every file."""
    assert remote.format == local.format
    assert [(t.name, t.shape, t.dtype, t.nbytes, t.offset, t.file_index, t.params) for t in remote.tensors] == \
           [(t.name, t.shape, t.dtype, t.nbytes, t.offset, t.file_index, t.params) for t in local.tensors]
    assert [(f.size, f.header_bytes, f.expected_size) for f in remote.files] == \
           [(f.size, f.header_bytes, f.expected_size) for f in local.files]
    assert remote.architecture == local.architecture
    assert remote.config == local.config


def header_len(path: Path) -> int:
    """Bytes of a safetensors header (8-byte length + JSON), read independently of the parser."""
    with open(path, "rb") as f:
        return 8 + struct.unpack("<Q", f.read(8))[0]


# ==================================================================================================================
# refs and planning (no network)
# ==================================================================================================================
@pytest.mark.parametrize("ref, expected", [
    ("owner/repo", HubRef("owner/repo")),
    ("owner/repo@v1.0", HubRef("owner/repo", "v1.0")),
    ("owner/repo@refs/pr/3", HubRef("owner/repo", "refs/pr/3")),
    ("owner/repo@refs/pr/3/sub/x.gguf", HubRef("owner/repo", "refs/pr/3", "sub/x.gguf")),
    ("owner/repo/Q4_K_M/m-00001-of-00003.gguf", HubRef("owner/repo", None, "Q4_K_M/m-00001-of-00003.gguf")),
    ("hf://owner/repo", HubRef("owner/repo")),
    ("hf://owner/repo@main/model.safetensors", HubRef("owner/repo", "main", "model.safetensors")),
    ("hf://owner/repo@refs%2Fpr%2F1/a.gguf", HubRef("owner/repo", "refs/pr/1", "a.gguf")),
    ("hf://models/owner/repo", HubRef("owner/repo")),
    ("https://huggingface.co/owner/repo", HubRef("owner/repo")),
    ("https://huggingface.co/owner/repo/blob/main/x.gguf", HubRef("owner/repo", "main", "x.gguf")),
    ("https://huggingface.co/owner/repo/tree/refs/pr/2/sub", HubRef("owner/repo", "refs/pr/2", "sub")),
])
def test_parse_refs(ref: str, expected: HubRef) -> None:
    assert parse_hub_ref(ref) == expected
    assert is_hub_ref(ref)


@pytest.mark.parametrize("ref", ["hf://datasets/owner/data", "owner", "owner/repo@", "-bad/repo", "a/b/../c",
                                 "https://example.com/owner/repo"])
def test_bad_refs(ref: str) -> None:
    with pytest.raises(UsageError):
        parse_hub_ref(ref)


def test_local_looking_paths_are_not_hub_refs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "exists.gguf").write_bytes(b"GGUF")
    for source in ("models/missing.gguf", "dir/file.gguf", "./a/b", "/abs/a/b", "exists.gguf", "plainword"):
        assert not is_hub_ref(source), source
    assert is_hub_ref("unsloth/Qwen3-8B-GGUF")


@pytest.mark.parametrize("name, label", [
    ("model-Q8_0.gguf", "Q8_0"), ("Q4_K_M/model-Q4_K_M", "Q4_K_M"), ("UD-Q2_K_XL/X-UD-Q2_K_XL", "UD-Q2_K_XL"),
    ("Qwen3-8B-BF16.gguf", "BF16"), ("m-IQ4_XS-00001-of-00002.gguf", "IQ4_XS"), ("Qwen3-8B.gguf", None),
])
def test_quant_labels(name: str, label: str | None) -> None:
    assert quant_label(name) == label


LISTING = {
    "README.md": 10, "config.json": 100,
    "m-Q8_0.gguf": 800, "m-UD-Q4_K_M.gguf": 450, "mmproj-F16.gguf": 90, "imatrix.dat": 5,
    "Q4_K_M/m-Q4_K_M-00001-of-00002.gguf": 300, "Q4_K_M/m-Q4_K_M-00002-of-00002.gguf": 200,
    "BF16/m-BF16-00001-of-00003.gguf": 700, "BF16/m-BF16-00003-of-00003.gguf": 700,
}


def test_plan_lists_quants_apart_from_projectors() -> None:
    quants, extras, scope = plan_from_listing(LISTING, path=None, quant=None, where="hf://o/r@main")
    assert scope == ""
    rows = {q.name: (q.quant, q.files, q.bytes, q.missing) for q in quants}
    assert rows == {
        "BF16/m-BF16": ("BF16", ("BF16/m-BF16-00001-of-00003.gguf", "BF16/m-BF16-00003-of-00003.gguf"), 1400,
                        ("BF16/m-BF16-00002-of-00003.gguf",)),
        "Q4_K_M/m-Q4_K_M": ("Q4_K_M", ("Q4_K_M/m-Q4_K_M-00001-of-00002.gguf", "Q4_K_M/m-Q4_K_M-00002-of-00002.gguf"),
                            500, ()),
        "m-Q8_0.gguf": ("Q8_0", ("m-Q8_0.gguf",), 800, ()),
        "m-UD-Q4_K_M.gguf": ("UD-Q4_K_M", ("m-UD-Q4_K_M.gguf",), 450, ()),
    }
    assert {(e.path, e.kind) for e in extras} == {("mmproj-F16.gguf", "mmproj"), ("imatrix.dat", "imatrix")}


def test_plan_selects_by_quant_exact_label_first() -> None:
    plan = plan_from_listing(LISTING, path=None, quant="Q4_K_M", where="w")
    assert plan.paths == ("Q4_K_M/m-Q4_K_M-00001-of-00002.gguf", "Q4_K_M/m-Q4_K_M-00002-of-00002.gguf")
    assert any("mmproj-F16.gguf" in n for n in plan.notes)  # listed apart, never added
    assert plan_from_listing(LISTING, path=None, quant="q8_0", where="w").paths == ("m-Q8_0.gguf",)
    with pytest.raises(SourceError, match="no GGUF file or split set named with quant Q6_K"):
        plan_from_listing(LISTING, path=None, quant="Q6_K", where="w")
    with pytest.raises(SourceError, match="missing BF16/m-BF16-00002-of-00003.gguf"):
        plan_from_listing(LISTING, path=None, quant="BF16", where="w")


def test_plan_paths_and_folders() -> None:
    assert plan_from_listing(LISTING, path="Q4_K_M/m-Q4_K_M-00002-of-00002.gguf", quant=None, where="w").paths == \
        ("Q4_K_M/m-Q4_K_M-00001-of-00002.gguf", "Q4_K_M/m-Q4_K_M-00002-of-00002.gguf")
    assert plan_from_listing(LISTING, path="Q4_K_M", quant=None, where="w").paths == \
        ("Q4_K_M/m-Q4_K_M-00001-of-00002.gguf", "Q4_K_M/m-Q4_K_M-00002-of-00002.gguf")
    with pytest.raises(SourceError, match="did you mean m-Q8_0.gguf"):
        plan_from_listing(LISTING, path="m-Q8_O.gguf", quant=None, where="w")
    with pytest.raises(SourceError, match="not a .gguf, .safetensors or safetensors index"):
        plan_from_listing(LISTING, path="README.md", quant=None, where="w")


def test_plan_safetensors_first_and_consolidated_once() -> None:
    listing = {"consolidated.safetensors": 10, "model-00001-of-00002.safetensors": 5,
               "model-00002-of-00002.safetensors": 5, "m-Q8_0.gguf": 9}
    plan = plan_from_listing(listing, path=None, quant=None, where="w")
    assert plan.format == "safetensors"
    assert plan.paths == ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
    assert any("also holds 1 GGUF" in n for n in plan.notes)
    assert plan_from_listing(listing, path=None, quant="Q8_0", where="w").paths == ("m-Q8_0.gguf",)
    only_st = {"model.safetensors": 5}
    assert plan_from_listing(only_st, path=None, quant="Q4_K_M", where="w").paths == ("model.safetensors",)
    with pytest.raises(SourceError, match="model files are in subfolders: transformer"):
        plan_from_listing({"transformer/x.safetensors": 1}, path=None, quant=None, where="w")


# ==================================================================================================================
# against the fake Hub
# ==================================================================================================================
def test_sharded_safetensors_equals_local_with_one_request_per_file(hub: FakeHub, repos: dict[str, Path]) -> None:
    resolved = resolve_hub("org/sharded")
    remote = read_checkpoint(resolved)
    local = read_checkpoint(resolve_local(str(repos["sharded"])))
    same_numbers(remote, local)
    assert resolved.index == json.loads((repos["sharded"] / "model.safetensors.index.json").read_text())
    shards = sorted(repos["sharded"].glob("*.safetensors"))
    # listing + index + config.json + one ranged GET per shard (its /resolve and the CDN it redirects to)
    assert resolved.fetch_stats()["requests"] == 3 + 2 * len(shards) == hub.count()
    assert hub.count("tree") == 1 and hub.count("resolve") == 2 + len(shards) and hub.count("cdn") == len(shards)
    assert all(r.range.startswith("bytes=0-") for r in hub.records if r.kind == "cdn")
    # body bytes: the side files in full, and the shard headers within ~20 % (first blocks sized from the index)
    side = sum((repos["sharded"] / n).stat().st_size for n in ("model.safetensors.index.json", "config.json"))
    headers = sum(header_len(p) for p in shards)
    shard_bytes = hub.bytes_sent("cdn")
    assert headers <= shard_bytes <= 1.2 * headers + len(shards) * 4096
    assert resolved.fetch_stats()["bytes"] == hub.bytes_sent("tree") + side + shard_bytes
    assert not any(r.auth for r in hub.records if r.kind == "cdn")  # the token never leaves the Hub origin


def test_single_safetensors_and_revisions(hub: FakeHub, repos: dict[str, Path]) -> None:
    resolved = resolve_hub("org/single")
    same_numbers(read_checkpoint(resolved), read_checkpoint(resolve_local(str(repos["single"]))))
    assert resolved.fetch_stats()["requests"] == 4 == hub.count()  # listing, config.json, /resolve + CDN
    for kwargs in ({"source": "org/single@refs/pr/1"}, {"source": "org/single", "revision": "refs/pr/1"},
                   {"source": "hf://org/single@refs%2Fpr%2F1/model.safetensors"}):
        pr = read_checkpoint(resolve_hub(**kwargs))
        assert {t.dtype for t in pr.tensors} == {"F16"}, kwargs
        same_numbers(pr, read_checkpoint(resolve_local(str(repos["single-pr"]))))
    commit = hub.repos["org/single"].commits["v1.0"]
    assert read_checkpoint(resolve_hub(f"org/single@{commit}")).files[0].size == \
        (repos["single"] / "model.safetensors").stat().st_size
    assert read_checkpoint(resolve_hub("org/single@v1.0")).files[0].path == "hf://org/single@v1.0/model.safetensors"
    with pytest.raises(UsageError, match="give it once"):
        resolve_hub("org/single@v1.0", revision="main")


def test_multi_quant_repo_lists_quants_from_the_listing_alone(hub: FakeHub, repos: dict[str, Path]) -> None:
    listing = resolve_hub("org/quants")
    assert isinstance(listing, HubListing)
    q = repos["quants"]
    split = sorted((q / "Q4_K_M").glob("*.gguf"))
    assert [(r.name, r.quant, r.files, r.bytes) for r in listing.rows] == [
        ("Q4_K_M/model-Q4_K_M", "Q4_K_M", tuple(f"Q4_K_M/{p.name}" for p in split), sum(p.stat().st_size for p in split)),
        ("model-Q8_0.gguf", "Q8_0", ("model-Q8_0.gguf",), (q / "model-Q8_0.gguf").stat().st_size),
    ]
    assert [(e.path, e.bytes, e.kind) for e in listing.extras] == \
           [("mmproj-model-F16.gguf", (q / "mmproj-model-F16.gguf").stat().st_size, "mmproj")]
    assert listing.fetch["requests"] == 1 and hub.count() == 1, hub.records  # nothing but the listing
    assert json.loads(json.dumps(listing.to_dict()))["quants"][0]["complete"] is True


def test_quant_selects_split_set_in_folder(hub: FakeHub, repos: dict[str, Path]) -> None:
    resolved = resolve_hub("org/quants", quant="Q4_K_M")
    assert resolved.format == "gguf" and len(resolved.files) == 3
    assert any("mmproj-model-F16.gguf" in n for n in resolved.notes)
    remote = read_checkpoint(resolved)
    local = read_checkpoint(resolve_local(str(repos["quants"]), quant="Q4_K_M"))
    same_numbers(remote, local)
    assert [f.path for f in remote.files] == [f"hf://org/quants@main/Q4_K_M/model-Q4_K_M-0000{i}-of-00003.gguf"
                                              for i in (1, 2, 3)]
    # listing + one ranged GET per shard (no config.json in this repo): shard 1's ~0.6 MB header fits 960 KiB
    assert resolved.fetch_stats()["requests"] == 1 + 2 * 3 == hub.count()
    assert hub.count("cdn") == 3
    header_total = sum(f.header_bytes for f in remote.files)
    shard_bytes = hub.bytes_sent("cdn")
    # shard 1: at most the first block; later shards: a third of a model's tensor-info budget each (88 KiB)
    assert header_total <= shard_bytes <= max(remote.files[0].header_bytes, GGUF_FIRST_BLOCK) + 2 * (88 << 10)


def test_file_option_and_path_refs_pick_one_model(hub: FakeHub, repos: dict[str, Path]) -> None:
    q = repos["quants"]
    single = read_checkpoint(resolve_hub("org/quants", file="model-Q8_0.gguf"))
    same_numbers(single, read_checkpoint(resolve_local(str(q / "model-Q8_0.gguf"))))
    any_shard = resolve_hub("org/quants/Q4_K_M/model-Q4_K_M-00002-of-00003.gguf")
    assert len(any_shard.files) == 3
    folder = resolve_hub("hf://org/quants@main/Q4_K_M")
    assert [f.name for f in folder.files] == [f.name for f in any_shard.files]
    with pytest.raises(SourceError, match="no file or folder 'model-Q5_K_M.gguf'"):
        resolve_hub("org/quants", file="model-Q5_K_M.gguf")
    with pytest.raises(SourceError, match="no GGUF file or split set named with quant IQ2_XS"):
        resolve_hub("org/quants", quant="IQ2_XS")


def test_long_gguf_header_continues_where_the_last_read_ended(hub: FakeHub, repos: dict[str, Path]) -> None:
    path = repos["bigtok"] / "model-Q8_0.gguf"
    resolved = resolve_hub("org/bigtok")
    remote = read_checkpoint(resolved)
    same_numbers(remote, read_checkpoint(resolve_local(str(path))))
    header = remote.files[0].header_bytes
    assert header > 2 * GGUF_FIRST_BLOCK
    ranges = [r.range for r in hub.records if r.kind == "cdn"]
    spans = [tuple(int(x) for x in r[len("bytes="):].split("-")) for r in ranges]
    assert spans[0] == (0, GGUF_FIRST_BLOCK - 1)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start == end + 1  # never from byte 0 again, never a byte twice
    # later reads go straight to the CDN URL (one hop): /resolve was asked once
    assert hub.count("resolve") == 1 and len(spans) == resolved.fetch_stats()["requests"] - 2  # listing, /resolve
    assert len(spans) <= 4
    assert header <= hub.bytes_sent("cdn") <= 2 * header  # the cursor's doubling reads bound the overshoot


def test_safetensors_header_longer_than_the_estimate_costs_one_more_request(
        hub: FakeHub, repos: dict[str, Path], tmp_path: Path) -> None:
    repo = tmp_path / "lying-index"
    # cp --sparse=always keeps the shards' holes: shutil.copytree would write ~44 GB of zeros.
    subprocess.run(["cp", "-r", "--sparse=always", str(repos["sharded"]), str(repo)], check=True)
    index = json.loads((repo / "model.safetensors.index.json").read_text())
    first = next(iter(index["weight_map"].values()))
    kept = {k: v for k, v in index["weight_map"].items() if v != first}
    kept[next(k for k, v in index["weight_map"].items() if v == first)] = first  # shard 1 looks nearly empty
    index["weight_map"] = kept
    (repo / "model.safetensors.index.json").write_text(json.dumps(index))
    hub.add_repo("org/lying", repo)
    resolved = resolve_hub("org/lying")
    remote = read_checkpoint(resolved)
    assert any("tensors the index does not list" in w for w in remote.warnings)
    shard1 = [r for r in hub.records if r.kind == "cdn" and first in r.path]
    assert len(shard1) == 2
    (a0, a1), (b0, b1) = (tuple(int(x) for x in r.range[6:].split("-")) for r in shard1)
    assert a0 == 0 and b0 == a1 + 1 and b1 == header_len(repo / first) - 1  # only the missing tail
    assert resolved.fetch_stats()["requests"] == 3 + 2 * 4 + 1 == hub.count()


def test_gated_repo(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(HubGatedRepo) as info:
        read_checkpoint(resolve_hub("org/gated"))
    message = str(info.value)
    assert "gated" in message and "request access" in message and "token" in message and "\n" not in message
    hub.tokens.add("hf_other")
    with pytest.raises(HubGatedRepo, match="has no access to it yet"):
        read_checkpoint(resolve_hub("org/gated", token="hf_other"))
    assert read_checkpoint(resolve_hub("org/gated", token="hf_good")).tensors
    monkeypatch.setenv("HF_TOKEN", "hf_good")  # as huggingface_hub resolves it
    hub.reset()
    assert read_checkpoint(resolve_hub("org/gated")).tensors
    assert all(r.auth for r in hub.records if r.kind in ("tree", "resolve"))


def test_one_line_errors(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    cases = [
        (lambda: resolve_hub("org/nope"), HubRepoNotFound, "org/nope: repository not found"),
        (lambda: resolve_hub("org/private"), HubRepoNotFound, "private repo needs a token"),
        (lambda: resolve_hub("org/single@nobranch"), HubRevisionNotFound, "revision 'nobranch' not found"),
        (lambda: resolve_hub("org/single", token="hf_bad"), HubUnauthorized, "rejected the token"),
        (lambda: resolve_hub("org/single/nothing.safetensors"), SourceError, "no file or folder"),
    ]
    for call, kind, text in cases:
        with pytest.raises(kind) as info:
            call()
        assert text in str(info.value) and "\n" not in str(info.value)
        assert info.value.exit_code == 1
    assert read_checkpoint(resolve_hub("org/private", token="hf_good")).tensors


def test_network_unreachable(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connections are refused
    point_huggingface_hub_at(f"http://127.0.0.1:{port}", monkeypatch)
    with pytest.raises(HubNetworkError, match="cannot reach 127.0.0.1") as info:
        resolve_hub("org/single")
    # fails fast: MAX_CONNECT_TRIES attempts (3), not the 5 of an answering server
    assert f"after {hub_http.MAX_CONNECT_TRIES} tries" in str(info.value) and hub_http.MAX_CONNECT_TRIES == 3
    assert "HF_HUB_OFFLINE=1" in str(info.value) and isinstance(info.value, RemoteError)


def test_header_cap_is_a_format_error(hub: FakeHub, tmp_path: Path) -> None:
    repo = tmp_path / "huge-header"
    repo.mkdir()
    with open(repo / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", 200_000_000) + b"{")
        f.truncate(300_000_000)
    hub.add_repo("org/huge", repo)
    from inspector.errors import FormatError
    with pytest.raises(FormatError, match="exceeds the safetensors cap"):
        read_checkpoint(resolve_hub("org/huge"))
    assert hub.bytes_sent("cdn") <= 128 << 10


def test_server_ignoring_range_is_not_downloaded(repos: dict[str, Path], env: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    hub = make_hub(repos, monkeypatch, ignore_range=True)
    try:
        resolved = resolve_hub("org/quants", quant="Q8_0")
        remote = read_checkpoint(resolved)
        path = repos["quants"] / "model-Q8_0.gguf"
        same_numbers(remote, read_checkpoint(resolve_local(str(path))))
        assert resolved.files[0].range_ignored
        size = path.stat().st_size
        assert size > 1 << 30  # a real-size (sparse) file: 3 GiB of zeros would have come over the wire
        got = resolved.fetch_stats()["bytes"]
        assert got <= GGUF_FIRST_BLOCK + (1 << 20)
        time.sleep(0.2)  # let the server notice the closed connection
        assert hub.bytes_sent("cdn") < 64 << 20  # what the socket buffers took before the close, not the file
    finally:
        hub.stop()


def test_rate_limit_then_success(repos: dict[str, Path], env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = make_hub(repos, monkeypatch, fail_first=2, fail_status=429)
    try:
        resolved = resolve_hub("org/sharded")
        same_numbers(read_checkpoint(resolved), read_checkpoint(resolve_local(str(repos["sharded"]))))
        assert sum(1 for r in hub.records if r.status == 429) == 2
        # the two retries are requests too (a 429 from /resolve is not redirected)
        assert resolved.fetch_stats()["requests"] == 3 + 2 * 4 + 2 == hub.count()
    finally:
        hub.stop()


def test_server_errors_give_up_with_a_clear_error(repos: dict[str, Path], env: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    hub = make_hub(repos, monkeypatch, fail_first=1000, fail_status=503)
    monkeypatch.setattr(hub_http, "MAX_TRIES", 3)
    try:
        with pytest.raises(HubNetworkError, match=r"kept failing \(HTTP 503\) after 3 tries"):
            read_checkpoint(resolve_hub("org/single"))
    finally:
        hub.stop()


def test_listing_pages_are_all_read(repos: dict[str, Path], env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = make_hub(repos, monkeypatch, page_size=2)
    try:
        listing = resolve_hub("org/quants")
        # 6 files (README.md, model-Q8_0.gguf, mmproj, 3 shards) + the folder Q4_K_M = 7 entries = 4 pages of 2;
        # page 1 says there are more: the revision is pinned to its commit (one small request), then the 4 pages
        # are read at that commit
        assert hub.count("tree") == 1 + 4 and hub.count("info") == 1 and listing.fetch["requests"] == 6
        assert len(listing.rows) == 2 and len(listing.rows[0].files) == 3
    finally:
        hub.stop()


def test_listing_size_must_match_content_range(hub: FakeHub, repos: dict[str, Path]) -> None:
    hub.listing_sizes["model.safetensors"] = (repos["single"] / "model.safetensors").stat().st_size + 4096
    with pytest.raises(RemoteError, match="the listing says .* but the server serves"):
        read_checkpoint(resolve_hub("org/single"))


def test_progress_reports_files_and_bytes(hub: FakeHub) -> None:
    calls: list[tuple[int, int, int]] = []
    resolved = resolve_hub("org/sharded", progress=lambda *a: calls.append(a))
    read_checkpoint(resolved)
    assert calls[-1][0] == calls[-1][1] == 4
    assert calls[-1][2] <= resolved.fetch_stats()["bytes"]
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


def test_shards_are_read_concurrently(repos: dict[str, Path], env: Path, monkeypatch: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:
    many = tmp_path / "many"
    write_safetensors(many, "mixtral-8x7b", shards=24, mode="header")
    # each answer takes 50 ms at the server, so requests sent together are seen together: the server's peak of
    # requests in progress at once says how many were in flight (counted, not timed)
    hub = make_hub(repos, monkeypatch, latency=0.05)
    hub.add_repo("org/many", many)
    try:
        read_checkpoint(resolve_hub("org/many"))
        assert hub.peak_busy >= 8, hub.peak_busy
        assert hub.peak_busy <= hub_http.WORKERS
    finally:
        hub.stop()


# ==================================================================================================================
# offline
# ==================================================================================================================
def test_offline_reads_the_local_cache(hub: FakeHub, repos: dict[str, Path], env: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants, snapshot_download

    small = tmp_path / "small-repo"
    write_safetensors(small, "mixtral-8x7b", shards=2, mode="header")
    hub.add_repo("org/small", small)
    snapshot_download("org/small")  # a real huggingface_hub cache layout (refs/, snapshots/, blobs/)
    online = read_checkpoint(resolve_hub("org/small"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub.reset()
    resolved = resolve_hub("org/small")
    offline = read_checkpoint(resolved)
    assert hub.count() == 0 and resolved.fetch_stats() == {"requests": 0, "bytes": 0}
    same_numbers(offline, online)
    assert [f.path for f in offline.files] == [f.path for f in online.files]
    assert any("offline" in n for n in resolved.notes)
    with pytest.raises(HubOfflineError, match="not in the local Hugging Face cache") as info:
        resolve_hub("org/sharded")
    assert "HF_HUB_OFFLINE" in str(info.value)
    with pytest.raises(HubOfflineError, match="revision 'refs/pr/9' is not in the local"):
        resolve_hub("org/small@refs/pr/9")


def test_file_gone_after_the_listing_is_a_source_error(hub: FakeHub) -> None:
    from inspector.sources.hub_files import HubFile
    from inspector.sources.hub_http import FetchStats, HubClient

    client = HubClient("org/single", "main", None, FetchStats())
    with pytest.raises(SourceError, match="no file 'gone.safetensors' in the repo"):
        HubFile(client, "gone.safetensors", 1000, 64).read(0, 8)


def test_importing_sources_does_not_import_huggingface_hub() -> None:
    import subprocess
    import sys

    code = "import sys, inspector.sources; print('huggingface_hub' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False"


def test_prefetch_window_and_out_of_order_reads(hub: FakeHub, repos: dict[str, Path],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_http, "WINDOW", 1)  # workers may run one file ahead of the reader
    monkeypatch.setattr(hub_http, "WORKERS", 2)
    resolved = resolve_hub("org/sharded")
    last = resolved.files[-1]
    head = last.read(0, 8)  # before the workers reach it: fetched inline, never twice
    assert len(head) == 8
    same_numbers(read_checkpoint(resolved), read_checkpoint(resolve_local(str(repos["sharded"]))))
    assert resolved.fetch_stats()["requests"] == 3 + 2 * 4 == hub.count()


# --- the command line on Hub refs ------------------------------------------------------------------------------

def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from inspector.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


def test_cli_hub_ref_gives_the_local_numbers_and_fetch_counts(hub: FakeHub, repos: dict[str, Path],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(["inspect", "org/sharded", "--format", "json", "--experts-on", "cpu", "-v"], capsys)
    remote = json.loads(out)
    code_local, out_local, _ = cli(["inspect", str(repos["sharded"]), "--format", "json", "--experts-on", "cpu"],
                                   capsys)
    local = json.loads(out_local)
    assert code == code_local == 0
    assert (remote["bytes"], remote["params"], remote["devices"]) == (local["bytes"], local["params"], local["devices"])
    # listing + index + config.json + one ranged GET per shard, and the CDN redirect of each
    assert remote["fetch"]["requests"] == 3 + 2 * 4
    assert f"Fetched: {remote['fetch']['requests']} requests" in err


def test_cli_multi_quant_repo_lists_then_selects(hub: FakeHub, repos: dict[str, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(["inspect", "org/quants", "--format", "csv"], capsys)
    rows = out.splitlines()
    assert code == 0 and rows[0] == "model,quant,files,bytes,note"
    assert [r.split(",")[1] for r in rows[1:]] == ["Q4_K_M", "Q8_0"]  # the mmproj file is not a model
    code, out, _ = cli(["inspect", "org/quants", "--quant", "Q4_K_M", "--format", "json"], capsys)
    doc = json.loads(out)
    local = read_checkpoint(resolve_local(str(repos["quants"]), quant="Q4_K_M"))
    assert code == 0 and doc["quant"]["mode"] == "selected" and doc["bytes"] == local.nbytes


def test_cli_fit_picks_the_best_quant_of_a_repo(hub: FakeHub, repos: dict[str, Path],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # Q8_0 of the full 28-block Llama-3.2-3B (~3.4 GB) cannot fit 2 GiB; the 4-block Q4_K_M set can.
    code, out, _ = cli(["fit", "org/quants", "--budget", "cuda:0=2GiB", "--budget", "cpu=2GiB", "--format", "json"],
                       capsys)
    doc = json.loads(out)
    assert code == 0 and doc["quant"] == "Q4_K_M/model-Q4_K_M"
    assert {q["quant"]: q["fits"] for q in doc["quants"]} == {"model-Q8_0.gguf": False, "Q4_K_M/model-Q4_K_M": True}
