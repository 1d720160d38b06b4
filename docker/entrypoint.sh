#!/bin/sh
# Runs the container's command as the unprivileged user, after making the data
# directory theirs: a bind-mounted host directory arrives owned by root, and the
# service could not write its key, files or Valkey data there.
set -eu

data_dir="${TEXTBATCH_DATA_DIR:-/data}"
run_as="${TEXTBATCH_RUN_AS:-textbatch}"

if [ "$(id -u)" = "0" ]; then
    mkdir -p "$data_dir"
    # Only the top directory when it is not theirs yet: a large data directory is not
    # walked on every start, and what the service wrote before is already theirs.
    if [ "$(stat -c %U "$data_dir")" != "$run_as" ]; then
        chown -R "$run_as:$(id -gn "$run_as")" "$data_dir"
    fi
    exec setpriv --reuid="$run_as" --regid="$(id -g "$run_as")" --init-groups -- "$@"
fi
exec "$@"
