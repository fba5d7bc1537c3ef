# Sourced (bash) by the tools that compile src/ without setup.py.  Sets
#   FS_CFLAGS            setup.py's portable flags for the kernels (src/cflags.txt)
#   FS_CFLAGS_EXTENSION  what setup.py's objects get besides from Python's own CFLAGS:
#                        objects of a shared library, POSIX threads, and -fwrapv (the
#                        one flag there that can change the code)
# OpenMP's flag is each tool's own: some build without it.
FS_CFLAGS=$(sed -e 's/#.*//' "$(dirname "${BASH_SOURCE[0]}")/../src/cflags.txt" | xargs)
FS_CFLAGS_EXTENSION="-fPIC -pthread -fwrapv"
