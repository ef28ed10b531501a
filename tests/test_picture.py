"""`--format svg` and `--format html`: structure, escaping, and bar widths against the JSON of the same command.

Every expected number here comes from the JSON output (`--format json`) of the same command line, never from
the picture code. The scale is the documented one (docs/pictures.md): every bar of a picture shares
`W / F` pixels per byte, W = 800 px (480 px per panel when quants are compared), F the largest total or
budget of any device; a segment of B bytes starting O bytes into its bar has x = round(O * W / F, 2) and
width = round(B * W / F, 2). The browser test (test_picture_browser.py) measures the same in Chromium.
"""
from __future__ import annotations

import json
import re
import shlex
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterator

import gguf
import numpy as np
import pytest

from fixtures.generate import _write_gguf_file, write_gguf
from inspector.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "fixtures" / "models"
DEEPSEEK = str(MODELS / "deepseek-v3.1-q4_k_m.gguf")
LLAMA = str(MODELS / "llama-3.2-3b-f16.gguf")
QWEN3MOE = str(MODELS / "qwen3-moe-q8_0.gguf")
SVG = "{http://www.w3.org/2000/svg}"
WIDTH, PANEL_WIDTH = 800, 480  # docs/pictures.md
# llama.cpp's memory table after the weights, in its column order (docs/memory.md): the parts a bar shows.
LLAMA_CPP_PARTS = ("kv_cache", "state", "buffers", "overhead")
NAMESPACE_ATTR = 'xmlns="http://www.w3.org/2000/svg"'  # a namespace name, not an address: nothing is fetched


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


def device_order(device: str) -> tuple[int, int]:
    """GPUs by index, then the CPU (DESIGN.md)."""
    return (0, int(device.split(":")[1])) if device.startswith("cuda:") else (1, 0)


# --- what the JSON says the bars must be -----------------------------------------------------------------


def expected_bar(entry: dict[str, Any] | None, budget: int | None) -> dict[str, Any]:
    """One device's segments [(part, bytes, offset)], its total, extent and bytes over budget, from JSON."""
    entry = entry or {}
    roles = [(role, r["bytes"]) for role, r in entry.get("roles", {}).items()]
    if "total" in entry:  # a memory table: the weights it lists are the roles' sum
        assert entry["weights"] == sum(b for _, b in roles)
        pieces = roles + [(k, entry[k]) for k in LLAMA_CPP_PARTS]
        total = entry["total"]
    else:
        pieces, total = roles, entry.get("bytes", 0)
    segments, offset = [], 0
    for part, size in pieces:
        if size:
            segments.append((part, size, offset))
            offset += size
    assert offset == total
    if budget is not None and budget > total:
        segments.append(("free", budget - total, total))
    over = max(0, total - budget) if budget is not None else 0
    return {"segments": segments, "total": total, "extent": max(total, budget or 0), "over": over,
            "budget": budget}


def expected_inspect(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    devices = {d: e for d, e in doc["devices"].items() if d != "not loaded"}
    budgets = {d: v["budget"] for d, v in (doc.get("budget") or {"devices": {}})["devices"].items()}
    return {d: expected_bar(devices.get(d), budgets.get(d))
            for d in sorted(set(devices) | set(budgets), key=device_order)}


# --- what the SVG draws --------------------------------------------------------------------------------


def drawn_bars(root: ET.Element, scale: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """Per bar group of that scale, in document order: device, and its rects with data-bytes."""
    out = []
    for g in root.iter(f"{SVG}g"):
        if g.get("class") == "bar" and g.get("data-scale") == scale:
            rects = [{"part": r.get("data-part"), "bytes": int(r.get("data-bytes")), "cls": r.get("class"),
                      "offset": int(r.get("data-offset")), "x": float(r.get("x")), "width": float(r.get("width"))}
                     for r in g.iter(f"{SVG}rect") if r.get("data-bytes") is not None]
            out.append((g.get("data-device"), rects))
    return out


def check_bar(rects: list[dict[str, Any]], want: dict[str, Any], px_per_byte: float) -> None:
    segs = [r for r in rects if r["cls"] == "seg"]
    assert [(r["part"], r["bytes"], r["offset"]) for r in segs] == want["segments"]
    for r in segs:  # the documented rule, with the JSON's bytes and offsets
        assert r["x"] == round(r["offset"] * px_per_byte, 2)
        assert r["width"] == round(r["bytes"] * px_per_byte, 2)
    over = [r for r in rects if r["cls"] == "over"]
    if want["over"]:
        assert [(r["bytes"], r["offset"]) for r in over] == [(want["over"], want["budget"])]
        assert over[0]["x"] == round(want["budget"] * px_per_byte, 2)
        assert over[0]["width"] == round(want["over"] * px_per_byte, 2)
    else:
        assert over == []


def check_picture(svg: str, bars: dict[str, dict[str, Any]], width: int = WIDTH) -> ET.Element:
    root = ET.fromstring(svg.split("\n", 1)[1] if svg.startswith("<?xml") else svg)
    full = max(b["extent"] for b in bars.values())
    shared = drawn_bars(root, "shared")
    assert [d for d, _ in shared] == list(bars)  # GPUs first, then the CPU
    for device, rects in shared:
        check_bar(rects, bars[device], width / full)
    own = drawn_bars(root, "own")
    if len(bars) > 1 and any(0 < b["extent"] < full / 4 for b in bars.values()):
        assert [d for d, _ in own] == [d for d, b in bars.items() if 0 < b["extent"] < full]
        for device, rects in own:
            check_bar(rects, bars[device], width / bars[device]["extent"])
    else:
        assert own == []
    return root


def assert_offline(page: str) -> None:
    """No address anywhere but the SVG namespace name; no script, no external reference."""
    rest = page.replace(NAMESPACE_ATTR, "")
    assert not re.search(r"https?:|//[a-z0-9]", rest, re.I)
    assert not re.search(r"url\((?!#ckpt-)", rest)
    parsed = Tags()
    parsed.feed(page)
    assert "script" not in parsed.tags
    assert not {a for a in parsed.attributes if a.endswith(("href", "src")) or a.startswith("on")}


# --- inspect --------------------------------------------------------------------------------------------

INSPECT_CASES = {
    # the example of docs/pictures.md: fits, free space, buffers estimated; the GPU drawn again at its scale
    "deepseek-24g": [DEEPSEEK, "-ngl", "99", "--cpu-moe", "--ctx", "32768", "--budget", "cuda:0=24GiB"],
    # over one budget, a budgeted GPU that holds nothing (all free), the CPU without a budget
    "llama-over": [LLAMA, "--budget", "cuda:0=1GiB", "--budget", "cuda:1=2GiB"],
    # weights only: no memory table, no budget
    "qwen3moe-experts-cpu": [QWEN3MOE, "--experts-on", "cpu"],
    "qwen3moe-two-gpus": [QWEN3MOE, "-ngl", "99", "-ts", "1,1", "--n-cpu-moe", "20", "--ctx", "16384",
                          "--budget", "cuda:0=12GiB", "--budget", "cuda:1=12GiB", "--budget", "cpu=64GiB"],
}


@pytest.mark.parametrize("name", sorted(INSPECT_CASES))
def test_inspect_svg_bars_match_the_json(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["inspect", *INSPECT_CASES[name]]
    code_json, out, _ = cli([*args, "--format", "json"], capsys)
    code_svg, svg, _ = cli([*args, "--format", "svg"], capsys)
    assert code_svg == code_json  # the picture keeps the verdict's exit code (3 when over a budget)
    assert svg.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<svg ')
    bars = expected_inspect(json.loads(out))
    check_picture(svg, bars)
    assert_offline(svg)


def test_the_documented_case_has_what_the_docs_say(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/pictures.md: the GPU at 24 GiB with KV and estimated buffers, free space, the CPU without budget."""
    code, out, _ = cli(["inspect", *INSPECT_CASES["deepseek-24g"], "--format", "json"], capsys)
    bars = expected_inspect(json.loads(out))
    assert list(bars) == ["cuda:0", "cpu"]
    gpu = dict((p, b) for p, b, _ in bars["cuda:0"]["segments"])
    assert gpu["free"] == 24 * 2**30 - bars["cuda:0"]["total"] > 0
    assert {"kv_cache", "buffers", "attention", "output"} <= set(gpu)
    _, svg, _ = cli(["inspect", *INSPECT_CASES["deepseek-24g"], "--format", "svg"], capsys)
    root = check_picture(svg, bars)
    labels = "".join(root.itertext())
    assert "24.00 GiB budget: fits" in labels and "25,769,803,776" in labels  # binary units and exact bytes
    assert "buffers (est.)" in labels  # the estimate is named as one in the legend
    assert 'data-kind="estimate"' in svg and 'fill="url(#ckpt-estimate)"' in svg  # and hatched


def test_the_docs_example_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/pictures.md shows docs/images/deepseek-24g.svg: it is what the command draws today."""
    _, svg, _ = cli(["inspect", *INSPECT_CASES["deepseek-24g"], "--format", "svg"], capsys)
    svg = svg.replace(str(ROOT) + "/", "")  # the docs ran the command from the checkout with a relative path
    assert (ROOT / "docs" / "images" / "deepseek-24g.svg").read_text(encoding="utf-8") == svg, (
        "regenerate: ckpt-size inspect fixtures/models/deepseek-v3.1-q4_k_m.gguf -ngl 99 --cpu-moe --ctx 32768 "
        "--budget cuda:0=24GiB --format svg > docs/images/deepseek-24g.svg")


def test_over_budget_is_drawn_as_such(capsys: pytest.CaptureFixture[str]) -> None:
    code, svg, _ = cli(["inspect", *INSPECT_CASES["llama-over"], "--format", "svg"], capsys)
    assert code == 3
    root = ET.fromstring(svg.split("\n", 1)[1])
    text = "".join(root.itertext())
    over = 7_170_863_360 - 2**30  # the JSON's cuda:0 total (weights + KV at 4,096 tokens + buffers) - 1 GiB
    assert f"over by {over:,}" in text
    assert "0 B of 2.00 GiB budget: fits, 2.00 GiB free" in text  # cuda:1 holds nothing


def test_html_holds_the_same_drawing_and_the_exact_table(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["inspect", *INSPECT_CASES["deepseek-24g"]]
    _, svg, _ = cli([*args, "--format", "svg"], capsys)
    _, page, _ = cli([*args, "--format", "html"], capsys)
    _, out, _ = cli([*args, "--format", "json"], capsys)
    assert page.startswith("<!DOCTYPE html>\n")
    assert svg.split("\n", 1)[1].strip() in page  # `--format svg` is the page's drawing, byte for byte
    assert_offline(page)
    doc = json.loads(out)
    cells = {int(v) for v in re.findall(r'<td class="n" data-bytes="(\d+)"', page)}
    for device, entry in doc["devices"].items():
        assert entry["total"] in cells
        assert all(r["bytes"] in cells for r in entry["roles"].values())
    assert doc["budget"]["devices"]["cuda:0"]["headroom"] in cells
    parsed = Tags()
    parsed.feed(page)
    assert parsed.tags <= SAFE_TAGS


# --- escaping ------------------------------------------------------------------------------------------

HOSTILE_TENSOR = "<img src=x onerror=alert(1)>\x1b[31m&amp;"
SAFE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "div", "svg", "defs", "pattern",
             "rect", "circle", "g", "text", "line", "ul", "li", "table", "thead", "tbody", "tr", "th", "td", "p",
             "footer"}


class Tags(HTMLParser):
    """Every element and attribute name of a page, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(a for a, _ in attrs)


def hostile_gguf(folder: Path) -> Path:
    """A file whose name and one tensor name are markup (and a terminal escape): both reach the page."""
    path = folder / "m<b>&\"x'.gguf"
    shapes = (("token_embd.weight", (32, 64)), ("blk.0.attn_q.weight", (32, 32)), (HOSTILE_TENSOR, (16,)))
    tensors = [(name, shape, gguf.GGMLQuantizationType.F32, 4 * int(np.prod(shape))) for name, shape in shapes]
    _write_gguf_file(path, "llama", {"llama.block_count": (gguf.GGUFValueType.UINT32, 1)}, tensors, "header")
    return path


@pytest.mark.parametrize("fmt", ["svg", "html"])
def test_hostile_names_are_escaped(fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = hostile_gguf(tmp_path)
    args = ["inspect", str(path), "-ngl", "99", "-ot", "<i>&\"=CPU"]  # the -ot regex reaches the flags line
    code, out, err = cli([*args, "--format", fmt], capsys)
    assert code == 0, err
    assert "<img" not in out and "<b>" not in out and "<i>" not in out and "\x1b" not in out
    assert "&lt;i&gt;&amp;&quot;=CPU" in out  # the flags line, escaped
    assert "m&lt;b&gt;&amp;&quot;x&#x27;.gguf" in out  # the file name, escaped
    if fmt == "svg":
        ET.fromstring(out.split("\n", 1)[1])  # well-formed: the control character became text
        code, doc, _ = cli([*args, "--format", "json"], capsys)
        check_picture(out, expected_inspect(json.loads(doc)))
    else:
        assert "&lt;img src=x onerror=alert(1)&gt;\\x1b[31m&amp;amp;" in out  # the tensor, in the warnings
        parsed = Tags()
        parsed.feed(out)
        assert parsed.tags <= SAFE_TAGS
        assert not any(a.startswith("on") for a in parsed.attributes)
    assert_offline(out)


# --- fit ------------------------------------------------------------------------------------------------


def inspect_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out, err = cli(["inspect", *args, "--format", "json"], capsys)
    assert code in (0, 3), err
    return json.loads(out)


def test_fit_svg_draws_the_chosen_plan(capsys: pytest.CaptureFixture[str]) -> None:
    """The bars of `fit`: its flags, read back by `inspect`, give the roles; fit's JSON gives the memory."""
    args = [QWEN3MOE, "--quant", "Q4_K_M", "--budget", "cuda:0=16GiB"]
    _, out, _ = cli(["fit", *args, "--format", "json"], capsys)
    plan = json.loads(out)["plan"]
    again = inspect_json([QWEN3MOE, "--quant", "Q4_K_M", *shlex.split(plan["flags"]), "--budget", "cuda:0=16GiB"],
                         capsys)
    for device, row in plan["memory"]["devices"].items():  # the flags round-trip to the same bytes
        assert {k: again["devices"][device][k] for k in row} == row
    code, svg, _ = cli(["fit", *args, "--format", "svg"], capsys)
    assert code == 0
    check_picture(svg, expected_inspect(again))
    assert_offline(svg)


@pytest.fixture(scope="module")
def quants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of three quants of one model: `fit` compares them."""
    folder = tmp_path_factory.mktemp("quants")
    for name in ("Q4_0", "Q8_0", "F16"):
        write_gguf(folder / f"llama-3b-{name}.gguf", "llama-3.2-3b", tensor_type=name)
    return folder


def panels(root: ET.Element) -> Iterator[ET.Element]:
    return (r for r in root.iter(f"{SVG}rect") if r.get("class") == "panel")


def test_fit_compares_quants_side_by_side(quants: Path, capsys: pytest.CaptureFixture[str]) -> None:
    budget = ["--budget", "cuda:0=4GiB", "--ctx", "8192"]
    _, out, _ = cli(["fit", str(quants), *budget, "--format", "json"], capsys)
    doc = json.loads(out)
    assert len(doc["quants"]) == 3
    per_quant = {q["quant"]: expected_inspect(inspect_json([str(quants / q["quant"]), *shlex.split(q["flags"]),
                                                             *budget[:2]], capsys))
                 for q in doc["quants"]}
    code, svg, _ = cli(["fit", str(quants), *budget, "--format", "svg"], capsys)
    assert code == 0
    root = ET.fromstring(svg.split("\n", 1)[1])
    full = max(b["extent"] for bars in per_quant.values() for b in bars.values())  # one scale for all panels
    shared = drawn_bars(root, "shared")
    want = [(q, d) for q, bars in per_quant.items() for d in bars]
    assert len(shared) == len(want)
    for (quant, device), (drawn_device, rects) in zip(want, shared):
        assert drawn_device == device
        check_bar(rects, per_quant[quant][device], PANEL_WIDTH / full)
    boxes = list(panels(root))
    assert len(boxes) == 3
    xs = [float(b.get("x")) for b in boxes]
    assert len(set(xs)) == 3 and len({b.get("y") for b in boxes}) == 1  # side by side, one row
    chosen = [b for b in boxes if b.get("stroke-width") == "2"]
    assert len(chosen) == 1 and doc["quant"] in "".join(root.itertext())
    assert_offline(svg)


# --- formats that have no picture -----------------------------------------------------------------------


def test_answers_without_a_plan_refuse_picture_formats(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(["inspect", LLAMA, "--quant-list", "--format", "svg"], capsys)
    assert code == 2 and out == ""
    assert err.splitlines()[-1].startswith("Error: --format svg draws a plan's bytes per device; --quant-list has "
                                           "no picture")
    code, _, err = cli(["validate", "plan.yaml", LLAMA, "--format", "html"], capsys)
    assert code == 2 and "'html' is not one of" in err
