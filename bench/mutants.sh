#!/usr/bin/env bash
# Mutation testing (cargo-mutants, crates.io) of the code whose bugs the
# suite must catch: hive recovery and editing, the file-system overwrite
# plans, the check evaluation, repair and the image writers. Lists the
# surviving ("missed") mutants of each group, with caught/missed counts.
#
#   usage: bench/mutants.sh [GROUP...]      (default: the small groups)
#   groups: eval ntfs-plan fat-plan undo repair hive-edit hive-recover vhd-write vhdx-write write
#   env:    MUTANTS_DIR   scratch copy (default /tmp/rdprescue-mutants); its
#                         target/ is kept between runs, so only the first
#                         run builds the dependencies
#           MUTANTS_REV   git revision to test (default: the working tree)
#           (one mutant at a time: --in-place in the scratch copy; CPU is scarce)
#           MUTANTS_TIMEOUT  seconds per mutant's test run (default 120)
#           MUTANTS_RE    a regex over mutant names replacing the group's
#                         (e.g. the names an earlier run listed, to compare runs)
#           MUTANTS_SHARD a sample instead of every mutant: K/N runs mutants
#                         i with i % N == K (round-robin over the file), e.g.
#                         0/8 for one in eight; the groups' default samples
#                         are in S below (a whole run is hours on 2 cores)
#
# Measured (2 cores shared): a mutant costs 15-140 s of rebuild (55 s on a
# quiet machine, up to 600 s, the build timeout, with 7 agents building;
# stop 23); in the dev
# profile the whole lib test binary takes ~50 s and write_safety/write_vhdx
# time out even at 300 s (the unmutated baseline then fails and nothing is
# tested), so the runs use the `mutants` profile of Cargo.toml (opt-level 1,
# dependencies optimised; MUTANTS_PROFILE overrides) and groups name test
# filters.
#
# Each group mutates one file (optionally narrowed to functions by a
# regex) and runs only the tests that can see it (`cargo test` arguments;
# after a `--`, test-binary arguments: the undo group runs its one slow,
# ignored test, the 2^20-range undo file, with --include-ignored),
# in the `mutants` profile with incremental builds: a mutant costs one
# rebuild of the crate and those test binaries. The whole tree is ~10000
# mutants (stop 23), days on two cores: run groups, not everything. Results: $MUTANTS_DIR/out/GROUP/
# (cargo-mutants' mutants.out: caught.txt, missed.txt, timeout.txt, ...).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${MUTANTS_DIR:-/tmp/rdprescue-mutants}

timeout=${MUTANTS_TIMEOUT:-120}
command -v cargo-mutants >/dev/null || { echo "SKIP: cargo-mutants not installed (cargo install --locked cargo-mutants)"; exit 0; }

# group: file ; function regex ('' = all) ; cargo test arguments (a --test
# whose file is missing, e.g. on an older revision, is dropped). A test-name
# filter applies to EVERY test binary named: `--lib repair:: --test X` runs
# none of X (stop 23 found the output group so), so filters for several
# binaries go after `--`, where libtest ORs them.
declare -A G=(
    [eval]="src/rdp/eval.rs;;--lib rdp::"
    [ntfs-plan]="src/fs/ntfs.rs;NtfsFs::runs;--test ntfs_refusals --test ntfs_state"
    [fat-plan]="src/fs/fat.rs;overwrite_plan;--lib --test hostile_fs --test write_safety --test fat_plan"
    [undo]="src/repair/undo.rs;;--lib --test undo_limits -- --include-ignored repair::undo range_count_cap hand_written_file"
    [repair]="src/repair/mod.rs;;--lib --test write_safety --test pipeline --test gpo --test repair_plan"
    [hive-edit]="src/hive/edit/mod.rs;;--lib --test hive_edit --test hive_edit_hostile"
    [hive-recover]="src/hive/recover/mod.rs;;--lib --test hive_recovery"
    [vhd-write]="src/image/vhd/write.rs;;--lib --test write_vhd --test convert --test write_fast"
    [vhdx-write]="src/image/vhdx/write.rs;;--lib --test write_vhdx --test convert --test write_fast --test vhdx_copy_states"
    [write]="src/image/write.rs;;--lib --test write_vhd --test write_vhdx --test convert --test write_fast"
    [commit]="src/repair/commit.rs;;--lib --test write_safety --test pipeline --test undo_copy_name"
    [output]="src/repair/output.rs;;--lib --test write_safety"
)
# Default sample per group (K/N of its mutants, round-robin; '' = all),
# chosen so that each group costs ~10-15 mutants on two shared cores
# (stop 23: vhd/write.rs has 421 mutants, image/write.rs 269, commit.rs 57,
# output.rs 76, fat.rs overwrite_plan 13).
declare -A S=(
    [hive-recover]=0/12 [hive-edit]=0/9 [repair]=0/8 [vhd-write]=0/25
    [vhdx-write]=0/34 [write]=0/18 [undo]=0/5 [commit]=0/5 [output]=0/6
)
groups=("$@"); [ ${#groups[@]} -gt 0 ] || groups=(eval ntfs-plan undo)

# A scratch copy (never the working tree: --in-place edits the files).
mkdir -p "$dir/tree" "$dir/out"
find "$dir/tree" -mindepth 1 -maxdepth 1 ! -name target -exec rm -rf {} +
if [ -n "${MUTANTS_REV:-}" ]; then
    git -C "$repo" archive "$MUTANTS_REV" | tar -x -C "$dir/tree"
else
    tar -C "$repo" --exclude=./target --exclude=./fuzz --exclude=./.git -cf - . | tar -C "$dir/tree" -xf -
fi
# testdata/ and ../shared as the tests expect them.
[ -e "$dir/shared" ] || { [ -d "$repo/../shared" ] && ln -s "$(cd "$repo/../shared" && pwd)" "$dir/shared"; } || true
cd "$dir/tree"

for g in "${groups[@]}"; do
    spec=${G[$g]:-}; [ -n "$spec" ] || { echo "unknown group $g (${!G[*]})" >&2; exit 2; }
    IFS=';' read -r file re argv <<<"$spec"
    args=()
    set -- $argv
    while [ $# -gt 0 ]; do
        if [ "$1" = --test ]; then
            [ -f "tests/$2.rs" ] && args+=(--test "$2") || echo "   (no tests/$2.rs here: not run)"
            shift 2
        else
            args+=("$1"); shift
        fi
    done
    echo "== $g: $file${re:+ (functions: $re)}; cargo test ${args[*]}"
    re=${MUTANTS_RE:-$re}
    sel=(-f "$file"); [ -n "$re" ] && sel+=(--re "$re")
    shard=${MUTANTS_SHARD-${S[$g]:-}}
    [ -n "$shard" ] && [ -z "${MUTANTS_RE:-}" ] && sel+=(--shard "$shard" --sharding round-robin) && echo "   sample: shard $shard"
    start=$SECONDS
    nice cargo mutants --in-place --no-shuffle --timeout "$timeout" --build-timeout 600 --profile "${MUTANTS_PROFILE:-mutants}" \
        "${sel[@]}" --output "$dir/out/$g" -- "${args[@]}" >"$dir/out/$g.log" 2>&1 || true
    o=$dir/out/$g/mutants.out
    n() { [ -f "$o/$1.txt" ] && wc -l <"$o/$1.txt" || echo 0; }
    echo "   caught $(n caught)  missed $(n missed)  timeout $(n timeout)  unviable $(n unviable)  ($((SECONDS - start)) s)"
    [ -s "$o/missed.txt" ] && sed 's/^/   MISSED /' "$o/missed.txt"
done
