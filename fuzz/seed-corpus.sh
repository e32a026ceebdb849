#!/usr/bin/env bash
# Fills fuzz/corpus/edxml_import with the seed corpus: the project's own packages in
# seeds/edxml_import and the public edXML samples of ../shared/testdata/edxml (not kept in this
# repository: they are not the project's files). Usage: fuzz/seed-corpus.sh [SAMPLES_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
corpus="$here/corpus/edxml_import"
samples="${1:-$here/../../shared/testdata/edxml}"
mkdir -p "$corpus"
cp "$here"/seeds/edxml_import/* "$corpus"/
n=0
if [ -d "$samples" ]; then
    while IFS= read -r -d '' f; do
        # One flat folder: the sample's directory name keeps same-named files apart.
        name="sample-$(basename "$(dirname "$f")")-$(basename "$f" | tr ' ' '_')"
        cp "$f" "$corpus/$name"
        n=$((n + 1))
    done < <(find "$samples" -type f -name '*.edxml' -print0)
else
    echo "seed-corpus: no samples at $samples; the corpus has the project's seeds only" >&2
fi
echo "seed-corpus: $corpus has $(find "$corpus" -type f | wc -l) files ($n samples)"
