#!/usr/bin/env bash
# Static checks of the workflow, run by `make test` (CI) before the tests; seconds, not minutes:
# snakefmt --check over every rule file, then for the demo and the paper preset `snakemake --lint`
# (every rule file: the Snakefile includes them all) and a dry run (`snakemake -n`).
# The paper preset's data paths only need to exist for a dry run (nothing runs).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
snakefmt --check "$repo/Snakefile" "$repo/workflow/"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for preset in demo paper; do
  wd="$tmp/$preset"
  mkdir -p "$wd"
  printf 'preset: %s\n' "$preset" >"$wd/config.yaml"
  if [ "$preset" = paper ]; then
    mkdir -p "$wd/ADNI" && touch "$wd/ADNIMERGE.csv"
  fi
  for check in --lint -n; do
    snakemake -s "$repo/Snakefile" -d "$wd" "$check" >"$wd.log" 2>&1 || {
      cat "$wd.log"
      echo "snakemake $check failed with the $preset preset"
      exit 1
    }
  done
  echo "$preset preset: snakemake --lint clean, dry run planned"
done
