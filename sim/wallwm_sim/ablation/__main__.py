"""The ablation command line (see the package doc and docs/ablation.md).

Exit codes: 0 every selected stage complete; 1 something to continue (a run failed or is not
finished, shards or episodes missing); 2 bad spec (nothing started); 128 + N stopped by signal
N (run the same command again to continue).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from wallwm_core.config_loading import ConfigError
from wallwm_core.file_lock import try_lock
from wallwm_sim.ablation import evaluation, report, runs
from wallwm_sim.ablation.spec import Plan, load_spec, resolve

STAGES = ("train", "eval", "report", "all", "status")
EXIT_BAD_SPEC = 2
logger = logging.getLogger("wallwm_sim.ablation")


def parse_worker(text: str) -> tuple[int, int]:
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--worker must look like K/N, got {text!r}") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--worker needs 0 <= K < N, got {text!r}")
    return index, count


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wallwm_sim.ablation", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("spec", help="ablation spec: a YAML path or ablation_cpu")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="key=value changes to the spec, e.g. output=runs/x 'data.paths=[d]' (give the same "
        "ones every session)",
    )
    parser.add_argument("--stage", choices=STAGES, default="all", help="default: all")
    parser.add_argument(
        "--worker", type=parse_worker, default=None, help=argparse.SUPPRESS
    )  # K/N: one evaluation worker of eval.jobs (started by the driver)
    return parser


def _status(plan: Plan) -> None:
    for line in runs.status_lines(plan):
        print(line)
    all_shards = evaluation.shards(plan)
    done = 0
    for shard in all_shards:
        checkpoint = evaluation.checkpoint_of(plan, shard.run)
        done += checkpoint is not None and evaluation.shard_done(plan, shard, checkpoint)
    print(f"evaluation shards done: {done}/{len(all_shards)}")


def run_stages(plan: Plan, stage: str, spec_args: Sequence[str], command: str) -> int:
    codes = []
    if stage in ("train", "all"):
        missing = [p for p in plan.spec.data.paths if not Path(p).is_dir()]
        if missing:
            print(f"error: data.paths {missing} are not folders", file=sys.stderr)
            return EXIT_BAD_SPEC
        code = runs.train_all(plan)
        codes.append(code)
        if code > 128:
            return code
    if stage in ("eval", "all"):
        code = evaluation.evaluate_in_workers(plan, spec_args)
        codes.append(code)
        if code > 128:
            return code
    if stage in ("report", "all"):
        result = report.write(plan, command)
        print(report.markdown(result).split("\n## ")[0])
        print(f"report: {plan.output / report.MARKDOWN_FILE}")
        codes.append(0 if result["complete"] else 1)
    return max(codes, default=0)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = _parser().parse_intermixed_args(argv)
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = "python -m wallwm_sim.ablation " + " ".join(arguments)
    try:
        spec, path = load_spec(args.spec, args.overrides)
        plan = resolve(spec, path)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_SPEC
    if args.stage == "status":
        _status(plan)
        return 0
    if args.worker is not None:
        return evaluation.evaluate_all(plan, args.worker)
    lock = try_lock(plan.output / ".driver.lock")
    if lock is None:
        print(f"error: another ablation driver is running on {plan.output}", file=sys.stderr)
        return 1
    with lock:
        return run_stages(plan, args.stage, [str(path), *args.overrides], command)


if __name__ == "__main__":
    sys.exit(main())
