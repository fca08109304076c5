"""``gtpred`` (or ``python -m gtpred_core``): the command line face of the core. Its names are a
contract.

    evaluate --model M (--images D | --labels CSV [--images ROOT]) --out O [--class-order keras|natural|FILE] [--head auto|logit]
             [--preprocess none|rescale|tf|torch|caffe] [--batch-size N] [--image-size HxW]
             [--backend local|ray] [--ray-address ADDR] [--save [--name N] [--db F]]
             [--embeddings] [--train-images D2]   2-D map of features; copies of images in D2
    demo     [--out O] [--class-order ...]       evaluate the built-in digits demo
    evaluate ... --save [--name N] [--db F]      also keep the run in the run store
    runs     [--db F] list [--deleted] | show ID | export ID --out O | rename ID NAME
    runs     [--db F] delete ID | restore ID | purge [ID ...] [--older-than-days D]   soft delete, then purge
    runs     [--db F] compare A B                is B's difference from A more than chance? (JSON)
    runs     [--db F] report ID --out F.html     the self-contained HTML report of a stored run
    explain  --model M --images D --out O [--target predicted|true] [--only-wrong] [--layer NAME]
    evaluate-checkpoints --models 'ckpt/*.keras' --images D [...]   one training run
    app      [streamlit options]                 serve the web app (gtpred_app/launch.py)

A labels CSV (``filename,class`` rows, Keras' flow_from_dataframe layout) is evaluated in its row
order; its paths are relative to --images, or to the CSV's folder. What it found (missing files,
duplicates, images it leaves out, numeric labels) is printed before the run.

The command runs under an address-space limit, GTPRED_CLI_MEMORY_MB (default: the worker's
GTPRED_WORKER_MEMORY_MB; 0 for none), so a hostile file cannot take the machine's memory.

Every command takes --verbose (TensorFlow's own logs, silenced otherwise) and --debug
(tracebacks of unexpected errors).

Exit codes: 0 run completed (skipped files included), 2 a problem the user can fix, a usage error
included (one line on stderr naming it and the fix), 1 an unexpected error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import re
import sys
from pathlib import Path
from typing import NoReturn, Sequence, TextIO

from .errors import GtpredError
from .preprocessing import PREPROCESS_MODES
from .quiet import quiet_environment, quiet_tensorflow

log = logging.getLogger("gtpred")


class TerminalProgress:
    """A one-line progress bar with images/s and time left, drawn only on a terminal."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        from .inference import Throughput

        self.stream = stream
        self.enabled = stream.isatty()
        self.clock = Throughput()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total == 0:
            return
        width = 30
        filled = int(width * done / total)
        eta = self.clock.eta_seconds(done, total)
        left = f"{eta:5.0f}s left" if eta is not None else ""
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
            f"{self.clock.rate(done):6.0f} img/s {left}"
        )
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


class CommandLineParser(argparse.ArgumentParser):
    """argparse with gtpred's manners: a usage error is one line on stderr that says what to type
    instead (never the usage block, never an internal name), exit code 2. Every command and
    sub-command takes ``--verbose`` and ``--debug``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # SUPPRESS: a sub-command's default must not overwrite the flag given before it
        self.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help="show TensorFlow's own logs (silenced otherwise)")
        self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of unexpected errors")

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.explain(message)}\n")

    def explain(self, message: str) -> str:
        """argparse's message, reworded into what is wrong and what to type instead."""
        see = f"see '{self.prog} --help'"
        required = re.fullmatch(r"the following arguments are required: (.+)", message)
        if required:
            names = required.group(1).split(", ")
            commands = self._commands(names[0])
            if commands:
                return f"{self.prog} needs a command: {', '.join(commands)} ({see})"
            return f"{self.prog} needs {' and '.join(names)} ({see})"
        unknown = re.fullmatch(r"unrecognized arguments: (.+)", message)
        if unknown:
            first = unknown.group(1).split()[0]
            if not first.startswith("-"):
                return f"{self.prog} does not take '{first}' ({see})"
            name = first.split("=")[0]
            if name in self._option_names():  # an option of this command given after its sub-command
                return f"{name} goes right after '{self.prog}', before the sub-command ({see})"
            return f"{self.prog} has no option {name}{self._did_you_mean(name, self._option_names())} ({see})"
        argument = re.fullmatch(r"argument (\S+): (.+)", message, re.DOTALL)
        if not argument:
            return message
        name, problem = argument.group(1).split("/")[-1], argument.group(2)
        choice = re.fullmatch(r"invalid choice: '?(.*?)'? \(choose from (.+)\)", problem)
        if choice:
            value = choice.group(1)
            options = [c.strip(" '\"") for c in choice.group(2).split(",")]
            if self._commands(name) or name.startswith("{"):
                return f"{self.prog} has no command '{value}'{self._did_you_mean(value, options)}: choose from {', '.join(options)}"
            return f"{name}: must be one of {', '.join(options)}, got '{value}'{self._did_you_mean(value, options)}"
        converted = re.fullmatch(r"invalid (\w+) value: (.+)", problem)
        if converted:
            kind = {"int": "a whole number", "float": "a number"}.get(converted.group(1), "a valid value")
            return f"{name}: must be {kind}, got {converted.group(2)}"
        if problem.startswith("expected one argument"):
            return f"{name} needs a value ({see})"
        return f"{name}: {problem}"

    def _commands(self, dest: str) -> list[str]:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and dest in (action.dest, action.metavar):
                return list(action.choices)
        return []

    def _option_names(self) -> list[str]:
        return [option for action in self._actions for option in action.option_strings]

    @staticmethod
    def _did_you_mean(value: str, options: Sequence[str]) -> str:
        bare = {option.lstrip("-"): option for option in options}  # "--" alone makes options alike
        close = difflib.get_close_matches(value.lstrip("-"), list(bare), n=1, cutoff=0.7)
        return f" (did you mean '{bare[close[0]]}'?)" if close else ""


def image_size(text: str) -> tuple[int, int]:
    """``--image-size``: HEIGHTxWIDTH in pixels."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be HEIGHTxWIDTH in pixels such as 224x224, got {text!r}") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"must be HEIGHTxWIDTH with both at least 1, got {text!r}")
    return height, width


def positive_whole_number(text: str) -> int:
    """A count such as ``--batch-size``: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number \N{GREATER-THAN OR EQUAL TO} 1, got {text!r}")
    return value


def stored_run_id(text: str) -> int:
    """The id of a run in the run store, as ``runs list`` shows it."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a run id (a whole number, see 'runs list'), got {text!r}") from None


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--class-order",
        default="keras",
        help="keras (folder sort, default), natural (Class_2 before Class_10), or a file: "
        "labels.txt with one class per line, or class_indices JSON {name: index}",
    )
    parser.add_argument("--preprocess", default="none", choices=list(PREPROCESS_MODES))
    parser.add_argument("--batch-size", type=positive_whole_number, default=32)
    parser.add_argument("--image-size", type=image_size, default=None, help="HEIGHTxWIDTH, for models that take any size")
    parser.add_argument("--backend", default="local", choices=["local", "ray"], help="where inference runs (ray: pip install -r requirements-ray.txt)")
    parser.add_argument("--ray-address", default=None, help="join this Ray cluster (default: start a local Ray)")
    parser.add_argument("--save", action="store_true", help="also keep the run in the run store")
    parser.add_argument("--name", default=None, help="name of the stored run (with --save)")
    parser.add_argument("--report", action="store_true", help="also write report.html: one self-contained page to share")
    _add_db_option(parser)


def _add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=None, help="run store file (default: $GTPRED_DB or ~/.local/share/gtpred/runs.sqlite3)")


def build_parser(prog: str = "gtpred") -> argparse.ArgumentParser:
    parser = CommandLineParser(prog=prog, description="Ordered, verified evaluation of Keras image classifiers.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    evaluate = commands.add_parser("evaluate", help="evaluate a model on an image folder")
    evaluate.add_argument("--model", required=True, help=".keras, .h5, or a TF SavedModel folder")
    evaluate.add_argument("--images", default=None, help="folder with one sub-folder per class (with --labels: the folder the CSV's paths start from)")
    evaluate.add_argument("--labels", default=None, help="a CSV with a filename and a class column, evaluated in its row order")
    evaluate.add_argument("--out", required=True, help="folder for predictions.csv and summary.json")
    evaluate.add_argument(
        "--head", default="auto", choices=["auto", "logit"],
        help="auto (read from the model, default) or logit: the outputs are raw scores (needed for "
        "a one-unit output without a sigmoid)",
    )
    evaluate.add_argument(
        "--embeddings", action="store_true",
        help="also write embeddings.csv: a 2-D map (t-SNE) of the model's penultimate features, from the same pass",
    )
    evaluate.add_argument(
        "--train-images", default=None, metavar="FOLDER",
        help="the training folder: list evaluated images also found there (exact and near copies) in summary.json",
    )
    _add_run_options(evaluate)
    checkpoints = commands.add_parser("evaluate-checkpoints", help="evaluate every checkpoint on the same images, as one training run")
    checkpoints.add_argument("--models", required=True, help="a glob of checkpoint files, e.g. 'ckpt/*.keras' (quote it)")
    checkpoints.add_argument("--images", required=True)
    _add_run_options(checkpoints)
    runs = commands.add_parser("runs", help="the run store: list, show, export, rename, delete, restore, purge")
    _add_db_option(runs)
    actions = runs.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="all stored runs, newest first")
    listing.add_argument("--deleted", action="store_true", help="list the deleted runs instead (restorable or purged)")
    actions.add_parser("show").add_argument("id", type=stored_run_id)
    actions.add_parser("delete", help="hide a run; restorable until purged").add_argument("id", type=stored_run_id)
    actions.add_parser("restore", help="bring a deleted run back").add_argument("id", type=stored_run_id)
    purge = actions.add_parser("purge", help="remove deleted runs for good (a tombstone stays)")
    purge.add_argument("ids", type=stored_run_id, nargs="*", metavar="ID", help="these deleted runs (default: all deleted long enough ago)")
    purge.add_argument("--older-than-days", type=float, default=None, help="deleted more than D days ago (default: $GTPRED_KEEP_DELETED_DAYS, 30)")
    export = actions.add_parser("export", help="write predictions.csv and summary.json of a stored run")
    export.add_argument("id", type=stored_run_id)
    export.add_argument("--out", required=True)
    report = actions.add_parser("report", help="write the self-contained HTML report of a stored run")
    report.add_argument("id", type=stored_run_id)
    report.add_argument("--out", required=True, help="the .html file to write")
    compare = actions.add_parser("compare", help="McNemar's test and a 95%% interval for B's accuracy minus A's, as JSON")
    compare.add_argument("a", type=stored_run_id)
    compare.add_argument("b", type=stored_run_id)
    rename = actions.add_parser("rename")
    rename.add_argument("id", type=stored_run_id)
    rename.add_argument("name")
    explain = commands.add_parser("explain", help="saliency maps (Grad-CAM) of each image's predicted or true class")
    explain.add_argument("--model", required=True, help=".keras, .h5, or a TF SavedModel folder (occlusion maps)")
    explain.add_argument("--images", required=True, help="folder with one sub-folder per class")
    explain.add_argument("--out", required=True, help="folder for explanations.csv and heatmaps.npy")
    explain.add_argument("--target", choices=["predicted", "true"], default="predicted", help="explain the predicted class (default) or the true class")
    explain.add_argument("--only-wrong", action="store_true", help="only the mispredicted images")
    explain.add_argument("--layer", default=None, help="the layer to explain (default: the last with a spatial output)")
    explain.add_argument("--class-order", default="keras", help="as for evaluate")
    explain.add_argument("--preprocess", default="none", choices=list(PREPROCESS_MODES))
    explain.add_argument("--image-size", type=image_size, default=None, help="HEIGHTxWIDTH, for models that take any size")
    explain.add_argument("--batch-size", type=positive_whole_number, default=32)
    demo = commands.add_parser("demo", help="evaluate the built-in digits demo (shows the class-order trap)")
    demo.add_argument("--out", default="gtpred-demo-out")
    _add_run_options(demo)
    commands.add_parser(
        "app",
        help="serve the web app; any 'streamlit run' option may follow (--server.port 8080 ...)",
        description="Serve gtpred's web app from this installed copy, from any folder, with gtpred's "
        "server defaults. Streamlit options follow as in 'streamlit run' (--server.port 8080, "
        "--server.address 127.0.0.1, --server.baseUrlPath gtpred; see 'streamlit run --help').",
    )
    return parser


def _print_summary(run, out: Path, stream: TextIO) -> None:
    m = run.metrics
    accuracy = f"{m.accuracy:.2%}" if m.accuracy is not None else "n/a"
    line = f"{run.n_images} images evaluated, accuracy {accuracy}"
    if m.top5_accuracy is not None:
        line += f", top-5 {m.top5_accuracy:.2%}"
    if run.skipped:
        line += f", {len(run.skipped)} skipped"
    print(line, file=stream)
    for warning in run.warnings:
        print(f"warning [{warning.code}]: {warning.message}", file=stream)
    if run.suggested_class_order:
        print(f"suggested class order: {', '.join(run.suggested_class_order)}", file=stream)
    if run.leakage:
        exact = sum(p.kind == "exact" for p in run.leakage)
        print(
            f"warning [leakage]: {len(run.leakage)} evaluated/training image pair(s) look like the same "
            f"picture ({exact} exact copies); see 'leakage' in summary.json",
            file=stream,
        )
    extra = f", {out / 'embeddings.csv'}" if run.embedding is not None else ""
    print(f"wrote {out / 'predictions.csv'}{extra} and {out / 'summary.json'}", file=stream)


def runs_command(args: argparse.Namespace) -> int:
    from .export import write_outputs
    from .store import RunStore, printable

    store = RunStore(args.db)
    if args.action == "list" and args.deleted:
        rows = store.list(include_training_epochs=True, deleted=True)
        print(f"{'id':>5}  {'deleted':25}  {'restorable':10}  name")
        for row in rows:
            restorable = "no (purged)" if row.purged_at else "yes"
            print(f"{row.id:>5}  {row.deleted_at or '':25}  {restorable:10}  {printable(row.name)}")
    elif args.action == "list":
        rows = store.list()  # before the header: a store that cannot be read prints one line only
        print(f"{'id':>5}  {'created':25}  {'status':9}  {'images':>7}  {'accuracy':>8}  name")
        for row in rows:
            accuracy = f"{row.accuracy:.2%}" if row.accuracy is not None else "n/a"
            # printable: a stored name never prints a second line or a terminal escape
            print(f"{row.id:>5}  {row.created_at:25}  {row.status:9}  {row.n_images:>7}  {accuracy:>8}  {printable(row.name)}")
    elif args.action == "show":
        row = store.get(args.id)
        summary = store.load(args.id).summary()
        print(json.dumps({"id": row.id, "name": row.name, "status": row.status, **summary}, indent=2))
    elif args.action == "export":
        run = store.load(args.id)
        predictions, summary_path = write_outputs(run, args.out)
        extra = f", {Path(args.out) / 'embeddings.csv'}" if run.embedding is not None else ""
        print(f"wrote {predictions}{extra} and {summary_path}")
    elif args.action == "report":
        from .report import write_report

        print(f"wrote {write_report(store.load(args.id), args.out)}")
    elif args.action == "compare":
        from .compare import compare_runs

        comparison = compare_runs(store.load(args.a), store.load(args.b))
        print(json.dumps({"a": args.a, "b": args.b, **comparison.significance()}, indent=2))
    elif args.action == "rename":
        store.rename(args.id, args.name)
    elif args.action == "delete":
        store.delete(args.id)
        print(f"deleted run {args.id} (restorable with: python -m gtpred_core runs restore {args.id})")
    elif args.action == "restore":
        store.restore(args.id)
        print(f"restored run {args.id}")
    elif args.action == "purge":
        purged = store.purge(args.ids, older_than_days=args.older_than_days)
        print(f"purged {len(purged)} deleted run(s){': ' + ', '.join(map(str, purged)) if purged else ''}")
    return 0


def checkpoints_command(args: argparse.Namespace) -> int:
    import glob

    from .store import RunStore
    from .training import evaluate_checkpoints

    bar = TerminalProgress()
    checkpoints = glob.glob(args.models)
    done_by_epoch: dict[int, int] = {}

    def progress(epoch: int, done: int, total: int) -> None:  # the checkpoints run at once: one bar for all
        done_by_epoch[epoch] = done
        bar(sum(done_by_epoch.values()), total * len(checkpoints))

    training_id, runs = evaluate_checkpoints(
        checkpoints,
        args.images,
        store=RunStore(args.db),
        name=args.name,
        class_order=args.class_order,
        preprocess=args.preprocess,
        batch_size=args.batch_size,
        progress=progress,
    )
    for epoch, run in enumerate(runs, start=1):
        accuracy = f"{run.metrics.accuracy:.2%}" if run.metrics.accuracy is not None else "n/a"
        print(f"epoch {epoch}: {Path(run.info.model).name}  accuracy {accuracy}")
    print(f"stored as training {training_id}")
    return 0


def explain_command(args: argparse.Namespace) -> int:
    """Evaluate in order, then write each image's saliency map in that order."""
    from .evaluation import evaluate_folder
    from .explain import explain_run

    run = evaluate_folder(
        Path(args.model),
        Path(args.images),
        class_order=args.class_order,
        preprocess=args.preprocess,
        batch_size=args.batch_size,
        image_size=args.image_size,
        progress=TerminalProgress(),
    )
    explained = explain_run(run, Path(args.model), target=args.target, only_wrong=args.only_wrong, layer=args.layer)
    csv_path, maps_path = explained.write(args.out)
    method = explained.rows[0][6] if explained.rows else "none"
    print(f"{len(explained.rows)} images explained ({method}); wrote {csv_path} and {maps_path}")
    return 0


def labels_csv_images(args: argparse.Namespace, stream: TextIO = sys.stdout):
    """Read ``--labels`` (with ``--class-order FILE`` as its class list) and print its report."""
    from .class_order import KERAS, NATURAL, read_class_order_file
    from .sources.labels_csv import read_labels_csv

    class_list = None if args.class_order in (KERAS, NATURAL) else read_class_order_file(args.class_order)
    folder, report = read_labels_csv(args.labels, args.images, class_names=class_list)
    for line in report.lines():
        print(f"labels: {line}", file=stream)
    return folder


def limit_memory(megabytes: int) -> None:
    """Cap this process's address space (RLIMIT_AS), as the app's worker is capped: a file
    that streams forever (a link to /dev/zero) then stops at the limit, not the machine's."""
    if megabytes <= 0:
        return
    try:
        import resource
    except ImportError:  # not on POSIX: no limit to set
        return
    limit = megabytes * 2**20
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def run_command(args: argparse.Namespace) -> int:
    from .evaluation import evaluate
    from .export import write_outputs
    from .request import EvaluationRequest

    if args.command == "runs":
        return runs_command(args)
    if args.command == "evaluate-checkpoints":
        return checkpoints_command(args)
    if args.command == "explain":
        return explain_command(args)

    if args.command == "demo":
        from .demo import DEMO_MODEL, demo_folder

        model, images = DEMO_MODEL, demo_folder()
    elif args.labels:
        model, images = Path(args.model), labels_csv_images(args)
    elif args.images:
        model, images = Path(args.model), Path(args.images)
    else:
        raise GtpredError("Say where the images are.", "Give --images FOLDER (one sub-folder per class) or --labels CSV.")
    sink = None
    if args.save:
        from .store import GuardedWriter, check_run_name

        if args.name is not None:
            check_run_name(args.name)  # a name the store would refuse: say so before evaluating
        # Rows stream in as inference goes; a store that fails never costs the CSV and JSON.
        sink = GuardedWriter.into(args.db, args.name, log_errors=False)  # reported below, once
    request = EvaluationRequest(
        model=Path(model),
        images=images,  # a folder, or the file list a labels CSV gave
        class_order=args.class_order,
        preprocess=args.preprocess,
        batch_size=args.batch_size,
        image_size=args.image_size,
        head=getattr(args, "head", "auto"),  # only evaluate has --head
        embeddings=getattr(args, "embeddings", False),  # likewise
        train_images=Path(args.train_images) if getattr(args, "train_images", None) else None,
        backend=args.backend,
        ray_address=args.ray_address,
    )
    run = evaluate(request, progress=TerminalProgress(), sink=sink)
    out = Path(args.out)
    write_outputs(run, out)
    if args.report:
        from .report import write_report

        write_report(run, out / "report.html")
    _print_summary(run, out, sys.stdout)
    if sink is not None:
        if sink.error is not None:
            print(f"error: the run was not stored (the files above are complete): {sink.error}", file=sys.stderr)
            return 2
        print(f"stored as run {sink.run_id}")
    return 0


def app_command(streamlit_args: Sequence[str]) -> int:
    """``gtpred app``: the web app's server replaces this process (see gtpred_app/launch.py)."""
    from gtpred_app.launch import AppUnavailable, serve
    try:
        return serve(streamlit_args)
    except AppUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(command, parser)
    return parser


def _program_name() -> str:
    return "gtpred" if Path(sys.argv[0]).name.startswith("gtpred") else "python -m gtpred_core"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(_program_name())
    args, extra = parser.parse_known_args(argv)
    verbose, debug = getattr(args, "verbose", False), getattr(args, "debug", False)
    if args.command == "app":  # what follows `app` is Streamlit's to read
        if not verbose:
            quiet_environment()  # inherited by the server's inference workers
        return app_command(extra)
    if extra:
        _command_parser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "backend", "local") != "ray":  # Ray's own processes would inherit the cap
        from .settings import get_settings

        limit_memory(get_settings().cli_memory_mb)
    try:
        with quiet_tensorflow(verbose):
            return run_command(args)
    except GtpredError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(
            "error: the evaluation needed more memory than the command line may use "
            "(GTPRED_CLI_MEMORY_MB). Use a smaller --batch-size, or raise GTPRED_CLI_MEMORY_MB.",
            file=sys.stderr,
        )
        return 2
    except Exception as err:  # a bug: one line for the user, the traceback only on request
        if debug:
            raise
        print(f"unexpected error ({type(err).__name__}: {err}); rerun with --debug for details", file=sys.stderr)
        return 1
