"""``gtpred app``: serve the web app from wherever gtpred is installed, from any working directory.

Streamlit reads ``.streamlit/config.toml`` only from the home folder and the current folder, so an
installed gtpred carries its server defaults in ``server_defaults.toml`` and passes each one to
``streamlit run`` as a flag — unless the user set that option already, by a flag, a
``STREAMLIT_*`` variable or a config file Streamlit reads; a flag would silently beat those.
This module does not import Streamlit: it replaces the process with ``python -m streamlit run``,
which is then exactly the server ``streamlit run app.py`` starts from a checkout.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Mapping, Sequence

#: The script Streamlit runs for every request (it calls ``gtpred_app.navigation.main``).
ENTRY_SCRIPT = Path(__file__).resolve().with_name("streamlit_app.py")
SERVER_DEFAULTS = Path(__file__).resolve().with_name("server_defaults.toml")


class AppUnavailable(RuntimeError):
    """The web app cannot start here (Streamlit missing); the message says how to fix it."""


def server_defaults(path: Path = SERVER_DEFAULTS) -> dict[str, object]:
    """gtpred's Streamlit defaults as ``{"server.port": 8501, ...}``."""
    return _flatten(tomllib.loads(path.read_text(encoding="utf-8")))


def option_env_var(key: str) -> str:
    """The variable Streamlit reads for option ``key`` (``server.baseUrlPath`` ->
    ``STREAMLIT_SERVER_BASE_URL_PATH``), by Streamlit's own camelCase rule."""
    name = key.replace(".", "_")
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return f"STREAMLIT_{name.upper()}"


def options_set_by_user(
    streamlit_args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
) -> set[str]:
    """Option keys the user chose: ``--section.option`` flags, ``STREAMLIT_*`` variables, and
    keys of ``~/.streamlit/config.toml`` and ``./.streamlit/config.toml``."""
    env = os.environ if env is None else env
    chosen = {arg[2:].split("=", 1)[0] for arg in streamlit_args if arg.startswith("--") and "." in arg.split("=", 1)[0]}
    for folder in (home or Path.home(), cwd or Path.cwd()):
        config = folder / ".streamlit" / "config.toml"
        if config.is_file():
            try:
                chosen |= set(_flatten(tomllib.loads(config.read_text(encoding="utf-8"))))
            except (OSError, tomllib.TOMLDecodeError):
                pass  # Streamlit reports a broken config file itself, with its location
    chosen |= {key for key in server_defaults() if option_env_var(key) in env}
    return chosen


def streamlit_arguments(
    streamlit_args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
) -> list[str]:
    """``run ENTRY`` followed by a flag for each gtpred default the user did not set, then the
    user's own Streamlit options."""
    chosen = options_set_by_user(streamlit_args, env=env, cwd=cwd, home=home)
    flags: list[str] = []
    for key, value in server_defaults().items():
        if key not in chosen:
            flags += [f"--{key}", _flag_value(value)]
    return ["run", str(ENTRY_SCRIPT), *flags, *streamlit_args]


def serve(streamlit_args: Sequence[str]) -> int:
    """Start the web app's server in place of this process (returns only on Windows)."""
    if importlib.util.find_spec("streamlit") is None:
        raise AppUnavailable(
            "the web app needs Streamlit, which is not installed here: "
            "pip install -r requirements.txt (or pip install . with its dependencies)"
        )
    command = [sys.executable, "-m", "streamlit", *streamlit_arguments(streamlit_args)]
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "nt":  # no exec on Windows: run the server as a child and pass on its exit code
        return subprocess.call(command)
    os.execv(sys.executable, command)
    raise AssertionError("unreachable: os.execv returned")


def _flatten(table: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{key}."))
        else:
            flat[key] = value
    return flat


def _flag_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
