"""The benchmark: every figure of issue 13 measured in one run, written to bench/results.json.

    make bench                                  # = .venv/bin/python scripts/bench.py
    .venv/bin/python scripts/bench.py --quick   # fewer repetitions, a 100k gallery

Engine figures use the embedded default (configs/default.yaml) on real RSICD images. Ratios
are what we hold to (absolute times drift between machines and with other load on the CPU);
the machine facts, including the load average at the start, are written beside them.
``--readme`` rewrites the benchmark table of docs/BENCHMARKS.md from the results.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import torch
import yaml
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import load_config
from engine import create_engine
from engine.backends.hf import HfBackend
from engine.generate import DecodeSettings
from engine.model import RSCapRet
from engine.prompt import image_turn
from engine.tokens import CAPTION_PROMPT, RETRIEVAL_PROMPTS
from engine.types import GenerationOptions, ImagePart, TextPart, Turn
from tests.paths import RSICD_IMAGES

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results.json"
# key: (target, "max" = at most / "min" = at least, what it measures)
TARGETS: dict[str, tuple[float, str, str]] = {
    "caption_p50_s": (1.0, "max", "one photo in, description out (greedy), s"),
    "engine_overhead_ratio": (1.10, "max", "engine decode ÷ bare transformers generate"),
    "turn20_over_turn1": (1.3, "max", "reply time at turn 20 (2 images) ÷ turn 1"),
    "concurrency8_speedup": (3.0, "min", "tokens/s of 8 conversations at once ÷ one at a time"),
    "encode_img_per_s": (60.0, "min", "image embeddings per second, batched"),
    "cold_start_s": (5.0, "max", "`capret run` (terminal) to the first prompt, cache warm, s"),
    "peak_rss_mb": (2048.0, "max", "bot process after 8 concurrent conversations of 10 turns"),
    "bot_added_p50_ms_real_store": (20.0, "max", "bot+service latency, 50 users, real SQLite"),
    "bot_added_p95_ms_real_store": (100.0, "max", "its p95 (the tail), real SQLite"),
    "bot_added_p50_ms_real_store_postgresql": (20.0, "max",
                                               "the same on PostgreSQL (CAPRET_TEST_POSTGRES_URL)"),
    "bot_added_p95_ms_real_store_postgresql": (100.0, "max", "its p95, PostgreSQL"),
    "gallery_1m_p50_ms": (5.0, "max", "IVF search p50, 1M vectors as wide as the search's, ms"),
    "gallery_1m_recall10": (0.95, "min", "IVF recall@10 vs exact, 1M vectors"),
}


def images(n: int) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in sorted(RSICD_IMAGES.glob("*.jpg"))[:n]]


def forced(engine: RSCapRet, tokens: int, session: str | None = None) -> DecodeSettings:
    """Greedy settings that always run ``tokens`` new tokens (no EOS): equal work per run."""
    settings = engine._settings(GenerationOptions(max_new_tokens=tokens, allow_retrieval=False,
                                                  session=session))
    return dataclasses.replace(settings, eos_ids=frozenset())


def run_decode(engine: RSCapRet, embeds: torch.Tensor, settings: DecodeSettings) -> list[int]:
    return [e for e in engine.backend.decode(embeds, settings) if isinstance(e, int)]


# ----- engine figures
def caption_p50(engine: RSCapRet, pics: list[Image.Image]) -> dict[str, float]:
    """A description greedily (the target's figure) and as the config decodes it (the
    embedded default beam-searches and re-ranks descriptions: docs/EXPERIMENTS.md).
    """
    greedy = _description_times(engine, pics, GenerationOptions(allow_retrieval=False,
                                                                strategy="greedy"))
    configured = _description_times(engine, pics, GenerationOptions(allow_retrieval=False))
    return {"caption_p50_s": greedy[0], "caption_mean_tokens": greedy[1],
            "description_p50_s": configured[0], "description_mean_tokens": configured[1]}


def _description_times(engine: RSCapRet, pics: list[Image.Image], options: GenerationOptions
                       ) -> tuple[float, float]:
    """Median seconds from photo to description and the mean tokens, the first run left out
    (it warms up).
    """
    times, tokens = [], []
    for image in pics:
        start = time.perf_counter()
        embedding = engine.embed_images([image])[0]
        result = engine.generate([image_turn(CAPTION_PROMPT, "x")], {"x": embedding}, options)
        times.append(time.perf_counter() - start)
        tokens.append(len(result.token_ids))
    return statistics.median(times[1:]), statistics.mean(tokens[1:])


def overhead(engine: RSCapRet, pics: list[Image.Image], tokens: int) -> dict[str, float]:
    """Engine decode vs ``model.generate`` on the same prompt embeddings, same token count."""
    ours, bare = [], []
    model = engine.lm.model
    for image in pics:
        embedding = engine.embed_images([image])[0]
        embeds = engine._prompt_embeddings([image_turn(CAPTION_PROMPT, "x")], {"x": embedding},
                                           True)
        start = time.perf_counter()
        run_decode(engine, embeds, forced(engine, tokens))
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        with torch.inference_mode():
            model.generate(inputs_embeds=embeds[None], attention_mask=torch.ones(1, len(embeds),
                           dtype=torch.long), max_new_tokens=tokens, min_new_tokens=tokens,
                           do_sample=False, repetition_penalty=engine.config.generation
                           .repetition_penalty, pad_token_id=engine.lm.tokenizer.eos_token_id)
        bare.append(time.perf_counter() - start)
    return {"engine_overhead_ratio": sum(ours[1:]) / sum(bare[1:]),
            "engine_decode_s": statistics.median(ours[1:]),
            "bare_generate_s": statistics.median(bare[1:])}


def turns(engine: RSCapRet, pics: list[Image.Image], count: int, tokens: int
          ) -> dict[str, float]:
    """A conversation about two images (the second at turn count/2): turn N vs turn 1."""
    shas = {"a": engine.embed_images([pics[0]])[0], "b": engine.embed_images([pics[1]])[0]}
    dialogue: list[Turn] = []
    times = []
    for i in range(count):
        image = "a" if i == 0 else "b" if i == count // 2 else None
        text = TextPart(f"Question {i + 1}: what else do you see in this part of the scene?")
        dialogue.append(Turn("user", (ImagePart(image), text) if image else (text,)))
        start = time.perf_counter()
        embeds = engine._prompt_embeddings(dialogue, shas, True)
        ids = run_decode(engine, embeds, forced(engine, tokens, session="bench-turns"))
        times.append(time.perf_counter() - start)
        dialogue.append(Turn("assistant", (TextPart(engine._text(ids) or "ok"),)))
    fresh_start = time.perf_counter()
    run_decode(engine, engine._prompt_embeddings(dialogue[:-1], shas, True),
               forced(engine, tokens))
    fresh = time.perf_counter() - fresh_start
    return {"turn20_over_turn1": times[-1] / times[0], "turn1_s": times[0],
            "turn_last_s": times[-1], "turn_last_fresh_prefill_s": fresh,
            "turn_last_prompt_tokens": float(len(engine._layout(dialogue[:-1], True)))}


def concurrency(engine: RSCapRet, pics: list[Image.Image], n: int, tokens: int
                ) -> dict[str, float]:
    """Throughput of ``n`` conversations decoding at once vs the same ones in turn."""
    prompts = [engine._prompt_embeddings(
        [image_turn(CAPTION_PROMPT, "x")], {"x": engine.embed_images([p])[0]}, True)
        for p in pics[:n]]
    settings = forced(engine, tokens)
    start = time.perf_counter()
    for embeds in prompts:
        run_decode(engine, embeds, settings)
    alone = time.perf_counter() - start
    threads = [threading.Thread(target=run_decode, args=(engine, e, settings)) for e in prompts]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    together = time.perf_counter() - start
    return {"concurrency8_speedup": alone / together,
            "tokens_per_s_alone": n * tokens / alone, "tokens_per_s_8": n * tokens / together}


def encode_rate(engine: RSCapRet, pics: list[Image.Image], passes: int = 5) -> dict[str, float]:
    """Images per second of ``embed_images`` over ``pics``: the median of ``passes`` (one
    pass of 64 images lasts about a second, too short to time alone).
    """
    engine.embed_images(pics[:8])  # warm-up
    rates = []
    for _ in range(passes):
        start = time.perf_counter()
        engine.embed_images(pics)
        rates.append(len(pics) / (time.perf_counter() - start))
    return {"encode_img_per_s": statistics.median(rates)}


# Requests of the search figure: words people type, of different lengths.
SEARCH_REQUESTS = ("airports next to the sea", "a church", "many green trees and some buildings "
                   "around a playground", "ships in a harbour", "a river with a bridge over it")


def search_cost(engine: RSCapRet, pics: list[Image.Image], repeats: int) -> dict[str, float]:
    """What a search adds: the p50 of one text request to its search vector (the LM's [RET]
    pass and, where the config sets a text tower, its pass), ms; and images per second into
    gallery rows (four turns each, every match a search scores), batched.
    """
    dialogues = [[Turn("user", (TextPart(RETRIEVAL_PROMPTS[0].format(query=q)),))]
                 for q in SEARCH_REQUESTS] * repeats
    engine.retrieve(dialogues[0], {})  # warm-up
    times = []
    for dialogue in dialogues:
        start = time.perf_counter()
        engine.retrieve(dialogue, {})
        times.append(time.perf_counter() - start)
    engine.gallery_rows(engine.embed_for_gallery(pics[:4]))  # warm-up
    start = time.perf_counter()
    engine.gallery_rows(engine.embed_for_gallery(pics))
    return {"search_query_p50_ms": 1000 * statistics.median(times),
            "gallery_img_per_s": len(pics) / (time.perf_counter() - start)}


# ----- process figures (each in its own process, as a user would run it)
def temp_config(folder: Path) -> Path:
    """The default config with its data in ``folder`` (a fresh database and gallery)."""
    base = ROOT / "configs" / "default.yaml"

    def absolute(node: object) -> object:
        if isinstance(node, dict):
            return {k: absolute(v) for k, v in node.items()}
        if isinstance(node, str) and node.startswith(("./", "../")):
            return str((base.parent / node).resolve())
        return node

    raw = absolute(yaml.safe_load(base.read_text()))
    assert isinstance(raw, dict)
    raw["store"]["data_dir"] = str(folder)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def cold_start(launches: int) -> dict[str, float]:
    """Seconds from starting ``capret run`` (terminal) to its first prompt, and to its answer
    to a ``/help`` typed at once (the engine and store load behind the prompt).

    The best launch after the first, which fills the fresh data folder's gallery (with one
    launch: that one, page cache and converted weights warm from this run's engine).
    """
    env = {k: v for k, v in os.environ.items()
           if k not in ("TELEGRAM_BOT_TOKEN", "CAPRET_DATABASE_URL")}
    prompts, answers = [], []
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as folder:
        config = temp_config(Path(folder))
        for _ in range(launches):
            start = time.perf_counter()
            child = subprocess.Popen([str(ROOT / ".venv/bin/capret"), "--config", str(config),
                                      "run"], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert child.stdin is not None and child.stdout is not None
            _read_until(child.stdout, b"you>")
            prompts.append(time.perf_counter() - start)
            child.stdin.write(b"/help\n")
            child.stdin.flush()
            _read_until(child.stdout, b"I describe")
            answers.append(time.perf_counter() - start)
            child.kill()
            child.wait()
    return {"cold_start_s": min(prompts[1:] or prompts),
            "cold_first_answer_s": min(answers[1:] or answers)}


def _read_until(stream: IO[bytes], marker: bytes) -> None:
    seen = b""
    while marker not in seen and (byte := stream.read(1)):
        seen += byte


def bot_latency(users: int, messages: int) -> dict[str, float]:
    """Latency the bot and the real store add per message (scripts/bench_bot.py): on SQLite,
    and on PostgreSQL too when CAPRET_TEST_POSTGRES_URL names a server (as CI does).
    """
    figures = _bot_latency(users, messages, [], "")
    admin = os.environ.get("CAPRET_TEST_POSTGRES_URL", "").strip()
    if admin:
        figures |= _bot_latency(users, messages, ["--postgres-admin", admin], "_postgresql")
    return figures


def _bot_latency(users: int, messages: int, extra: list[str], suffix: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts/bench_bot.py"), "--store", "real",
         "--users", str(users), "--messages", str(messages), *extra],
        cwd=ROOT, capture_output=True, text=True, check=False).stdout
    found = re.search(r"added latency p50 ([\d.]+) ms, p95 ([\d.]+) ms", out)
    if found is None:
        raise RuntimeError(f"bench_bot.py printed no latency:\n{out}")
    return {f"bot_added_p50_ms_real_store{suffix}": float(found[1]),
            f"bot_added_p95_ms_real_store{suffix}": float(found[2])}


def peak_rss(conversations: int, turns_each: int) -> dict[str, float]:
    """Run ``load_child`` in a fresh process; its peak RSS and reply latencies."""
    out = subprocess.run(
        [sys.executable, __file__, "--load-child", str(conversations), str(turns_each)],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {k: float(v) for k, v in json.loads(out.strip().splitlines()[-1]).items()}


async def load_child(conversations: int, turns_each: int) -> dict[str, float]:
    """The real service, engine and store: ``conversations`` users at once, an image first."""
    from bot.app import build_service
    from bot.config import load_config as load_app
    from bot.service.user_ref import UserRef

    with tempfile.TemporaryDirectory(prefix="bench-load-") as folder:
        service = build_service(load_app(temp_config(Path(folder))))
        photos = sorted(RSICD_IMAGES.glob("*.jpg"))
        latencies: list[float] = []

        async def user(i: int) -> None:
            who = UserRef("bench", str(i))
            for turn in range(turns_each):
                uploads = [photos[i].read_bytes()] if turn == 0 else []
                start = time.perf_counter()
                await service.ask(who, "" if uploads else f"What about part {turn}?", uploads)
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(user(i) for i in range(conversations)))
        service.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_rss_mb": peak, "load_reply_p50_s": statistics.median(latencies),
            "load_replies": float(len(latencies))}


def gallery(size: int, dim: int) -> dict[str, float]:
    """The configured IVF index over ``size`` synthetic vectors as wide as the engine's.

    The synthetic clusters' noise is per coordinate: it is scaled so that the noise vector's
    length (and so how hard the set is) is that of the 256-d set the target was set on.
    """
    noise = 0.08 * (256 / dim) ** 0.5
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts/bench_store.py"), "--sizes", str(size),
         "--turns", "0", "--messages", "0", "--kinds", "ivf", "--ivf-probes", "32",
         "--dim", str(dim), "--noise", f"{noise:.4f}"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    found = re.search(r"ivf nprobe 32\s*: p50\s+([\d.]+) ms.*recall@10 vs flat ([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"bench_store.py printed no IVF figures:\n{out}")
    return {"gallery_1m_p50_ms": float(found[1]), "gallery_1m_recall10": float(found[2]),
            "gallery_size": float(size), "gallery_dim": float(dim)}


# ----- the run
def machine() -> dict[str, object]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                / 2**30, 1),
            "load_average_at_start": os.getloadavg(), "python": platform.python_version(),
            "torch": torch.__version__, "nice": os.nice(0)}


def measure(args: argparse.Namespace, save: Callable[[dict[str, float]], None]
            ) -> dict[str, float]:
    """Every figure; ``save`` gets the figures so far after each step (a partial run counts)."""
    q = args.quick
    engine = create_engine(load_config(args.config).engine)
    assert isinstance(engine.backend, HfBackend)
    pics = images(64)
    steps: dict[str, Callable[[], dict[str, float]]] = {
        "concurrency": lambda: concurrency(engine, pics, 8, 20 if q else 30),
        "turns": lambda: turns(engine, pics, 20, 8 if q else 16),
        "overhead": lambda: overhead(engine, pics[:3 if q else 6], 12 if q else 30),
        "caption": lambda: caption_p50(engine, pics[:3 if q else 11]),
        "encode": lambda: encode_rate(engine, pics[:16 if q else 64]),
        "search": lambda: search_cost(engine, pics[:16 if q else 64], 2 if q else 6),
        "gallery": lambda: gallery(100_000 if q else 1_000_000, engine.search_dim),
        "bot": lambda: bot_latency(50, 3 if q else 10),
        "rss": lambda: peak_rss(8, 2 if q else 10),
        "cold": lambda: cold_start(1 if q else 4),
    }
    figures: dict[str, float] = {}
    if args.only:  # re-measure some figures, keep the others of the earlier run
        earlier = json.loads(args.out.read_text())
        figures = {k: v for k, v in earlier.items() if isinstance(v, float | int)
                   and not isinstance(v, bool)}
    for name, step in steps.items():
        if args.only and name not in args.only:
            continue
        started = time.perf_counter()
        found = step()
        figures.update(found)
        save(figures)
        print(f"{time.perf_counter() - started:6.1f} s  {found}", flush=True)
    return figures


def report(figures: dict[str, float], command: str, facts: dict[str, object],
           quick: bool) -> dict[str, object]:
    met = {k: (figures[k] <= t if kind == "max" else figures[k] >= t)
           for k, (t, kind, _) in TARGETS.items() if k in figures}
    return {**{k: round(v, 4) for k, v in figures.items()}, "command": command,
            "quick": quick, "machine": facts,
            "targets": {k: {"target": t, "direction": kind, "what": what, "met": met.get(k)}
                        for k, (t, kind, what) in TARGETS.items()}}


def readme_table(results: dict[str, object]) -> str:
    targets = results["targets"]
    assert isinstance(targets, dict)
    lines = ["| key | what | figure | target | met |", "|---|---|---|---|---|"]
    for key, info in targets.items():
        value = results.get(key, "—")
        sign = "≤" if info["direction"] == "max" else "≥"
        mark = {True: "yes", False: "**no**", None: "—"}[info["met"]]
        lines.append(f"| `{key}` | {info['what']} | {value} | {sign} {info['target']} | {mark} |")
    return "\n".join(lines)


def write_readme(results: dict[str, object]) -> None:
    readme = ROOT / "docs" / "BENCHMARKS.md"
    text = readme.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start not in text:
        raise SystemExit(f"{readme} has no <!-- bench:start --> marker")
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    readme.write_text(f"{head}{start}\n{readme_table(results)}\n{end}{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config")
    parser.add_argument("--quick", action="store_true", help="fewer runs, a 100k gallery")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--readme", action="store_true",
                        help="rewrite the table in docs/BENCHMARKS.md")
    parser.add_argument("--from-json", action="store_true",
                        help="measure nothing: only rewrite that table from --out")
    parser.add_argument("--only", nargs="+", metavar="STEP",
                        help="re-measure these steps (concurrency, turns, overhead, caption, "
                             "encode, search, gallery, bot, rss, cold) into the existing --out")
    parser.add_argument("--load-child", type=int, nargs=2, metavar=("USERS", "TURNS"),
                        help=argparse.SUPPRESS)  # the peak_rss measurement's own process
    args = parser.parse_args()
    if args.load_child:
        print(json.dumps(asyncio.run(load_child(*args.load_child))))
        return 0
    if args.from_json:
        write_readme(json.loads(args.out.read_text()))
        return 0
    facts = machine()
    command = " ".join(["python", *sys.argv])
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save(figures: dict[str, float]) -> None:
        results = report(figures, command, facts, args.quick)
        args.out.write_text(json.dumps(results, indent=2) + "\n")

    save(measure(args, save))
    results = json.loads(args.out.read_text())
    print(readme_table(results))
    if args.readme:
        write_readme(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
