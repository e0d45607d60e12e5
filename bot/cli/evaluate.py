"""`capret eval`: captioning, retrieval and scene metrics on a split (default: RSICD val)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from bot.config import load_config
from engine.config import EngineConfig


def register(sub: argparse._SubParsersAction) -> None:
    """Add `capret eval` and its options to ``sub``."""
    parser = sub.add_parser("eval", help="evaluate captions, retrieval and scene answers")
    parser.add_argument("--split", default="val", help="split of the configured sources")
    parser.add_argument("--annotations", help="an annotation file instead of the sources")
    parser.add_argument("--images", help="the image folder of --annotations")
    parser.add_argument("--limit", type=int, help="the first N images in file-name order")
    parser.add_argument("--sample", type=int,
                        help="N images drawn at random (every class in proportion)")
    parser.add_argument("--seed", type=int, default=0, help="the draw of --sample")
    parser.add_argument("--json", dest="json_path", help="write every metric and output here")
    parser.add_argument("--examples", type=int, default=5, help="examples to print")
    parser.add_argument("--strategy", choices=("greedy", "beam"),
                        help="decoding of every reply, descriptions included (default: "
                             "engine.generation.strategy and description_beams)")
    parser.add_argument("--beams", type=int, help="beams for --strategy beam")
    parser.add_argument("--length-penalty", type=float, help="beam length penalty")
    parser.add_argument("--description-beams", type=int,
                        help="beams for descriptions alone (engine.generation.description_beams)")
    parser.add_argument("--description-match", type=float,
                        help="weight of the search match re-ranking them "
                             "(engine.generation.description_match)")
    parser.add_argument("--description-consensus", type=float,
                        help="weight of their agreement with the neighbours' captions "
                             "(engine.generation.description_consensus)")
    parser.add_argument("--rescore", metavar="JSON",
                        help="score the outputs an earlier --json saved, on these images "
                             "(e.g. --limit N), without the model; retrieval is left out")
    parser.add_argument("--neighbour-captions", metavar="DATASTORE",
                        help="score the k-nearest-caption baseline instead of the model: each "
                             "image gets the commonest caption of its --k nearest train images "
                             "in this datastore (`capret datastore`); no LM")
    parser.add_argument("--k", type=int, default=15, help="neighbours for --neighbour-captions")
    parser.add_argument("--votes", choices=("all", "distinct"), default="all",
                        help="--neighbour-captions: every caption votes as released, or each "
                             "neighbour once per distinct caption")
    parser.add_argument("--search", action="store_true",
                        help="score search alone (the recalls both ways, and the mR of the "
                             "split's even and odd images): no descriptions or answers")
    parser.add_argument("--as-asked", action="store_true",
                        help="with --search: each reference asked in a held-out request "
                             "phrasing (--seed) and read by the chat's rules, as a user asks")
    parser.add_argument("--questions", action="store_true",
                        help="score the questions people ask instead (engine/intent.py's "
                             "kinds in held-out phrasings: engine/training/question_eval.py)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate captions, retrieval and scene answers on a split and print the table."""
    from engine import create_engine
    from engine.training.config import DatasetSource
    from engine.training.data import evaluation_records
    from engine.training.evaluate import evaluate, markdown_table, rescore

    config = load_config(args.config)
    sources = config.train.sources
    if args.annotations:
        sources = (DatasetSource("eval", args.annotations, args.images or "."),)
    records = evaluation_records(sources, args.split, args.limit, args.sample, args.seed)
    if args.rescore:
        print(markdown_table(rescore(json.loads(Path(args.rescore).read_text()), records)))
        return 0
    if args.questions:
        return _questions(config.engine, records, args)
    if args.search:
        return _search(config.engine, records, args)
    if args.neighbour_captions:
        from bot.cli.datastore import neighbour_report

        report = neighbour_report(config, records, Path(args.neighbour_captions), args.k,
                                  args.votes)
    else:
        report = evaluate(create_engine(_with_decoding(config.engine, args)), records)
    print(markdown_table(report.metrics))
    for r in records[:args.examples]:
        print(f"\n{r.path.name} ({r.label}): {report.captions[r.path.name]}")
        print(f"  reference: {r.captions[0]}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report.to_json(), indent=1))
    return 0


def _with_decoding(engine: EngineConfig, args: argparse.Namespace) -> EngineConfig:
    """The engine config with the command line's decoding overrides."""
    overrides = {"strategy": args.strategy, "num_beams": args.beams,
                 "length_penalty": args.length_penalty,
                 "description_beams": args.description_beams,
                 "description_match": args.description_match,
                 "description_consensus": args.description_consensus}
    if args.strategy is not None and args.description_beams is None:
        overrides["description_beams"] = 1  # descriptions decoded as asked, like every reply
    generation = dataclasses.replace(
        engine.generation, **{k: v for k, v in overrides.items() if v is not None})
    return dataclasses.replace(engine, generation=generation)


def _search(config: EngineConfig, records: list, args: argparse.Namespace) -> int:
    """`capret eval --search`: the recalls alone, and the ranks in --json."""
    from engine import create_engine
    from engine.training.evaluate import markdown_table, search_evaluation

    report = search_evaluation(create_engine(config), records, args.as_asked, args.seed)
    print(markdown_table(report.metrics))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report.to_json(), indent=1))
    return 0


def _questions(config: EngineConfig, records: list, args: argparse.Namespace) -> int:
    """`capret eval --questions`: each kind's scores, and every reply in --json."""
    from engine import create_engine
    from engine.training.evaluate import markdown_table
    from engine.training.question_eval import evaluate_questions

    report = evaluate_questions(create_engine(config), records, args.seed)
    print(markdown_table(report["metrics"]))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=1))
    return 0
