#!/usr/bin/env bash
# Resolve README's two set-up commands against the public package index alone, as a user
# without this machine's pip configuration would: every `pip install` of the fenced
# commands that start with `python3 -m venv .venv` runs with --dry-run in a throw-away
# virtualenv, with the site pip configuration (local wheel folders, site constraints)
# switched off. Fails when a pin in constraints.txt or pyproject.toml cannot be satisfied
# from PyPI, which the development machines' local wheels would otherwise hide.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=$(mktemp -d)/venv
trap 'rm -rf "$(dirname "$venv")"' EXIT
python3 -m venv "$venv"

mapfile -t commands < <(grep -E '^python3 -m venv \.venv && ' README.md)
if [ "${#commands[@]}" -ne 2 ]; then
    echo "expected README's two set-up commands, found ${#commands[@]}" >&2
    exit 1
fi
checked=0
for command in "${commands[@]}"; do
    # the `.venv/bin/pip install ARGS` parts of the && chain
    while IFS= read -r part; do
        args=${part#*pip install }
        args=${args//-q /}
        echo "dry run: pip install $args"
        eval "set -- $args"  # README's arguments, quoted and split as the shell would
        PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= PIP_CONSTRAINT= PIP_NO_INDEX= \
            "$venv/bin/pip" install --dry-run --ignore-installed -q "$@"
        checked=$((checked + 1))
    done < <(printf '%s\n' "$command" | sed 's/ && /\n/g' | grep -E '^\.venv/bin/pip install ')
done
echo "README install commands resolve against the public index ($checked pip installs)"
