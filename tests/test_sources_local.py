"""Local SOURCEs that are not plain model files, and inputs that must never be written (issue 11 #5, issue 17 #5-#6).

Every special file gets one clear `Error:` line and exit code 1, never a hang: FIFOs (an `open()` without
O_NONBLOCK blocks until a writer comes), devices, folders named like model files, unreadable files, symbolic link
loops, dangling links, unicode and very long paths. A mistyped path says which part exists and what is close,
and never turns into a Hub lookup. Hangs are caught by an alarm, not by timing anything.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from inspector.errors import SourceError, UsageError
from inspector.formats import read_checkpoint
from inspector.sources import open_repo, resolve_local
from inspector.sources.hub_http import HubNetworkError
from inspector.sources.paths import looks_like_path
from tests._bytes import small_gguf
from tests._cli import all_succeed, cli, no_hang, offline_hub_cache, tree_state

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "fixtures" / "models"
KT_RULES = ROOT / "fixtures" / "ktransformers-rules" / "DeepSeek-V3-Chat.yaml"


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def unreachable_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_ENDPOINT at a closed port: a Hub lookup would fail as a network error, which these tests must not see."""
    import socket

    from tests.hub_server import point_huggingface_hub_at

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    point_huggingface_hub_at(f"http://127.0.0.1:{port}", monkeypatch)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)


# ==================================================================================================================
# mistyped paths (issue 11 #5)
# ==================================================================================================================
@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "fixtures" / "models").mkdir(parents=True)
    (tmp_path / "fixtures" / "models" / "llama.gguf").write_bytes(small_gguf())
    (tmp_path / "README.md").write_text("hi\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("source, words", [
    ("fixtures/model", ["fixtures/model: no such file or directory", "fixtures/ exists but holds no 'model'",
                        "did you mean fixtures/models?", "hf://fixtures/model"]),
    ("fixtures/models/lama.gguf", ["fixtures/models/ exists but holds no 'lama.gguf'",
                                   "did you mean fixtures/models/llama.gguf?"]),
    ("fixtures/models/sub/deeper/x", ["fixtures/models/ exists but holds no 'sub'"]),
    ("./fixture", ["./fixture: no such file or directory", "did you mean fixtures?"]),
    ("../nowhere-at-all/x.gguf", ["no such file or directory"]),
    ("/nonexistent-root-dir/model.gguf", ["/ exists but holds no 'nonexistent-root-dir'"]),
    ("~/models/x.gguf", ["no such file or directory", "'~' is not expanded"]),
    ("modle.gguf", ["modle.gguf: no such file or directory", "the current folder exists but holds no"]),
    ("dir/model.safetensors", ["no such file or directory"]),
    ("config.json", ["no such file or directory"]),
    ("README.md/x", ["README.md is a file, not a folder"]),
    ("plainword", ["plainword: no such file or directory", "a Hub repo is written owner/name"]),
])
def test_a_mistyped_path_says_what_exists(workdir: Path, unreachable_hub: None, source: str, words: list[str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert looks_like_path(source) or "/" not in source
    with pytest.raises(SourceError) as info:  # never a HubNetworkError: the Hub was not asked
        open_repo(source)
    message = str(info.value)
    for w in words:
        assert w in message, message
    code, out, err = cli(["inspect", source], capsys)
    assert code == 1 and out == ""
    assert one_error_line(err) == f"Error: {message}"


def test_owner_name_that_is_not_local_goes_to_the_hub_and_says_why(workdir: Path, unreachable_hub: None,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from inspector.sources import hub_http

    monkeypatch.setattr(hub_http, "RETRY_BASE_WAIT", 0.01)
    assert not looks_like_path("someone/some-model")
    with pytest.raises(HubNetworkError) as info:
        open_repo("someone/some-model")
    assert "tried the Hub because 'someone/some-model' is not a local path" in str(info.value)
    with pytest.raises(HubNetworkError) as info:  # explicit Hub refs do not need the explanation
        open_repo("hf://someone/some-model")
    assert "not a local path" not in str(info.value)


def test_owner_name_when_offline_and_not_cached(workdir: Path, unreachable_hub: None, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    from inspector.sources.hub_http import HubOfflineError

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(HubOfflineError) as info:
        open_repo("someone/some-model@v2")
    assert "tried the local Hugging Face cache because 'someone/some-model' is not a local path" in str(info.value)


def test_local_path_with_hub_options_is_a_usage_error(workdir: Path) -> None:
    from inspector.sources import HubOptions

    with pytest.raises(UsageError, match="--file and --revision are for Hub repos"):
        open_repo("fixtures/models", HubOptions(file="x.gguf"))


def test_local_view_quants_and_selection(workdir: Path) -> None:
    folder = workdir / "fixtures" / "models"
    shutil.copy(folder / "llama.gguf", folder / "llama-Q8_0.gguf")
    view = open_repo("fixtures/models")
    assert view.kind == "local" and view.fetch_stats() is None and view.listing() is None
    assert [(q.name, q.quant, len(q.files)) for q in view.quants()] == [("llama-Q8_0.gguf", "Q8_0", 1),
                                                                         ("llama.gguf", None, 1)]
    assert view.choices() == view.quants()
    with pytest.raises(UsageError, match="holds 2 GGUF models"):
        view.select()
    assert view.select("Q8_0").quant_selected
    assert view.select(model="llama.gguf").files[0].name.endswith("fixtures/models/llama.gguf")
    with pytest.raises(SourceError, match="no GGUF model named 'nope'"):
        view.select(model="nope")
    single = open_repo("fixtures/models/llama.gguf")
    assert [q.name for q in single.quants()] == ["llama.gguf"] and single.choices() == ()


# ==================================================================================================================
# special files as SOURCE (issue 17 #6)
# ==================================================================================================================
@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    os.mkfifo(path)
    return path


def test_fifo_source_is_refused_without_blocking(fifo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(["inspect", str(fifo)], capsys)
    assert code == 1 and out == ""
    assert "is a FIFO (named pipe), not a regular file or folder" in one_error_line(err)
    for command in (["fit", str(fifo), "--budget", "cuda:0=8GiB"], ["validate", str(KT_RULES), str(fifo)]):
        code, _, err = cli(command, capsys)
        assert code == 1 and "is a FIFO" in one_error_line(err)


def test_fifo_behind_other_names_never_blocks(fifo: Path, tmp_path: Path) -> None:
    from inspector.sources.base import LocalFile
    from inspector.sources.local import sniff_format

    with no_hang():
        with pytest.raises(SourceError, match="is a FIFO"):
            LocalFile(fifo).read(0, 8)  # the parsers' reader refuses it too
        with pytest.raises(SourceError, match="is a FIFO"):
            sniff_format(fifo)
        # a FIFO named config.json next to a model is not read (the model inspects without a config)
        folder = tmp_path / "m"
        folder.mkdir()
        (folder / "model.gguf").write_bytes(small_gguf())
        os.mkfifo(folder / "config.json")
        assert read_checkpoint(resolve_local(str(folder))).config is None
        # a FIFO as a shard of a split set, or as a shard an index names
        split = tmp_path / "split"
        split.mkdir()
        (split / "m-00001-of-00002.gguf").write_bytes(small_gguf())
        os.mkfifo(split / "m-00002-of-00002.gguf")
        with pytest.raises(SourceError, match="is a FIFO"):
            resolve_local(str(split / "m-00001-of-00002.gguf"))
        index = tmp_path / "st"
        index.mkdir()
        (index / "model.safetensors.index.json").write_text('{"weight_map": {"a": "model-1.safetensors"}}')
        os.mkfifo(index / "model-1.safetensors")
        with pytest.raises(SourceError, match="model-1.safetensors listed in the index is not a regular file"):
            resolve_local(str(index))
        index_fifo = tmp_path / "x.safetensors.index.json"
        os.mkfifo(index_fifo)
        with pytest.raises(SourceError, match="is a FIFO"):
            open_repo(str(index_fifo))


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_devices_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(["inspect", "/dev/zero"], capsys)
    assert code == 1 and "/dev/zero is a character device, not a regular file or folder" in one_error_line(err)
    link = tmp_path / "zero.gguf"
    link.symlink_to("/dev/zero")  # a model-looking name does not make it a file
    code, _, err = cli(["inspect", str(link)], capsys)
    assert code == 1 and "zero.gguf is a character device" in one_error_line(err)


def test_folder_named_like_a_model_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    odd = tmp_path / "x.gguf"
    odd.mkdir()
    code, _, err = cli(["inspect", str(odd)], capsys)
    assert code == 1 and "x.gguf: no .gguf or .safetensors model files in this directory" in one_error_line(err)
    # beside a real model, a folder named y.gguf is not taken for a second model
    (odd / "y.gguf").mkdir()
    (odd / "model.gguf").write_bytes(small_gguf())
    code, out, err = cli(["inspect", str(odd), "--format", "json"], capsys)
    assert code == 0 and '"tensor_count": 2' in out


def test_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.gguf"
    path.write_bytes(small_gguf())
    real_open = os.open

    def denied(name: object, flags: int, *args: object) -> int:
        if os.fspath(name) == str(path):  # type: ignore[arg-type]
            raise PermissionError(errno.EACCES, "Permission denied", str(name))
        return real_open(name, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", denied)
    code, _, err = cli(["inspect", str(path)], capsys)
    assert code == 1 and f"{path}: permission denied" in one_error_line(err)


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root reads any file")
def test_unreadable_file_for_real(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "secret.gguf"
    path.write_bytes(small_gguf())
    path.chmod(0)
    code, _, err = cli(["inspect", str(path)], capsys)
    assert code == 1 and "permission denied" in one_error_line(err)


def test_symbolic_link_loops_and_dangling_links(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    a.symlink_to(b)
    b.symlink_to(a)
    code, _, err = cli(["inspect", str(a)], capsys)
    assert code == 1 and f"{a}: symbolic link loop" in one_error_line(err)
    gone = tmp_path / "gone.gguf"
    gone.symlink_to(tmp_path / "deleted-blob")
    code, _, err = cli(["inspect", str(gone)], capsys)
    assert code == 1 and "is a symbolic link to" in one_error_line(err) and "which does not exist" in err


def test_unicode_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "modèles 模型 ü"
    folder.mkdir()
    (folder / "mödel-Q8_0.gguf").write_bytes(small_gguf())
    code, out, _ = cli(["inspect", str(folder / "mödel-Q8_0.gguf")], capsys)
    assert code == 0 and "modèles 模型 ü/mödel-Q8_0.gguf" in out
    code, _, err = cli(["inspect", str(folder / "mödel-Q4_0.gguf")], capsys)
    line = one_error_line(err)
    assert code == 1 and "mödel-Q4_0.gguf: no such file or directory" in line and "mödel-Q8_0.gguf?" in line


def test_very_long_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = cli(["inspect", str(tmp_path / ("x" * 300 + ".gguf"))], capsys)
    line = one_error_line(err)
    assert code == 1 and "path too long" in line and len(line) < 400  # the path is shortened in the message
    code, _, err = cli(["inspect", "/".join(["d" * 200] * 30) + "/m.gguf"], capsys)
    assert code == 1 and "path too long" in one_error_line(err)
    # a long path that exists works: 20 nested folders of 100 characters (> 2,000 characters in all)
    monkeypatch.chdir(tmp_path)
    deep = Path(*(["f" * 100] * 20))
    deep.mkdir(parents=True)
    (deep / "m.gguf").write_bytes(small_gguf())
    code, out, _ = cli(["inspect", str(deep / "m.gguf"), "--format", "json"], capsys)
    assert code == 0 and '"tensor_count": 2' in out


# ==================================================================================================================
# inputs are never written (issue 17 #5)
# ==================================================================================================================
def test_inspect_fit_validate_never_write_their_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = tmp_path / "inputs"
    shutil.copytree(MODELS, inputs / "models")  # the fixtures are header-only or sparse and small on disk
    shutil.copy(KT_RULES, inputs / "rules.yaml")
    before = tree_state(inputs)
    ds, llama, mixtral = (str(inputs / "models" / n) for n in
                          ("deepseek-v3.1-q4_k_m.gguf", "llama-3.2-3b-f16.gguf", "mixtral-8x7b-bf16"))
    commands = [
        ["inspect", ds, "--experts-on", "cpu", "--format", "json"],
        ["inspect", mixtral, "--quant", "Q4_K_M", "-ngl", "99", "--ctx", "4096"],
        ["inspect", str(inputs / "models" / "mixtral-8x7b-bf16" / "model.safetensors.index.json"), "--by", "tensor"],
        ["inspect", str(inputs / "models"), "--quant", "Q8_0"],
        ["inspect", llama, "--quant-list"],
        ["inspect", ds, "--placement", str(inputs / "rules.yaml"), "--ctx", "4096"],
        ["fit", llama, "--budget", "cuda:0=4GiB", "--ctx", "8192"],
        ["fit", mixtral, "--budget", "cuda:0=24GiB", "--budget", "cpu=128GiB", "--quant", "Q4_K_M"],
        ["validate", str(inputs / "rules.yaml"), ds, "--gpus", "2"],
    ]
    all_succeed(commands, capsys)
    assert tree_state(inputs) == before


def test_offline_cache_is_never_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from fixtures.generate import write_gguf, write_safetensors

    repo = tmp_path / "repo"
    write_safetensors(repo, "mixtral-8x7b", shards=2, mode="header")
    quants = tmp_path / "quants"
    for q in ("Q8_0", "Q4_0"):
        write_gguf(quants / f"m-{q}.gguf", "llama-3.2-3b", tensor_type=q, n_layers=2, mode="header")
    with offline_hub_cache(tmp_path, monkeypatch, {"org/small": repo, "org/quants": quants}) as (hub, cache):
        before = tree_state(cache)
        all_succeed([
            ["inspect", "org/small", "--format", "json", "-v"],
            ["inspect", "org/small", "--quant", "Q4_K_M"],
            ["inspect", "org/quants"],
            ["inspect", "org/quants", "--quant", "Q8_0"],
            ["fit", "org/small", "--budget", "cuda:0=200GiB"],
            ["fit", "org/quants", "--budget", "cuda:0=1GiB"],
            ["validate", str(KT_RULES), "org/small"],
        ], capsys)
        assert hub.count() == 0  # offline: nothing went to the network
    assert tree_state(cache) == before
