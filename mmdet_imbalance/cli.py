"""What every command-line tool does with bad input: one line that names the file, key or value,
exit status 2, no traceback; ``--debug`` shows the traceback instead.

The messages are the exceptions' own: this package's checks name the file, config key or value at
fault and what to do (a missing config, a config that does not parse, an unknown dataset, an
empty ``--data-root``, a damaged results record, edited embedded data), and so do mmengine's
registry errors (an unknown ``type``).
"""
import contextlib
import sys
from typing import Callable, Optional, Sequence

from mmdet_imbalance.datasets.checked_coco import AnnotationFileError
from mmdet_imbalance.datasets.embedded import EmbeddedDataError

#: The errors that bad input raises, from this package's checks (a work dir of other settings or
#: in training, edited data: RuntimeError) and from mmengine and mmdet while they read a config
#: and build what it names.
INPUT_ERRORS = (OSError, ValueError, KeyError, SyntaxError, NameError, ImportError, TypeError,
                RuntimeError)
#: Bad data, found when a dataset is built (which mmengine does once training starts).
DATA_ERRORS = (EmbeddedDataError, AnnotationFileError)
EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """A check of a tool found bad input; the message is the one line the user sees."""


@contextlib.contextmanager
def bad_input(errors=INPUT_ERRORS):
    """An error of ``errors`` raised in the block is bad input: :class:`BadInput` with its
    message (the original stays attached as the cause, which ``--debug`` shows)."""
    try:
        yield
    except errors as err:
        raise BadInput(one_line(err)) from err


def add_results_argument(parser, help: str = "the results tree (default: the repository's "
                         'results/)') -> None:
    """``--results DIR``, the committed results tree, as every tool that reads or writes it
    takes it: the checkout's ``results/`` by default."""
    import os

    from mmdet_imbalance import config_paths
    parser.add_argument('--results', metavar='DIR', help=help,
                        default=os.path.join(config_paths.checkout_root() or os.getcwd(),
                                             'results'))


def add_debug_argument(parser) -> None:
    parser.add_argument('--debug', action='store_true',
                        help='on an error, show the traceback instead of the one-line message')


def one_line(err: BaseException) -> str:
    """The message of an exception on one line (a KeyError's own text, not its repr)."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    text = ' '.join(str(text).split()) or type(err).__name__
    # Messages that do not say what failed get the exception's name (``[Errno 2] ...``).
    return text if isinstance(err, (BadInput, EmbeddedDataError)) or ':' in text \
        else f'{type(err).__name__}: {text}'


def run(main: Callable[[Optional[Sequence[str]]], Optional[int]], prog: str,
        argv: Optional[Sequence[str]] = None, errors=INPUT_ERRORS) -> int:
    """``main(argv)``'s exit status (0 unless it returns an int); :class:`BadInput`, an error of
    ``errors``, or a ``SystemExit`` with a message becomes
    ``<prog>: error: <one line>`` on stderr and status 2, unless ``--debug`` is given. A tool
    that also trains passes ``errors=()`` and marks its input phase with :func:`bad_input`, so
    that an error in training keeps its traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = main(argv)
        return code if isinstance(code, int) else 0
    except SystemExit as err:
        # A check that stops the tool with its message (``SystemExit('error: ...')``).
        if not isinstance(err.code, str):
            raise
        message = err.code[len('error: '):] if err.code.startswith('error: ') else err.code
        print(f'{prog}: error: {message}', file=sys.stderr)
        return EXIT_BAD_INPUT
    except (BadInput, *errors) as err:
        if '--debug' in args:
            raise
        print(f'{prog}: error: {one_line(err)} (--debug shows the traceback)', file=sys.stderr)
        return EXIT_BAD_INPUT
