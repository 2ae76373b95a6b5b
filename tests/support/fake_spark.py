"""A stand-in spark-submit: a real process that behaves as a test asks, in milliseconds.

Named as a SPARK_HOME in a Local platform's config (``spark_homes``) under
FAKE_VERSION, it lets tests make an engine serve, exit or ignore SIGTERM
without starting a JVM.
"""

from __future__ import annotations

import sys
from pathlib import Path

FAKE_VERSION = "9.9.9"

#: A stand-in spark-submit. The conf `rucat.test.mode` (from its properties file
#: or a --conf) picks what it does:
#: serve (default) opens a plain TCP port (no Spark Connect) and logs it as the
#: Connect port; exit:N exits with N; stubborn also ignores SIGTERM and has a child;
#: flood:N prints N lines of 1 KiB ("flood 00000000 zzz...") first, then serves.
FAKE_SPARK_SUBMIT = """\
#!{python}
import os, signal, socket, subprocess, sys, time
args = sys.argv[1:]
confs = {{}}
if "--properties-file" in args:  # as spark-submit: the file, then --conf over it
    with open(args[args.index("--properties-file") + 1]) as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                key, value = line.rstrip("\\n").split("=", 1)
                confs[key] = value.replace(chr(92), "")  # test values: escapes only
confs.update(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--conf")
mode = confs.get("rucat.test.mode", "serve")
conf_dir = os.environ.get("SPARK_CONF_DIR", "")
print("fake spark-submit", os.getpid(), "SPARK_CONF_DIR=" + conf_dir, flush=True)
if mode.startswith("exit:"):
    print("fake: giving up", file=sys.stderr, flush=True)
    sys.exit(int(mode[5:]))
if mode.startswith("flood:"):  # N lines of 1 KiB before serving
    for n in range(int(mode[6:])):
        print(f"flood {{n:08}} " + "z" * 1008, flush=n % 64 == 0)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
port = server.getsockname()[1]
print(f"INFO SparkConnectServer: Spark Connect server started at: 127.0.0.1:{{port}}", flush=True)
time.sleep(3600)
"""


def make_fake_spark_home(folder: Path) -> Path:
    """A SPARK_HOME under `folder` whose bin/spark-submit is FAKE_SPARK_SUBMIT."""
    home = folder / "fake-spark"
    (home / "bin").mkdir(parents=True)
    script = home / "bin" / "spark-submit"
    script.write_text(FAKE_SPARK_SUBMIT.format(python=sys.executable))
    script.chmod(0o755)
    return home
