import os
import sys

from snnlib.cli import main
from snnlib.experiment.system import allocator_env

# the long commands restart once with glibc's allocator settings, which glibc reads at start only
if sys.argv[1:2] in (["train"], ["uncertainty"]) and allocator_env(dict(os.environ)) != dict(os.environ):
    os.execve(sys.executable, [sys.executable, "-m", "snnlib", *sys.argv[1:]], allocator_env(dict(os.environ)))
sys.exit(main())
