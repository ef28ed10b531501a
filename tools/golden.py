"""Golden outputs: every fixture and every documented command line, run through the real CLI, stored in
tests/golden/. `tests/test_golden.py` fails when an output drifts; `python tools/golden.py --update` rewrites them
after a change that is meant to alter output (review the diff before committing it).

Each case is stored as one text file: the command, stdout, stderr and the exit code.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
M = "fixtures/models/"
KT = "fixtures/ktransformers-rules/"
MODELS = {
    "deepseek": M + "deepseek-v3.1-q4_k_m.gguf",
    "llama": M + "llama-3.2-3b-f16.gguf",
    "qwen3moe": M + "qwen3-moe-q8_0.gguf",
    "mixtral": M + "mixtral-8x7b-bf16",
    "gptoss": M + "gpt-oss-20b-mxfp4",
}
VIEWS = ("role", "layer", "dtype", "device", "tensor")
FORMATS = ("table", "json", "csv", "markdown")


def cases() -> dict[str, list[str]]:
    """name -> argv. Names are file names under tests/golden/."""
    out: dict[str, list[str]] = {}
    for key, path in MODELS.items():
        for view in VIEWS:
            for fmt in FORMATS:
                out[f"inspect-{key}-{view}-{fmt}"] = ["inspect", path, "--by", view, "--format", fmt]
        out[f"inspect-{key}-experts-cpu"] = ["inspect", path, "--experts-on", "cpu", "--by", "device"]
        out[f"inspect-{key}-ngl-cpumoe-ctx"] = ["inspect", path, "-ngl", "99", "--cpu-moe", "--ctx", "8192",
                                               "--by", "device"]
        out[f"inspect-{key}-ngl-10-json"] = ["inspect", path, "-ngl", "10", "--ctx", "4096", "--format", "json"]
        out[f"inspect-{key}-ts-budget"] = ["inspect", path, "-ngl", "99", "-ts", "1,1", "--ctx", "16384",
                                          "--parallel", "2", "--budget", "cuda:0=24GiB", "--budget", "cuda:1=24GiB",
                                          "--by", "device"]
        out[f"inspect-{key}-quant-q4km"] = ["inspect", path, "--quant", "Q4_K_M", "--experts-on", "cpu"]
        out[f"inspect-{key}-quant-list"] = ["inspect", path, "--quant-list", "--cpu-moe"]
        out[f"inspect-{key}-train"] = ["inspect", path, "--train", "--format", "json"]
        out[f"fit-{key}-24g"] = ["fit", path, "--budget", "cuda:0=24GiB", "--budget", "cpu=512GiB", "--ctx", "32768"]
        out[f"fit-{key}-2x48-json"] = ["fit", path, "--budget", "cuda:0=48GiB", "--budget", "cuda:1=48GiB",
                                       "--ctx", "8192", "--format", "json"]
        out[f"fit-{key}-2x48-csv"] = ["fit", path, "--budget", "cuda:0=48GiB", "--budget", "cuda:1=48GiB",
                                      "--ctx", "8192", "--format", "csv"]
    ds = MODELS["deepseek"]
    out.update({
        "readme-literal": ["inspect", ds, "--experts-on", "cpu"],
        "readme-quant-list": ["inspect", MODELS["qwen3moe"], "--quant-list", "--cpu-moe"],
        "readme-llamacpp-memory": ["inspect", ds, "-ngl", "99", "--cpu-moe", "--ctx", "32768", "--budget",
                                   "cuda:0=24GiB", "--by", "device"],
        "readme-fit": ["fit", ds, "--budget", "cuda:0=24GiB", "--budget", "cpu=512GiB", "--ctx", "32768"],
        "readme-validate": ["validate", KT + "DeepSeek-V3-Chat-multi-gpu-marlin.yaml", ds, "--gpus", "2"],
        "ot-first-match": ["inspect", ds, "-ngl", "99", "-ot", r"blk\.(3|4)\.ffn_.*_exps=CUDA0", "--cpu-moe",
                           "--by", "device"],
        "n-cpu-moe": ["inspect", ds, "-ngl", "99", "--n-cpu-moe", "30", "--ctx", "65536", "-ctk", "q8_0",
                      "--by", "device"],
        "kv-types-fa": ["inspect", MODELS["llama"], "-ngl", "99", "--ctx", "131072", "--kv-type", "q4_0",
                        "-fa", "on", "--by", "device", "--format", "json"],
        "sm-row": ["inspect", MODELS["llama"], "-ngl", "99", "-sm", "row", "-ts", "3,1", "--by", "device"],
        "nkvo-overhead": ["inspect", MODELS["qwen3moe"], "-ngl", "99", "-nkvo", "--overhead", "10", "--ctx", "8192",
                          "--by", "device"],
        "fit-kt": ["fit", ds, "--runtime", "ktransformers", "--budget", "cuda:0=24GiB", "--ctx", "8192"],
        "fit-kt-2gpu-json": ["fit", ds, "--runtime", "ktransformers", "--budget", "cuda:0=24GiB",
                             "--budget", "cuda:1=24GiB", "--ctx", "8192", "--format", "json"],
        "fit-qwen3moe-quant": ["fit", MODELS["qwen3moe"], "--quant", "Q4_K_M", "--budget", "cuda:0=16GiB"],
        "fit-gptoss-1x16": ["fit", MODELS["gptoss"], "--budget", "cuda:0=16GiB", "--ctx", "16384"],
        "fit-no-budget": ["fit", ds],
        "fit-does-not-fit": ["fit", MODELS["llama"], "--budget", "cuda:0=1GiB", "--budget", "cpu=2GiB"],
        "budget-fails": ["inspect", MODELS["llama"], "--budget", "cuda:0=1GiB"],
        "quant-pure": ["inspect", MODELS["mixtral"], "--quant", "Q4_K_M", "--pure", "--format", "json"],
        "quant-tensor-type": ["inspect", MODELS["llama"], "--quant", "Q4_K_M", "--tensor-type", "attn_v=q8_0",
                              "--output-tensor-type", "q6_k", "--by", "tensor", "--format", "csv"],
        "quant-legacy": ["inspect", MODELS["qwen3moe"], "--quant", "Q3_K_M", "--quant-rules", "legacy"],
        "recipe-tensor-type": ["inspect", ds, "--tensor-type", r"ffn_.*_exps=iq2_ks", "--experts-on", "cpu"],
        "missing-path": ["inspect", "fixtures/model"],
        "bad-flag": ["inspect", ds, "--nope"],
        "bad-budget": ["inspect", ds, "--budget", "cuda:0=lots"],
        "bad-kv-type": ["inspect", ds, "--ctx", "100", "--kv-type", "q9_0"],
        "experts-and-ngl": ["inspect", ds, "--experts-on", "cpu", "-ngl", "3"],
        "gpus-too-few": ["inspect", ds, "-ngl", "99", "-ts", "1,1,1", "--gpus", "2"],
    })
    for name in ("DeepSeek-V3-Chat.yaml", "DeepSeek-V3-Chat-multi-gpu.yaml", "DeepSeek-V3-Chat-multi-gpu-marlin.yaml"):
        stem = name.removesuffix(".yaml")
        out[f"validate-{stem}"] = ["validate", KT + name, ds, "--gpus", "2"]
        out[f"validate-{stem}-json"] = ["validate", KT + name, ds, "--gpus", "2", "--format", "json"]
        out[f"placement-{stem}"] = ["inspect", ds, "--placement", KT + name, "--by", "device", "--ctx", "4096"]
    out["validate-qwen2-on-qwen3"] = ["validate", KT + "Qwen2-57B-A14B-Instruct.yaml", MODELS["qwen3moe"]]
    out.update(runtime_cases())
    return out


def runtime_cases() -> dict[str, list[str]]:
    """The runtimes beyond llama.cpp and KTransformers, on the committed safetensors fixtures."""
    mix, gpt = MODELS["mixtral"], MODELS["gptoss"]
    two = ["--budget", "cuda:0=48GiB", "--budget", "cuda:1=48GiB"]
    two80 = ["--budget", "cuda:0=80GiB", "--budget", "cuda:1=80GiB"]
    four = [x for i in range(4) for x in ("--budget", f"cuda:{i}=48GiB")]
    return {
        "vllm-mixtral-tp2-too-small": ["inspect", mix, "-tp", "2", *two, "--max-model-len", "32768"],
        "vllm-mixtral-tp2": ["inspect", mix, "-tp", "2", *two80, "--max-model-len", "32768", "--by", "device"],
        "vllm-mixtral-ep2-json": ["inspect", mix, "-tp", "2", "--enable-expert-parallel", *two80, "--format", "json"],
        "vllm-fit-mixtral": ["fit", mix, "--runtime", "vllm", *two, "--max-model-len", "16384"],
        "vllm-pasted": ["inspect", *four, "--", "vllm", "serve", mix, "-tp", "4", "--max-model-len", "8192",
                        "--port", "8000"],
        "sglang-gptoss": ["inspect", "--budget", "cuda:0=24GiB", "--", "python", "-m", "sglang.launch_server",
                          "--model-path", gpt, "--context-length", "32768"],
        "transformers-mixtral-auto": ["inspect", mix, "--device-map", "auto", "--max-memory",
                                      "0=40GiB,1=40GiB,cpu=64GiB", "--by", "device"],
        "transformers-mixtral-4bit-json": ["inspect", mix, "--load-in-4bit", "--format", "json"],
        "training-mixtral-qlora-default-targets": ["inspect", mix, "--method", "qlora", "--gpus", "2"],
        "training-mixtral-qlora": ["inspect", mix, "--method", "qlora", "--lora-rank", "16", "--lora-targets",
                                   "q_proj,v_proj", "--gpus", "2", "--zero", "2"],
        "training-mixtral-zero3-deepspeed": ["inspect", mix, "--zero", "3", "--gpus", "8", "--estimator",
                                             "deepspeed", "--format", "json"],
        "activity-deepseek-bandwidth": ["inspect", MODELS["deepseek"], "-ngl", "99", "--cpu-moe", "--ctx", "8192",
                                        "--bandwidth", "cuda:0=RTX-4090,cpu=EPYC-9004", "--rules-of-thumb"],
        "picture-deepseek-svg": ["inspect", MODELS["deepseek"], "-ngl", "99", "--cpu-moe", "--budget",
                                 "cuda:0=24GiB", "--format", "svg"],
    }


def run(argv: list[str]) -> str:
    """The CLI in-process, as a user sees it: stdout, stderr, exit code."""
    from inspector.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(argv))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return (f"$ ckpt-size {' '.join(argv)}\n--- stdout\n{out.getvalue()}--- stderr\n{err.getvalue()}"
            f"--- exit {code}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--update", action="store_true", help="rewrite tests/golden/")
    parser.add_argument("names", nargs="*", help="only these cases")
    args = parser.parse_args()
    import os
    os.chdir(ROOT)
    GOLDEN.mkdir(parents=True, exist_ok=True)
    drift = 0
    for name, argv in cases().items():
        if args.names and name not in args.names:
            continue
        text = run(argv)
        path = GOLDEN / f"{name}.txt"
        if args.update:
            path.write_text(text, encoding="utf-8")
        elif not path.exists() or path.read_text(encoding="utf-8") != text:
            drift += 1
            print(f"drift: {name}")
    sys.exit(1 if drift else 0)


if __name__ == "__main__":
    main()
