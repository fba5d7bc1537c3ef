#!/usr/bin/env bash
# New / old time of one instruction set's softmax kernel between two source trees, timed
# call by call in one process (tools/kernel_ab.c says why, and what it prints).
#
#   bash tools/kernel_ab.sh OLD [NEW] [--isa avx512|avx2|baseline|scalar] -- HARNESS_ARGS
#
# OLD and NEW are git revisions of this repository or folders holding a src/ (NEW: the
# working tree by default).  Each tree's kernels for the ISA are compiled with setup.py's
# flags (about four minutes for AVX-512; the two in parallel), their tables renamed, and
# linked with NEW's executor (src/fs_pool.c) and tools/kernel_ab.c into
# build/kernel_ab/kernel_ab, which then runs with HARNESS_ARGS, for example
#
#   bash tools/kernel_ab.sh HEAD~1 -- --in-cache 1024x128 256x512
#   bash tools/kernel_ab.sh HEAD~1 --isa avx2 -- --op log_softmax --stream 16384x512
#
# The binary stays: run it again with other shapes without building.  KERNEL_AB_DIR moves
# the build folder (build/kernel_ab by default), which each run empties first.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
old=${1:?usage: kernel_ab.sh OLD [NEW] [--isa ISA] -- HARNESS_ARGS}
shift
new=$repo
if [ $# -gt 0 ] && [ "$1" != "--" ] && [ "$1" != "--isa" ]; then new=$1; shift; fi
isa=avx512
if [ $# -gt 1 ] && [ "$1" = "--isa" ]; then isa=$2; shift 2; fi
[ $# -gt 0 ] && [ "$1" = "--" ] && shift
case $isa in avx512|avx2|baseline|scalar) ;; *) echo "kernel_ab: unknown ISA $isa" >&2; exit 2 ;; esac

out=${KERNEL_AB_DIR:-$repo/build/kernel_ab}
rm -rf "$out"
mkdir -p "$out"
# A tree's src/: a folder as it is, a revision exported from git.
tree_of() {
    local name=$1 where=$2
    if [ -d "$where/src" ]; then
        echo "$where"
    else
        mkdir -p "$out/$name"
        git -C "$repo" archive "$where" src | tar -x -C "$out/$name"
        echo "$out/$name"
    fi
}
old_tree=$(tree_of old "$old")
new_tree=$(tree_of new "$new")
# The harness reads both tables through NEW's fs_kernels.h: a field added before another
# moves the float64 entries, and OLD's would then call the wrong functions.
if ! cmp -s "$old_tree/src/fs_kernels.h" "$new_tree/src/fs_kernels.h"; then
    echo "kernel_ab: fs_kernels.h differs between $old and $new: only the float32 entries" \
         "(the table's first) are sure to line up; give OLD NEW's fs_kernels.h" >&2
fi

# setup.py's flags for the kernels, and those Python's own CFLAGS add (this tree's: the same
# for both builds)
source "$repo/tools/cflags.sh"
flags="$FS_CFLAGS $FS_CFLAGS_EXTENSION -fopenmp"
cc=${CC:-cc}
build() { # tree, name: the tree's kernels for the ISA, its table renamed fs_kernels_<name>
    $cc $flags -I"$1/src" -c "$1/src/fs_isa_$isa.c" -o "$out/$2.o.tmp"
    objcopy --redefine-sym "fs_kernels_$isa=fs_kernels_$2" "$out/$2.o.tmp" "$out/$2.o"
}
echo "kernel_ab: compiling the $isa kernels of $old and $new (minutes)" >&2
build "$old_tree" old & old_pid=$!
build "$new_tree" new & new_pid=$!
wait $old_pid
wait $new_pid
$cc $flags -I"$new_tree/src" -c "$new_tree/src/fs_pool.c" -o "$out/fs_pool.o"
$cc -O2 -I"$new_tree/src" -c "$repo/tools/kernel_ab.c" -o "$out/kernel_ab.o"
$cc -fopenmp -pthread -o "$out/kernel_ab" "$out/kernel_ab.o" "$out/old.o" "$out/new.o" \
    "$out/fs_pool.o" -lm
"$out/kernel_ab" "$@"
