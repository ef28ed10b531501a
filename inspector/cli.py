"""The `ckpt-size` command line: thin click wrappers over the library, one error table, fixed exit codes."""
from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import click

from . import api
from .errors import CheckFailed, CkptSizeError, UsageError
from .placement.llamacpp import LlamaCppFlags, parse_n_gpu_layers, parse_override_tensor, parse_tensor_split
from .memory import MemoryOptions, TrainOptions, parse_budget
from .quant import QuantOptions, parse_tensor_type, parse_tensor_type_file
from .quant.recipe import parse_recipe, parse_recipe_items
from .report import (
    FORMATS,
    VIEWS,
    render,
    render_fit,
    render_listing,
    render_quant_list,
    render_validation,
    safe,
)


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("CKPT_SIZE_DEBUG") == "1"


def _warn(warnings: tuple[str, ...], notes: tuple[str, ...] = ()) -> None:
    for w in warnings:
        click.echo(f"Warning: {safe(w)}", err=True)
    for n in notes:
        click.echo(f"Note: {safe(n)}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="ckpt-size")
def cli() -> None:
    """How many bytes of a model land on each device, read from tensor headers only."""


def apply_options(options: list[Any], f: Any) -> Any:
    """Decorate `f` with click options so that they list in the given order."""
    for option in reversed(options):
        f = option(f)
    return f


def common_output_options(f: Any) -> Any:
    f = click.option("--debug", is_flag=True, help="Show tracebacks for errors.")(f)
    f = click.option("--by", "view", type=click.Choice(VIEWS), default="role", show_default=True,
                     help="Rows of the main table.")(f)
    f = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                     help="Output format; json and csv carry exact byte counts.")(f)
    return f


def llamacpp_options(f: Any) -> Any:
    """llama.cpp's offload flags, spelled as llama.cpp spells them (docs/placement.md)."""
    options = [
        click.option("-ngl", "--n-gpu-layers", "ngl", metavar="N", help="llama.cpp: layers on GPUs (N, all, auto)."),
        click.option("-ot", "--override-tensor", "override_tensor", multiple=True, metavar="REGEX=BUFT[,..]",
                     help="llama.cpp: tensors matching REGEX on buffer BUFT (CPU, CUDA0 …); first match wins."),
        click.option("--cpu-moe", "-cmoe", "cpu_moe", is_flag=True, help="llama.cpp: all routed experts on the CPU."),
        click.option("--n-cpu-moe", "-ncmoe", "n_cpu_moe", type=click.IntRange(min=0), metavar="N",
                     help="llama.cpp: routed experts of blocks 0..N-1 on the CPU."),
        click.option("-ts", "--tensor-split", "tensor_split", metavar="A,B,..",
                     help="llama.cpp: proportions of layers per GPU."),
        click.option("-sm", "--split-mode", "split_mode", type=click.Choice(["none", "layer", "row"]),
                     default="layer", show_default=True, help="llama.cpp: how to split across GPUs."),
        click.option("-mg", "--main-gpu", "main_gpu", type=click.IntRange(min=0), default=0, show_default=True,
                     help="llama.cpp: the GPU for -sm none / row."),
    ]
    return apply_options(options, f)


def quant_options(f: Any) -> Any:
    """`--quant NAME` and llama-quantize's own overrides (docs/quantization.md)."""
    options = [
        click.option("--quant", "quant", metavar="NAME",
                     help="This model at NAME (Q4_K_M, IQ4_XS …): the files of that quant when SOURCE holds them, "
                          "else llama-quantize's prediction."),
        click.option("--quant-list", "quant_list", is_flag=True,
                     help="One row per common file type: predicted file size and bytes per device."),
        click.option("--quant-rules", "quant_rules", type=click.Choice(["current", "legacy"]), default="current",
                     show_default=True, help="llama.cpp's rules of 2026, or of mid-2025 (most Hub files)."),
        click.option("--tensor-type", "tensor_type", multiple=True, metavar="REGEX=TYPE",
                     help="With --quant: llama-quantize --tensor-type. Without: a recipe line applied literally."),
        click.option("--tensor-type-file", "tensor_type_file", type=click.Path(dir_okay=False), metavar="FILE",
                     help="regex=type lines: llama-quantize's with --quant; else a recipe (first match wins, "
                          "ik_llama.cpp types allowed, # comments)."),
        click.option("--pure", is_flag=True, help="llama-quantize --pure: no mixture, the default type everywhere."),
        click.option("--output-tensor-type", "output_tensor_type", metavar="TYPE", help="Type of output.weight."),
        click.option("--token-embedding-type", "token_embedding_type", metavar="TYPE", help="Type of token_embd."),
        click.option("--imatrix", is_flag=True, help="Predict as if an importance matrix were given."),
        click.option("--allow-requantize/--no-allow-requantize", "allow_requantize", default=True,
                     show_default=True, help="Requantize tensors that are already quantized (llama-quantize's "
                                             "--allow-requantize; without it, llama-quantize refuses)."),
    ]
    return apply_options(options, f)


QUANT_KEYS = ("quant", "quant_rules", "tensor_type", "tensor_type_file", "pure", "output_tensor_type",
              "token_embedding_type", "imatrix", "allow_requantize")


def split_options(rest: dict[str, Any]) -> tuple[QuantOptions, bool, dict[str, Any]]:
    """Take the quant options out of `rest`: QuantOptions (ftype COPY when --quant is absent), whether --quant
    was given, and the remaining (llama.cpp) options."""
    q = {k: rest.pop(k) for k in QUANT_KEYS}
    tensor_types = tuple(parse_tensor_type(v) for v in q["tensor_type"])
    if q["tensor_type_file"]:
        tensor_types += parse_tensor_type_file(q["tensor_type_file"])
    options = QuantOptions(
        ftype=q["quant"] or "COPY",
        rules=q["quant_rules"],
        tensor_types=tensor_types,
        output_tensor_type=q["output_tensor_type"],
        token_embedding_type=q["token_embedding_type"],
        pure=q["pure"],
        imatrix=q["imatrix"],
        allow_requantize=q["allow_requantize"],
    )
    return options, q["quant"] is not None, rest


def hub_options(f: Any) -> Any:
    """How to reach a Hub repo (docs/hub.md)."""
    options = [
        click.option("--revision", metavar="REV", help="Hub: branch, tag, commit or refs/pr/N."),
        click.option("--token", metavar="TOKEN", help="Hub token (default: HF_TOKEN or the stored login)."),
        click.option("--file", "file", metavar="PATH", help="Hub: the file or folder in the repo to inspect."),
        click.option("--verbose", "-v", is_flag=True, help="Say what reading the headers cost (requests, bytes)."),
    ]
    return apply_options(options, f)


def hub_settings(revision: str | None, token: str | None, file: str | None) -> api.HubOptions:
    """Hub options, with a progress line on stderr when stderr is a terminal."""
    return api.HubOptions(revision, token, file, _progress_printer() if sys.stderr.isatty() else None)


def _progress_printer() -> Any:
    def show(done: int, total: int, nbytes: int) -> None:
        end = "\n" if done == total else "\r"
        click.echo(f"reading headers: {done}/{total} files, {nbytes:,} bytes", err=True, nl=False)
        click.echo(end, err=True, nl=False)

    return show


def _report_fetch(fetch: Any, verbose: bool) -> None:
    if verbose and fetch:
        click.echo(f"Fetched: {fetch['requests']} requests, {fetch['bytes']:,} bytes", err=True)


def memory_options(f: Any) -> Any:
    """Context, KV cache and buffer settings, named after llama.cpp's (docs/memory.md)."""
    options = [
        click.option("--ctx", "ctx", type=click.IntRange(min=1), metavar="N",
                     help="Context length of EACH sequence (llama.cpp's -c is the total: ctx x parallel); adds KV "
                          "cache, state and buffers per device."),
        click.option("--parallel", "-np", "parallel", type=click.IntRange(min=1), metavar="N",
                     help="Parallel sequences (llama.cpp gets -c ctx*N -np N)."),
        click.option("--kv-type", "kv_type", metavar="TYPE", help="K and V cache type (f16, q8_0, q4_0 …)."),
        click.option("--cache-type-k", "-ctk", "cache_type_k", metavar="TYPE", help="K cache type (default f16)."),
        click.option("--cache-type-v", "-ctv", "cache_type_v", metavar="TYPE", help="V cache type (default f16)."),
        click.option("--no-kv-offload", "-nkvo", "no_kv_offload", is_flag=True, help="Keep the KV cache on the CPU."),
        click.option("--flash-attn", "-fa", "flash_attn", type=click.Choice(["on", "off", "auto"]),
                     help="Flash attention (changes V padding and buffers)."),
        click.option("--ubatch-size", "-ub", "ubatch", type=click.IntRange(min=1), metavar="N",
                     help="Physical batch size (compute buffers)."),
        click.option("--kv-unified", "-kvu", "kv_unified", is_flag=True,
                     help="One KV buffer shared by all sequences (llama.cpp -kvu)."),
        click.option("--swa-full", "swa_full", is_flag=True, help="Full-size cache for sliding-window layers."),
        click.option("--overhead", "overhead", type=click.FloatRange(min=0), metavar="PCT",
                     help="Safety margin in percent, shown as its own row."),
        click.option("--budget", "budget", multiple=True, metavar="DEV=SIZE",
                     help="Memory of a device (cuda:0=24GiB, cpu=512G); exit 3 when something does not fit."),
    ]
    return apply_options(options, f)


MEMORY_KEYS = ("ctx", "parallel", "kv_type", "cache_type_k", "cache_type_v", "no_kv_offload", "flash_attn",
               "ubatch", "kv_unified", "swa_full", "overhead", "budget")


def split_memory(rest: dict[str, Any]) -> tuple[MemoryOptions | None, dict[str, int], dict[str, Any]]:
    """Take the memory options out of `rest`: MemoryOptions (None when none was given), the budgets, the rest."""
    m = {k: rest.pop(k) for k in MEMORY_KEYS}
    budgets = parse_budget(m.pop("budget"))
    given = {k: v for k, v in m.items() if v is not None and v is not False}
    if not given:
        return None, budgets, rest
    options = MemoryOptions()
    if "kv_type" in given:
        if "cache_type_k" in given or "cache_type_v" in given:
            raise UsageError("--kv-type sets both cache types; give it or --cache-type-k/-v, not both")
        options = options.with_kv_type(given.pop("kv_type"))
    if "overhead" in given:
        given["overhead_pct"] = given.pop("overhead")
    return options.with_(**given), budgets, rest


OT_OPTIONS = ("-ot", "--override-tensor")
MOE_OPTIONS = ("--cpu-moe", "-cmoe", "--n-cpu-moe", "-ncmoe")


def moe_position(argv: list[str]) -> int | None:
    """How many -ot pairs precede the first --cpu-moe/--n-cpu-moe on the command line (llama.cpp keeps that
    order: the first matching pattern wins); None when no MoE option is there."""
    pairs = 0
    for i, token in enumerate(argv):
        name, _, inline = token.partition("=")
        if token in MOE_OPTIONS or name in MOE_OPTIONS:
            return pairs
        if token in OT_OPTIONS and i + 1 < len(argv):
            pairs += len(parse_override_tensor([argv[i + 1]]))
        elif name in OT_OPTIONS and inline:
            pairs += len(parse_override_tensor([inline]))
    return None


def llamacpp_flags(ngl: str | None, override_tensor: tuple[str, ...], cpu_moe: bool, n_cpu_moe: int | None,
                   tensor_split: str | None, split_mode: str, main_gpu: int) -> LlamaCppFlags:
    ctx = click.get_current_context(silent=True)
    argv = (ctx.find_root().obj or {}).get("argv", []) if ctx else []
    return LlamaCppFlags(
        n_gpu_layers=parse_n_gpu_layers(ngl) if ngl is not None else None,
        override_tensor=parse_override_tensor(override_tensor),
        cpu_moe=cpu_moe,
        n_cpu_moe=n_cpu_moe,
        tensor_split=parse_tensor_split(tensor_split) if tensor_split else None,
        split_mode=split_mode,
        main_gpu=main_gpu,
        moe_after=moe_position(argv) if override_tensor and (cpu_moe or n_cpu_moe) else None,
    )


@cli.command()
@click.argument("source")
@common_output_options
@click.option("--experts-on", metavar="DEVICE", help="Put routed experts on DEVICE (cpu, cuda:N).")
@click.option("--default-device", metavar="DEVICE", default="cuda:0", show_default=True,
              help="Device for every tensor no other option places.")
@click.option("--placement", "placement_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="A KTransformers optimize-rule YAML or a ckpt-size plan file (detected).")
@click.option("--gpus", type=click.IntRange(min=0), metavar="N",
              help="How many GPUs the machine has: plans using more are refused.")
@quant_options
@llamacpp_options
@memory_options
@hub_options
@click.option("--train", is_flag=True, help="Also show training memory (weights, gradients, optimizer, activations).")
@click.option("--optimizer", type=click.Choice(["adamw", "adamw8bit", "sgd", "sgd_momentum"]), default="adamw",
              show_default=True, help="With --train.")
@click.option("--micro-batch", "micro_batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --train: sequences per step.")
@click.option("--seq-len", "seq_len", type=click.IntRange(min=1), default=4096, show_default=True,
              help="With --train: tokens per sequence.")
def inspect(source: str, fmt: str, view: str, debug: bool, experts_on: str | None, default_device: str,
            placement_file: str | None, gpus: int | None, quant_list: bool, train: bool, optimizer: str,
            micro_batch: int, seq_len: int, revision: str | None, token: str | None, file: str | None,
            verbose: bool, **rest: Any) -> None:
    """Sizes of SOURCE by role, layer, dtype, device or tensor.

    SOURCE is a .gguf file (any shard of a split set loads the whole set), a .safetensors file, a
    model.safetensors.index.json, or a directory holding one of those.
    """
    memory, budgets, rest = split_memory(rest)
    recipe = None
    if rest.get("quant") is None and (rest.get("tensor_type") or rest.get("tensor_type_file")):
        # without --quant, regex=type lines are a recipe applied literally (ik_llama.cpp types allowed)
        recipe = parse_recipe_items(rest.pop("tensor_type"))
        if path := rest.pop("tensor_type_file"):
            recipe += parse_recipe(path)
        rest.update(tensor_type=(), tensor_type_file=None)
    quant, quant_given, llama = split_options(rest)
    placement = api.PlacementOptions(experts_on, default_device, llamacpp_flags(**llama), placement_file, gpus)
    repo = api.open_repo(source, hub_settings(revision, token, file))  # resolved (and listed) once
    found = None if quant_given else repo.listing()
    if found is not None:  # a Hub repo of several quants and no selection: its rows, from the listing alone
        _warn(found.notes)
        click.echo(render_listing(found, fmt=fmt), nl=False)
        _report_fetch(found.fetch, verbose)
        return
    if quant_list:
        if memory is not None or budgets or train or quant_given:
            raise UsageError("--quant-list shows file sizes and weights per device; --ctx, --budget, --train and "
                             "--quant go with one quant", hint="drop them, or use --quant NAME")
        checkpoint, rows = api.quant_list(repo, options=quant, placement=placement)
        _warn(checkpoint.warnings)
        click.echo(render_quant_list(checkpoint, rows, fmt=fmt), nl=False)
        return
    if not quant_given and quant != QuantOptions("COPY", rules=quant.rules):
        raise UsageError("llama-quantize options need --quant NAME (or --quant-list)")
    training = TrainOptions(optimizer=optimizer, micro_batch=micro_batch, seq_len=seq_len) if train else None
    result = api.inspect(repo, experts_on=experts_on, default_device=default_device,
                         quant=quant if quant_given else None, llamacpp=placement.llamacpp,
                         placement_file=placement_file, gpus=gpus, memory=memory, budgets=budgets or None,
                         train=training, recipe=recipe)
    _warn(result.checkpoint.warnings, result.notes)
    click.echo(render(result, view=view, fmt=fmt), nl=False)
    _report_fetch(result.checkpoint.fetch, verbose)
    verdict = result.extras.get("budget")
    if verdict is not None and not verdict.fits:
        over = ", ".join(f"{d.device} by {d.over_by:,} bytes" for d in verdict.devices if not d.fits)
        raise CheckFailed(f"does not fit: {over}")


@cli.command()
@click.argument("placement_file", type=click.Path(dir_okay=False))
@click.argument("source")
@click.option("--gpus", type=click.IntRange(min=0), metavar="N", help="Devices beyond cuda:N-1 are errors.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@hub_options
def validate(placement_file: str, source: str, gpus: int | None, fmt: str, debug: bool, revision: str | None,
             token: str | None, file: str | None, verbose: bool) -> None:
    """Check PLACEMENT_FILE (KTransformers rules or a plan file) against SOURCE; exit 3 on errors."""
    checkpoint = api.load(source, hub=hub_settings(revision, token, file))
    _report_fetch(checkpoint.fetch, verbose)
    result = api.validate(placement_file, checkpoint, gpus=gpus)
    click.echo(render_validation(result, fmt=fmt), nl=False)
    if result.has_errors:
        raise CheckFailed(f"{placement_file}: {sum(f.severity == 'error' for f in result.findings)} error(s)")


@cli.command()
@click.argument("source")
@memory_options
@click.option("--runtime", type=click.Choice(["llamacpp", "ktransformers"]), default="llamacpp", show_default=True,
              help="Whose plan to search for.")
@click.option("--emit-yaml", "emit_yaml", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the KTransformers rule file of the plan (implies --runtime ktransformers).")
@click.option("--quant", metavar="NAME", help="Fit this quant (selected or predicted, as with inspect).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@hub_options
def fit(source: str, runtime: str, emit_yaml: str | None, quant: str | None, fmt: str, debug: bool,
        revision: str | None, token: str | None, file: str | None, verbose: bool, **rest: Any) -> None:
    """The plan that keeps the most of SOURCE on GPUs within --budget; exit 3 when nothing fits."""
    memory, budgets, _ = split_memory(rest)
    if not budgets:
        raise UsageError("fit needs at least one --budget DEV=SIZE")
    report = api.fit(source, budgets, memory=memory, runtime="ktransformers" if emit_yaml else runtime,
                     quant=quant, hub=hub_settings(revision, token, file))
    if report.result is not None:
        _warn((), report.result.notes)
    click.echo(render_fit(report, fmt=fmt), nl=False)
    if emit_yaml and report.result is not None:
        report.result.write_yaml(emit_yaml)
        click.echo(f"wrote {emit_yaml}", err=True)
    if report.result is None or not report.result.fits:
        raise CheckFailed("the model does not fit these budgets")


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the click group and turns our errors into one `Error:` line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    try:
        cli.main(args=args, prog_name="ckpt-size", standalone_mode=False, obj={"argv": args})
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:  # usage errors: click prints usage and the message, exit 2
        e.show()
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except CkptSizeError as e:
        _fail(e, e.exit_code, args)
    except (MemoryError, RecursionError, OSError) as e:
        _fail(e, 1, args)
    except Exception as e:  # a bug: still one line, and the traceback with --debug
        _fail(RuntimeError(f"internal error ({type(e).__name__}: {e}); please report it with the --debug output"),
              1, args)
    sys.exit(0)


def _fail(error: BaseException, code: int, args: list[str]) -> None:
    if _debug_requested(args):
        traceback.print_exception(error)
    message = str(error) if isinstance(error, CkptSizeError) else f"{type(error).__name__}: {error}"
    click.echo(f"Error: {safe(message)}", err=True)
    sys.exit(code)
